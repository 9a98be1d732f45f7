"""HEIC uploads through the deployed pipeline (template.yaml + the real ASL on moto).

What a phone uploads must come out upright, in sRGB, without its GPS position, with a
manifest that says HEIF; what is hostile or broken must be rejected with its code and
leave nothing behind. Fixtures are encoded here with pillow-heif (dev-only); the
pipeline decodes with pi-heif, as the resize Lambda does.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator
from typing import Any

import pillow_heif
import pytest
from PIL import Image

from imgpipe.local.cloud import ExecutionRecord, LocalCloud

pytestmark = pytest.mark.xdist_group("heif-pipeline")

RENDITIONS = {"thumb": 320, "medium": 1024, "large": 2048}


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud.running() as running:
        yield running


def heic(image: Image.Image, **params: Any) -> bytes:
    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(out, quality=params.pop("quality", 90), **params)
    return out.getvalue()


def portrait_photo() -> Image.Image:
    """Stored landscape, 1600x1200: red band at the top edge, blue square bottom-left."""
    image = Image.new("RGB", (1600, 1200), (120, 140, 160))
    image.paste((220, 30, 30), (0, 0, 1600, 150))
    image.paste((30, 30, 220), (0, 900, 300, 1200))
    return image


def finished(cloud: LocalCloud, key: str, data: bytes) -> dict[str, Any]:
    record: ExecutionRecord = cloud.upload(key, data, content_type="image/heic")
    assert record.status == "SUCCEEDED", (record.error, record.cause)
    assert record.output is not None
    return record.output


def read(cloud: LocalCloud, key: str) -> bytes:
    return cloud.s3.get_object(Bucket=cloud.output_bucket, Key=key)["Body"].read()


def folder_keys(cloud: LocalCloud, source_key: str) -> list[str]:
    listing = cloud.s3.list_objects_v2(Bucket=cloud.output_bucket, Prefix=source_key)
    return [o["Key"] for o in listing.get("Contents", [])]


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def colour_near(got: Any, expected: tuple[int, int, int], tolerance: int) -> bool:
    return max(abs(g - e) for g, e in zip(got[:3], expected, strict=True)) <= tolerance


def test_given_rotated_p3_phone_photo_with_gps_when_uploaded_then_upright_srgb_and_private(
    cloud: LocalCloud,
) -> None:
    # Given a phone photo: HEIC, Display P3 (nclx), turned by irot, with GPS in its EXIF
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 1.5)})
    data = heic(
        portrait_photo(),
        exif=exif.tobytes(),
        color_primaries=12,
        transfer_characteristics=13,
        matrix_coefficients=6,
    )
    # When it is uploaded
    output = finished(cloud, "phone/IMG_0001.HEIC", data)
    # Then it is processed, and the manifest says what it was
    assert output["status"] == "processed", output.get("reason")
    manifest = json.loads(read(cloud, output["manifest"]["key"]))
    image = manifest["image"]
    assert (image["format"], image["width"], image["height"]) == ("HEIF", 1600, 1200)
    assert image["orientation"] == 6
    assert {r["name"] for r in manifest["renditions"]} == set(RENDITIONS)
    for rendition in manifest["renditions"]:
        body = read(cloud, rendition["key"])
        assert b"PhoneMaker" not in body
        picture = Image.open(io.BytesIO(body))
        picture.load()
        # upright: portrait, the red band now runs down the right edge
        long_edge = min(RENDITIONS[rendition["name"]], 1600)
        assert picture.size == (round(long_edge * 1200 / 1600), long_edge)
        assert (rendition["width"], rendition["height"]) == picture.size
        rgb = picture.convert("RGB")
        w, h = rgb.size
        assert pixel(rgb, (w - 2, h // 2))[0] > 200
        assert pixel(rgb, (w // 2, h // 2))[0] < 160
        # the blue square, bottom-left when stored, is top-left once turned
        assert pixel(rgb, (w // 20, h // 20))[2] > 200
        # sRGB: P3 (220, 30, 30) is outside sRGB; converted it is pure red, not the
        # duller value a viewer would show if the P3 numbers were read as sRGB
        assert colour_near(rgb.getpixel((w - 2, h // 2)), (240, 0, 10), 16), rgb.getpixel(
            (w - 2, h // 2)
        )
        assert not picture.getexif()
        assert "icc_profile" not in picture.info


def test_given_burst_container_when_uploaded_then_only_the_primary_is_rendered(
    cloud: LocalCloud,
) -> None:
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    burst = pillow_heif.from_pillow(Image.new("RGB", (640, 480), colours[0]))
    for colour in colours[1:]:
        burst.add_from_pillow(Image.new("RGB", (640, 480), colour))
    out = io.BytesIO()
    burst.save(out, quality=90, primary_index=2)
    output = finished(cloud, "phone/burst.heic", out.getvalue())
    assert output["status"] == "processed", output.get("reason")
    manifest = json.loads(read(cloud, output["manifest"]["key"]))
    assert (manifest["image"]["images"], manifest["image"]["frames"]) == (3, 1)
    thumb = next(r for r in manifest["renditions"] if r["name"] == "thumb")
    picture = Image.open(io.BytesIO(read(cloud, thumb["key"]))).convert("RGB")
    assert colour_near(picture.getpixel((160, 120)), colours[2], 12)


def header_bomb() -> bytes:
    """A real HEIC whose primary item's ispe claims 100,000 x 100,000."""
    data = bytearray(heic(Image.new("RGB", (64, 64), (10, 20, 30))))
    at = data.find(b"ispe")
    assert at > 0
    struct.pack_into(">II", data, at + 8, 100_000, 100_000)
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "make", "code"),
    [
        ("bomb.heic", header_bomb, "TooManyPixels"),
        (
            "truncated.heic",
            lambda: (lambda d: d[: len(d) * 2 // 3])(heic(portrait_photo())),
            "CorruptImage",
        ),
    ],
)
def test_given_hostile_heic_when_uploaded_then_rejected_with_its_code_and_nothing_written(
    cloud: LocalCloud, name: str, make: Any, code: str
) -> None:
    key = f"phone/{name}"
    data = make()
    output = finished(cloud, key, data)
    assert output["status"] == "rejected", output
    assert output["reason"]["code"] == code
    assert output["reason"]["message"]
    assert folder_keys(cloud, key) == []
    kept = cloud.s3.get_object(Bucket=cloud.input_bucket, Key=key)["Body"].read()
    assert kept == data
