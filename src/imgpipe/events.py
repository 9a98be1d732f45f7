"""The S3 EventBridge event, parsed at the edge into a typed object.

We parse it ourselves rather than through Powertools' `S3EventBridgeNotificationEvent`
because that class `unquote_plus`-es the key, which turns a literal `+` into a space
(see docs/decisions.md, "Keys in events"). Here the key is kept exactly as the event
spells it; `key_candidates` lists the spellings to try against the bucket.

The documented AWS shape is accepted, plus two spellings the local emulator uses
(`eTag` for `etag`). The backfill state machine sends the same shape with source
`imgpipe.backfill`, the listed key, no version or sequencer, and `detail.mode`
(docs/backfill.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, unquote_plus

from imgpipe.errors import InvalidEvent

OBJECT_CREATED = "Object Created"
OBJECT_DELETED = "Object Deleted"
S3_SOURCE = "aws.s3"
BACKFILL_SOURCE = "imgpipe.backfill"
BackfillMode = Literal["missing", "all"]
BACKFILL_MODES: tuple[BackfillMode, ...] = ("missing", "all")


@dataclass(frozen=True)
class S3ObjectEvent:
    """The facts of an S3 EventBridge notification the pipeline uses."""

    detail_type: str
    event_id: str
    time: str
    bucket: str
    key: str
    size: int | None
    etag: str | None
    version_id: str | None
    sequencer: str | None
    reason: str | None
    # Set for a backfill item: render only what is missing or outdated, or everything.
    backfill: BackfillMode | None = None


def _text(mapping: Mapping[str, Any], name: str, where: str) -> str:
    value = mapping.get(name)
    if not isinstance(value, str) or not value:
        msg = f"S3 event has no {where}{name}"
        raise InvalidEvent(msg)
    return value


def _optional_text(mapping: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = mapping.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def parse_s3_event(event: Mapping[str, Any]) -> S3ObjectEvent:
    if not isinstance(event, Mapping):
        msg = f"S3 event must be an object, got {type(event).__name__}"
        raise InvalidEvent(msg)
    source = event.get("source")
    if source not in (S3_SOURCE, BACKFILL_SOURCE):
        msg = f"event source is {source!r}, expected {S3_SOURCE!r} or {BACKFILL_SOURCE!r}"
        raise InvalidEvent(msg)
    detail_type = _text(event, "detail-type", "")
    if detail_type not in (OBJECT_CREATED, OBJECT_DELETED):
        msg = f"detail-type {detail_type!r} is not {OBJECT_CREATED!r} or {OBJECT_DELETED!r}"
        raise InvalidEvent(msg)
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        msg = "S3 event has no detail"
        raise InvalidEvent(msg)
    backfill = _backfill_mode(detail) if source == BACKFILL_SOURCE else None
    if backfill is not None and detail_type != OBJECT_CREATED:
        msg = f"a backfill event must be {OBJECT_CREATED!r}, got {detail_type!r}"
        raise InvalidEvent(msg)
    bucket = detail.get("bucket")
    obj = detail.get("object")
    if not isinstance(bucket, Mapping) or not isinstance(obj, Mapping):
        msg = "S3 event detail has no bucket or object"
        raise InvalidEvent(msg)
    size = obj.get("size")
    return S3ObjectEvent(
        detail_type=detail_type,
        event_id=str(event.get("id", "")),
        time=str(event.get("time", "")),
        bucket=_text(bucket, "name", "detail.bucket."),
        key=_text(obj, "key", "detail.object."),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        etag=_optional_text(obj, "etag", "eTag"),
        version_id=_optional_text(obj, "version-id", "versionId"),
        sequencer=_optional_text(obj, "sequencer"),
        reason=_optional_text(detail, "reason"),
        backfill=backfill,
    )


def _backfill_mode(detail: Mapping[str, Any]) -> BackfillMode:
    mode = detail.get("mode")
    for known in BACKFILL_MODES:
        if mode == known:
            return known
    msg = f"backfill event detail.mode is {mode!r}, expected one of {', '.join(BACKFILL_MODES)}"
    raise InvalidEvent(msg)


def key_candidates(key: str) -> list[str]:
    """The keys an event's key may stand for, most literal first.

    AWS does not document whether EventBridge URL-encodes object keys (S3's own
    notifications do, with `+` for space). Decoding blindly breaks keys that contain
    a literal `+` or `%`, so the caller tries each spelling against the bucket.
    """
    candidates = [key]
    for decoded in (unquote_plus(key), unquote(key)):
        if decoded not in candidates:
            candidates.append(decoded)
    return candidates
