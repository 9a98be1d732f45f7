"""Resize: one download, one decode, every rendition, uploaded to the output bucket."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

from imgpipe.budget import check_budgets
from imgpipe.claims import ClaimTable
from imgpipe.config import ResizeConfig
from imgpipe.crop import parse_focus
from imgpipe.errors import ConfigError, ImageRejected, ObjectTooLarge
from imgpipe.imaging import render
from imgpipe.keys import rendition_key
from imgpipe.messages import RenditionRecord, SourceRef, facts_to_dict
from imgpipe.placeholder import placeholder
from imgpipe.specs import ImageFacts, RenderedImage
from imgpipe.stages.folder import (
    clear_rejected,
    describes,
    is_current,
    listed,
    manifest_of,
    read_manifest,
)
from imgpipe.storage import ObjectStore


@dataclass(frozen=True)
class ResizeResult:
    status: Literal["rendered", "skipped"]
    renditions: tuple[RenditionRecord, ...] = ()
    image: ImageFacts | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    reason: dict[str, str] | None = None
    # The rendition settings the files were made with (`RenderSettings.fingerprint`).
    fingerprint: str | None = None
    # ThumbHash and average colour for the manifest (`imgpipe.placeholder`).
    placeholder: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "renditions": [r.to_dict() for r in self.renditions],
            "image": facts_to_dict(self.image) if self.image is not None else None,
            "reason": self.reason,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "settings": {"fingerprint": self.fingerprint} if self.fingerprint else None,
            "placeholder": self.placeholder,
        }


def refuse_recursion(source: SourceRef, config: ResizeConfig) -> None:
    """Fail loudly if renditions could land where they would trigger the pipeline again.

    The template creates separate input and output buckets; this guards deployments
    that point both at one bucket: that is only safe when the output prefix lies
    outside the rule's input prefix (and the input prefix is not empty).
    """
    if source.bucket != config.output.bucket:
        return
    out, watched = config.output.prefix, config.input_prefix
    if not watched or not out or out.startswith(watched) or watched.startswith(out):
        msg = (
            f"OUTPUT_BUCKET is the input bucket {source.bucket!r} and OUTPUT_PREFIX "
            f"{out!r} overlaps the watched prefix {watched!r}: renditions would start "
            "new executions"
        )
        raise ConfigError(msg)


def render_upload(
    store: ObjectStore,
    source: SourceRef,
    image: ImageFacts | None,
    config: ResizeConfig,
    claims: ClaimTable,
    execution: str,
    *,
    lease_s: float,
    span: Callable[[str], AbstractContextManager[None]] = lambda name: nullcontext(),
) -> ResizeResult:
    """Download, render and upload; `span(name)` wraps download/decode/resize/encode/upload.

    `lease_s` is how long this invocation can still run (its Lambda deadline): the
    lease on the key's lock while the renditions are uploaded.
    """
    refuse_recursion(source, config)
    try:
        prepared = _render(store, source, image, config, span)
    except ImageRejected:
        clear_rejected(store, claims, config.output, source, execution, lease_s=lease_s)
        raise
    if isinstance(prepared, ResizeResult):
        return prepared
    facts, data_size, rendered = prepared
    with span("placeholder"):
        preview = placeholder(rendered, facts.has_alpha)
    ident = source.identity()
    # Cheap early exit outside the lock; the decisive checks are repeated inside it.
    if not claims.holds(ident, execution):
        return _superseded()
    records = tuple(
        RenditionRecord(
            name=item.spec.name,
            format=item.spec.format,
            key=rendition_key(config.output.prefix, source.key, item.spec.filename),
            width=item.width,
            height=item.height,
            bytes=len(item.data),
            content_type=item.spec.content_type,
            frames=item.frames,
            duration_ms=item.duration_ms,
            loop=item.loop,
            still_reason=item.still_reason,
            crop=dict(zip(("x", "y", "width", "height"), item.crop, strict=True))
            if item.crop is not None
            else None,
            focus=item.focus,
        )
        for item in rendered
    )
    with claims.locked(source.bucket, source.key, lease_s=lease_s):
        current, head = is_current(store, source)
        if head is None:
            return _gone()
        if not current:
            return _superseded()
        if not claims.holds(ident, execution):
            return _superseded()
        manifest = read_manifest(store, config.output, source.key)
        if manifest is not None and not (
            describes(manifest, head) and listed(manifest) == {r.key: r.bytes for r in records}
        ):
            # The manifest vouches for files we are about to overwrite: it goes first,
            # so a visible manifest never lists renditions of another version.
            store.delete_keys(config.output.bucket, [manifest_of(config.output, source.key)])
        # Every rendition is encoded before the first upload, so a decode or encode
        # failure leaves nothing behind; an upload failure is retried as a whole step
        # and the same keys are overwritten with the same bytes.
        with span("upload"):
            for item, record in zip(rendered, records, strict=True):
                store.write(
                    config.output.bucket,
                    record.key,
                    item.data,
                    content_type=item.spec.content_type,
                    cache_control=config.cache_control,
                )
    return ResizeResult(
        "rendered",
        renditions=records,
        image=facts,
        bytes_in=data_size,
        bytes_out=sum(r.bytes for r in records),
        fingerprint=config.render.fingerprint,
        placeholder=preview,
    )


def _render(
    store: ObjectStore,
    source: SourceRef,
    image: ImageFacts | None,
    config: ResizeConfig,
    span: Callable[[str], AbstractContextManager[None]],
) -> ResizeResult | tuple[ImageFacts, int, list[RenderedImage]]:
    if image is not None:
        # The same budgets as validate, on the facts validate read from the header:
        # Pillow's frame count would decode every frame of an animation to find out.
        check_budgets(image, config.limits)
    with span("download"):
        found = store.read_object(source.bucket, source.key, source.version_id, source.etag)
    if found is None:
        return _gone()
    data = found.data
    if len(data) > config.limits.max_bytes:
        msg = f"the object is {len(data)} bytes; the limit is {config.limits.max_bytes}"
        raise ObjectTooLarge(msg)
    facts, rendered = render(
        data,
        config.render,
        source_format=image.format if image is not None else None,
        span=span,
        # x-amz-meta-focus: a bad value is logged and the content decides instead.
        focus=parse_focus(found.metadata.get("focus")),
    )
    return facts, len(data), list(rendered)


def _gone() -> ResizeResult:
    return ResizeResult(
        "skipped",
        reason={
            "code": "ObjectGone",
            "message": "the object was deleted or replaced after validation",
        },
    )


def _superseded() -> ResizeResult:
    return ResizeResult(
        "skipped",
        reason={"code": "Superseded", "message": "a newer upload of this key took over"},
    )
