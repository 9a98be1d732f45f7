"""The pipeline on one machine: `template.yaml` deployed into moto's AWS emulation.

moto runs the real ASL file (its Step Functions execution mode embeds an ASL
interpreter); Lambda tasks reach our handlers instead of Docker. Everything deployed
here is read from the template — buckets with their notification, encryption and
public-access settings and policies, the queue and its policy, log groups, layers,
functions with their handler, environment, layers and inline policies, every state
machine from its definition file with `DefinitionSubstitutions` applied, and the
EventBridge rules of their events with pattern, retry policy and dead-letter queue.
There is no second description of the stack to drift from it.

Two ways to run it:

* in-process (`mock_aws`): fast, used by most tests; handlers run in this process
  (`LocalFunctions`), so tests can reach into a handler module to inject faults;
* server mode (`ThreadedMotoServer` on loopback): any AWS client (the AWS CLI, plain
  boto3) can use the endpoint; handlers run in isolated worker processes
  (`WorkerFunctions`) with only their own environment and layers.

moto delivers S3 "Object Created" events to EventBridge rules but not to Step Functions
targets. `EventBridgeBridge` fills that gap without touching the template: when one of
moto's rules matches an event and targets a state machine, it starts an execution with
the event as input (named with a fresh UUID, as AWS does), and sends events it cannot
deliver to the target's dead-letter queue.

moto also carries Step Functions' execution logging but never switches it on:
`ExecutionLog` does, so executions write their history events to the state machine's
log group as AWS does, and `LocalCloud.wait` reads an EXPRESS machine's executions from
there (AWS serves neither their history nor their description).

moto's Distributed Map reads only the first page of a `listObjectsV2` ItemReader and
fails on an empty listing; `read_s3_listing` reads every page, as AWS does. Its
ResultWriter writes the manifest but no result file; `write_map_results` writes the
children's outputs as AWS's SUCCEEDED_0.json too.

moto reads a JSONPath state's variable reference (`"reason.$": "$rejected.reason"`)
through a JSONata engine that it runs on a JVM it does not ship; `read_variable` reads
it from the execution's variables, as AWS does. The putEvents task integration reaches
moto's EventBridge (in-process through moto's stubber, in server mode through
MOTO_PORT), whose rules deliver to SQS targets like AWS's.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock
from urllib.parse import quote_plus

import boto3
from moto import mock_aws
from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.events.models import EventPattern, Rule
from moto.s3 import notifications
from moto.s3.models import S3Backend
from moto.stepfunctions.parser.asl.component.common.query_language import QueryLanguageMode
from moto.stepfunctions.parser.asl.component.common.string.string_expression import (
    StringVariableSample,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import (
    resource_eval_s3,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (  # noqa: E501
    resource_eval_s3 as result_writer_s3,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import (
    StateCredentials,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ResourceRuntimePart,
)
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.logging import (
    CloudWatchLoggingConfiguration,
    CloudWatchLoggingSession,
    HistoryLog,
)
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from imgpipe.local.runner import LocalFunctions
from imgpipe.local.template import FunctionSpec, Template

REGION = "us-east-1"
ACCOUNT = "123456789012"
STATE_MACHINE = "ImagePipeline"
BACKFILL_STATE_MACHINE = "BackfillStateMachine"
INPUT_BUCKET = "InputBucket"
OUTPUT_BUCKET = "OutputBucket"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
EXPRESS = "EXPRESS"
# Template parameters the local cloud deploys with unless the caller passes its own:
# moto 5.2.5's ASL grammar accepts only STANDARD as a Distributed Map's
# ProcessorConfig.ExecutionType (the template's default for the backfill is EXPRESS).
LOCAL_PARAMETERS = {"BackfillExecutionType": "STANDARD"}
# Where each key's sequencers start; S3's are hex strings like 0055AED6DCD90281E5.
_SEQUENCER_START = 0x0062A8F0D7E3B40000
_SEQUENCER_DIGITS = 18
# S3 notification event names -> the `reason` S3 writes in its EventBridge events, and
# for deletions the `deletion-type`.
_REASONS = {
    "s3:ObjectCreated:Put": "PutObject",
    "s3:ObjectCreated:Post": "POST Object",
    "s3:ObjectCreated:Copy": "CopyObject",
    "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
    "s3:ObjectRemoved:Delete": "DeleteObject",
    "s3:ObjectRemoved:DeleteMarkerCreated": "DeleteObject",
    "s3:LifecycleExpiration:Delete": "Lifecycle Expiration",
    "s3:LifecycleExpiration:DeleteMarkerCreated": "Lifecycle Expiration",
}
_DELETION_TYPES = {
    "s3:ObjectRemoved:Delete": "Permanently Deleted",
    "s3:ObjectRemoved:DeleteMarkerCreated": "Delete Marker Created",
    "s3:LifecycleExpiration:Delete": "Permanently Deleted",
    "s3:LifecycleExpiration:DeleteMarkerCreated": "Delete Marker Created",
}
# The properties of an `AWS::Serverless::Function` (its own or from Globals.Function)
# that `LocalCloud` deploys; anything else fails the deployment (and a test).
FUNCTION_PROPERTIES = frozenset(
    {
        "Architectures",
        "AutoPublishAlias",
        "CodeUri",
        "Description",
        "Environment",
        "Handler",
        "Layers",
        "LoggingConfig",
        "MemorySize",
        "Policies",
        "ReservedConcurrentExecutions",
        "Runtime",
        "Timeout",
        "Tracing",
    }
)


def template_parameters(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parameter overrides the local cloud deploys with: `LOCAL_PARAMETERS`, then
    the caller's, which win."""
    return {**LOCAL_PARAMETERS, **(overrides or {})}


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


@dataclass
class Delivery:
    """One event the bridge handed to a state machine (or to the dead-letter queue)."""

    event: dict[str, Any]
    rule: str
    execution_arn: str | None
    error: str | None = None

    @property
    def bucket(self) -> str:
        return str(self.event["detail"]["bucket"]["name"])

    @property
    def key(self) -> str:
        return str(self.event["detail"]["object"]["key"])

    @property
    def version_id(self) -> str | None:
        value = self.event["detail"]["object"].get("version-id")
        return str(value) if value else None


