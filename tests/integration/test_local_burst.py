"""A burst of uploads through the local cloud comes out whole, and first time.

Runs the benchmark's own command (`python -m benchmarks.burst`), smaller: the local
cloud in server mode with worker processes, plain boto3 uploads all at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.xdist_group("local-burst")


def test_a_burst_of_uploads_is_processed_with_no_failure_and_no_retry() -> None:
    # Given the local cloud, When 30 different photos are uploaded at once
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.burst",
            "--uploads",
            "30",
            "--deadline",
            "240",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    # Then every upload started one execution, and every execution processed its photo
    assert result["executions"] == 30
    assert result["by_status"] == {"SUCCEEDED": 30}
    assert result["by_output_status"] == {"processed": 30}
    # And none needed a retry: nothing here is a race, a duplicate or a throttle
    assert result["retried"] == 0, result["retry_errors"]
    assert not result["timed_out"]
