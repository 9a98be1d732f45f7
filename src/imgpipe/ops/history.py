"""Step Functions API responses turned into typed facts about one upload.

Pure: the input is what boto3 returns for DescribeExecution and GetExecutionHistory
(dicts, timestamps already parsed into aware datetimes); nothing here talks to AWS.

History events are grouped into *state visits*. A Task state's Lambda invocations
are *attempts*: a `TaskFailed` followed by another `TaskScheduled` in the same visit
is a retry, and the gap between the two is the backoff the Retrier waited. A visit
whose last attempt failed but which still exited was caught by a `Catch`; one that
never exited is where the execution stopped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from imgpipe.events import key_candidates
from imgpipe.ops.errors import OpsError

STATE_MACHINE_HINT = "imagepipeline"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
STOPPED_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})

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
_EXECUTION_ENDED = frozenset(
    {"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"}
)

_PY_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)')


# -- small values ------------------------------------------------------------------


def clip(text: str | None, limit: int | None) -> str | None:
    """`text` cut to `limit` characters with a note of how much was left out."""
    if text is None or limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit} chars)"


def compact_json(text: str | None) -> str | None:
    """Re-serialise JSON without spaces so more of it fits in a clipped line."""
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return text


def lambda_payload(text: str | None, omit: Collection[str] = ()) -> str | None:
    """The `Payload` of a `lambda:invoke` request or response, else the whole document.

    The integration wraps the function's own input and result in request/response
    metadata (FunctionName, StatusCode, SdkHttpMetadata...) that says nothing about
    the upload. `omit` drops top-level payload fields the caller shows elsewhere.
    """
    if text is None:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if isinstance(document, dict) and "Payload" in document:
        document = document["Payload"]
    if omit and isinstance(document, dict):
        document = {name: value for name, value in document.items() if name not in omit}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


def event_details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The `<type>EventDetails` member of a history event (`{}` when absent).

    The API names the member after the event type with a lower-case first letter
    (`TaskFailed` -> `taskFailedEventDetails`), except that every `<X>StateEntered`
    / `<X>StateExited` shares `stateEnteredEventDetails` / `stateExitedEventDetails`.
    """
    kind = str(event.get("type", ""))
    if kind.endswith("StateEntered"):
        member = "stateEnteredEventDetails"
    elif kind.endswith("StateExited"):
        member = "stateExitedEventDetails"
    else:
        member = f"{kind[:1].lower()}{kind[1:]}EventDetails"
    details = event.get(member)
    return details if isinstance(details, Mapping) else {}


# -- errors ------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorInfo:
    """An error as Step Functions recorded it, with the Lambda cause decoded.

    Lambda reports a function's exception as a JSON cause (`errorType`,
    `errorMessage`, `stackTrace`); anything else (States.*, Lambda service errors)
    keeps its cause as plain text.
    """

    error: str
    cause: str | None = None
    error_type: str | None = None
    message: str | None = None
    frame: str | None = None
    # The Lambda invocation's request id: the key to its log lines.
    request_id: str | None = None

    @classmethod
    def parse(cls, error: str | None, cause: str | None) -> ErrorInfo:
        name = error or "(no error name)"
        try:
            decoded = json.loads(cause) if cause else None
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict) or not (
            "errorMessage" in decoded or "errorType" in decoded
        ):
            return cls(error=name, cause=cause)
        message = decoded.get("errorMessage")
        error_type = decoded.get("errorType")
        request_id = decoded.get("requestId")
        return cls(
            error=name,
            cause=cause,
            error_type=str(error_type) if error_type is not None else None,
            message=str(message) if message is not None else None,
            frame=last_frame(decoded.get("stackTrace")),
            request_id=str(request_id) if request_id else None,
        )

    @property
    def detail(self) -> str:
        """The human part: the exception message, else the first line of the cause."""
        if self.message:
            return self.message
        if self.cause:
            return self.cause.strip().splitlines()[0] if self.cause.strip() else ""
        return ""

    @property
    def summary(self) -> str:
        return f"{self.error}: {self.detail}" if self.detail else self.error

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "error_type": self.error_type,
            "message": self.message,
            "frame": self.frame,
            "request_id": self.request_id,
            "cause": self.cause,
        }


def last_frame(stack: Any) -> str | None:
    """The innermost frame of a Lambda `stackTrace`, as `file:line in function: code`.

    Python runtimes send a list of traceback strings; older ones a list of
    `[file, line, function, code]`; other runtimes free-form strings.
    """
    if not isinstance(stack, list) or not stack:
        return None
    frame = stack[-1]
    if isinstance(frame, list) and len(frame) >= 3:
        where = f"{frame[0]}:{frame[1]} in {frame[2]}"
        return f"{where}: {frame[3]}" if len(frame) > 3 and frame[3] else where
    lines = [line.strip() for line in str(frame).splitlines() if line.strip()]
    if not lines:
        return None
    match = _PY_FRAME.search(lines[0])
    if match is None:
        return lines[0]
    where = f"{match['file']}:{match['line']} in {match['func']}"
    return f"{where}: {lines[1]}" if len(lines) > 1 else where


