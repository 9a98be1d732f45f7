"""Static checks of statemachine/pipeline.asl.json against the code it calls."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from imgpipe.errors import REJECTION_ERRORS

ASL = json.loads(
    (Path(__file__).resolve().parents[2] / "statemachine/pipeline.asl.json").read_text()
)
TASKS = {name: state for name, state in ASL["States"].items() if state["Type"] == "Task"}


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


def test_every_task_retries_transient_faults_with_jittered_backoff() -> None:
    for name, state in TASKS.items():
        first = state["Retry"][0]
        assert "TransientError" in first["ErrorEquals"], name
        assert "Lambda.TooManyRequestsException" in first["ErrorEquals"], name
        assert first["BackoffRate"] > 1, name
        assert first["JitterStrategy"] == "FULL", name
        assert first["MaxDelaySeconds"] <= 60
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        assert not retried & set(REJECTION_ERRORS), f"{name} retries rejections"
        assert "States.ALL" not in retried, f"{name} retries everything"


def test_functions_are_only_referenced_through_substitutions() -> None:
    placeholders = set(re.findall(r"\$\{(\w+)\}", json.dumps(ASL)))
    assert placeholders == {
        "ValidateFunctionArn",
        "ResizeFunctionArn",
        "StoreFunctionArn",
        "ForgetFunctionArn",
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
