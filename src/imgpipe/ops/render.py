"""Rich views of executions and timelines.

Everything that comes from AWS (keys, payloads, error messages) is put into `Text`
objects rather than markup strings, so a `[` in a key or a payload is shown as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from imgpipe.ops.history import (
    STOPPED_STATUSES,
    SUCCEEDED,
    Attempt,
    ErrorInfo,
    ExecutionSummary,
    ExecutionVerdict,
    StateVisit,
    Timeline,
    clip,
    duration,
    lambda_payload,
)

DEFAULT_CLIP = 300
# The correlation fields the ASL adds to every task payload: the header already shows
# the execution and the tree the state, and they would eat the clipped line.
CORRELATION_FIELDS = ("execution", "state")
FULL_HINT = "--full shows everything"

_STATUS_STYLE = {
    "SUCCEEDED": "green",
    "RUNNING": "blue",
    "FAILED": "bold red",
    "TIMED_OUT": "bold red",
    "ABORTED": "red",
    "PENDING_REDRIVE": "magenta",
}
_VERDICT_STYLE = {
    "processed": "bold green",
    "rejected": "bold yellow",
    "skipped": "bold cyan",
    "deleted": "bold cyan",
    "RUNNING": "bold blue",
}
_RESULT_MARK = {
    "succeeded": ("✓", "green"),
    "caught": ("↪", "yellow"),
    "failed": ("✗", "bold red"),
    "timed_out": ("✗", "bold red"),
    "aborted": ("■", "red"),
    "running": ("…", "blue"),
}


def timestamp(moment: datetime | None, *, millis: bool = True) -> str:
    if moment is None:
        return "—"
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return (text[:-3] if millis else text[:-7]) + "Z"


def verdict_style(verdict: ExecutionVerdict) -> str:
    if verdict.status in STOPPED_STATUSES:
        return "bold red"
    return _VERDICT_STYLE.get(verdict.status, "bold")


def outcome_cell(summary: ExecutionSummary) -> Text:
    """The pipeline's answer for a row: outcome + reason, or failing state + error."""
    verdict = summary.verdict
    if summary.status == SUCCEEDED and verdict.status == "processed":
        return Text(f"processed · {verdict.renditions} renditions", style="green")
    if summary.status == SUCCEEDED and verdict.code:
        return Text(f"{verdict.status} · {verdict.code}", style=verdict_style(verdict))
    if summary.status in STOPPED_STATUSES:
        where = f"{verdict.state}: " if verdict.state else ""
        return Text(f"{where}{verdict.code or summary.status}", style="red")
    return Text(verdict.status if summary.status == SUCCEEDED else "—", style="dim")


def executions_table(summaries: Sequence[ExecutionSummary], title: str) -> Table:
    # The source key is the longest and the most useful cell: it gets the spare width.
    table = Table(title=title, title_justify="left", expand=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("source / execution", overflow="fold", ratio=1)
    table.add_column("status", no_wrap=True)
    table.add_column("outcome / failure", overflow="fold", min_width=24)
    table.add_column("duration", justify="right", no_wrap=True)
    for summary in summaries:
        source = Text(summary.source.uri if summary.source else "(not an S3 event)")
        source.append(f"\n{summary.name}", style="dim")
        table.add_row(
            timestamp(summary.started_at, millis=False),
            source,
            Text(summary.status, style=_STATUS_STYLE.get(summary.status, "")),
            outcome_cell(summary),
            duration(summary.duration_s),
        )
    return table


def _field(label: str, value: RenderableType) -> Table:
    """`label  value` with the value folded under itself, not under the label."""
    row = Table.grid(padding=(0, 1))
    row.add_column(style="dim", no_wrap=True)
    row.add_column(overflow="fold")
    row.add_row(label, value)
    return row


class _Folded:
    """Text cut into lines at the available width, ignoring word boundaries.

    Payloads are compact JSON: wrapping them at the odd space (`"Object Created"`)
    leaves ragged stubs, so they are folded by characters instead.
    """

    def __init__(self, text: Text) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width, 1)
        yield self.text.divide(range(width, len(self.text), width))


def _payload(label: str, text: str | None, limit: int | None, truncated: bool = False) -> Table:
    value = Text(clip(text, limit) or "")
    if truncated:
        value.append("  (cut by Step Functions)", style="dim italic")
    return _field(label, _Folded(value))


def _error_lines(node: Tree, error: ErrorInfo, limit: int | None, *, frame: bool) -> None:
    if error.error_type and error.error_type != error.error:
        node.add(_field("errorType", Text(error.error_type, style="red")))
    if frame and error.frame:
        node.add(_field("at", Text(error.frame, overflow="fold")))
    if limit is None and error.request_id:
        node.add(_field("request id", Text(error.request_id)))
    if error.message is None and error.cause:
        node.add(_payload("cause", error.cause, limit))
    elif limit is None and error.cause:
        node.add(_payload("cause", error.cause, None))


