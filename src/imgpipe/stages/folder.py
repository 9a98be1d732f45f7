"""A source key's output folder, kept in step with the source's current state.

Every write to a folder happens inside the key's lock (`ClaimTable.locked`) and after
reading the source's current state from S3 there; docs/delivery.md argues why that
makes the folder follow the source whatever the order of events.
"""

from __future__ import annotations

import json
from typing import Any

from imgpipe.claims import REJECTED, ClaimTable
from imgpipe.config import OutputLocation
from imgpipe.keys import MANIFEST_NAME, MAX_KEY_BYTES, output_folder
from imgpipe.messages import SourceRef
from imgpipe.storage import ObjectHead, ObjectStore


def folder_of(output: OutputLocation, key: str) -> str:
    # Unchecked for length: a key too long to render still has a folder to clear.
    return output_folder(output.prefix, key)


def manifest_of(output: OutputLocation, key: str) -> str:
    return folder_of(output, key) + MANIFEST_NAME


def clear_folder(store: ObjectStore, output: OutputLocation, key: str) -> tuple[str, ...]:
    """Remove everything made from `key`: the manifest first, so a half-removed
    folder never claims to be complete. Returns the removed keys, manifest first."""
    folder = folder_of(output, key)
    if len(folder.encode("utf-8")) >= MAX_KEY_BYTES:
        # No object key can start with it: nothing was ever written there.
        return ()
    found = store.list_keys(output.bucket, folder, direct=True)
    manifest = manifest_of(output, key)
    first = [manifest] if manifest in found else []
    rest = [k for k in found if k != manifest]
    if first:
        store.delete_keys(output.bucket, first)
    if rest:
        store.delete_keys(output.bucket, rest)
    return tuple(first + rest)


def read_manifest(store: ObjectStore, output: OutputLocation, key: str) -> dict[str, Any] | None:
    """The folder's manifest, or None when there is none (or it is not one of ours)."""
    data = store.read(output.bucket, manifest_of(output, key))
    if data is None:
        return None
    try:
        document = json.loads(data)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def describes(manifest: dict[str, Any], head: ObjectHead) -> bool:
    """Whether the manifest was made from the object S3 reports as current."""
    source = manifest.get("source")
    if not isinstance(source, dict):
        return False
    made_from = SourceRef(
        bucket="",
        key=head.key,
        size=0,
        etag=source.get("etag"),
        version_id=source.get("version_id"),
    )
    return made_from.same_object(head.version_id, head.etag)


def listed(manifest: dict[str, Any]) -> dict[str, int]:
    """The manifest's renditions as key -> bytes."""
    result: dict[str, int] = {}
    for item in manifest.get("renditions") or []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            result[item["key"]] = int(item.get("bytes") or 0)
    return result


def is_current(store: ObjectStore, source: SourceRef) -> tuple[bool, ObjectHead | None]:
    """Whether `source` is the key's current object, and what is current."""
    head = store.head(source.bucket, source.key)
    return head is not None and source.same_object(head.version_id, head.etag), head


def clear_rejected(
    store: ObjectStore,
    claims: ClaimTable,
    output: OutputLocation,
    source: SourceRef,
    execution: str,
    *,
    lease_s: float,
) -> tuple[str, ...]:
    """A rejected upload that is still current leaves no outputs of older versions."""
    removed: tuple[str, ...] = ()
    with claims.locked(source.bucket, source.key, lease_s=lease_s):
        current, head = is_current(store, source)
        # When another object is current, the folder is its execution's to write.
        if current or head is None:
            removed = clear_folder(store, output, source.key)
    claims.finish(source.identity(), execution, REJECTED)
    return removed
