"""Resize: one download, one decode, every rendition, uploaded to the output bucket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgpipe.config import ResizeConfig
from imgpipe.errors import ObjectTooLarge
from imgpipe.imaging import render
from imgpipe.keys import rendition_key
from imgpipe.messages import RenditionRecord, SourceRef, facts_to_dict
from imgpipe.specs import ImageFacts
from imgpipe.storage import ObjectStore


@dataclass(frozen=True)
class ResizeResult:
    status: str  # rendered | skipped
    renditions: tuple[RenditionRecord, ...] = ()
    image: ImageFacts | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    reason: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "renditions": [r.to_dict() for r in self.renditions],
            "image": facts_to_dict(self.image) if self.image is not None else None,
            "reason": self.reason,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }


def render_upload(
    store: ObjectStore, source: SourceRef, image: ImageFacts | None, config: ResizeConfig
) -> ResizeResult:
    data = store.read(source.bucket, source.key, source.version_id, source.etag)
    if data is None:
        return ResizeResult(
            "skipped",
            reason={
                "code": "ObjectGone",
                "message": "the object was deleted or replaced after validation",
            },
        )
    if len(data) > config.limits.max_bytes:
        msg = f"the object is {len(data)} bytes; the limit is {config.limits.max_bytes}"
        raise ObjectTooLarge(msg)

    facts, rendered = render(
        data, config.render, source_format=image.format if image is not None else None
    )
    # Every rendition is encoded before the first upload, so a decode or encode
    # failure leaves nothing behind; an upload failure is retried as a whole step
    # and the same keys are overwritten with the same bytes.
    records = []
    for item in rendered:
        key = rendition_key(config.output.prefix, source.key, item.spec.filename)
        store.write(
            config.output.bucket,
            key,
            item.data,
            content_type=item.spec.content_type,
            cache_control=config.cache_control,
        )
        records.append(
            RenditionRecord(
                name=item.spec.name,
                format=item.spec.format,
                key=key,
                width=item.width,
                height=item.height,
                bytes=len(item.data),
                content_type=item.spec.content_type,
            )
        )
    return ResizeResult(
        "rendered",
        renditions=tuple(records),
        image=facts,
        bytes_in=len(data),
        bytes_out=sum(r.bytes for r in records),
    )
