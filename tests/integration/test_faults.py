"""Faults where they really happen, through moto's execution of the deployed ASL.

Each test breaks one dependency at the layer that fails in AWS and reads what the state
machine did from the execution's status, error and cause, its history (one
`TaskScheduled` per attempt, `TaskFailed` with the error name) and the waits its
retriers asked for:

* S3 answering 5xx/SlowDown (or AccessDenied) to the handlers' own boto3 client, raised
  from a botocore `before-call` handler as botocore raises it once its own retries are
  spent;
* the Lambda Invoke API throttling (`TooManyRequestsException`, HTTP 429), raised by
  moto's Lambda backend so Step Functions' Lambda client sees the HTTP error;
* the Lambda runtime reporting a timeout or a crash (`Sandbox.Timedout`,
  `Runtime.ExitError`, `Lambda.Unknown`) instead of running the handler.

The retry numbers come from the deployed definition, never from this file. Retry waits
are recorded instead of slept; moto's full-jitter draw is observed so the exponential
bound behind every wait is asserted exactly.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaBackend
from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl

from helpers import handler_s3_client, jpeg
from imgpipe.keys import manifest_key, output_folder
from imgpipe.local.cloud import STATE_MACHINE, ExecutionRecord, LocalCloud
from imgpipe.local.runner import Invocation

pytestmark = pytest.mark.xdist_group("faults")

TASKS = ("Validate", "Resize", "Store")

# -- recording the retriers' waits -------------------------------------------------------


class WaitRecorder:
    """Stands in for the interpreter's sleep between retries."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class JitterProbe:
    """Stands in for `random` inside moto's jitter strategy and records each draw.

    With `JitterStrategy: FULL` every wait is drawn from [0, bound], where bound is
    IntervalSeconds x BackoffRate^(retry-1) capped by MaxDelaySeconds; recording the
    bound asserts the exponential schedule exactly even though the waits are random.
    """

    def __init__(self) -> None:
        self.bounds: list[tuple[float, float]] = []
        self.draws: list[float] = []

    def uniform(self, low: float, high: float) -> float:
        value = random.uniform(low, high)
        self.bounds.append((low, high))
        self.draws.append(value)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(random, name)


@pytest.fixture(scope="module")
def waits() -> WaitRecorder:
    return WaitRecorder()


@pytest.fixture(scope="module")
def cloud(waits: WaitRecorder) -> Iterator[LocalCloud]:
    with LocalCloud.running(retry_sleep=waits) as deployed:
        yield deployed


@pytest.fixture(autouse=True)
def jitter(waits: WaitRecorder, monkeypatch: pytest.MonkeyPatch) -> JitterProbe:
    waits.calls.clear()
    probe = JitterProbe()
    monkeypatch.setattr(jitter_strategy_decl, "random", probe)
    return probe


# -- the deployed definition -------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """The state machine definition as deployed, and which function each task calls."""

    asl: dict[str, Any]
    function_of: dict[str, str]  # task state -> logical id of its function

    def retrier(self, state: str, error: str) -> dict[str, Any] | None:
        """The first Retry entry of `state` that matches `error`, as Step Functions picks."""
        for retrier in self.asl["States"][state].get("Retry", []):
            names = retrier["ErrorEquals"]
            if error in names or "States.ALL" in names:
                return dict(retrier)
            if "States.TaskFailed" in names and not error.startswith("States."):
                return dict(retrier)
        return None

    def max_attempts(self, state: str, error: str) -> int:
        """Attempts the state makes when every one fails with `error` (first try included)."""
        retrier = self.retrier(state, error)
        return 1 + (int(retrier.get("MaxAttempts", 3)) if retrier is not None else 0)


