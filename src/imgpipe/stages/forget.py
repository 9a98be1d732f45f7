"""Forget: an object was deleted, so its outputs go too -- or, when the deletion left
an older version current, the state machine renders that version instead."""

from __future__ import annotations

from imgpipe.claims import REJECTED, ClaimTable
from imgpipe.config import FolderConfig
from imgpipe.events import S3ObjectEvent, key_candidates
from imgpipe.messages import Outcome, SourceRef
from imgpipe.stages.folder import clear_folder, describes, read_manifest
from imgpipe.storage import ObjectStore

# Forget's outcome when the key's current object has no outputs of its own: not an
# execution output, the state machine goes on to Validate with the same event.
RERENDER = "rerender"


def forget_upload(
    store: ObjectStore,
    event: S3ObjectEvent,
    config: FolderConfig,
    claims: ClaimTable,
    execution: str,
    *,
    lease_s: float,
) -> Outcome:
    """Make each folder the event could mean follow its key's current state."""
    named = SourceRef.named_by(event)
    if event.bucket != config.input_bucket:
        return Outcome.skipped(
            named, "ForeignBucket", f"the pipeline owns uploads to {config.input_bucket} only"
        )
    # The key as the event spells it may be URL-encoded; each spelling is reconciled
    # (one that still exists keeps its outputs, so trying all of them is safe).
    outcomes = [
        _reconcile(store, event, key, config, claims, execution, lease_s)
        for key in key_candidates(event.key)
    ]
    for status in (RERENDER, "deleted"):
        chosen = [o for o in outcomes if o.status == status]
        if chosen:
            removed = tuple(k for o in outcomes for k in o.removed)
            return Outcome(status=status, source=chosen[0].source, removed=removed)
    kept = [o for o in outcomes if o.reason and o.reason["code"] == "StillExists"]
    return (kept or outcomes)[0]


def _reconcile(
    store: ObjectStore,
    event: S3ObjectEvent,
    key: str,
    config: FolderConfig,
    claims: ClaimTable,
    execution: str,
    lease_s: float,
) -> Outcome:
    source = SourceRef.named_by(event, key)
    with claims.locked(event.bucket, key, lease_s=lease_s):
        head = store.head(event.bucket, key)
        if head is None:
            # No current version: nothing may be left, and a render still in
            # flight loses its claim (it would find the object gone anyway).
            removed = clear_folder(store, config.output, key)
            claims.forget(event.bucket, key, execution, event.sequencer)
            if not removed:
                return Outcome.skipped(source, "NothingToDelete", "no outputs exist for this key")
            return Outcome(status="deleted", source=source, removed=removed)
        current = SourceRef.found(event.bucket, head, event.sequencer)
        manifest = read_manifest(store, config.output, key)
        if manifest is not None and describes(manifest, head):
            # An old version was deleted; the current one's outputs stay.
            return Outcome.skipped(current, "StillExists", "the current version is rendered")
        record = claims.record(event.bucket, key)
        if record is not None and record.object_id == current.identity().object_id:
            if record.live:
                return Outcome.skipped(
                    current,
                    "StillExists",
                    f"the current version is being rendered by {record.execution}",
                )
            if record.state == REJECTED:
                return Outcome.skipped(current, "StillExists", "the current version was rejected")
    # The deletion made an older version current (a permanent delete of the newest
    # version, or a removed delete marker), and nothing renders it: the state
    # machine does, from here.
    return Outcome(status=RERENDER, source=current)
