"""The small JSON documents the states pass to each other.

Step Functions caps a payload at 256 KiB, so states carry S3 references and facts,
never image bytes. Each message has `to_dict`/`from_dict` so handlers parse their
input into a typed object at the edge and return plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from imgpipe.claims import SourceIdentity
from imgpipe.errors import InvalidEvent
from imgpipe.specs import ImageFacts

if TYPE_CHECKING:
    from imgpipe.events import S3ObjectEvent
    from imgpipe.storage import ObjectHead


def _require(payload: Mapping[str, Any], name: str) -> Any:
    if name not in payload:
        msg = f"state input has no {name!r}"
        raise InvalidEvent(msg)
    return payload[name]


@dataclass(frozen=True)
class SourceRef:
    """The exact object a rendition set is made from."""

    bucket: str
    key: str
    size: int
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def named_by(cls, event: S3ObjectEvent, key: str | None = None) -> SourceRef:
        """The object as the event names it (`key`: the spelling resolved for it)."""
        return cls(
            bucket=event.bucket,
            key=event.key if key is None else key,
            size=event.size or 0,
            etag=event.etag,
            version_id=event.version_id,
            sequencer=event.sequencer,
        )

    @classmethod
    def found(cls, bucket: str, head: ObjectHead, sequencer: str | None) -> SourceRef:
        """The object S3 reported, as the event with `sequencer` asked for it."""
        return cls(
            bucket=bucket,
            key=head.key,
            size=head.size,
            etag=head.etag,
            version_id=head.version_id,
            sequencer=sequencer,
        )

    def identity(self) -> SourceIdentity:
        """The claim identity of this object and the event that asked for it."""
        return SourceIdentity(self.bucket, self.key, self.sequencer, self.version_id, self.etag)

    def same_object(self, version_id: str | None, etag: str | None) -> bool:
        """Whether S3's object (by version id, or by ETag without versioning) is this one."""
        if self.version_id or version_id:
            return self.version_id == version_id
        return etag is not None and (self.etag or "").strip('"') == etag.strip('"')

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> SourceRef:
        return cls(
            bucket=str(_require(payload, "bucket")),
            key=str(_require(payload, "key")),
            size=int(_require(payload, "size")),
            etag=payload.get("etag"),
            version_id=payload.get("version_id"),
            sequencer=payload.get("sequencer"),
        )


def facts_to_dict(facts: ImageFacts) -> dict[str, Any]:
    return asdict(facts)


def facts_from_dict(payload: Mapping[str, Any]) -> ImageFacts:
    known = {f.name for f in fields(ImageFacts)}
    return ImageFacts(**{k: v for k, v in payload.items() if k in known})


@dataclass(frozen=True)
class RenditionRecord:
    """One rendition as the manifest and the execution output describe it."""

    name: str
    format: str
    key: str
    width: int
    height: int
    bytes: int
    content_type: str
    frames: int = 1
    # Animated renditions only: total display time and play count (0 = forever).
    duration_ms: int | None = None
    loop: int | None = None
    # A rendition of an animated source that is its first frame says why
    # (`OutputFormat`, `MaxAnimatedRenditionPixels`, or `SourceFormat` for an AVIF
    # sequence).
    still_reason: str | None = None
    # Cover renditions only: the window cut from the upright source
    # ({x, y, width, height} in its pixels) and what placed it (`metadata`: the
    # uploader's x-amz-meta-focus, `content`: the most detail).
    crop: dict[str, int] | None = None
    focus: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> RenditionRecord:
        # Fields with a default came later (the animation ones): a record written
        # without them is a still.
        return cls(
            **{
                f.name: _require(payload, f.name) if f.default is MISSING else payload[f.name]
                for f in fields(cls)
                if f.default is MISSING or f.name in payload
            }
        )


@dataclass(frozen=True)
class Outcome:
    """The execution output contract (docs/contracts.md)."""

    # processed | rejected | deleted | skipped; forget's `rerender` never ends an
    # execution: the state machine goes on to render the version that is current.
    status: str
    source: SourceRef
    renditions: tuple[RenditionRecord, ...] = ()
    manifest: dict[str, str] | None = None
    image: ImageFacts | None = None
    reason: dict[str, str] | None = None
    removed: tuple[str, ...] = ()
    # The manifest's {"thumbhash", "color"}, for the Image Processed event.
    placeholder: dict[str, str] | None = None

    @classmethod
    def skipped(cls, source: SourceRef, code: str, message: str) -> Outcome:
        return cls(status="skipped", source=source, reason={"code": code, "message": message})

    def to_dict(self) -> dict[str, Any]:
        # Every key is always present (null or empty when it does not apply): the
        # state machine's ResultSelector names them and JSONPath fails on a missing key.
        return {
            "status": self.status,
            "source": self.source.to_dict(),
            "renditions": [r.to_dict() for r in self.renditions],
            "manifest": self.manifest,
            "image": facts_to_dict(self.image) if self.image is not None else None,
            "reason": self.reason,
            "removed": list(self.removed),
            "placeholder": self.placeholder,
        }
