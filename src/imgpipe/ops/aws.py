"""Step Functions and CloudFormation reads for the operator commands.

Every function takes its client as a parameter (tests pass moto-backed or stubbed
ones); `connect` builds real clients from the standard AWS configuration. Only
public, read-only APIs are called: ListStateMachines, DescribeStacks,
DescribeStateMachine, ListExecutions, DescribeExecution, GetExecutionHistory and
CloudWatch Logs' FilterLogEvents.

`Executions` is where the workflow type matters: a STANDARD machine's executions
come from Step Functions (ListExecutions, DescribeExecution, GetExecutionHistory);
an EXPRESS machine's, which those APIs refuse, from its log group
(`imgpipe.ops.history.logs`). Both give the same dicts, so nothing above it branches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from imgpipe.ops.errors import OpsError
from imgpipe.ops.history import (
    STATE_MACHINE_HINT,
    ObjectRef,
    describe_from_events,
    is_upload_of,
    list_executions_from_logs,
    log_group_of,
    pick_state_machine,
    read_execution_history,
    state_machine_of,
)

# DescribeExecution has no batch form; a few calls in flight make a 1000-execution
# scan take seconds instead of a minute, and stay well inside the API's token bucket.
DESCRIBE_WORKERS = 8
STACK_OUTPUT = "StateMachineArn"
EXPRESS = "EXPRESS"
STANDARD = "STANDARD"
# An Express machine's executions are listed from its log group over growing windows
# back from now, so a recent listing does not read the whole group.
LOG_LOOKBACKS = (timedelta(hours=1), timedelta(days=1), timedelta(days=7), None)

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
    logs: Any = None
    # `imgpipe audit` lists and reads the buckets, and reads the functions' configuration.
    s3: Any = None
    lambda_: Any = None


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
        logs=session.client("logs", endpoint_url=options.endpoint_url, config=config),
        s3=session.client("s3", endpoint_url=options.endpoint_url, config=config),
        lambda_=session.client("lambda", endpoint_url=options.endpoint_url, config=config),
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def state_machine_from_stack(cloudformation: Any, stack: str, output: str = STACK_OUTPUT) -> str:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        if _code(error) == "ValidationError":
            msg = f"no CloudFormation stack named {stack}"
            raise OpsError(msg) from error
        raise
    for item in stacks[0].get("Outputs", []) if stacks else []:
        if item.get("OutputKey") == output:
            return str(item["OutputValue"])
    msg = f"stack {stack} has no {output} output (is it an imgpipe stack?)"
    raise OpsError(msg)


def discover_state_machine(sfn: Any, hint: str = STATE_MACHINE_HINT) -> str:
    machines: list[dict[str, Any]] = []
    for page in sfn.get_paginator("list_state_machines").paginate():
        machines.extend(page.get("stateMachines", []))
    return pick_state_machine(machines, hint)


def resolve_state_machine(
    clients: Clients,
    *,
    state_machine: str | None = None,
    stack: str | None = None,
    output: str = STACK_OUTPUT,
    hint: str = STATE_MACHINE_HINT,
) -> str:
    """`--state-machine`, else the stack's output, else the one machine named `*hint*`
    (the pipeline's `*imagepipeline*` unless told otherwise)."""
    if state_machine:
        return state_machine
    if stack:
        return state_machine_from_stack(clients.cloudformation, stack, output)
    return discover_state_machine(clients.sfn, hint)


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
    executions: Executions,
    wanted: ObjectRef,
    *,
    scan: int,
    latest: bool = False,
    progress: Progress | None = None,
) -> Search:
    """DescribeExecution responses of executions for `wanted`, newest first.

    ListExecutions carries no input, so each candidate is described; pages are
    described as they arrive so `latest` stops at the first match. (An EXPRESS
    machine's listing already carries the input: describing costs no call.)
    """
    matches: list[dict[str, Any]] = []
    scanned = 0
    batch: list[str] = []

    def flush() -> bool:
        nonlocal scanned
        for description in executions.describe_all(batch, progress):
            scanned += 1
            if is_upload_of(description, wanted):
                matches.append(description)
                if latest:
                    return True
        batch.clear()
        return False

    for item in executions.recent(limit=scan):
        batch.append(str(item["executionArn"]))
        if len(batch) >= DESCRIBE_WORKERS * 4 and flush():
            return Search(matches, scanned)
    if batch:
        flush()
    return Search(matches, scanned)


@dataclass(frozen=True)
class StateMachine:
    """What the readers need to know of a state machine: its type and log group."""

    arn: str
    type: str = STANDARD
    log_group: str | None = None

    @property
    def express(self) -> bool:
        return self.type == EXPRESS


def express_logging_problem(description: Mapping[str, Any]) -> str | None:
    """Why an EXPRESS machine's log cannot rebuild its executions, or None when it can."""
    configuration = description.get("loggingConfiguration") or {}
    if log_group_of(description) is None:
        return "has no CloudWatch Logs log group destination"
    level = str(configuration.get("level") or "OFF")
    if level != "ALL":
        return f"logs at level {level}, which leaves out most history events"
    if not configuration.get("includeExecutionData"):
        return "logs without execution data (IncludeExecutionData is false)"
    return None


