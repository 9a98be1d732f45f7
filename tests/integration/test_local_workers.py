"""Lambda functions as isolated, warm worker processes (the local cloud's server mode)."""

from __future__ import annotations

import dataclasses
import os
import signal
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from imgpipe.local.cloud import LocalCloud
from imgpipe.local.runner import Invocation
from imgpipe.local.workers import WorkerFunctions

pytestmark = pytest.mark.xdist_group("local-workers")


# -- workers -----------------------------------------------------------------------------

PROBE = textwrap.dedent(
    """
    import importlib.util, os, pathlib, sys, time

    def handler(event, context):
        remaining = context.get_remaining_time_in_millis()
        if event.get("mark"):
            # Tell the test this call is running (and in which process)
            (pathlib.Path(event["mark"]) / "running").write_text(str(os.getpid()))
        if event.get("hold"):
            # Wait for the test to say go (or to kill this process); with a deadline, so
            # a broken test cannot hang here
            deadline = time.monotonic() + 60
            while not (pathlib.Path(event["hold"]) / "go").exists():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
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
            "remaining": remaining,
            "invoked_function_arn": context.invoked_function_arn,
            "function_version": context.function_version,
        }
    """
)
# A function whose initialisation (module import) takes longer than its timeout.
SLOW_INIT = textwrap.dedent(
    """
    import time
    time.sleep(1.5)

    def handler(event, context):
        return {"remaining": context.get_remaining_time_in_millis()}
    """
)


@dataclasses.dataclass
class Deployed:
    cloud: LocalCloud
    code: Path
    layers: dict[str, Path]

    def workers(self, *, timeout_s: int = 2, handler: str = "probe.handler") -> WorkerFunctions:
        """Workers running the probe in place of every function's handler."""
        probes = {
            logical: dataclasses.replace(
                spec, code_uri=self.code, handler=handler, timeout_s=timeout_s
            )
            for logical, spec in self.cloud.template.functions().items()
        }
        return WorkerFunctions(
            probes,
            names=self.cloud.names,
            arns=self.cloud.arns,
            layers=self.layers,
            endpoint_url=str(self.cloud.endpoint_url),
            region="us-east-1",
        )


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    os.environ["IMGPIPE_DEVELOPER_SECRET"] = "must-not-leak"
    code = tmp_path_factory.mktemp("probe")
    (code / "probe.py").write_text(PROBE)
    (code / "slow.py").write_text(SLOW_INIT)
    try:
        with LocalCloud.running(server=True, workers=True, work_dir=code) as cloud:
            functions: WorkerFunctions = cloud.functions
            layers = {name: Path(p) for name, p in functions._layers.items()}
            yield Deployed(cloud, code, layers)
    finally:
        os.environ.pop("IMGPIPE_DEVELOPER_SECRET", None)


@pytest.fixture(scope="module")
def probes(deployed: Deployed) -> Iterator[tuple[LocalCloud, WorkerFunctions]]:
    workers = deployed.workers()
    try:
        yield deployed.cloud, workers
    finally:
        workers.close()


@pytest.fixture
def long_running(deployed: Deployed) -> Iterator[WorkerFunctions]:
    """Fresh probe workers with a 30 s timeout, for calls a test holds and releases."""
    workers = deployed.workers(timeout_s=30)
    try:
        yield workers
    finally:
        workers.close()


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


def test_each_worker_sees_only_its_environment_and_layers(
    probes: tuple[LocalCloud, WorkerFunctions],
) -> None:
    cloud, workers = probes
    validate = workers.invoke(cloud.names["ValidateFunction"], {}).response
    resize = workers.invoke(cloud.names["ResizeFunction"], {}).response
    # Environment: the template's variables for that function, nothing from this shell
    assert "CACHE_CONTROL" not in validate["env"]
    assert resize["env"]["CACHE_CONTROL"].startswith("public")
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


