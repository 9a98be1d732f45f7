"""Execution history read back from CloudWatch Logs (`imgpipe.ops.history.logs`).

Log records in AWS's documented shape, made from the same hand-written
GetExecutionHistory events the history model is tested on, must give back those
events and the same visits; the readers are tested against botocore's Stubber.
`tests/integration/test_trace_express.py` runs the commands on an EXPRESS machine.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from history_events import T0, History, log_records, processed, retried_then_caught
from imgpipe.ops import aws
from imgpipe.ops.errors import OpsError
from imgpipe.ops.history import (
    build_timeline,
    describe_from_events,
    events_from_log_records,
    list_executions_from_logs,
    log_group_of,
    parse_visits,
    quoted_term,
    read_execution_history,
    state_machine_of,
)
from imgpipe.ops.history.logs import LISTING_PATTERN, moment_of

GROUP = "/aws/vendedlogs/states/ImagePipeline-Logs"
GROUP_ARN = f"arn:aws:logs:eu-west-1:111122223333:log-group:{GROUP}:*"
MACHINE = "arn:aws:states:eu-west-1:111122223333:stateMachine:ImagePipeline-X"
EXPRESS_ARN = "arn:aws:states:eu-west-1:111122223333:express:ImagePipeline-X:run-1:7c1e-42"


def logging(level: str = "ALL", *, data: bool = True, arn: str = GROUP_ARN) -> dict[str, Any]:
    return {
        "level": level,
        "includeExecutionData": data,
        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": arn}}],
    }


def log_event(record: dict[str, Any], timestamp: int = 0) -> dict[str, Any]:
    return {"logStreamName": "s", "timestamp": timestamp, "message": json.dumps(record)}


# -- records to events --------------------------------------------------------------


def test_log_group_is_the_name_in_the_destination_arn() -> None:
    assert log_group_of({"loggingConfiguration": logging()}) == GROUP
    assert log_group_of({"loggingConfiguration": logging(arn=GROUP_ARN[:-2])}) == GROUP
    assert log_group_of({"loggingConfiguration": {"level": "OFF"}}) is None
    assert log_group_of({}) is None


def test_log_records_of_a_standard_history_give_back_its_events_and_visits() -> None:
    # Given the records AWS logs for a history (retries, a catch, a Fail state)
    events = retried_then_caught().events
    # When they are read back
    read = events_from_log_records(log_records(events))
    # Then the events are GetExecutionHistory's, and so are the visits
    assert read == events
    assert parse_visits(read, execution_status="FAILED") == parse_visits(
        events, execution_status="FAILED"
    )
    assert all(event["timestamp"].tzinfo == UTC for event in read)


def test_records_out_of_order_and_delivered_twice_count_once_in_id_order() -> None:
    # Given a processed execution's records shuffled, some delivered twice
    events = processed().events
    records = log_records(events)
    shuffled = records + records[2:5]
    random.Random(7).shuffle(shuffled)
    # When they are read back, Then it is the history in order, each event once
    assert events_from_log_records(shuffled) == events


def test_records_without_details_or_identity_are_kept_or_left_out() -> None:
    # Given a state entry logged without details, and records that are no history event
    history = History().add("ExecutionStarted", 0).add("PassStateEntered", 1, name="A")
    records = log_records(history.events)
    del records[1]["details"]
    broken = [{"type": "TaskScheduled"}, {"id": "9", "type": "X", "event_timestamp": "soon"}]
    # When they are read back
    read = events_from_log_records([*records, *broken])
    # Then the entry is kept without a details member, the others are left out
    assert [event["id"] for event in read] == [1, 2]
    assert "stateEnteredEventDetails" not in read[1]
    [visit] = parse_visits(read, execution_status="RUNNING")
    assert (visit.name, visit.state_type, visit.result) == ("?", "Pass", "running")


def test_details_land_in_the_member_get_execution_history_names() -> None:
    record = {
        "id": "4",
        "previous_event_id": "3",
        "event_timestamp": "1592335253133",
        "type": "MapIterationStarted",
        "execution_arn": EXPRESS_ARN,
        "details": {"name": "Each", "index": 0},
    }
    [event] = events_from_log_records([record])
    assert event == {
        "id": 4,
        "previousEventId": 3,
        "type": "MapIterationStarted",
        "timestamp": datetime(2020, 6, 16, 19, 20, 53, 133000, tzinfo=UTC),
        "mapIterationStartedEventDetails": {"name": "Each", "index": 0},
    }


def test_timestamps_are_epoch_millis_as_aws_writes_them_or_what_an_emulator_hands_over() -> None:
    expected = datetime(2020, 6, 16, 19, 20, 53, 133000, tzinfo=UTC)
    assert moment_of("1592335253133") == expected
    assert moment_of(1592335253133) == expected
    assert moment_of("2020-06-16T19:20:53.133+00:00") == expected
    assert moment_of(expected.replace(tzinfo=None)) == expected
    assert moment_of("later") is None
    assert moment_of(True) is None


def test_filter_term_quotes_the_arn_and_escapes_quotes() -> None:
    assert quoted_term(EXPRESS_ARN) == f'"{EXPRESS_ARN}"'
    assert quoted_term('a"b\\c') == '"a\\"b\\\\c"'


def test_description_comes_from_the_start_and_end_events() -> None:
    failed = describe_from_events(EXPRESS_ARN, retried_then_caught().events)
    assert failed["status"] == "FAILED"
    assert failed["error"] == "TransientError"
    assert failed["stateMachineArn"] == MACHINE
    assert failed["name"] == "run-1"
    assert failed["startDate"] == T0
    assert failed["stopDate"] == T0 + timedelta(seconds=6.7)
    ok = processed().events
    described = describe_from_events(EXPRESS_ARN, ok)
    assert described["status"] == "SUCCEEDED"
    assert described["input"] == ok[0]["executionStartedEventDetails"]["input"]
    assert json.loads(described["output"])["status"] == "processed"
    running = describe_from_events(EXPRESS_ARN, ok[:4])
    assert running["status"] == "RUNNING"
    assert "stopDate" not in running
    # And a timeline built on it has the verdict a Standard trace gives
    assert build_timeline(described, ok).summary.verdict.status == "processed"


def test_state_machine_of_either_kind_of_execution_arn() -> None:
    assert state_machine_of(EXPRESS_ARN) == MACHINE
    assert state_machine_of(MACHINE.replace("stateMachine", "execution") + ":run-2") == MACHINE


# -- the readers with a stubbed client ------------------------------------------------


def test_history_filters_on_the_quoted_arn_reads_every_page_and_only_that_execution() -> None:
    logs = boto3.client("logs", region_name="eu-west-1")
    records = log_records(processed().events, EXPRESS_ARN)
    # A name that only begins like this one also matches the filter term.
    other = log_records(processed().events[:2], EXPRESS_ARN + "0")
    request = {"logGroupName": GROUP, "filterPattern": f'"{EXPRESS_ARN}"', "startTime": 5}
    first = [log_event(record) for record in records[:10]] + [log_event(other[0])]
    second = [log_event(record) for record in records[10:]] + [
        {"logStreamName": "s", "timestamp": 0, "message": "not json"}
    ]
    with Stubber(logs) as stub:
        stub.add_response("filter_log_events", {"events": first, "nextToken": "t"}, request)
        stub.add_response("filter_log_events", {"events": second}, {**request, "nextToken": "t"})
        events = read_execution_history(logs, GROUP, EXPRESS_ARN, start_ms=5)
        stub.assert_no_pending_responses()
    assert events == processed().events


def test_listing_is_this_machines_executions_newest_first_with_their_status() -> None:
    logs = boto3.client("logs", region_name="eu-west-1")
    base = MACHINE.replace("stateMachine", "express")
    ok, bad, late = (f"{base}:{name}:u" for name in ("ok", "bad", "late"))
    foreign = f"{base}2:other:u"
    shift = timedelta(hours=1)
    records = [
        *log_records(processed().events, ok),
        *log_records(retried_then_caught().events, bad, shift=shift),
        *log_records(processed().events[:3], late, shift=2 * shift),
        *log_records(processed().events, foreign),
    ]
    request = {"logGroupName": GROUP, "filterPattern": LISTING_PATTERN}
    # An emulator that cannot evaluate the JSON pattern returns every record.
    with Stubber(logs) as stub:
        stub.add_response("filter_log_events", {"events": [log_event(r) for r in records]}, request)
        items = list_executions_from_logs(logs, GROUP, MACHINE)
    assert [(item["name"], item["status"]) for item in items] == [
        ("late", "RUNNING"),
        ("bad", "FAILED"),
        ("ok", "SUCCEEDED"),
    ]
    assert items[1]["stopDate"] == T0 + shift + timedelta(seconds=6.7)
    assert items[1]["error"] == "TransientError"
    assert all(item["stateMachineArn"] == MACHINE for item in items)
    # And `end_ms` bounds when they started
    end_ms = int((T0 + shift).timestamp() * 1000)
    with Stubber(logs) as stub:
        stub.add_response("filter_log_events", {"events": [log_event(r) for r in records]}, request)
        assert [
            i["name"] for i in list_executions_from_logs(logs, GROUP, MACHINE, end_ms=end_ms)
        ] == [
            "bad",
            "ok",
        ]


def test_a_missing_log_group_is_an_ops_error_naming_it() -> None:
    logs = boto3.client("logs", region_name="eu-west-1")
    with Stubber(logs) as stub:
        stub.add_client_error("filter_log_events", "ResourceNotFoundException", "gone")
        with pytest.raises(OpsError, match=f"log group {GROUP} does not exist"):
            read_execution_history(logs, GROUP, EXPRESS_ARN)


@pytest.mark.parametrize(
    ("configuration", "problem"),
    [
        ({"level": "OFF"}, "no CloudWatch Logs log group"),
        (logging("ERROR"), "level ERROR"),
        (logging(data=False), "IncludeExecutionData is false"),
    ],
)
def test_an_express_machine_that_cannot_be_traced_says_what_to_change(
    configuration: dict[str, Any], problem: str
) -> None:
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    description = {
        "stateMachineArn": MACHINE,
        "name": "ImagePipeline-X",
        "definition": "{}",
        "roleArn": "arn:aws:iam::111122223333:role/r",
        "type": "EXPRESS",
        "creationDate": T0,
        "loggingConfiguration": configuration,
    }
    with Stubber(sfn) as stub:
        stub.add_response("describe_state_machine", description, {"stateMachineArn": MACHINE})
        with pytest.raises(OpsError) as raised:
            aws.state_machine_facts(sfn, MACHINE)
    assert problem in str(raised.value)
    assert "Level ALL with IncludeExecutionData true" in str(raised.value)
    assert "WorkflowType=EXPRESS" in str(raised.value)


def test_express_executions_never_call_step_functions_history_apis() -> None:
    # Given an EXPRESS machine and a logs client answering the history
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    logs = boto3.client("logs", region_name="eu-west-1")
    machine = aws.StateMachine(MACHINE, aws.EXPRESS, GROUP)
    records = log_records(processed().events, EXPRESS_ARN)
    with Stubber(sfn) as sfn_stub, Stubber(logs) as logs_stub:
        logs_stub.add_response(
            "filter_log_events", {"events": [log_event(r) for r in records]}, None
        )
        executions = aws.Executions(aws.Clients(sfn=sfn, cloudformation=None, logs=logs), machine)
        # When it is described and its history read twice
        description = executions.describe(EXPRESS_ARN)
        events = executions.history(EXPRESS_ARN)
        assert executions.history(EXPRESS_ARN) is events
        # Then one FilterLogEvents answered all of it, and Step Functions was not asked
        logs_stub.assert_no_pending_responses()
        sfn_stub.assert_no_pending_responses()
    assert description["status"] == "SUCCEEDED"


def test_a_map_run_childs_machine_is_read_as_standard_and_an_unknown_one_is_an_error() -> None:
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    child = MACHINE.replace("stateMachine", "execution") + "/Backfill:item-1"
    gone = MACHINE.replace("stateMachine", "execution") + ":run-1"
    with Stubber(sfn) as stub:
        stub.add_client_error("describe_state_machine", "StateMachineDoesNotExist", "no")
        stub.add_client_error("describe_state_machine", "StateMachineDoesNotExist", "no")
        assert aws.machine_of_execution(sfn, child) == aws.StateMachine(MACHINE + "/Backfill")
        with pytest.raises(OpsError, match="no such state machine"):
            aws.machine_of_execution(sfn, gone)
