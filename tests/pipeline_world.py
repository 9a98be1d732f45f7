"""One emulated S3 + DynamoDB world and the pipeline's stages driven as the ASL drives them.

The consistency tests use it to run executions side by side and stop one between
any two of its AWS calls while others run (`Pauses`), deterministically: no sleeps.
Events are built in the documented AWS shape, with sequencers that increase per key
as S3's do.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import boto3
from moto import mock_aws
from PIL import Image

from imgpipe.claims import ClaimTable
from imgpipe.config import folder_config, resize_config, validate_config
from imgpipe.errors import ImageRejected, KeyBusy
from imgpipe.events import OBJECT_DELETED, parse_s3_event
from imgpipe.keys import MANIFEST_NAME, output_folder
from imgpipe.messages import SourceRef
from imgpipe.stages.forget import RERENDER, forget_upload
from imgpipe.stages.resize import render_upload
from imgpipe.stages.store import store_manifest
from imgpipe.stages.validate import validate_upload
from imgpipe.storage import ObjectStore

IN, OUT, FOREIGN, TABLE = "uploads-in", "renditions-out", "someone-elses", "imgpipe-state"
REGION = "us-east-1"
ENV = {
    "INPUT_BUCKET": IN,
    "OUTPUT_BUCKET": OUT,
    "STATE_TABLE": TABLE,
    "RENDITIONS": "small:16,big:40",
    "OUTPUT_FORMATS": "webp,jpeg",
}
T = TypeVar("T")


def picture(colour: tuple[int, int, int], size: tuple[int, int] = (48, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


class Pauses:
    """Stop a chosen thread just before one of its AWS calls until the test lets it go."""

    def __init__(self) -> None:
        self._rules: list[
            tuple[str, Callable[[str, str], bool], threading.Event, threading.Event]
        ] = []
        # Called before every AWS call when set (the stepper of the interleaving test).
        self.gate: Callable[[], None] | None = None

    def at(
        self, thread: str, when: Callable[[str, str], bool]
    ) -> tuple[threading.Event, threading.Event]:
        """(reached, release): `reached` is set when `thread` is about to make a call
        `when(operation, key)` accepts; it then waits for `release`. Fires once."""
        reached, release = threading.Event(), threading.Event()
        self._rules.append((thread, when, reached, release))
        return reached, release

    def check(self, operation: str, key: str) -> None:
        if self.gate is not None:
            self.gate()
        me = threading.current_thread().name
        for rule in list(self._rules):
            thread, when, reached, release = rule
            if thread == me and when(operation, key):
                self._rules.remove(rule)
                reached.set()
                if not release.wait(timeout=30):
                    msg = f"{me} was never released from {operation} {key}"
                    raise TimeoutError(msg)


def nth(operation: str, key: str, n: int) -> Callable[[str, str], bool]:
    """A `Pauses.at` condition: the n-th `operation` on `key` (1-based)."""
    seen = 0

    def when(op: str, k: str) -> bool:
        nonlocal seen
        if (op, k) == (operation, key):
            seen += 1
        return (op, k) == (operation, key) and seen == n

    return when


class PausableStore(ObjectStore):
    def __init__(self, client: Any, pauses: Pauses) -> None:
        super().__init__(client)
        self._pauses = pauses

    def head(self, bucket: str, key: str, version_id: str | None = None) -> Any:
        self._pauses.check("head", key)
        return super().head(bucket, key, version_id)

    def read_object(
        self, bucket: str, key: str, version_id: str | None = None, etag: str | None = None
    ) -> Any:
        # `read` goes through here too: one pause point for every GetObject.
        self._pauses.check("read", key)
        return super().read_object(bucket, key, version_id, etag)

    def write(self, bucket: str, key: str, data: bytes, **kwargs: Any) -> None:
        self._pauses.check("write", key)
        super().write(bucket, key, data, **kwargs)

    def delete_keys(self, bucket: str, keys: list[str]) -> None:
        for key in keys:
            self._pauses.check("delete", key)
        super().delete_keys(bucket, keys)


class PausableClaims(ClaimTable):
    def __init__(self, client: Any, pauses: Pauses) -> None:
        # No waiting inside a function: a busy key goes back to the "state machine"
        super().__init__(client, TABLE, lock_wait_s=0)
        self._pauses = pauses

    @contextmanager
    def locked(self, bucket: str, key: str, *, lease_s: float) -> Iterator[None]:
        self._pauses.check("lock", key)
        with super().locked(bucket, key, lease_s=lease_s):
            yield

    def claim(self, source: Any, execution: str, *, force: bool = False) -> Any:
        self._pauses.check("claim", source.key)
        return super().claim(source, execution, force=force)

    def holds(self, source: Any, execution: str) -> bool:
        self._pauses.check("holds", source.key)
        return super().holds(source, execution)


@dataclass
class World:
    s3: Any
    dynamodb: Any
    pauses: Pauses = field(default_factory=Pauses)
    env: dict[str, str] = field(default_factory=lambda: dict(ENV))
    _sequencers: dict[str, int] = field(default_factory=dict)
    executions: int = 0

    # ------------------------------------------------------------ the bucket
    def _sequencer(self, key: str) -> str:
        self._sequencers[key] = self._sequencers.get(key, 0) + 1
        return f"{0x0062E99A88DC407460 + self._sequencers[key]:018X}"

    def put(self, key: str, data: bytes, bucket: str = IN) -> dict[str, Any]:
        response = self.s3.put_object(Bucket=bucket, Key=key, Body=data)
        return self.event(
            "Object Created",
            key,
            bucket=bucket,
            size=len(data),
            etag=response["ETag"].strip('"'),
            version=response.get("VersionId"),
            reason="PutObject",
        )

    def delete(self, key: str) -> dict[str, Any]:
        """A plain DELETE: in the versioned input bucket, a delete marker."""
        response = self.s3.delete_object(Bucket=IN, Key=key)
        return self.event(
            "Object Deleted",
            key,
            version=response.get("VersionId"),
            reason="DeleteObject",
            deletion="Delete Marker Created",
        )

    def delete_version(self, key: str, version: str) -> dict[str, Any]:
        """A permanent delete of one version (or of a delete marker)."""
        self.s3.delete_object(Bucket=IN, Key=key, VersionId=version)
        return self.event(
            "Object Deleted",
            key,
            version=version,
            reason="DeleteObject",
            deletion="Permanently Deleted",
        )

    def event(
        self,
        detail_type: str,
        key: str,
        *,
        bucket: str = IN,
        size: int | None = None,
        etag: str | None = None,
        version: str | None = None,
        reason: str,
        deletion: str | None = None,
        sequencer: str | None = None,
    ) -> dict[str, Any]:
        obj: dict[str, Any] = {"key": key, "sequencer": sequencer or self._sequencer(key)}
        if size is not None:
            obj["size"] = size
        if etag is not None:
            obj["etag"] = etag
        if version is not None:
            obj["version-id"] = version
        detail: dict[str, Any] = {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": "123456789012",
            "source-ip-address": "203.0.113.15",
            "reason": reason,
        }
        if deletion:
            detail["deletion-type"] = deletion
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2026-12-03T10:00:00Z",
            "region": REGION,
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": detail,
        }

    def backfill(self, key: str, mode: str = "missing") -> dict[str, Any]:
        """The item the backfill machine's ItemSelector makes of a listed key."""
        return {
            "version": "0",
            "source": "imgpipe.backfill",
            "detail-type": "Object Created",
            "time": "2026-12-03T10:00:00Z",
            "detail": {
                "bucket": {"name": IN},
                "object": {"key": key},
                "reason": "Backfill",
                "mode": mode,
            },
        }

    def versions(self, key: str) -> list[dict[str, Any]]:
        listed = self.s3.list_object_versions(Bucket=IN, Prefix=key)
        return [v for v in listed.get("Versions", []) if v["Key"] == key]

    # ------------------------------------------------------------ the pipeline
    def store(self) -> ObjectStore:
        return PausableStore(self.s3, self.pauses)

    def claims(self) -> ClaimTable:
        return PausableClaims(self.dynamodb, self.pauses)

    def execute(
        self, event: dict[str, Any], *, on_busy: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """Run one execution as statemachine/pipeline.asl.json does; a `KeyBusy` task is
        retried after `on_busy()` (default: fail the test, nothing should be busy)."""
        self.executions += 1
        execution = f"arn:aws:states:{REGION}:123456789012:execution:imgpipe:e{self.executions}"
        store, claims = self.store(), self.claims()
        folder = folder_config(self.env)

        def retried(step: Callable[[], T]) -> T:
            while True:
                try:
                    return step()
                except KeyBusy:
                    if on_busy is None:
                        raise
                    on_busy()

        parsed = parse_s3_event(event)
        if parsed.detail_type == OBJECT_DELETED:
            forgotten = retried(
                lambda: forget_upload(store, parsed, folder, claims, execution, lease_s=60)
            )
            if forgotten.status != RERENDER:
                return forgotten.to_dict()
        try:
            verdict = retried(
                lambda: validate_upload(
                    store, parsed, validate_config(self.env), claims, execution, lease_s=60
                )
            )
            if verdict.status == "skipped":
                return {"status": "skipped", "reason": verdict.reason}
            image = verdict.image
            source = verdict.source
            result = retried(
                lambda: render_upload(
                    store, source, image, resize_config(self.env), claims, execution, lease_s=60
                )
            )
        except ImageRejected as rejection:
            return {"status": "rejected", "reason": {"code": rejection.code}}
        if result.status == "skipped":
            return {"status": "skipped", "reason": result.reason}
        assert image is not None
        outcome = retried(
            lambda: store_manifest(
                store,
                folder.output,
                source,
                image,
                result.renditions,
                claims,
                execution=execution,
                lease_s=60,
                settings=result.to_dict()["settings"],
                placeholder=result.placeholder,
            )
        )
        return outcome.to_dict()

    # ------------------------------------------------------------ what is there
    def folder(self, key: str) -> dict[str, int]:
        """The output folder's direct files as key -> bytes."""
        prefix = output_folder("", key)
        listed = self.s3.list_objects_v2(Bucket=OUT, Prefix=prefix, Delimiter="/")
        return {item["Key"]: item["Size"] for item in listed.get("Contents", [])}

    def manifest(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=OUT, Key=output_folder("", key) + MANIFEST_NAME)[
                "Body"
            ]
        except self.s3.exceptions.NoSuchKey:
            return None
        document: dict[str, Any] = json.loads(body.read())
        return document

    def current(self, key: str) -> SourceRef | None:
        try:
            head = self.s3.head_object(Bucket=IN, Key=key)
        except self.s3.exceptions.ClientError:
            return None
        return SourceRef(
            IN, key, head["ContentLength"], head["ETag"].strip('"'), head.get("VersionId")
        )


def visible_manifests_are_complete(world: World, keys: list[str]) -> list[str]:
    """Invariant 3: every visible manifest lists only renditions that exist, with
    the listed size. Returns what is wrong (empty when all is well)."""
    problems = []
    for key in keys:
        manifest = world.manifest(key)
        if manifest is None:
            continue
        files = world.folder(key)
        for rendition in manifest["renditions"]:
            found = files.get(rendition["key"])
            if found != rendition["bytes"]:
                listed = f"{rendition['key']} ({rendition['bytes']} B)"
                problems.append(f"{key}: manifest lists {listed}, found {found}")
    return problems


def follows_current_state(
    world: World, key: str, renderable: Callable[[SourceRef], bool] = lambda s: True
) -> list[str]:
    """Invariants 1 and 2 for `key`, once every event has been handled."""
    current = world.current(key)
    files = world.folder(key)
    manifest = world.manifest(key)
    if current is None or not renderable(current):
        return [f"{key}: no current renderable version, yet {sorted(files)}"] if files else []
    if manifest is None:
        return [f"{key}: current version {current.version_id} has no manifest ({sorted(files)})"]
    made_from = manifest["source"]
    problems = []
    if (made_from["version_id"], made_from["etag"]) != (current.version_id, current.etag):
        problems.append(
            f"{key}: manifest describes {made_from['version_id']}, current is {current.version_id}"
        )
    listed = {r["key"]: r["bytes"] for r in manifest["renditions"]}
    listed[output_folder("", key) + MANIFEST_NAME] = files.get(
        output_folder("", key) + MANIFEST_NAME, -1
    )
    if files != listed:
        problems.append(
            f"{key}: folder {sorted(files)} is not what the manifest lists {sorted(listed)}"
        )
    return problems


@contextmanager
def world() -> Iterator[World]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (IN, OUT, FOREIGN):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=IN, VersioningConfiguration={"Status": "Enabled"})
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield World(s3, dynamodb)
