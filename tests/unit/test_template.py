"""template.yaml: lint-clean, and the CloudFormation SAM makes of it is least-privilege,
encrypted, traced and wired the way the functions and the state machine expect.

Nothing here calls AWS: cfn-lint runs in-process, and the SAM transform runs offline
with a managed-policy loader stub (samtranslator's own tests do the same) after local
code paths are swapped for s3:// URIs, as `sam package` would.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import decode
from moto.events.models import EventPattern
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from samtranslator.translator.transform import transform

from imgpipe.config import folder_config, resize_config, validate_config
from imgpipe.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ASL = ROOT / "statemachine" / "pipeline.asl.json"

FUNCTIONS = ("ValidateFunction", "ResizeFunction", "StoreFunction", "ForgetFunction")
FOLDERS = ("validate", "resize", "store", "forget")
TABLE = "SourceStateTable"
ARTIFACTS = "s3://imgpipe-artifacts/"


# ---------------------------------------------------------------- fixtures


class _NoManagedPolicies:
    """samtranslator asks for the account's managed-policy map only to resolve
    policy *names*; the template uses none, so an empty map keeps AWS out of it."""

    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    template, matches = decode(str(TEMPLATE))
    assert not matches, [m.message for m in matches]
    assert template is not None
    return json.loads(json.dumps(template))


@pytest.fixture(scope="module")
def cfn(sam: dict[str, Any]) -> dict[str, Any]:
    packaged = copy.deepcopy(sam)
    for resource in packaged["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str):
                props[key] = ARTIFACTS + props[key]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return transform(packaged, {}, _NoManagedPolicies())


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def layer_logical_id(cfn: dict[str, Any], sam_id: str) -> str:
    """SAM renames layers to <LogicalId><content hash>."""
    (found,) = [k for k in resources(cfn, "AWS::Lambda::LayerVersion") if k.startswith(sam_id)]
    return found


def defaults(sam: dict[str, Any]) -> dict[str, str]:
    return {k: str(v.get("Default")) for k, v in sam["Parameters"].items()}


# A tiny evaluator for the intrinsics the template uses, to read the deployed values of
# event patterns and environments for given parameter values.
NO_VALUE = object()


def resolve(
    value: Any, params: dict[str, str], conditions: dict[str, Any], refs: dict[str, str]
) -> Any:
    def cond(name: str) -> bool:
        return bool(resolve(conditions[name], params, conditions, refs))

    if isinstance(value, list):
        items = [resolve(v, params, conditions, refs) for v in value]
        return [v for v in items if v is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            if arg == "AWS::NoValue":
                return NO_VALUE
            return params[arg] if arg in params else refs[arg]
        if key == "Fn::If":
            return resolve(arg[1] if cond(arg[0]) else arg[2], params, conditions, refs)
        if key == "Fn::Sub" and isinstance(arg, str):
            return re.sub(
                r"\$\{([^}]+)\}", lambda m: params.get(m.group(1), refs.get(m.group(1), "")), arg
            )
        if key == "Fn::Equals":
            a, b = (resolve(x, params, conditions, refs) for x in arg)
            return a == b
        if key == "Fn::Not":
            return not resolve(arg[0], params, conditions, refs)
        if key == "Fn::And":
            return all(resolve(x, params, conditions, refs) for x in arg)
        if key == "Fn::Or":
            return any(resolve(x, params, conditions, refs) for x in arg)
        if key == "Condition":
            return cond(arg)
    out = {k: resolve(v, params, conditions, refs) for k, v in value.items()}
    return {k: v for k, v in out.items() if v is not NO_VALUE}


# ---------------------------------------------------------------- lint and shape


def test_cfn_lint_reports_nothing() -> None:
    matches = lint_file(TEMPLATE)
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


def test_fixed_logical_ids_have_their_types(sam: dict[str, Any]) -> None:
    expected = {
        "InputBucket": "AWS::S3::Bucket",
        "OutputBucket": "AWS::S3::Bucket",
        "ValidateFunction": "AWS::Serverless::Function",
        "ResizeFunction": "AWS::Serverless::Function",
        "StoreFunction": "AWS::Serverless::Function",
        "ForgetFunction": "AWS::Serverless::Function",
        "SourceStateTable": "AWS::DynamoDB::Table",
        "PillowLayer": "AWS::Serverless::LayerVersion",
        "CoreLayer": "AWS::Serverless::LayerVersion",
        "ImagePipeline": "AWS::Serverless::StateMachine",
        "StateMachineLogGroup": "AWS::Logs::LogGroup",
        "AlarmTopic": "AWS::SNS::Topic",
        "Dashboard": "AWS::CloudWatch::Dashboard",
    }
    assert {k: sam["Resources"][k]["Type"] for k in expected} == expected
    # and no other function or table hides next to them
    for kind in ("AWS::Serverless::Function", "AWS::DynamoDB::Table"):
        assert set(resources(sam, kind)) == {k for k, v in expected.items() if v == kind}


def test_functions_run_app_handler_from_their_own_folder(sam: dict[str, Any]) -> None:
    glob = sam["Globals"]["Function"]
    assert glob["Handler"] == "app.handler"
    assert glob["Runtime"] == {"Ref": "Runtime"}
    assert glob["Architectures"] == [{"Ref": "Architecture"}]
    for logical, folder in zip(FUNCTIONS, FOLDERS, strict=True):
        props = sam["Resources"][logical]["Properties"]
        assert props["CodeUri"] == f"functions/{folder}/"
        assert "Handler" not in props or props["Handler"] == "app.handler"
        assert (ROOT / "functions" / folder / "app.py").is_file()
    params = sam["Parameters"]
    assert params["Runtime"]["Default"] == "python3.13"
    assert params["Architecture"]["Default"] == "arm64"


def test_memory_and_timeouts_are_parameters_with_the_agreed_defaults(sam: dict[str, Any]) -> None:
    want = {"Validate": (256, 15), "Resize": (1024, 180), "Store": (256, 15)}
    for name, (memory, timeout) in want.items():
        props = sam["Resources"][f"{name}Function"]["Properties"]
        assert props["MemorySize"] == {"Ref": f"{name}MemorySize"}
        assert props["Timeout"] == {"Ref": f"{name}Timeout"}
        assert sam["Parameters"][f"{name}MemorySize"]["Default"] == memory
        assert sam["Parameters"][f"{name}Timeout"]["Default"] == timeout
    # forget lists and deletes a handful of keys, like store: it shares store's sizing.
    forget = sam["Resources"]["ForgetFunction"]["Properties"]
    assert forget["MemorySize"] == {"Ref": "StoreMemorySize"}
    assert forget["Timeout"] == {"Ref": "StoreTimeout"}


# ---------------------------------------------------------------- environment


def function_env(cfn: dict[str, Any], logical: str) -> dict[str, Any]:
    return cfn["Resources"][logical]["Properties"]["Environment"]["Variables"]


def test_function_environments_are_exactly_what_each_function_reads(cfn: dict[str, Any]) -> None:
    powertools = {
        "POWERTOOLS_SERVICE_NAME": "imgpipe",
        "POWERTOOLS_METRICS_NAMESPACE": {"Ref": "MetricsNamespace"},
        "POWERTOOLS_LOG_LEVEL": {"Ref": "LogLevel"},
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        "POWERTOOLS_TRACER_CAPTURE_ERROR": "true",
    }
    # every function claims or locks its source key in the one table, refuses events
    # for other buckets, and may clear its key's output folder; the rendition set is
    # shared (Globals) so validate's "up to date?" and resize's output cannot disagree
    state = {
        "STATE_TABLE": {"Ref": TABLE},
        "INPUT_BUCKET": {"Ref": "InputBucket"},
        "OUTPUT_BUCKET": {"Ref": "OutputBucket"},
        "OUTPUT_PREFIX": {"Ref": "OutputPrefix"},
        "RENDITIONS": {"Ref": "Renditions"},
        "OUTPUT_FORMATS": {"Ref": "OutputFormats"},
        "JPEG_QUALITY": {"Ref": "JpegQuality"},
        "WEBP_QUALITY": {"Ref": "WebpQuality"},
        "AVIF_QUALITY": {"Ref": "AvifQuality"},
        "ALLOW_UPSCALE": {"Ref": "AllowUpscale"},
        "MAX_ANIMATED_RENDITION_PIXELS": {"Ref": "MaxAnimatedRenditionPixels"},
        "BACKGROUND_COLOR": {"Ref": "BackgroundColor"},
    }
    limits = {
        "MAX_SOURCE_BYTES": {"Ref": "MaxSourceBytes"},
        "MAX_SOURCE_PIXELS": {"Ref": "MaxSourcePixels"},
        "MAX_FRAMES": {"Ref": "MaxFrames"},
        "MAX_ANIMATION_PIXELS": {"Ref": "MaxAnimationPixels"},
        "ALLOWED_FORMATS": {"Ref": "AllowedFormats"},
    }
    # validate estimates resize's decode memory from the largest rendition box
    assert function_env(cfn, "ValidateFunction") == {
        **powertools,
        **state,
        **limits,
        "DECODE_MEMORY_MB": {"Ref": "ResizeMemorySize"},
    }
    assert function_env(cfn, "ResizeFunction") == {
        **powertools,
        **state,
        **limits,
        "CACHE_CONTROL": {"Ref": "CacheControl"},
        "INPUT_KEY_PREFIX": {"Ref": "InputKeyPrefix"},
    }
    assert function_env(cfn, "StoreFunction") == {**powertools, **state}
    assert function_env(cfn, "ForgetFunction") == {**powertools, **state}


def test_parameter_defaults_are_the_documented_ones(sam: dict[str, Any]) -> None:
    assert {
        k: v
        for k, v in defaults(sam).items()
        if k
        in {
            "MetricsNamespace",
            "LogLevel",
            "MaxSourceBytes",
            "MaxSourcePixels",
            "MaxFrames",
            "MaxAnimationPixels",
            "AllowedFormats",
            "OutputPrefix",
            "Renditions",
            "OutputFormats",
            "JpegQuality",
            "WebpQuality",
            "AvifQuality",
            "AllowUpscale",
            "MaxAnimatedRenditionPixels",
            "BackgroundColor",
            "CacheControl",
            "InputKeyPrefix",
            "InputKeySuffix",
        }
    } == {
        "MetricsNamespace": "Imgpipe",
        "LogLevel": "INFO",
        "MaxSourceBytes": "52428800",
        "MaxSourcePixels": "80000000",
        "MaxFrames": "500",
        "MaxAnimationPixels": "1000000000",
        "AllowedFormats": "JPEG,PNG,WEBP,GIF,TIFF,AVIF,HEIF",
        "OutputPrefix": "",
        "Renditions": "thumb:320,medium:1024,large:2048",
        "OutputFormats": "webp,jpeg",
        "JpegQuality": "82",
        "WebpQuality": "80",
        "AvifQuality": "60",
        "AllowUpscale": "false",
        "MaxAnimatedRenditionPixels": "200000000",
        "BackgroundColor": "#ffffff",
        "CacheControl": "public, max-age=31536000",
        "InputKeyPrefix": "",
        "InputKeySuffix": "",
    }


PARSERS = {
    "ValidateFunction": validate_config,
    "ResizeFunction": resize_config,
    "StoreFunction": folder_config,
    "ForgetFunction": folder_config,
}


def deployed_environments(sam: dict[str, Any], cfn: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each function's environment as CloudFormation would set it with every default."""
    params = defaults(sam)
    refs = {
        "OutputBucket": "imgpipe-output-0123abcd",
        "InputBucket": "imgpipe-input-0123abcd",
        TABLE: "imgpipe-SourceStateTable-1A2B3C",
    }
    return {
        logical: {
            k: str(v)
            for k, v in resolve(function_env(cfn, logical), params, sam["Conditions"], refs).items()
        }
        for logical in FUNCTIONS
    }


