"""Forget: an upload was deleted, so its renditions and manifest go too."""

from __future__ import annotations

from imgpipe.claims import DELETED, ClaimTable, SourceIdentity
from imgpipe.config import OutputLocation
from imgpipe.events import S3ObjectEvent, key_candidates
from imgpipe.keys import output_folder
from imgpipe.messages import Outcome, SourceRef
from imgpipe.storage import ObjectStore


def forget_upload(
    store: ObjectStore,
    event: S3ObjectEvent,
    output: OutputLocation,
    claims: ClaimTable,
    execution: str,
) -> Outcome:
    source = SourceRef(
        bucket=event.bucket,
        key=event.key,
        size=0,
        etag=event.etag,
        version_id=event.version_id,
        sequencer=event.sequencer,
    )
    # The key as the event spells it may be URL-encoded; the spelling whose output
    # folder exists is the one that was rendered.
    found = [
        (key, store.list_keys(output.bucket, output_folder(output.prefix, key)))
        for key in key_candidates(event.key)
    ]
    key, keys = next(((k, ks) for k, ks in found if ks), (event.key, []))
    source = SourceRef(source.bucket, key, 0, source.etag, source.version_id, source.sequencer)
    # A versioned bucket reports deleting an old version too; what is current stays.
    if store.head(event.bucket, key) is not None:
        return Outcome(
            status="skipped",
            source=source,
            reason={"code": "StillExists", "message": "a current version of the object exists"},
        )
    ident = SourceIdentity(event.bucket, key, event.sequencer, event.version_id, event.etag)
    claim = claims.claim(ident, execution)
    if claim.outcome != "claimed":
        code = "Duplicate" if claim.outcome == "duplicate" else "Superseded"
        return Outcome(
            status="skipped",
            source=source,
            reason={"code": code, "message": f"the key is handled by {claim.holder}"},
        )
    if not keys:
        claims.finish(ident, execution, DELETED)
        return Outcome(
            status="skipped",
            source=source,
            reason={"code": "NothingToDelete", "message": "no renditions exist for this key"},
        )
    # The manifest goes first: without it the folder no longer claims to be complete.
    manifest_first = sorted(keys, key=lambda k: not k.endswith("/manifest.json"))
    store.delete_keys(output.bucket, manifest_first[:1])
    store.delete_keys(output.bucket, manifest_first[1:])
    claims.finish(ident, execution, DELETED)
    return Outcome(status="deleted", source=source, removed=tuple(manifest_first))
