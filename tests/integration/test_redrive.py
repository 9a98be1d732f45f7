"""`imgpipe redrive` against real failed executions of the deployed ASL.

template.yaml is deployed into moto once; uploads fail for real (every S3 PutObject of
the resize function answers SlowDown, so Resize exhausts its retries), then the command
is driven the way the main CLI drives it. moto 5.2.5 has no RedriveExecution and its
DescribeExecution reports no `redriveStatus`, so on moto the command restarts; the
redrive branch is exercised with a client whose DescribeExecution says REDRIVABLE and
whose RedriveExecution is stubbed (botocore Stubber) or is moto's missing operation.

Every test makes its own failures and sets `--since` just before them, so the tests do
not see each other's executions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from helpers import Imgpipe, jpeg, s3_slows_down
from imgpipe import claims
from imgpipe.local.cloud import ExecutionRecord, LocalCloud
from imgpipe.ops import aws, redrive

pytestmark = pytest.mark.xdist_group("redrive")

OUTCOME_KEYS = {
    "name",
    "arn",
    "status",
    "stopped_at",
    "error",
    "cause",
    "action",
    "new_arn",
    "new_name",
    "reason",
    "failure",
    "warning",
}


def fail(cloud: LocalCloud, key: str) -> ExecutionRecord:
    """An upload whose execution FAILS: Resize runs out of retries on S3 SlowDown."""
    with s3_slows_down(cloud):
        record = cloud.upload(key, jpeg(120, 80))
    assert record.status == "FAILED", record
    return record


def describe(cloud: LocalCloud, arn: str) -> dict[str, Any]:
    return dict(cloud.sfn.describe_execution(executionArn=arn))


def stopped_at(cloud: LocalCloud, record: ExecutionRecord) -> datetime:
    stop: datetime = describe(cloud, record.arn)["stopDate"]
    return stop.astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def just_before(cloud: LocalCloud, record: ExecutionRecord) -> str:
    return iso(stopped_at(cloud, record) - timedelta(milliseconds=1))


def execution_names(cloud: LocalCloud) -> set[str]:
    names: set[str] = set()
    for page in cloud.sfn.get_paginator("list_executions").paginate(
        stateMachineArn=cloud.state_machine_arn
    ):
        names.update(item["name"] for item in page["executions"])
    return names


def name_of(record: ExecutionRecord) -> str:
    return record.arn.rsplit(":", 1)[-1]


class _Later:
    """The `time` module, with `time()` this much ahead."""

    def __init__(self, ahead: timedelta) -> None:
        self.ahead = ahead.total_seconds()

    def time(self) -> float:
        return time.time() + self.ahead

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def leases_run_out(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """From the call on, the pipeline's claims see a clock past the leases taken so far
    (as if the operator redrove the failures more than 15 minutes after they happened)."""

    def move_on() -> None:
        monkeypatch.setattr(claims, "time", _Later(redrive.CLAIM_LEASE + timedelta(minutes=1)))

    return move_on


# -- restart on moto ---------------------------------------------------------------


def test_failed_execution_in_the_window_is_restarted_with_the_same_input(
    cloud: LocalCloud, imgpipe: Imgpipe, leases_run_out: Callable[[], None]
) -> None:
    # Given one failure before the window and one inside it
    outside = fail(cloud, "redrive/old.jpg")
    inside = fail(cloud, "redrive/new.jpg")
    since = just_before(cloud, inside)
    assert stopped_at(cloud, outside) < datetime.fromisoformat(since)
    leases_run_out()

    # When the window's failures are redriven
    run = imgpipe("redrive", "--since", since, "--json")

    # Then only the one inside is run again: a new execution with a derived name and
    # the very same input (the S3 event), which now goes through
    assert run.code == 0, run.err
    [row] = run.json()
    assert row["arn"] == inside.arn
    assert row["action"] == "restart"
    assert row["error"] == "TransientError"
    assert row["new_name"].startswith(f"{name_of(inside)}-redrive-")
    assert len(row["new_name"]) <= redrive.NAME_LIMIT
    assert row["new_arn"] == redrive.execution_arn(cloud.state_machine_arn, row["new_name"])
    assert "redriveStatus" in row["reason"]
    restarted = cloud.wait(row["new_arn"], "redrive/new.jpg")
    assert describe(cloud, row["new_arn"])["input"] == describe(cloud, inside.arn)["input"]
    assert restarted.status == "SUCCEEDED"
    assert restarted.output is not None
    assert restarted.output["status"] == "processed", restarted.output["reason"]
    assert restarted.output["source"]["key"] == "redrive/new.jpg"
    # The original stays as it was, and the failure outside the window is untouched
    assert describe(cloud, inside.arn)["status"] == "FAILED"
    assert not any(n.startswith(f"{name_of(outside)}-redrive") for n in execution_names(cloud))

    # And a second run over the same window does not restart it again
    again = imgpipe("redrive", "--since", since, "--json")
    assert again.code == 0, again.err
    [skipped] = again.json()
    assert skipped["arn"] == inside.arn
    assert skipped["action"] == "skip"
    assert skipped["new_arn"] == row["new_arn"]
    assert "SUCCEEDED" in skipped["reason"]
    assert len([n for n in execution_names(cloud) if n.startswith(name_of(inside))]) == 2


def test_restart_soon_after_the_failure_is_a_duplicate_says_so_and_is_made_again_later(
    cloud: LocalCloud, imgpipe: Imgpipe, leases_run_out: Callable[[], None]
) -> None:
    # Given a failure a moment ago: its claim on the key is still live
    failed = fail(cloud, "redrive/soon.jpg")
    # When it is restarted right away
    run = imgpipe("redrive", "--since", just_before(cloud, failed), "--json")
    # Then the command warns that the restart will be taken for a duplicate delivery,
    # and the pipeline indeed skips it, naming the failed execution as the holder
    assert run.code == 0, run.err
    [row] = run.json()
    assert row["action"] == "restart"
    assert "skipped/Duplicate" in row["warning"]
    restarted = cloud.wait(row["new_arn"], "redrive/soon.jpg")
    assert restarted.status == "SUCCEEDED"
    assert restarted.output is not None
    assert restarted.output["status"] == "skipped"
    assert restarted.output["reason"]["code"] == "Duplicate"
    assert failed.arn in restarted.output["reason"]["message"]

    # And once the claim has run out, the next run does not take that no-op restart
    # for an attempt: it restarts the failure again, and this time it is rendered
    leases_run_out()
    again = imgpipe("redrive", "--since", just_before(cloud, failed), "--json")
    assert again.code == 0, again.err
    [second] = again.json()
    assert second["arn"] == failed.arn
    assert second["action"] == "restart"
    assert second["new_name"] != row["new_name"]
    assert second["new_name"].startswith(f"{name_of(failed)}-redrive-")
    rendered = cloud.wait(second["new_arn"], "redrive/soon.jpg")
    assert rendered.output is not None
    assert rendered.output["status"] == "processed", rendered.output["reason"]


def test_dry_run_lists_what_it_would_do_and_starts_nothing(
    cloud: LocalCloud, imgpipe: Imgpipe
) -> None:
    # Given a failure in the window
    failed = fail(cloud, "redrive/dry.jpg")
    since = just_before(cloud, failed)
    before = execution_names(cloud)

    # When it is a dry run, as a table and as JSON
    table = imgpipe("redrive", "--since", since, "--dry-run")
    document = imgpipe("redrive", "--since", since, "--dry-run", "--json")

    # Then it is listed with what would be done, and no execution was started
    assert table.code == 0, table.err
    assert name_of(failed) in table.out
    assert "would restart" in table.out
    assert "TransientError" in table.out
    assert "dry run" in table.out
    assert document.code == 0, document.err
    [row] = document.json()
    assert row["action"] == "would restart"
    assert row["new_name"].startswith(f"{name_of(failed)}-redrive-")
    assert execution_names(cloud) == before


def test_json_is_a_list_of_outcomes_with_the_same_fields_as_the_table(
    cloud: LocalCloud, imgpipe: Imgpipe
) -> None:
    first = fail(cloud, "redrive/json-1.jpg")
    second = fail(cloud, "redrive/json-2.jpg")
    since = just_before(cloud, first)
    run = imgpipe("redrive", "--since", since, "--until", "now", "--dry-run", "--json")
    assert run.code == 0, run.err
    rows = run.json()
    assert isinstance(rows, list)
    # Newest first, like `imgpipe executions`
    assert [row["arn"] for row in rows] == [second.arn, first.arn]
    for row, record in zip(rows, (second, first), strict=True):
        assert set(row) == OUTCOME_KEYS
        assert row["name"] == name_of(record)
        assert row["status"] == "FAILED"
        assert row["stopped_at"] == iso(stopped_at(cloud, record)).replace("+00:00", "Z")
        assert row["error"] == "TransientError"
        assert "SlowDown" in row["cause"]
        assert row["failure"] is None


def test_a_window_without_failures_says_so_and_a_reversed_one_is_refused(
    cloud: LocalCloud, imgpipe: Imgpipe
) -> None:
    failed = fail(cloud, "redrive/empty.jpg")
    after = iso(stopped_at(cloud, failed) + timedelta(milliseconds=1))
    none = imgpipe("redrive", "--since", after)
    assert none.code == 0, none.err
    assert "no FAILED executions of" in none.out
    reversed_window = imgpipe("redrive", "--since", after, "--until", "1h")
    assert reversed_window.code == 1
    assert "the window is empty" in reversed_window.err


# -- the RedriveExecution branch ---------------------------------------------------


class RedrivableSfn:
    """The moto client, except that DescribeExecution reports `redriveStatus`
    REDRIVABLE (as AWS does for a Standard execution that failed in the last 14 days)
    and RedriveExecution goes to `redriver`."""

    def __init__(self, real: Any, redriver: Any) -> None:
        self.real = real
        self.redriver = redriver
        self.redrive_calls: list[str] = []
        self.started: list[dict[str, Any]] = []

    def describe_execution(self, **kwargs: Any) -> dict[str, Any]:
        description = dict(self.real.describe_execution(**kwargs))
        description.update(redriveStatus="REDRIVABLE", redriveCount=0)
        return description

    def redrive_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.redrive_calls.append(kwargs["executionArn"])
        return dict(self.redriver.redrive_execution(**kwargs))

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.started.append(kwargs)
        return dict(self.real.start_execution(**kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_redrivable_execution_is_redriven_not_restarted(cloud: LocalCloud) -> None:
    # Given a failure that the service says can be redriven
    failed = fail(cloud, "redrive/redrivable.jpg")
    stubbed = boto3.client("stepfunctions")
    sfn = RedrivableSfn(cloud.sfn, stubbed)
    span = redrive.Window(stopped_at(cloud, failed) - timedelta(milliseconds=1), _now())
    with Stubber(stubbed) as stub:
        stub.add_response(
            "redrive_execution", {"redriveDate": _now()}, {"executionArn": failed.arn}
        )
        # When the window is redriven
        [outcome] = redrive.run(sfn, cloud.state_machine_arn, span, now=_now())
        stub.assert_no_pending_responses()
    # Then RedriveExecution was called for it, once, and nothing was started
    assert sfn.redrive_calls == [failed.arn]
    assert sfn.started == []
    assert outcome.action == "redrive"
    assert outcome.ok
    assert (outcome.new_arn, outcome.new_name) == (failed.arn, name_of(failed))


def test_dry_run_says_would_redrive_for_a_redrivable_execution(cloud: LocalCloud) -> None:
    failed = fail(cloud, "redrive/would.jpg")
    sfn = RedrivableSfn(cloud.sfn, redriver=None)
    span = redrive.Window(stopped_at(cloud, failed) - timedelta(milliseconds=1), _now())
    [outcome] = redrive.run(sfn, cloud.state_machine_arn, span, dry_run=True, now=_now())
    assert outcome.action == "would redrive"
    assert outcome.new_arn == failed.arn
    assert sfn.redrive_calls == []
    assert sfn.started == []


def test_missing_redrive_operation_falls_back_to_restart_and_is_tried_once(
    cloud: LocalCloud, leases_run_out: Callable[[], None]
) -> None:
    # Given two redrivable failures on an endpoint without RedriveExecution (moto)
    first = fail(cloud, "redrive/fallback-1.jpg")
    second = fail(cloud, "redrive/fallback-2.jpg")
    sfn = RedrivableSfn(cloud.sfn, redriver=cloud.sfn)
    span = redrive.Window(stopped_at(cloud, first) - timedelta(milliseconds=1), _now())
    leases_run_out()
    # When they are redriven
    outcomes = redrive.run(sfn, cloud.state_machine_arn, span, now=_now())
    # Then the missing operation is found out once and both are restarted instead
    assert len(sfn.redrive_calls) == 1
    assert [o.action for o in outcomes] == ["restart", "restart"]
    assert all("not available" in (o.reason or "") for o in outcomes)
    assert [s["input"] for s in sfn.started] == [
        describe(cloud, second.arn)["input"],
        describe(cloud, first.arn)["input"],
    ]
    for outcome in outcomes:
        assert outcome.new_arn is not None
        restarted = cloud.wait(outcome.new_arn)
        assert restarted.output is not None
        assert restarted.output["status"] == "processed", restarted.output["reason"]


def test_execution_redriven_meanwhile_is_not_restarted(cloud: LocalCloud) -> None:
    # Given a failure that someone else redrives between our read and our call
    failed = fail(cloud, "redrive/raced.jpg")
    stubbed = boto3.client("stepfunctions")
    sfn = RedrivableSfn(cloud.sfn, stubbed)
    raced = {"n": 0}
    real_describe = sfn.describe_execution

    def describe_twice(**kwargs: Any) -> dict[str, Any]:
        raced["n"] += 1
        description = real_describe(**kwargs)
        if raced["n"] > 1:
            description["status"] = "RUNNING"
        return description

    sfn.describe_execution = describe_twice  # type: ignore[method-assign]
    span = redrive.Window(stopped_at(cloud, failed) - timedelta(milliseconds=1), _now())
    with Stubber(stubbed) as stub:
        stub.add_client_error(
            "redrive_execution",
            service_error_code="ExecutionNotRedrivable",
            service_message="Execution is RUNNING and cannot be redriven",
            expected_params={"executionArn": failed.arn},
        )
        [outcome] = redrive.run(sfn, cloud.state_machine_arn, span, now=_now())
    # Then it is reported as a skip, not restarted on top of the redrive
    assert outcome.action == "skip"
    assert "RUNNING" in (outcome.reason or "")
    assert sfn.started == []


def test_a_failed_start_makes_the_exit_code_non_zero(
    cloud: LocalCloud, imgpipe: Imgpipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given StartExecution refuses (the account's open-execution limit)
    failed = fail(cloud, "redrive/refused.jpg")
    sfn = RedrivableSfn(cloud.sfn, redriver=None)
    sfn.describe_execution = cloud.sfn.describe_execution  # type: ignore[method-assign]

    def refuse(**kwargs: Any) -> dict[str, Any]:
        raise ClientError(
            {"Error": {"Code": "ExecutionLimitExceeded", "Message": "too many"}},
            "StartExecution",
        )

    sfn.start_execution = refuse  # type: ignore[method-assign]
    monkeypatch.setattr(aws, "connect", lambda options: aws.Clients(sfn=sfn, cloudformation=None))
    # When the window is redriven
    since = just_before(cloud, failed)
    table = imgpipe("redrive", "--since", since)
    document = imgpipe("redrive", "--since", since, "--json")
    # Then the command says which one failed and why, and exits 1
    assert table.code == 1
    assert "ExecutionLimitExceeded" in table.out
    assert "1 of 1 could not be run again" in table.err
    assert document.code == 1
    [row] = document.json()
    assert row["action"] == "restart"
    assert row["new_arn"] is None
    assert row["failure"] == "StartExecution failed: ExecutionLimitExceeded: too many"


def _now() -> datetime:
    return datetime.now(UTC)
