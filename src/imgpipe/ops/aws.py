"""Step Functions and CloudFormation reads for the operator commands.

Every function takes its client as a parameter (tests pass moto-backed or stubbed
ones); `connect` builds real clients from the standard AWS configuration. Only
public, read-only APIs are called: ListStateMachines, DescribeStacks,
ListExecutions, DescribeExecution and GetExecutionHistory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from imgpipe.ops.errors import OpsError
from imgpipe.ops.history import ObjectRef, is_upload_of, pick_state_machine

# DescribeExecution has no batch form; a few calls in flight make a 1000-execution
# scan take seconds instead of a minute, and stay well inside the API's token bucket.
DESCRIBE_WORKERS = 8
STACK_OUTPUT = "StateMachineArn"

Progress = Callable[[int], None]


@dataclass(frozen=True)
class AwsOptions:
    """`--profile`, `--region`, `--endpoint-url`; `None` leaves it to boto3's own lookup
    (AWS_PROFILE, AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, config files)."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None


@dataclass(frozen=True)
class Clients:
    sfn: Any
    cloudformation: Any


def connect(options: AwsOptions) -> Clients:
    session = boto3.Session(profile_name=options.profile, region_name=options.region)
    # An unreachable endpoint should fail in seconds, not after botocore's default
    # 60 s timeouts; throttling during a long scan is retried with backoff.
    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"mode": "standard", "max_attempts": 4},
    )
    return Clients(
        sfn=session.client("stepfunctions", endpoint_url=options.endpoint_url, config=config),
        cloudformation=session.client(
            "cloudformation", endpoint_url=options.endpoint_url, config=config
        ),
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def state_machine_from_stack(cloudformation: Any, stack: str) -> str:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        if _code(error) == "ValidationError":
            msg = f"no CloudFormation stack named {stack}"
            raise OpsError(msg) from error
        raise
    for output in stacks[0].get("Outputs", []) if stacks else []:
        if output.get("OutputKey") == STACK_OUTPUT:
            return str(output["OutputValue"])
    msg = f"stack {stack} has no {STACK_OUTPUT} output (is it an imgpipe stack?)"
    raise OpsError(msg)


def discover_state_machine(sfn: Any) -> str:
    machines: list[dict[str, Any]] = []
    for page in sfn.get_paginator("list_state_machines").paginate():
        machines.extend(page.get("stateMachines", []))
    return pick_state_machine(machines)


def resolve_state_machine(
    clients: Clients, *, state_machine: str | None = None, stack: str | None = None
) -> str:
    """`--state-machine`, else the stack's output, else the one `*imagepipeline*` machine."""
    if state_machine:
        return state_machine
    if stack:
        return state_machine_from_stack(clients.cloudformation, stack)
    return discover_state_machine(clients.sfn)


def recent_executions(
    sfn: Any, state_machine: str, *, status: str | None = None, limit: int
) -> Iterator[dict[str, Any]]:
    """ListExecutions items, newest first, at most `limit` of them."""
    arguments: dict[str, Any] = {"stateMachineArn": state_machine}
    if status:
        arguments["statusFilter"] = status
    paginator = sfn.get_paginator("list_executions")
    pages = paginator.paginate(**arguments, PaginationConfig={"PageSize": min(limit, 1000)})
    seen = 0
    try:
        for page in pages:
            for item in page.get("executions", []):
                yield item
                seen += 1
                if seen >= limit:
                    return
    except ClientError as error:
        if _code(error) in ("StateMachineDoesNotExist", "InvalidArn"):
            msg = f"no such state machine: {state_machine}"
            raise OpsError(msg) from error
        raise


def describe(sfn: Any, execution_arn: str) -> dict[str, Any]:
    try:
        return dict(sfn.describe_execution(executionArn=execution_arn))
    except ClientError as error:
        if _code(error) in ("ExecutionDoesNotExist", "InvalidArn"):
            msg = f"no such execution: {execution_arn}"
            raise OpsError(msg) from error
        raise


def describe_all(
    sfn: Any, execution_arns: list[str], progress: Progress | None = None
) -> list[dict[str, Any]]:
    """DescribeExecution for each ARN, concurrently, in the order given."""

    def one(arn: str) -> dict[str, Any]:
        description = describe(sfn, arn)
        if progress is not None:
            progress(1)
        return description

    if len(execution_arns) <= 1:
        return [one(arn) for arn in execution_arns]
    with ThreadPoolExecutor(max_workers=DESCRIBE_WORKERS) as pool:
        return list(pool.map(one, execution_arns))


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of an execution, oldest first (all pages)."""
    events: list[dict[str, Any]] = []
    paginator = sfn.get_paginator("get_execution_history")
    try:
        for page in paginator.paginate(
            executionArn=execution_arn,
            includeExecutionData=True,
            PaginationConfig={"PageSize": 1000},
        ):
            events.extend(page.get("events", []))
    except ClientError as error:
        if _code(error) in ("ExecutionDoesNotExist", "InvalidArn"):
            msg = f"no such execution: {execution_arn}"
            raise OpsError(msg) from error
        raise
    return events


@dataclass(frozen=True)
class Search:
    """The executions found for one upload and how far back the scan went."""

    matches: list[dict[str, Any]]
    scanned: int


def find_uploads(
    sfn: Any,
    state_machine: str,
    wanted: ObjectRef,
    *,
    scan: int,
    latest: bool = False,
    progress: Progress | None = None,
) -> Search:
    """DescribeExecution responses of executions for `wanted`, newest first.

    ListExecutions carries no input, so each candidate is described; pages are
    described as they arrive so `latest` stops at the first match.
    """
    matches: list[dict[str, Any]] = []
    scanned = 0
    batch: list[str] = []

    def flush() -> bool:
        nonlocal scanned
        for description in describe_all(sfn, batch, progress):
            scanned += 1
            if is_upload_of(description, wanted):
                matches.append(description)
                if latest:
                    return True
        batch.clear()
        return False

    for item in recent_executions(sfn, state_machine, limit=scan):
        batch.append(str(item["executionArn"]))
        if len(batch) >= DESCRIBE_WORKERS * 4 and flush():
            return Search(matches, scanned)
    if batch:
        flush()
    return Search(matches, scanned)
