"""Static checks of statemachine/pipeline.asl.json against the code it calls."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path
from typing import Any

from imgpipe.errors import REJECTION_ERRORS, SKIP_ERRORS

ASL = json.loads(
    (Path(__file__).resolve().parents[2] / "statemachine/pipeline.asl.json").read_text()
)
STATES: dict[str, Any] = ASL["States"]
PUT_EVENTS = "arn:aws:states:::events:putEvents"
# The Lambda tasks; the terminal states that announce a change are putEvents tasks.
TASKS = {
    name: state
    for name, state in STATES.items()
    if state["Type"] == "Task" and state["Resource"] != PUT_EVENTS
}
ANNOUNCEMENTS = {
    "Processed": "Image Processed",
    "Rejected": "Image Rejected",
    "Forgotten": "Image Deleted",
}


def test_rejection_catches_match_the_domain_errors() -> None:
    # Every task that can meet a bad image routes exactly the ImageRejected classes.
    for name in ("Validate", "Resize"):
        catches = TASKS[name]["Catch"]
        assert set(catches[0]["ErrorEquals"]) == set(REJECTION_ERRORS), name
        assert catches[0]["Next"] == "ReadRejection"
        assert catches[-1] == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.error",
            "Next": "PipelineFailed",
        }


def test_skip_catches_match_the_domain_skips() -> None:
    # Every task ends a duplicate, a replay or a lost race in Skipped, never in a failure
    for name in ("Validate", "Resize", "Store"):
        skips = next(c for c in TASKS[name]["Catch"] if c["Next"] == "ReadSkip")
        assert set(skips["ErrorEquals"]) == set(SKIP_ERRORS), name
    assert {"ObjectGone", "Superseded", "Duplicate", "ForeignBucket"} <= set(SKIP_ERRORS)


def test_the_processed_path_enters_at_most_five_states() -> None:
    # Transitions are most of the Standard workflow bill (docs/performance.md)
    path, name = [], ASL["StartAt"]
    while name is not None:
        path.append(name)
        state = ASL["States"][name]
        name = state.get("Default") if state["Type"] == "Choice" else state.get("Next")
    assert path == ["WhatHappened", "Validate", "Resize", "Store", "Processed"]


def _retrier(state: dict[str, Any], error: str) -> dict[str, Any]:
    return next(r for r in state["Retry"] if error in r["ErrorEquals"])


def _budget(retrier: dict[str, Any]) -> float:
    """The longest a retrier can wait in all (before full jitter shortens it)."""
    interval, cap = retrier["IntervalSeconds"], retrier.get("MaxDelaySeconds", 1e9)
    rate = retrier["BackoffRate"]
    return sum(min(interval * rate**n, cap) for n in range(retrier["MaxAttempts"]))


def test_every_task_retries_transient_faults_with_jittered_backoff() -> None:
    for name, state in TASKS.items():
        for error in ("TransientError", "Lambda.TooManyRequestsException", "KeyBusy"):
            retrier = _retrier(state, error)
            assert retrier["BackoffRate"] > 1, name
            assert retrier["JitterStrategy"] == "FULL", name
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        assert not retried & set(REJECTION_ERRORS), f"{name} retries rejections"
        assert "States.ALL" not in retried, f"{name} retries everything"


def test_lambda_throttling_is_ridden_out_for_minutes() -> None:
    # A burst drains through resize's reserved concurrency: seconds of backoff would
    # fail executions that only had to wait
    for name, state in TASKS.items():
        throttled = _retrier(state, "Lambda.TooManyRequestsException")
        assert {
            "Lambda.ClientExecutionTimeoutException",
            "Lambda.ServiceException",
        } <= set(throttled["ErrorEquals"]), name
        assert _budget(throttled) >= 300, name


def test_a_busy_key_is_waited_for_longer_than_any_lock_can_be_held() -> None:
    # A holder that died keeps the lock until its Lambda deadline (the task timeout
    # at most) plus the claims table's margin
    for name, state in TASKS.items():
        assert _budget(_retrier(state, "KeyBusy")) > 2 * state["TimeoutSeconds"] + 10, name


def test_nothing_can_hang() -> None:
    # Every task gives up on a lost invocation, and so does the execution as a whole
    for name, state in TASKS.items():
        assert isinstance(state["TimeoutSeconds"], int), name
        assert "States.Timeout" in _retrier(state, "Sandbox.Timedout")["ErrorEquals"], name
    assert 0 < ASL["TimeoutSeconds"] <= 3600
    assert ASL["TimeoutSeconds"] > max(s["TimeoutSeconds"] for s in TASKS.values())
    for name in ANNOUNCEMENTS:
        assert isinstance(STATES[name]["TimeoutSeconds"], int), name


def test_each_real_change_ends_in_one_event_on_the_configured_bus() -> None:
    # Processed, Rejected and Forgotten keep their names and end the execution; each
    # publishes exactly one entry, and keeps the execution output it had as a Succeed
    # or Pass state (ResultPath null, or Rejected's shape rebuilt from its variable)
    putters = {n for n, s in STATES.items() if s.get("Resource") == PUT_EVENTS}
    assert putters == set(ANNOUNCEMENTS)
    for name, detail_type in ANNOUNCEMENTS.items():
        state = STATES[name]
        assert state["End"] is True, name
        (entry,) = state["Parameters"]["Entries"]
        assert entry["EventBusName"] == "${EventBusName}", name
        assert entry["Source"] == "${EventSource}", name
        assert entry["DetailType"] == detail_type, name
    assert STATES["Processed"]["ResultPath"] is None
    assert (STATES["Forgotten"]["ResultPath"], STATES["Forgotten"]["OutputPath"]) == (
        None,
        "$.forget",
    )
    assert STATES["Rejected"]["ResultSelector"]["status"] == "rejected"
    # Skipped deletions and skips announce nothing
    assert STATES["Skipped"]["Type"] == "Pass"
    assert STATES["NothingForgotten"]["Type"] == "Succeed"


def test_a_lost_event_is_retried_then_fails_the_execution() -> None:
    for name in ANNOUNCEMENTS:
        state = STATES[name]
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        assert {"EventBridge.AmazonEventBridgeException", "EventBridge.FailedEntry"} <= retried
        assert "States.ALL" not in retried, name
        assert all(r["JitterStrategy"] == "FULL" and r["BackoffRate"] > 1 for r in state["Retry"])
        assert state["Catch"][-1]["ErrorEquals"] == ["States.ALL"], name
        assert state["Catch"][-1]["Next"] == "PipelineFailed", name


def test_functions_are_only_referenced_through_substitutions() -> None:
    placeholders = set(re.findall(r"\$\{(\w+)\}", json.dumps(ASL)))
    assert placeholders == {
        "ValidateFunctionArn",
        "ResizeFunctionArn",
        "StoreFunctionArn",
        "ForgetFunctionArn",
        "EventBusName",
        "EventSource",
    }


def test_pipeline_failures_end_in_a_named_fail_state() -> None:
    failed = ASL["States"]["PipelineFailed"]
    assert failed["Type"] == "Fail"
    assert (failed["ErrorPath"], failed["CausePath"]) == ("$.error.Error", "$.error.Cause")


def _reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state: dict[str, Any] = ASL["States"][name]
        nxt = [state.get("Next"), state.get("Default")]
        nxt += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
        todo += [n for n in nxt if n]
    return seen


def test_every_state_is_reachable() -> None:
    assert _reachable(ASL["StartAt"]) == set(ASL["States"])


# ---------------------------------------------------------------- the backfill machine

ROOT = Path(__file__).resolve().parents[2]
BACKFILL = json.loads((ROOT / "statemachine/backfill.asl.json").read_text())


def test_backfill_definition_is_generated_from_the_pipeline() -> None:
    # A change to pipeline.asl.json must reach the backfill's item processor: `make asl`
    generator = runpy.run_path(str(ROOT / "statemachine/backfill.py"))
    assert (ROOT / "statemachine/backfill.asl.json").read_text() == generator["render"]()


def test_backfill_items_run_the_pipelines_rendering_path_state_for_state() -> None:
    # Given: the Distributed Map; Then: its processor is Validate -> Resize -> Store with
    # the pipeline's own retries, catches and end states, and nothing of the delete path
    (the_map,) = [s for s in BACKFILL["States"].values() if s["Type"] == "Map"]
    processor = the_map["ItemProcessor"]
    assert processor["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert processor["StartAt"] == "Validate"
    for name, state in processor["States"].items():
        assert state == ASL["States"][name], name
    assert not {"WhatHappened", "Forget", "IsForgotten"} & set(processor["States"])
    reachable, todo = set(), ["Validate"]
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        reachable.add(name)
        state = processor["States"][name]
        todo += [state[k] for k in ("Next", "Default") if k in state]
        todo += [c["Next"] for c in state.get("Catch", []) + state.get("Choices", [])]
    assert reachable == set(processor["States"])


def test_backfill_items_are_s3_shaped_events_naming_the_listed_key() -> None:
    # The item is what validate parses: detail-type, bucket and key where S3 puts them,
    # source imgpipe.backfill and the mode; the reader is ListObjectsV2 over the prefix
    (the_map,) = [s for s in BACKFILL["States"].values() if s["Type"] == "Map"]
    assert the_map["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "Parameters": {"Bucket.$": "$.bucket", "Prefix.$": "$.prefix"},
    }
    item = the_map["ItemSelector"]
    assert item["source"] == "imgpipe.backfill"
    assert item["detail-type"] == "Object Created"
    assert item["detail"]["bucket"] == {"name.$": "$.bucket"}
    assert item["detail"]["object"] == {"key.$": "$$.Map.Item.Value.Key"}
    assert item["detail"]["mode.$"] == "$.mode"
    assert the_map["ResultWriter"]["Resource"] == "arn:aws:states:::s3:putObject"
    assert the_map["MaxConcurrencyPath"] == "$.max_concurrency"
    assert the_map["ToleratedFailurePercentagePath"] == "$.tolerated_failure_percentage"
