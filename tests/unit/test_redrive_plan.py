"""The pure parts of `imgpipe redrive`: the window, the names, the plan, the paging."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from imgpipe.claims import ClaimTable
from imgpipe.ops import redrive
from imgpipe.ops.redrive import Listed, When, Window, lineage, parse_when, restart_name

NOW = datetime(2026, 3, 4, 12, 0, 0, tzinfo=UTC)
MACHINE = "arn:aws:states:eu-west-1:111122223333:stateMachine:ImagePipeline-AbC123"
# What AWS accepts in an execution name when the machine logs to CloudWatch Logs.
NAME_CHARACTERS = re.compile(r"[0-9A-Za-z_-]{1,80}")


# -- the window --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("45s", timedelta(seconds=45)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2H", timedelta(hours=2)),
        ("now", timedelta()),
    ],
)
def test_relative_durations_count_back_from_now(text: str, ago: timedelta) -> None:
    assert parse_when(text).resolve(NOW) == NOW - ago


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-03-01T10:20:30Z", datetime(2026, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2026-03-01T12:20:30+02:00", datetime(2026, 3, 1, 10, 20, 30, tzinfo=UTC)),
        # No offset: UTC, like every time the operator commands print.
        ("2026-03-01T10:20:30", datetime(2026, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2026-03-01T10:20:30.250Z", datetime(2026, 3, 1, 10, 20, 30, 250000, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
    ],
)
def test_iso_timestamps_are_absolute_and_utc(text: str, moment: datetime) -> None:
    resolved = parse_when(text).resolve(NOW)
    assert resolved == moment
    assert resolved.utcoffset() == timedelta()


@pytest.mark.parametrize("text", ["", "yesterday", "2x", "-2h", "2h ago", "2026-13-01", "h"])
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="neither a duration"):
        parse_when(text)


def test_default_window_is_the_last_24_hours_and_bounds_are_inclusive() -> None:
    span = redrive.window(None, None, NOW)
    assert (span.since, span.until) == (NOW - timedelta(hours=24), NOW)
    assert span.since in span
    assert span.until in span
    assert NOW - timedelta(hours=24, microseconds=1) not in span
    assert NOW + timedelta(microseconds=1) not in span
    assert None not in span


def test_window_from_both_ends_and_an_empty_one_is_refused() -> None:
    span = redrive.window(parse_when("3h"), parse_when("1h"), NOW)
    assert span == Window(NOW - timedelta(hours=3), NOW - timedelta(hours=1))
    with pytest.raises(ValueError, match="the window is empty"):
        redrive.window(parse_when("1h"), parse_when("3h"), NOW)
    with pytest.raises(ValueError, match="the window is empty"):
        redrive.window(When(moment=NOW), None, NOW)


# -- names -------------------------------------------------------------------------


def test_restart_name_is_the_original_plus_a_stamp() -> None:
    original = "f10c9cb7-991c-4513-87a8-bc2d78085611"
    assert restart_name(original, NOW + timedelta(microseconds=250999)).endswith(
        "-redrive-20260304T120000250Z"
    )
    name = restart_name(original, NOW)
    assert name == f"{original}-redrive-20260304T120000000Z"
    assert NAME_CHARACTERS.fullmatch(name)
    assert lineage(name) == original


def test_long_names_are_cut_to_80_characters_and_stay_distinct() -> None:
    first = "a" * 70 + "-one"
    second = "a" * 70 + "-two"
    names = {restart_name(first, NOW), restart_name(second, NOW)}
    assert len(names) == 2
    for name in names:
        assert len(name) == redrive.NAME_LIMIT
        assert name.startswith("a" * 43)
        assert NAME_CHARACTERS.fullmatch(name)


def test_a_restart_of_a_restart_derives_from_the_original() -> None:
    for original in ("cat", "b" * 80):
        once = restart_name(original, NOW)
        twice = restart_name(once, NOW + timedelta(hours=1))
        assert lineage(once) == lineage(twice) == lineage(original)
        assert len(twice) <= redrive.NAME_LIMIT
        assert twice.endswith("-redrive-20260304T130000000Z")


def test_planned_arn_is_the_one_start_execution_returns() -> None:
    assert redrive.execution_arn(MACHINE, "run-1") == (
        "arn:aws:states:eu-west-1:111122223333:execution:ImagePipeline-AbC123:run-1"
    )


# -- the plan ----------------------------------------------------------------------


def listed(name: str, started_min_ago: int, stopped_min_ago: int | None = None) -> Listed:
    stopped = None if stopped_min_ago is None else NOW - timedelta(minutes=stopped_min_ago)
    return Listed(
        arn=f"{MACHINE.replace('stateMachine', 'execution')}:{name}",
        name=name,
        status="FAILED" if stopped else "RUNNING",
        started_at=NOW - timedelta(minutes=started_min_ago),
        stopped_at=stopped,
    )


def test_a_failure_with_a_later_attempt_of_its_lineage_is_superseded() -> None:
    original = listed("cat", 60, 59)
    restart = listed(restart_name("cat", NOW - timedelta(minutes=30)), 30)
    unrelated = listed("dog", 10, 9)
    attempts = [unrelated, restart, original]
    assert redrive.superseded_by(original, attempts) == restart
    # The restart itself is the newest of its lineage: it is the one to act on.
    assert redrive.superseded_by(restart, attempts) is None
    assert redrive.superseded_by(unrelated, attempts) is None


def test_a_later_attempt_that_was_a_duplicate_does_not_count() -> None:
    original = listed("cat", 60, 59)
    noop = listed(restart_name("cat", NOW - timedelta(minutes=50)), 50)
    attempts = [noop, original]
    assert redrive.superseded_by(original, attempts, lambda attempt: attempt != noop) is None
    assert redrive.superseded_by(original, attempts) == noop


@pytest.mark.parametrize(
    ("output", "duplicate"),
    [
        ('{"status":"skipped","reason":{"code":"Duplicate","message":"m"}}', True),
        ('{"status":"skipped","reason":{"code":"Superseded","message":"m"}}', False),
        ('{"status":"processed","renditions":[]}', False),
        (None, False),
        ("not json", False),
        ("[1]", False),
    ],
)
def test_duplicate_outputs_are_recognised(output: str | None, duplicate: bool) -> None:
    assert redrive.was_duplicate(output) is duplicate


def item(name: str, started_min_ago: int, stopped_min_ago: int | None) -> dict[str, Any]:
    one = listed(name, started_min_ago, stopped_min_ago)
    found: dict[str, Any] = {
        "executionArn": one.arn,
        "stateMachineArn": MACHINE,
        "name": one.name,
        "status": one.status,
        "startDate": one.started_at,
    }
    if one.stopped_at is not None:
        found["stopDate"] = one.stopped_at
    return found


def test_paging_stops_at_the_first_execution_older_than_the_window() -> None:
    span = Window(NOW - timedelta(hours=2), NOW - timedelta(minutes=30))
    read: list[int] = []

    def pages() -> Iterator[list[dict[str, Any]]]:
        for number, page in enumerate(
            [
                # Stopped after the window (too recent), then inside it.
                [item("recent", 20, 10), item("in-1", 40, 39)],
                # Started before the window but stopped inside it (within the lookback).
                [item("in-2", 130, 100), item("old", 200, 199)],
                [item("older", 300, 299)],
            ]
        ):
            read.append(number)
            yield page

    found = list(redrive.in_window(pages(), span, lookback=timedelta(hours=1)))
    assert [one.name for one in found] == ["in-1", "in-2"]
    assert read == [0, 1]


def test_candidates_follow_next_tokens_per_status_and_stop_early() -> None:
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    span = Window(NOW - timedelta(hours=2), NOW)
    with Stubber(sfn) as stub:
        for status, pages in (
            ("FAILED", [[item("f-1", 10, 9)], [item("f-2", 50, 49), item("f-old", 400, 399)]]),
            ("TIMED_OUT", [[item("t-1", 90, 30)]]),
        ):
            for number, executions in enumerate(pages):
                expected: dict[str, Any] = {
                    "stateMachineArn": MACHINE,
                    "statusFilter": status,
                    "maxResults": redrive.PAGE_SIZE,
                }
                if number:
                    expected["nextToken"] = f"{status}-{number}"
                response: dict[str, Any] = {"executions": executions}
                # Every page says there is more: only the age of f-old ends the scan.
                response["nextToken"] = f"{status}-{number + 1}"
                if status == "TIMED_OUT":
                    del response["nextToken"]
                stub.add_response("list_executions", response, expected)
        found = redrive.candidates(sfn, MACHINE, span, ("FAILED", "TIMED_OUT"), timedelta(hours=1))
        stub.assert_no_pending_responses()
    # Newest start first, across statuses
    assert [one.name for one in found] == ["f-1", "f-2", "t-1"]


def test_lookback_is_the_definitions_timeout() -> None:
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    with Stubber(sfn) as stub:
        for definition in ({"TimeoutSeconds": 3600, "StartAt": "A"}, {"StartAt": "A"}):
            stub.add_response(
                "describe_state_machine",
                {
                    "stateMachineArn": MACHINE,
                    "name": "ImagePipeline-AbC123",
                    "definition": json.dumps(definition),
                    "roleArn": "arn:aws:iam::111122223333:role/r",
                    "type": "STANDARD",
                    "creationDate": NOW,
                },
                {"stateMachineArn": MACHINE},
            )
        assert redrive.lookback(sfn, MACHINE) == timedelta(hours=1)
        assert redrive.lookback(sfn, MACHINE) == redrive.DEFAULT_LOOKBACK


def test_claim_lease_is_the_claim_tables_lease() -> None:
    lease_s = inspect.signature(ClaimTable).parameters["lease_s"].default
    assert timedelta(seconds=lease_s) == redrive.CLAIM_LEASE


def test_a_restart_inside_the_claim_lease_is_flagged() -> None:
    soon = redrive.claim_warning(NOW - timedelta(minutes=5), NOW)
    assert soon is not None
    assert "12:10:00Z" in soon
    assert "Duplicate" in soon
    assert redrive.claim_warning(NOW - redrive.CLAIM_LEASE, NOW) is None
