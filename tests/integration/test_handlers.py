"""Each handler in-process against moto S3, with its Powertools output inspected."""

from __future__ import annotations

import importlib.util
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from imgpipe.errors import ImageRejected, UnsupportedFormat
from imgpipe.local.runner import reset_powertools_logger

ROOT = Path(__file__).resolve().parents[2]
IN, OUT, TABLE = "uploads-in", "renditions-out", "imgpipe-state"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:imgpipe:test-1"


@dataclass
class FakeContext:
    function_name: str = "imgpipe-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:imgpipe-test"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("INPUT_BUCKET", IN)
    monkeypatch.setenv("OUTPUT_BUCKET", OUT)
    monkeypatch.setenv("RENDITIONS", "small:64,big:256")
    monkeypatch.setenv("STATE_TABLE", TABLE)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=IN)
        s3.create_bucket(Bucket=OUT)
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield s3


def load(name: str) -> ModuleType:
    """A cold start: the handler module imported afresh with the current environment."""
    reset_powertools_logger("imgpipe")
    spec = importlib.util.spec_from_file_location(
        f"handler_{name}", ROOT / "functions" / name / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def emf(output: str) -> list[dict[str, Any]]:
    blobs = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def logs(output: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and '"level"' in line
    ]


def event_for(s3: Any, key: str) -> dict[str, Any]:
    head = s3.head_object(Bucket=IN, Key=key)
    return {
        "event": {
            "version": "0",
            "id": "e-1",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2026-11-27T00:00:00Z",
            "region": "us-east-1",
            "resources": [f"arn:aws:s3:::{IN}"],
            "detail": {
                "version": "0",
                "bucket": {"name": IN},
                "object": {
                    "key": key,
                    "size": head["ContentLength"],
                    "etag": head["ETag"].strip('"'),
                    "sequencer": "0055AED6DCD90281E5",
                },
                "reason": "PutObject",
            },
        },
        "execution": EXECUTION,
        "state": "Validate",
    }


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 200, 30) if mode == "RGB" else (10, 200, 30, 128)).save(out, "PNG")
    return out.getvalue()