@pytest.fixture(scope="module")
def deployed(cloud: LocalCloud) -> Deployed:
    definition, _ = cloud.template.state_machine(STATE_MACHINE)
    asl = json.loads(definition)
    by_arn = {arn: logical for logical, arn in cloud.arns.items()}
    # Tasks call the `live` alias: arn:aws:lambda:region:account:function:name:live
    function_of = {
        name: by_arn[":".join(state["Parameters"]["FunctionName"].split(":")[:7])]
        for name, state in asl["States"].items()
        if state["Type"] == "Task" and "FunctionName" in state["Parameters"]
    }
    assert set(TASKS) <= set(function_of), function_of
    return Deployed(asl, function_of)


def backoff_bounds(retrier: dict[str, Any], retries: int) -> list[float]:
    """The upper bound of each wait: IntervalSeconds x BackoffRate^(n-1), capped."""
    interval = float(retrier.get("IntervalSeconds", 1))
    rate = float(retrier.get("BackoffRate", 2.0))
    cap = retrier.get("MaxDelaySeconds")
    bounds = [interval * rate**n for n in range(retries)]
    return [min(bound, float(cap)) for bound in bounds] if cap is not None else bounds


def assert_backoff(
    waits: WaitRecorder, jitter: JitterProbe, retrier: dict[str, Any] | None, retries: int
) -> None:
    """The waits between attempts follow `retrier`, which the state must have."""
    assert retrier is not None
    bounds = backoff_bounds(retrier, retries)
    assert len(waits.calls) == retries, waits.calls
    # Full jitter: each wait is drawn from [0, bound] and the bounds grow exponentially.
    assert retrier.get("JitterStrategy") == "FULL"
    assert jitter.bounds == [(0, pytest.approx(bound)) for bound in bounds]
    assert waits.calls == jitter.draws
    assert all(0 <= wait <= bound for wait, bound in zip(waits.calls, bounds, strict=True))
    assert sum(waits.calls) <= sum(bounds)


# -- reading the execution history -------------------------------------------------------


