"""The IAM roles SAM makes of template.yaml grant each function exactly what it needs.

The transformed template (test_template's offline `cfn` fixture) is evaluated, not read:
each role's statements get placeholder ARNs and the stack's parameter values substituted
(the defaults, then InputKeyPrefix=uploads/ and OutputPrefix=renditions/), and a small
IAM-like evaluator answers "may this role do this action on this ARN, in this request
context?" with IAM's rules: an explicit Deny wins, then any Allow, else denied; `*` in an
ARN matches across `/`; `...IfExists` conditions pass when the key is absent.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import test_template
from test_template import FUNCTIONS, TABLE, defaults, role_statements

# The offline SAM transform and the template it reads, shared with test_template.
sam = test_template.sam
cfn = test_template.cfn

INPUT_ARN = "arn:aws:s3:::imgpipe-input"
OUTPUT_ARN = "arn:aws:s3:::imgpipe-output"
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/imgpipe-state"
OTHER_TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/someone-else"

# The functions only ever read the input bucket.
READS = {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}

# Everything that writes, deletes or changes an object, a version or the bucket itself.
MUTATIONS = (
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectVersionAcl",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
    "s3:RestoreObject",
    "s3:AbortMultipartUpload",
    "s3:ReplicateObject",
    "s3:ReplicateDelete",
    "s3:BypassGovernanceRetention",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketAcl",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketNotification",
    "s3:PutEncryptionConfiguration",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutReplicationConfiguration",
    "s3:DeleteBucket",
)

TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:DescribeTable",
    "dynamodb:UpdateTable",
    "dynamodb:DeleteTable",
)

# After the per-source-key lock: conditional UpdateItem creates and changes the item.
DYNAMODB = {
    "ValidateFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "ResizeFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "StoreFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "ForgetFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
}

# SAM adds these to every function role; neither grants anything in S3 or DynamoDB.
SAM_MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}


# ---------------------------------------------------------------- an IAM-like evaluator


def glob(pattern: str) -> re.Pattern[str]:
    """IAM's ARN/action wildcards: `*` any run of characters (`/` included), `?` one."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """Every operator and every key must hold (AND); a key's values are ORed."""
    for operator, keys in condition.items():
        if_exists = operator.endswith("IfExists")
        base = operator.removesuffix("IfExists")
        if base not in ("StringLike", "StringEquals"):
            raise NotImplementedError(f"condition operator {operator}")
        for key, values in keys.items():
            if key not in context:
                if if_exists:
                    continue
                return False
            actual = context[key]
            if base == "StringEquals":
                ok = actual in listed(values)
            else:
                ok = any(glob(v).fullmatch(actual) for v in listed(values))
            if not ok:
                return False
    return True


def statement_applies(
    statement: Mapping[str, Any], action: str, arn: str, context: Mapping[str, str]
) -> bool:
    for unsupported in ("NotAction", "NotResource", "NotPrincipal"):
        if unsupported in statement:
            raise NotImplementedError(unsupported)
    # Action names are case-insensitive, ARNs are not.
    if not any(glob(a.lower()).fullmatch(action.lower()) for a in listed(statement["Action"])):
        return False
    if not any(glob(r).fullmatch(arn) for r in listed(statement["Resource"])):
        return False
    return condition_holds(statement.get("Condition", {}), context)


def allowed(
    statements: list[dict[str, Any]],
    action: str,
    arn: str,
    context: Mapping[str, str] | None = None,
) -> bool:
    context = context or {}
    effects = {s["Effect"] for s in statements if statement_applies(s, action, arn, context)}
    assert effects <= {"Allow", "Deny"}, effects
    return effects == {"Allow"}


# ---------------------------------------------------------------- the deployed statements


@dataclass(frozen=True)
class Stack:
    """Parameter values of one deployment, and the ARNs its names stand for."""

    input_prefix: str
    output_prefix: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def refs(self) -> dict[str, str]:
        return {
            "InputBucket.Arn": INPUT_ARN,
            "OutputBucket.Arn": OUTPUT_ARN,
            f"{TABLE}.Arn": TABLE_ARN,
            "AWS::Partition": "aws",
            "AWS::Region": "us-east-1",
            "AWS::AccountId": "123456789012",
            "AWS::StackName": "imgpipe",
            **{logical: f"imgpipe-{logical}" for logical in FUNCTIONS},
            "ImagePipeline": "arn:aws:states:us-east-1:123456789012:stateMachine:imgpipe",
            **self.params,
            "InputKeyPrefix": self.input_prefix,
            "OutputPrefix": self.output_prefix,
        }

    def input_key(self, key: str) -> str:
        return f"{INPUT_ARN}/{self.input_prefix}{key}"

    def output_key(self, key: str) -> str:
        return f"{OUTPUT_ARN}/{self.output_prefix}{key}"


def substitute(text: str, names: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in names, f"unresolved ${{{name}}} in {text!r}"
        return names[name]

    return re.sub(r"\$\{([^}]+)\}", one, text)


def evaluate(value: Any, stack: Stack) -> Any:
    """The intrinsics SAM leaves in IAM statements, with the stack's values."""
    refs = stack.refs
    if isinstance(value, list):
        return [evaluate(v, stack) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::Sub"}:
        arg = value["Fn::Sub"]
        if isinstance(arg, str):
            return substitute(arg, refs)
        text, variables = arg
        return substitute(text, {**refs, **{k: evaluate(v, stack) for k, v in variables.items()}})
    if set(value) == {"Fn::GetAtt"}:
        logical, attribute = value["Fn::GetAtt"]
        return refs[f"{logical}.{attribute}"]
    if set(value) == {"Ref"}:
        return refs[value["Ref"]]
    assert not any(k.startswith("Fn::") for k in value), value
    return {k: evaluate(v, stack) for k, v in value.items()}


def statements(cfn: dict[str, Any], role: str, stack: Stack) -> list[dict[str, Any]]:
    resolved = [evaluate(s, stack) for s in role_statements(cfn, role)]
    for statement in resolved:
        for arn in listed(statement["Resource"]):
            assert isinstance(arn, str), (role, statement)
    return resolved


def roles(cfn: dict[str, Any]) -> list[str]:
    return [k for k, v in cfn["Resources"].items() if v["Type"] == "AWS::IAM::Role"]


DEFAULT_PREFIXES = Stack("", "")
SET_PREFIXES = Stack("uploads/", "renditions/")
STACKS = pytest.mark.parametrize(
    "stack", [DEFAULT_PREFIXES, SET_PREFIXES], ids=["default-prefixes", "set-prefixes"]
)


@pytest.fixture(scope="module")
def parameters(sam: dict[str, Any]) -> dict[str, str]:
    return defaults(sam)


def with_params(stack: Stack, params: dict[str, str]) -> Stack:
    return Stack(stack.input_prefix, stack.output_prefix, params)


# ---------------------------------------------------------------- checks, reused below


def list_grant_problems(statements: list[dict[str, Any]], stack: Stack) -> list[str]:
    """Every Allow of s3:ListBucket names one bucket and that bucket's prefix."""
    expected = {INPUT_ARN: f"{stack.input_prefix}*", OUTPUT_ARN: f"{stack.output_prefix}*"}
    problems = []
    for statement in statements:
        if statement["Effect"] != "Allow" or not any(
            glob(a.lower()).fullmatch("s3:listbucket") for a in listed(statement["Action"])
        ):
            continue
        sid = statement.get("Sid", "?")
        for arn in listed(statement["Resource"]):
            if arn not in expected:
                problems.append(f"{sid}: ListBucket on {arn}")
                continue
            condition = {"StringLikeIfExists": {"s3:prefix": expected[arn]}}
            if statement.get("Condition") != condition:
                problems.append(f"{sid}: {statement.get('Condition')} instead of {condition}")
    return problems


def input_write_problems(statements: list[dict[str, Any]], stack: Stack) -> list[str]:
    samples = [INPUT_ARN, f"{INPUT_ARN}/x", stack.input_key("a/cat.jpg")]
    problems = [
        f"{action} on {arn}"
        for action in MUTATIONS
        for arn in samples
        if allowed(statements, action, arn, {"s3:prefix": ""}) or allowed(statements, action, arn)
    ]
    # Structurally too: whatever names the input bucket may only read it, by name.
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        touches_input = any(
            glob(r).fullmatch(arn) for r in listed(statement["Resource"]) for arn in samples
        )
        s3_actions = {
            a for a in listed(statement["Action"]) if glob(a.lower().split(":")[0]).fullmatch("s3")
        }
        if touches_input and not s3_actions <= READS:
            problems.append(f"{statement.get('Sid', '?')}: {sorted(s3_actions - READS)}")
    return problems


# ---------------------------------------------------------------- the evaluator itself


def test_evaluator_follows_iam_wildcards_explicit_deny_and_if_exists() -> None:
    # Given: an allow of a prefix, a deny of its manifests, a prefix-limited listing
    policy: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"{OUTPUT_ARN}/out/*"},
        {
            "Effect": "Deny",
            "Action": "s3:PutObject",
            "Resource": f"{OUTPUT_ARN}/out/*/manifest.json",
        },
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": OUTPUT_ARN,
            "Condition": {"StringLikeIfExists": {"s3:prefix": "out/*"}},
        },
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": INPUT_ARN,
            "Condition": {"StringLike": {"s3:prefix": "in/*"}},
        },
    ]
    # Then: `*` crosses `/`, an explicit Deny beats the Allow, nothing else is allowed
    assert allowed(policy, "s3:PutObject", f"{OUTPUT_ARN}/out/a/b/cat.jpg/thumb.webp")
    assert allowed(policy, "S3:putobject", f"{OUTPUT_ARN}/out/a/thumb.webp")
    assert not allowed(policy, "s3:PutObject", f"{OUTPUT_ARN}/out/a/b/cat.jpg/manifest.json")
    assert not allowed(policy, "s3:PutObject", f"{OUTPUT_ARN}/elsewhere/thumb.webp")
    assert not allowed(policy, "s3:PutObject", f"{OUTPUT_ARN}/OUT/a/thumb.webp")
    assert not allowed(policy, "s3:DeleteObject", f"{OUTPUT_ARN}/out/a/thumb.webp")
    assert not allowed(policy, "s3:PutObject", f"{INPUT_ARN}/out/a/thumb.webp")
    # IfExists: an absent key passes, a present one must match; plain StringLike
    # fails on an absent key
    assert allowed(policy, "s3:ListBucket", OUTPUT_ARN)
    assert allowed(policy, "s3:ListBucket", OUTPUT_ARN, {"s3:prefix": "out/a/"})
    assert not allowed(policy, "s3:ListBucket", OUTPUT_ARN, {"s3:prefix": "other/"})
    assert not allowed(policy, "s3:ListBucket", INPUT_ARN)
    assert allowed(policy, "s3:ListBucket", INPUT_ARN, {"s3:prefix": "in/x"})
    # and it refuses to guess about what it does not model
    arn_like = {**policy[0], "Condition": {"ArnLike": {"aws:SourceArn": "*"}}}
    with pytest.raises(NotImplementedError):
        allowed([arn_like], "s3:PutObject", f"{OUTPUT_ARN}/out/a")
    with pytest.raises(NotImplementedError):
        allowed([{"Effect": "Allow", "NotAction": "s3:Get*", "Resource": "*"}], "s3:x", "*")


