"""The pipeline on one machine: `template.yaml` deployed into moto's AWS emulation.

moto runs the real ASL file (its Step Functions execution mode embeds an ASL
interpreter); Lambda tasks reach our handlers through `LocalFunctions` instead of
Docker. Everything deployed here is read from the template: bucket and function
logical ids, handlers, environment, the definition file and its substitutions, and
the EventBridge rule's pattern.

moto does not deliver EventBridge events to Step Functions targets, so `upload`
bridges that gap itself: it builds the S3 "Object Created" event in AWS's documented
shape, asks moto's EventBridge rule matcher whether the template's rule matches it,
and starts the execution with the event as input, as the rule's target would.
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote_plus

import boto3
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.events.models import EventPattern

from imgpipe.local.runner import LocalFunctions
from imgpipe.local.template import Template

REGION = "us-east-1"
ACCOUNT = "123456789012"
STATE_MACHINE = "ImagePipeline"
INPUT_BUCKET = "InputBucket"
OUTPUT_BUCKET = "OutputBucket"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def project_root() -> Path:
    """The folder holding template.yaml (the source checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "template.yaml").is_file():
            return parent
    msg = "template.yaml not found above the imgpipe package"
    raise FileNotFoundError(msg)


@dataclass
class ExecutionRecord:
    """What happened to one upload."""

    key: str
    arn: str
    status: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    history: list[dict[str, Any]] = field(default_factory=list)

    def states_entered(self) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history
            if "stateEnteredEventDetails" in e
        ]