def test_default_environment_is_accepted_by_the_functions_config(
    sam: dict[str, Any], cfn: dict[str, Any]
) -> None:
    # Given the environment CloudFormation would set with every default
    env = deployed_environments(sam, cfn)
    assert set(PARSERS) == set(FUNCTIONS)
    # When each function parses it at cold start, Then nothing is rejected
    validate = validate_config(env["ValidateFunction"])
    resize = resize_config(env["ResizeFunction"])
    store = folder_config(env["StoreFunction"])
    forget = folder_config(env["ForgetFunction"])
    assert validate.limits.max_bytes == 52428800
    assert validate.limits.max_animation_pixels == 1_000_000_000
    # validate budgets the decode for resize's memory and the largest rendition
    assert validate.limits.decode_memory_mb == 1024
    assert validate.limits.largest_rendition == 2048
    assert resize.limits.max_animation_pixels == 1_000_000_000
    assert len(resize.render.renditions) == 6
    # the animated-rendition cap reaches both: resize renders with it, validate
    # fingerprints it and budgets the memory of an animated pass with it
    assert resize.render.max_animated_pixels == 200_000_000
    assert validate.limits.max_animated_pixels == resize.limits.max_animated_pixels
    assert resize.input_prefix == ""
    assert store.output.bucket == "imgpipe-output-0123abcd"
    assert forget.output == store.output == resize.output == validate.output
    assert {validate.input_bucket, resize.input_bucket, store.input_bucket} == {
        "imgpipe-input-0123abcd"
    }
    # And all four claim in the same table
    states = {c.state_table for c in (validate, resize, store, forget)}
    assert states == {"imgpipe-SourceStateTable-1A2B3C"}


