"""Execution history read back from a state machine's CloudWatch Logs log group.

Express workflows keep no history in Step Functions: GetExecutionHistory and
ListExecutions answer `StateMachineTypeNotSupported`, and DescribeExecution does not
serve their executions (unless a Map Run dispatched them). What they do have is the
state machine's log: at level `ALL` every history event is one log event whose message
is a JSON record (with `IncludeExecutionData`, inputs and outputs included):

    {"id": "3", "previous_event_id": "2", "event_timestamp": "1592335253133",
     "type": "TaskScheduled", "execution_arn": "arn:aws:states:…:express:…",
     "details": {"resource": "invoke", "resourceType": "lambda", "parameters": "…"}}

`details` is what GetExecutionHistory puts in the event's `<type>EventDetails`
member. This module turns such records back into GetExecutionHistory's events
(`events_from_log_records`), so `parse_visits`, `summarize` and `build_timeline` read
them unchanged, and into DescribeExecution responses and ListExecutions items.

`read_execution_history` and `list_executions_from_logs` take a CloudWatch Logs
client as a parameter and call FilterLogEvents only; everything else is pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from imgpipe.ops.errors import OpsError
from imgpipe.ops.history.values import FAILED, RUNNING, SUCCEEDED, details_member, event_details

STARTED = "ExecutionStarted"
ENDED_STATUS = {
    "ExecutionSucceeded": SUCCEEDED,
    "ExecutionFailed": FAILED,
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}
# CloudWatch Logs evaluates this server side; an emulator that cannot is corrected
# by the type check on each record.
LISTING_PATTERN = (
    "{ " + " || ".join(f'$.type = "{kind}"' for kind in (STARTED, *ENDED_STATUS)) + " }"
)


def log_group_of(state_machine: Mapping[str, Any]) -> str | None:
    """The log group a DescribeStateMachine response logs to, or None.

    The destination is a log group ARN, `arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*`;
    a log group name cannot contain `:`, so the name is the seventh field.
    """
    configuration = state_machine.get("loggingConfiguration")
    if not isinstance(configuration, Mapping):
        return None
    for destination in configuration.get("destinations") or ():
        group = (
            destination.get("cloudWatchLogsLogGroup") if isinstance(destination, Mapping) else None
        )
        arn = group.get("logGroupArn") if isinstance(group, Mapping) else None
        parts = str(arn or "").split(":")
        if len(parts) >= 7 and parts[2] == "logs" and parts[5] == "log-group" and parts[6]:
            return parts[6]
    return None


def quoted_term(text: str) -> str:
    """A filter pattern matching log events that contain `text` exactly.

    Terms with characters other than letters and digits (an ARN's `:`) must be in
    double quotes; a quote or backslash inside is escaped with a backslash.
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def moment_of(value: Any) -> datetime | None:
    """A record's `event_timestamp` as an aware UTC datetime.

    AWS writes epoch milliseconds as a string; numbers, ISO 8601 text and datetimes
    (what an emulator may hand over) are read too. None when it is none of these.
    """
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            return datetime.fromtimestamp(float(text) / 1000, UTC)
        except ValueError:
            pass
        try:
            return moment_of(datetime.fromisoformat(text))
        except ValueError:
            return None
    return None


def _number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _event(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """One record as a GetExecutionHistory event; None when it is not a history record."""
    number = _number(record.get("id"))
    kind = record.get("type")
    moment = moment_of(record.get("event_timestamp"))
    if number is None or not isinstance(kind, str) or not kind or moment is None:
        return None
    event: dict[str, Any] = {
        "id": number,
        "previousEventId": _number(record.get("previous_event_id")) or 0,
        "type": kind,
        "timestamp": moment,
    }
    details = record.get("details")
    if isinstance(details, Mapping) and details:
        event[details_member(kind)] = dict(details)
    return event


def events_from_log_records(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Log records of one execution as GetExecutionHistory events, oldest first.

    Log delivery is neither ordered nor exactly once: events are sorted by id and a
    record delivered twice counts once. Records that are not history events (no id,
    type or timestamp) are left out.
    """
    by_id: dict[int, dict[str, Any]] = {}
    for record in records:
        event = _event(record)
        if event is not None:
            by_id.setdefault(event["id"], event)
    return [by_id[number] for number in sorted(by_id)]


def state_machine_of(execution_arn: str) -> str:
    """The state machine ARN an execution ARN names (Standard `:execution:` or `:express:`)."""
    parts = execution_arn.split(":")
    return ":".join([*parts[:5], "stateMachine", parts[6]])


def _execution_prefixes(state_machine_arn: str) -> tuple[str, str]:
    """How the ARNs of this machine's executions begin (a version/alias suffix ignored)."""
    parts = state_machine_arn.split(":")
    base, name = ":".join(parts[:5]), parts[6]
    return f"{base}:express:{name}:", f"{base}:execution:{name}:"


def describe_from_events(execution_arn: str, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What DescribeExecution would have said, from an execution's history events.

    Status from the terminal event (RUNNING without one), input from
    `ExecutionStarted`, output from `ExecutionSucceeded`, error and cause from a
    failed, timed-out or aborted end; dates from those events' timestamps.
    """
    description: dict[str, Any] = {
        "executionArn": execution_arn,
        "stateMachineArn": state_machine_of(execution_arn),
        "name": execution_arn.split(":")[7],
        "status": RUNNING,
    }
    for event in events:
        kind = event.get("type")
        details = event_details(event)
        if kind == STARTED:
            description["startDate"] = event.get("timestamp")
            if details.get("input") is not None:
                description["input"] = details["input"]
        elif kind in ENDED_STATUS and "stopDate" not in description:
            description["status"] = ENDED_STATUS[str(kind)]
            description["stopDate"] = event.get("timestamp")
            for field in ("output", "error", "cause"):
                if details.get(field) is not None:
                    description[field] = details[field]
    if "startDate" not in description and events:
        # The start fell outside what was read: the earliest event is the best bound.
        description["startDate"] = events[0].get("timestamp")
    return description


def _records(
    logs_client: Any,
    log_group_name: str,
    pattern: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The JSON records of FilterLogEvents over the whole group, every page."""
    arguments: dict[str, Any] = {"logGroupName": log_group_name, "filterPattern": pattern}
    if start_ms is not None:
        arguments["startTime"] = start_ms
    if end_ms is not None:
        arguments["endTime"] = end_ms
    try:
        for page in logs_client.get_paginator("filter_log_events").paginate(**arguments):
            for log_event in page.get("events", []):
                try:
                    record = json.loads(log_event.get("message") or "")
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            msg = (
                f"log group {log_group_name} does not exist: the state machine logs its "
                "executions there, so there is nothing to read (was it deleted, or is "
                "this the wrong region?)"
            )
            raise OpsError(msg) from error
        raise


def read_execution_history(
    logs_client: Any, log_group_name: str, execution_arn: str, *, start_ms: int | None = None
) -> list[dict[str, Any]]:
    """An execution's history events from the log group, oldest first (`[]` if none).

    The filter pattern narrows the search to records containing the ARN; only
    records of exactly that execution are kept (a filter term also matches an
    execution whose ARN merely begins with this one's).
    """
    records = _records(logs_client, log_group_name, quoted_term(execution_arn), start_ms=start_ms)
    return events_from_log_records(r for r in records if r.get("execution_arn") == execution_arn)


def list_executions_from_logs(
    logs_client: Any,
    log_group_name: str,
    state_machine_arn: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[dict[str, Any]]:
    """The executions of a state machine started in the window, newest first.

    Each is a ListExecutions item (executionArn, stateMachineArn, name, status,
    startDate, stopDate once it ended) plus what the same records say of its input,
    output, error and cause, as DescribeExecution would. Only `ExecutionStarted` and
    terminal events are read; an execution that started before `start_ms` is not
    listed. `end_ms` bounds the start, not the end, so a late end still counts.
    """
    prefixes = _execution_prefixes(state_machine_arn)
    by_execution: dict[str, list[dict[str, Any]]] = {}
    for record in _records(logs_client, log_group_name, LISTING_PATTERN, start_ms=start_ms):
        arn = record.get("execution_arn")
        if not isinstance(arn, str) or not arn.startswith(prefixes):
            continue
        if record.get("type") == STARTED or record.get("type") in ENDED_STATUS:
            by_execution.setdefault(arn, []).append(record)
    latest = None if end_ms is None else datetime.fromtimestamp(end_ms / 1000, UTC)
    items: list[dict[str, Any]] = []
    for arn, records in by_execution.items():
        events = events_from_log_records(records)
        if not any(event["type"] == STARTED for event in events):
            continue
        item = describe_from_events(arn, events)
        if latest is not None and item["startDate"] > latest:
            continue
        items.append(item)
    items.sort(key=lambda item: (item["startDate"], item["executionArn"]), reverse=True)
    return items