class LocalCloud:
    """A deployed copy of the stack inside moto. Use `LocalCloud.running()`."""

    def __init__(
        self,
        template: Template,
        *,
        stack_name: str = "imgpipe-local",
        retry_sleep: Any = None,
    ) -> None:
        self.template = template
        self.stack_name = stack_name
        self._retry_sleep = retry_sleep
        self._sequencer = 0
        self.session = boto3.Session(region_name=REGION)
        self.s3 = self.session.client("s3")
        self.sfn = self.session.client("stepfunctions")
        self.names: dict[str, str] = {}
        self.state_machine_arn = ""
        self.functions: LocalFunctions | None = None
        self.rule_pattern: dict[str, Any] = {}

    @classmethod
    @contextmanager
    def running(
        cls,
        root: Path | None = None,
        *,
        parameters: dict[str, str] | None = None,
        retry_sleep: Any = None,
        environment: dict[str, str] | None = None,
    ) -> Iterator[LocalCloud]:
        """Start moto, deploy the template into it, and tear everything down after.

        `retry_sleep` replaces the interpreter's wait between retries (tests pass a
        recorder so backoff is asserted, not waited for).
        """
        template = Template((root or project_root()) / "template.yaml", parameters)
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            cloud = cls(template, retry_sleep=retry_sleep)
            with cloud._patched(environment or {}):
                cloud.deploy(environment or {})
                yield cloud

    @contextmanager
    def _patched(self, environment: dict[str, str]) -> Iterator[None]:
        cloud = self

        def invoke(fn: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            assert cloud.functions is not None
            invocation = cloud.functions.invoke(fn.function_name, event)
            fn.logs_backend.ensure_log_group(fn.logs_group_name)
            fn.save_logs(invocation.logs)
            return (
                json.dumps(invocation.response),
                invocation.error_type is not None,
                invocation.logs,
            )

        patches: list[Any] = [mock.patch.object(LambdaFunction, "_invoke_lambda", invoke)]
        if self._retry_sleep is not None:
            from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

            patches.append(mock.patch.object(retrier_decl, "time", _Clock(self._retry_sleep)))
        for patch in patches:
            patch.start()
        try:
            yield
        finally:
            for patch in reversed(patches):
                patch.stop()

    # -- deployment -------------------------------------------------------------------

    def _physical_name(self, logical: str) -> str:
        return f"{self.stack_name}-{logical}".lower()

    def deploy(self, environment: dict[str, str]) -> None:
        resolver = self.template.resolver
        resolver.region, resolver.account = REGION, ACCOUNT
        resolver.stack_name = self.stack_name

        for logical in self.template.resources("AWS::S3::Bucket"):
            name = self._physical_name(logical)
            self.s3.create_bucket(Bucket=name)
            if logical == INPUT_BUCKET:
                self.s3.put_bucket_versioning(
                    Bucket=name, VersioningConfiguration={"Status": "Enabled"}
                )
            resolver.physical[logical] = name
            resolver.attributes[(logical, "Arn")] = f"arn:aws:s3:::{name}"
        for logical in self.template.resources("AWS::SQS::Queue"):
            url = self.session.client("sqs").create_queue(QueueName=self._physical_name(logical))[
                "QueueUrl"
            ]
            resolver.physical[logical] = url
            resolver.attributes[(logical, "Arn")] = (
                f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self._physical_name(logical)}"
            )
        for logical in self.template.resources("AWS::Serverless::LayerVersion"):
            resolver.physical[logical] = (
                f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{self._physical_name(logical)}:1"
            )

        role_arn = self.session.client("iam").create_role(
            RoleName=f"{self.stack_name}-local",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]

        specs = self.template.functions()
        lam = self.session.client("lambda")
        for logical, spec in specs.items():
            name = self._physical_name(logical)
            self.names[logical] = name
            arn = lam.create_function(
                FunctionName=name,
                Runtime=spec.runtime,
                Role=role_arn,
                Handler=spec.handler,
                Code={"ZipFile": _placeholder_zip()},
                MemorySize=spec.memory_mb,
                Timeout=spec.timeout_s,
                Environment={"Variables": spec.environment},
            )["FunctionArn"]
            resolver.physical[logical] = name
            resolver.attributes[(logical, "Arn")] = arn
        # Environment values may refer to resources created above; resolve again now.
        specs = self.template.functions()
        self.functions = LocalFunctions(
            specs, names=self.names, base_environment=environment, region=REGION, account=ACCOUNT
        )

        definition, props = self.template.state_machine(STATE_MACHINE)
        self.state_machine_arn = self.sfn.create_state_machine(
            name=self._physical_name(STATE_MACHINE),
            definition=definition,
            roleArn=role_arn,
            type=str(resolver.resolve(props.get("Type", "STANDARD"))),
        )["stateMachineArn"]
        self.rule_pattern = self._rule_pattern(props)

    def _rule_pattern(self, props: dict[str, Any]) -> dict[str, Any]:
        for event in props.get("Events", {}).values():
            if event.get("Type") == "EventBridgeRule":
                pattern = self.template.resolver.resolve(event["Properties"]["Pattern"])
                return dict(pattern)
        msg = f"{STATE_MACHINE} has no EventBridgeRule event source"
        raise KeyError(msg)

    @property
    def input_bucket(self) -> str:
        return self.template.resolver.physical[INPUT_BUCKET]

    @property
    def output_bucket(self) -> str:
        return self.template.resolver.physical[OUTPUT_BUCKET]

    # -- driving ----------------------------------------------------------------------

    def object_created_event(
        self, key: str, *, url_encode_key: bool = False, bucket: str | None = None
    ) -> dict[str, Any]:
        """The EventBridge event S3 sends for an object, in AWS's documented shape."""
        bucket = bucket or self.input_bucket
        head = self.s3.head_object(Bucket=bucket, Key=key)
        self._sequencer += 1
        obj: dict[str, Any] = {
            "key": quote_plus(key, safe="/") if url_encode_key else key,
            "size": head["ContentLength"],
            "etag": head["ETag"].strip('"'),
            "sequencer": f"{self._sequencer:016X}",
        }
        if head.get("VersionId") not in (None, "null"):
            obj["version-id"] = head["VersionId"]
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": ACCOUNT,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {
                "version": "0",
                "bucket": {"name": bucket},
                "object": obj,
                "request-id": uuid.uuid4().hex[:16].upper(),
                "requester": ACCOUNT,
                "source-ip-address": "127.0.0.1",
                "reason": "PutObject",
            },
        }

    def matches_rule(self, event: dict[str, Any]) -> bool:
        # moto does not implement the TestEventPattern API; its rule matcher is the
        # one that decides which events its EventBridge delivers, so ask it directly.
        pattern = EventPattern.load(json.dumps(self.rule_pattern))
        return bool(pattern.matches_event(event))  # type: ignore[arg-type]

    def start(self, event: dict[str, Any]) -> str:
        # EventBridge targets cannot name executions and AWS generates a UUID; moto
        # needs an explicit name, so the event id (unique per event) is used.
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.state_machine_arn,
                name=event["id"],
                input=json.dumps(event),
            )["executionArn"]
        )

    def wait(self, arn: str, key: str = "", *, timeout_s: float = 120.0) -> ExecutionRecord:
        deadline = time.monotonic() + timeout_s
        while True:
            description = self.sfn.describe_execution(executionArn=arn)
            if description["status"] in TERMINAL:
                break
            if time.monotonic() > deadline:
                msg = f"execution {arn} still {description['status']} after {timeout_s:.0f}s"
                raise TimeoutError(msg)
            time.sleep(0.02)
        history = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        output = description.get("output")
        return ExecutionRecord(
            key=key,
            arn=arn,
            status=description["status"],
            output=json.loads(output) if output else None,
            error=description.get("error"),
            cause=description.get("cause"),
            history=history,
        )

    def upload(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        url_encode_key: bool = False,
        timeout_s: float = 120.0,
    ) -> ExecutionRecord:
        """Put an object and follow it through the pipeline to the end of its execution."""
        self.s3.put_object(Bucket=self.input_bucket, Key=key, Body=body, ContentType=content_type)
        event = self.object_created_event(key, url_encode_key=url_encode_key)
        if not self.matches_rule(event):
            msg = f"the template's rule does not match an upload of {key!r}"
            raise LookupError(msg)
        return self.wait(self.start(event), key, timeout_s=timeout_s)


class _Clock:
    """Stands in for the `time` module inside moto's retrier: records instead of sleeping."""

    def __init__(self, sleep: Any) -> None:
        self.sleep = sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _placeholder_zip() -> bytes:
    # moto wants a code package; the real code runs from CodeUri through LocalFunctions.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "code runs from the template's CodeUri")
    return buffer.getvalue()