def test_the_local_cloud_hands_the_animation_cap_to_validate_and_resize() -> None:
    from imgpipe.local.template import Template

    def environments(overrides: dict[str, str]) -> dict[str, dict[str, str]]:
        template = Template(TEMPLATE, overrides)
        # names for the resources, as the local cloud gives them when it creates them
        template.resolver.physical.update(
            {logical: f"local-{logical.lower()}" for logical in template.data["Resources"]}
        )
        return {name: spec.environment for name, spec in template.functions().items()}

    # Given the template as the local cloud deploys it, with the cap overridden
    env = environments({"MaxAnimatedRenditionPixels": "0"})
    # When resize and validate parse their environment
    resize = resize_config(env["ResizeFunction"])
    validate = validate_config(env["ValidateFunction"])
    # Then no rendition moves, and validate fingerprints exactly what resize renders
    assert resize.render.max_animated_pixels == 0
    assert validate.render_fingerprint == resize.render.fingerprint
    default = resize_config(environments({})["ResizeFunction"])
    assert default.render.max_animated_pixels == 200_000_000
    assert default.render.fingerprint != resize.render.fingerprint


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_every_function_refuses_to_start_without_the_state_table(
    sam: dict[str, Any], cfn: dict[str, Any], logical: str
) -> None:
    env = deployed_environments(sam, cfn)[logical]
    del env["STATE_TABLE"]
    with pytest.raises(ConfigError, match="STATE_TABLE"):
        PARSERS[logical](env)


@pytest.mark.parametrize(
    ("parameter", "good", "bad"),
    [
        (
            "OutputPrefix",
            ["", "renditions/", "a/b", "a-b_c/v1.0/"],
            ["../x", "a/./b", "/abs", "a//b", ".hidden/"],
        ),
        ("InputKeyPrefix", ["", "uploads/", "a/b-c_d.e"], ["up*", "a b", "caf\u00e9/", "a\\b"]),
        ("InputKeySuffix", ["", ".jpg"], ["*.jpg", ".JP G"]),
        (
            "Renditions",
            [
                "thumb:320",
                "a:1,b-2:16384",
                "thumb:320,square:320:cover",
                "card:1200x630:cover,thumb:320",
            ],
            [
                "thumb",
                "Thumb:320",
                "thumb:0",
                "thumb:320,",
                "card:1200x630",
                "sq:320:fill",
                "sq:0:cover",
                "card:1200x0:cover",
            ],
        ),
        ("OutputFormats", ["webp", "jpeg,avif,png"], ["gif", "webp,", "WEBP"]),
        ("AllowedFormats", ["JPEG", "PNG,GIF"], ["jpeg", "BMP", ""]),
        ("BackgroundColor", ["#000000", "#A0b1C2"], ["ffffff", "#fff", "red"]),
        ("MetricsNamespace", ["Imgpipe", "Team/Imgpipe"], ["AWS/Lambda", ""]),
        (
            "AlarmTopicArn",
            [
                "",
                "arn:aws:sns:eu-west-1:111122223333:on-call",
                "arn:aws-cn:sns:cn-north-1:111122223333:x",
            ],
            [
                "on-call",
                "arn:aws:sns:eu-west-1:111122223333:on-call.fifo",
                "arn:aws:sqs:eu-west-1:1:x",
            ],
        ),
        (
            "AlarmEmail",
            ["", "ops@example.com", "a.b+imgpipe@ops.example.org"],
            ["ops", "a b@x.io", "a@b"],
        ),
        (
            "AlarmTopicKmsKeyId",
            [
                "",
                "alias/imgpipe-alarms",
                "1234abcd-12ab-34cd-56ef-1234567890ab",
                "mrk-1234abcd12ab34cd56ef1234567890ab",
                "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "arn:aws:kms:eu-west-1:111122223333:alias/imgpipe-alarms",
            ],
            # CloudWatch cannot publish to a topic under the AWS managed key
            [
                "alias/aws/sns",
                "arn:aws:kms:eu-west-1:111122223333:alias/aws/sns",
                "key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "sns",
            ],
        ),
    ],
)
def test_parameter_patterns_accept_sane_values_and_refuse_bad_ones(
    sam: dict[str, Any], parameter: str, good: list[str], bad: list[str]
) -> None:
    pattern = sam["Parameters"][parameter]["AllowedPattern"]
    assert [v for v in good if not re.fullmatch(pattern, v)] == []
    assert [v for v in bad if re.fullmatch(pattern, v)] == []