@STACKS
def test_checks_report_a_lost_deny_an_unconditioned_listing_and_an_input_write(
    cfn: dict[str, Any], parameters: dict[str, str], stack: Stack
) -> None:
    # Given: resize's statements without the Deny, without a List condition, with a Put
    stack = with_params(stack, parameters)
    resize = statements(cfn, "ResizeFunctionRole", stack)
    manifest = stack.output_key("a/cat.jpg/manifest.json")
    assert not allowed(resize, "s3:PutObject", manifest)
    without_deny = [s for s in resize if s["Effect"] != "Deny"]
    unconditioned = copy.deepcopy(resize)
    for statement in unconditioned:
        statement.pop("Condition", None)
    writing = [*resize, {"Effect": "Allow", "Action": "s3:Put*", "Resource": f"{INPUT_ARN}/*"}]
    # Then: every check notices
    assert allowed(without_deny, "s3:PutObject", manifest)
    assert list_grant_problems(resize, stack) == []
    assert len(list_grant_problems(unconditioned, stack)) == 2
    assert input_write_problems(resize, stack) == []
    assert input_write_problems(writing, stack)


# ---------------------------------------------------------------- the functions' roles


def test_each_function_has_exactly_its_dynamodb_actions_on_the_state_table_only(
    cfn: dict[str, Any], parameters: dict[str, str]
) -> None:
    stack = with_params(DEFAULT_PREFIXES, parameters)
    for logical, expected in DYNAMODB.items():
        policy = statements(cfn, f"{logical}Role", stack)
        granted = {a for a in TABLE_ACTIONS if allowed(policy, a, TABLE_ARN)}
        assert granted == expected, logical
        assert not [a for a in TABLE_ACTIONS if allowed(policy, a, OTHER_TABLE_ARN)], logical
        assert not allowed(policy, "dynamodb:GetItem", f"{TABLE_ARN}/index/any"), logical
        # written out, not as a wildcard that happens to cover them
        named = {a for s in policy for a in listed(s["Action"]) if a.startswith("dynamodb:")}
        assert named == expected, logical


