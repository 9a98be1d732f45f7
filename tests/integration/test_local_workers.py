"""Lambda functions as isolated, warm worker processes (the local cloud's server mode)."""

from __future__ import annotations

import dataclasses
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgpipe.local.cloud import LocalCloud
from imgpipe.local.workers import WorkerFunctions

pytestmark = pytest.mark.xdist_group("local-workers")


# -- workers -----------------------------------------------------------------------------

PROBE = textwrap.dedent(
    """
    import importlib.util, os, sys, time

    def handler(event, context):
        if event.get("sleep"):
            time.sleep(event["sleep"])
        if event.get("fail"):
            raise LookupError("probe failure")
        return {
            "env": dict(os.environ),
            "path": sys.path,
            "pil": importlib.util.find_spec("PIL") is not None,
            "imgpipe": importlib.util.find_spec("imgpipe") is not None,
            "moto": importlib.util.find_spec("moto") is not None,
            "pid": os.getpid(),
            "remaining": context.get_remaining_time_in_millis(),
        }
    """
)


@pytest.fixture(scope="module")
def probes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalCloud, WorkerFunctions]]:
    os.environ["IMGPIPE_DEVELOPER_SECRET"] = "must-not-leak"
    code = tmp_path_factory.mktemp("probe")
    (code / "probe.py").write_text(PROBE)
    try:
        with LocalCloud.running(server=True, workers=True, work_dir=code) as cloud:
            functions: WorkerFunctions = cloud.functions
            specs = cloud.template.functions()
            probes = {
                logical: dataclasses.replace(
                    spec, code_uri=code, handler="probe.handler", timeout_s=2
                )
                for logical, spec in specs.items()
            }
            layers = {name: Path(p) for name, p in functions._layers.items()}
            yield (
                cloud,
                WorkerFunctions(
                    probes,
                    names=cloud.names,
                    arns=cloud.arns,
                    layers=layers,
                    endpoint_url=str(cloud.endpoint_url),
                    region="us-east-1",
                ),
            )
    finally:
        os.environ.pop("IMGPIPE_DEVELOPER_SECRET", None)


def test_each_worker_sees_only_its_environment_and_layers(
    probes: tuple[LocalCloud, WorkerFunctions],
) -> None:
    cloud, workers = probes
    validate = workers.invoke(cloud.names["ValidateFunction"], {}).response
    resize = workers.invoke(cloud.names["ResizeFunction"], {}).response
    # Environment: the template's variables for that function, nothing from this shell
    assert "OUTPUT_BUCKET" not in validate["env"]
    assert resize["env"]["OUTPUT_BUCKET"] == cloud.output_bucket
    assert validate["env"]["MAX_FRAMES"] == "500"
    assert validate["env"]["AWS_LAMBDA_FUNCTION_NAME"] == cloud.names["ValidateFunction"]
    assert validate["env"]["AWS_ENDPOINT_URL"] == cloud.endpoint_url
    assert "IMGPIPE_DEVELOPER_SECRET" not in validate["env"]
    assert "VIRTUAL_ENV" not in validate["env"]
    # Imports: only resize has the Pillow layer; neither sees the dev virtualenv
    assert (validate["pil"], resize["pil"]) == (False, True)
    assert (validate["imgpipe"], resize["imgpipe"]) == (True, True)
    assert (validate["moto"], resize["moto"]) == (False, False)
    assert not any("site-packages" in p for p in validate["path"])
    assert validate["pid"] != resize["pid"]


def test_workers_stay_warm_and_report_cold_starts(
    probes: tuple[LocalCloud, WorkerFunctions],
) -> None:
    cloud, workers = probes
    name = cloud.names["StoreFunction"]
    first = workers.invoke(name, {})
    second = workers.invoke(name, {})
    assert first.cold_start
    assert first.init_ms > 0
    assert not second.cold_start
    assert first.response["pid"] == second.response["pid"]
    assert "REPORT RequestId:" in second.logs
    assert "Max Memory Used:" in second.logs


def test_handler_error_comes_back_as_a_lambda_error(
    probes: tuple[LocalCloud, WorkerFunctions],
) -> None:
    cloud, workers = probes
    failed = workers.invoke(cloud.names["StoreFunction"], {"fail": True})
    assert failed.error_type == "LookupError"
    assert failed.response["errorType"] == "LookupError"
    assert failed.response["errorMessage"] == "probe failure"
    assert failed.response["stackTrace"]


def test_timeout_kills_the_worker_and_the_next_call_is_cold(
    probes: tuple[LocalCloud, WorkerFunctions],
) -> None:
    cloud, workers = probes
    name = cloud.names["ValidateFunction"]
    workers.invoke(name, {})
    timed_out = workers.invoke(name, {"sleep": 10})
    after = workers.invoke(name, {})
    assert timed_out.error_type == "Sandbox.Timedout"
    assert "timed out after 2" in timed_out.response["errorMessage"]
    assert after.cold_start