# ---------------------------------------------------------------- trigger


def the_rule(cfn: dict[str, Any]) -> dict[str, Any]:
    (rule,) = resources(cfn, "AWS::Events::Rule").values()
    return rule["Properties"]


def test_rule_matches_object_created_and_deleted_in_the_input_bucket(cfn: dict[str, Any]) -> None:
    pattern = the_rule(cfn)["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    # Deletions start the Forget path of the same state machine.
    assert pattern["detail-type"] == ["Object Created", "Object Deleted"]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "InputBucket"}]
    assert set(pattern) == {"source", "detail-type", "detail"}


def test_rule_target_is_the_state_machine_with_retries_and_a_dead_letter_queue(
    cfn: dict[str, Any],
) -> None:
    (target,) = the_rule(cfn)["Targets"]
    assert target["Arn"] == {"Ref": "ImagePipeline"}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["TriggerDeadLetterQueue", "Arn"]}}
    # The rule's role may start this state machine and nothing else.
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    statements = [
        s
        for p in cfn["Resources"][role_id]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
    ]
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        ("states:StartExecution", {"Ref": "ImagePipeline"})
    ]


def test_only_the_rule_may_send_to_the_dead_letter_queue(cfn: dict[str, Any]) -> None:
    rule_id = next(iter(resources(cfn, "AWS::Events::Rule")))
    policy = cfn["Resources"]["TriggerDeadLetterQueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": "TriggerDeadLetterQueue"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}
    }
    queue = cfn["Resources"]["TriggerDeadLetterQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 1209600


def s3_event(
    bucket: str, key: str, detail_type: str = "Object Created", source: str = "aws.s3"
) -> dict[str, Any]:
    """An S3 EventBridge event in the shape AWS documents for its detail-type."""
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {
            "key": key,
            "size": 5,
            "etag": "b1946ac92492d2347c6235b4d2611184",
            "sequencer": "00617F08299329D189",
        },
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "reason": "PutObject",
    }
    if detail_type == "Object Deleted":
        # A delete marker: no size or ETag, the marker's version id instead.
        detail["object"] = {
            "key": key,
            "version-id": "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF",
            "sequencer": "00617F0829C0D18D52",
        }
        detail["reason"] = "DeleteObject"
        detail["deletion-type"] = "Delete Marker Created"
    elif detail_type == "Object Restore Completed":
        detail["reason"] = "Restore Completed"
        detail["restore-expiry-time"] = "2026-12-04T00:00:00Z"
        detail["source-storage-class"] = "GLACIER"
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-11-27T00:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": detail,
    }


# What the input bucket also tells EventBridge; none of it may start an execution.
OTHER_S3_EVENTS = (
    "Object Restore Initiated",
    "Object Restore Completed",
    "Object Restore Expired",
    "Object Tags Added",
    "Object Tags Deleted",
    "Object ACL Updated",
    "Object Storage Class Changed",
    "Object Access Tier Changed",
)


KEYS = [
    "uploads/cat.jpg",
    "uploads/deep/dog.jpg",
    "uploads/cat.png",
    "other/cat.jpg",
    "cat.jpg",
    "uploads/",
]


@pytest.mark.parametrize(
    ("prefix", "suffix", "started"),
    [
        ("", "", set(KEYS)),
        (
            "uploads/",
            "",
            {"uploads/cat.jpg", "uploads/deep/dog.jpg", "uploads/cat.png", "uploads/"},
        ),
        ("", ".jpg", {"uploads/cat.jpg", "uploads/deep/dog.jpg", "other/cat.jpg", "cat.jpg"}),
        ("uploads/", ".jpg", {"uploads/cat.jpg", "uploads/deep/dog.jpg"}),
    ],
)
def test_key_filters_start_exactly_the_matching_uploads(
    sam: dict[str, Any], cfn: dict[str, Any], prefix: str, suffix: str, started: set[str]
) -> None:
    # Given the rule's pattern as deployed with these filter parameters
    params = {**defaults(sam), "InputKeyPrefix": prefix, "InputKeySuffix": suffix}
    raw = resolve(
        the_rule(cfn)["EventPattern"], params, sam["Conditions"], {"InputBucket": "in-bucket"}
    )
    assert "Fn::" not in json.dumps(raw)
    if not prefix and not suffix:
        assert "object" not in raw["detail"]
    # moto's EventBridge pattern parser rejects malformed patterns
    pattern = EventPattern.load(json.dumps(raw))

    # When uploads arrive, Then exactly the filtered keys in the input bucket match
    def matches(event: dict[str, Any]) -> bool:
        return bool(pattern.matches_event(event))  # type: ignore[arg-type]

    for detail_type in ("Object Created", "Object Deleted"):
        matched = {key for key in KEYS if matches(s3_event("in-bucket", key, detail_type))}
        assert matched == started, detail_type
        # And nothing from another bucket, or from another source, ever matches
        for key in KEYS:
            assert not matches(s3_event("other-bucket", key, detail_type)), (detail_type, key)
            assert not matches(s3_event("in-bucket", key, detail_type, "my.app")), key
    # And the bucket's other notifications do not start executions
    for detail_type in OTHER_S3_EVENTS:
        assert not [k for k in KEYS if matches(s3_event("in-bucket", k, detail_type))], detail_type


