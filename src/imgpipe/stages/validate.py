"""Validate: decide from the header whether an upload can be rendered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from imgpipe.budget import check_budgets
from imgpipe.claims import ClaimTable
from imgpipe.config import ValidateConfig
from imgpipe.errors import EmptyObject, ImageRejected, ObjectGone, ObjectTooLarge
from imgpipe.events import OBJECT_DELETED, S3ObjectEvent, key_candidates
from imgpipe.keys import manifest_key
from imgpipe.messages import SourceRef, facts_to_dict
from imgpipe.sniff import sniff
from imgpipe.specs import ImageFacts
from imgpipe.stages.folder import (
    clear_rejected,
    describes,
    folder_of,
    listed,
    read_manifest,
)
from imgpipe.storage import ObjectHead, ObjectStore, S3RangeSource


@dataclass(frozen=True)
class Verdict:
    """`valid` with the facts, or `skipped` with a reason (rejections are raised)."""

    status: Literal["valid", "skipped"]
    source: SourceRef
    image: ImageFacts | None = None
    reason: dict[str, str] | None = None
    header_bytes_read: int = 0

    def to_dict(self) -> dict[str, Any]:
        # Every key is always present (null when empty): the state machine's
        # ResultSelector names them and JSONPath fails on a missing key.
        return {
            "status": self.status,
            "source": self.source.to_dict(),
            "image": facts_to_dict(self.image) if self.image is not None else None,
            "reason": self.reason,
        }


def resolve(store: ObjectStore, event: S3ObjectEvent) -> ObjectHead | None:
    """Find the object the event names, whichever way the event spelled its key.

    When several spellings exist in the bucket, the one whose ETag matches the event
    wins; without an ETag to compare, the most literal spelling does.
    """
    found: list[ObjectHead] = []
    for key in key_candidates(event.key):
        head = store.head(event.bucket, key, event.version_id)
        if head is None:
            continue
        if event.etag and head.etag == event.etag.strip('"'):
            return head
        found.append(head)
    return found[0] if found else None


def _stale_current(
    store: ObjectStore, event: S3ObjectEvent, config: ValidateConfig
) -> tuple[ObjectHead | None, bool]:
    """For a deletion handed over by forget: the current object whose outputs are
    missing or describe another version (most literal spelling first), and whether
    any spelling still has a current object at all."""
    exists = False
    for key in key_candidates(event.key):
        head = store.head(event.bucket, key)
        if head is None:
            continue
        exists = True
        manifest = read_manifest(store, config.output, key)
        if manifest is None or not describes(manifest, head):
            return head, True
    return None, exists


def up_to_date(
    store: ObjectStore, config: ValidateConfig, head: ObjectHead, manifest: dict[str, Any] | None
) -> bool:
    """Whether the key's outputs are those of its current object made with the current
    rendition set, every file the manifest lists still there with its size (what
    `imgpipe audit` calls up to date)."""
    if manifest is None or not describes(manifest, head):
        return False
    settings = manifest.get("settings")
    made_with = settings.get("fingerprint") if isinstance(settings, dict) else None
    if made_with != config.render_fingerprint:
        return False
    present = store.list_sizes(
        config.output.bucket, folder_of(config.output, head.key), direct=True
    )
    return all(present.get(key) == size for key, size in listed(manifest).items())


def _backfill(
    store: ObjectStore, event: S3ObjectEvent, config: ValidateConfig
) -> ObjectHead | Verdict:
    """A listed key: its current object, unless there is none or (mode `missing`) its
    outputs are up to date."""
    named = SourceRef.named_by(event)
    head = resolve(store, event)
    if head is None:
        return _skipped(named, "ObjectGone", "the object no longer exists; nothing to render")
    if event.backfill == "missing":
        manifest = read_manifest(store, config.output, head.key)
        if up_to_date(store, config, head, manifest):
            return _skipped(
                SourceRef.found(event.bucket, head, None),
                "UpToDate",
                "the outputs are of the current version, made with the current rendition set",
            )
    return head


def _skipped(source: SourceRef, code: str, message: str) -> Verdict:
    return Verdict("skipped", source, reason={"code": code, "message": message})


def validate_upload(
    store: ObjectStore,
    event: S3ObjectEvent,
    config: ValidateConfig,
    claims: ClaimTable,
    execution: str,
    *,
    lease_s: float,
) -> Verdict:
    """Decide whether the object the event names should be rendered now.

    An Object Created event renders its own object, and only while that object is
    the key's current one. An Object Deleted event arrives here only when forget
    found that the deletion left an older version current (a permanent delete of
    the newest version, a removed delete marker): it renders whatever is current.
    A backfill item renders the key's current object (docs/backfill.md).
    """
    named = SourceRef.named_by(event)
    if event.bucket != config.input_bucket:
        return _skipped(
            named, "ForeignBucket", f"the pipeline renders uploads to {config.input_bucket} only"
        )
    restoring = event.detail_type == OBJECT_DELETED
    # Both decided to render the current object from its outputs, not from an event
    # about it: a finished claim on the same object must not make them a duplicate.
    force = restoring or event.backfill is not None
    head: ObjectHead | None
    if event.backfill is not None:
        found = _backfill(store, event, config)
        if isinstance(found, Verdict):
            return found
        head = found
    elif restoring:
        head, exists = _stale_current(store, event, config)
        if head is None:
            if exists:
                return _skipped(named, "StillExists", "the current version is already rendered")
            return _skipped(named, "ObjectGone", "the object no longer exists; nothing to render")
    else:
        head = resolve(store, event)
        if head is None:
            return _skipped(named, "ObjectGone", "the object no longer exists; nothing to render")
    source = SourceRef.found(event.bucket, head, event.sequencer)
    if not force:
        # Outputs follow the current object only: an event for an object that has
        # been replaced or deleted since must not render it (the newer state has
        # its own event).
        if event.etag and head.etag and head.etag != event.etag.strip('"'):
            return _skipped(source, "Superseded", "a newer upload replaced this object")
        latest = store.head(event.bucket, head.key)
        if latest is None:
            return _skipped(source, "ObjectGone", "the object was deleted; nothing to render")
        if not source.same_object(latest.version_id, latest.etag):
            return _skipped(source, "Superseded", "a newer version of this object exists")

    claim = claims.claim(source.identity(), execution, force=force)
    if claim.outcome == "duplicate":
        return _skipped(source, "Duplicate", f"this object is already handled by {claim.holder}")

    try:
        facts, bytes_read = inspect_header(store, source, head, config)
    except ObjectGone as gone:
        return _skipped(source, "ObjectGone", str(gone))
    except ImageRejected:
        clear_rejected(store, claims, config.output, source, execution, lease_s=lease_s)
        raise
    return Verdict("valid", source, image=facts, header_bytes_read=bytes_read)


def inspect_header(
    store: ObjectStore, source: SourceRef, head: ObjectHead, config: ValidateConfig
) -> tuple[ImageFacts, int]:
    limits = config.limits
    # Fail early on keys whose output keys would not fit in S3's key length.
    manifest_key("", head.key)
    if head.size == 0:
        msg = "the object is empty (0 bytes)"
        raise EmptyObject(msg)
    if head.size > limits.max_bytes:
        msg = f"the object is {head.size} bytes; the limit is {limits.max_bytes}"
        raise ObjectTooLarge(msg)
    reader = S3RangeSource(store, source.bucket, source.key, source.version_id, head.size)
    facts = sniff(reader, allowed=limits.allowed_formats, frame_limit=limits.max_frames)
    check_budgets(facts, limits)
    return facts, reader.bytes_read