def _by_state(record: ExecutionRecord) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each history event with the name of the state it happened in."""
    state = ""
    for event in sorted(record.history, key=lambda e: e["id"]):
        if "stateEnteredEventDetails" in event:
            state = event["stateEnteredEventDetails"]["name"]
        yield state, event


def scheduled(record: ExecutionRecord) -> Counter[str]:
    """Attempts per task state (one `TaskScheduled` event each)."""
    return Counter(state for state, e in _by_state(record) if e["type"] == "TaskScheduled")


def task_errors(record: ExecutionRecord, state: str) -> list[str]:
    return [
        e["taskFailedEventDetails"]["error"]
        for name, e in _by_state(record)
        if name == state and e["type"] == "TaskFailed"
    ]


def failure_origin(record: ExecutionRecord) -> tuple[str, str]:
    """Trace PipelineFailed back through the history to the task and error that led there."""
    events = {e["id"]: e for e in record.history}
    fails = [e for e in record.history if e["type"] == "FailStateEntered"]
    assert [e["stateEnteredEventDetails"]["name"] for e in fails] == ["PipelineFailed"]
    exited = events[fails[0]["previousEventId"]]
    assert exited["type"] == "TaskStateExited", exited
    failed = events[exited["previousEventId"]]
    assert failed["type"] == "TaskFailed", failed
    return exited["stateExitedEventDetails"]["name"], failed["taskFailedEventDetails"]["error"]


def rendered_keys(record: ExecutionRecord) -> set[str]:
    """The rendition keys Resize reported in its successful attempt."""
    for state, event in _by_state(record):
        if state == "Resize" and event["type"] == "TaskSucceeded":
            output = json.loads(event["taskSucceededEventDetails"]["output"])
            return {r["key"] for r in output["Payload"]["renditions"]}
    return set()


def invocations_of(cloud: LocalCloud, record: ExecutionRecord, logical: str) -> int:
    """How many times the handler itself ran for this execution."""
    return sum(
        1
        for inv in cloud.functions.invocations
        if inv.function == logical
        and isinstance(inv.event, dict)
        and inv.event.get("execution") == record.arn
    )


# -- the output bucket -------------------------------------------------------------------


def outputs(cloud: LocalCloud, key: str) -> set[str]:
    prefix = cloud.functions.module("ResizeFunction").CONFIG.output.prefix
    listing = cloud.s3.list_objects_v2(
        Bucket=cloud.output_bucket, Prefix=output_folder(prefix, key)
    )
    return {item["Key"] for item in listing.get("Contents", [])}


def manifest_of(cloud: LocalCloud, key: str) -> str:
    prefix = cloud.functions.module("ResizeFunction").CONFIG.output.prefix
    return manifest_key(prefix, key)


def assert_processed(cloud: LocalCloud, record: ExecutionRecord) -> None:
    assert record.status == "SUCCEEDED", (record.error, record.cause)
    assert record.output is not None
    assert record.output["status"] == "processed", record.output
    assert record.output["manifest"]["key"] == manifest_of(cloud, record.key)
    assert manifest_of(cloud, record.key) in outputs(cloud, record.key)


def unique_key(label: str) -> str:
    return f"faults/{label}/{uuid.uuid4().hex[:8]}.jpg"


# -- S3 faults ---------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Fault:
    code: str
    status: int
    message: str

    def error(self, operation: str) -> ClientError:
        """The ClientError botocore raises for this answer once its own retries are spent."""
        if operation == "HeadObject":
            # A HEAD response has no body: botocore names the error after the status.
            error = {"Code": str(self.status), "Message": HTTPStatus(self.status).phrase}
        else:
            error = {"Code": self.code, "Message": self.message}
        return ClientError(
            {
                "Error": error,
                "ResponseMetadata": {
                    "RequestId": uuid.uuid4().hex[:16].upper(),
                    "HTTPStatusCode": self.status,
                    "HTTPHeaders": {},
                    "MaxAttemptsReached": True,
                    "RetryAttempts": 4,
                },
            },
            operation,
        )


INTERNAL_ERROR = S3Fault(
    "InternalError", 500, "We encountered an internal error. Please try again."
)
SERVICE_UNAVAILABLE = S3Fault("ServiceUnavailable", 503, "Service is unable to handle request.")
SLOW_DOWN = S3Fault("SlowDown", 503, "Please reduce your request rate.")
ACCESS_DENIED = S3Fault("AccessDenied", 403, "Access Denied")
TRANSIENT_FAULTS = [
    pytest.param(INTERNAL_ERROR, id="InternalError-500"),
    pytest.param(SERVICE_UNAVAILABLE, id="ServiceUnavailable-503"),
    pytest.param(SLOW_DOWN, id="SlowDown-503"),
]


@dataclass(frozen=True)
class Site:
    """Where S3 fails: a task state and the S3 operation its function calls."""

    state: str
    operation: str
    # What exists in the output folder when every attempt fails here.
    left_behind: str  # "nothing" | "renditions"


SITES = [
    pytest.param(Site("Validate", "HeadObject", "nothing"), id="Validate-HeadObject"),
    pytest.param(Site("Validate", "GetObject", "nothing"), id="Validate-GetObject(ranged)"),
    pytest.param(Site("Resize", "GetObject", "nothing"), id="Resize-GetObject"),
    pytest.param(Site("Resize", "PutObject", "nothing"), id="Resize-PutObject"),
    pytest.param(Site("Store", "HeadObject", "renditions"), id="Store-HeadObject"),
    pytest.param(Site("Store", "PutObject", "renditions"), id="Store-PutObject"),
]


@dataclass
class FaultLog:
    calls: list[str] = field(default_factory=list)  # "failed" or "passed", per S3 call

    @property
    def failed(self) -> int:
        return self.calls.count("failed")


@contextmanager
def s3_fails(
    cloud: LocalCloud,
    logical: str,
    operation: str,
    fault: S3Fault,
    *,
    times: int | None,
    after: int = 0,
) -> Iterator[FaultLog]:
    """S3 answers `operation` from `logical`'s client with `fault`.

    The first `after` calls pass; then `times` calls fail (every call with None).
    """
    client = handler_s3_client(cloud, logical)
    log = FaultLog()

    def answer(**_: Any) -> None:
        index = len(log.calls)
        if index >= after and (times is None or index < after + times):
            log.calls.append("failed")
            raise fault.error(operation)
        log.calls.append("passed")

    event = f"before-call.s3.{operation}"
    client.meta.events.register(event, answer)
    try:
        yield log
    finally:
        client.meta.events.unregister(event, answer)


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS)
@pytest.mark.parametrize("site", SITES)
def test_transient_s3_fault_is_retried_with_backoff_and_the_upload_is_processed(
    cloud: LocalCloud,
    deployed: Deployed,
    waits: WaitRecorder,
    jitter: JitterProbe,
    site: Site,
    fault: S3Fault,
) -> None:
    # Given S3 failing the first 2 of the state's calls with a 5xx/SlowDown, then healthy
    key = unique_key(f"heal-{site.state}-{site.operation}-{fault.code}")
    with s3_fails(cloud, deployed.function_of[site.state], site.operation, fault, times=2) as log:
        # When a photo is uploaded
        record = cloud.upload(key, jpeg(96, 64))
    # Then the state ran 1 + 2 times, each failure a TransientError, and the upload is processed
    assert log.failed == 2
    assert_processed(cloud, record)
    attempts = {name: 3 if name == site.state else 1 for name in TASKS}
    # and Processed published its event once
    assert scheduled(record) == {**attempts, "Processed": 1}
    assert task_errors(record, site.state) == ["TransientError", "TransientError"]
    # And the two waits follow the TransientError retrier's jittered exponential schedule
    assert_backoff(waits, jitter, deployed.retrier(site.state, "TransientError"), retries=2)


@pytest.mark.parametrize("site", SITES)
def test_transient_s3_fault_through_every_retry_but_the_last_still_succeeds(
    cloud: LocalCloud, deployed: Deployed, waits: WaitRecorder, jitter: JitterProbe, site: Site
) -> None:
    # Given S3 throttling exactly as many calls as the state has retries
    retries = deployed.max_attempts(site.state, "TransientError") - 1
    key = unique_key(f"edge-{site.state}-{site.operation}")
    with s3_fails(
        cloud, deployed.function_of[site.state], site.operation, SLOW_DOWN, times=retries
    ) as log:
        # When a photo is uploaded
        record = cloud.upload(key, jpeg(96, 64))
    # Then the last allowed attempt succeeds
    assert log.failed == retries
    assert_processed(cloud, record)
    assert scheduled(record)[site.state] == retries + 1
    assert_backoff(waits, jitter, deployed.retrier(site.state, "TransientError"), retries=retries)


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS)
@pytest.mark.parametrize("site", SITES)
def test_persistent_s3_fault_fails_the_execution_in_its_task_and_leaves_no_manifest(
    cloud: LocalCloud,
    deployed: Deployed,
    waits: WaitRecorder,
    jitter: JitterProbe,
    site: Site,
    fault: S3Fault,
) -> None:
    # Given S3 failing every one of the state's calls
    key = unique_key(f"down-{site.state}-{site.operation}-{fault.code}")
    with s3_fails(cloud, deployed.function_of[site.state], site.operation, fault, times=None):
        # When a photo is uploaded
        record = cloud.upload(key, jpeg(96, 64))
    # Then the execution FAILS with TransientError, traced back to the task that failed
    attempts = deployed.max_attempts(site.state, "TransientError")
    assert record.status == "FAILED"
    assert record.error == "TransientError"
    expected_code = str(fault.status) if site.operation == "HeadObject" else fault.code
    assert f"S3 {site.operation} failed transiently: {expected_code}" in (record.cause or "")
    assert failure_origin(record) == (site.state, "TransientError")
    assert record.states_entered()[-1] == "PipelineFailed"
    assert scheduled(record)[site.state] == attempts
    assert task_errors(record, site.state) == ["TransientError"] * attempts
    assert_backoff(
        waits, jitter, deployed.retrier(site.state, "TransientError"), retries=attempts - 1
    )
    # And nothing half-made is left: never a manifest, renditions only if Store failed
    left = outputs(cloud, key)
    assert manifest_of(cloud, key) not in left
    if site.left_behind == "nothing":
        assert left == set()
    else:
        assert left == rendered_keys(record), "Resize's renditions stay, unlisted"


def test_resize_failing_halfway_through_its_uploads_leaves_no_manifest(
    cloud: LocalCloud, deployed: Deployed
) -> None:
    # Given S3 accepting resize's first two renditions and then throttling every PutObject
    key = unique_key("halfway")
    logical = deployed.function_of["Resize"]
    with s3_fails(cloud, logical, "PutObject", SLOW_DOWN, times=None, after=2) as log:
        # When a photo is uploaded
        record = cloud.upload(key, jpeg(96, 64))
    # Then the execution fails in Resize, and the two renditions written have no manifest:
    # a manifest is the only completion marker consumers rely on (docs/contracts.md)
    assert record.status == "FAILED"
    assert failure_origin(record) == ("Resize", "TransientError")
    assert log.calls[:3] == ["passed", "passed", "failed"]
    left = outputs(cloud, key)
    assert len(left) == 2
    assert manifest_of(cloud, key) not in left


# -- network faults on the way to S3 -----------------------------------------------------


class _ResetBody:
    """A GetObject body whose connection is reset while it is read."""

    def read(self, *_: Any) -> bytes:
        raise ResponseStreamingError(
            error="('Connection broken: ConnectionResetError(104, 'Connection reset by peer')')"
        )

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class NetworkFault:
    state: str
    operation: str
    kind: str  # "read-timeout" | "no-connection" | "reset-while-reading"


@contextmanager
def network_fails_once(cloud: LocalCloud, logical: str, fault: NetworkFault) -> Iterator[FaultLog]:
    """The first call of `fault.operation` from `logical` meets a network fault.

    Timeouts and refused connections are raised as botocore raises them once its own
    retries are spent; a reset while the body streams happens after the call returned,
    where botocore does not retry at all.
    """
    client = handler_s3_client(cloud, logical)
    log = FaultLog()
    url = f"https://{cloud.output_bucket}.s3.amazonaws.com/"

    def before(**_: Any) -> None:
        if log.calls:
            log.calls.append("passed")
            return
        log.calls.append("failed")
        if fault.kind == "read-timeout":
            raise ReadTimeoutError(endpoint_url=url)
        raise EndpointConnectionError(endpoint_url=url)

    def after(parsed: dict[str, Any], **_: Any) -> None:
        if log.calls:
            log.calls.append("passed")
            return
        log.calls.append("failed")
        parsed["Body"] = _ResetBody()

    event, handler = (
        (f"after-call.s3.{fault.operation}", after)
        if fault.kind == "reset-while-reading"
        else (f"before-call.s3.{fault.operation}", before)
    )
    client.meta.events.register(event, handler)
    try:
        yield log
    finally:
        client.meta.events.unregister(event, handler)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(
            NetworkFault("Validate", "GetObject", "reset-while-reading"),
            id="Validate-GetObject-reset",
        ),
        pytest.param(
            NetworkFault("Resize", "GetObject", "reset-while-reading"), id="Resize-GetObject-reset"
        ),
        pytest.param(
            NetworkFault("Resize", "GetObject", "read-timeout"), id="Resize-GetObject-timeout"
        ),
        pytest.param(
            NetworkFault("Store", "PutObject", "no-connection"), id="Store-PutObject-refused"
        ),
    ],
)
def test_network_fault_on_the_way_to_s3_is_retried_like_a_5xx(
    cloud: LocalCloud, deployed: Deployed, fault: NetworkFault
) -> None:
    # Given one network fault between the state's function and S3
    key = unique_key(f"network-{fault.state}-{fault.operation}-{fault.kind}")
    with network_fails_once(cloud, deployed.function_of[fault.state], fault) as log:
        # When a photo is uploaded
        record = cloud.upload(key, jpeg(96, 64))
    # Then the state retries it as a transient fault and the upload is processed
    assert log.failed == 1
    assert len(task_errors(record, fault.state)) == 1, (record.error, record.cause)
    assert_processed(cloud, record)
    assert scheduled(record)[fault.state] == 2


# -- S3 faults that must not be retried --------------------------------------------------


@pytest.mark.parametrize(
    "site",
    [
        pytest.param(Site("Validate", "HeadObject", "nothing"), id="Validate-HeadObject"),
        pytest.param(Site("Resize", "GetObject", "nothing"), id="Resize-GetObject"),
        pytest.param(Site("Resize", "PutObject", "nothing"), id="Resize-PutObject"),
        pytest.param(Site("Store", "PutObject", "renditions"), id="Store-PutObject"),
    ],
)
def test_access_denied_is_not_retried_and_fails_the_execution(
    cloud: LocalCloud, deployed: Deployed, waits: WaitRecorder, site: Site
) -> None:
    # Given S3 denying the state's calls (a missing permission, not a passing fault)
    key = unique_key(f"denied-{site.state}-{site.operation}")
    with s3_fails(
        cloud, deployed.function_of[site.state], site.operation, ACCESS_DENIED, times=None
    ) as log:
        # When a photo is uploaded
        record = cloud.upload(key, jpeg(96, 64))
    # Then exactly one attempt is made and the execution FAILS with botocore's ClientError
    assert log.failed == 1
    assert record.status == "FAILED"
    assert record.error == "ClientError"
    denied = "403" if site.operation == "HeadObject" else "AccessDenied"
    assert denied in (record.cause or "")
    assert failure_origin(record) == (site.state, "ClientError")
    assert scheduled(record)[site.state] == 1
    assert deployed.retrier(site.state, "ClientError") is None
    assert waits.calls == []
    assert manifest_of(cloud, key) not in outputs(cloud, key)


def truncated_jpeg() -> bytes:
    whole = jpeg(640, 480)
    return whole[: len(whole) // 3]


@pytest.mark.parametrize(
    ("body", "state", "code"),
    [
        pytest.param(b"", "Validate", "EmptyObject", id="EmptyObject"),
        pytest.param(b"<!DOCTYPE html><html>no</html>", "Validate", "UnsupportedFormat", id="html"),
        pytest.param(truncated_jpeg(), "Resize", "CorruptImage", id="truncated-jpeg"),
    ],
)
def test_rejections_are_never_retried(
    cloud: LocalCloud, waits: WaitRecorder, body: bytes, state: str, code: str
) -> None:
    # Given a bad upload, When it is uploaded
    key = unique_key(f"rejected-{code}")
    record = cloud.upload(key, body)
    # Then the state that rejects it runs once, and the execution succeeds as rejected
    assert record.status == "SUCCEEDED"
    assert record.output is not None
    assert record.output["status"] == "rejected"
    assert record.output["reason"]["code"] == code
    assert scheduled(record)[state] == 1
    assert task_errors(record, state) == [code]
    assert waits.calls == []
    assert outputs(cloud, key) == set()


# -- Lambda throttling (the Invoke API answering 429) ------------------------------------


class TooManyRequestsException(LambdaClientError):
    """What the Lambda Invoke API answers when concurrency is exhausted (HTTP 429)."""

    code = 429

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate Exceeded.")


@contextmanager
def invoke_throttled(
    monkeypatch: pytest.MonkeyPatch, cloud: LocalCloud, logical: str, *, times: int | None
) -> Iterator[list[str]]:
    """moto's Lambda backend throttles `logical`'s first `times` invocations (all: None)."""
    target = cloud.names[logical]
    original = LambdaBackend.invoke
    throttled: list[str] = []

    def invoke(self: LambdaBackend, function_name: str, *args: Any, **kwargs: Any) -> Any:
        name = function_name.rsplit(":function:", 1)[-1].split(":", 1)[0]
        if name == target and (times is None or len(throttled) < times):
            throttled.append(function_name)
            raise TooManyRequestsException()
        return original(self, function_name, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(LambdaBackend, "invoke", invoke)
        yield throttled


@pytest.mark.parametrize("state", TASKS)
def test_throttled_invoke_is_retried_with_backoff_and_the_upload_is_processed(
    cloud: LocalCloud,
    deployed: Deployed,
    waits: WaitRecorder,
    jitter: JitterProbe,
    monkeypatch: pytest.MonkeyPatch,
    state: str,
) -> None:
    # Given Lambda throttling the state's function twice
    logical = deployed.function_of[state]
    key = unique_key(f"throttled-{state}")
    with invoke_throttled(monkeypatch, cloud, logical, times=2) as throttled:
        # When a photo is uploaded
        record = cloud.upload(key, jpeg(96, 64))
    # Then Step Functions saw Lambda.TooManyRequestsException twice and retried
    assert len(throttled) == 2
    assert_processed(cloud, record)
    assert task_errors(record, state) == ["Lambda.TooManyRequestsException"] * 2
    assert scheduled(record)[state] == 3
    # And the throttled attempts never reached the handler
    assert invocations_of(cloud, record, logical) == 1
    assert_backoff(
        waits, jitter, deployed.retrier(state, "Lambda.TooManyRequestsException"), retries=2
    )


def test_persistent_throttling_fails_the_execution_with_the_throttling_error(
    cloud: LocalCloud,
    deployed: Deployed,
    waits: WaitRecorder,
    jitter: JitterProbe,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given Lambda throttling every invocation of resize
    logical = deployed.function_of["Resize"]
    key = unique_key("throttled-forever")
    with invoke_throttled(monkeypatch, cloud, logical, times=None) as throttled:
        # When a photo is uploaded
        record = cloud.upload(key, jpeg(96, 64))
    # Then the execution FAILS with Lambda.TooManyRequestsException after the configured tries
    attempts = deployed.max_attempts("Resize", "Lambda.TooManyRequestsException")
    assert len(throttled) == attempts
    assert record.status == "FAILED"
    assert record.error == "Lambda.TooManyRequestsException"
    assert "Status Code: 429" in (record.cause or "")
    assert failure_origin(record) == ("Resize", "Lambda.TooManyRequestsException")
    assert scheduled(record)["Resize"] == attempts
    assert invocations_of(cloud, record, logical) == 0
    assert_backoff(
        waits,
        jitter,
        deployed.retrier("Resize", "Lambda.TooManyRequestsException"),
        retries=attempts - 1,
    )
    assert outputs(cloud, key) == set()


# -- the Lambda runtime timing out or crashing -------------------------------------------


@dataclass(frozen=True)
class RuntimeFault:
    error_type: str
    message: Callable[[int], str]  # from the function's timeout in seconds


TIMED_OUT = RuntimeFault(
    "Sandbox.Timedout", lambda timeout: f"Task timed out after {timeout:.2f} seconds"
)
EXIT_ERROR = RuntimeFault(
    "Runtime.ExitError", lambda _: "Runtime exited with error: signal: killed"
)
# AWS Step Functions names an unhandled failure without an error type Lambda.Unknown;
# moto takes the name from the payload's errorType, so the emulation puts it there.
UNKNOWN = RuntimeFault(
    "Lambda.Unknown",
    lambda _: "The cause could not be determined because Lambda did not return an error type.",
)


@contextmanager
def runtime_fails(
    monkeypatch: pytest.MonkeyPatch,
    cloud: LocalCloud,
    logical: str,
    fault: RuntimeFault,
    *,
    times: int | None,
) -> Iterator[list[str]]:
    """The runtime reports `fault` for `logical`'s first `times` invocations (all: None)."""
    functions = cloud.functions
    original = functions.invoke
    timeout_s = cloud.template.functions()[logical].timeout_s
    target = cloud.names[logical]
    failed: list[str] = []

    def invoke(function_name: str, event: Any, **options: Any) -> Invocation:
        if function_name != target or (times is not None and len(failed) >= times):
            result: Invocation = original(function_name, event, **options)
            return result
        request_id = str(uuid.uuid4())
        failed.append(request_id)
        return Invocation(
            function=logical,
            request_id=request_id,
            event=event,
            response={
                "errorType": fault.error_type,
                "errorMessage": f"RequestId: {request_id} Error: {fault.message(timeout_s)}",
            },
            error_type=fault.error_type,
            logs="",
            duration_ms=timeout_s * 1000.0,
            cold_start=False,
            init_ms=0.0,
        )

    with monkeypatch.context() as patch:
        patch.setattr(functions, "invoke", invoke)
        yield failed


