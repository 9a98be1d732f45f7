"""History events grouped into state visits: the model `trace` and the local report read.

A Task state's Lambda invocations are *attempts*: a `TaskFailed` followed by another
`TaskScheduled` in the same visit is a retry, and the gap between the two is the
backoff the Retrier waited. A visit whose last attempt failed but which still exited
was caught by a `Catch`; one that never exited is where the execution stopped.

The input is GetExecutionHistory's events (dicts with `id`, `type`, `timestamp` as an
aware datetime, `previousEventId` and the `<type>EventDetails` member); any reader
that produces events of that shape gets the same visits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from imgpipe.ops.history.causes import ErrorInfo
from imgpipe.ops.history.values import (
    FAILED,
    STOPPED_STATUSES,
    SUCCEEDED,
    clip,
    event_details,
    iso,
    lambda_payload,
    loads,
    rounded,
    seconds_between,
)

# Every task flavour Step Functions records: service integrations (`Task*`, which is
# what `arn:aws:states:::lambda:invoke` produces), the legacy direct Lambda ARN
# resource (`LambdaFunction*`) and activities (`Activity*`).
_SCHEDULED = frozenset({"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"})
_STARTED = frozenset({"TaskStarted", "LambdaFunctionStarted", "ActivityStarted"})
_SUCCEEDED = frozenset({"TaskSucceeded", "LambdaFunctionSucceeded", "ActivitySucceeded"})
_FAILED = frozenset(
    {
        "TaskFailed",
        "TaskStartFailed",
        "TaskSubmitFailed",
        "LambdaFunctionFailed",
        "LambdaFunctionScheduleFailed",
        "LambdaFunctionStartFailed",
        "ActivityFailed",
        "ActivityScheduleFailed",
    }
)
_TIMED_OUT = frozenset({"TaskTimedOut", "LambdaFunctionTimedOut", "ActivityTimedOut"})
EXECUTION_ENDED = frozenset(
    {"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"}
)


@dataclass(frozen=True)
class Attempt:
    """One invocation of a task's resource (a Lambda function here)."""

    number: int
    resource: str | None
    scheduled_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    result: str  # succeeded | failed | timed_out | running
    error: ErrorInfo | None = None
    # Seconds between the previous attempt's failure and this one being scheduled:
    # the Retrier's backoff.
    wait_before_s: float | None = None
    request: str | None = None
    response: str | None = None

    @property
    def duration_s(self) -> float | None:
        return seconds_between(self.scheduled_at, self.ended_at)

    @property
    def is_retry(self) -> bool:
        return self.number > 1

    def to_dict(self, limit: int | None) -> dict[str, Any]:
        return {
            "number": self.number,
            "resource": self.resource,
            "result": self.result,
            "scheduled_at": iso(self.scheduled_at),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration_s": rounded(self.duration_s),
            "wait_before_s": rounded(self.wait_before_s),
            "error": self.error.to_dict() if self.error else None,
            "request": clip(lambda_payload(self.request), limit),
            "response": clip(lambda_payload(self.response), limit),
        }


@dataclass(frozen=True)
class StateVisit:
    """One entry into a state, until it was left (or the execution stopped in it)."""

    name: str
    state_type: str  # Task, Choice, Pass, Fail, Succeed, Wait, Map, Parallel
    entered_at: datetime
    exited_at: datetime | None
    # succeeded | caught (failed, then a Catch moved on) | failed | aborted | running
    result: str
    attempts: tuple[Attempt, ...] = ()
    error: ErrorInfo | None = None
    input: str | None = None
    output: str | None = None
    # Step Functions cut the payload (it was over the API's data limit).
    input_truncated: bool = False
    output_truncated: bool = False
    ended_at: datetime | None = None

    @property
    def duration_s(self) -> float | None:
        return seconds_between(self.entered_at, self.exited_at or self.ended_at)

    @property
    def retries(self) -> int:
        return max(len(self.attempts) - 1, 0)

    def to_dict(self, limit: int | None) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.state_type,
            "result": self.result,
            "entered_at": iso(self.entered_at),
            "exited_at": iso(self.exited_at),
            "duration_s": rounded(self.duration_s),
            "retries": self.retries,
            "attempts": [attempt.to_dict(limit) for attempt in self.attempts],
            "error": self.error.to_dict() if self.error else None,
            "input": clip(self.input, limit),
            "output": clip(self.output, limit),
            "input_truncated_by_step_functions": self.input_truncated,
            "output_truncated_by_step_functions": self.output_truncated,
        }