# -- what the execution was about --------------------------------------------------


@dataclass(frozen=True)
class ObjectRef:
    """An S3 object; for an execution's source, the key is spelled as its event spelled it."""

    bucket: str
    key: str
    version_id: str | None = None
    size: int | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Outcome:
    """The pipeline's own answer: the execution output (docs/contracts.md, section 3)."""

    status: str
    reason_code: str | None = None
    reason_message: str | None = None
    renditions: int = 0
    manifest: ObjectRef | None = None
    source: ObjectRef | None = None


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _ref(value: Any) -> ObjectRef | None:
    if isinstance(value, Mapping):
        bucket, key = value.get("bucket"), value.get("key")
        if isinstance(bucket, str) and isinstance(key, str):
            return ObjectRef(bucket, key)
    return None


def source_of(execution_input: str | None) -> ObjectRef | None:
    """Bucket and key of the S3 EventBridge event an execution was started with."""
    event = _loads(execution_input)
    if not isinstance(event, Mapping):
        return None
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return None
    bucket, obj = detail.get("bucket"), detail.get("object")
    if not isinstance(bucket, Mapping) or not isinstance(obj, Mapping):
        return None
    name, key = bucket.get("name"), obj.get("key")
    if not isinstance(name, str) or not isinstance(key, str):
        return None
    version, size = obj.get("version-id"), obj.get("size")
    return ObjectRef(
        name,
        key,
        version_id=version if isinstance(version, str) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


def outcome_of(execution_output: str | None) -> Outcome | None:
    output = _loads(execution_output)
    if not isinstance(output, Mapping) or not isinstance(output.get("status"), str):
        return None
    reason = output.get("reason")
    reason = reason if isinstance(reason, Mapping) else {}
    renditions = output.get("renditions")
    return Outcome(
        status=output["status"],
        reason_code=reason.get("code"),
        reason_message=reason.get("message"),
        renditions=len(renditions) if isinstance(renditions, list) else 0,
        manifest=_ref(output.get("manifest")),
        source=_ref(output.get("source")),
    )


def parse_s3_uri(uri: str) -> ObjectRef:
    """`s3://bucket/key` with the key kept exactly as typed (no decoding)."""
    if not uri.startswith("s3://"):
        msg = f"not an s3:// URI: {uri}"
        raise OpsError(msg)
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        msg = f"expected s3://bucket/key, got {uri}"
        raise OpsError(msg)
    return ObjectRef(bucket, key)


def is_execution_arn(text: str) -> bool:
    parts = text.split(":")
    return (
        len(parts) >= 8
        and parts[0] == "arn"
        and parts[2] == "states"
        and (parts[5] in ("execution", "express"))
    )


def is_upload_of(description: Mapping[str, Any], wanted: ObjectRef) -> bool:
    """Whether an execution (a DescribeExecution response) is for the object `wanted`.

    The event may spell the key URL-encoded (`+` for space, `%XX`), so the literal
    key and its decodings all count. A processed execution's output carries the key
    the pipeline actually resolved, which settles the ambiguity when it is there
    (e.g. `a+b.jpg` that really is `a+b.jpg`, not `a b.jpg`).
    """
    source = source_of(description.get("input"))
    if source is None or source.bucket != wanted.bucket:
        return False
    outcome = outcome_of(description.get("output"))
    if outcome is not None and outcome.status == "processed" and outcome.source is not None:
        return outcome.source.key == wanted.key
    return wanted.key in key_candidates(source.key)


def pick_state_machine(machines: Iterable[Mapping[str, Any]]) -> str:
    """The one state machine whose name contains `imagepipeline` (any case).

    SAM names it `ImagePipeline-<suffix>`; the local emulator
    `imgpipe-local-imagepipeline`.
    """
    found = [m for m in machines if STATE_MACHINE_HINT in str(m.get("name", "")).lower()]
    if not found:
        msg = (
            f"no state machine whose name contains '{STATE_MACHINE_HINT}'; "
            "pass --state-machine ARN or --stack NAME"
        )
        raise OpsError(msg)
    if len(found) > 1:
        names = ", ".join(sorted(str(m["name"]) for m in found))
        msg = (
            f"{len(found)} state machines match '{STATE_MACHINE_HINT}' ({names}); "
            "pass --state-machine ARN or --stack NAME"
        )
        raise OpsError(msg)
    return str(found[0]["stateMachineArn"])


# -- the timeline ------------------------------------------------------------------


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
            "scheduled_at": _iso(self.scheduled_at),
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "duration_s": _rounded(self.duration_s),
            "wait_before_s": _rounded(self.wait_before_s),
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
            "entered_at": _iso(self.entered_at),
            "exited_at": _iso(self.exited_at),
            "duration_s": _rounded(self.duration_s),
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
    parameters = _loads(details.get("parameters"))
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


# -- verdicts ----------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
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
        if event.get("type") in _EXECUTION_ENDED - {"ExecutionSucceeded"}:
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


def verdict_of(
    description: Mapping[str, Any],
    visits: Sequence[StateVisit] | None = None,
    events: Sequence[Mapping[str, Any]] = (),
) -> Verdict:
    status = str(description.get("status", "?"))
    if status == SUCCEEDED:
        outcome = outcome_of(description.get("output"))
        if outcome is None:
            return Verdict(status=SUCCEEDED)
        if outcome.status == "processed":
            return Verdict(
                status="processed",
                renditions=outcome.renditions,
                manifest=outcome.manifest.uri if outcome.manifest else None,
            )
        rejecting = None
        if outcome.status == "rejected" and visits:
            caught = [visit for visit in visits if visit.result == "caught"]
            rejecting = caught[-1].name if caught else None
        return Verdict(
            status=outcome.status,
            state=rejecting,
            code=outcome.reason_code,
            message=outcome.reason_message,
        )
    if status in STOPPED_STATUSES:
        error = execution_error(description, events)
        visit = failing_visit(visits) if visits else None
        return Verdict(
            status=status,
            state=visit.name if visit else None,
            code=error.error if error else None,
            message=error.detail if error else None,
            attempts=len(visit.attempts) if visit and visit.attempts else None,
            frame=error.frame if error else None,
        )
    if status == RUNNING and visits:
        return Verdict(status=RUNNING, state=visits[-1].name)
    return Verdict(status=status)


# -- executions --------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionSummary:
    """One execution as a row: which upload, how it ended, how long it took."""

    arn: str
    name: str
    status: str
    started_at: datetime
    stopped_at: datetime | None
    source: ObjectRef | None
    verdict: Verdict
    # The key the pipeline resolved the event's spelling to, when it says so and
    # it differs (a URL-encoded event key).
    resolved_key: str | None = None

    @property
    def duration_s(self) -> float | None:
        return seconds_between(self.started_at, self.stopped_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "name": self.name,
            "status": self.status,
            "source": {
                "bucket": self.source.bucket,
                "key": self.source.key,
                "version_id": self.source.version_id,
                "size": self.source.size,
            }
            if self.source
            else None,
            "resolved_key": self.resolved_key,
            "started_at": _iso(self.started_at),
            "stopped_at": _iso(self.stopped_at),
            "duration_s": _rounded(self.duration_s),
            "outcome": self.verdict.status if self.status == SUCCEEDED else None,
            "reason_code": self.verdict.code if self.status == SUCCEEDED else None,
            "failed_state": self.verdict.state if self.status in STOPPED_STATUSES else None,
            "error": self.verdict.code if self.status in STOPPED_STATUSES else None,
            "verdict": self.verdict.to_dict(),
        }


def summarize(
    description: Mapping[str, Any], events: Sequence[Mapping[str, Any]] | None = None
) -> ExecutionSummary:
    """A DescribeExecution response (plus the history, for stopped executions)."""
    visits = None if events is None else _visits(description, events)
    return _summary(description, visits, events or ())


def _visits(
    description: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> list[StateVisit]:
    return parse_visits(
        events,
        execution_status=description.get("status"),
        execution_ended=description.get("stopDate"),
    )


def _summary(
    description: Mapping[str, Any],
    visits: Sequence[StateVisit] | None,
    events: Sequence[Mapping[str, Any]],
) -> ExecutionSummary:
    arn = str(description["executionArn"])
    source = source_of(description.get("input"))
    outcome = outcome_of(description.get("output"))
    resolved = outcome.source.key if outcome and outcome.source else None
    return ExecutionSummary(
        arn=arn,
        name=str(description.get("name") or arn.rsplit(":", 1)[-1]),
        status=str(description.get("status", "?")),
        started_at=description["startDate"],
        stopped_at=description.get("stopDate"),
        source=source,
        verdict=verdict_of(description, visits, events),
        resolved_key=resolved if source and resolved != source.key else None,
    )


@dataclass(frozen=True)
class Timeline:
    """Everything `trace` shows about one execution."""

    summary: ExecutionSummary
    visits: tuple[StateVisit, ...]
    error: ErrorInfo | None
    input: str | None
    output: str | None

    def to_dict(self, limit: int | None) -> dict[str, Any]:
        return {
            **self.summary.to_dict(),
            "error_detail": self.error.to_dict() if self.error else None,
            "input": clip(self.input, limit),
            "output": clip(self.output, limit),
            "states": [visit.to_dict(limit) for visit in self.visits],
        }


def build_timeline(description: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> Timeline:
    """A DescribeExecution response and the execution's full history, as a timeline."""
    visits = _visits(description, events)
    return Timeline(
        summary=_summary(description, visits, events),
        visits=tuple(visits),
        error=execution_error(description, events),
        input=compact_json(description.get("input")),
        output=compact_json(description.get("output")),
    )