def s3_grants(policy: list[dict[str, Any]], stack: Stack) -> set[tuple[str, str]]:
    """(action, sample) pairs the policy allows, over labelled sample requests."""
    objects = {
        "upload": stack.input_key("a/cat.jpg"),
        "rendition": stack.output_key("a/cat.jpg/thumb.webp"),
        "manifest": stack.output_key("a/cat.jpg/manifest.json"),
    }
    if stack.input_prefix:
        objects["upload outside the prefix"] = f"{INPUT_ARN}/elsewhere/a/cat.jpg"
    if stack.output_prefix:
        objects["output outside the prefix"] = f"{OUTPUT_ARN}/elsewhere/a/cat.jpg/thumb.webp"
    object_actions = (
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectTagging",
        "s3:GetObjectAcl",
        *MUTATIONS,
    )
    grants = {
        (action, label)
        for label, arn in objects.items()
        for action in object_actions
        if allowed(policy, action, arn)
    }
    buckets = {
        "input": (INPUT_ARN, stack.input_prefix),
        "output": (OUTPUT_ARN, stack.output_prefix),
    }
    for label, (arn, prefix) in buckets.items():
        # the folder of one source, as the functions list it
        if allowed(policy, "s3:ListBucket", arn, {"s3:prefix": f"{prefix}a/cat.jpg/"}):
            grants.add(("s3:ListBucket", label))
        for action in ("s3:ListBucketVersions", "s3:ListBucketMultipartUploads", *MUTATIONS):
            if allowed(policy, action, arn, {"s3:prefix": prefix}):
                grants.add((action, f"{label} bucket"))
    return grants