# ---------------------------------------------------------------- permissions


def role_statements(cfn: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    props = cfn["Resources"][role_id]["Properties"]
    return [s for p in props.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def managed(cfn: dict[str, Any], role_id: str) -> set[str]:
    arns = cfn["Resources"][role_id]["Properties"].get("ManagedPolicyArns", [])
    return {a if isinstance(a, str) else json.dumps(a) for a in arns}


# What each function may do is checked over the deployed roles, evaluated as IAM
# would, in test_least_privilege.py.


def test_source_state_table_is_on_demand_expiring_and_encrypted(cfn: dict[str, Any]) -> None:
    (logical,) = resources(cfn, "AWS::DynamoDB::Table")
    assert logical == TABLE
    props = cfn["Resources"][TABLE]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in props
    # imgpipe.claims keys items by "pk" (bucket/key) and sets expires_at on each
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert "GlobalSecondaryIndexes" not in props
    assert "LocalSecondaryIndexes" not in props


# SAM's LambdaInvokePolicy: the function and its versions/aliases (the trailing *).
LAMBDA_INVOKE_ARN = (
    "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${functionName}*"
)


# What the Step Functions developer guide lists for logging to CloudWatch Logs: delivery
# APIs without resource-level permissions. Nothing that reads logs or writes log events.
LOG_DELIVERY_ACTIONS = [
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
]


def test_state_machine_may_invoke_the_four_functions_deliver_its_logs_and_publish_only(
    cfn: dict[str, Any],
) -> None:
    role = cfn["Resources"]["ImagePipeline"]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    invoked = set()
    others = []
    for statement in role_statements(cfn, role):
        assert statement["Effect"] == "Allow"
        if statement["Action"] != ["lambda:InvokeFunction"]:
            others.append(statement)
            continue
        template, variables = statement["Resource"]["Fn::Sub"]
        assert template == LAMBDA_INVOKE_ARN
        invoked.add(variables["functionName"]["Ref"])
    assert invoked == set(FUNCTIONS)
    # The only other statements: CloudWatch Logs delivery for the execution log, and
    # the downstream events on the configured bus (test_least_privilege evaluates it).
    assert others == [
        {
            "Sid": "AnnounceChanges",
            "Effect": "Allow",
            "Action": "events:PutEvents",
            "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}"
                ":event-bus/${EventBusName}"
            },
        },
        {
            "Sid": "DeliverExecutionLogs",
            "Effect": "Allow",
            "Action": LOG_DELIVERY_ACTIONS,
            "Resource": "*",
        },
    ]
    # Tracing is the only managed policy: X-Ray segments, no other service.
    assert managed(cfn, role) == {"arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"}


# ---------------------------------------------------------------- layers


def test_pillow_only_on_resize_and_core_on_every_function(cfn: dict[str, Any]) -> None:
    pillow = {"Ref": layer_logical_id(cfn, "PillowLayer")}
    core = {"Ref": layer_logical_id(cfn, "CoreLayer")}
    attached = {f: cfn["Resources"][f]["Properties"]["Layers"] for f in FUNCTIONS}
    assert attached == {
        "ValidateFunction": [core],
        "ResizeFunction": [core, pillow],
        "StoreFunction": [core],
        "ForgetFunction": [core],
    }


def test_layers_are_built_by_their_makefiles_for_the_template_target(sam: dict[str, Any]) -> None:
    for logical, folder in (("PillowLayer", "pillow"), ("CoreLayer", "core")):
        layer = sam["Resources"][logical]
        assert layer["Metadata"]["BuildMethod"] == "makefile"
        assert layer["Metadata"]["BuildArchitecture"] == {"Ref": "Architecture"}
        assert layer["Properties"]["CompatibleRuntimes"] == [{"Ref": "Runtime"}]
        assert layer["Properties"]["CompatibleArchitectures"] == [{"Ref": "Architecture"}]
        makefile_dir = layer["Metadata"].get("ContextPath", layer["Properties"]["ContentUri"])
        makefile = (ROOT / makefile_dir / "Makefile").read_text(encoding="utf-8")
        assert Path(makefile_dir).parts[-1] == folder
        assert re.search(rf"^build-{logical}:", makefile, re.MULTILINE)
    # CoreLayer's content is the shared package; only src/ is copied for the build.
    assert sam["Resources"]["CoreLayer"]["Properties"]["ContentUri"] == "src/"
    assert (ROOT / "src" / "imgpipe" / "__init__.py").is_file()


def test_layer_makefile_defaults_follow_the_template_defaults(sam: dict[str, Any]) -> None:
    text = (ROOT / "layers" / "pip.mk").read_text(encoding="utf-8")
    found = dict(re.findall(r"^(ARCHITECTURE|RUNTIME)\s*\?=\s*(\S+)", text, re.MULTILINE))
    assert found == {
        "ARCHITECTURE": sam["Parameters"]["Architecture"]["Default"],
        "RUNTIME": sam["Parameters"]["Runtime"]["Default"],
    }


def test_layers_pin_everything_and_leave_boto3_to_the_runtime() -> None:
    for folder in ("pillow", "core"):
        lines = [
            line.split("#", 1)[0].strip()
            for line in (ROOT / "layers" / folder / "requirements.txt").read_text().splitlines()
        ]
        pins = [line for line in lines if line]
        assert pins
        assert all(
            re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.]*", p) for p in pins
        ), pins
        assert not [p for p in pins if re.match(r"(boto3|botocore|s3transfer)\b", p)]


