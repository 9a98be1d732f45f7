"""Store: confirm every rendition is in place, then write the manifest last.

The manifest is the completion marker: a consumer that sees it can rely on every
rendition it lists being readable with the recorded size.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from imgpipe import __version__
from imgpipe.claims import DONE, ClaimTable, SourceIdentity
from imgpipe.config import OutputLocation
from imgpipe.errors import RenditionMissing
from imgpipe.keys import manifest_key
from imgpipe.messages import Outcome, RenditionRecord, SourceRef, facts_to_dict
from imgpipe.specs import ImageFacts
from imgpipe.storage import ObjectStore

MANIFEST_SCHEMA = "imgpipe.manifest/1"


def build_manifest(
    source: SourceRef,
    image: ImageFacts,
    renditions: tuple[RenditionRecord, ...],
    *,
    execution: str | None,
    created_at: datetime,
) -> dict[str, object]:
    return {
        "schema": MANIFEST_SCHEMA,
        "source": source.to_dict(),
        "image": facts_to_dict(image),
        "renditions": [r.to_dict() for r in renditions],
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
    *,
    execution: str | None = None,
    now: datetime | None = None,
    claims: ClaimTable | None = None,
) -> Outcome:
    ident = SourceIdentity(
        source.bucket, source.key, source.sequencer, source.version_id, source.etag
    )
    if claims is not None and not claims.holds(ident, execution or ""):
        return Outcome(
            status="skipped",
            source=source,
            reason={"code": "Superseded", "message": "a newer upload of this key took over"},
        )
    for rendition in renditions:
        head = store.head(output.bucket, rendition.key)
        if head is None or head.size != rendition.bytes:
            found = "missing" if head is None else f"{head.size} bytes"
            msg = f"rendition {rendition.key} is {found}; expected {rendition.bytes} bytes"
            raise RenditionMissing(msg)
    key = manifest_key(output.prefix, source.key)
    document = build_manifest(
        source, image, renditions, execution=execution, created_at=now or datetime.now(UTC)
    )
    store.write(
        output.bucket,
        key,
        json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8"),
        content_type="application/json",
        # Short cache: the manifest is rewritten when the source is uploaded again.
        cache_control="no-cache",
    )
    if claims is not None:
        claims.finish(ident, execution or "", DONE)
    return Outcome(
        status="processed",
        source=source,
        renditions=renditions,
        manifest={"bucket": output.bucket, "key": key},
        image=image,
    )