RUNTIME_FAULTS = [
    pytest.param(TIMED_OUT, id="Sandbox.Timedout"),
    pytest.param(UNKNOWN, id="Lambda.Unknown"),
    pytest.param(EXIT_ERROR, id="Runtime.ExitError"),
]


@pytest.mark.parametrize("state", TASKS)
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(TIMED_OUT, id="Sandbox.Timedout"),
        pytest.param(UNKNOWN, id="Lambda.Unknown"),
        pytest.param(EXIT_ERROR, id="Runtime.ExitError"),
    ],
)
def test_runtime_that_times_out_or_crashes_once_gets_one_more_try(
    cloud: LocalCloud,
    deployed: Deployed,
    waits: WaitRecorder,
    jitter: JitterProbe,
    monkeypatch: pytest.MonkeyPatch,
    fault: RuntimeFault,
    state: str,
) -> None:
    # Given the state's function timing out (or crashing) once, then healthy
    logical = deployed.function_of[state]
    key = unique_key(f"runtime-heal-{state}-{fault.error_type}")
    with runtime_fails(monkeypatch, cloud, logical, fault, times=1) as failed:
        # When a photo is uploaded
        record = cloud.upload(key, jpeg(96, 64))
    # Then the second attempt runs and the upload is processed
    assert len(failed) == 1
    assert task_errors(record, state) == [fault.error_type]
    assert_processed(cloud, record)
    assert scheduled(record)[state] == 2
    assert_backoff(waits, jitter, deployed.retrier(state, fault.error_type), retries=1)