@dataclass
class _Visit:
    """A visit while its events are still being read."""

    name: str
    state_type: str
    entered_at: datetime
    input: str | None
    input_truncated: bool
    attempts: list[Attempt] = field(default_factory=list)
    exited_at: datetime | None = None
    output: str | None = None
    output_truncated: bool = False
    aborted: bool = False
    evaluation_error: ErrorInfo | None = None

    def add(self, event: Mapping[str, Any]) -> None:
        kind = str(event["type"])
        details = event_details(event)
        at: datetime = event["timestamp"]
        current = self.attempts[-1] if self.attempts else None
        if kind in _SCHEDULED:
            self._schedule(at, details)
        elif kind in _STARTED and current is not None:
            self.attempts[-1] = replace(current, started_at=at)
        elif kind in _SUCCEEDED and current is not None:
            self.attempts[-1] = replace(
                current, ended_at=at, result="succeeded", response=details.get("output")
            )
        elif kind in _FAILED or kind in _TIMED_OUT:
            if current is None or current.ended_at is not None:
                # Schedule/submit failures arrive without a Scheduled event of their own.
                current = self._schedule(at, {})
            self.attempts[-1] = replace(
                current,
                ended_at=at,
                result="timed_out" if kind in _TIMED_OUT else "failed",
                error=ErrorInfo.parse(details.get("error"), details.get("cause")),
            )
        elif kind == "EvaluationFailed":
            self.evaluation_error = ErrorInfo.parse(details.get("error"), details.get("cause"))
        elif kind.endswith("StateAborted"):
            self.aborted = True

    def _schedule(self, at: datetime, details: Mapping[str, Any]) -> Attempt:
        previous = self.attempts[-1] if self.attempts else None
        wait = None
        if previous is not None and previous.result in ("failed", "timed_out"):
            wait = seconds_between(previous.ended_at, at)
        attempt = Attempt(
            number=len(self.attempts) + 1,
            resource=_resource_name(details),
            scheduled_at=at,
            started_at=None,
            ended_at=None,
            result="running",
            wait_before_s=wait,
            request=details.get("parameters") or details.get("input"),
        )
        self.attempts.append(attempt)
        return attempt

    def freeze(self, execution_status: str | None, execution_ended: datetime | None) -> StateVisit:
        attempts = tuple(self.attempts)
        last = attempts[-1] if attempts else None
        error = self.evaluation_error or (
            last.error if last is not None and last.result != "succeeded" else None
        )
        if self.exited_at is not None:
            result = "caught" if error is not None else "succeeded"
        elif self.aborted:
            result = "aborted"
        elif self.state_type == "Fail" or error is not None:
            result = "failed"
        elif execution_status == SUCCEEDED:
            result = "succeeded"
        elif execution_status in STOPPED_STATUSES:
            result = "failed" if execution_status == FAILED else "aborted"
        else:
            result = "running"
        return StateVisit(
            name=self.name,
            state_type=self.state_type,
            entered_at=self.entered_at,
            exited_at=self.exited_at,
            result=result,
            attempts=attempts,
            error=error,
            input=self.input,
            output=self.output,
            input_truncated=self.input_truncated,
            output_truncated=self.output_truncated,
            ended_at=self.exited_at or execution_ended,
        )


def _resource_name(details: Mapping[str, Any]) -> str | None:
    """The function a task invoked (`FunctionName` of lambda:invoke), else its resource."""
    parameters = loads(details.get("parameters"))
    if isinstance(parameters, Mapping) and isinstance(parameters.get("FunctionName"), str):
        return _short_function_name(parameters["FunctionName"])
    resource = details.get("resource")
    if not isinstance(resource, str):
        return None
    if resource.startswith("arn:aws:lambda:"):
        return _short_function_name(resource)
    resource_type = details.get("resourceType")
    return f"{resource_type}:{resource}" if resource_type else resource


def _short_function_name(name: str) -> str:
    # arn:aws:lambda:region:account:function:NAME[:qualifier] -> NAME[:qualifier]
    if name.startswith("arn:") and ":function:" in name:
        return name.split(":function:", 1)[1]
    return name


def _truncated(details: Mapping[str, Any], member: str) -> bool:
    data = details.get(member)
    return bool(isinstance(data, Mapping) and data.get("truncated"))


def parse_visits(
    events: Iterable[Mapping[str, Any]],
    *,
    execution_status: str | None = None,
    execution_ended: datetime | None = None,
) -> list[StateVisit]:
    """Group history events (any order, as long as all are there) into state visits."""
    ordered = sorted(events, key=lambda event: int(event["id"]))
    visits: list[_Visit] = []
    open_visits: list[_Visit] = []
    owner: dict[int, _Visit] = {}
    for event in ordered:
        kind = str(event["type"])
        details = event_details(event)
        if kind.endswith("StateEntered"):
            visit = _Visit(
                name=str(details.get("name", "?")),
                state_type=kind[: -len("StateEntered")],
                entered_at=event["timestamp"],
                input=details.get("input"),
                input_truncated=_truncated(details, "inputDetails"),
            )
            visits.append(visit)
            open_visits.append(visit)
            owner[int(event["id"])] = visit
            continue
        if kind.endswith("StateExited"):
            name = details.get("name")
            for visit in reversed(open_visits):
                if visit.name == name:
                    visit.exited_at = event["timestamp"]
                    visit.output = details.get("output")
                    visit.output_truncated = _truncated(details, "outputDetails")
                    open_visits.remove(visit)
                    owner[int(event["id"])] = visit
                    break
            continue
        if kind.startswith("Execution"):
            continue
        target = _owning_visit(event, details, owner, open_visits)
        if target is not None:
            owner[int(event["id"])] = target
            target.add(event)
    return [visit.freeze(execution_status, execution_ended) for visit in visits]


def _owning_visit(
    event: Mapping[str, Any],
    details: Mapping[str, Any],
    owner: Mapping[int, _Visit],
    open_visits: Sequence[_Visit],
) -> _Visit | None:
    # `previousEventId` chains an event to the one it follows, which keeps task events
    # with their own state even when branches of a Parallel/Map interleave; the
    # innermost open state is the fallback when the chain is missing.
    named = details.get("state")  # EvaluationFailed names the state it happened in
    if named:
        for visit in reversed(open_visits):
            if visit.name == named:
                return visit
    previous = owner.get(int(event.get("previousEventId") or 0))
    if previous is not None and previous.exited_at is None:
        return previous
    return open_visits[-1] if open_visits else None


def execution_bounds(
    events: Iterable[Mapping[str, Any]],
) -> tuple[datetime | None, datetime | None]:
    """When the execution started and ended, as its own events say (None when absent)."""
    started: datetime | None = None
    ended: datetime | None = None
    for event in events:
        kind = event.get("type")
        if kind == "ExecutionStarted":
            started = event["timestamp"]
        elif kind in EXECUTION_ENDED:
            ended = event["timestamp"]
    return started, ended
