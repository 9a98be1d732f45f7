"""At-least-once delivery through the real ASL: duplicates do the work once, older events
never render over newer uploads, re-uploads re-render, deletions remove what was made."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from PIL import Image

from helpers import jpeg
from imgpipe.local.cloud import LocalCloud

pytestmark = pytest.mark.xdist_group("delivery")


def outputs(cloud: LocalCloud, folder: str) -> list[str]:
    listing = cloud.s3.list_objects_v2(Bucket=cloud.output_bucket, Prefix=folder)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def resize_calls(cloud: LocalCloud) -> int:
    return sum(1 for i in cloud.functions.invocations if i.function == "ResizeFunction")


def manifest(cloud: LocalCloud, key: str) -> dict[str, Any]:
    body = cloud.s3.get_object(Bucket=cloud.output_bucket, Key=f"{key}/manifest.json")["Body"]
    document: dict[str, Any] = json.loads(body.read())
    return document


def test_the_same_event_delivered_twice_does_the_work_once(cloud: LocalCloud) -> None:
    # Given one upload and its event
    key = "dup/photo.jpg"
    with cloud.bridge.paused():
        cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=jpeg(400, 300))
    event = cloud.object_created_event(key)
    before = resize_calls(cloud)
    # When EventBridge delivers it twice (two executions, same event)
    first = cloud.wait(cloud.start(event), key)
    second = cloud.wait(cloud.start(event), key)
    # Then the first renders and the second is skipped as a duplicate
    assert first.output is not None
    assert first.output["status"] == "processed"
    assert second.output is not None
    assert second.output["status"] == "skipped"
    assert second.output["reason"]["code"] == "Duplicate"
    assert first.arn in second.output["reason"]["message"]
    assert resize_calls(cloud) - before == 1


def test_an_older_event_arriving_late_never_overwrites_a_newer_upload(cloud: LocalCloud) -> None:
    # Given two uploads of one key whose events arrive newest first
    key = "order/photo.jpg"
    with cloud.bridge.paused():
        cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=jpeg(400, 300))
        older = cloud.object_created_event(key)
        cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=jpeg(300, 400))
        newer = cloud.object_created_event(key)
    assert newer["detail"]["object"]["sequencer"] > older["detail"]["object"]["sequencer"]
    processed = cloud.wait(cloud.start(newer), key)
    # When the older event is processed afterwards
    late = cloud.wait(cloud.start(older), key)
    # Then it is skipped and the renditions still show the newer (portrait) upload
    assert processed.output is not None
    assert processed.output["status"] == "processed"
    assert late.output is not None
    assert late.output["status"] == "skipped"
    assert late.output["reason"]["code"] == "Superseded"
    assert (manifest(cloud, key)["image"]["width"], manifest(cloud, key)["image"]["height"]) == (
        300,
        400,
    )


def test_overwriting_a_key_renders_it_again(cloud: LocalCloud) -> None:
    # Given a processed upload
    key = "again/photo.jpg"
    first = cloud.upload(key, jpeg(640, 480, (200, 0, 0)))
    # When the same key is uploaded again with a different picture
    second = cloud.upload(key, jpeg(480, 640, (0, 0, 200)))
    # Then the renditions and the manifest describe the new upload
    assert first.output is not None
    assert second.output is not None
    assert second.output["status"] == "processed"
    assert manifest(cloud, key)["source"]["version_id"] == second.output["source"]["version_id"]
    body = cloud.s3.get_object(Bucket=cloud.output_bucket, Key=f"{key}/thumb.jpg")["Body"].read()
    thumb = Image.open(io.BytesIO(body)).convert("RGB")
    assert thumb.size == (240, 320)
    red, _, blue = thumb.getpixel((120, 160))  # type: ignore[misc]
    assert blue > 150
    assert red < 60


def test_deleting_an_upload_removes_its_renditions_and_manifest(cloud: LocalCloud) -> None:
    # Given a processed upload, and another key that shares its name's start
    kept = cloud.upload("gone-not/photo.jpg", jpeg())
    done = cloud.upload("gone/photo.jpg", jpeg())
    assert done.output is not None
    assert len(outputs(cloud, "gone/photo.jpg/")) == 7
    # When it is deleted from the input bucket
    record = cloud.delete("gone/photo.jpg")
    # Then the Forget path removes exactly its folder, manifest included
    assert record.status == "SUCCEEDED", record.cause
    assert record.states_entered() == ["WhatHappened", "Forget", "IsForgotten", "Forgotten"]
    assert record.output is not None
    assert record.output["status"] == "deleted"
    assert len(record.output["removed"]) == 7
    assert record.output["removed"][0].endswith("/manifest.json")
    assert outputs(cloud, "gone/photo.jpg/") == []
    assert kept.output is not None
    assert len(outputs(cloud, "gone-not/photo.jpg/")) == 7


def test_deleting_an_old_version_keeps_the_current_renditions(cloud: LocalCloud) -> None:
    # Given a key uploaded twice (two versions)
    key = "versions/photo.jpg"
    first = cloud.upload(key, jpeg())
    cloud.upload(key, jpeg(100, 100))
    assert first.output is not None
    old_version = first.output["source"]["version_id"]
    seen = len(cloud.bridge.deliveries)
    # When the old version is deleted permanently (the current one stays)
    cloud.s3.delete_object(Bucket=cloud.input_bucket, Key=key, VersionId=old_version)
    # Then S3's "Object Deleted" (Permanently Deleted) reaches the pipeline and is
    # skipped; the current version's renditions remain
    delivery = cloud.bridge.wait_for(
        cloud.input_bucket, key, old_version, after=seen, timeout_s=60, detail_type="Object Deleted"
    )
    assert delivery.event["detail"]["deletion-type"] == "Permanently Deleted"
    assert delivery.execution_arn is not None
    record = cloud.wait(delivery.execution_arn, key)
    assert record.output is not None
    assert record.output["status"] == "skipped"
    assert record.output["reason"]["code"] == "StillExists"
    assert len(outputs(cloud, f"{key}/")) == 7


def test_deleting_the_current_version_renders_the_one_that_is_current_again(
    cloud: LocalCloud,
) -> None:
    # Given a key uploaded twice (landscape, then portrait)
    key = "versions/restored.jpg"
    first = cloud.upload(key, jpeg(400, 300))
    second = cloud.upload(key, jpeg(300, 400))
    assert first.output is not None
    assert second.output is not None
    seen = len(cloud.bridge.deliveries)
    # When the current version is deleted by its id, as S3's console does
    current = second.output["source"]["version_id"]
    cloud.s3.delete_object(Bucket=cloud.input_bucket, Key=key, VersionId=current)
    # Then the deletion's own execution renders the landscape version again
    delivery = cloud.bridge.wait_for(
        cloud.input_bucket, key, current, after=seen, timeout_s=60, detail_type="Object Deleted"
    )
    assert delivery.execution_arn is not None
    record = cloud.wait(delivery.execution_arn, key)
    assert record.status == "SUCCEEDED", record.cause
    assert record.states_entered()[:4] == ["WhatHappened", "Forget", "IsForgotten", "Validate"]
    assert record.states_entered()[-1] == "Processed"
    assert record.output is not None
    assert record.output["status"] == "processed"
    assert record.output["source"]["version_id"] == first.output["source"]["version_id"]
    assert len(outputs(cloud, f"{key}/")) == 7
    assert manifest(cloud, key)["source"]["version_id"] == first.output["source"]["version_id"]
    assert (manifest(cloud, key)["image"]["width"], manifest(cloud, key)["image"]["height"]) == (
        400,
        300,
    )
