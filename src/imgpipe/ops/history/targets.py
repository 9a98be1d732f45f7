"""What an execution is about: its S3 object, the pipeline's answer, which machine.

Targets as an operator names them (`s3://bucket/key`, an execution ARN), the source
object an execution's input event names, the outcome its output reports, and the
rule that finds the pipeline's state machine among an account's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from imgpipe.events import key_candidates
from imgpipe.ops.errors import OpsError
from imgpipe.ops.history.values import loads

STATE_MACHINE_HINT = "imagepipeline"


@dataclass(frozen=True)
class ObjectRef:
    """An S3 object; for an execution's source, the key is spelled as its event spelled it."""

    bucket: str
    key: str
    version_id: str | None = None
    size: int | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class ExecutionOutcome:
    """The pipeline's own answer: the execution output (docs/contracts.md, section 3)."""

    status: str
    reason_code: str | None = None
    reason_message: str | None = None
    renditions: int = 0
    manifest: ObjectRef | None = None
    source: ObjectRef | None = None


def _ref(value: Any) -> ObjectRef | None:
    if isinstance(value, Mapping):
        bucket, key = value.get("bucket"), value.get("key")
        if isinstance(bucket, str) and isinstance(key, str):
            return ObjectRef(bucket, key)
    return None


def source_of(execution_input: str | None) -> ObjectRef | None:
    """Bucket and key of the S3 EventBridge event an execution was started with."""
    event = loads(execution_input)
    if not isinstance(event, Mapping):
        return None
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return None
    bucket, obj = detail.get("bucket"), detail.get("object")
    if not isinstance(bucket, Mapping) or not isinstance(obj, Mapping):
        return None
    name, key = bucket.get("name"), obj.get("key")
    if not isinstance(name, str) or not isinstance(key, str):
        return None
    version, size = obj.get("version-id"), obj.get("size")
    return ObjectRef(
        name,
        key,
        version_id=version if isinstance(version, str) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


def outcome_of(execution_output: str | None) -> ExecutionOutcome | None:
    output = loads(execution_output)
    if not isinstance(output, Mapping) or not isinstance(output.get("status"), str):
        return None
    reason = output.get("reason")
    reason = reason if isinstance(reason, Mapping) else {}
    renditions = output.get("renditions")
    return ExecutionOutcome(
        status=output["status"],
        reason_code=reason.get("code"),
        reason_message=reason.get("message"),
        renditions=len(renditions) if isinstance(renditions, list) else 0,
        manifest=_ref(output.get("manifest")),
        source=_ref(output.get("source")),
    )


def parse_s3_uri(uri: str) -> ObjectRef:
    """`s3://bucket/key` with the key kept exactly as typed (no decoding)."""
    if not uri.startswith("s3://"):
        msg = f"not an s3:// URI: {uri}"
        raise OpsError(msg)
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        msg = f"expected s3://bucket/key, got {uri}"
        raise OpsError(msg)
    return ObjectRef(bucket, key)


def is_execution_arn(text: str) -> bool:
    parts = text.split(":")
    return (
        len(parts) >= 8
        and parts[0] == "arn"
        and parts[2] == "states"
        and (parts[5] in ("execution", "express"))
    )


def is_upload_of(description: Mapping[str, Any], wanted: ObjectRef) -> bool:
    """Whether an execution (a DescribeExecution response) is for the object `wanted`.

    The event may spell the key URL-encoded (`+` for space, `%XX`), so the literal
    key and its decodings all count. A processed execution's output carries the key
    the pipeline actually resolved, which settles the ambiguity when it is there
    (e.g. `a+b.jpg` that really is `a+b.jpg`, not `a b.jpg`).
    """
    source = source_of(description.get("input"))
    if source is None or source.bucket != wanted.bucket:
        return False
    outcome = outcome_of(description.get("output"))
    if outcome is not None and outcome.status == "processed" and outcome.source is not None:
        return outcome.source.key == wanted.key
    return wanted.key in key_candidates(source.key)


def pick_state_machine(
    machines: Iterable[Mapping[str, Any]], hint: str = STATE_MACHINE_HINT
) -> str:
    """The one state machine whose name contains `hint` (any case).

    SAM names the pipeline `ImagePipeline-<suffix>`, the local emulator
    `imgpipe-local-imagepipeline`; the backfill machine is `<stack>-backfill`.
    """
    found = [m for m in machines if hint in str(m.get("name", "")).lower()]
    if not found:
        msg = (
            f"no state machine whose name contains '{hint}'; "
            "pass --state-machine ARN or --stack NAME"
        )
        raise OpsError(msg)
    if len(found) > 1:
        names = ", ".join(sorted(str(m["name"]) for m in found))
        msg = (
            f"{len(found)} state machines match '{hint}' ({names}); "
            "pass --state-machine ARN or --stack NAME"
        )
        raise OpsError(msg)
    return str(found[0]["stateMachineArn"])
