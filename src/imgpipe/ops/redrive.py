"""`imgpipe redrive`: run the failed executions of a time window again.

For each execution that stopped (FAILED by default) inside the window:

* **redrive** it with RedriveExecution when DescribeExecution says `redriveStatus`
  REDRIVABLE (a Standard execution that stopped less than 14 days ago): it continues
  from the state that failed, keeps its ARN and history, and does not repeat the
  states that succeeded;
* otherwise **restart** it: StartExecution on the same state machine with the same
  input (the S3 event) and a new name derived from the original,
  `<original>-redrive-<yyyymmddThhmmssmmmZ>`, so the link stays visible in the console.

An endpoint that reports REDRIVABLE but has no RedriveExecution (an emulator) is
remembered as such for the rest of the run and its executions are restarted.

An execution is acted on at most once per run, and not at all when a newer execution of
the same lineage exists (one whose name derives from the same original): that newer
attempt is the one that counts, whatever its status -- unless it ended `skipped` /
`Duplicate` (started while the failed execution's claim was live, it did nothing).
A redriven execution needs no such check: it is RUNNING or SUCCEEDED afterwards, so
the status filter no longer lists it.

The window, the naming rule and the plan are pure; the AWS calls take the Step
Functions client as a parameter.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Group
from rich.table import Table
from rich.text import Text

from imgpipe.ops import aws
from imgpipe.ops.render import timestamp

# Statuses an operator may ask to run again (the ones RedriveExecution accepts).
REDRIVE_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
DEFAULT_SINCE = timedelta(hours=24)
# When the definition has no TimeoutSeconds, how long before the window an execution
# may have started and still have stopped inside it.
DEFAULT_LOOKBACK = timedelta(days=1)
PAGE_SIZE = 1000
# Validate claims the source key for the event with a lease of this length
# (`ClaimTable(lease_s=900)`, docs/delivery.md). Until the failed execution's lease has
# run out, a new execution with the same event is a duplicate delivery and ends
# `skipped` / `Duplicate`; a redrive is the same execution and keeps its claim.
CLAIM_LEASE = timedelta(minutes=15)

NAME_LIMIT = 80
LINK = "-redrive-"
STAMP_LENGTH = len("20260102T030405123Z")
# The part of a new name taken from the original name.
STEM_LIMIT = NAME_LIMIT - len(LINK) - STAMP_LENGTH
HASH_LENGTH = 8

# Error codes with which an endpoint says it does not know RedriveExecution at all.
UNAVAILABLE_CODES = frozenset(
    {
        "UnknownOperationException",
        "UnknownOperation",
        "InvalidAction",
        "NotImplemented",
        "NotImplementedException",
    }
)

REDRIVE = "redrive"
RESTART = "restart"
WOULD_REDRIVE = "would redrive"
WOULD_RESTART = "would restart"
SKIP = "skip"

Progress = Callable[[int], None]


# -- the window --------------------------------------------------------------------

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class When:
    """A `--since`/`--until` value: an absolute moment, or a duration before now."""

    moment: datetime | None = None
    ago: timedelta | None = None

    def resolve(self, now: datetime) -> datetime:
        if self.moment is not None:
            return self.moment
        return now - (self.ago or timedelta())


def parse_when(text: str) -> When:
    """`2h`, `30m`, `1d`, `1h30m`, `now`, or an ISO 8601 date or timestamp.

    A timestamp without an offset is UTC (the consoles and `imgpipe executions` show
    UTC); a date alone is midnight UTC.
    """
    value = text.strip()
    if value.lower() == "now":
        return When(ago=timedelta())
    compact = value.lower().replace(" ", "")
    if compact and _DURATION.sub("", compact) == "":
        parts = {_UNITS[unit]: 0 for unit in _UNITS}
        for amount, unit in _DURATION.findall(compact):
            parts[_UNITS[unit]] += int(amount)
        return When(ago=timedelta(**parts))
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        msg = (
            f"{text!r} is neither a duration (30m, 2h, 1d, 1h30m) nor an ISO 8601 "
            "timestamp (2026-01-02T03:04:05Z)"
        )
        raise ValueError(msg) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return When(moment=moment.astimezone(UTC))


@dataclass(frozen=True)
class Window:
    """Executions whose stop time is in [since, until]."""

    since: datetime
    until: datetime

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.since <= moment <= self.until


def window(since: When | None, until: When | None, now: datetime) -> Window:
    start = (since or When(ago=DEFAULT_SINCE)).resolve(now)
    end = (until or When(ago=timedelta())).resolve(now)
    if start >= end:
        msg = f"the window is empty: --since {_iso(start)} is not before --until {_iso(end)}"
        raise ValueError(msg)
    return Window(start, end)


# -- names -------------------------------------------------------------------------


def lineage(name: str) -> str:
    """What an execution's name derives from: the original name, shortened to fit.

    `cat-redrive-20260102T030405123Z` and `cat` have the same lineage, `cat`; so does a
    restart of that restart (it derives from the root, not from the restart).
    """
    root = name.split(LINK, 1)[0]
    if len(root) <= STEM_LIMIT:
        return root
    # Two long names with a common beginning must not share a stem.
    digest = hashlib.sha256(root.encode("utf-8")).hexdigest()[:HASH_LENGTH]
    return f"{root[: STEM_LIMIT - HASH_LENGTH - 1]}-{digest}"


def stamp(now: datetime) -> str:
    """`20260102T030405123Z`: UTC to the millisecond, so runs never reuse a name."""
    utc = now.astimezone(UTC)
    return f"{utc.strftime('%Y%m%dT%H%M%S')}{utc.microsecond // 1000:03d}Z"


def restart_name(original: str, now: datetime) -> str:
    """`<original>-redrive-<yyyymmddThhmmssmmmZ>`, at most 80 characters."""
    return f"{lineage(original)}{LINK}{stamp(now)}"


def execution_arn(state_machine: str, name: str) -> str:
    """The ARN StartExecution gives an execution named `name` of `state_machine`."""
    return f"{state_machine.replace(':stateMachine:', ':execution:', 1)}:{name}"


# -- the plan ----------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """One ListExecutions item."""

    arn: str
    name: str
    status: str
    started_at: datetime
    stopped_at: datetime | None

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> Listed:
        arn = str(item["executionArn"])
        return cls(
            arn=arn,
            name=str(item.get("name") or arn.rsplit(":", 1)[-1]),
            status=str(item.get("status", "?")),
            started_at=item["startDate"],
            stopped_at=item.get("stopDate"),
        )


def in_window(
    pages: Iterable[Sequence[Mapping[str, Any]]], span: Window, lookback: timedelta
) -> Iterator[Listed]:
    """The items that stopped inside `span`, from ListExecutions pages (newest start first).

    Stops reading pages at the first execution that started more than `lookback` (the
    longest an execution can run) before the window: it and everything after it
    stopped before the window opened.
    """
    oldest_start = span.since - lookback
    for page in pages:
        for item in page:
            listed = Listed.of(item)
            if listed.started_at < oldest_start:
                return
            if listed.stopped_at in span:
                yield listed


def superseded_by(
    candidate: Listed,
    attempts: Iterable[Listed],
    counts: Callable[[Listed], bool] = lambda attempt: True,
) -> Listed | None:
    """The newest later execution of the same lineage that `counts`, if any."""
    mine = lineage(candidate.name)
    later = sorted(
        (
            attempt
            for attempt in attempts
            if attempt.arn != candidate.arn
            and lineage(attempt.name) == mine
            and attempt.started_at > candidate.started_at
        ),
        key=lambda attempt: attempt.started_at,
        reverse=True,
    )
    return next((attempt for attempt in later if counts(attempt)), None)


def was_duplicate(output: str | None) -> bool:
    """Whether an execution's output is `skipped` / `Duplicate`: it did nothing."""
    try:
        document = json.loads(output or "null")
    except ValueError:
        return False
    if not isinstance(document, dict) or document.get("status") != "skipped":
        return False
    reason = document.get("reason")
    return isinstance(reason, dict) and reason.get("code") == "Duplicate"


