"""Hand-written Step Functions histories, shaped like the GetExecutionHistory reference.

Shared by the tests of the history model (`imgpipe.ops.history`) and of what reads it
(the `trace` rendering, the local demo's report), none of which needs a cloud.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ARN = "arn:aws:states:eu-west-1:111122223333:execution:ImagePipeline-AbC123:run-1"
LAMBDA_CAUSE = json.dumps(
    {
        "errorMessage": "S3 PutObject failed transiently: SlowDown",
        "errorType": "TransientError",
        "requestId": "r-1",
        "stackTrace": [
            '  File "/var/task/app.py", line 33, in handler\n    result = render()\n',
            '  File "/opt/python/imgpipe/storage.py", line 143, in write\n'
            "    raise _translate(error) from error\n",
        ],
    }
)


class History:
    """Builds an event list the way GetExecutionHistory numbers and links it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, kind: str, seconds: float, **details: Any) -> History:
        event: dict[str, Any] = {
            "id": len(self.events) + 1,
            "previousEventId": len(self.events),
            "type": kind,
            "timestamp": T0 + timedelta(seconds=seconds),
        }
        if kind.endswith("StateEntered"):
            event["stateEnteredEventDetails"] = details
        elif kind.endswith("StateExited"):
            event["stateExitedEventDetails"] = details
        elif details:
            event[f"{kind[0].lower()}{kind[1:]}EventDetails"] = details
        self.events.append(event)
        return self


def lambda_params(name: str) -> str:
    """The `Parameters` of a `lambda:invoke` task calling function `name`."""
    return json.dumps(
        {"FunctionName": f"arn:aws:lambda:eu-west-1:111122223333:function:{name}", "Payload": {}}
    )


def execution_description(status: str, **extra: Any) -> dict[str, Any]:
    """A DescribeExecution response for an upload of s3://in/photos/cat.jpg."""
    event = {"detail": {"bucket": {"name": "in"}, "object": {"key": "photos/cat.jpg"}}}
    return {
        "executionArn": ARN,
        "name": "run-1",
        "status": status,
        "startDate": T0,
        "stopDate": T0 + timedelta(seconds=30),
        "input": json.dumps(event),
        **extra,
    }


def retried_then_caught() -> History:
    """Resize fails three times (TransientError), is caught, and PipelineFailed ends it."""
    history = History().add("ExecutionStarted", 0).add("TaskStateEntered", 0, name="Resize")
    for attempt, start in enumerate((0.1, 2.0, 6.0)):
        history.add("TaskScheduled", start, parameters=lambda_params("resize"))
        history.add("TaskStarted", start + 0.1)
        history.add("TaskFailed", start + 0.5, error="TransientError", cause=LAMBDA_CAUSE)
        assert attempt < 3
    return (
        history.add("TaskStateExited", 6.6, name="Resize", output="{}")
        .add("FailStateEntered", 6.6, name="PipelineFailed")
        .add("ExecutionFailed", 6.7, error="TransientError", cause=LAMBDA_CAUSE)
    )


def log_records(
    events: list[dict[str, Any]], execution_arn: str = ARN, *, shift: timedelta = timedelta(0)
) -> list[dict[str, Any]]:
    """The CloudWatch Logs records a state machine logging at level ALL with execution
    data writes for `events`, in AWS's documented shape (ids and epoch milliseconds
    as strings, the `<type>EventDetails` member as `details`); `shift` moves every
    timestamp (CloudWatch Logs refuses events older than 14 days)."""
    records = []
    for event in events:
        record: dict[str, Any] = {
            "id": str(event["id"]),
            "previous_event_id": str(event["previousEventId"]),
            "event_timestamp": str(round((event["timestamp"] + shift).timestamp() * 1000)),
            "type": event["type"],
            "execution_arn": execution_arn,
        }
        member = next((name for name in event if name.endswith("EventDetails")), None)
        if member is not None:
            record["details"] = event[member]
        records.append(record)
    return records


def processed(arn: str = ARN, key: str = "photos/cat.jpg") -> History:
    """Validate, Resize and Store succeed and the execution ends in Processed."""
    upload = {"detail": {"bucket": {"name": "in"}, "object": {"key": key, "size": 1234}}}
    output = {
        "status": "processed",
        "source": {"bucket": "in", "key": key},
        "manifest": {"bucket": "out", "key": f"{key}.manifest.json"},
    }
    history = History().add(
        "ExecutionStarted", 0, input=json.dumps(upload), roleArn="arn:aws:iam::1:role/r"
    )
    clock = 0.0
    for state in ("Validate", "Resize", "Store"):
        history.add("TaskStateEntered", clock, name=state, input=json.dumps(upload))
        history.add("TaskScheduled", clock + 0.01, parameters=lambda_params(state.lower()))
        history.add("TaskStarted", clock + 0.02)
        history.add("TaskSucceeded", clock + 0.2, output=json.dumps({"Payload": {"ok": True}}))
        history.add("TaskStateExited", clock + 0.21, name=state, output=json.dumps(upload))
        clock += 0.25
    return (
        history.add("SucceedStateEntered", clock, name="Processed", input=json.dumps(output))
        .add("SucceedStateExited", clock, name="Processed", output=json.dumps(output))
        .add("ExecutionSucceeded", clock + 0.01, output=json.dumps(output))
    )
