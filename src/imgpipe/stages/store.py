"""Store: confirm every rendition is in place, then write the manifest last.

The manifest is the completion marker: a consumer that sees it can rely on every
rendition it lists being readable with the recorded size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from imgpipe import __version__
from imgpipe.claims import DONE, ClaimTable
from imgpipe.config import OutputLocation
from imgpipe.errors import RenditionMissing
from imgpipe.keys import manifest_key, output_folder
from imgpipe.messages import Outcome, RenditionRecord, SourceRef, facts_to_dict
from imgpipe.specs import ImageFacts
from imgpipe.stages.folder import is_current
from imgpipe.storage import ObjectStore

MANIFEST_SCHEMA = "imgpipe.manifest/1"


def build_manifest(
    source: SourceRef,
    image: ImageFacts,
    renditions: tuple[RenditionRecord, ...],
    *,
    execution: str | None,
    created_at: datetime,
    settings: Mapping[str, str] | None = None,
    placeholder: Mapping[str, str] | None = None,
) -> dict[str, object]:
    return {
        "schema": MANIFEST_SCHEMA,
        "source": source.to_dict(),
        "image": facts_to_dict(image),
        "renditions": [r.to_dict() for r in renditions],
        # What a page paints while the renditions load (imgpipe.placeholder).
        "placeholder": dict(placeholder) if placeholder else None,
        # What the renditions were made with: a later rendition set has another fingerprint.
        "settings": dict(settings) if settings else None,
        "execution": execution,
        "created_at": created_at.isoformat(timespec="seconds"),
        "generator": f"imgpipe/{__version__}",
    }


def store_manifest(
    store: ObjectStore,
    output: OutputLocation,
    source: SourceRef,
    image: ImageFacts,
    renditions: tuple[RenditionRecord, ...],
    claims: ClaimTable,
    *,
    execution: str,
    lease_s: float,
    now: datetime | None = None,
    settings: Mapping[str, str] | None = None,
    placeholder: Mapping[str, str] | None = None,
) -> Outcome:
    """Commit the rendition set: inside the key's lock, while the source is still the
    current object and this execution still holds its claim, check every rendition,
    write the manifest, then remove anything in the folder the manifest does not list."""
    ident = source.identity()
    key = manifest_key(output.prefix, source.key)
    with claims.locked(source.bucket, source.key, lease_s=lease_s):
        current, head = is_current(store, source)
        if head is None:
            return Outcome.skipped(
                source, "ObjectGone", "the object was deleted before its manifest"
            )
        if not current or not claims.holds(ident, execution):
            return Outcome.skipped(source, "Superseded", "a newer upload of this key took over")
        for rendition in renditions:
            found = store.head(output.bucket, rendition.key)
            if found is None or found.size != rendition.bytes:
                state = "missing" if found is None else f"{found.size} bytes"
                msg = f"rendition {rendition.key} is {state}; expected {rendition.bytes} bytes"
                raise RenditionMissing(msg)
        document = build_manifest(
            source,
            image,
            renditions,
            execution=execution,
            created_at=now or datetime.now(UTC),
            settings=settings,
            placeholder=placeholder,
        )
        store.write(
            output.bucket,
            key,
            json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8"),
            content_type="application/json",
            # Short cache: the manifest is rewritten when the source is uploaded again.
            cache_control="no-cache",
        )
        # Files of an earlier rendition set: no manifest lists them any more.
        keep = {key} | {r.key for r in renditions}
        folder = store.list_keys(
            output.bucket, output_folder(output.prefix, source.key), direct=True
        )
        extra = [k for k in folder if k not in keep]
        if extra:
            store.delete_keys(output.bucket, extra)
        claims.finish(ident, execution, DONE)
    return Outcome(
        status="processed",
        source=source,
        renditions=renditions,
        manifest={"bucket": output.bucket, "key": key},
        image=image,
        placeholder=dict(placeholder) if placeholder else None,
    )
