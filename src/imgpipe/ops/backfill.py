"""`imgpipe backfill s3://BUCKET/PREFIX`: render what is already in the input bucket.

The work is the backfill state machine's (template.yaml `BackfillStateMachine`, a
Distributed Map over ListObjectsV2 running the pipeline's own rendering path per
object); this module starts it, follows its Map Run and reads its outcome
(docs/backfill.md). Each object's outcome comes from the Map Run's ResultWriter files;
where the run wrote none (moto writes only the manifest), the summary has the Map
Run's succeeded/failed counts alone.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from imgpipe.ops.audit import parse_s3_prefix
from imgpipe.ops.errors import OpsError

Mode = Literal["missing", "all"]
POLL_S = 2.0
RUNNING = "RUNNING"
# What a child execution's output says, as counted in a backfill's summary.
PROCESSED, UP_TO_DATE, SKIPPED, REJECTED, FAILED = (
    "processed",
    "up to date",
    "skipped",
    "rejected",
    "failed",
)
OUTCOMES = (PROCESSED, UP_TO_DATE, SKIPPED, REJECTED, FAILED)


@dataclass(frozen=True)
class Target:
    """`s3://bucket/prefix`; the prefix may be empty (the whole bucket)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> Target:
        return cls(*parse_s3_prefix(uri))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def execution_name(target: Target, now: datetime) -> str:
    """`backfill-<UTC time>-<hash of the target>`: sortable, and within the 80
    characters and the alphabet execution names allow, whatever the prefix holds."""
    digest = hashlib.sha256(target.uri.encode("utf-8")).hexdigest()[:10]
    return f"backfill-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{digest}"


def has_objects(s3: Any, target: Target) -> bool:
    listed = s3.list_objects_v2(Bucket=target.bucket, Prefix=target.prefix, MaxKeys=1)
    return bool(listed.get("Contents"))


def start(sfn: Any, machine: str, target: Target, mode: Mode, now: datetime) -> str:
    response = sfn.start_execution(
        stateMachineArn=machine,
        name=execution_name(target, now),
        input=json.dumps({"bucket": target.bucket, "prefix": target.prefix, "mode": mode}),
    )
    return str(response["executionArn"])


# -- following a run ------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """A Map Run's item counts (DescribeMapRun) while it runs."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @classmethod
    def of(cls, counts: Mapping[str, Any]) -> Progress:
        return cls(
            total=int(counts.get("total", 0)),
            succeeded=int(counts.get("succeeded", 0)),
            failed=int(counts.get("failed", 0))
            + int(counts.get("timedOut", 0))
            + int(counts.get("aborted", 0)),
            running=int(counts.get("running", 0)),
            pending=int(counts.get("pending", 0)),
        )


def map_run_of(sfn: Any, execution_arn: str) -> str | None:
    """The Map Run the execution started, from its MapRunStarted history event (a
    backfill's own history is a dozen events; ListMapRuns would do too on AWS, but
    moto fails it while the execution is starting)."""
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        for event in page.get("events", []):
            started = event.get("mapRunStartedEventDetails") or {}
            if started.get("mapRunArn"):
                return str(started["mapRunArn"])
    return None


def follow(
    sfn: Any,
    execution_arn: str,
    *,
    report: Callable[[Progress], None],
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = POLL_S,
) -> tuple[dict[str, Any], str | None]:
    """Wait for the backfill execution to stop, reporting its Map Run's counts; returns
    its DescribeExecution and the Map Run ARN (None if the Map never started)."""
    map_run: str | None = None
    while True:
        description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        map_run = map_run or map_run_of(sfn, execution_arn)
        if map_run is not None:
            report(Progress.of(sfn.describe_map_run(mapRunArn=map_run).get("itemCounts", {})))
        if description["status"] != RUNNING:
            return description, map_run
        sleep(poll_s)


# -- outcomes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemOutcome:
    """One object's result: `processed`, `up to date`, `skipped`, `rejected` or
    `failed`, with the reason code (skip/rejection code, or the error)."""

    key: str | None
    outcome: str
    code: str | None = None

    @classmethod
    def of_child(cls, status: str, child_input: Any, output: Any, error: str | None) -> ItemOutcome:
        item = _json(child_input) or {}
        result = _json(output) or {}
        key = ((item.get("detail") or {}).get("object") or {}).get("key") or (
            result.get("source") or {}
        ).get("key")
        if status != "SUCCEEDED":
            return cls(key, FAILED, error or status)
        reason = (result.get("reason") or {}).get("code")
        verdict = result.get("status")
        if verdict == "processed":
            return cls(key, PROCESSED)
        if verdict == "rejected":
            return cls(key, REJECTED, reason)
        if verdict == "skipped":
            return cls(key, UP_TO_DATE if reason == "UpToDate" else SKIPPED, reason)
        return cls(key, FAILED, f"unexpected output status {verdict!r}")


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def results_from_writer(s3: Any, output: Any) -> list[ItemOutcome] | None:
    """The outcomes in the ResultWriter files the execution's output points at, or None
    when it names no result file (nothing written, or moto's manifest-only writer)."""
    details = (_json(output) or {}).get("ResultWriterDetails") or {}
    if not details.get("Bucket") or not details.get("Key"):
        return None
    manifest = _read_json(s3, details["Bucket"], details["Key"])
    files = [
        entry["Key"]
        for entries in ((manifest or {}).get("ResultFiles") or {}).values()
        for entry in entries or []
    ]
    if not files:
        return None
    outcomes: list[ItemOutcome] = []
    for key in files:
        for record in _read_json(s3, details["Bucket"], key) or []:
            outcomes.append(
                ItemOutcome.of_child(
                    str(record.get("Status", "")),
                    record.get("Input"),
                    record.get("Output"),
                    record.get("Error"),
                )
            )
    return outcomes


