"""The local cloud deploys every state machine of template.yaml: the backfill's Distributed
Map lists a prefix of the input bucket (every page, or nothing) and runs the pipeline's
rendering path once per object."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import (
    StateCredentials,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ResourceRuntimePart,
)

from helpers import jpeg, local_up
from imgpipe.local.cloud import (
    ACCOUNT,
    BACKFILL_STATE_MACHINE,
    REGION,
    STATE_MACHINE,
    ExecutionRecord,
    LocalCloud,
    read_s3_listing,
    template_parameters,
)
from imgpipe.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "statemachine" / "backfill.asl.json"

pytestmark = pytest.mark.xdist_group("local-backfill")


def backfill(cloud: LocalCloud, prefix: str) -> tuple[ExecutionRecord, dict[str, Any]]:
    """Run the backfill over `prefix` of the input bucket; its record and its Map Run."""
    arn = cloud.sfn.start_execution(
        stateMachineArn=cloud.backfill_state_machine_arn,
        name=str(uuid.uuid4()),
        input=json.dumps({"bucket": cloud.input_bucket, "prefix": prefix, "mode": "all"}),
    )["executionArn"]
    record = cloud.wait(arn, prefix)
    (run,) = cloud.sfn.list_map_runs(executionArn=arn)["mapRuns"]
    return record, cloud.sfn.describe_map_run(mapRunArn=run["mapRunArn"])


# -- deployment ------------------------------------------------------------------------


def test_both_state_machines_are_deployed_under_their_template_names(cloud: LocalCloud) -> None:
    # The pipeline keeps <stack>-<logical id>; the backfill has a Name property
    assert cloud.state_machine_arn.endswith(":stateMachine:imgpipe-local-imagepipeline")
    assert cloud.backfill_state_machine_arn.endswith(":stateMachine:imgpipe-local-backfill")
    assert {logical: m.arn for logical, m in cloud.state_machines.items()} == {
        STATE_MACHINE: cloud.state_machine_arn,
        BACKFILL_STATE_MACHINE: cloud.backfill_state_machine_arn,
    }
    names = {m["name"] for m in cloud.sfn.list_state_machines()["stateMachines"]}
    assert {"imgpipe-local-imagepipeline", "imgpipe-local-backfill"} <= names


def test_backfill_machine_is_the_asl_file_with_substitutions(cloud: LocalCloud) -> None:
    machine = cloud.sfn.describe_state_machine(stateMachineArn=cloud.backfill_state_machine_arn)
    assert machine["type"] == "STANDARD"
    assert "${" not in machine["definition"]
    deployed = json.loads(machine["definition"])
    source = json.loads(ASL.read_text())
    assert deployed["States"].keys() == source["States"].keys()
    render = deployed["States"]["RenderExisting"]
    # The local cloud's BackfillExecutionType: the only one moto's grammar accepts
    assert render["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }
    for task in ("Validate", "Resize", "Store"):
        function = render["ItemProcessor"]["States"][task]["Parameters"]["FunctionName"]
        name = cloud.names[f"{task}Function"]
        assert function == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:live"
    assert render["ResultWriter"]["Parameters"] == {
        "Bucket": cloud.output_bucket,
        "Prefix": "imgpipe-backfill",
    }
    settings = deployed["States"]["Settings"]["Parameters"]
    assert settings["max_concurrency.$"] == "States.StringToJson('40')"


def test_backfill_machine_logs_errors_with_data_to_its_log_group(cloud: LocalCloud) -> None:
    machine = cloud.sfn.describe_state_machine(stateMachineArn=cloud.backfill_state_machine_arn)
    group = "/aws/vendedlogs/states/imgpipe-local-backfill"
    assert machine["loggingConfiguration"] == {
        "level": "ERROR",
        "includeExecutionData": True,
        "destinations": [
            {
                "cloudWatchLogsLogGroup": {
                    "logGroupArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:*"
                }
            }
        ],
    }
    assert cloud.state_machines[BACKFILL_STATE_MACHINE].log_group == group
    # And the pipeline's own log group is still the one its executions are read from
    assert cloud.state_machine_log_group == "/aws/vendedlogs/states/imgpipe-local-pipeline"
    groups = cloud.client("logs").describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group]


def test_references_to_each_machine_resolve_to_what_was_deployed(cloud: LocalCloud) -> None:
    resolver = cloud.template.resolver
    for logical, machine in cloud.state_machines.items():
        assert resolver.resolve({"Ref": logical}) == machine.arn
        assert resolver.resolve({"Fn::GetAtt": [logical, "Name"]}) == machine.name
        assert resolver.resolve({"Fn::GetAtt": [logical, "Arn"]}) == machine.arn
    outputs = cloud.template.data["Outputs"]
    assert resolver.resolve(outputs["BackfillStateMachineArn"]["Value"]) == (
        cloud.backfill_state_machine_arn
    )
    assert resolver.resolve(outputs["StateMachineArn"]["Value"]) == cloud.state_machine_arn


def test_only_the_pipeline_is_a_rule_target(cloud: LocalCloud) -> None:
    events = cloud.client("events")
    (rule,) = events.list_rules()["Rules"]
    targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert [t["Arn"] for t in targets] == [cloud.state_machine_arn]


def test_local_child_execution_type_is_standard_unless_the_caller_says_otherwise() -> None:
    template = ROOT / "template.yaml"
    assert Template(template).parameters["BackfillExecutionType"] == "EXPRESS"
    local = Template(template, template_parameters())
    assert local.parameters["BackfillExecutionType"] == "STANDARD"
    chosen = Template(template, template_parameters({"BackfillExecutionType": "EXPRESS"}))
    assert chosen.parameters["BackfillExecutionType"] == "EXPRESS"


def test_moto_refuses_express_child_executions(cloud: LocalCloud) -> None:
    # Why the local cloud deploys STANDARD children: if this starts failing, moto has
    # learnt EXPRESS and LOCAL_PARAMETERS can go.
    definition, _ = cloud.template.state_machine(BACKFILL_STATE_MACHINE)
    express = definition.replace('"ExecutionType": "STANDARD"', '"ExecutionType": "EXPRESS"')
    assert express != definition
    with pytest.raises(ClientError, match="EXPRESS"):
        cloud.sfn.create_state_machine(
            name="backfill-express-children",
            definition=express,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/unused",
        )


# -- executions ------------------------------------------------------------------------


def test_backfill_renders_every_object_under_the_prefix(cloud: LocalCloud) -> None:
    # Given two JPEGs that were in the bucket before the stack (no upload event)
    keys = ["existing/a.jpg", "existing/b.jpg"]
    with cloud.bridge.paused():
        for key in keys:
            cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=jpeg(80, 60))
        cloud.s3.put_object(Bucket=cloud.input_bucket, Key="elsewhere/c.jpg", Body=jpeg())
    # When the backfill runs over their prefix
    record, run = backfill(cloud, "existing/")
    # Then it succeeds with one item per object, each rendered by the pipeline's path
    assert record.status == "SUCCEEDED", (record.error, record.cause)
    assert run["status"] == "SUCCEEDED"
    assert run["itemCounts"]["total"] == 2
    assert run["itemCounts"]["succeeded"] == 2
    for key in keys:
        manifest = cloud.s3.get_object(Bucket=cloud.output_bucket, Key=f"{key}/manifest.json")
        assert json.loads(manifest["Body"].read())["renditions"]
    listed = cloud.s3.list_objects_v2(Bucket=cloud.output_bucket, Prefix="elsewhere/")
    assert listed["KeyCount"] == 0
    # And the ResultWriter manifest lists a result file with each object's output, as
    # AWS writes them (the local cloud mends moto's manifest-only writer)
    assert record.output is not None
    written = record.output["ResultWriterDetails"]
    assert written["Bucket"] == cloud.output_bucket
    assert written["Key"].startswith("imgpipe-backfill/")
    body = cloud.s3.get_object(Bucket=written["Bucket"], Key=written["Key"])["Body"].read()
    manifest = json.loads(body)
    assert manifest["MapRunArn"] == run["mapRunArn"]
    (results,) = manifest["ResultFiles"]["SUCCEEDED"]
    assert manifest["ResultFiles"]["FAILED"] == []
    records = json.loads(
        cloud.s3.get_object(Bucket=written["Bucket"], Key=results["Key"])["Body"].read()
    )
    outputs = {json.loads(r["Output"])["source"]["key"]: json.loads(r["Output"]) for r in records}
    assert {k: o["status"] for k, o in outputs.items()} == dict.fromkeys(keys, "processed")
    assert {r["Status"] for r in records} == {"SUCCEEDED"}


def test_backfill_of_an_empty_prefix_succeeds_with_no_items(cloud: LocalCloud) -> None:
    record, run = backfill(cloud, "nothing-here/")
    assert record.status == "SUCCEEDED", (record.error, record.cause)
    assert run["status"] == "SUCCEEDED"
    assert run["itemCounts"]["total"] == 0


def test_executions_started_without_a_name_get_one_each(cloud: LocalCloud) -> None:
    # Given StartExecution without a name (as `aws stepfunctions start-execution` sends it)
    started = [
        cloud.sfn.start_execution(
            stateMachineArn=cloud.backfill_state_machine_arn,
            input=json.dumps({"bucket": cloud.input_bucket, "prefix": "none/", "mode": "all"}),
        )["executionArn"]
        for _ in range(2)
    ]
    # Then each is a new execution named with a UUID, as AWS names them
    assert len(set(started)) == 2
    for arn in started:
        uuid.UUID(arn.rsplit(":", 1)[1])
        assert cloud.wait(arn).status == "SUCCEEDED"


def test_the_item_reader_lists_every_page_of_the_prefix(cloud: LocalCloud) -> None:
    # Given 1,005 objects under a prefix (more than one ListObjectsV2 page) and one outside
    bucket = "backfill-listing"
    cloud.s3.create_bucket(Bucket=bucket)
    expected = [f"many/{index:04d}.jpg" for index in range(1005)]
    for key in [*expected, "other/x.jpg"]:
        cloud.s3.put_object(Bucket=bucket, Key=key, Body=b"x")

    def read(prefix: str) -> list[dict[str, Any]]:
        env: Any = SimpleNamespace(stack=[{"Bucket": bucket, "Prefix": prefix}])
        read_s3_listing(
            env,
            ResourceRuntimePart(account=ACCOUNT, region=REGION),
            StateCredentials(role_arn=f"arn:aws:iam::{ACCOUNT}:role/backfill"),
        )
        (items,) = env.stack
        return list(items)

    # When the Map's ItemReader lists it
    items = read("many/")
    # Then every key comes back, once, with the fields of the listing
    assert sorted(item["Key"] for item in items) == expected
    assert {"Key", "Size", "ETag", "LastModified"} <= set(items[0])
    # And an empty listing is no items, not an error
    assert read("missing/") == []


# -- imgpipe local up ------------------------------------------------------------------


def test_local_up_serves_the_backfill_machine(tmp_path: Path) -> None:
    with local_up(tmp_path) as served:
        facts, deadline = served.facts, served.deadline
        # Given the backfill machine the endpoint announces
        arn = facts["backfill_state_machine_arn"]
        sfn = boto3.client(
            "stepfunctions",
            endpoint_url=facts["endpoint_url"],
            region_name=facts["region"],
            aws_access_key_id="anything",
            aws_secret_access_key="anything",
        )
        # When a plain client starts it over an empty prefix (the reader goes through
        # the server's own S3 endpoint)
        execution = sfn.start_execution(
            stateMachineArn=arn,
            input=json.dumps({"bucket": facts["input_bucket"], "prefix": "none/", "mode": "all"}),
        )["executionArn"]
        status = "RUNNING"
        while status == "RUNNING":
            assert time.monotonic() < deadline, "the backfill did not finish"
            time.sleep(0.1)
            status = sfn.describe_execution(executionArn=execution)["status"]
        # Then it succeeds
        assert status == "SUCCEEDED"
    assert arn.endswith(":stateMachine:imgpipe-local-backfill")
    assert arn in served.output