READ_UPLOAD = {("s3:GetObject", "upload"), ("s3:ListBucket", "input")}
LIST_OUTPUTS = {("s3:ListBucket", "output")}
DELETE_OUTPUTS = {("s3:DeleteObject", "rendition"), ("s3:DeleteObject", "manifest")}
READ_OUTPUTS = {("s3:GetObject", "rendition"), ("s3:GetObject", "manifest")}

S3 = {
    "ValidateFunction": READ_UPLOAD
    | {("s3:GetObjectVersion", "upload")}
    | LIST_OUTPUTS
    | DELETE_OUTPUTS
    | {("s3:GetObject", "manifest")},
    "ResizeFunction": READ_UPLOAD
    | {("s3:GetObjectVersion", "upload")}
    | LIST_OUTPUTS
    | READ_OUTPUTS
    | DELETE_OUTPUTS
    | {("s3:PutObject", "rendition")},
    "StoreFunction": READ_UPLOAD
    | LIST_OUTPUTS
    | READ_OUTPUTS
    | DELETE_OUTPUTS
    | {("s3:PutObject", "manifest")},
    "ForgetFunction": READ_UPLOAD | LIST_OUTPUTS | READ_OUTPUTS | DELETE_OUTPUTS,
}


@STACKS
def test_each_function_gets_exactly_its_s3_access_inside_the_prefixes(
    cfn: dict[str, Any], parameters: dict[str, str], stack: Stack
) -> None:
    stack = with_params(stack, parameters)
    for logical, expected in S3.items():
        assert s3_grants(statements(cfn, f"{logical}Role", stack), stack) == expected, logical
        assert set(cfn["Resources"][f"{logical}Role"]["Properties"]["ManagedPolicyArns"]) == (
            SAM_MANAGED
        ), logical


