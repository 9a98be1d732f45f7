"""The history model (`imgpipe.ops.history`) and the AWS adapter, with no cloud.

Hand-written event lists shaped like the GetExecutionHistory API reference (including
the legacy `LambdaFunction*` events and situations moto does not produce), and boto3
clients answered by botocore's Stubber. `tests/integration/test_ops.py` runs the
commands against real executions of the deployed ASL.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from history_events import (
    ARN,
    LAMBDA_CAUSE,
    T0,
    History,
    execution_description,
    lambda_params,
    retried_then_caught,
)
from imgpipe.ops import aws
from imgpipe.ops.errors import OpsError
from imgpipe.ops.history import (
    ErrorInfo,
    ObjectRef,
    build_timeline,
    clip,
    execution_bounds,
    failing_visit,
    is_execution_arn,
    is_upload_of,
    parse_s3_uri,
    parse_visits,
    pick_state_machine,
    rejecting_visit,
    summarize,
)

# -- the history parser on hand-written events -------------------------------------


def test_retries_are_attempts_with_their_wait_and_the_catch_is_seen() -> None:
    # Given three failed attempts of Resize, then a Catch to a Fail state
    visits = parse_visits(retried_then_caught().events, execution_status="FAILED")
    # Then Resize has 3 attempts, retries waited 1.4 s and 3.5 s, and it was caught
    resize, failed = visits
    assert (resize.name, resize.result, resize.retries) == ("Resize", "caught", 2)
    assert [a.number for a in resize.attempts] == [1, 2, 3]
    assert [a.wait_before_s for a in resize.attempts] == [None, 1.4, 3.5]
    assert [a.duration_s for a in resize.attempts] == [0.5, 0.5, 0.5]
    assert {a.resource for a in resize.attempts} == {"resize"}
    assert resize.error is not None
    assert resize.error.error == "TransientError"
    assert (failed.name, failed.state_type, failed.result) == ("PipelineFailed", "Fail", "failed")


def test_failure_verdict_blames_the_caught_state_and_decodes_the_lambda_cause() -> None:
    events = retried_then_caught().events
    timeline = build_timeline(
        execution_description("FAILED", error="TransientError", cause=LAMBDA_CAUSE), events
    )
    verdict = timeline.summary.verdict
    assert (verdict.status, verdict.state, verdict.code, verdict.attempts) == (
        "FAILED",
        "Resize",
        "TransientError",
        3,
    )
    assert verdict.message == "S3 PutObject failed transiently: SlowDown"
    assert timeline.error is not None
    assert timeline.error.request_id == "r-1"
    assert verdict.frame == (
        "/opt/python/imgpipe/storage.py:143 in write: raise _translate(error) from error"
    )
    assert verdict.text == (
        "FAILED in Resize: TransientError — S3 PutObject failed transiently: SlowDown"
        " (after 3 attempts)"
    )


def test_uncaught_task_failure_is_the_failing_state() -> None:
    # Given a task without Catch failing once: the execution stops inside the task
    events = (
        History()
        .add("ExecutionStarted", 0)
        .add("TaskStateEntered", 0, name="Store")
        .add("TaskScheduled", 0.1, parameters=lambda_params("store"))
        .add("TaskStarted", 0.2)
        .add("TaskFailed", 0.3, error="States.Timeout", cause="Task timed out after 30 s")
        .add("ExecutionFailed", 0.4, error="States.Timeout", cause="Task timed out after 30 s")
        .events
    )
    timeline = build_timeline(execution_description("FAILED"), events)
    assert timeline.visits[0].result == "failed"
    assert timeline.summary.verdict.state == "Store"
    assert timeline.summary.verdict.code == "States.Timeout"
    # A cause that is not Lambda's JSON is kept as text
    assert timeline.error == ErrorInfo("States.Timeout", "Task timed out after 30 s")
    assert timeline.summary.verdict.message == "Task timed out after 30 s"


def test_legacy_lambda_events_and_schedule_failures_are_attempts() -> None:
    events = (
        History()
        .add("TaskStateEntered", 0, name="Validate")
        .add(
            "LambdaFunctionScheduleFailed",
            0.1,
            error="Lambda.ServiceException",
            cause="Rate exceeded",
        )
        .add(
            "LambdaFunctionScheduled",
            1.1,
            resource="arn:aws:lambda:eu-west-1:111122223333:function:validate",
        )
        .add("LambdaFunctionStarted", 1.2)
        .add("LambdaFunctionSucceeded", 1.5, output='{"status":"valid"}')
        .add("TaskStateExited", 1.5, name="Validate", output="{}")
        .events
    )
    (visit,) = parse_visits(events)
    assert visit.result == "succeeded"
    assert visit.error is None
    assert [(a.number, a.result) for a in visit.attempts] == [(1, "failed"), (2, "succeeded")]
    assert visit.attempts[1].wait_before_s == 1.0
    assert visit.attempts[1].resource == "validate"
    assert visit.attempts[1].response == '{"status":"valid"}'


def test_rejection_verdict_and_running_execution() -> None:
    rejected_events = (
        History()
        .add("TaskStateEntered", 0, name="Validate")
        .add("TaskScheduled", 0.1, parameters=lambda_params("validate"))
        .add("TaskFailed", 0.2, error="UnsupportedFormat", cause='{"errorMessage":"not an image"}')
        .add("TaskStateExited", 0.2, name="Validate")
        .add("PassStateEntered", 0.2, name="Rejected")
        .add("PassStateExited", 0.3, name="Rejected")
        .events
    )
    output = {"status": "rejected", "reason": {"code": "UnsupportedFormat", "message": "no"}}
    rejected = build_timeline(
        execution_description("SUCCEEDED", output=json.dumps(output)), rejected_events
    )
    assert rejected.summary.verdict.text == "rejected by Validate: UnsupportedFormat — no"
    running_events = rejected_events[:2]
    running = build_timeline(execution_description("RUNNING", stopDate=None), running_events)
    assert running.visits[0].result == "running"
    assert running.summary.verdict.text == "RUNNING in Validate"


def test_evaluation_failure_is_attributed_to_its_state() -> None:
    events = (
        History()
        .add("PassStateEntered", 0, name="ReadRejection")
        .add(
            "EvaluationFailed", 0.1, error="States.Runtime", cause="bad path", state="ReadRejection"
        )
        .add("ExecutionFailed", 0.1, error="States.Runtime", cause="bad path")
        .events
    )
    timeline = build_timeline(execution_description("FAILED"), events)
    assert timeline.visits[0].result == "failed"
    assert timeline.summary.verdict.text == "FAILED in ReadRejection: States.Runtime — bad path"


def test_history_events_out_of_order_are_sorted_by_id() -> None:
    events = retried_then_caught().events
    assert parse_visits(list(reversed(events))) == parse_visits(events)


def test_clip_marks_what_it_cut() -> None:
    assert clip("abcdef", 10) == "abcdef"
    assert clip("abcdef", 4) == "abcd… (+2 chars)"
    assert clip("abcdef", None) == "abcdef"
    assert clip(None, 4) is None


def test_error_info_reads_old_style_stack_frames_and_plain_causes() -> None:
    old = json.dumps(
        {
            "errorType": "KeyError",
            "errorMessage": "'x'",
            "stackTrace": [["/var/task/a.py", 3, "f", "d['x']"]],
        }
    )
    info = ErrorInfo.parse("KeyError", old)
    assert (info.error_type, info.message, info.frame) == (
        "KeyError",
        "'x'",
        "/var/task/a.py:3 in f: d['x']",
    )
    plain = ErrorInfo.parse("Lambda.Unknown", "The cause could not be determined.\nmore")
    assert plain.message is None
    assert plain.summary == "Lambda.Unknown: The cause could not be determined."


def test_upload_matching_accepts_the_literal_key_and_its_decodings() -> None:
    def described(key: str, output: dict[str, Any] | None = None) -> dict[str, Any]:
        event = {"detail": {"bucket": {"name": "in"}, "object": {"key": key}}}
        return {"input": json.dumps(event), "output": json.dumps(output) if output else None}

    wanted = ObjectRef("in", "a/summer 2024+best.jpg")
    assert is_upload_of(described("a/summer 2024+best.jpg"), wanted)
    assert is_upload_of(described("a/summer+2024%2Bbest.jpg"), wanted)
    assert is_upload_of(described("a/summer%202024%2Bbest.jpg"), wanted)
    assert not is_upload_of(described("a/summer 2024+best.jpg"), ObjectRef("other", wanted.key))
    assert not is_upload_of(described("a/other.jpg"), wanted)
    # A processed execution's output names the key it resolved: that decides
    resolved = {"status": "processed", "source": {"bucket": "in", "key": "a/x+y.jpg"}}
    assert is_upload_of(described("a/x+y.jpg", resolved), ObjectRef("in", "a/x+y.jpg"))
    assert not is_upload_of(described("a/x+y.jpg", resolved), ObjectRef("in", "a/x y.jpg"))


def test_targets_are_parsed_strictly() -> None:
    assert parse_s3_uri("s3://b/k/with space+plus.jpg") == ObjectRef("b", "k/with space+plus.jpg")
    for bad in ("s3://bucket-only", "s3:///key", "https://b/k"):
        with pytest.raises(OpsError):
            parse_s3_uri(bad)
    assert is_execution_arn(ARN)
    assert not is_execution_arn("arn:aws:states:eu-west-1:1:stateMachine:ImagePipeline-AbC123")


def test_state_machine_is_picked_by_name_case_insensitively() -> None:
    sam = {"name": "ImagePipeline-AbC123", "stateMachineArn": "arn:sam"}
    local = {"name": "imgpipe-local-imagepipeline", "stateMachineArn": "arn:local"}
    unrelated = {"name": "Orders", "stateMachineArn": "arn:orders"}
    assert pick_state_machine([unrelated, sam]) == "arn:sam"
    assert pick_state_machine([local]) == "arn:local"
    with pytest.raises(OpsError, match="no state machine"):
        pick_state_machine([unrelated])
    with pytest.raises(OpsError, match="2 state machines match"):
        pick_state_machine([sam, local, unrelated])


def test_summary_of_a_non_s3_execution_has_no_source() -> None:
    summary = summarize(
        {**execution_description("SUCCEEDED"), "input": '{"hello": 1}', "output": "{}"}
    )
    assert summary.source is None
    assert summary.verdict.status == "SUCCEEDED"


def test_execution_bounds_come_from_the_executions_own_events() -> None:
    events = retried_then_caught().events
    started, ended = execution_bounds(list(reversed(events)))
    assert (started, ended) == (T0, T0 + timedelta(seconds=6.7))
    # A running execution has not ended; a history without its start event has no start
    assert execution_bounds(events[:3]) == (T0, None)
    assert execution_bounds(events[1:3]) == (None, None)


def test_rejecting_visit_is_the_last_caught_state() -> None:
    visits = parse_visits(retried_then_caught().events, execution_status="FAILED")
    assert rejecting_visit(visits) is visits[0]
    assert rejecting_visit(visits[1:]) is None
    assert failing_visit(visits) is visits[0]


def test_error_info_keeps_the_whole_lambda_stack_trace() -> None:
    info = ErrorInfo.parse("TransientError", LAMBDA_CAUSE)
    assert info.stack_trace == "".join(json.loads(LAMBDA_CAUSE)["stackTrace"])
    assert ErrorInfo.parse("States.Timeout", "Task timed out").stack_trace is None
    assert ErrorInfo.parse(None, None).error == ErrorInfo.UNNAMED


# -- the AWS adapter with a stubbed client -----------------------------------------


def test_history_reads_every_page() -> None:
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    first = History().add("ExecutionStarted", 0).add("PassStateEntered", 0, name="A").events
    second = History().add("ExecutionStarted", 0).add("PassStateEntered", 0, name="A")
    second.add("PassStateExited", 1, name="A").add("ExecutionSucceeded", 1, output="{}")
    request = {"executionArn": ARN, "includeExecutionData": True, "maxResults": 1000}
    with Stubber(sfn) as stub:
        stub.add_response("get_execution_history", {"events": first, "nextToken": "t"}, request)
        stub.add_response(
            "get_execution_history", {"events": second.events[2:]}, {**request, "nextToken": "t"}
        )
        events = aws.history(sfn, ARN)
        stub.assert_no_pending_responses()
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]


def test_recent_executions_stops_at_the_limit_across_pages() -> None:
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    machine = "arn:aws:states:eu-west-1:111122223333:stateMachine:ImagePipeline-AbC123"

    def item(n: int) -> dict[str, Any]:
        return {
            "executionArn": f"{ARN}{n}",
            "stateMachineArn": machine,
            "name": f"run-{n}",
            "status": "SUCCEEDED",
            "startDate": T0,
        }

    request = {"stateMachineArn": machine, "maxResults": 3}
    with Stubber(sfn) as stub:
        stub.add_response(
            "list_executions", {"executions": [item(1), item(2)], "nextToken": "t"}, request
        )
        stub.add_response(
            "list_executions",
            {"executions": [item(3), item(4)], "nextToken": "u"},
            {**request, "nextToken": "t"},
        )
        found = list(aws.recent_executions(sfn, machine, limit=3))
    assert [e["name"] for e in found] == ["run-1", "run-2", "run-3"]