def state_machine_facts(sfn: Any, state_machine: str) -> StateMachine:
    """DescribeStateMachine, read for its type and log group.

    An EXPRESS machine whose log cannot rebuild its executions is an error that says
    what to change: nothing else records them.
    """
    try:
        description = sfn.describe_state_machine(stateMachineArn=state_machine)
    except ClientError as error:
        if _code(error) in ("StateMachineDoesNotExist", "InvalidArn"):
            msg = f"no such state machine: {state_machine}"
            raise OpsError(msg) from error
        raise
    kind = str(description.get("type") or STANDARD)
    if kind == EXPRESS:
        problem = express_logging_problem(description)
        if problem is not None:
            msg = (
                f"state machine {state_machine} is EXPRESS, so Step Functions keeps no "
                f"history of its executions and they are read from its log, but it {problem}: "
                "set its LoggingConfiguration to Level ALL with IncludeExecutionData true "
                "and a log group destination (the template's WorkflowType=EXPRESS does)"
            )
            raise OpsError(msg)
    return StateMachine(state_machine, kind, log_group_of(description))


def machine_of_execution(sfn: Any, execution_arn: str) -> StateMachine:
    """The state machine an execution ARN names, with its type.

    A `:express:` ARN is always EXPRESS. A `:execution:` ARN whose machine cannot be
    described (a Map Run's child, `Machine/label`) is read as Standard, the only kind
    Step Functions itself keeps.
    """
    state_machine = state_machine_of(execution_arn)
    try:
        return state_machine_facts(sfn, state_machine)
    except OpsError:
        child = execution_arn.split(":")[5] == "execution" and "/" in state_machine
        if child:
            return StateMachine(state_machine)
        raise


@dataclass
class Executions:
    """One state machine's executions, from wherever its type keeps them.

    STANDARD: ListExecutions, DescribeExecution, GetExecutionHistory. EXPRESS: the
    log group, through FilterLogEvents only; the listing already carries what
    DescribeExecution would add, and each history is read once.
    """

    clients: Clients
    machine: StateMachine
    _described: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    _histories: dict[str, list[dict[str, Any]]] = field(
        default_factory=dict, init=False, repr=False
    )
    _listing: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)

    @classmethod
    def of(cls, clients: Clients, state_machine: str) -> Executions:
        return cls(clients, state_machine_facts(clients.sfn, state_machine))

    @property
    def _log_group(self) -> str:
        assert self.machine.log_group is not None  # state_machine_facts checked it
        return self.machine.log_group

    def recent(self, *, status: str | None = None, limit: int) -> Iterator[dict[str, Any]]:
        """ListExecutions items, newest first, at most `limit` of them."""
        if not self.machine.express:
            yield from recent_executions(
                self.clients.sfn, self.machine.arn, status=status, limit=limit
            )
            return
        now = datetime.now(UTC)
        for lookback in LOG_LOOKBACKS:
            start_ms = None if lookback is None else int((now - lookback).timestamp() * 1000)
            items = list_executions_from_logs(
                self.clients.logs, self._log_group, self.machine.arn, start_ms=start_ms
            )
            wanted = [item for item in items if status is None or item["status"] == status]
            if len(wanted) >= limit or lookback is None:
                break
        for item in items:
            self._described[str(item["executionArn"])] = item
        yield from wanted[:limit]

    def listed(self) -> list[dict[str, Any]]:
        """Every execution of an EXPRESS machine in its log, newest first, read once."""
        if self._listing is None:
            self._listing = list_executions_from_logs(
                self.clients.logs, self._log_group, self.machine.arn
            )
            for item in self._listing:
                self._described.setdefault(str(item["executionArn"]), item)
        return self._listing

    def describe(self, execution_arn: str) -> dict[str, Any]:
        """DescribeExecution, or for EXPRESS the same fields rebuilt from the log."""
        if not self.machine.express:
            return describe(self.clients.sfn, execution_arn)
        if execution_arn not in self._described:
            events = self.history(execution_arn)
            self._described[execution_arn] = describe_from_events(execution_arn, events)
        return self._described[execution_arn]

    def describe_all(
        self, execution_arns: list[str], progress: Progress | None = None
    ) -> list[dict[str, Any]]:
        if not self.machine.express:
            return describe_all(self.clients.sfn, execution_arns, progress)
        described = []
        for arn in execution_arns:
            described.append(self.describe(arn))
            if progress is not None:
                progress(1)
        return described

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """Every event of an execution, oldest first."""
        if not self.machine.express:
            return history(self.clients.sfn, execution_arn)
        if execution_arn not in self._histories:
            events = read_execution_history(self.clients.logs, self._log_group, execution_arn)
            if not events:
                msg = (
                    f"no execution {execution_arn} in log group {self._log_group} (an "
                    "Express execution exists only in the log, for the group's retention)"
                )
                raise OpsError(msg)
            self._histories[execution_arn] = events
        return self._histories[execution_arn]
