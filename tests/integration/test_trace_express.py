"""`imgpipe trace` and `imgpipe executions` on an EXPRESS state machine, in moto.

The machine logs at level ALL with execution data; the test writes the log records
AWS would write for three executions (processed, rejected, failed after retries) and
runs the commands through the `imgpipe` fixture. AWS refuses GetExecutionHistory,
ListExecutions and DescribeExecution for Express machines; moto answers them, so
here every client the commands build refuses them too, and records that they were
asked. The expected trace is what the same history gives through the Standard path
(`build_timeline` on GetExecutionHistory-shaped events). The last test runs the
template deployed with `WorkflowType=EXPRESS` on the local cloud, whose executions
write those records themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from helpers import Imgpipe, jpeg
from history_events import (
    ARN,
    T0,
    History,
    lambda_params,
    log_records,
    processed,
    retried_then_caught,
)
from imgpipe.ops import aws
from imgpipe.ops.history import build_timeline, describe_from_events
from imgpipe.ops.render import DEFAULT_CLIP

REGION = "us-east-1"
ACCOUNT = "123456789012"
NAME = "ImagePipeline-Express"
MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{NAME}"
GROUP = f"/aws/vendedlogs/states/{NAME}"
GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{GROUP}:*"
REFUSED = frozenset({"GetExecutionHistory", "ListExecutions", "DescribeExecution"})
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


def express_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:express:{NAME}:{name}:0f1e2d3c"


def rejected(arn: str, key: str) -> History:
    """Validate rejects the upload (a caught UnsupportedFormat) and Rejected ends it."""
    upload = {"detail": {"bucket": {"name": "in"}, "object": {"key": key}}}
    output = {
        "status": "rejected",
        "reason": {"code": "UnsupportedFormat", "message": "not an image"},
    }
    cause = json.dumps({"errorMessage": "not an image", "errorType": "UnsupportedFormat"})
    return (
        History()
        .add("ExecutionStarted", 0, input=json.dumps(upload))
        .add("TaskStateEntered", 0, name="Validate", input=json.dumps(upload))
        .add("TaskScheduled", 0.01, parameters=lambda_params("validate"))
        .add("TaskStarted", 0.02)
        .add("TaskFailed", 0.1, error="UnsupportedFormat", cause=cause)
        .add("TaskStateExited", 0.11, name="Validate", output=json.dumps(output))
        .add("SucceedStateEntered", 0.11, name="Rejected", input=json.dumps(output))
        .add("SucceedStateExited", 0.11, name="Rejected", output=json.dumps(output))
        .add("ExecutionSucceeded", 0.12, output=json.dumps(output))
    )


class World:
    """An EXPRESS machine in moto, its log group, and what the log says happened."""

    def __init__(self) -> None:
        self.logs = boto3.client("logs", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.logs.create_log_group(logGroupName=GROUP)
        self.logs.create_log_stream(logGroupName=GROUP, logStreamName="states/express")
        self.sfn.create_state_machine(
            name=NAME,
            definition=DEFINITION,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/pipeline",
            type="EXPRESS",
            loggingConfiguration={
                "level": "ALL",
                "includeExecutionData": True,
                "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": GROUP_ARN}}],
            },
        )
        # CloudWatch Logs refuses events older than 14 days: the histories happen now.
        self.shift = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10) - T0
        self.histories: dict[str, list[dict[str, Any]]] = {}

    def log(self, arn: str, history: History, *, after: timedelta) -> None:
        """Write the records of `history`, `after` the first execution's start, some twice."""
        events = [{**event, "timestamp": event["timestamp"] + after} for event in history.events]
        self.histories[arn] = [
            {**event, "timestamp": event["timestamp"] + self.shift} for event in events
        ]
        records = log_records(events, arn, shift=self.shift)
        delivered = sorted([*records, *records[1:3]], key=lambda r: int(r["event_timestamp"]))
        self.logs.put_log_events(  # at-least-once delivery: two records come twice
            logGroupName=GROUP,
            logStreamName="states/express",
            logEvents=[
                {"timestamp": int(r["event_timestamp"]), "message": json.dumps(r)}
                for r in delivered
            ],
        )

    def expected_trace(self, arn: str) -> dict[str, Any]:
        """What `trace --json` gives for the same history through the Standard path."""
        events = self.histories[arn]
        return build_timeline(describe_from_events(arn, events), events).to_dict(DEFAULT_CLIP)


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield World()


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every client the commands build refuses what AWS refuses for Express, as AWS
    does, and the refused operations are listed here."""
    refused: list[str] = []
    connect = aws.connect

    def refuse(model: Any, **kwargs: Any) -> None:
        if model.name in REFUSED:
            refused.append(model.name)
            raise ClientError(
                {"Error": {"Code": "StateMachineTypeNotSupported", "Message": "EXPRESS"}},
                model.name,
            )

    def connected(options: aws.AwsOptions) -> aws.Clients:
        clients = connect(options)
        clients.sfn.meta.events.register("before-call", refuse)
        return clients

    monkeypatch.setattr(aws, "connect", connected)
    return refused


@pytest.fixture
def logged(world: World) -> dict[str, str]:
    arns = {name: express_arn(name) for name in ("cat", "page", "dog")}
    world.log(arns["cat"], processed(ARN, "photos/cat.jpg"), after=timedelta(0))
    world.log(arns["page"], rejected(ARN, "bad/page.jpg"), after=timedelta(seconds=20))
    world.log(arns["dog"], retried_then_caught(), after=timedelta(seconds=40))
    return arns


def test_trace_of_an_express_execution_arn_reads_its_log(
    logged: dict[str, str], world: World, asked: list[str], imgpipe: Imgpipe
) -> None:
    # Given a processed Express execution in the log
    # When it is traced by ARN
    run = imgpipe("trace", logged["cat"], "--json")
    # Then the trace is the one the Standard path gives for that history
    assert (run.code, run.err, asked) == (0, "", [])
    [trace] = run.json()["executions"]
    assert trace == world.expected_trace(logged["cat"])
    assert [state["name"] for state in trace["states"]] == [
        "Validate",
        "Resize",
        "Store",
        "Processed",
    ]
    assert trace["verdict"]["status"] == "processed"
    assert (trace["status"], trace["name"]) == ("SUCCEEDED", "cat")


def test_trace_of_an_upload_finds_it_in_the_log_and_explains_the_failure(
    logged: dict[str, str], world: World, asked: list[str], imgpipe: Imgpipe
) -> None:
    # Given an upload whose Express execution failed after retries
    # When it is traced by its S3 URI
    run = imgpipe("trace", "s3://in/photos/cat.jpg", "--state-machine", MACHINE, "--json")
    failed = imgpipe("trace", logged["dog"], "--json")
    rejected_run = imgpipe("trace", "s3://in/bad/page.jpg", "--state-machine", MACHINE, "--json")
    # Then each is found and explained as Standard would, without the refused APIs
    assert asked == []
    assert run.json()["executions"] == [world.expected_trace(logged["cat"])]
    assert run.json()["state_machine"] == MACHINE
    [dog] = failed.json()["executions"]
    assert dog == world.expected_trace(logged["dog"])
    assert (dog["status"], dog["failed_state"], dog["error"]) == (
        "FAILED",
        "Resize",
        "TransientError",
    )
    [resize, _] = dog["states"]
    assert len(resize["attempts"]) == 3
    [page] = rejected_run.json()["executions"]
    assert page == world.expected_trace(logged["page"])
    assert (page["outcome"], page["reason_code"]) == ("rejected", "UnsupportedFormat")


def test_executions_of_an_express_machine_are_listed_from_its_log(
    logged: dict[str, str], asked: list[str], imgpipe: Imgpipe
) -> None:
    # When the executions are listed, all and only the failed ones
    run = imgpipe("executions", "--state-machine", MACHINE, "--json")
    failed = imgpipe("executions", "--state-machine", MACHINE, "--status", "FAILED", "--json")
    table = imgpipe("executions", "--state-machine", MACHINE)
    # Then they come newest first with what became of each upload
    assert (run.code, asked) == (0, [])
    rows = run.json()["executions"]
    assert [(row["name"], row["status"]) for row in rows] == [
        ("dog", "FAILED"),
        ("page", "SUCCEEDED"),
        ("cat", "SUCCEEDED"),
    ]
    assert [row["outcome"] for row in rows] == [None, "rejected", "processed"]
    assert (rows[0]["failed_state"], rows[0]["error"]) == ("Resize", "TransientError")
    assert rows[2]["source"]["key"] == "photos/cat.jpg"
    assert [row["name"] for row in failed.json()["executions"]] == ["dog"]
    assert table.code == 0
    assert "3 executions of ImagePipeline-Express" in table.out


def test_an_express_machine_without_execution_data_says_what_to_change(
    world: World, asked: list[str], imgpipe: Imgpipe
) -> None:
    # Given the machine logs errors only, without execution data
    world.sfn.update_state_machine(
        stateMachineArn=MACHINE,
        loggingConfiguration={
            "level": "ERROR",
            "includeExecutionData": False,
            "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": GROUP_ARN}}],
        },
    )
    # When an execution is traced
    run = imgpipe("trace", express_arn("cat"), "--json")
    # Then the error says what to change, and nothing refused was asked
    assert (run.code, run.out, asked) == (1, "", [])
    assert "is EXPRESS" in run.err
    assert "Level ALL with IncludeExecutionData true" in run.err


def test_an_execution_missing_from_the_log_is_named(
    world: World, asked: list[str], imgpipe: Imgpipe
) -> None:
    run = imgpipe("trace", express_arn("nowhere"), "--json")
    assert (run.code, asked) == (1, [])
    assert f"no execution {express_arn('nowhere')} in log group {GROUP}" in run.err


def test_the_refused_apis_are_refused_here_as_on_aws(world: World, asked: list[str]) -> None:
    # Given the clients the commands build, When one asks for what AWS refuses
    clients = aws.connect(aws.AwsOptions(region=REGION))
    with pytest.raises(ClientError, match="StateMachineTypeNotSupported"):
        clients.sfn.list_executions(stateMachineArn=MACHINE)
    # Then it is refused and recorded, so the tests above would see it
    assert asked == ["ListExecutions"]


def test_redrive_restarts_failed_express_executions_found_in_the_log(
    logged: dict[str, str], asked: list[str], imgpipe: Imgpipe
) -> None:
    # Given a failed Express execution in the log
    # When the last hour is redriven, first as a dry run
    plan = imgpipe("redrive", "--state-machine", MACHINE, "--since", "1h", "--dry-run", "--json")
    done = imgpipe("redrive", "--state-machine", MACHINE, "--since", "1h", "--json")
    # Then it is restarted (Express executions cannot be redriven), from the log alone
    assert (plan.code, done.code, asked) == (0, 0, [])
    [planned] = plan.json()
    assert (planned["arn"], planned["action"]) == (logged["dog"], "would restart")
    assert planned["reason"] == "an Express execution cannot be redriven (Standard only)"
    assert planned["error"] == "TransientError"
    [restarted] = done.json()
    assert restarted["action"] == "restart"
    assert restarted["new_name"].startswith("dog-redrive-")


def test_an_express_deployment_of_the_local_cloud_is_traced_from_its_log(
    asked: list[str], imgpipe: Imgpipe
) -> None:
    from imgpipe.local.cloud import LocalCloud

    # Given the template deployed with WorkflowType=EXPRESS, a processed and a rejected upload
    with LocalCloud.running(
        parameters={"WorkflowType": "EXPRESS"}, retry_sleep=lambda seconds: None
    ) as cloud:
        cat = cloud.upload("photos/cat.jpg", jpeg(300, 200))
        page = cloud.upload("bad/page.jpg", b"<!DOCTYPE html><html>not a photo</html>")
        machine = ("--state-machine", cloud.state_machine_arn)
        # When they are traced and listed
        processed_run = imgpipe(
            "trace", f"s3://{cloud.input_bucket}/photos/cat.jpg", *machine, "--json"
        )
        rejected_run = imgpipe("trace", page.arn, "--json")
        listing = imgpipe("executions", *machine, "--json")
    # Then the log alone explains them, as a Standard trace would
    assert (processed_run.code, rejected_run.code, listing.code, asked) == (0, 0, 0, [])
    [traced_cat] = processed_run.json()["executions"]
    assert traced_cat["arn"] == cat.arn
    assert [state["name"] for state in traced_cat["states"]] == cat.states_entered()
    assert traced_cat["verdict"]["status"] == "processed"
    [traced_page] = rejected_run.json()["executions"]
    assert page.output is not None
    assert traced_page["verdict"]["status"] == "rejected"
    assert traced_page["reason_code"] == page.output["reason"]["code"]
    assert [row["arn"] for row in listing.json()["executions"]] == [page.arn, cat.arn]