def _attempt_node(parent: Tree, attempt: Attempt, limit: int | None, *, frame: bool) -> None:
    mark, style = _RESULT_MARK.get(attempt.result, ("?", ""))
    label = Text()
    if attempt.is_retry:
        label.append(f"retry after {duration(attempt.wait_before_s)} → ", style="yellow")
    label.append(f"attempt {attempt.number}", style="bold")
    if attempt.resource:
        label.append(f"  {attempt.resource}", style="dim")
    label.append(f"  {duration(attempt.duration_s)}  ")
    label.append(f"{mark} {attempt.result.replace('_', ' ')}", style=style)
    if attempt.error is not None:
        label.append("  ")
        label.append(attempt.error.summary, style="red")
    node = parent.add(label)
    if attempt.error is not None:
        _error_lines(node, attempt.error, limit, frame=frame)


def _visit_node(
    tree: Tree, visit: StateVisit, limit: int | None, execution_error: ErrorInfo | None
) -> None:
    mark, style = _RESULT_MARK.get(visit.result, ("?", ""))
    label = Text.assemble(
        (f"{mark} ", style),
        (visit.name, "bold"),
        (f"  {visit.state_type}", "dim"),
        f"  {duration(visit.duration_s)}",
    )
    if visit.retries:
        label.append(f"  {len(visit.attempts)} attempts", style="yellow")
    error = visit.error
    if visit.state_type == "Fail" and error is None:
        error = execution_error
    if visit.result == "caught" and error is not None:
        label.append(f"  caught {error.error}", style="yellow")
    elif visit.result in ("failed", "aborted") and error is not None:
        label.append(f"  {error.summary}", style="red")
    node = tree.add(label)
    previous_frame = None
    for attempt in visit.attempts:
        frame = attempt.error.frame if attempt.error else None
        # Retries of one fault fail at the same line; say where once, not five times.
        _attempt_node(node, attempt, limit, frame=limit is None or frame != previous_frame)
        previous_frame = frame
    if visit.attempts:
        last = visit.attempts[-1]
        omit = CORRELATION_FIELDS if limit is not None else ()
        node.add(_payload("in ", lambda_payload(last.request, omit), limit))
        if last.response is not None:
            node.add(_payload("out", lambda_payload(last.response), limit))
    if limit is None:
        if visit.input is not None:
            node.add(_payload("state input ", visit.input, None, visit.input_truncated))
        if visit.output is not None:
            node.add(_payload("state output", visit.output, None, visit.output_truncated))


def verdict_text(verdict: ExecutionVerdict) -> Text:
    return Text.assemble(("verdict: ", "bold"), (verdict.text, verdict_style(verdict)))


def _source_text(summary: ExecutionSummary) -> Text:
    source = summary.source
    if source is None:
        return Text("(the input is not an S3 event)", style="dim")
    text = Text(source.uri)
    facts = []
    if source.size is not None:
        facts.append(f"{source.size} bytes")
    if source.version_id:
        facts.append(f"version {source.version_id}")
    if summary.resolved_key is not None:
        facts.append(f"resolved to key {summary.resolved_key!r}")
    if facts:
        text.append(f"  ({', '.join(facts)})", style="dim")
    return text


def timeline_view(timeline: Timeline, *, full: bool = False) -> RenderableType:
    limit = None if full else DEFAULT_CLIP
    summary = timeline.summary
    header = Table.grid(padding=(0, 2))
    header.add_column(style="dim", no_wrap=True)
    header.add_column(overflow="fold")
    header.add_row("execution", Text(summary.arn, overflow="fold"))
    header.add_row("source", _source_text(summary))
    header.add_row(
        "status",
        Text.assemble(
            (summary.status, _STATUS_STYLE.get(summary.status, "")),
            f"   started {timestamp(summary.started_at)}",
            f"   took {duration(summary.duration_s)}",
        ),
    )
    if full:
        header.add_row("event", Text(timeline.input or "—", overflow="fold"))
    tree = Tree(Text("states", style="bold"), guide_style="dim")
    for visit in timeline.visits:
        _visit_node(tree, visit, limit, timeline.error)
    parts: list[RenderableType] = [header, tree]
    if timeline.output:
        parts.append(_payload("output", timeline.output, limit))
    parts.append(verdict_text(summary.verdict))
    if summary.verdict.frame and summary.status in STOPPED_STATUSES:
        parts.append(_field("  at", Text(summary.verdict.frame, overflow="fold")))
    title = Text(summary.source.uri if summary.source else summary.name)
    return Panel(
        Group(*parts),
        title=title,
        title_align="left",
        border_style=verdict_style(summary.verdict),
    )