def test_layer_pins_are_the_versions_the_project_runs_and_tests() -> None:
    def pins(lines: list[str]) -> dict[str, tuple[str, frozenset[str]]]:
        found: dict[str, tuple[str, frozenset[str]]] = {}
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                req = Requirement(line)
                found[canonicalize_name(req.name)] = (str(req.specifier), frozenset(req.extras))
        return found

    layers = {}
    for folder in ("pillow", "core"):
        text = (ROOT / "layers" / folder / "requirements.txt").read_text(encoding="utf-8")
        layers.update(pins(text.splitlines()))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = pins(project["dependencies"])
    lock = pins((ROOT / "requirements" / "dev.lock").read_text(encoding="utf-8").splitlines())
    # Every run-time dependency of pyproject ships in a layer at the same version and
    # extras, except what the Lambda runtime provides.
    shipped = {name: pin for name, pin in runtime.items() if name != "boto3"}
    assert shipped == {name: layers.get(name) for name in shipped}
    # Every layer pin is the version the tests run against.
    assert {n: spec for n, (spec, _) in layers.items()} == {n: lock[n][0] for n in layers}
    # HEIF decodes with pi-heif; pillow-heif (bundles the GPL x265) is for tests only.
    assert "pi-heif" in layers
    assert "pillow-heif" not in layers
    assert "pillow-heif" in pins(project["optional-dependencies"]["dev"])


# ---------------------------------------------------------------- storage


def test_buckets_block_public_access_encrypt_and_deny_plain_http(cfn: dict[str, Any]) -> None:
    buckets = resources(cfn, "AWS::S3::Bucket")
    assert set(buckets) == {"InputBucket", "OutputBucket"}
    policies = {
        p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]
        for p in resources(cfn, "AWS::S3::BucketPolicy").values()
    }
    for logical, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        deny = [
            s
            for s in policies[logical]["Statement"]
            if s["Effect"] == "Deny"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            and s["Principal"] == "*"
            and s["Action"] == "s3:*"
        ]
        assert len(deny) == 1
        assert deny[0]["Resource"] == [
            {"Fn::GetAtt": [logical, "Arn"]},
            {"Fn::Sub": f"${{{logical}.Arn}}/*"},
        ]


