"""Executions as rows (`imgpipe executions`) and as timelines (`imgpipe trace`).

Both start from a DescribeExecution response; a timeline adds the execution's full
history, read into state visits (`visits.parse_visits`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from imgpipe.ops.history.causes import ErrorInfo
from imgpipe.ops.history.targets import ObjectRef, outcome_of, source_of
from imgpipe.ops.history.values import (
    STOPPED_STATUSES,
    SUCCEEDED,
    clip,
    compact_json,
    iso,
    rounded,
    seconds_between,
)
from imgpipe.ops.history.verdicts import ExecutionVerdict, execution_error, verdict_of
from imgpipe.ops.history.visits import StateVisit, parse_visits


@dataclass(frozen=True)
class ExecutionSummary:
    """One execution as a row: which upload, how it ended, how long it took."""

    arn: str
    name: str
    status: str
    started_at: datetime
    stopped_at: datetime | None
    source: ObjectRef | None
    verdict: ExecutionVerdict
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
            "started_at": iso(self.started_at),
            "stopped_at": iso(self.stopped_at),
            "duration_s": rounded(self.duration_s),
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
