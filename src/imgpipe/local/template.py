"""Read `template.yaml` the way the local cloud needs it.

The local cloud derives everything from the template that is deployed: function
handlers, code folders, environment, layers, each state machine's definition file and
its substitutions. This module resolves the small subset of CloudFormation
intrinsics the template uses (Ref, GetAtt, Sub, If, Join, Select, Split, Equals,
Not, And, Or) against parameter values and the physical names the emulator chose,
including SAM's `Ref Function.Alias` and `Ref Function.Version` (the ARNs of the alias
and version that `AutoPublishAlias` publishes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")
NO_VALUE = object()


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns short-form tags (`!Ref X`) into long form (`{"Ref": "X"}`)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=_CfnLoader)
    if not isinstance(data, dict):
        msg = f"{path} is not a CloudFormation template"
        raise ValueError(msg)
    return data


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    runtime: str
    architecture: str
    memory_mb: int
    timeout_s: int
    environment: dict[str, str]
    layers: tuple[str, ...]
    # SAM's AutoPublishAlias: publish a version and point this alias at it.
    alias: str | None = None
    # ReservedConcurrentExecutions (None: the function draws on unreserved concurrency).
    reserved_concurrency: int | None = None
    # LoggingConfig.LogGroup (None: Lambda's default /aws/lambda/<function name>).
    log_group: str | None = None


@dataclass
class Resolver:
    """Evaluates intrinsic functions; `physical` maps logical ids to Ref/GetAtt values."""

    parameters: dict[str, str]
    conditions_src: dict[str, Any]
    physical: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    region: str = "us-east-1"
    account: str = "123456789012"
    stack_name: str = "imgpipe-local"
    _conditions: dict[str, bool] = field(default_factory=dict)

    def _pseudo(self, name: str) -> str | None:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.stack_name}/local"
            ),
        }.get(name)

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name]
        msg = f"cannot resolve Ref {name!r} locally"
        raise KeyError(msg)

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.conditions_src[name]))
        return self._conditions[name]

    def _sub(self, args: Any) -> str:
        if isinstance(args, list):
            text, variables = args[0], {k: self.resolve(v) for k, v in args[1].items()}
        else:
            text, variables = args, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical, attribute = name.split(".", 1)
                return str(self.get_att(logical, attribute))
            return str(self.ref(name))

        return _SUB_VAR.sub(replace, text)

    def get_att(self, logical: str, attribute: str) -> str:
        try:
            return self.attributes[(logical, attribute)]
        except KeyError:
            msg = f"cannot resolve GetAtt {logical}.{attribute} locally"
            raise KeyError(msg) from None

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = self._intrinsics().get(key)
            if handler is not None:
                return handler(arg)
            if key.startswith("Fn::"):
                msg = f"intrinsic {key} is not supported by the local template reader"
                raise NotImplementedError(msg)
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def _intrinsics(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": self.ref,
            "Fn::GetAtt": lambda a: self.get_att(*(a if isinstance(a, list) else a.split(".", 1))),
            "Fn::Sub": self._sub,
            "Fn::If": lambda a: self.resolve(a[1] if self.condition(a[0]) else a[2]),
            # CloudFormation compares the values as strings: `!Ref` of a Number parameter
            # is "0", and the literal 0 it is compared with is "0" too.
            "Fn::Equals": lambda a: _cfn_text(self.resolve(a[0])) == _cfn_text(self.resolve(a[1])),
            "Fn::Not": lambda a: not self.resolve(a[0]),
            "Fn::And": lambda a: all(self.resolve(x) for x in a),
            "Fn::Or": lambda a: any(self.resolve(x) for x in a),
            "Condition": self.condition,
            "Fn::Join": lambda a: str(a[0]).join(str(x) for x in self.resolve(a[1])),
            "Fn::Select": lambda a: self.resolve(a[1])[int(self.resolve(a[0]))],
            "Fn::Split": lambda a: str(self.resolve(a[1])).split(a[0]),
        }


class Template:
    """The parts of the SAM template the local cloud deploys."""

    def __init__(self, path: Path, overrides: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.root = path.parent
        self.data = load_template(path)
        self.parameters = self._parameter_values(overrides or {})
        self.resolver = Resolver(self.parameters, self.data.get("Conditions", {}))

    def _parameter_values(self, overrides: Mapping[str, str]) -> dict[str, str]:
        declared = self.data.get("Parameters", {})
        unknown = set(overrides) - set(declared)
        if unknown:
            msg = f"unknown template parameters: {', '.join(sorted(unknown))}"
            raise KeyError(msg)
        values = {}
        for name, spec in declared.items():
            value = overrides.get(name, spec.get("Default"))
            if value is None:
                msg = f"template parameter {name} has no default; pass a value"
                raise KeyError(msg)
            values[name] = str(value)
        return values

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            logical: resource
            for logical, resource in self.data.get("Resources", {}).items()
            if resource.get("Type") == kind
            and ("Condition" not in resource or self.resolver.condition(resource["Condition"]))
        }

    def function_globals(self) -> dict[str, Any]:
        return dict(self.data.get("Globals", {}).get("Function", {}))

    def functions(self) -> dict[str, FunctionSpec]:
        defaults = self.function_globals()
        specs = {}
        for logical, resource in self.resources("AWS::Serverless::Function").items():
            props = {**defaults, **resource.get("Properties", {})}
            env = dict(self.resolver.resolve(defaults.get("Environment", {}).get("Variables", {})))
            env.update(
                self.resolver.resolve(
                    resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
                )
            )
            architectures = self.resolver.resolve(props.get("Architectures", ["x86_64"]))
            alias = self.resolver.resolve(props.get("AutoPublishAlias", NO_VALUE))
            reserved = self.resolver.resolve(props.get("ReservedConcurrentExecutions", NO_VALUE))
            log_group = self.resolver.resolve(props.get("LoggingConfig", {})).get("LogGroup")
            specs[logical] = FunctionSpec(
                logical_id=logical,
                code_uri=(self.root / str(self.resolver.resolve(props["CodeUri"]))).resolve(),
                handler=str(self.resolver.resolve(props["Handler"])),
                runtime=str(self.resolver.resolve(props.get("Runtime", "python3.13"))),
                architecture=str(architectures[0]),
                memory_mb=int(self.resolver.resolve(props.get("MemorySize", 128))),
                timeout_s=int(self.resolver.resolve(props.get("Timeout", 3))),
                environment={k: str(v) for k, v in env.items()},
                layers=tuple(_layer_ids(props.get("Layers", []))),
                alias=None if alias is NO_VALUE else str(alias),
                reserved_concurrency=None if reserved is NO_VALUE else int(reserved),
                log_group=None if log_group is None else str(log_group),
            )
        return specs

    def state_machine(self, logical: str) -> tuple[str, dict[str, Any]]:
        """The definition file's text with `DefinitionSubstitutions` applied, and its props."""
        props = self.data["Resources"][logical]["Properties"]
        definition = (self.root / props["DefinitionUri"]).read_text(encoding="utf-8")
        substitutions = self.resolver.resolve(props.get("DefinitionSubstitutions", {}))
        for name, value in substitutions.items():
            definition = definition.replace("${" + name + "}", str(value))
        leftover = _SUB_VAR.findall(definition)
        if leftover:
            msg = f"{props['DefinitionUri']} has placeholders without substitutions: {leftover}"
            raise KeyError(msg)
        return definition, props


def _cfn_text(value: Any) -> Any:
    """A scalar as CloudFormation sees it (a string); lists and maps unchanged."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return value


def _layer_ids(layers: list[Any]) -> list[str]:
    out = []
    for layer in layers:
        if isinstance(layer, dict) and "Ref" in layer:
            out.append(str(layer["Ref"]))
        elif isinstance(layer, str):
            out.append(layer)
    return out