def _read_json(s3: Any, bucket: str, key: str) -> Any:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        msg = f"cannot read the backfill results s3://{bucket}/{key}: {error}"
        raise OpsError(msg) from error
    return _json(body.decode("utf-8"))


@dataclass
class Summary:
    """What a backfill did: outcome counts, reason codes per outcome, and the keys that
    failed."""

    execution_arn: str
    status: str
    map_run: str | None
    counts: Counter[str] = field(default_factory=Counter)
    reasons: dict[str, Counter[str]] = field(default_factory=dict)
    failed_keys: list[str] = field(default_factory=list)
    error: str | None = None
    # Where the outcomes were read: "result files", or "map run counts" when the run
    # wrote no result file (then only succeeded vs failed is known).
    source: str = "result files"

    @classmethod
    def of(
        cls,
        description: Mapping[str, Any],
        map_run: str | None,
        outcomes: Iterable[ItemOutcome],
        source: str,
    ) -> Summary:
        summary = cls(
            execution_arn=str(description["executionArn"]),
            status=str(description["status"]),
            map_run=map_run,
            error=description.get("error"),
            source=source,
        )
        for item in outcomes:
            summary.counts[item.outcome] += 1
            if item.code:
                summary.reasons.setdefault(item.outcome, Counter())[item.code] += 1
            if item.outcome == FAILED and item.key:
                summary.failed_keys.append(item.key)
        return summary

    @classmethod
    def counted(
        cls, description: Mapping[str, Any], map_run: str | None, progress: Progress
    ) -> Summary:
        summary = cls.of(description, map_run, [], "map run counts")
        summary.counts["succeeded"] = progress.succeeded
        summary.counts[FAILED] = progress.failed
        return summary

    @property
    def names(self) -> tuple[str, ...]:
        if self.source == "result files":
            return OUTCOMES
        return ("succeeded", FAILED)

    @property
    def ok(self) -> bool:
        return self.status == "SUCCEEDED" and not self.counts[FAILED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "status": self.status,
            "map_run_arn": self.map_run,
            "error": self.error,
            "outcomes": {name: self.counts[name] for name in self.names},
            "reasons": {k: dict(v) for k, v in self.reasons.items()},
            "failed_keys": sorted(self.failed_keys),
            "read_from": self.source,
        }


def summarize(sfn: Any, s3: Any, description: Mapping[str, Any], map_run: str | None) -> Summary:
    outcomes = results_from_writer(s3, description.get("output"))
    if outcomes is not None:
        return Summary.of(description, map_run, outcomes, "result files")
    counts = Progress()
    if map_run is not None:
        counts = Progress.of(sfn.describe_map_run(mapRunArn=map_run).get("itemCounts", {}))
    return Summary.counted(description, map_run, counts)


def iterate_counts(summary: Summary) -> Iterator[tuple[str, int, str]]:
    """(outcome, count, reasons) rows for a table."""
    for name in summary.names:
        reasons = summary.reasons.get(name, Counter())
        text = ", ".join(f"{code} {n}" for code, n in reasons.most_common())
        yield name, summary.counts[name], text


@dataclass
class Plan:
    """What a backfill would do (`--dry-run`), from `imgpipe audit`'s classification:
    objects it would render (by why), leave alone, or see rejected (by code)."""

    mode: Mode
    render: Counter[str] = field(default_factory=Counter)
    up_to_date: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, findings: Iterable[Any], mode: Mode) -> Plan:
        plan = cls(mode)
        for finding in findings:
            if finding.status == "rejected":
                plan.rejected[(finding.reason or {}).get("code") or "rejected"] += 1
            elif finding.needs_render or mode == "all":
                plan.render[finding.status] += 1
            else:
                plan.up_to_date += 1
        return plan

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "would_render": sum(self.render.values()),
            "would_render_by_status": dict(self.render),
            "up_to_date": self.up_to_date,
            "would_be_rejected": sum(self.rejected.values()),
            "rejected_by_code": dict(self.rejected),
        }


def plan_view(plan: Plan, target: Target) -> Any:
    from rich.table import Table

    table = Table(
        title=f"a backfill of {target.uri} (mode {plan.mode}) would: (dry run, nothing started)",
        title_justify="left",
    )
    table.add_column("action")
    table.add_column("objects", justify="right")
    table.add_column("why", overflow="fold")
    table.add_row(
        "render",
        str(sum(plan.render.values())),
        ", ".join(f"{status} {n}" for status, n in plan.render.most_common()),
        style="green",
    )
    table.add_row("leave alone", str(plan.up_to_date), "up to date", style="cyan")
    table.add_row(
        "reject",
        str(sum(plan.rejected.values())),
        ", ".join(f"{code} {n}" for code, n in plan.rejected.most_common()),
        style="yellow",
    )
    return table


def summary_view(summary: Summary, target: Target) -> Any:
    """The outcome table printed when a backfill ends."""
    from rich.table import Table

    table = Table(title=f"backfill of {target.uri}: {summary.status}", title_justify="left")
    table.add_column("outcome")
    table.add_column("objects", justify="right")
    table.add_column("reasons", overflow="fold")
    styles = {PROCESSED: "green", UP_TO_DATE: "cyan", SKIPPED: "cyan", REJECTED: "yellow"}
    for name, count, reasons in iterate_counts(summary):
        style = styles.get(name, "red" if count else "")
        table.add_row(name, str(count), reasons, style=style if count else "dim")
    return table