@dataclass
class Outcome:
    """What `redrive` did (or would do) with one execution."""

    arn: str
    name: str
    status: str
    stopped_at: datetime | None
    error: str | None
    cause: str | None
    action: str
    new_arn: str | None = None
    new_name: str | None = None
    # Why the action is what it is: a skip, or a restart where a redrive was not possible.
    reason: str | None = None
    # The RedriveExecution/StartExecution error, when the call failed.
    failure: str | None = None
    # Something the operator should know about the new execution.
    warning: str | None = None

    @classmethod
    def of(
        cls, listed: Listed, description: Mapping[str, Any], action: str, **more: Any
    ) -> Outcome:
        """The outcome for one listed execution, with its failure from DescribeExecution."""
        return cls(
            arn=listed.arn,
            name=listed.name,
            status=listed.status,
            stopped_at=listed.stopped_at,
            error=description.get("error"),
            cause=description.get("cause"),
            action=action,
            **more,
        )

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arn": self.arn,
            "status": self.status,
            "stopped_at": _iso(self.stopped_at),
            "error": self.error,
            "cause": self.cause,
            "action": self.action,
            "new_arn": self.new_arn,
            "new_name": self.new_name,
            "reason": self.reason,
            "failure": self.failure,
            "warning": self.warning,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