class S3Sequencers:
    """The `sequencer` of each S3 event, per object key, in the order the writes happened.

    S3 gives every PUT and DELETE of a key a sequencer larger than the previous one's
    (hex strings; pad the shorter with zeros to compare them); sequencers of different
    keys are unrelated. moto writes one constant. The local cloud holds `lock` around
    each S3 write, from storing the object to sending its event, so the order of the
    sequencers is the order in which the writes took effect.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._last: dict[tuple[str, str], int] = {}
        self._versions: dict[tuple[str, str, str], str] = {}

    def next(self, bucket: str, key: str, version_id: str | None) -> str:
        """The sequencer of a write of `key` that has just taken effect."""
        with self.lock:
            value = self._last.get((bucket, key), _SEQUENCER_START) + 1
            self._last[(bucket, key)] = value
            sequencer = f"{value:0{_SEQUENCER_DIGITS}X}"
            self._versions[(bucket, key, version_id or "null")] = sequencer
            return sequencer

    def of(self, bucket: str, key: str, version_id: str | None) -> str | None:
        """The sequencer of the write that made this version (None if none was seen)."""
        with self.lock:
            return self._versions.get((bucket, key, version_id or "null"))


class EventBridgeBridge:
    """Delivers matched EventBridge events to Step Functions targets inside moto."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.sequencers = S3Sequencers()
        self._paused = False
        self._changed = threading.Condition()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop delivering (tests that hand-craft an event start executions themselves)."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def deliver(self, rule: Rule, event: dict[str, Any]) -> None:
        if self._paused:
            return
        for target in rule.targets:
            arn = str(target["Arn"])
            if not _is_state_machine(arn):
                continue
            # moto reuses one event id for every S3 event and writes the time as a Unix
            # timestamp; AWS gives each event its own id and an ISO 8601 time.
            delivered = {**event, "id": str(uuid.uuid4())}
            if isinstance(event.get("time"), int | float):
                delivered["time"] = datetime.fromtimestamp(event["time"], UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
            try:
                execution_arn = _start_execution(arn, delivered)
                record = Delivery(delivered, rule.name, execution_arn)
            except Exception as error:
                record = Delivery(delivered, rule.name, None, f"{type(error).__name__}: {error}")
                _dead_letter(target, delivered, record.error or "")
            with self._changed:
                self.deliveries.append(record)
                self._changed.notify_all()

    def emit_s3_event(self, account: str, bucket: Any, event_name: str, key: Any) -> None:
        """The "Object Created" / "Object Deleted" event S3 sends to EventBridge for a
        write, in AWS's documented shape (`etag`, S3's `reason`) with its sequencer.

        Replaces moto's (which writes `eTag`, the event name as the reason and one
        constant sequencer); events of other types are moto's own.
        """
        if bucket.notification_configuration is None or (
            bucket.notification_configuration.event_bridge is None
        ):
            return
        from moto.events.models import events_backends

        created = event_name.startswith("s3:ObjectCreated:")
        version = str(key.version_id) if key.version_id not in (None, "null") else None
        obj: dict[str, Any] = {"key": key.name}
        if created:
            obj |= {"size": key.size, "etag": key.etag.strip('"')}
        if version is not None:
            obj["version-id"] = version
        obj["sequencer"] = self.sequencers.next(bucket.name, key.name, version)
        event = _s3_event(
            "Object Created" if created else "Object Deleted",
            account=account,
            region=bucket.region_name,
            bucket=bucket.name,
            obj=obj,
            reason=_REASONS[event_name],
            extra_detail=None if created else {"deletion-type": _DELETION_TYPES[event_name]},
        )
        buses = events_backends[account][bucket.region_name].event_buses

        def send() -> None:
            for bus in list(buses.values()):
                for rule in list(bus.rules.values()):
                    rule.send_to_targets(event, transform_input=False)  # type: ignore[arg-type]

        pending = _PENDING.get()
        if pending is None:
            send()
        else:
            pending.append(send)

    def wait_for(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        *,
        after: int,
        timeout_s: float,
        detail_type: str = "Object Created",
    ) -> Delivery:
        """The delivery of the event for this object version, made after index `after`."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for delivery in self.deliveries[after:]:
                    if (
                        (delivery.bucket, delivery.key) == (bucket, key)
                        and delivery.event.get("detail-type") == detail_type
                        and (version_id is None or delivery.version_id == version_id)
                    ):
                        return delivery
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    msg = f"no execution was started for s3://{bucket}/{key}"
                    raise TimeoutError(msg)
                self._changed.wait(remaining)


def _s3_event(
    detail_type: str,
    *,
    account: str,
    region: str,
    bucket: str,
    obj: dict[str, Any],
    reason: str,
    extra_detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An S3 event in the shape EventBridge delivers it (AWS's documented envelope)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": account,
            "source-ip-address": "127.0.0.1",
            "reason": reason,
        }
        | (extra_detail or {}),
    }


# Events of the S3 write in progress on this thread, sent when it has let go of the lock.
_PENDING: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "pending_s3_events", default=None
)
_MULTIPART: contextvars.ContextVar[bool] = contextvars.ContextVar("multipart", default=False)
# Set while a DeleteObject runs: its events are sent by the local cloud, not by moto.
_DELETING: contextvars.ContextVar[bool] = contextvars.ContextVar("deleting", default=False)
_INVOKED_ARN: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "invoked_function_arn", default=None
)


def _qualified_arn(region: str, account: str, function: str, qualifier: str | None) -> str:
    """The ARN an Invoke call named: from a name, `name:qualifier` or an ARN, qualified
    or not, plus the separate `Qualifier` parameter."""
    if function.startswith("arn:"):
        arn = function
    else:
        arn = f"arn:aws:lambda:{region}:{account}:function:{function}"
    if qualifier and arn.count(":") == 6:
        arn = f"{arn}:{qualifier}"
    return arn


def _is_state_machine(arn: str) -> bool:
    return ":states:" in arn and ":stateMachine:" in arn


def _start_execution(state_machine_arn: str, event: dict[str, Any]) -> str:
    from moto.stepfunctions.responses import get_backend

    backend = get_backend(ACCOUNT, REGION)
    execution = backend.start_execution(
        state_machine_arn, name=str(uuid.uuid4()), execution_input=json.dumps(event)
    )
    return str(execution.execution_arn)


def _dead_letter(target: dict[str, Any], event: dict[str, Any], error: str) -> None:
    queue_arn = target.get("DeadLetterConfig", {}).get("Arn")
    if not queue_arn:
        return
    from moto.sqs.models import sqs_backends

    account, queue = queue_arn.split(":")[4], queue_arn.split(":")[5]
    sqs_backends[account][REGION].send_message(
        queue_name=queue,
        message_body=json.dumps(event),
        message_attributes={
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": error[:256]},
            "RULE_ARN": {"DataType": "String", "StringValue": str(target.get("Id", ""))},
        },
    )


class ExecutionLog:
    """Writes an execution's history events to its state machine's log group, as AWS does.

    moto 5.2.5 carries Step Functions' execution-logging code (a `CloudWatchLoggingSession`
    per execution, fed by its event manager) but starts every execution without one, and
    its publisher hands CloudWatch Logs a `LogEvent` built from a text timestamp where a
    number is needed. The local cloud gives each execution of a machine with a logging
    configuration a session (`session_for`) and publishes through `publish`: one log
    event per history event, its message the JSON record AWS documents —
    `id`, `previous_event_id`, `event_timestamp` (epoch milliseconds as text), `type`,
    `execution_arn`, `details` (the event's `<type>EventDetails`; input and output only
    with `includeExecutionData`) and `redrive_count` — in a stream named as AWS names
    them, `states/<state machine name>/<yyyy-mm-dd-hh-mm>/<id>` (here one stream per
    execution: the minute it started and eight hex digits of its ARN's hash).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, str] = {}

    @staticmethod
    def session_for(
        execution_arn: str, state_machine_arn: str, configuration: dict[str, Any] | None
    ) -> CloudWatchLoggingSession | None:
        if not configuration or configuration.get("level", "OFF") == "OFF":
            return None
        complete: Any = {"includeExecutionData": False, **configuration}
        logging_configuration = CloudWatchLoggingConfiguration.from_logging_configuration(
            state_machine_arn=state_machine_arn, logging_configuration=complete
        )
        if logging_configuration is None:
            return None
        return CloudWatchLoggingSession(
            execution_arn=execution_arn, configuration=logging_configuration
        )

    def publish(self, session: CloudWatchLoggingSession, log: HistoryLog) -> None:
        moment = _epoch_ms(log["event_timestamp"])
        record: dict[str, Any] = {
            "id": str(log["id"]),
            # moto's HistoryEventType is an Enum; AWS writes its value ("TaskScheduled").
            "type": str(getattr(log["type"], "value", log["type"])),
            "details": dict(log.get("details") or {}),
            "previous_event_id": str(log["previous_event_id"]),
            "event_timestamp": str(moment),
            "execution_arn": str(log["execution_arn"]),
            "redrive_count": "0",
        }
        configuration = session.configuration
        from moto.logs.models import logs_backends

        logs = logs_backends[configuration.log_account_id][configuration.log_region]
        group = configuration.log_group_name
        with self._lock:
            stream = self._streams.get(session.execution_arn)
            if stream is None:
                stream = _execution_log_stream(session.execution_arn, moment)
                if group not in logs.groups:
                    return  # AWS drops what it cannot deliver; the execution goes on
                logs.create_log_stream(group, stream)
                self._streams[session.execution_arn] = stream
            logs.put_log_events(
                group,
                stream,
                [{"timestamp": moment, "message": json.dumps(record, default=str)}],
            )


_ORIGINAL_VARIABLE_SAMPLE = StringVariableSample._eval_body


def read_variable(sample: StringVariableSample, env: Environment) -> None:
    """A JSONPath variable reference, `$name` or `$name.field.field`, by its value."""
    if sample.query_language_mode != QueryLanguageMode.JSONPath:
        _ORIGINAL_VARIABLE_SAMPLE(sample, env)
        return
    name, *fields = sample.expression.removeprefix("$").split(".")
    value = env.variable_store.get(name)
    for part in fields:
        value = value[part]
    env.stack.append(copy.deepcopy(value))


def _epoch_ms(value: Any) -> int:
    """A history event's timestamp (moto's ISO 8601 text or a datetime) in epoch ms."""
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _execution_log_stream(execution_arn: str, started_ms: int) -> str:
    parts = execution_arn.split(":")
    machine = parts[6] if len(parts) > 6 else "unknown"
    minute = datetime.fromtimestamp(started_ms / 1000, UTC).strftime("%Y-%m-%d-%H-%M")
    digest = hashlib.sha256(execution_arn.encode()).hexdigest()[:8]
    return f"states/{machine}/{minute}/{digest}"


def read_s3_listing(
    env: Environment,
    resource_runtime_part: ResourceRuntimePart,
    state_credentials: StateCredentials,
) -> None:
    """A Distributed Map's `arn:aws:states:::s3:listObjectsV2` ItemReader, as AWS runs it:
    every object under the prefix, page after page, and no items for an empty listing.

    Stands in for moto's `ResourceEvalS3._handle_list_objects_v2`, which reads the first
    page (1,000 keys) only and raises KeyError when ListObjectsV2 returns no `Contents`.
    The items are the listing's entries as moto's client returns them.
    """
    s3 = resource_eval_s3.ResourceEvalS3._get_s3_client(
        resource_runtime_part=resource_runtime_part, state_credentials=state_credentials
    )
    parameters = dict(env.stack.pop())
    items: list[dict[str, Any]] = []
    while True:
        page = s3.list_objects_v2(**parameters)
        items.extend(page.get("Contents", []))
        token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        if token is None:
            break
        parameters["ContinuationToken"] = token
    env.stack.append(items)


def write_map_results(
    env: Environment,
    resource_runtime_part: ResourceRuntimePart,
    state_credentials: StateCredentials,
) -> None:
    """A Distributed Map's `arn:aws:states:::s3:putObject` ResultWriter, as AWS runs it:
    `<Prefix>/<map run id>/SUCCEEDED_0.json` with one record per child (its status and
    output as JSON text), and the manifest listing it.

    Stands in for moto's `ResourceEvalS3._handle_put_object`, which writes the manifest
    with empty `ResultFiles`. moto runs the children inside the parent and keeps only
    their outputs (a failed child fails the Map), so every record is SUCCEEDED and its
    `Input` is unknown.
    """
    parameters = dict(env.stack.pop())
    outputs = env.stack.pop()
    s3 = result_writer_s3.ResourceEvalS3._get_s3_client(
        resource_runtime_part=resource_runtime_part, state_credentials=state_credentials
    )
    run = env.map_run_record_pool_manager.get_all().pop().map_run_arn
    prefix = parameters.get("Prefix", "")
    folder = f"{prefix.rstrip('/')}/{run.split(':')[-1]}/" if prefix else f"{run.split(':')[-1]}/"
    records = [
        {"Status": "SUCCEEDED", "Input": None, "Output": json.dumps(output)}
        for output in outputs or []
    ]
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    if records:
        body = json.dumps(records).encode("utf-8")
        s3.put_object(Bucket=parameters["Bucket"], Key=folder + "SUCCEEDED_0.json", Body=body)
        files["SUCCEEDED"].append({"Key": folder + "SUCCEEDED_0.json", "Size": len(body)})
    manifest = {"DestinationBucket": parameters["Bucket"], "MapRunArn": run, "ResultFiles": files}
    key = folder + "manifest.json"
    s3.put_object(Bucket=parameters["Bucket"], Key=key, Body=json.dumps(manifest).encode("utf-8"))
    env.stack.append(
        {"MapRunArn": run, "ResultWriterDetails": {"Bucket": parameters["Bucket"], "Key": key}}
    )


@dataclass
class DeployedResource:
    logical_id: str
    type: str
    physical_id: str


@dataclass(frozen=True)
class DeployedStateMachine:
    """One `AWS::Serverless::StateMachine` of the template, as deployed."""

    logical_id: str
    name: str
    arn: str
    type: str
    # The log group its executions log to (None: logging off).
    log_group: str | None


class LocalCloud:
    """A deployed copy of the stack inside moto. Use `LocalCloud.running()`."""

    def __init__(
        self,
        template: Template,
        session: boto3.Session,
        *,
        endpoint_url: str | None = None,
        stack_name: str = "imgpipe-local",
    ) -> None:
        self.template = template
        self.session = session
        self.endpoint_url = endpoint_url
        self.stack_name = stack_name
        self.bridge = EventBridgeBridge()
        self.s3 = self.client("s3")
        self.sfn = self.client("stepfunctions")
        self.names: dict[str, str] = {}
        self.arns: dict[str, str] = {}
        # Every state machine of the template, by logical id.
        self.state_machines: dict[str, DeployedStateMachine] = {}
        self.execution_log = ExecutionLog()
        self.functions: Any = None
        self.rule_pattern: dict[str, Any] = {}
        self.deployed: list[DeployedResource] = []
        self.bucket_policies: dict[str, dict[str, Any]] = {}

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)

    @property
    def state_machine_arn(self) -> str:
        """The pipeline's state machine (the one S3 events start)."""
        return self.state_machines[STATE_MACHINE].arn

    @property
    def state_machine_type(self) -> str:
        return self.state_machines[STATE_MACHINE].type

    @property
    def state_machine_log_group(self) -> str | None:
        return self.state_machines[STATE_MACHINE].log_group

    @property
    def backfill_state_machine_arn(self) -> str:
        """The backfill's state machine (a Distributed Map over a prefix of a bucket)."""
        return self.state_machines[BACKFILL_STATE_MACHINE].arn

    @classmethod
    @contextmanager
    def running(
        cls,
        root: Path | None = None,
        *,
        parameters: dict[str, str] | None = None,
        retry_sleep: Callable[[float], None] | None = None,
        environment: dict[str, str] | None = None,
        server: bool = False,
        port: int = 0,
        workers: bool = False,
        work_dir: Path | None = None,
    ) -> Iterator[LocalCloud]:
        """Start moto, deploy the template into it, and tear everything down after.

        `server=True` serves the emulator on 127.0.0.1:`port` (0 picks a free port);
        `workers=True` (server mode only) runs each function in its own process.
        `retry_sleep` replaces the interpreter's wait between retries (tests pass a
        recorder so backoff is asserted, not waited for). `parameters` override the
        template's defaults (see `template_parameters`).
        """
        if workers and not server:
            msg = "worker processes need the emulator in server mode to reach AWS"
            raise ValueError(msg)
        root = root or project_root()
        template = Template(root / "template.yaml", template_parameters(parameters))
        with _emulator(server, port) as endpoint:
            session = boto3.Session(
                region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local"
            )
            cloud = cls(template, session, endpoint_url=endpoint)
            with cloud._patched(retry_sleep), ExitStack() as stack:
                cloud.deploy()
                if workers:
                    from imgpipe.local.workers import WorkerFunctions, assemble_layers

                    # A folder of its own: two local clouds at once (a test next to
                    # `imgpipe local up`, the burst benchmark) must not rebuild each
                    # other's layers under their running workers.
                    build = work_dir or root / "build"
                    build.mkdir(parents=True, exist_ok=True)
                    farm = Path(tempfile.mkdtemp(prefix="local-layers-", dir=build))
                    stack.callback(shutil.rmtree, farm, ignore_errors=True)
                    layers = assemble_layers(template, farm)
                    cloud.functions = WorkerFunctions(
                        template.functions(),
                        names=cloud.names,
                        arns=cloud.arns,
                        layers=layers,
                        endpoint_url=str(endpoint),
                        region=REGION,
                        extra_environment=environment,
                    )
                else:
                    cloud.functions = LocalFunctions(
                        template.functions(),
                        names=cloud.names,
                        base_environment=environment,
                        region=REGION,
                        account=ACCOUNT,
                    )
                try:
                    yield cloud
                finally:
                    close = getattr(cloud.functions, "close", None)
                    if close is not None:
                        close()

    @contextmanager
    def _patched(self, retry_sleep: Callable[[float], None] | None) -> Iterator[None]:
        cloud = self
        original_send = Rule.send_to_targets

        original_invoke = LambdaBackend.invoke

        def backend_invoke(
            backend: LambdaBackend,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> Any:
            # The ARN the caller named (a Step Functions task names the alias); moto
            # resolves it to the function version and runs `_invoke_lambda` on this thread.
            token = _INVOKED_ARN.set(
                _qualified_arn(backend.region_name, backend.account_id, function_name, qualifier)
            )
            try:
                return original_invoke(
                    backend, function_name, qualifier, body, headers, response_headers
                )
            finally:
                _INVOKED_ARN.reset(token)

        def invoke(fn: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            invocation = cloud.functions.invoke(
                fn.function_name,
                event,
                version=str(fn.version),
                invoked_arn=_INVOKED_ARN.get() or fn.function_arn,
            )
            fn.logs_backend.ensure_log_group(fn.logs_group_name)
            fn.save_logs(invocation.logs)
            return (
                json.dumps(invocation.response),
                invocation.error_type is not None,
                invocation.logs,
            )

        def send_to_targets(rule: Rule, event: Any, transform_input: bool = True) -> None:
            # moto raises NotImplementedError at the first Step Functions target, so it
            # gets the other targets only and the bridge takes the state machines.
            others = copy.copy(rule)
            others.targets = [t for t in rule.targets if not _is_state_machine(t["Arn"])]
            original_send(others, event, transform_input)
            if rule.event_pattern.matches_event(event):
                cloud.bridge.deliver(rule, event)

        sequencers = cloud.bridge.sequencers
        original_put = S3Backend.put_object
        original_delete = S3Backend.delete_object
        original_copy = S3Backend.copy_object
        original_complete = S3Backend.complete_multipart_upload
        original_event = notifications._send_event_bridge_message

        @contextmanager
        def s3_write() -> Iterator[None]:
            """Each S3 write holds the sequencers' lock from storing the object to making
            its event, so sequencers follow the order the writes took effect (moto's own
            read-modify-write of a key's versions is no longer racy either). The events
            are sent once the lock is let go: starting an execution takes a while, and
            S3 does not promise delivery in order either (that is what sequencers are for).
            """
            if _PENDING.get() is not None:  # a write inside a write (copy -> put)
                with sequencers.lock:
                    yield
                return
            pending: list[Callable[[], None]] = []
            token = _PENDING.set(pending)
            try:
                with sequencers.lock:
                    yield
            finally:
                _PENDING.reset(token)
                for send in pending:
                    send()

        def put_object(backend: S3Backend, *args: Any, **kwargs: Any) -> Any:
            with s3_write():
                return original_put(backend, *args, **kwargs)

        def copy_object(backend: S3Backend, *args: Any, **kwargs: Any) -> Any:
            with s3_write():
                return original_copy(backend, *args, **kwargs)

        def complete_multipart_upload(backend: S3Backend, *args: Any, **kwargs: Any) -> Any:
            # moto sends "Put" from the put_object inside, then "CompleteMultipartUpload";
            # S3 sends the latter only.
            token = _MULTIPART.set(True)
            try:
                with s3_write():
                    return original_complete(backend, *args, **kwargs)
            finally:
                _MULTIPART.reset(token)

        def delete_object(
            backend: S3Backend,
            bucket_name: str,
            key_name: str,
            version_id: str | None = None,
            bypass: bool = False,
        ) -> tuple[bool, dict[str, Any]]:
            with s3_write():
                token = _DELETING.set(True)
                try:
                    deleted, meta = original_delete(
                        backend, bucket_name, key_name, version_id, bypass
                    )
                finally:
                    _DELETING.reset(token)
                if deleted:
                    # S3 sends "Object Deleted" for a new delete marker and for every
                    # version (or delete marker) deleted by id; moto sends one only when
                    # a key's last version goes.
                    marker = version_id is None and meta.get("delete-marker") == "true"
                    removed = version_id or meta.get("version-id")
                    cloud.bridge.emit_s3_event(
                        backend.account_id,
                        backend.get_bucket(bucket_name),
                        "s3:ObjectRemoved:DeleteMarkerCreated"
                        if marker
                        else "s3:ObjectRemoved:Delete",
                        SimpleNamespace(
                            name=key_name,
                            version_id=None if removed in (None, "null") else str(removed),
                        ),
                    )
            return deleted, meta

        def send_event_bridge_message(
            account_id: str, bucket: Any, event_name: str, key: Any
        ) -> None:
            if event_name not in _REASONS:
                original_event(account_id, bucket, event_name, key)
            elif _DELETING.get() and event_name.startswith("s3:ObjectRemoved:"):
                return  # delete_object sends it, for every version as S3 does
            elif not (_MULTIPART.get() and event_name == "s3:ObjectCreated:Put"):
                cloud.bridge.emit_s3_event(account_id, bucket, event_name, key)

        patches: list[Any] = [
            mock.patch.object(LambdaFunction, "_invoke_lambda", invoke),
            mock.patch.object(LambdaBackend, "invoke", backend_invoke),
            mock.patch.object(Rule, "send_to_targets", send_to_targets),
            mock.patch.object(S3Backend, "put_object", put_object),
            mock.patch.object(S3Backend, "copy_object", copy_object),
            mock.patch.object(S3Backend, "complete_multipart_upload", complete_multipart_upload),
            mock.patch.object(S3Backend, "delete_object", delete_object),
            mock.patch.object(
                notifications, "_send_event_bridge_message", send_event_bridge_message
            ),
        ]
        # moto parses the definition again for every execution (~0.1 s of CPU for ours,
        # most of it ANTLR); a burst of uploads then starves everything else in the
        # emulator's process. The parse tree of a definition never changes: keep it, and
        # build each execution's own components from it (what the parse does after it).
        original_parse = AmazonStateLanguageParser.parse
        trees: dict[str, Any] = {}

        def parse(definition: str) -> tuple[Any, Any]:
            tree = trees.get(definition)
            if tree is None:
                program, tree = original_parse(definition)
                trees[definition] = tree
                return program, tree
            return Preprocessor().visit(tree), tree

        patches.append(mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(parse)))
        # Executions log their history events to the machine's log group (ExecutionLog).
        original_execution_init = Execution.__init__

        def execution_init(execution: Execution, *args: Any, **kwargs: Any) -> None:
            original_execution_init(execution, *args, **kwargs)
            if execution._cloud_watch_logging_session is None:
                machine = execution.state_machine
                execution._cloud_watch_logging_session = ExecutionLog.session_for(
                    execution.exec_arn,
                    str(machine.arn),
                    getattr(machine, "loggingConfiguration", None),
                )

        def publish_history_log(session: CloudWatchLoggingSession, history_log: HistoryLog) -> None:
            cloud.execution_log.publish(session, history_log)

        original_start_execution = StepFunctionsParserBackend.start_execution

        def start_execution(
            backend: StepFunctionsParserBackend,
            state_machine_arn: str,
            name: str | None = None,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            # StartExecution without a name: AWS names the execution with a fresh UUID;
            # moto names it "None", so the next unnamed one "already exists".
            return original_start_execution(
                backend, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs
            )

        patches += [
            mock.patch.object(StepFunctionsParserBackend, "start_execution", start_execution),
            mock.patch.object(StringVariableSample, "_eval_body", read_variable),
            mock.patch.object(Execution, "__init__", execution_init),
            mock.patch.object(CloudWatchLoggingSession, "publish_history_log", publish_history_log),
            mock.patch.object(
                resource_eval_s3.ResourceEvalS3,
                "_handle_list_objects_v2",
                staticmethod(read_s3_listing),
            ),
            mock.patch.object(
                result_writer_s3.ResourceEvalS3,
                "_handle_put_object",
                staticmethod(write_map_results),
            ),
        ]
        if retry_sleep is not None:
            from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

            patches.append(mock.patch.object(retrier_decl, "time", _Clock(retry_sleep)))
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

    def _record(self, logical: str, kind: str, physical: str) -> None:
        self.deployed.append(DeployedResource(logical, kind, physical))

    def deploy(self) -> None:
        resolver = self.template.resolver
        resolver.region, resolver.account = REGION, ACCOUNT
        resolver.stack_name = self.stack_name
        # Names first, so any resource can refer to any other (policies, environment).
        for logical in self.template.resources("AWS::S3::Bucket"):
            name = self._physical_name(logical)
            resolver.physical[logical] = name
            resolver.attributes[(logical, "Arn")] = f"arn:aws:s3:::{name}"
        for logical in self.template.resources("AWS::SQS::Queue"):
            name = self._physical_name(logical)
            host = self.endpoint_url or f"https://sqs.{REGION}.amazonaws.com"
            resolver.physical[logical] = f"{host}/{ACCOUNT}/{name}"
            resolver.attributes[(logical, "Arn")] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
            resolver.attributes[(logical, "QueueName")] = name
            resolver.attributes[(logical, "QueueUrl")] = resolver.physical[logical]
        for logical in self.template.resources("AWS::SNS::Topic"):
            arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:{self._physical_name(logical)}"
            resolver.physical[logical] = arn
            resolver.attributes[(logical, "TopicArn")] = arn
            resolver.attributes[(logical, "TopicName")] = self._physical_name(logical)
        for logical, resource in self.template.resources("AWS::CloudWatch::Alarm").items():
            raw_name = resource.get("Properties", {}).get("AlarmName")
            name = str(resolver.resolve(raw_name)) if raw_name else self._physical_name(logical)
            resolver.physical[logical] = name
            resolver.attributes[(logical, "Arn")] = (
                f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"
            )
        for logical in self.template.resources("AWS::DynamoDB::Table"):
            name = self._physical_name(logical)
            resolver.physical[logical] = name
            resolver.attributes[(logical, "Arn")] = (
                f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
            )
        for logical in self.template.resources("AWS::Logs::LogGroup"):
            group = str(
                resolver.resolve(
                    self.template.data["Resources"][logical]["Properties"]["LogGroupName"]
                )
            )
            resolver.physical[logical] = group
            resolver.attributes[(logical, "Arn")] = (
                f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:*"
            )
        for logical in self.template.resources("AWS::Serverless::Function"):
            name = self._physical_name(logical)
            self.names[logical] = name
            self.arns[logical] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
            resolver.physical[logical] = name
            resolver.attributes[(logical, "Arn")] = self.arns[logical]
            alias = resolver.resolve(self._function_props(logical).get("AutoPublishAlias"))
            if alias:
                # SAM's references to what AutoPublishAlias publishes: the first version
                # of a new function is 1 (checked when it is published).
                resolver.physical[f"{logical}.Version"] = f"{self.arns[logical]}:1"
                resolver.physical[f"{logical}.Alias"] = f"{self.arns[logical]}:{alias}"
        for logical, resource in self.template.resources("AWS::Serverless::StateMachine").items():
            props = resource.get("Properties", {})
            raw_name = props.get("Name")
            name = str(resolver.resolve(raw_name)) if raw_name else self._physical_name(logical)
            arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
            resolver.physical[logical] = arn
            resolver.attributes[(logical, "Arn")] = arn
            resolver.attributes[(logical, "Name")] = name
            for event_name in props.get("Events", {}):
                rule = f"{logical}{event_name}"
                resolver.attributes[(rule, "Arn")] = (
                    f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{self._physical_name(rule)}"
                )

        for logical, resource in self.template.resources("AWS::S3::Bucket").items():
            self._deploy_bucket(logical, resource.get("Properties", {}))
        for logical, resource in self.template.resources("AWS::SQS::Queue").items():
            self._deploy_queue(logical, resource.get("Properties", {}))
        for logical, resource in self.template.resources("AWS::Logs::LogGroup").items():
            self._deploy_log_group(logical, resource.get("Properties", {}))
        for logical, resource in self.template.resources("AWS::DynamoDB::Table").items():
            self._deploy_table(logical, resource.get("Properties", {}))
        for logical in self.template.resources("AWS::Serverless::LayerVersion"):
            self._deploy_layer(logical)
        for logical, spec in self.template.functions().items():
            self._deploy_function(logical, spec)
        for logical, resource in self.template.resources("AWS::SNS::Topic").items():
            self._deploy_topic(logical, resource.get("Properties", {}))
        for logical in self.template.resources("AWS::Serverless::StateMachine"):
            self._deploy_state_machine(logical)
        for logical, resource in self.template.resources("AWS::CloudWatch::Alarm").items():
            self._deploy_alarm(logical, resource.get("Properties", {}))
        for logical, resource in self.template.resources("AWS::CloudWatch::Dashboard").items():
            props = resolver.resolve(resource["Properties"])
            name = props.get("DashboardName", self._physical_name(logical))
            self.client("cloudwatch").put_dashboard(
                DashboardName=name, DashboardBody=props["DashboardBody"]
            )
            self._record(logical, "AWS::CloudWatch::Dashboard", name)
        for logical, resource in self.template.resources("AWS::S3::BucketPolicy").items():
            # Resolved (so a broken reference fails here) but not installed: moto
            # ignores policy conditions, so the template's "deny unless TLS" statement
            # would deny everything, and the local endpoint is plain HTTP on loopback.
            props = resolver.resolve(resource["Properties"])
            self.bucket_policies[props["Bucket"]] = props["PolicyDocument"]
            self._record(logical, "AWS::S3::BucketPolicy", props["Bucket"])
        for logical, resource in self.template.resources("AWS::SQS::QueuePolicy").items():
            props = resolver.resolve(resource["Properties"])
            for url in props["Queues"]:
                self.client("sqs").set_queue_attributes(
                    QueueUrl=self._queue_url(url),
                    Attributes={"Policy": json.dumps(props["PolicyDocument"])},
                )
            self._record(logical, "AWS::SQS::QueuePolicy", ",".join(props["Queues"]))

    def _function_props(self, logical: str) -> dict[str, Any]:
        """A function's properties with the template's `Globals.Function` under them."""
        return {
            **self.template.function_globals(),
            **self.template.data["Resources"][logical].get("Properties", {}),
        }

    def _queue_url(self, url: str) -> str:
        name = url.rsplit("/", 1)[-1]
        return str(self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])

    def _deploy_bucket(self, logical: str, raw: dict[str, Any]) -> None:
        props = self.template.resolver.resolve(raw)
        name = self.template.resolver.physical[logical]
        self.s3.create_bucket(Bucket=name)
        if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            self.s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": "Enabled"}
            )
        block = props.get("PublicAccessBlockConfiguration")
        if block:
            self.s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration={k: bool(v) for k, v in block.items()}
            )
        encryption = props.get("BucketEncryption")
        if encryption:
            # CloudFormation and the S3 API spell the same rule differently.
            rules = [
                {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                for rule in encryption["ServerSideEncryptionConfiguration"]
            ]
            self.s3.put_bucket_encryption(
                Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules}
            )
        bridge = props.get("NotificationConfiguration", {}).get("EventBridgeConfiguration", {})
        if bridge.get("EventBridgeEnabled") in (True, "true", "True"):
            self.s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
        self._record(logical, "AWS::S3::Bucket", name)

    def _deploy_queue(self, logical: str, raw: dict[str, Any]) -> None:
        props = self.template.resolver.resolve(raw)
        attributes = {
            key: str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
            for key in ("MessageRetentionPeriod", "SqsManagedSseEnabled", "VisibilityTimeout")
            if key in props
        }
        url = self.client("sqs").create_queue(
            QueueName=self._physical_name(logical), Attributes=attributes
        )["QueueUrl"]
        self.template.resolver.physical[logical] = url
        self._record(logical, "AWS::SQS::Queue", url)

    def _deploy_log_group(self, logical: str, raw: dict[str, Any]) -> None:
        props = self.template.resolver.resolve(raw)
        logs = self.client("logs")
        logs.create_log_group(logGroupName=props["LogGroupName"])
        if "RetentionInDays" in props:
            logs.put_retention_policy(
                logGroupName=props["LogGroupName"], retentionInDays=int(props["RetentionInDays"])
            )
        self._record(logical, "AWS::Logs::LogGroup", props["LogGroupName"])

    def _deploy_table(self, logical: str, raw: dict[str, Any]) -> None:
        props = self.template.resolver.resolve(raw)
        name = self.template.resolver.physical[logical]
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
            SSESpecification={"Enabled": bool(props.get("SSESpecification", {}).get("SSEEnabled"))},
        )
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": bool(ttl.get("Enabled", True)),
                },
            )
        self._record(logical, "AWS::DynamoDB::Table", name)

    def _deploy_topic(self, logical: str, raw: dict[str, Any]) -> None:
        props = self.template.resolver.resolve(raw)
        sns = self.client("sns")
        attributes = {}
        if "KmsMasterKeyId" in props:
            attributes["KmsMasterKeyId"] = str(props["KmsMasterKeyId"])
        arn = sns.create_topic(Name=self._physical_name(logical), Attributes=attributes)["TopicArn"]
        for subscription in props.get("Subscription", []):
            sns.subscribe(
                TopicArn=arn,
                Protocol=subscription["Protocol"],
                Endpoint=subscription["Endpoint"],
            )
        self._record(logical, "AWS::SNS::Topic", arn)

    _ALARM_FIELDS = (
        "AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
        "InsufficientDataActions", "MetricName", "Namespace", "Statistic",
        "ExtendedStatistic", "Dimensions", "Period", "Unit", "EvaluationPeriods",
        "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
        "Metrics", "ThresholdMetricId",
    )  # fmt: skip

    def _deploy_alarm(self, logical: str, raw: dict[str, Any]) -> None:
        props = self.template.resolver.resolve(raw)
        # CloudFormation's property names are the API's, but numbers arrive as strings.
        alarm = {k: v for k, v in props.items() if k in self._ALARM_FIELDS}
        alarm.setdefault("AlarmName", self.template.resolver.physical[logical])
        for number in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if number in alarm:
                alarm[number] = int(alarm[number])
        if "Threshold" in alarm:
            alarm["Threshold"] = float(alarm["Threshold"])
        for query in alarm.get("Metrics", []):
            stat = query.get("MetricStat")
            if stat and "Period" in stat:
                stat["Period"] = int(stat["Period"])
        self.client("cloudwatch").put_metric_alarm(**alarm)
        self._record(logical, "AWS::CloudWatch::Alarm", alarm["AlarmName"])

    def _deploy_layer(self, logical: str) -> None:
        # The code of a local layer is assembled on disk by `workers.assemble_layers`;
        # moto only needs a version to attach.
        arn = self.client("lambda").publish_layer_version(
            LayerName=self._physical_name(logical),
            Content={"ZipFile": _placeholder_zip("layer contents are linked locally")},
        )["LayerVersionArn"]
        self.template.resolver.physical[logical] = arn
        self._record(logical, "AWS::Serverless::LayerVersion", arn)

    def _deploy_function(self, logical: str, spec: FunctionSpec) -> None:
        props = self._function_props(logical)
        unknown = set(props) - FUNCTION_PROPERTIES
        if unknown:
            msg = f"{logical}: the local cloud does not deploy {', '.join(sorted(unknown))}"
            raise NotImplementedError(msg)
        resolver = self.template.resolver
        role = self._role(
            logical, "lambda.amazonaws.com", self._inline_policies(props.get("Policies", []))
        )
        tracing = resolver.resolve(props.get("Tracing", "PassThrough"))
        name = self.names[logical]
        lam = self.client("lambda")
        arn = lam.create_function(
            FunctionName=name,
            Description=str(resolver.resolve(props.get("Description", ""))),
            Runtime=spec.runtime,
            Role=role,
            Handler=spec.handler,
            Code={"ZipFile": _placeholder_zip("code runs from the template's CodeUri")},
            MemorySize=spec.memory_mb,
            Timeout=spec.timeout_s,
            Architectures=[spec.architecture],
            Environment={"Variables": spec.environment},
            Layers=[resolver.physical[layer] for layer in spec.layers],
            TracingConfig={"Mode": "Active" if tracing == "Active" else "PassThrough"},
        )["FunctionArn"]
        self.arns[logical] = arn
        self._record(logical, "AWS::Serverless::Function", arn)
        if spec.log_group is not None:
            # moto ignores LoggingConfig; its invocations log to `logs_group_name`.
            from moto.awslambda.models import lambda_backends

            lambda_backends[ACCOUNT][REGION].get_function(name).logs_group_name = spec.log_group
        if spec.reserved_concurrency is not None:
            # Reserved concurrency belongs to the function, whichever version is invoked.
            lam.put_function_concurrency(
                FunctionName=name, ReservedConcurrentExecutions=spec.reserved_concurrency
            )
        if spec.alias is not None:
            # What SAM's AutoPublishAlias creates: a version of this code and configuration
            # and an alias pointing at it (`Ref Function.Version` / `Ref Function.Alias`).
            version = lam.publish_version(FunctionName=name)
            alias = lam.create_alias(
                FunctionName=name, Name=spec.alias, FunctionVersion=version["Version"]
            )
            expected = (
                resolver.physical[f"{logical}.Version"],
                resolver.physical[f"{logical}.Alias"],
            )
            if (version["FunctionArn"], alias["AliasArn"]) != expected:
                msg = f"{logical}: published {version['FunctionArn']}, expected {expected[0]}"
                raise RuntimeError(msg)
            self._record(f"{logical}Version", "AWS::Lambda::Version", version["FunctionArn"])
            self._record(f"{logical}Alias{spec.alias}", "AWS::Lambda::Alias", alias["AliasArn"])

    def _inline_policies(self, policies: list[Any]) -> list[dict[str, Any]]:
        """Policy documents from a SAM `Policies` list (inline documents and the
        `LambdaInvokePolicy` template, the only policy template the stack uses)."""
        documents = []
        for policy in self.template.resolver.resolve(policies):
            if isinstance(policy, dict) and "Statement" in policy:
                documents.append(policy)
            elif isinstance(policy, dict) and "LambdaInvokePolicy" in policy:
                name = policy["LambdaInvokePolicy"]["FunctionName"]
                arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
                documents.append(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "lambda:InvokeFunction",
                                "Resource": [arn, f"{arn}:*"],
                            }
                        ],
                    }
                )
        return documents

    def _role(self, logical: str, service: str, documents: list[dict[str, Any]]) -> str:
        iam = self.client("iam")
        name = f"{self.stack_name}-{logical}-role"
        arn = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": service},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        for index, document in enumerate(documents):
            iam.put_role_policy(
                RoleName=name,
                PolicyName=f"{logical}Policy{index}",
                PolicyDocument=json.dumps(document),
            )
        return str(arn)

    def _deploy_state_machine(self, logical: str) -> None:
        definition, props = self.template.state_machine(logical)
        resolver = self.template.resolver
        role = self._role(
            logical, "states.amazonaws.com", self._inline_policies(props.get("Policies", []))
        )
        tracing = resolver.resolve(props.get("Tracing", {}))
        extra: dict[str, Any] = {}
        logging_config = resolver.resolve(props.get("Logging"))
        if logging_config:
            extra["loggingConfiguration"] = {
                "level": logging_config.get("Level", "OFF"),
                "includeExecutionData": str(
                    logging_config.get("IncludeExecutionData", False)
                ).lower()
                == "true",
                "destinations": [
                    {
                        "cloudWatchLogsLogGroup": {
                            "logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]
                        }
                    }
                    for d in logging_config.get("Destinations", [])
                ],
            }
        machine_type = str(resolver.resolve(props.get("Type", "STANDARD")))
        log_group = None
        for destination in extra.get("loggingConfiguration", {}).get("destinations", []):
            # arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*
            log_group = destination["cloudWatchLogsLogGroup"]["logGroupArn"].split(":")[6]
        name = resolver.attributes[(logical, "Name")]
        arn = self.sfn.create_state_machine(
            name=name,
            definition=definition,
            roleArn=role,
            type=machine_type,
            tracingConfiguration={"enabled": bool(tracing.get("Enabled", False))},
            **extra,
        )["stateMachineArn"]
        if arn != resolver.physical[logical]:
            msg = f"{logical}: created {arn}, expected {resolver.physical[logical]}"
            raise RuntimeError(msg)
        self.state_machines[logical] = DeployedStateMachine(
            logical_id=logical, name=name, arn=arn, type=machine_type, log_group=log_group
        )
        self._record(logical, "AWS::Serverless::StateMachine", arn)

        events = self.client("events")
        for event_name, event in props.get("Events", {}).items():
            if event.get("Type") != "EventBridgeRule":
                msg = f"{logical}.{event_name}: only EventBridgeRule events are emulated"
                raise NotImplementedError(msg)
            rule_props = resolver.resolve(event["Properties"])
            pattern = dict(rule_props["Pattern"])
            if logical == STATE_MACHINE:
                self.rule_pattern = pattern
            rule = f"{logical}{event_name}"
            rule_name = self._physical_name(rule)
            rule_arn = events.put_rule(
                Name=rule_name, EventPattern=json.dumps(pattern), State="ENABLED"
            )["RuleArn"]
            target: dict[str, Any] = {
                "Id": f"{logical}{event_name}StepFunctionsTarget",
                "Arn": arn,
                "RoleArn": self._role(rule, "events.amazonaws.com", []),
            }
            if "RetryPolicy" in rule_props:
                target["RetryPolicy"] = {k: int(v) for k, v in rule_props["RetryPolicy"].items()}
            if "DeadLetterConfig" in rule_props:
                target["DeadLetterConfig"] = {"Arn": rule_props["DeadLetterConfig"]["Arn"]}
            events.put_targets(Rule=rule_name, Targets=[target])
            self._record(rule, "AWS::Events::Rule", rule_arn)

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
        version = head.get("VersionId")
        version = None if version in (None, "null") else str(version)
        obj: dict[str, Any] = {
            "key": quote_plus(key, safe="/") if url_encode_key else key,
            "size": head["ContentLength"],
            "etag": head["ETag"].strip('"'),
            # The sequencer S3 gave the PUT that made this version: the event is the one
            # S3 sent for it (a redelivery of it carries the same sequencer).
            "sequencer": self.bridge.sequencers.of(bucket, key, version)
            or self.bridge.sequencers.next(bucket, key, version),
        }
        if version is not None:
            obj["version-id"] = version
        return _s3_event(
            "Object Created",
            account=ACCOUNT,
            region=REGION,
            bucket=bucket,
            obj=obj,
            reason="PutObject",
        )

    def matches_rule(self, event: dict[str, Any]) -> bool:
        # moto does not implement the TestEventPattern API; its rule matcher is the
        # one that decides which events its EventBridge delivers, so ask it directly.
        pattern = EventPattern.load(json.dumps(self.rule_pattern))
        return bool(pattern.matches_event(event))  # type: ignore[arg-type]

    def start(self, event: dict[str, Any]) -> str:
        """Start an execution for a hand-made event, as the rule's target would."""
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.state_machine_arn,
                name=str(uuid.uuid4()),
                input=json.dumps(event),
            )["executionArn"]
        )

    def wait(self, arn: str, key: str = "", *, timeout_s: float = 120.0) -> ExecutionRecord:
        """Follow an execution to its end: status, output, error and history.

        A Standard execution is read as AWS serves it (DescribeExecution,
        GetExecutionHistory). AWS serves neither for Express executions, so theirs is
        read from the state machine's log group, where they log every event (level ALL
        with execution data), as operators must read it in AWS.
        """
        machine = self._machine_of(arn)
        look = self._logged(arn, machine) if machine.type == EXPRESS else self._described(arn)
        deadline = time.monotonic() + timeout_s
        while True:
            description, history = look()
            if description["status"] in TERMINAL:
                break
            if time.monotonic() > deadline:
                msg = f"execution {arn} still {description['status']} after {timeout_s:.0f}s"
                raise TimeoutError(msg)
            time.sleep(0.02)
        if history is None:
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

    def _machine_of(self, execution_arn: str) -> DeployedStateMachine:
        """The deployed machine an execution belongs to, by the name in its ARN
        (arn:aws:states:REGION:ACCOUNT:execution|express:MACHINE:NAME[:ID])."""
        parts = execution_arn.split(":")
        name = parts[6] if len(parts) > 6 else ""
        for machine in self.state_machines.values():
            if machine.name == name:
                return machine
        msg = f"{execution_arn} is not an execution of a state machine of this stack"
        raise LookupError(msg)

    def _described(self, arn: str) -> Callable[[], tuple[dict[str, Any], list[Any] | None]]:
        """A Standard execution's description; its history is read once it has ended."""
        return lambda: (dict(self.sfn.describe_execution(executionArn=arn)), None)

    def _logged(
        self, arn: str, machine: DeployedStateMachine
    ) -> Callable[[], tuple[dict[str, Any], list[Any] | None]]:
        """An Express execution's description and history, both from its log events."""
        from imgpipe.ops.history.logs import describe_from_events, read_execution_history

        group = machine.log_group
        if group is None:
            msg = "the state machine logs nowhere: its executions cannot be followed"
            raise LookupError(msg)
        logs = self.client("logs")

        def look() -> tuple[dict[str, Any], list[Any] | None]:
            history = read_execution_history(logs, group, arn)
            return describe_from_events(arn, history), history

        return look

    def upload(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        url_encode_key: bool = False,
        timeout_s: float = 120.0,
        metadata: dict[str, str] | None = None,
    ) -> ExecutionRecord:
        """Put an object and follow it through the pipeline to the end of its execution.

        `metadata` is the object's user metadata (`x-amz-meta-*`; e.g. `focus`).

        The upload travels the way it does in AWS: S3 emits the event, the template's
        rule matches it and the bridge starts the execution. With `url_encode_key`, the
        event is built by hand with the key URL-encoded (S3 notification style), to
        test that the pipeline resolves either spelling.
        """
        if url_encode_key:
            with self.bridge.paused():
                self.s3.put_object(
                    Bucket=self.input_bucket,
                    Key=key,
                    Body=body,
                    ContentType=content_type,
                    Metadata=metadata or {},
                )
            event = self.object_created_event(key, url_encode_key=True)
            if not self.matches_rule(event):
                msg = f"the template's rule does not match an upload of {key!r}"
                raise LookupError(msg)
            return self.wait(self.start(event), key, timeout_s=timeout_s)
        seen = len(self.bridge.deliveries)
        put = self.s3.put_object(
            Bucket=self.input_bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            Metadata=metadata or {},
        )
        delivery = self.bridge.wait_for(
            self.input_bucket, key, put.get("VersionId"), after=seen, timeout_s=timeout_s
        )
        if delivery.execution_arn is None:
            msg = f"the event for {key!r} could not start an execution: {delivery.error}"
            raise RuntimeError(msg)
        return self.wait(delivery.execution_arn, key, timeout_s=timeout_s)

    def delete(self, key: str, *, timeout_s: float = 120.0) -> ExecutionRecord:
        """Delete an upload and follow its "Object Deleted" execution to the end."""
        seen = len(self.bridge.deliveries)
        self.s3.delete_object(Bucket=self.input_bucket, Key=key)
        delivery = self.bridge.wait_for(
            self.input_bucket,
            key,
            None,
            after=seen,
            timeout_s=timeout_s,
            detail_type="Object Deleted",
        )
        if delivery.execution_arn is None:
            msg = f"the deletion of {key!r} could not start an execution: {delivery.error}"
            raise RuntimeError(msg)
        return self.wait(delivery.execution_arn, key, timeout_s=timeout_s)


@contextmanager
def _emulator(server: bool, port: int) -> Iterator[str | None]:
    """moto in this process (`None` endpoint) or served on loopback (its URL)."""
    if not server:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            yield None
        return
    from moto.core.config import default_user_config
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    saved = dict(default_user_config.get("stepfunctions", {}))
    saved_port = os.environ.get("MOTO_PORT")
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    # One line per request is noise next to the pipeline's own output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto_server.start()
    host, bound = moto_server.get_host_and_port()
    endpoint = f"http://{host}:{bound}"
    # moto's Step Functions interpreter calls Lambda through the server at MOTO_PORT.
    os.environ["MOTO_PORT"] = str(bound)
    try:
        yield endpoint
    finally:
        if saved_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = saved_port
        # Backends are process-global: reset them so the next run starts empty.
        request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
        moto_server.stop()
        default_user_config["stepfunctions"] = saved  # type: ignore[typeddict-item]


class _Clock:
    """Stands in for the `time` module inside moto's retrier: records instead of sleeping."""

    def __init__(self, sleep: Callable[[float], None]) -> None:
        self.sleep = sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _placeholder_zip(note: str) -> bytes:
    # moto wants a code package; the real code runs from CodeUri and local layer folders.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", note)
    return buffer.getvalue()