def test_input_bucket_sends_events_to_eventbridge_and_is_versioned(sam: dict[str, Any]) -> None:
    props = sam["Resources"]["InputBucket"]["Properties"]
    assert props["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    assert props["VersioningConfiguration"] == {"Status": {"Ref": "InputBucketVersioning"}}
    assert sam["Parameters"]["InputBucketVersioning"]["Default"] == "Enabled"
    assert sam["Resources"]["InputBucket"]["DeletionPolicy"] == "Retain"


# ---------------------------------------------------------------- observability


def test_functions_and_state_machine_are_traced(cfn: dict[str, Any]) -> None:
    for logical in FUNCTIONS:
        assert cfn["Resources"][logical]["Properties"]["TracingConfig"] == {"Mode": "Active"}
    machine = cfn["Resources"]["ImagePipeline"]["Properties"]
    assert machine["TracingConfiguration"] == {"Enabled": True}
    # the type is the WorkflowType parameter, STANDARD by default (docs/workflows.md)
    assert machine["StateMachineType"] == {"Ref": "WorkflowType"}


def test_each_function_logs_to_its_own_retained_log_group(cfn: dict[str, Any]) -> None:
    groups = resources(cfn, "AWS::Logs::LogGroup")
    used = []
    for logical, folder in zip(FUNCTIONS, FOLDERS, strict=True):
        ref = cfn["Resources"][logical]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert ref == f"{logical}LogGroup"
        assert groups[ref]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert groups[ref]["Properties"]["LogGroupName"] == {
            "Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{folder}"
        }
        used.append(ref)
    assert len(set(used)) == len(FUNCTIONS) == 4
    # plus the state machines' execution logs, and nothing else
    assert set(groups) == {*used, "StateMachineLogGroup", "BackfillLogGroup"}


def test_state_machine_logs_to_its_own_vended_log_group_at_the_chosen_level(
    sam: dict[str, Any], cfn: dict[str, Any]
) -> None:
    group = cfn["Resources"]["StateMachineLogGroup"]
    assert group["Properties"] == {
        # /aws/vendedlogs/ keeps the account's CloudWatch Logs resource policy small
        "LogGroupName": {"Fn::Sub": "/aws/vendedlogs/states/${AWS::StackName}-pipeline"},
        "RetentionInDays": {"Ref": "LogRetentionDays"},
    }
    assert group["DeletionPolicy"] == group["UpdateReplacePolicy"] == "Delete"
    logging = cfn["Resources"]["ImagePipeline"]["Properties"]["LoggingConfiguration"]
    # STANDARD logs at the chosen level; EXPRESS keeps no history, so it logs everything
    for workflow, level_value, expected_level in (
        ("STANDARD", "ERROR", "ERROR"),
        ("STANDARD", "OFF", "OFF"),
        ("EXPRESS", "OFF", "ALL"),
    ):
        params = {**defaults(sam), "WorkflowType": workflow, "StateMachineLogLevel": level_value}
        assert resolve(logging["Level"], params, sam["Conditions"], {}) == expected_level
    # Step Functions wants the log group ARN ending in ":*", which is what Arn returns
    assert logging["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["StateMachineLogGroup", "Arn"]}}}
    ]
    level = sam["Parameters"]["StateMachineLogLevel"]
    assert level["Default"] == "ERROR"
    assert level["AllowedValues"] == ["ALL", "ERROR", "FATAL", "OFF"]
    data = sam["Parameters"]["StateMachineIncludeExecutionData"]
    assert data["Default"] == "false"
    assert data["AllowedValues"] == ["true", "false"]
    # the operator is told what "true" puts in the log
    assert "input" in data["Description"]
    assert "output" in data["Description"]
    assert "never image bytes" in data["Description"]
    # IncludeExecutionData is a real boolean for either parameter value, false by default
    for value, expected in (("false", False), ("true", True)):
        params = {**defaults(sam), "StateMachineIncludeExecutionData": value}
        resolved = resolve(logging["IncludeExecutionData"], params, sam["Conditions"], {})
        assert resolved is expected, value
        # EXPRESS always logs the data: its log group is the only history there is
        params = {**params, "WorkflowType": "EXPRESS"}
        resolved = resolve(logging["IncludeExecutionData"], params, sam["Conditions"], {})
        assert resolved is True, value
    workflow = sam["Parameters"]["WorkflowType"]
    assert workflow["Default"] == "STANDARD"
    assert workflow["AllowedValues"] == ["STANDARD", "EXPRESS"]


def alarm_topic(sam: dict[str, Any], **overrides: str) -> dict[str, Any] | None:
    """The AlarmTopic resource's properties as deployed with these parameters (None: absent)."""
    params = {**defaults(sam), **overrides}
    resource = sam["Resources"]["AlarmTopic"]
    if not resolve({"Condition": resource["Condition"]}, params, sam["Conditions"], {}):
        return None
    refs = {"AWS::StackName": "imgpipe"}
    props: dict[str, Any] = resolve(resource["Properties"], params, sam["Conditions"], refs)
    return props


def test_alarm_topic_is_created_unless_one_is_given_and_subscribes_the_email(
    sam: dict[str, Any],
) -> None:
    for name in ("AlarmTopicArn", "AlarmEmail", "AlarmTopicKmsKeyId"):
        assert sam["Parameters"][name]["Default"] == ""
    # By default: a topic of the stack's own, nobody subscribed, no key
    assert alarm_topic(sam) == {"TopicName": "imgpipe-alarms", "DisplayName": "imgpipe alarms"}
    # An e-mail address becomes the topic's (only) subscription
    topic = alarm_topic(sam, AlarmEmail="ops@example.com")
    assert topic is not None
    assert topic["Subscription"] == [{"Protocol": "email", "Endpoint": "ops@example.com"}]
    # A customer managed key encrypts it
    topic = alarm_topic(sam, AlarmTopicKmsKeyId="alias/imgpipe-alarms")
    assert topic is not None
    assert topic["KmsMasterKeyId"] == "alias/imgpipe-alarms"
    # A topic of one's own replaces it (and the e-mail is the owner's business then)
    given = "arn:aws:sns:eu-west-1:111122223333:on-call"
    assert alarm_topic(sam, AlarmTopicArn=given, AlarmEmail="ops@example.com") is None


def test_alarm_topic_never_uses_the_aws_managed_key(sam: dict[str, Any]) -> None:
    # CloudWatch cannot publish to a topic encrypted with alias/aws/sns (the AWS managed
    # key's policy cannot grant cloudwatch.amazonaws.com the key): alarms would notify
    # nobody. Only a customer managed key from the parameter, or none.
    props = sam["Resources"]["AlarmTopic"]["Properties"]
    assert props["KmsMasterKeyId"] == {
        "Fn::If": ["EncryptAlarmTopic", {"Ref": "AlarmTopicKmsKeyId"}, {"Ref": "AWS::NoValue"}]
    }
    assert "alias/aws/sns" not in json.dumps(sam["Resources"])


TOPIC = {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
TIMEOUTS = {
    "ValidateFunction": "ValidateTimeout",
    "ResizeFunction": "ResizeTimeout",
    "StoreFunction": "StoreTimeout",
    # forget runs with store's sizing
    "ForgetFunction": "StoreTimeout",
}


def alarm_metrics(props: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """(namespace, metric, dimension name, dimension value) of each metric an alarm reads."""
    stats = (
        [q["MetricStat"] for q in props["Metrics"] if "MetricStat" in q]
        if "Metrics" in props
        else [{"Metric": props}]
    )
    found = []
    for stat in stats:
        metric = stat["Metric"]
        (dimension,) = metric["Dimensions"]
        found.append(
            (metric["Namespace"], metric["MetricName"], dimension["Name"], dimension["Value"])
        )
    return found


def test_alarms_watch_failures_dead_letters_throttles_and_timeouts_not_rejections(
    cfn: dict[str, Any],
) -> None:
    alarms = resources(cfn, "AWS::CloudWatch::Alarm")
    watched = {
        logical: metric
        for logical, props in alarms.items()
        for metric in alarm_metrics(props["Properties"])
    }
    expected = {
        "ExecutionsFailedAlarm": (
            "AWS/States",
            "ExecutionsFailed",
            "StateMachineArn",
            {"Ref": "ImagePipeline"},
        ),
        "ExecutionsTimedOutAlarm": (
            "AWS/States",
            "ExecutionsTimedOut",
            "StateMachineArn",
            {"Ref": "ImagePipeline"},
        ),
        "DeadLettersAlarm": (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            {"Fn::GetAtt": ["TriggerDeadLetterQueue", "QueueName"]},
        ),
    }
    for function in FUNCTIONS:
        name = function.removesuffix("Function")
        ref = {"Ref": function}
        expected[f"{name}ThrottlesAlarm"] = ("AWS/Lambda", "Throttles", "FunctionName", ref)
        expected[f"{name}NearTimeoutAlarm"] = ("AWS/Lambda", "Duration", "FunctionName", ref)
    assert watched == expected
    assert len(alarms) == len(expected) == 11
    # A rejection is a Lambda error by design (the handler raises; the ASL catches it):
    # alarming on Errors would page for every bad upload.
    assert not [m for m in watched.values() if m[1] == "Errors"]


def test_every_alarm_is_named_for_the_stack_and_notifies_the_topic(cfn: dict[str, Any]) -> None:
    names = set()
    for logical, alarm in resources(cfn, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        name = props["AlarmName"]["Fn::Sub"]
        assert name.startswith("${AWS::StackName}-"), logical
        names.add(name)
        assert props["AlarmActions"] == [TOPIC], logical
        assert props["OKActions"] == [TOPIC], logical
        assert props["TreatMissingData"] == "notBreaching", logical
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", logical
        assert props["AlarmDescription"], logical
    assert len(names) == 11


def test_count_alarms_fire_on_the_first_event_in_five_minutes(cfn: dict[str, Any]) -> None:
    alarms = resources(cfn, "AWS::CloudWatch::Alarm")
    counting = [k for k in alarms if k.endswith(("ThrottlesAlarm", "FailedAlarm", "LettersAlarm"))]
    assert len(counting) == 6
    for logical in counting:
        props = alarms[logical]["Properties"]
        statistic = "Maximum" if logical == "DeadLettersAlarm" else "Sum"
        assert (props["Statistic"], props["Period"], props["EvaluationPeriods"]) == (
            statistic,
            300,
            1,
        ), logical
        assert props["Threshold"] == 1, logical


def test_near_timeout_alarms_compare_p99_duration_with_80_percent_of_each_timeout(
    sam: dict[str, Any], cfn: dict[str, Any]
) -> None:
    alarms = resources(cfn, "AWS::CloudWatch::Alarm")
    for function, timeout in TIMEOUTS.items():
        props = alarms[f"{function.removesuffix('Function')}NearTimeoutAlarm"]["Properties"]
        duration, share = props["Metrics"]
        assert duration["Id"] == "duration"
        assert duration["ReturnData"] is False
        assert duration["MetricStat"]["Stat"] == "p99"
        assert duration["MetricStat"]["Period"] == 300
        # CloudFormation cannot multiply: the expression divides by the timeout in ms
        assert share["ReturnData"] is True
        assert share["Expression"] == {"Fn::Sub": f"duration / (${{{timeout}}} * 1000)"}
        assert props["Threshold"] == 0.8
        assert (props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (3, 2)
        # With the defaults it is metric math over numbers: p99 (ms) / (timeout s * 1000)
        expression = resolve(share["Expression"], defaults(sam), sam["Conditions"], {})
        match = re.fullmatch(r"duration / \((\d+) \* 1000\)", expression)
        assert match, expression
        assert int(match.group(1)) == int(defaults(sam)[timeout])


def test_outputs_name_buckets_state_machine_and_dead_letter_queue(sam: dict[str, Any]) -> None:
    outputs = {k: v["Value"] for k, v in sam["Outputs"].items()}
    assert outputs == {
        "InputBucketName": {"Ref": "InputBucket"},
        "OutputBucketName": {"Ref": "OutputBucket"},
        "StateMachineArn": {"Ref": "ImagePipeline"},
        "DeadLetterQueueUrl": {"Ref": "TriggerDeadLetterQueue"},
        "DashboardUrl": {
            "Fn::Sub": "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home"
            "?region=${AWS::Region}#dashboards/dashboard/${Dashboard}"
        },
        "AlarmNotificationTopicArn": {
            "Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]
        },
        "StateMachineLogGroupName": {"Ref": "StateMachineLogGroup"},
        "BackfillStateMachineArn": {"Ref": "BackfillStateMachine"},
    }


# ---------------------------------------------------------------- state machine wiring


def test_definition_substitutions_are_the_four_function_aliases_and_the_event_bus(
    sam: dict[str, Any], cfn: dict[str, Any]
) -> None:
    props = sam["Resources"]["ImagePipeline"]["Properties"]
    assert props["DefinitionUri"] == "statemachine/pipeline.asl.json"
    # The `live` alias of each published version: executions in flight during a
    # deploy keep calling the code they started with
    expected = {f"{f}Arn": {"Ref": f"{f}.Alias"} for f in FUNCTIONS}
    assert set(expected) == {
        "ValidateFunctionArn",
        "ResizeFunctionArn",
        "StoreFunctionArn",
        "ForgetFunctionArn",
    }
    events = {"EventBusName": {"Ref": "EventBusName"}, "EventSource": {"Ref": "EventSource"}}
    assert props["DefinitionSubstitutions"] == {**expected, **events}
    # and SAM hands CloudFormation the aliases it publishes, next to the uploaded definition
    machine = cfn["Resources"]["ImagePipeline"]["Properties"]
    assert machine["DefinitionSubstitutions"] == {
        **{f"{f}Arn": {"Ref": f"{f}Aliaslive"} for f in FUNCTIONS},
        **events,
    }
    for function in FUNCTIONS:
        alias = cfn["Resources"][f"{function}Aliaslive"]
        assert alias["Type"] == "AWS::Lambda::Alias"
        assert alias["Properties"]["Name"] == "live"
        version = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
        assert cfn["Resources"][version]["Type"] == "AWS::Lambda::Version"
    assert machine["DefinitionS3Location"]["Key"] == "statemachine/pipeline.asl.json"


def test_every_asl_placeholder_has_a_substitution(sam: dict[str, Any]) -> None:
    if not ASL.is_file():
        pytest.skip(f"{ASL.relative_to(ROOT)} is not written yet; nothing to check")
    text = ASL.read_text(encoding="utf-8")
    json.loads(text)
    placeholders = set(re.findall(r"\$\{([^}]*)\}", text))
    substitutions = set(sam["Resources"]["ImagePipeline"]["Properties"]["DefinitionSubstitutions"])
    assert placeholders - substitutions == set(), "placeholders CloudFormation would leave as-is"
    assert substitutions - placeholders == set(), (
        "functions wired to the state machine but never invoked"
    )