# -- AWS ---------------------------------------------------------------------------


def lookback(sfn: Any, state_machine: str) -> timedelta:
    """The definition's TimeoutSeconds: no execution runs longer than that."""
    definition = sfn.describe_state_machine(stateMachineArn=state_machine).get("definition")
    try:
        seconds = json.loads(definition or "{}").get("TimeoutSeconds")
    except (ValueError, AttributeError):
        seconds = None
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0:
        return timedelta(seconds=seconds)
    return DEFAULT_LOOKBACK


Pages = Callable[[str | None], Iterator[list[dict[str, Any]]]]


def _pages(sfn: Any, state_machine: str, status: str | None) -> Iterator[list[dict[str, Any]]]:
    arguments: dict[str, Any] = {"stateMachineArn": state_machine}
    if status:
        arguments["statusFilter"] = status
    paginator = sfn.get_paginator("list_executions")
    for page in paginator.paginate(**arguments, PaginationConfig={"PageSize": PAGE_SIZE}):
        yield list(page.get("executions", []))


def _listing(sfn: Any, state_machine: str, executions: aws.Executions | None) -> Pages:
    """ListExecutions pages by status; for an EXPRESS machine, its log's listing as one page."""
    if executions is None or not executions.machine.express:
        return lambda status: _pages(sfn, state_machine, status)
    express = executions

    def from_log(status: str | None) -> Iterator[list[dict[str, Any]]]:
        yield [item for item in express.listed() if status is None or item["status"] == status]

    return from_log


def candidates(
    sfn: Any,
    state_machine: str,
    span: Window,
    statuses: Sequence[str],
    reach: timedelta,
    pages: Pages | None = None,
) -> list[Listed]:
    """Executions with one of `statuses` that stopped in `span`, each once, newest first."""
    pages = pages or _listing(sfn, state_machine, None)
    found: dict[str, Listed] = {}
    for status in statuses:
        for listed in in_window(pages(status), span, reach):
            # A page boundary can shift while new executions start: an ARN may repeat.
            found.setdefault(listed.arn, listed)
    return sorted(found.values(), key=lambda listed: listed.started_at, reverse=True)


def attempts_since(
    sfn: Any, state_machine: str, since: datetime, pages: Pages | None = None
) -> list[Listed]:
    """Every execution (any status) started at or after `since`: the possible restarts."""
    pages = pages or _listing(sfn, state_machine, None)
    started: list[Listed] = []
    for page in pages(None):
        for item in page:
            listed = Listed.of(item)
            if listed.started_at < since:
                return started
            started.append(listed)
    return started