def test_validate_reports_header_facts_and_logs_with_correlation(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a PNG uploaded under a .jpg name
    aws.put_object(Bucket=IN, Key="a/odd.jpg", Body=png((300, 200)))
    # When validate runs
    result = load("validate").handler(event_for(aws, "a/odd.jpg"), FakeContext())
    # Then it reports what the bytes are, not what the name says
    assert result["status"] == "valid"
    assert result["image"]["format"] == "PNG"
    assert (result["image"]["width"], result["image"]["height"]) == (300, 200)
    assert result["source"]["key"] == "a/odd.jpg"
    lines = logs(capsys.readouterr().out)
    assert lines, "validate logged nothing"
    for line in lines:
        assert line["correlation_id"] == EXECUTION
        assert line["source_key"] == "a/odd.jpg"
        assert line["state"] == "Validate"


def test_validate_rejection_is_counted_by_reason_and_raised(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a ZIP archive named .png
    aws.put_object(Bucket=IN, Key="b/archive.png", Body=b"PK\x03\x04" + b"\0" * 100)
    # When validate runs, Then it raises the typed error the state machine catches
    with pytest.raises(UnsupportedFormat):
        load("validate").handler(event_for(aws, "b/archive.png"), FakeContext())
    # And a rejection metric with the reason was emitted
    rejected = [b for b in emf(capsys.readouterr().out) if "ImagesRejected" in b]
    assert len(rejected) == 1
    assert rejected[0]["reason"] == "UnsupportedFormat"
    assert rejected[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ImgpipeTest"


def test_resize_then_store_write_renditions_then_manifest(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a validated semi-transparent PNG
    aws.put_object(Bucket=IN, Key="c/logo.png", Body=png((512, 256), "RGBA"))
    verdict = load("validate").handler(event_for(aws, "c/logo.png"), FakeContext())
    # When resize and store run on validate's output
    resized = load("resize").handler(
        {
            "source": verdict["source"],
            "image": verdict["image"],
            "execution": EXECUTION,
            "state": "Resize",
        },
        FakeContext(),
    )
    stored = load("store").handler(
        {
            "source": verdict["source"],
            "image": resized["image"],
            "renditions": resized["renditions"],
            "execution": EXECUTION,
            "state": "Store",
        },
        FakeContext(),
    )
    # Then four renditions exist with the sizes reported, and the manifest lists them
    assert [(r["name"], r["format"], r["width"], r["height"]) for r in resized["renditions"]] == [
        ("small", "WEBP", 64, 32),
        ("small", "JPEG", 64, 32),
        ("big", "WEBP", 256, 128),
        ("big", "JPEG", 256, 128),
    ]
    for rendition in resized["renditions"]:
        body = aws.get_object(Bucket=OUT, Key=rendition["key"])["Body"].read()
        image = Image.open(io.BytesIO(body))
        assert image.size == (rendition["width"], rendition["height"])
        assert image.mode == ("RGBA" if rendition["format"] == "WEBP" else "RGB")
    manifest = json.loads(aws.get_object(Bucket=OUT, Key="c/logo.png/manifest.json")["Body"].read())
    assert manifest["renditions"] == resized["renditions"] == stored["renditions"]
    assert stored["status"] == "processed"
    # And resize reported bytes in and out as metrics
    blobs = emf(capsys.readouterr().out)
    names = {m["Name"] for b in blobs for d in b["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"SourceBytes", "OutputBytes", "RenditionsWritten", "ImagesProcessed"} <= names


def test_store_refuses_to_write_a_manifest_for_missing_renditions(aws: Any) -> None:
    from imgpipe.claims import ClaimTable, SourceIdentity
    from imgpipe.errors import RenditionMissing

    # Given the source is the key's current object and the execution holds its claim,
    # but its rendition is not there
    etag = aws.put_object(Bucket=IN, Key="d/x.png", Body=b"0123456789")["ETag"].strip('"')
    ClaimTable(boto3.client("dynamodb", region_name="us-east-1"), TABLE).claim(
        SourceIdentity(IN, "d/x.png", None, None, etag), EXECUTION
    )
    record = {
        "name": "small",
        "format": "WEBP",
        "key": "d/x.png/small.webp",
        "width": 1,
        "height": 1,
        "bytes": 10,
        "content_type": "image/webp",
    }
    payload = {
        "source": {"bucket": IN, "key": "d/x.png", "size": 10, "etag": etag},
        "image": {"format": "PNG", "width": 1, "height": 1},
        "renditions": [record],
        "execution": EXECUTION,
    }
    with pytest.raises(RenditionMissing):
        load("store").handler(payload, FakeContext())
    assert "Contents" not in aws.list_objects_v2(Bucket=OUT)


def animated_gif(frames: int, size: tuple[int, int] = (128, 64)) -> bytes:
    """A moving bar: every frame differs; durations 40, 50, 60 ms in turn."""
    images = []
    for i in range(frames):
        image = Image.new("RGB", size, (250, 250, 250))
        image.paste((230, 30, 30), (i * 4, 10, i * 4 + 20, 50))
        images.append(image)
    out = io.BytesIO()
    images[0].save(
        out,
        "GIF",
        save_all=True,
        append_images=images[1:],
        duration=[40 + 10 * (i % 3) for i in range(frames)],
        loop=0,
    )
    return out.getvalue()


def resize_and_store(aws: Any, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    verdict = load("validate").handler(event_for(aws, key), FakeContext())
    resized = load("resize").handler(
        {"source": verdict["source"], "image": verdict["image"], "execution": EXECUTION},
        FakeContext(),
    )
    load("store").handler(
        {
            "source": verdict["source"],
            "image": resized["image"],
            "renditions": resized["renditions"],
            "execution": EXECUTION,
        },
        FakeContext(),
    )
    manifest = json.loads(aws.get_object(Bucket=OUT, Key=f"{key}/manifest.json")["Body"].read())
    return resized, manifest


def test_animated_gif_renditions_record_frames_duration_and_loop(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a 24-frame GIF, and a cap that lets the 64-pixel rendition move but not the
    # 128-pixel one (24 x 128 x 64 = 196,608 animated pixels)
    monkeypatch.setenv("MAX_ANIMATED_RENDITION_PIXELS", "100000")
    aws.put_object(Bucket=IN, Key="e/bar.gif", Body=animated_gif(24))
    # When validate, resize and store run
    resized, manifest = resize_and_store(aws, "e/bar.gif")
    # Then the manifest and resize's output say which renditions move, how long and how
    # often, and why the others are the first frame
    records = {(r["name"], r["format"]): r for r in manifest["renditions"]}
    assert manifest["renditions"] == resized["renditions"]
    assert manifest["image"]["frames"] == 24
    small = records["small", "WEBP"]
    assert (small["frames"], small["duration_ms"], small["loop"]) == (24, 24 * 50, 0)
    assert small["still_reason"] is None
    assert (records["big", "WEBP"]["frames"], records["big", "WEBP"]["still_reason"]) == (
        1,
        "MaxAnimatedRenditionPixels",
    )
    for name in ("small", "big"):
        jpeg = records[name, "JPEG"]
        assert (jpeg["frames"], jpeg["duration_ms"], jpeg["still_reason"]) == (
            1,
            None,
            "OutputFormat",
        )
    # And the stored files are what the records say
    for record in manifest["renditions"]:
        body = aws.get_object(Bucket=OUT, Key=record["key"])["Body"].read()
        with Image.open(io.BytesIO(body)) as image:
            assert getattr(image, "n_frames", 1) == record["frames"]
            assert image.size == (record["width"], record["height"])


@pytest.mark.parametrize(
    ("variable", "value", "code"),
    [("MAX_FRAMES", "10", "TooManyFrames"), ("MAX_ANIMATION_PIXELS", "98303", "DecodeTooLarge")],
)
def test_resize_refuses_an_animation_over_its_budget_by_code(
    aws: Any, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, code: str
) -> None:
    # Given a 12-frame 128 x 64 GIF (98,304 animation pixels), validated with defaults
    aws.put_object(Bucket=IN, Key="f/long.gif", Body=animated_gif(12))
    verdict = load("validate").handler(event_for(aws, "f/long.gif"), FakeContext())
    assert verdict["image"]["frames"] == 12
    # When resize runs under a budget one short: on validate's facts, and on facts that
    # claim fewer frames than the file has (Pillow counts them again)
    monkeypatch.setenv(variable, value)
    resize = load("resize")
    for frames in (12, 2):
        image = {**verdict["image"], "frames": frames}
        # Then it is refused with the rejection's code, not flattened; nothing is written
        with pytest.raises(ImageRejected) as refused:
            resize.handler(
                {"source": verdict["source"], "image": image, "execution": EXECUTION},
                FakeContext(),
            )
        assert type(refused.value).__name__ == code
    assert "Contents" not in aws.list_objects_v2(Bucket=OUT)


def red_object_on_grey(size: tuple[int, int], box: tuple[int, int, int, int]) -> bytes:
    image = Image.new("RGB", size, (128, 128, 128))
    image.paste((255, 0, 0), box)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("metadata", "focus", "left"),
    [
        ({"focus": "0.1,0.5"}, "metadata", 0),
        ({}, "content", 1200),
        # A bad focus is ignored: the content decides, the upload is not rejected.
        ({"focus": "right"}, "content", 1200),
    ],
)
def test_a_cover_rendition_records_its_crop_in_the_manifest(
    aws: Any, monkeypatch: pytest.MonkeyPatch, metadata: dict[str, str], focus: str, left: int
) -> None:
    # Given a 1800 x 600 field with a red object on its right, uploaded with or without
    # x-amz-meta-focus, and a fit and a cover rendition configured
    monkeypatch.setenv("RENDITIONS", "thumb:64,square:64:cover")
    monkeypatch.setenv("OUTPUT_FORMATS", "png")
    body = red_object_on_grey((1800, 600), (1500, 250, 1540, 290))
    aws.put_object(Bucket=IN, Key="f/field.png", Body=body, Metadata=metadata)
    # When validate, resize and store run
    resized, manifest = resize_and_store(aws, "f/field.png")
    # Then the cover's window and what placed it reach the manifest; the fit has none
    records = {r["name"]: r for r in manifest["renditions"]}
    assert manifest["renditions"] == resized["renditions"]
    assert (records["thumb"]["crop"], records["thumb"]["focus"]) == (None, None)
    square = records["square"]
    assert (square["width"], square["height"], square["focus"]) == (64, 64, focus)
    assert square["crop"] == {"x": left, "y": 0, "width": 600, "height": 600}
