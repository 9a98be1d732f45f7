"""Contract 5 through the real ASL on the local cloud: the paths a race, a replay or a
forged event takes end in a named state, succeed, and leave the outputs right."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from helpers import jpeg
from imgpipe.local.cloud import LocalCloud

pytestmark = pytest.mark.xdist_group("consistency")


def outputs(cloud: LocalCloud, key: str) -> list[str]:
    listing = cloud.s3.list_objects_v2(Bucket=cloud.output_bucket, Prefix=f"{key}/")
    return sorted(item["Key"] for item in listing.get("Contents", []))


def deleted_event(
    bucket: str, key: str, *, version: str | None = None, sequencer: str = "FFFFFFFFFFFFFFFFFF"
) -> dict[str, Any]:
    """An S3 "Object Deleted" EventBridge event in AWS's documented shape."""
    obj: dict[str, Any] = {"key": key, "sequencer": sequencer}
    if version is not None:
        obj["version-id"] = version
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Deleted",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-12-03T10:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "203.0.113.15",
            "reason": "DeleteObject",
            "deletion-type": "Permanently Deleted" if version else "Delete Marker Created",
        },
    }


def test_events_for_another_bucket_change_nothing(cloud: LocalCloud) -> None:
    # Given a processed upload, and an object of the same key in a foreign bucket
    key = "foreign/photo.jpg"
    cloud.upload(key, jpeg(400, 300))
    before = outputs(cloud, key)
    cloud.s3.create_bucket(Bucket="not-the-input-bucket")
    cloud.s3.put_object(Bucket="not-the-input-bucket", Key=key, Body=jpeg(300, 400))
    created = cloud.object_created_event(key, bucket="not-the-input-bucket")
    # When both kinds of event are started by hand, one naming a bucket that does not exist
    records = [
        cloud.wait(cloud.start(created), key),
        cloud.wait(cloud.start(deleted_event("no-such-bucket-anywhere", key)), key),
    ]
    # Then both succeed as skipped ForeignBucket and nothing changed
    for record in records:
        assert record.status == "SUCCEEDED", record.cause
        assert record.output is not None
        assert (record.output["status"], record.output["reason"]["code"]) == (
            "skipped",
            "ForeignBucket",
        )
    assert outputs(cloud, key) == before


def test_a_replayed_upload_after_a_delete_and_a_forged_delete_change_nothing(
    cloud: LocalCloud,
) -> None:
    # Given one key processed then deleted, another processed and still there
    gone, kept = "replay/gone.jpg", "replay/kept.jpg"
    cloud.upload(gone, jpeg(400, 300))
    replay = cloud.object_created_event(gone)
    cloud.delete(gone)
    cloud.upload(kept, jpeg(400, 300))
    before = outputs(cloud, kept)
    # When the deleted key's Object Created is replayed, and a delete of the existing
    # key is forged
    replayed = cloud.wait(cloud.start(replay), gone)
    forged = cloud.wait(cloud.start(deleted_event(cloud.input_bucket, kept)), kept)
    # Then neither changes anything, and both end skipped with their reason
    assert replayed.output is not None
    assert (replayed.output["status"], replayed.output["reason"]["code"]) == (
        "skipped",
        "ObjectGone",
    )
    assert forged.output is not None
    assert (forged.output["status"], forged.output["reason"]["code"]) == ("skipped", "StillExists")
    assert outputs(cloud, gone) == []
    assert outputs(cloud, kept) == before