@dataclass
class Redriver:
    """Runs the actions against one state machine, remembering what the endpoint lacks."""

    sfn: Any
    state_machine: str
    now: datetime
    dry_run: bool = False
    # Express executions cannot be redriven: each is restarted.
    express: bool = False
    redrive_available: bool = True
    unavailable_reason: str | None = field(default=None)

    def handle(self, description: Mapping[str, Any], listed: Listed) -> Outcome:
        outcome = Outcome.of(listed, description, RESTART)
        redrivable = description.get("redriveStatus") == "REDRIVABLE"
        if redrivable and self.redrive_available:
            if self.dry_run:
                outcome.action = WOULD_REDRIVE
                outcome.new_arn, outcome.new_name = listed.arn, listed.name
                return outcome
            if self._redrive(outcome):
                return outcome
            if outcome.failure is not None or outcome.action == SKIP:
                return outcome
        elif redrivable:
            outcome.reason = self.unavailable_reason
        elif self.express:
            outcome.reason = "an Express execution cannot be redriven (Standard only)"
        else:
            outcome.reason = _not_redrivable(description)
        self._restart(outcome, description)
        return outcome

    def _redrive(self, outcome: Outcome) -> bool:
        """True when redriven; False with `outcome` set up for a restart, a skip or failure."""
        try:
            self.sfn.redrive_execution(executionArn=outcome.arn)
        except (NotImplementedError, AttributeError) as error:
            # In-process moto raises NotImplementedError; an old botocore has no method.
            self._unavailable(f"RedriveExecution is not available here ({error})")
            outcome.reason = self.unavailable_reason
            return False
        except ClientError as error:
            code = _code(error)
            if code in UNAVAILABLE_CODES:
                self._unavailable(f"RedriveExecution is not available here ({code})")
                outcome.reason = self.unavailable_reason
                return False
            if code == "ExecutionNotRedrivable":
                return self._not_redrivable_now(outcome, error)
            outcome.action = REDRIVE
            outcome.failure = _explain(error)
            return False
        outcome.action = REDRIVE
        outcome.new_arn, outcome.new_name = outcome.arn, outcome.name
        return True

    def _not_redrivable_now(self, outcome: Outcome, error: ClientError) -> bool:
        # Between DescribeExecution and now, someone else may have redriven it: then a
        # restart would run the upload twice.
        current = aws.describe(self.sfn, outcome.arn)
        if current.get("status") not in REDRIVE_STATUSES:
            outcome.action = SKIP
            outcome.new_arn, outcome.new_name = outcome.arn, outcome.name
            outcome.reason = f"redriven elsewhere meanwhile: now {current.get('status')}"
            return False
        message = error.response.get("Error", {}).get("Message", "")
        outcome.reason = f"not redrivable: {message}".rstrip(": ")
        return False

    def _unavailable(self, reason: str) -> None:
        self.redrive_available = False
        self.unavailable_reason = reason

    def _restart(self, outcome: Outcome, description: Mapping[str, Any]) -> None:
        name = restart_name(outcome.name, self.now)
        outcome.new_name = name
        outcome.warning = claim_warning(outcome.stopped_at, self.now)
        if self.dry_run:
            outcome.action = WOULD_RESTART
            outcome.new_arn = execution_arn(self.state_machine, name)
            return
        outcome.action = RESTART
        arguments = {"stateMachineArn": self.state_machine, "name": name}
        if description.get("input") is not None:
            arguments["input"] = description["input"]
        try:
            started = self.sfn.start_execution(**arguments)
        except ClientError as error:
            outcome.failure = _explain(error)
            return
        outcome.new_arn = str(started["executionArn"])


def claim_warning(stopped_at: datetime | None, now: datetime) -> str | None:
    """Why a restart now may do nothing: the failed execution's claim is still live."""
    if stopped_at is None or now - stopped_at >= CLAIM_LEASE:
        return None
    until = (stopped_at + CLAIM_LEASE).astimezone(UTC).strftime("%H:%M:%SZ")
    return (
        "failed less than 15 min ago: its claim on the key may be live until "
        f"{until}, and a restart before then ends skipped/Duplicate"
    )


def _not_redrivable(description: Mapping[str, Any]) -> str:
    status = description.get("redriveStatus")
    if status is None:
        return "DescribeExecution has no redriveStatus (the endpoint does not redrive)"
    reason = description.get("redriveStatusReason")
    return f"{status}: {reason}" if reason else str(status)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _explain(error: ClientError) -> str:
    details = error.response.get("Error", {})
    operation = getattr(error, "operation_name", "the request")
    return f"{operation} failed: {details.get('Code', '?')}: {details.get('Message', '')}"