@pytest.mark.parametrize("state", TASKS)
@pytest.mark.parametrize("fault", RUNTIME_FAULTS)
def test_persistent_timeout_or_crash_fails_the_execution_with_the_runtime_error(
    cloud: LocalCloud,
    deployed: Deployed,
    waits: WaitRecorder,
    monkeypatch: pytest.MonkeyPatch,
    fault: RuntimeFault,
    state: str,
) -> None:
    # Given the state's function timing out (or crashing) every time
    logical = deployed.function_of[state]
    key = unique_key(f"runtime-down-{state}-{fault.error_type}")
    with runtime_fails(monkeypatch, cloud, logical, fault, times=None) as failed:
        # When a photo is uploaded
        record = cloud.upload(key, jpeg(96, 64))
    # Then the execution FAILS with the runtime's error name after the ASL's attempts
    attempts = deployed.max_attempts(state, fault.error_type)
    assert len(failed) == attempts
    assert record.status == "FAILED"
    assert record.error == fault.error_type
    assert json.loads(record.cause or "{}")["errorType"] == fault.error_type
    assert failure_origin(record) == (state, fault.error_type)
    assert scheduled(record)[state] == attempts
    assert len(waits.calls) == attempts - 1
    assert manifest_of(cloud, key) not in outputs(cloud, key)
