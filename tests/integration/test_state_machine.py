"""The deployed ASL file, executed by moto's Step Functions interpreter, end to end.

`LocalCloud.running()` deploys template.yaml into moto: the buckets, the functions with
their template handler and environment, and statemachine/pipeline.asl.json with its
DefinitionSubstitutions. Uploads go through the template's own EventBridge pattern.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import thumbhash
from PIL import Image, ImageDraw

from helpers import s3_slows_down
from imgpipe.config import resize_config
from imgpipe.local.cloud import LocalCloud

pytestmark = pytest.mark.xdist_group("state-machine")


class SleepRecorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(scope="module")
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture(scope="module")
def cloud(sleeps: SleepRecorder) -> Iterator[LocalCloud]:
    with LocalCloud.running(retry_sleep=sleeps) as deployed:
        yield deployed


def marked_photo(width: int, height: int, orientation: int = 1) -> bytes:
    """A JPEG whose top-left quarter is red, stored so that `orientation` displays it upright."""
    upright = Image.new("RGB", (width, height), (30, 60, 200))
    ImageDraw.Draw(upright).rectangle((0, 0, width // 2 - 1, height // 2 - 1), fill=(230, 20, 20))
    stored = upright
    if orientation == 6:
        stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS latitude that must never reach an output
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def output_objects(cloud: LocalCloud, prefix: str) -> dict[str, dict[str, Any]]:
    listing = cloud.s3.list_objects_v2(Bucket=cloud.output_bucket, Prefix=prefix)
    found = {}
    for item in listing.get("Contents", []):
        obj = cloud.s3.get_object(Bucket=cloud.output_bucket, Key=item["Key"])
        found[item["Key"]] = {**obj, "data": obj["Body"].read()}
    return found


def test_photo_is_processed_into_every_rendition_and_a_manifest(cloud: LocalCloud) -> None:
    # Given a 3000x2000 photo stored sideways with EXIF orientation 6 and GPS data
    key = "happy/holiday photo.jpg"
    # When it is uploaded
    record = cloud.upload(key, marked_photo(3000, 2000, orientation=6))
    # Then the execution succeeds through Validate, Resize and Store
    assert record.status == "SUCCEEDED", record.cause
    # Five states: a Standard workflow bills every transition (docs/performance.md)
    assert record.states_entered() == ["WhatHappened", "Validate", "Resize", "Store", "Processed"]
    output = record.output
    assert output is not None
    assert output["status"] == "processed"
    assert output["source"]["key"] == key
    assert output["manifest"] == {
        "bucket": cloud.output_bucket,
        "key": "happy/holiday photo.jpg/manifest.json",
    }
    # And every rendition is upright (displayed 3000x2000) at the right size, type, headers
    expected = {"thumb": (320, 213), "medium": (1024, 683), "large": (2048, 1365)}
    objects = output_objects(cloud, "happy/holiday photo.jpg/")
    assert len(output["renditions"]) == 6
    for rendition in output["renditions"]:
        stored = objects[rendition["key"]]
        assert stored["ContentType"] == rendition["content_type"]
        assert stored["CacheControl"].startswith("public, max-age=")
        image = Image.open(io.BytesIO(stored["data"]))
        assert image.format == rendition["format"]
        assert (
            image.size == expected[rendition["name"]] == (rendition["width"], rendition["height"])
        )
        assert len(stored["data"]) == rendition["bytes"]
        assert not image.getexif(), "EXIF/GPS must not reach renditions"
        rgb = image.convert("RGB")
        top_left = pixel(rgb, (image.width // 4, image.height // 4))
        bottom_right = pixel(rgb, (image.width * 3 // 4, image.height * 3 // 4))
        assert top_left[0] > 180, top_left
        assert top_left[2] < 90, top_left
        assert bottom_right[2] > 150, bottom_right
        assert bottom_right[0] < 90, bottom_right
    # And the manifest records source, facts and renditions
    manifest = json.loads(objects["happy/holiday photo.jpg/manifest.json"]["data"])
    assert manifest["source"]["key"] == key
    assert manifest["source"]["version_id"]
    assert manifest["source"]["etag"]
    assert manifest["source"]["sequencer"]
    # the rendition settings it was made with: the template's defaults
    env = {"OUTPUT_BUCKET": "out-bucket", "STATE_TABLE": "table", "INPUT_BUCKET": "in-bucket"}
    defaults = resize_config(env)
    assert manifest["settings"] == {"fingerprint": defaults.render.fingerprint}
    assert (manifest["image"]["width"], manifest["image"]["height"]) == (2000, 3000)
    assert manifest["image"]["orientation"] == 6
    assert manifest["renditions"] == output["renditions"]
    assert manifest["execution"] == record.arn
    # and a placeholder of the picture as shown: landscape, opaque
    placeholder = manifest["placeholder"]
    assert re.fullmatch(r"#[0-9a-f]{6}", placeholder["color"])
    digest = list(base64.b64decode(placeholder["thumbhash"], validate=True))
    aspect = thumbhash.thumb_hash_to_approximate_aspect_ratio(digest)
    assert aspect == pytest.approx(3 / 2, abs=0.15)
    assert thumbhash.thumb_hash_to_average_rgba(digest)[3] == 1.0


def test_transparent_png_keeps_alpha_in_webp_and_flattens_jpeg(cloud: LocalCloud) -> None:
    # Given a PNG that is transparent except for an opaque green square
    image = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((100, 100, 299, 299), fill=(0, 200, 0, 255))
    data = io.BytesIO()
    image.save(data, "PNG")
    # When it is uploaded
    record = cloud.upload("alpha/badge.png", data.getvalue())
    # Then WebP keeps the transparency and JPEG has the white background
    assert record.output is not None
    assert record.output["status"] == "processed"
    by_file = {r["key"].rsplit("/", 1)[1]: r for r in record.output["renditions"]}
    webp = Image.open(
        io.BytesIO(
            output_objects(cloud, by_file["thumb.webp"]["key"])[by_file["thumb.webp"]["key"]][
                "data"
            ]
        )
    )
    jpeg = Image.open(
        io.BytesIO(
            output_objects(cloud, by_file["thumb.jpg"]["key"])[by_file["thumb.jpg"]["key"]]["data"]
        )
    )
    assert webp.mode == "RGBA"
    assert webp.size == (320, 320)
    assert pixel(webp, (5, 5))[3] == 0
    assert pixel(webp, (160, 160))[3] == 255
    assert jpeg.mode == "RGB"
    assert all(c > 245 for c in pixel(jpeg, (5, 5)))
    assert pixel(jpeg, (160, 160))[1] > 180


@pytest.mark.parametrize(
    ("key", "body", "code"),
    [
        ("bad/page.jpg", b"<!DOCTYPE html><html><body>hi</body></html>", "UnsupportedFormat"),
        ("bad/empty.png", b"", "EmptyObject"),
    ],
)
def test_bad_upload_is_rejected_and_original_kept(
    cloud: LocalCloud, key: str, body: bytes, code: str
) -> None:
    # Given a file that is not an image, When it is uploaded
    record = cloud.upload(key, body)
    # Then the execution succeeds with a rejection, nothing is written, the original stays
    assert record.status == "SUCCEEDED"
    assert record.output is not None
    assert record.output["status"] == "rejected"
    assert record.output["reason"]["code"] == code
    assert record.output["reason"]["message"]
    assert record.output["renditions"] == []
    assert record.output["manifest"] is None
    assert "Rejected" in record.states_entered()
    assert output_objects(cloud, key + "/") == {}
    kept = cloud.s3.get_object(Bucket=cloud.input_bucket, Key=key)["Body"].read()
    assert kept == body


def test_truncated_jpeg_is_rejected_by_the_decoder(cloud: LocalCloud) -> None:
    # Given a JPEG whose header is fine but whose data stops a third of the way in
    full = marked_photo(1200, 800)
    # When it is uploaded
    record = cloud.upload("bad/truncated.jpg", full[: len(full) // 3])
    # Then validate passes it on, resize rejects it, and no partial output exists
    assert record.output is not None
    assert record.output["status"] == "rejected", record.output
    assert record.output["reason"]["code"] == "CorruptImage"
    assert "Resize" in record.states_entered()
    assert output_objects(cloud, "bad/truncated.jpg/") == {}


def test_url_encoded_key_in_event_resolves_to_the_object(cloud: LocalCloud) -> None:
    # Given a key with a space and a literal plus, announced URL-encoded (`+` for space)
    key = "enc/summer 2024+best.jpg"
    record = cloud.upload(key, marked_photo(640, 480), url_encode_key=True)
    # Then the object is found under its real key and its renditions use that key
    assert record.output is not None
    assert record.output["status"] == "processed"
    assert record.output["source"]["key"] == key
    assert record.output["manifest"]["key"] == "enc/summer 2024+best.jpg/manifest.json"


def test_event_for_a_deleted_object_is_skipped(cloud: LocalCloud) -> None:
    # Given an upload whose object is deleted before its execution starts
    key = "gone/photo.jpg"
    with cloud.bridge.paused():
        cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=marked_photo(64, 64))
    event = cloud.object_created_event(key)
    versions = cloud.s3.list_object_versions(Bucket=cloud.input_bucket, Prefix=key)["Versions"]
    for version in versions:
        cloud.s3.delete_object(Bucket=cloud.input_bucket, Key=key, VersionId=version["VersionId"])
    # When its event is processed
    record = cloud.wait(cloud.start(event), key)
    # Then the execution succeeds as skipped with a reason
    assert record.output is not None
    assert record.output["status"] == "skipped"
    assert record.output["reason"]["code"] == "ObjectGone"


def test_older_event_does_not_render_over_a_newer_upload(cloud: LocalCloud) -> None:
    # Given two uploads of one key, and the first upload's event arriving last
    key = "race/photo.jpg"
    with cloud.bridge.paused():
        cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=marked_photo(100, 100))
        old_event = cloud.object_created_event(key)
        cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=marked_photo(200, 100))
    # When the old event is processed
    record = cloud.wait(cloud.start(old_event), key)
    # Then it is skipped as superseded
    assert record.output is not None
    assert record.output["status"] == "skipped"
    assert record.output["reason"]["code"] == "Superseded"


def test_transient_s3_failure_is_retried_with_backoff_then_fails_the_execution(
    cloud: LocalCloud, sleeps: SleepRecorder
) -> None:
    # Given the output bucket answering every PutObject with SlowDown
    sleeps.calls.clear()
    with s3_slows_down(cloud) as attempts:
        # When a photo is uploaded
        record = cloud.upload("faults/photo.jpg", marked_photo(300, 200))
    # Then Resize was tried 1 + 6 times with jittered exponential backoff
    assert record.status == "FAILED"
    assert record.error == "TransientError"
    assert "SlowDown" in (record.cause or "")
    assert record.states_entered()[-1] == "PipelineFailed"
    assert len(attempts) == 7
    assert len(sleeps.calls) == 6
    caps = [1, 2, 4, 8, 16, 32]
    assert all(0 <= wait <= cap for wait, cap in zip(sleeps.calls, caps, strict=True)), sleeps.calls
    # And nothing half-made is left in the output bucket
    assert output_objects(cloud, "faults/photo.jpg/") == {}


def test_states_pass_references_not_image_bytes(cloud: LocalCloud) -> None:
    record = cloud.upload("size/big.jpg", marked_photo(4000, 3000))
    assert record.output is not None
    assert record.output["status"] == "processed"
    largest = max(len(json.dumps(event, default=str)) for event in record.history)
    assert largest < 16 * 1024
