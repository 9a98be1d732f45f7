"""The local cloud deploys template.yaml into moto: every resource type, with its settings,
and S3 uploads reach the state machine through the template's own rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.s3.models import s3_backends

from helpers import jpeg
from imgpipe.local.cloud import ACCOUNT, FUNCTION_PROPERTIES, LocalCloud
from imgpipe.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "statemachine" / "pipeline.asl.json"

pytestmark = pytest.mark.xdist_group("local-deploy")


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud.running(parameters={"InputKeyPrefix": "uploads/"}) as deployed:
        yield deployed


# -- deployment ------------------------------------------------------------------------


def test_every_resource_type_in_the_template_is_deployed(cloud: LocalCloud) -> None:
    in_template = {r["Type"] for r in cloud.template.data["Resources"].values()}
    deployed = {r.type for r in cloud.deployed}
    assert in_template <= deployed, in_template - deployed
    # And the SAM event source became a rule, AutoPublishAlias a version and an alias
    assert "AWS::Events::Rule" in deployed
    assert {"AWS::Lambda::Version", "AWS::Lambda::Alias"} <= deployed


def test_buckets_carry_the_template_settings(cloud: LocalCloud) -> None:
    s3 = cloud.s3
    # moto's GetBucketNotificationConfiguration omits the (empty) EventBridge element
    emulated = s3_backends[ACCOUNT]["aws"].buckets[cloud.input_bucket]
    assert emulated.notification_configuration is not None
    assert emulated.notification_configuration.event_bridge is not None
    assert s3.get_bucket_versioning(Bucket=cloud.input_bucket)["Status"] == "Enabled"
    for bucket in (cloud.input_bucket, cloud.output_bucket):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values())
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        assert rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
        # Resolved from the template (denying non-TLS), recorded, not installed in moto
        statement = cloud.bucket_policies[bucket]["Statement"][0]
        assert statement["Condition"]["Bool"]["aws:SecureTransport"] == "false"


def test_functions_get_their_template_handler_environment_and_layers(cloud: LocalCloud) -> None:
    lam = cloud.client("lambda")
    resize = lam.get_function_configuration(FunctionName=cloud.names["ResizeFunction"])
    validate = lam.get_function_configuration(FunctionName=cloud.names["ValidateFunction"])
    assert resize["Handler"] == "app.handler"
    assert resize["Environment"]["Variables"]["OUTPUT_BUCKET"] == cloud.output_bucket
    assert "CACHE_CONTROL" in resize["Environment"]["Variables"]
    assert "CACHE_CONTROL" not in validate["Environment"]["Variables"]
    assert len(resize["Layers"]) == 2
    assert len(validate["Layers"]) == 1
    assert resize["TracingConfig"]["Mode"] == "Active"
    assert resize["MemorySize"] == 1024
    # Least privilege travels with the function: resize may write the output bucket only
    role = resize["Role"].rsplit("/", 1)[1]
    iam = cloud.client("iam")
    statements = [
        s
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
        for s in iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]["Statement"]
    ]
    writes = [s for s in statements if "s3:PutObject" in s["Action"] and s["Effect"] == "Allow"]
    assert [w["Resource"] for w in writes] == [f"arn:aws:s3:::{cloud.output_bucket}/*"]


def test_state_machine_is_the_asl_file_with_substitutions(cloud: LocalCloud) -> None:
    deployed = json.loads(
        cloud.sfn.describe_state_machine(stateMachineArn=cloud.state_machine_arn)["definition"]
    )
    source = json.loads(ASL.read_text())
    assert deployed["States"].keys() == source["States"].keys()
    for task in ("Validate", "Resize", "Store"):
        function = deployed["States"][task]["Parameters"]["FunctionName"]
        assert function.startswith("arn:aws:lambda:")
        assert function.endswith(f":{cloud.names[f'{task}Function']}:live")


def test_rule_targets_the_state_machine_with_retries_and_a_dead_letter_queue(
    cloud: LocalCloud,
) -> None:
    events = cloud.client("events")
    (rule,) = events.list_rules()["Rules"]
    pattern = json.loads(rule["EventPattern"])
    assert pattern["detail"]["bucket"]["name"] == [cloud.input_bucket]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "uploads/"}]
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"] == cloud.state_machine_arn
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert target["DeadLetterConfig"]["Arn"].startswith("arn:aws:sqs:")


def test_every_function_property_in_the_template_is_deployed(cloud: LocalCloud) -> None:
    # Given the properties the template gives its functions (Globals.Function included)
    used = set(cloud.template.function_globals())
    for resource in cloud.template.data["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            used |= set(resource["Properties"])
    # Then the local deployer handles every one of them (it refuses to deploy others)
    assert used <= FUNCTION_PROPERTIES, used - FUNCTION_PROPERTIES
    assert {"AutoPublishAlias", "ReservedConcurrentExecutions"} <= used


def test_functions_are_published_and_invoked_through_their_live_alias(cloud: LocalCloud) -> None:
    lam = cloud.client("lambda")
    deployed = json.loads(
        cloud.sfn.describe_state_machine(stateMachineArn=cloud.state_machine_arn)["definition"]
    )
    for task in ("Validate", "Resize", "Store", "Forget"):
        name = cloud.names[f"{task}Function"]
        # Given AutoPublishAlias: live, each function has version 1 and the alias on it
        alias = lam.get_alias(FunctionName=name, Name="live")
        assert alias["FunctionVersion"] == "1"
        versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
        assert [v["Version"] for v in versions] == ["$LATEST", "1"]
        # And `!Ref <Function>.Alias` resolved to the alias ARN in the state machine
        task_arn = deployed["States"][task]["Parameters"]["FunctionName"]
        assert task_arn == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}:live"
        assert task_arn == alias["AliasArn"]
        assert cloud.template.resolver.ref(f"{task}Function.Version") == versions[1]["FunctionArn"]


def test_invoking_the_alias_reaches_the_local_function(cloud: LocalCloud) -> None:
    # Given the alias ARN the state machine calls
    lam = cloud.client("lambda")
    name = cloud.names["ValidateFunction"]
    alias_arn = lam.get_alias(FunctionName=name, Name="live")["AliasArn"]
    before = len(cloud.functions.invocations)
    # When it is invoked (by ARN, and by name with a qualifier)
    by_arn = lam.invoke(FunctionName=alias_arn, Payload=b"{}")
    by_name = lam.invoke(FunctionName=name, Qualifier="live", Payload=b"{}")
    # Then both calls ran the template's validate handler (a rejection of an empty event
    # is an answer from the handler, not from moto's stub)
    assert by_arn["StatusCode"] == by_name["StatusCode"] == 200
    calls = cloud.functions.invocations[before:]
    assert [c.function for c in calls] == ["ValidateFunction", "ValidateFunction"]


def test_reserved_concurrency_is_set_when_the_template_reserves_it(cloud: LocalCloud) -> None:
    lam = cloud.client("lambda")
    resize = lam.get_function_concurrency(FunctionName=cloud.names["ResizeFunction"])
    validate = lam.get_function_concurrency(FunctionName=cloud.names["ValidateFunction"])
    assert resize["ReservedConcurrentExecutions"] == 100
    assert "ReservedConcurrentExecutions" not in validate


def test_no_reserved_concurrency_when_the_parameter_is_zero() -> None:
    # Given ResizeReservedConcurrency=0 (the condition is false: AWS::NoValue)
    template = Template(ROOT / "template.yaml", {"ResizeReservedConcurrency": "0"})
    for logical in template.data["Resources"]:
        template.resolver.physical[logical] = logical.lower()
    # Then the function reserves nothing (it draws on the unreserved concurrency)
    assert template.functions()["ResizeFunction"].reserved_concurrency is None
    assert Template(ROOT / "template.yaml").resolver.condition("ReserveResizeConcurrency")


# -- event delivery ----------------------------------------------------------------------


def test_upload_reaches_the_state_machine_through_the_rule(cloud: LocalCloud) -> None:
    # Given the rule filters on the uploads/ prefix
    seen = len(cloud.bridge.deliveries)
    # When one object is put outside the prefix and one inside
    cloud.s3.put_object(Bucket=cloud.input_bucket, Key="elsewhere/a.jpg", Body=jpeg())
    record = cloud.upload("uploads/a.jpg", jpeg())
    # Then only the one inside started an execution, with S3's event as its input
    keys = [d.key for d in cloud.bridge.deliveries[seen:]]
    assert keys == ["uploads/a.jpg"]
    assert record.status == "SUCCEEDED"
    assert record.output is not None
    assert record.output["status"] == "processed"
    started = cloud.sfn.describe_execution(executionArn=record.arn)
    event = json.loads(started["input"])
    assert event["detail-type"] == "Object Created"
    assert event["detail"]["object"]["key"] == "uploads/a.jpg"
