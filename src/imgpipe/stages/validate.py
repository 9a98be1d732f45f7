"""Validate: decide from the header whether an upload can be rendered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgpipe.budget import check_budgets
from imgpipe.claims import ClaimTable, SourceIdentity
from imgpipe.config import Limits
from imgpipe.errors import EmptyObject, ObjectTooLarge
from imgpipe.events import S3ObjectEvent, key_candidates
from imgpipe.keys import manifest_key
from imgpipe.messages import SourceRef, facts_to_dict
from imgpipe.sniff import sniff
from imgpipe.specs import ImageFacts
from imgpipe.storage import ObjectHead, ObjectStore, S3RangeSource


@dataclass(frozen=True)
class Verdict:
    """`valid` with the facts, or `skipped` with a reason (rejections are raised)."""

    status: str
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


def _skipped(source: SourceRef, code: str, message: str) -> Verdict:
    return Verdict("skipped", source, reason={"code": code, "message": message})


def identity(source: SourceRef) -> SourceIdentity:
    return SourceIdentity(
        source.bucket, source.key, source.sequencer, source.version_id, source.etag
    )


def validate_upload(
    store: ObjectStore,
    event: S3ObjectEvent,
    limits: Limits,
    claims: ClaimTable | None = None,
    execution: str = "",
) -> Verdict:
    named = SourceRef(
        bucket=event.bucket,
        key=event.key,
        size=event.size or 0,
        etag=event.etag,
        version_id=event.version_id,
        sequencer=event.sequencer,
    )
    head = resolve(store, event)
    if head is None:
        return _skipped(named, "ObjectGone", "the object no longer exists; nothing to render")
    source = SourceRef(
        bucket=event.bucket,
        key=head.key,
        size=head.size,
        etag=head.etag,
        version_id=head.version_id,
        sequencer=event.sequencer,
    )
    # An event for an object that has since been overwritten must not render the
    # old bytes over the new upload's renditions; the newer upload has its own event.
    if event.etag and head.etag and head.etag != event.etag.strip('"'):
        return _skipped(source, "Superseded", "a newer upload replaced this object")
    if head.version_id:
        latest = store.head(event.bucket, head.key)
        if latest is not None and latest.version_id != head.version_id:
            return _skipped(source, "Superseded", "a newer version of this object exists")
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
    if claims is not None:
        claim = claims.claim(identity(source), execution)
        if claim.outcome == "duplicate":
            return _skipped(source, "Duplicate", f"this event is already handled by {claim.holder}")
        if claim.outcome == "superseded":
            return _skipped(source, "Superseded", "a newer upload of this key is being handled")
    return Verdict("valid", source, image=facts, header_bytes_read=reader.bytes_read)