def test_a_dead_worker_fails_only_its_own_call_and_the_queue_goes_to_its_replacement(
    long_running: WorkerFunctions, deployed: Deployed, tmp_path: Path
) -> None:
    workers = long_running
    name = deployed.cloud.names["StoreFunction"]
    # Given one call running in the worker and two more queued behind it
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(workers.invoke, name, {"mark": str(tmp_path), "hold": str(tmp_path)})
        wait_until(lambda: (tmp_path / "running").exists(), "the first call runs")
        queued = [pool.submit(workers.invoke, name, {}) for _ in range(2)]
        wait_until(lambda: workers.queued(name) == 2, "two calls wait for the worker")
        # When the worker process dies (killed, as by the OOM killer)
        pid = int((tmp_path / "running").read_text())
        os.kill(pid, signal.SIGKILL)
        died = running.result(timeout=30)
        after: list[Invocation] = [future.result(timeout=30) for future in queued]
    # Then only the call it was running fails, as Lambda reports a runtime exit
    assert died.error_type == "Runtime.ExitError"
    assert "exit status" in died.response["errorMessage"]
    # And the queued calls ran in one fresh process (a single cold start)
    assert [call.error_type for call in after] == [None, None]
    assert {call.response["pid"] for call in after} != {pid}
    assert len({call.response["pid"] for call in after}) == 1
    assert sorted(call.cold_start for call in after) == [False, True]


def test_time_spent_queued_for_the_worker_does_not_count_toward_the_timeout(
    deployed: Deployed, tmp_path: Path
) -> None:
    # Given a function with a 3 s timeout, busy for 2 s with one call
    workers = deployed.workers(timeout_s=3)
    name = deployed.cloud.names["ResizeFunction"]
    try:
        workers.invoke(name, {})  # started and warm
        with ThreadPoolExecutor(2) as pool:
            busy = pool.submit(workers.invoke, name, {"mark": str(tmp_path), "sleep": 2})
            wait_until(lambda: (tmp_path / "running").exists(), "the first call runs")
            # When another call waits for it (about 2 s) and then runs (briefly)
            waiting = pool.submit(workers.invoke, name, {})
            wait_until(lambda: workers.queued(name) == 1, "the second call waits")
            first, second = busy.result(timeout=30), waiting.result(timeout=30)
    finally:
        workers.close()
    # Then neither timed out, and each handler was given its whole timeout from its start
    assert (first.error_type, second.error_type) == (None, None)
    assert 2_500 < first.response["remaining"] <= 3_000
    assert 2_500 < second.response["remaining"] <= 3_000
    # And Lambda's Duration is the run time alone, not the wait
    assert second.duration_ms < 1_000


def test_initialisation_does_not_count_toward_the_timeout(deployed: Deployed) -> None:
    # Given a function whose module takes 1.5 s to import and whose timeout is 1 s
    workers = deployed.workers(timeout_s=1, handler="slow.handler")
    try:
        # When it is invoked cold
        cold = workers.invoke(deployed.cloud.names["ForgetFunction"], {})
    finally:
        workers.close()
    # Then the call succeeds, with the init reported apart (Lambda: Init Duration)
    assert cold.error_type is None
    assert cold.cold_start
    assert cold.init_ms >= 1_500
    assert 500 < cold.response["remaining"] <= 1_000
    assert "Init Duration:" in cold.logs


def test_a_call_through_an_alias_sees_its_version_and_arn(
    probes: tuple[LocalCloud, WorkerFunctions],
) -> None:
    cloud, workers = probes
    name = cloud.names["ForgetFunction"]
    alias_arn = f"{cloud.arns['ForgetFunction']}:live"
    # When the alias ARN is invoked (as the state machine does), resolved to version 1
    call = workers.invoke(alias_arn, {}, version="1", invoked_arn=alias_arn)
    latest = workers.invoke(f"{name}:$LATEST", {})
    # Then the handler's context and environment say which version runs, and how it was
    # called; each version has its own execution environment, as in Lambda
    assert call.function == "ForgetFunction"
    assert call.response["invoked_function_arn"] == alias_arn
    assert call.response["function_version"] == "1"
    assert call.response["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "1"
    assert latest.response["function_version"] == "$LATEST"
    assert latest.response["invoked_function_arn"] == cloud.arns["ForgetFunction"]
    assert latest.response["pid"] != call.response["pid"]
