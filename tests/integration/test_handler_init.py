"""Each handler's init in a fresh interpreter, as a Lambda cold start runs it.

The cold-start budget (docs/performance.md, "Cold start") rests on two choices that an
edit to any handler could undo without another test noticing: the tracer patches
botocore only, and the boto3 clients are made by the first invocation, not at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imgpipe.local.runner import lambda_environment
from imgpipe.local.template import FunctionSpec, Template

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"

# Imports the handler the way the runtime does, then reports what its init left behind
# and what its first use of the adapters makes.
_CHILD = r"""
import importlib.util, json, sys
import boto3
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
traced = sorted(
    name.split(".")[2]
    for name in sys.modules
    if name.startswith("aws_xray_sdk.ext.") and name.endswith(".patch")
)
session_at_init = boto3.DEFAULT_SESSION is not None
s3, dynamodb = app.STORE.client, app.CLAIMS.client
print(json.dumps({
    "traced": traced,
    "session_at_init": session_at_init,
    "services": [s3.meta.service_model.service_name, dynamodb.meta.service_model.service_name],
    "regions": [s3.meta.region_name, dynamodb.meta.region_name],
    "kept": app.STORE.client is s3 and app.CLAIMS.client is dynamodb,
}))
"""


def _functions() -> dict[str, FunctionSpec]:
    template = Template(REPO / "template.yaml")
    for logical in template.data.get("Resources", {}):
        template.resolver.physical[logical] = f"imgpipe-test-{logical.lower()}"
    return template.functions()


FUNCTIONS = _functions()


def _cold_start(spec: FunctionSpec) -> dict[str, Any]:
    env = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    env |= lambda_environment(spec, f"imgpipe-test-{spec.logical_id}", REGION)
    env |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LAMBDA_TASK_ROOT": str(spec.code_uri),
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }
    env |= spec.environment
    module, _, _ = spec.handler.rpartition(".")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(spec.code_uri / f"{module}.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("logical", sorted(FUNCTIONS))
def test_given_a_cold_handler_then_only_botocore_is_traced_and_clients_wait_for_first_use(
    logical: str,
) -> None:
    # Given a fresh interpreter with the function's environment
    # When the handler module is imported and its adapters are then used
    result = _cold_start(FUNCTIONS[logical])
    # Then the tracer patched botocore and nothing else ...
    assert result["traced"] == ["botocore"]
    # ... no boto3 client was made during init ...
    assert result["session_at_init"] is False
    # ... and the first use made the S3 and DynamoDB clients, in the function's region,
    # which later uses reuse.
    assert result["services"] == ["s3", "dynamodb"]
    assert result["regions"] == [REGION, REGION]
    assert result["kept"] is True
