"""What a deployed pipeline renders, read back from the stack itself.

The state machine's definition names the functions its tasks invoke (the `live` alias
of each); their environment is the configuration they run with. So the input bucket,
the output location, the rendition set's fingerprint and the upload limits come from
the same variables the functions parse at cold start (`imgpipe.config`), never from a
second copy of the template's parameters that could disagree with what is deployed.

Either state machine of the stack will do: the pipeline's, or the backfill's, whose
Distributed Map runs the same tasks in its item processor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from imgpipe.config import (
    Limits,
    OutputLocation,
    ValidateConfig,
    resize_config,
    validate_config,
)
from imgpipe.errors import ConfigError
from imgpipe.ops.aws import Clients
from imgpipe.ops.errors import OpsError

RESIZE_STATE = "Resize"
VALIDATE_STATE = "Validate"
# arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
_UNQUALIFIED_PARTS = 7

T = TypeVar("T")


@dataclass(frozen=True)
class Deployment:
    """The configuration one deployed pipeline renders with."""

    state_machine: str
    input_bucket: str
    # The rule's key prefix: keys outside it never start an execution.
    input_prefix: str
    output: OutputLocation
    # `RenderSettings.fingerprint` of the rendition set resize makes now.
    fingerprint: str
    # Validate's own configuration: its limits decide which uploads are rejections
    # (they include DECODE_MEMORY_MB, which only validate's environment carries).
    validate: ValidateConfig
    resize_function: str
    validate_function: str

    @property
    def limits(self) -> Limits:
        return self.validate.limits

    @classmethod
    def of(cls, clients: Clients, state_machine: str) -> Deployment:
        """Read the state machine's definition, then its Validate and Resize functions'
        configuration (DescribeStateMachine, Lambda GetFunctionConfiguration)."""
        definition = state_machine_definition(clients.sfn, state_machine)
        resize_arn = task_function(definition, RESIZE_STATE, state_machine)
        validate_arn = task_function(definition, VALIDATE_STATE, state_machine)
        resize = _parsed(resize_config, clients.lambda_, resize_arn)
        validate = _parsed(validate_config, clients.lambda_, validate_arn)
        return cls(
            state_machine=state_machine,
            input_bucket=resize.input_bucket,
            input_prefix=resize.input_prefix,
            output=resize.output,
            fingerprint=resize.render.fingerprint,
            validate=validate,
            resize_function=resize_arn,
            validate_function=validate_arn,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "state_machine": self.state_machine,
            "input_bucket": self.input_bucket,
            "input_prefix": self.input_prefix,
            "output": {"bucket": self.output.bucket, "prefix": self.output.prefix},
            "fingerprint": self.fingerprint,
            "limits": asdict(self.limits),
            "resize_function": self.resize_function,
            "validate_function": self.validate_function,
        }


def state_machine_definition(sfn: Any, state_machine: str) -> dict[str, Any]:
    try:
        description = sfn.describe_state_machine(stateMachineArn=state_machine)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("StateMachineDoesNotExist", "InvalidArn"):
            msg = f"no such state machine: {state_machine}"
            raise OpsError(msg) from error
        raise
    definition = json.loads(description["definition"])
    if not isinstance(definition, dict):
        msg = f"the definition of {state_machine} is not a JSON object"
        raise OpsError(msg)
    return definition


def _states(definition: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every state of a definition, nested ones included (Map item processors and
    iterators, Parallel branches), outermost first."""
    states = definition.get("States")
    if not isinstance(states, Mapping):
        return
    nested: list[Mapping[str, Any]] = []
    for name, state in states.items():
        if not isinstance(state, Mapping):
            continue
        yield str(name), state
        for field in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(field), Mapping):
                nested.append(state[field])
        nested.extend(b for b in state.get("Branches") or [] if isinstance(b, Mapping))
    for inner in nested:
        yield from _states(inner)


def task_function(definition: Mapping[str, Any], state_name: str, state_machine: str = "") -> str:
    """The Lambda function ARN the task state `state_name` invokes.

    Accepts the service integration (`arn:aws:states:::lambda:invoke` with
    `FunctionName` in `Parameters`, or in `Arguments` for JSONata) and the older form
    whose `Resource` is the function ARN itself.
    """
    machine = state_machine or "the state machine"
    for name, state in _states(definition):
        if name != state_name or state.get("Type") != "Task":
            continue
        for field in ("Parameters", "Arguments"):
            arguments = state.get(field)
            if isinstance(arguments, Mapping) and isinstance(arguments.get("FunctionName"), str):
                return str(arguments["FunctionName"])
        resource = str(state.get("Resource") or "")
        if resource.startswith("arn:") and resource.split(":")[2] == "lambda":
            return resource
        msg = f"the {state_name} task of {machine} names no Lambda function"
        raise OpsError(msg)
    msg = (
        f"{machine} has no {state_name} task: pass the imgpipe pipeline's or backfill's "
        "state machine"
    )
    raise OpsError(msg)


def split_qualifier(function_arn: str) -> tuple[str, str | None]:
    """`arn:...:function:name:live` -> (`arn:...:function:name`, `live`)."""
    parts = function_arn.split(":")
    if function_arn.startswith("arn:") and len(parts) > _UNQUALIFIED_PARTS:
        return ":".join(parts[:_UNQUALIFIED_PARTS]), ":".join(parts[_UNQUALIFIED_PARTS:])
    return function_arn, None


def _parsed(parse: Callable[[Mapping[str, str]], T], lambda_: Any, function_arn: str) -> T:
    try:
        return parse(function_environment(lambda_, function_arn))
    except ConfigError as error:
        msg = f"function {function_arn} is not configured as an imgpipe function: {error}"
        raise OpsError(msg) from error


def function_environment(lambda_: Any, function_arn: str) -> dict[str, str]:
    """The environment variables of the function version the ARN's qualifier names."""
    name, qualifier = split_qualifier(function_arn)
    arguments: dict[str, Any] = {"FunctionName": name}
    if qualifier:
        arguments["Qualifier"] = qualifier
    try:
        configuration = lambda_.get_function_configuration(**arguments)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        if not qualifier:
            msg = f"no such Lambda function: {function_arn}"
            raise OpsError(msg) from error
        # A deployer that spells SAM's `.Alias` reference as a qualified ARN without
        # publishing the alias (some emulators): the function itself has the template's
        # environment.
        try:
            configuration = lambda_.get_function_configuration(FunctionName=name)
        except ClientError as unqualified:
            msg = f"no such Lambda function: {function_arn}"
            raise OpsError(msg) from unqualified
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    return {str(key): str(value) for key, value in variables.items()}