def run(
    sfn: Any,
    state_machine: str,
    span: Window,
    *,
    statuses: Sequence[str] = ("FAILED",),
    dry_run: bool = False,
    now: datetime,
    progress: Progress | None = None,
    executions: aws.Executions | None = None,
) -> list[Outcome]:
    """Find the executions of `span` and redrive or restart each (or say what it would).

    `executions` reads an EXPRESS machine's executions from its log (Step Functions
    lists and describes only Standard ones); without it the machine is read as Standard.
    """
    pages = _listing(sfn, state_machine, executions)
    found = candidates(sfn, state_machine, span, statuses, lookback(sfn, state_machine), pages)
    if not found:
        return []
    earliest = min(listed.stopped_at or listed.started_at for listed in found)
    attempts = attempts_since(sfn, state_machine, earliest, pages)
    express = executions is not None and executions.machine.express
    redriver = Redriver(sfn, state_machine, now, dry_run=dry_run, express=express)
    arns = [listed.arn for listed in found]
    if executions is not None:
        descriptions = executions.describe_all(arns)
    else:
        descriptions = aws.describe_all(sfn, arns)
    outcomes: list[Outcome] = []

    def counts(attempt: Listed) -> bool:
        # A restart made while the failed execution's claim was live ended
        # skipped/Duplicate and rendered nothing: it does not count as a new attempt.
        if attempt.status != "SUCCEEDED":
            return True
        described = (
            executions.describe(attempt.arn) if executions else aws.describe(sfn, attempt.arn)
        )
        return not was_duplicate(described.get("output"))

    for listed, description in zip(found, descriptions, strict=True):
        newer = superseded_by(listed, attempts, counts)
        if newer is None:
            outcomes.append(redriver.handle(description, listed))
        else:
            outcomes.append(
                Outcome.of(
                    listed,
                    description,
                    SKIP,
                    new_arn=newer.arn,
                    new_name=newer.name,
                    reason=f"already run again: {newer.status}",
                )
            )
        if progress is not None:
            progress(1)
    return outcomes


# -- output ------------------------------------------------------------------------

_ACTION_STYLE = {
    REDRIVE: "green",
    RESTART: "green",
    WOULD_REDRIVE: "cyan",
    WOULD_RESTART: "cyan",
    SKIP: "dim",
}


def outcomes_view(outcomes: Sequence[Outcome], title: str) -> Group:
    """The table, then what the rows share (why restart, not redrive; claim warnings)."""
    table = Table(title=title, title_justify="left", expand=True)
    table.add_column("execution", overflow="fold", ratio=1)
    table.add_column("stopped (UTC)", no_wrap=True)
    table.add_column("error", overflow="fold")
    table.add_column("action", no_wrap=True)
    table.add_column("new execution", overflow="fold", ratio=2)
    for outcome in outcomes:
        execution = Text(outcome.name)
        if outcome.status != "FAILED":
            execution.append(f"\n{outcome.status}", style="dim")
        action = Text(outcome.action, style=_ACTION_STYLE.get(outcome.action, ""))
        new = Text(outcome.new_arn or "—")
        if outcome.failure is not None:
            action = Text(f"{outcome.action} ✗", style="bold red")
            new = Text(outcome.failure, style="red")
        elif outcome.action == SKIP and outcome.reason:
            new.append(f"\n{outcome.reason}", style="dim")
        elif outcome.warning:
            new.append(" ⚠", style="yellow")
        table.add_row(
            execution,
            timestamp(outcome.stopped_at, millis=False),
            Text(outcome.error or "—", style="red" if outcome.error else "dim"),
            action,
            new,
        )
    return Group(table, *notes(outcomes))


def notes(outcomes: Sequence[Outcome]) -> list[Text]:
    """One line per distinct reason to restart, and one for the claim warnings."""
    restarted = [o for o in outcomes if o.action in (RESTART, WOULD_RESTART)]
    reasons: dict[str, int] = {}
    for outcome in restarted:
        if outcome.reason:
            reasons[outcome.reason] = reasons.get(outcome.reason, 0) + 1
    lines = [
        Text(f"restart, not redrive ({count}): {reason}", style="dim")
        for reason, count in reasons.items()
    ]
    warned = [o for o in restarted if o.warning]
    if warned:
        latest = max(o.stopped_at for o in warned if o.stopped_at is not None)
        until = (latest + CLAIM_LEASE).astimezone(UTC).strftime("%H:%M:%SZ")
        lines.append(
            Text(
                f"⚠ {len(warned)} failed less than 15 min ago: until their claims on the "
                f"keys run out (at the latest {until}) a restart ends skipped/Duplicate "
                "(docs/debugging.md, Redrive)",
                style="yellow",
            )
        )
    return lines