@STACKS
def test_resize_writes_renditions_and_an_explicit_deny_keeps_it_off_manifests(
    cfn: dict[str, Any], parameters: dict[str, str], stack: Stack
) -> None:
    stack = with_params(stack, parameters)
    resize = statements(cfn, "ResizeFunctionRole", stack)
    for key in ("a/cat.jpg/thumb.webp", "a/cat.jpg/large.jpeg", "x/y/z.png/medium.avif"):
        assert allowed(resize, "s3:PutObject", stack.output_key(key)), key
    for key in ("a/cat.jpg/manifest.json", "x/y/z.png/manifest.json"):
        assert not allowed(resize, "s3:PutObject", stack.output_key(key)), key
    # The Allow covers the manifest: it is the Deny that refuses it.
    allows_only = [s for s in resize if s["Effect"] == "Allow"]
    assert allowed(allows_only, "s3:PutObject", stack.output_key("a/cat.jpg/manifest.json"))
    (deny,) = [s for s in resize if s["Effect"] == "Deny"]
    assert deny["Action"] == "s3:PutObject"
    assert deny["Resource"] == f"{OUTPUT_ARN}/{stack.output_prefix}*/manifest.json"
    # ... and it may still read and remove a stale manifest
    assert allowed(resize, "s3:GetObject", stack.output_key("a/cat.jpg/manifest.json"))
    assert allowed(resize, "s3:DeleteObject", stack.output_key("a/cat.jpg/manifest.json"))


@STACKS
def test_store_writes_manifests_and_no_other_object(
    cfn: dict[str, Any], parameters: dict[str, str], stack: Stack
) -> None:
    stack = with_params(stack, parameters)
    store = statements(cfn, "StoreFunctionRole", stack)
    for key in ("a/cat.jpg/manifest.json", "x/y/z.png/manifest.json"):
        assert allowed(store, "s3:PutObject", stack.output_key(key)), key
    for key in ("a/cat.jpg/thumb.webp", "a/cat.jpg/manifest.json.tmp", "manifest.json"):
        assert not allowed(store, "s3:PutObject", stack.output_key(key)), key
    assert not allowed(store, "s3:PutObject", stack.input_key("a/cat.jpg/manifest.json"))


@STACKS
def test_no_role_of_the_stack_may_change_anything_in_the_input_bucket(
    cfn: dict[str, Any], parameters: dict[str, str], stack: Stack
) -> None:
    stack = with_params(stack, parameters)
    for role in roles(cfn):
        assert input_write_problems(statements(cfn, role, stack), stack) == [], role
        managed = set(cfn["Resources"][role]["Properties"].get("ManagedPolicyArns", []))
        assert managed <= SAM_MANAGED, role


