"""The stack deployed with `WorkflowType=EXPRESS`, in the local cloud.

Express executions keep no history in Step Functions (AWS refuses GetExecutionHistory
and DescribeExecution for them): what an operator has is the state machine's log
group, where they log every history event with its data. These tests check that the
local cloud deploys the machine as the template says, that each execution writes its
history events to the log group in AWS's documented shape, and that every upload comes
out exactly as it does with the default STANDARD workflow.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from helpers import jpeg
from imgpipe.local.cloud import LocalCloud

pytestmark = pytest.mark.xdist_group("local-express")

LOG_KEYS = {"id", "previous_event_id", "event_timestamp", "type", "execution_arn", "details"}


@dataclass
class StandardRun:
    """What the default (STANDARD) deployment did, for the Express tests to compare with.

    moto's backends are global to the process: one local cloud at a time. The Standard
    deployment runs every case first and is gone before the Express one starts.
    """

    machine: dict[str, Any]
    outcomes: dict[str, tuple[str, str | None]]
    processed_log: list[dict[str, Any]]


@pytest.fixture(scope="module")
def standard() -> StandardRun:
    with LocalCloud.running(retry_sleep=lambda seconds: None) as cloud:
        machine = cloud.sfn.describe_state_machine(stateMachineArn=cloud.state_machine_arn)
        processed = cloud.upload("standard/photo.jpg", jpeg(64, 48))
        assert processed.status == "SUCCEEDED"
        return StandardRun(
            machine=machine,
            outcomes={case: outcome(run(cloud, f"edge/{case}.jpg")) for case, run in RUNS.items()},
            processed_log=log_records(cloud, processed.arn),
        )


@pytest.fixture(scope="module")
def express(standard: StandardRun) -> Iterator[LocalCloud]:
    with LocalCloud.running(
        parameters={"WorkflowType": "EXPRESS"}, retry_sleep=lambda seconds: None
    ) as deployed:
        yield deployed


def log_records(cloud: LocalCloud, execution_arn: str) -> list[dict[str, Any]]:
    """The JSON records the execution logged, read straight from the log group."""
    logs = cloud.client("logs")
    group = cloud.state_machine_log_group
    records = []
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group):
        for event in page["events"]:
            record = json.loads(event["message"])
            if record["execution_arn"] == execution_arn:
                records.append({**record, "_timestamp": event["timestamp"]})
    return sorted(records, key=lambda r: int(r["id"]))


def test_the_template_parameter_deploys_an_express_machine_logging_everything(
    express: LocalCloud,
) -> None:
    machine = express.sfn.describe_state_machine(stateMachineArn=express.state_machine_arn)
    assert machine["type"] == "EXPRESS"
    group = express.template.resolver.physical["StateMachineLogGroup"]
    assert express.state_machine_log_group == group
    assert machine["loggingConfiguration"] == {
        "level": "ALL",
        "includeExecutionData": True,
        "destinations": [
            {
                "cloudWatchLogsLogGroup": {
                    "logGroupArn": f"arn:aws:logs:us-east-1:123456789012:log-group:{group}:*"
                }
            }
        ],
    }


def test_the_default_deployment_is_still_standard(standard: StandardRun) -> None:
    machine = standard.machine
    assert machine["type"] == "STANDARD"
    # the template's defaults: failures only, without data
    assert machine["loggingConfiguration"]["level"] == "ERROR"
    assert machine["loggingConfiguration"]["includeExecutionData"] is False


def test_a_processed_upload_logs_its_whole_history_in_aws_shape(express: LocalCloud) -> None:
    # Given an upload processed by the Express machine
    record = express.upload("express/photo.jpg", jpeg(320, 240))
    assert record.status == "SUCCEEDED"
    assert record.output is not None
    assert record.output["status"] == "processed"
    # Then the log group holds one record per history event of that execution
    records = log_records(express, record.arn)
    kinds = [r["type"] for r in records]
    assert kinds[0] == "ExecutionStarted"
    assert kinds[-1] == "ExecutionSucceeded"
    assert {"TaskStateEntered", "TaskScheduled", "TaskSucceeded", "TaskStateExited"} <= set(kinds)
    for item in records:
        assert set(item) >= LOG_KEYS, item
        # AWS writes ids and the timestamp (epoch milliseconds) as strings
        assert isinstance(item["id"], str)
        assert isinstance(item["previous_event_id"], str)
        assert isinstance(item["event_timestamp"], str)
        assert int(item["event_timestamp"]) == item["_timestamp"]
    # ids count up from 1 with no gap, each event points back at an earlier one
    assert [int(r["id"]) for r in records] == list(range(1, len(records) + 1))
    assert records[0]["previous_event_id"] == "0"
    assert all(0 <= int(r["previous_event_id"]) < int(r["id"]) for r in records)
    assert all(
        int(a["event_timestamp"]) <= int(b["event_timestamp"])
        for a, b in itertools.pairwise(records)
    )
    # with execution data: the event in, the execution's output out
    started = json.loads(records[0]["details"]["input"])
    assert started["detail"]["object"]["key"] == "express/photo.jpg"
    assert json.loads(records[-1]["details"]["output"]) == record.output
    entered = [r["details"]["name"] for r in records if r["type"].endswith("StateEntered")]
    assert entered == record.states_entered()
    # and one stream per execution, named as AWS names them
    streams = express.client("logs").describe_log_streams(
        logGroupName=express.state_machine_log_group
    )["logStreams"]
    names = [s["logStreamName"] for s in streams]
    assert all(n.startswith("states/imgpipe-local-imagepipeline/") for n in names), names
    assert all(len(n.split("/")[2].split("-")) == 5 for n in names), names


def test_the_history_read_from_the_log_is_the_one_step_functions_kept(
    express: LocalCloud,
) -> None:
    # moto still answers GetExecutionHistory for Express machines (AWS does not):
    # the history `wait` read from the log must be event for event the same.
    record = express.upload("express/compare.jpg", jpeg(200, 100))
    kept = express.sfn.get_execution_history(executionArn=record.arn, maxResults=1000)["events"]
    assert [(e["id"], e["previousEventId"], e["type"]) for e in record.history] == [
        (e["id"], e["previousEventId"], e["type"]) for e in kept
    ]
    for logged, original in zip(record.history, kept, strict=True):
        member = next(k for k in original if k.endswith("EventDetails"))
        assert logged[member] == original[member], original["type"]


def test_wait_reads_express_executions_from_the_log_only(
    express: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AWS answers DescribeExecution and GetExecutionHistory of Express executions with
    # an error: following one must not depend on them.
    def refused(**kwargs: Any) -> None:
        raise AssertionError("not served by AWS for Express executions")

    monkeypatch.setattr(express.sfn, "describe_execution", refused)
    monkeypatch.setattr(express.sfn, "get_execution_history", refused)
    monkeypatch.setattr(express.sfn, "list_executions", refused)
    record = express.upload("express/logged-only.jpg", jpeg(64, 64))
    assert record.status == "SUCCEEDED"
    assert record.output is not None
    assert record.output["status"] == "processed"
    assert record.history[0]["type"] == "ExecutionStarted"


def test_a_standard_machine_logs_only_failures_at_its_default_level(
    standard: StandardRun,
) -> None:
    # level ERROR: a clean execution has nothing to log
    assert standard.processed_log == []


Upload = Callable[[LocalCloud, str], dict[str, Any]]


def _put(body: bytes) -> Upload:
    def run(cloud: LocalCloud, key: str) -> dict[str, Any]:
        record = cloud.upload(key, body)
        assert record.status == "SUCCEEDED", (record.error, record.cause)
        assert record.output is not None
        return record.output

    return run


def _delivered_twice(cloud: LocalCloud, key: str) -> dict[str, Any]:
    with cloud.bridge.paused():
        cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=jpeg(120, 80))
    event = cloud.object_created_event(key)
    first = cloud.wait(cloud.start(event), key)
    second = cloud.wait(cloud.start(event), key)
    assert first.output is not None
    assert first.output["status"] == "processed"
    assert second.status == "SUCCEEDED"
    assert second.output is not None
    return second.output


def _deleted(cloud: LocalCloud, key: str) -> dict[str, Any]:
    _put(jpeg(90, 60))(cloud, key)
    record = cloud.delete(key)
    assert record.status == "SUCCEEDED", (record.error, record.cause)
    assert record.output is not None
    return record.output


def _foreign_bucket(cloud: LocalCloud, key: str) -> dict[str, Any]:
    cloud.s3.create_bucket(Bucket="someone-else")
    cloud.s3.put_object(Bucket="someone-else", Key=key, Body=jpeg(40, 40))
    record = cloud.wait(cloud.start(cloud.object_created_event(key, bucket="someone-else")), key)
    assert record.status == "SUCCEEDED", (record.error, record.cause)
    assert record.output is not None
    return record.output


def outcome(output: dict[str, Any]) -> tuple[str, str | None]:
    return str(output["status"]), (output.get("reason") or {}).get("code")


RUNS: dict[str, Upload] = {
    "text": _put(b"hello, this is not an image\n" * 20),
    "truncated": _put(jpeg(200, 150)[:300]),
    "gzip": _put(gzip.compress(b"\x89PNG pretending")),
    "duplicate": _delivered_twice,
    "deleted": _deleted,
    "foreign": _foreign_bucket,
}
EXPECTED: dict[str, tuple[str, str | None]] = {
    "text": ("rejected", "UnsupportedFormat"),
    "truncated": ("rejected", "CorruptImage"),
    "gzip": ("rejected", "UnsupportedFormat"),
    "duplicate": ("skipped", "Duplicate"),
    "deleted": ("deleted", None),
    "foreign": ("skipped", "ForeignBucket"),
}


@pytest.mark.parametrize("case", sorted(RUNS))
def test_edge_cases_end_as_they_do_with_standard(
    case: str, express: LocalCloud, standard: StandardRun
) -> None:
    got = outcome(RUNS[case](express, f"edge/{case}.jpg"))
    # the same outcome as the Standard deployment's, and the one expected
    assert got == standard.outcomes[case]
    assert got == EXPECTED[case]
