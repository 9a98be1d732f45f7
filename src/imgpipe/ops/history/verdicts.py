"""How an execution ended, in one line: the verdict `trace` and `executions` show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imgpipe.ops.history.causes import ErrorInfo
from imgpipe.ops.history.targets import outcome_of
from imgpipe.ops.history.values import RUNNING, STOPPED_STATUSES, SUCCEEDED, event_details
from imgpipe.ops.history.visits import EXECUTION_ENDED, StateVisit


@dataclass(frozen=True)
class ExecutionVerdict:
    """What happened to the upload, in one line."""

    status: str  # processed | rejected | skipped | deleted | FAILED | TIMED_OUT | ...
    state: str | None = None
    code: str | None = None
    message: str | None = None
    renditions: int | None = None
    manifest: str | None = None
    attempts: int | None = None
    frame: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("processed", "skipped", "deleted")

    @property
    def text(self) -> str:
        if self.status == "processed":
            manifest = f", manifest {self.manifest}" if self.manifest else ""
            return f"processed: {self.renditions} renditions{manifest}"
        if self.status in ("rejected", "skipped"):
            where = f" by {self.state}" if self.state and self.status == "rejected" else ""
            message = f" — {self.message}" if self.message else ""
            return f"{self.status}{where}: {self.code}{message}"
        if self.status in STOPPED_STATUSES:
            where = f" in {self.state}" if self.state else ""
            message = f" — {self.message}" if self.message else ""
            tries = ""
            if self.attempts and self.attempts > 1:
                tries = f" (after {self.attempts} attempts)"
            return f"{self.status}{where}: {self.code}{message}{tries}"
        if self.status == RUNNING:
            return f"RUNNING in {self.state}" if self.state else "RUNNING"
        if self.status == "deleted":
            return "deleted: renditions and manifest removed"
        return f"{self.status} ({self.code or 'no pipeline status in the output'})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "state": self.state,
            "code": self.code,
            "message": self.message,
            "renditions": self.renditions,
            "manifest": self.manifest,
            "attempts": self.attempts,
            "text": self.text,
        }


def execution_error(
    description: Mapping[str, Any], events: Sequence[Mapping[str, Any]] = ()
) -> ErrorInfo | None:
    """The error an execution stopped with (DescribeExecution, else its last event)."""
    if description.get("error") or description.get("cause"):
        return ErrorInfo.parse(description.get("error"), description.get("cause"))
    for event in reversed(events):
        if event.get("type") in EXECUTION_ENDED - {"ExecutionSucceeded"}:
            details = event_details(event)
            if details.get("error") or details.get("cause"):
                return ErrorInfo.parse(details.get("error"), details.get("cause"))
    return None


def failing_visit(visits: Sequence[StateVisit]) -> StateVisit | None:
    """The state an execution broke in.

    With the pipeline's `Catch` -> `PipelineFailed` the Fail state is only the
    messenger: the state to blame is the one whose error was caught and routed there.
    """
    if not visits:
        return None
    last = visits[-1]
    if last.state_type != "Fail":
        return last
    for visit in reversed(visits[:-1]):
        if visit.result == "caught":
            return visit
        if visit.state_type in ("Task", "Map", "Parallel") or visit.error is not None:
            break
    return last


def rejecting_visit(visits: Sequence[StateVisit]) -> StateVisit | None:
    """The state whose `Catch` turned an error into the pipeline's answer (the last caught).

    A rejection is an error a task raised and the pipeline caught (`ImageRejected`),
    so the state to name is the last one that caught something.
    """
    caught = [visit for visit in visits if visit.result == "caught"]
    return caught[-1] if caught else None


def verdict_of(
    description: Mapping[str, Any],
    visits: Sequence[StateVisit] | None = None,
    events: Sequence[Mapping[str, Any]] = (),
) -> ExecutionVerdict:
    status = str(description.get("status", "?"))
    if status == SUCCEEDED:
        outcome = outcome_of(description.get("output"))
        if outcome is None:
            return ExecutionVerdict(status=SUCCEEDED)
        if outcome.status == "processed":
            return ExecutionVerdict(
                status="processed",
                renditions=outcome.renditions,
                manifest=outcome.manifest.uri if outcome.manifest else None,
            )
        rejecting = None
        if outcome.status == "rejected" and visits:
            caught = rejecting_visit(visits)
            rejecting = caught.name if caught else None
        return ExecutionVerdict(
            status=outcome.status,
            state=rejecting,
            code=outcome.reason_code,
            message=outcome.reason_message,
        )
    if status in STOPPED_STATUSES:
        error = execution_error(description, events)
        visit = failing_visit(visits) if visits else None
        return ExecutionVerdict(
            status=status,
            state=visit.name if visit else None,
            code=error.error if error else None,
            message=error.detail if error else None,
            attempts=len(visit.attempts) if visit and visit.attempts else None,
            frame=error.frame if error else None,
        )
    if status == RUNNING and visits:
        return ExecutionVerdict(status=RUNNING, state=visits[-1].name)
    return ExecutionVerdict(status=status)