@STACKS
def test_every_list_bucket_grant_is_limited_to_its_bucket_prefix_and_keeps_404s(
    cfn: dict[str, Any], parameters: dict[str, str], stack: Stack
) -> None:
    stack = with_params(stack, parameters)
    for role in roles(cfn):
        policy = statements(cfn, role, stack)
        assert list_grant_problems(policy, stack) == [], role
    for logical in FUNCTIONS:
        policy = statements(cfn, f"{logical}Role", stack)
        for arn, prefix in ((INPUT_ARN, stack.input_prefix), (OUTPUT_ARN, stack.output_prefix)):
            if not allowed(policy, "s3:ListBucket", arn, {"s3:prefix": f"{prefix}a/"}):
                continue
            # The implicit ListBucket of a HEAD/GET on a missing key passes whether S3
            # leaves s3:prefix out or sets it to the key (see template.yaml).
            assert allowed(policy, "s3:ListBucket", arn), (logical, arn)
            assert allowed(policy, "s3:ListBucket", arn, {"s3:prefix": f"{prefix}a/x.jpg"})
            if prefix:
                for outside in ("", "elsewhere/", prefix.upper()):
                    ctx = {"s3:prefix": outside}
                    assert not allowed(policy, "s3:ListBucket", arn, ctx), (logical, outside)


def test_checks_cover_every_role_of_the_stack(cfn: dict[str, Any]) -> None:
    # Given: the roles SAM made; Then: one per function, the state machine's and its
    # trigger rule's (a new role must be looked at here), and every statement is one
    # the evaluator understands
    expected = {f"{f}Role" for f in FUNCTIONS} | {
        "ImagePipelineRole",
        "ImagePipelineObjectCreatedRole",
        "BackfillStateMachineRole",
    }
    assert set(roles(cfn)) == expected
    for role in roles(cfn):
        for statement in role_statements(cfn, role):
            assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, role


@STACKS
def test_backfill_lists_the_input_prefix_and_writes_only_its_results(
    cfn: dict[str, Any], parameters: dict[str, str], stack: Stack
) -> None:
    # Given: the backfill state machine's role; Then: it lists the input bucket inside
    # the prefix, writes result files under BackfillResultsPrefix/ only (no rendition,
    # no manifest of a source), and runs child executions of its own machine only
    stack = with_params(stack, parameters)
    policy = statements(cfn, "BackfillStateMachineRole", stack)
    results = parameters.get("BackfillResultsPrefix", "imgpipe-backfill")
    ctx = {"s3:prefix": f"{stack.input_prefix}photos/"}
    assert allowed(policy, "s3:ListBucket", INPUT_ARN, ctx)
    assert allowed(policy, "s3:PutObject", f"{OUTPUT_ARN}/{results}/0f3c/SUCCEEDED_0.json")
    for key in ("a/cat.jpg/manifest.json", "a/cat.jpg/thumb.webp"):
        assert not allowed(policy, "s3:PutObject", stack.output_key(key)), key
        assert not allowed(policy, "s3:GetObject", stack.input_key(key)), key
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:imgpipe-backfill"
    assert allowed(policy, "states:StartExecution", machine)
    assert not allowed(
        policy,
        "states:StartExecution",
        "arn:aws:states:us-east-1:123456789012:stateMachine:imgpipe",
    )


@pytest.mark.parametrize("bus", ["default", "apps"])
def test_the_state_machines_publish_on_the_configured_bus_only(
    cfn: dict[str, Any], parameters: dict[str, str], bus: str
) -> None:
    # Given: the pipeline's and the backfill's roles with EventBusName set; Then: each may
    # put events on that bus of its own account and Region, on no other bus, and no
    # function may publish at all (the state machine announces, after the manifest)
    stack = with_params(DEFAULT_PREFIXES, {**parameters, "EventBusName": bus})
    here = "arn:aws:events:us-east-1:123456789012:event-bus"
    for role in ("ImagePipelineRole", "BackfillStateMachineRole"):
        policy = statements(cfn, role, stack)
        assert allowed(policy, "events:PutEvents", f"{here}/{bus}"), role
        for other in (f"{here}/someone-else", f"{here}/{bus}-other", "*"):
            assert not allowed(policy, "events:PutEvents", other), (role, other)
        elsewhere = f"arn:aws:events:eu-west-1:123456789012:event-bus/{bus}"
        assert not allowed(policy, "events:PutEvents", elsewhere), role
    for function in FUNCTIONS:
        policy = statements(cfn, f"{function}Role", stack)
        assert not allowed(policy, "events:PutEvents", f"{here}/{bus}"), function
