"""What the pipeline writes down: logs, execution history and outputs stay clean.

A handful of uploads run through the deployed template (a camera photo carrying EXIF
and GPS, a transparent PNG with a text chunk, an HTML file, a truncated JPEG and a
photo whose manifest S3 refuses until retries run out). Then every line the functions
printed, every payload in the execution histories and every output is checked:

* each Powertools log line carries the correlation keys an operator filters on
  (`execution`, `state`, `source_bucket`, `source_key`, `correlation_id`);
* nothing carries image bytes (raw, escaped, base64 or hex), credentials, signed
  request material or the originals' private metadata;
* Step Functions payloads stay small (references, not bytes);
* a rejection is logged exactly once, by the function that rejected it.
"""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from PIL import Image, ImageDraw, PngImagePlugin

from helpers import handler_s3_client, s3_slows_down
from imgpipe.local.cloud import ExecutionRecord, LocalCloud

pytestmark = pytest.mark.xdist_group("log-hygiene")

MAX_LINE_BYTES = 16 * 1024
MAX_PAYLOAD_BYTES = 16 * 1024
CORRELATION_KEYS = ("execution", "state", "source_bucket", "source_key", "correlation_id")
PROBLEM_LEVELS = {"WARNING", "ERROR", "CRITICAL"}
# Lines the Lambda runtime itself writes (not JSON); the in-process runner may add them.
RUNTIME_LINE = re.compile(r"^(START|END|REPORT|INIT_START|INIT_REPORT) ")

# Credentials the functions run with: distinctive, so finding one anywhere is a leak.
ACCESS_KEY_ID = "AKIAIMGPIPELOGTEST42"
SECRET_ACCESS_KEY = "imgpipe/log-hygiene+SecretKeyThatMustNeverBeLogged0"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjImgpipeLogHygieneSessionTokenMustNotLeak"
# Private metadata of the originals; none of it may travel past the decoder.
EXIF_MARKER = "imgpipe-exif-description-7f3a"
GPS_MARKER = "imgpipe-gps-datum-51N"
PNG_TEXT_MARKER = "imgpipe-png-comment-c0ffee"
MARKERS = (EXIF_MARKER, GPS_MARKER, PNG_TEXT_MARKER)
SECRET_NAMES = (
    "AWS_SECRET_ACCESS_KEY",
    "aws_secret_access_key",
    "AWS_SESSION_TOKEN",
    "aws_session_token",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "AWS4-HMAC-SHA256",
)
PRESIGNED_URL = re.compile(
    r"https?://\S+\?\S*(X-Amz-Signature|X-Amz-Credential|Signature=|AWSAccessKeyId=)",
    re.IGNORECASE,
)

# -- image bytes in any spelling ---------------------------------------------------------

_IMAGE_BYTES = [
    # raw bytes that reached text (decoded as latin-1 or with surrogate escapes)
    re.compile("\xff\xd8\xff"),
    re.compile("\x89PNG"),
    re.compile("RIFF.{4}WEBP", re.DOTALL),
    re.compile("[\udc80-\udcff]{4}"),
    re.compile("\ufffd{4}"),
    # JSON escapes and Python bytes reprs of the magic numbers
    re.compile(r"\\u00ff\\u00d8\\u00ff", re.IGNORECASE),
    re.compile(r"\\u0089PNG", re.IGNORECASE),
    re.compile(r"\\xff\\xd8\\xff", re.IGNORECASE),
    re.compile(r"\\x89PNG", re.IGNORECASE),
    re.compile(r"RIFF(\\x[0-9a-f]{2}|\\[trn0\\']|.){4}WEBP", re.IGNORECASE),
    # base64 of the magic numbers, and long base64 or hex runs of anything
    re.compile(r"/9j/4|iVBORw0KGgo|UklGR[A-Za-z0-9+/]{7}RUJQ"),
    re.compile(r"[A-Za-z0-9+/]{201,}={0,2}"),
    re.compile(r"[0-9A-Fa-f]{257,}"),
]


def image_bytes_in(text: str) -> list[str]:
    return [pattern.pattern for pattern in _IMAGE_BYTES if pattern.search(text)]


def secrets_in(text: str, secrets: tuple[str, ...]) -> list[str]:
    found = [secret for secret in secrets if secret in text]
    found += [name for name in SECRET_NAMES if name.lower() in text.lower()]
    if PRESIGNED_URL.search(text):
        found.append("presigned URL")
    found += [marker for marker in MARKERS if marker in text]
    return found


# -- the uploads -------------------------------------------------------------------------


def camera_photo() -> bytes:
    """A JPEG with an EXIF description, an orientation and GPS data."""
    image = Image.new("RGB", (1200, 800), (40, 90, 160))
    ImageDraw.Draw(image).ellipse((300, 200, 900, 600), fill=(240, 200, 40))
    exif = Image.Exif()
    exif[0x010E] = EXIF_MARKER  # ImageDescription
    exif[0x0112] = 6  # Orientation: stored sideways
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0), 18: GPS_MARKER}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def transparent_png() -> bytes:
    image = Image.new("RGBA", (500, 300), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((100, 50, 399, 249), fill=(0, 180, 90, 200))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", PNG_TEXT_MARKER)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def truncated_jpeg() -> bytes:
    whole = camera_photo()
    return whole[: len(whole) // 3]


@dataclass(frozen=True)
class Run:
    name: str
    record: ExecutionRecord
    body: bytes


class _WaitRecorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    environment = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
    }
    with pytest.MonkeyPatch.context() as patch:
        # Each Lambda function resolves its credentials from its own environment at
        # cold start; in one test process boto3's default session would hand the
        # handlers whatever credentials an earlier test resolved.
        patch.setattr(boto3, "DEFAULT_SESSION", None)
        with LocalCloud.running(retry_sleep=_WaitRecorder(), environment=environment) as cloud:
            yield cloud


@pytest.fixture(scope="module")
def runs(cloud: LocalCloud) -> dict[str, Run]:
    prefix = f"hygiene/{uuid.uuid4().hex[:8]}"
    done: dict[str, Run] = {}
    for name, key, body in [
        ("photo", f"{prefix}/camera photo.jpg", camera_photo()),
        ("png", f"{prefix}/badge.png", transparent_png()),
        ("html", f"{prefix}/page.jpg", b"<!DOCTYPE html><html><body>not a photo</body></html>"),
        ("truncated", f"{prefix}/truncated.jpg", truncated_jpeg()),
    ]:
        done[name] = Run(name, cloud.upload(key, body), body)
    # A photo whose manifest S3 keeps refusing: Store fails through every retry.
    with s3_slows_down(cloud, "StoreFunction"):
        body = camera_photo()
        done["failed"] = Run("failed", cloud.upload(f"{prefix}/failed.jpg", body), body)
    return done


@pytest.fixture(scope="module")
def secrets(cloud: LocalCloud) -> tuple[str, ...]:
    """The credential values the functions' S3 clients actually sign with."""
    values = {ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN}
    for logical in ("ValidateFunction", "ResizeFunction", "StoreFunction"):
        client = handler_s3_client(cloud, logical)
        credentials = client._request_signer._credentials.get_frozen_credentials()
        # The test can only find a leak of credentials it knows: they must be ours.
        assert credentials.secret_key == SECRET_ACCESS_KEY, logical
        values |= {credentials.access_key, credentials.secret_key, credentials.token or ""}
    return tuple(sorted(value for value in values if value))


@dataclass(frozen=True)
class Line:
    function: str
    request_id: str
    execution: str
    state: str
    text: str


@pytest.fixture(scope="module")
def lines(cloud: LocalCloud, runs: dict[str, Run]) -> list[Line]:
    arns = {run.record.arn for run in runs.values()}
    found = []
    for invocation in cloud.functions.invocations:
        event = invocation.event if isinstance(invocation.event, dict) else {}
        if event.get("execution") not in arns:
            continue
        for text in invocation.logs.splitlines():
            if text.strip():
                found.append(
                    Line(
                        invocation.function,
                        invocation.request_id,
                        event["execution"],
                        event["state"],
                        text,
                    )
                )
    return found


def structured(lines: list[Line]) -> Iterator[tuple[Line, dict[str, Any]]]:
    for line in lines:
        if RUNTIME_LINE.match(line.text):
            continue
        yield line, json.loads(line.text)


# -- tests -------------------------------------------------------------------------------


def test_the_uploads_took_the_paths_under_test(runs: dict[str, Run]) -> None:
    # Given the uploads, Then each one ended the way this module relies on
    outcomes = {
        name: (run.record.status, (run.record.output or {}).get("status"), run.record.error)
        for name, run in runs.items()
    }
    assert outcomes == {
        "photo": ("SUCCEEDED", "processed", None),
        "png": ("SUCCEEDED", "processed", None),
        "html": ("SUCCEEDED", "rejected", None),
        "truncated": ("SUCCEEDED", "rejected", None),
        "failed": ("FAILED", None, "TransientError"),
    }


def test_every_log_line_is_json_with_the_correlation_keys(
    cloud: LocalCloud, runs: dict[str, Run], lines: list[Line]
) -> None:
    # Given every line the functions printed for these executions
    keys = {run.record.arn: run.record.key for run in runs.values()}
    assert {line.execution for line in lines} == set(keys)
    logged = 0
    # Then each is JSON, and each log record (not an EMF metric blob) carries the
    # execution, the state and the source object it is about
    for line, record in structured(lines):
        if "_aws" in record:
            assert record["_aws"]["CloudWatchMetrics"], line.text
            continue
        logged += 1
        missing = [key for key in CORRELATION_KEYS if key not in record]
        assert not missing, (missing, line.text)
        assert record["execution"] == record["correlation_id"] == line.execution
        assert record["state"] == line.state
        assert record["source_bucket"] == cloud.input_bucket
        assert record["source_key"] == keys[line.execution]
    assert logged >= len(runs)


def test_log_lines_carry_no_image_bytes_and_stay_small(lines: list[Line]) -> None:
    # Given every line the functions printed, Then none carries image bytes or is huge
    for line in lines:
        assert len(line.text.encode("utf-8")) <= MAX_LINE_BYTES, line.text[:200]
        assert not image_bytes_in(line.text), (image_bytes_in(line.text), line.text[:300])


def test_log_lines_carry_no_credentials_signed_urls_or_private_metadata(
    lines: list[Line], secrets: tuple[str, ...]
) -> None:
    # Given every line the functions printed, Then no credential, signature or metadata
    for line in lines:
        assert not secrets_in(line.text, secrets), (secrets_in(line.text, secrets), line.text)


def _payloads(record: ExecutionRecord) -> Iterator[tuple[str, str]]:
    """Every string payload of the history: state inputs/outputs, task parameters, causes."""
    for event in record.history:
        for name, details in event.items():
            if not name.endswith("EventDetails") or not isinstance(details, dict):
                continue
            for field, value in details.items():
                if isinstance(value, str):
                    yield f"{event['id']}:{event['type']}.{field}", value


def test_execution_history_payloads_carry_references_not_bytes(
    runs: dict[str, Run], secrets: tuple[str, ...]
) -> None:
    for run in runs.values():
        payloads = list(_payloads(run.record))
        assert payloads, run.name
        # Then every state's input and output, every task's parameters and every error
        # cause is small and free of image bytes, credentials and private metadata
        for where, text in payloads:
            assert len(text.encode("utf-8")) <= MAX_PAYLOAD_BYTES, (run.name, where)
            assert not image_bytes_in(text), (run.name, where, image_bytes_in(text))
            assert not secrets_in(text, secrets), (run.name, where, secrets_in(text, secrets))


def test_outputs_and_manifests_are_small_and_clean(
    cloud: LocalCloud, runs: dict[str, Run], secrets: tuple[str, ...]
) -> None:
    for run in runs.values():
        documents = [json.dumps(run.record.output)] if run.record.output else []
        manifest = (run.record.output or {}).get("manifest")
        if manifest:
            obj = cloud.s3.get_object(Bucket=manifest["bucket"], Key=manifest["key"])
            documents.append(obj["Body"].read().decode("utf-8"))
        # Then the execution output and the manifest are small and clean too
        for text in documents:
            assert len(text.encode("utf-8")) <= MAX_PAYLOAD_BYTES, run.name
            assert not image_bytes_in(text), (run.name, image_bytes_in(text))
            assert not secrets_in(text, secrets), (run.name, secrets_in(text, secrets))


@pytest.mark.parametrize(
    ("name", "state"), [("html", "Validate"), ("truncated", "Resize")], ids=["html", "truncated"]
)
def test_a_rejection_is_logged_once_by_the_function_that_rejected_it(
    runs: dict[str, Run], lines: list[Line], name: str, state: str
) -> None:
    # Given a rejected upload
    run = runs[name]
    assert run.record.output is not None
    reason = run.record.output["reason"]
    # When its log lines are read
    problems = [
        (line, record)
        for line, record in structured(lines)
        if line.execution == run.record.arn and record.get("level") in PROBLEM_LEVELS
    ]
    # Then exactly one warning names the reason, written in the state that rejected it
    assert len(problems) == 1, [line.text for line, _ in problems]
    line, record = problems[0]
    assert line.state == state
    assert record["state"] == state
    assert record["reason"] == reason["code"]
    assert record["detail"] == reason["message"]


def test_no_warnings_for_uploads_that_were_processed_and_none_repeated_on_failure(
    runs: dict[str, Run], lines: list[Line]
) -> None:
    per_invocation: dict[str, int] = {}
    for line, record in structured(lines):
        if record.get("level") not in PROBLEM_LEVELS:
            continue
        # Then processed uploads log no warning or error at all
        assert line.execution not in {runs["photo"].record.arn, runs["png"].record.arn}, line
        per_invocation[line.request_id] = per_invocation.get(line.request_id, 0) + 1
    # And no function logs one problem more than once
    assert all(count == 1 for count in per_invocation.values()), per_invocation


def test_the_detector_finds_image_bytes_however_they_are_spelled() -> None:
    # Given real image bytes spelled every way a careless log call would spell them
    jpeg_bytes = camera_photo()
    png_bytes = transparent_png()
    webp = io.BytesIO()
    Image.new("RGB", (8, 8)).save(webp, "WEBP")
    spellings = [
        jpeg_bytes[:64].decode("latin-1"),
        png_bytes[:64].decode("latin-1"),
        webp.getvalue()[:64].decode("latin-1"),
        json.dumps(jpeg_bytes[:64].decode("latin-1")),
        json.dumps(png_bytes[:64].decode("latin-1")),
        repr(jpeg_bytes[:64]),
        repr(png_bytes[:64]),
        repr(webp.getvalue()[:64]),
        jpeg_bytes[:64].decode("utf-8", errors="replace"),
        jpeg_bytes[:64].decode("utf-8", errors="surrogateescape"),
        base64.b64encode(jpeg_bytes[:12]).decode(),
        base64.b64encode(png_bytes[:12]).decode(),
        base64.b64encode(webp.getvalue()[:12]).decode(),
        base64.b64encode(jpeg_bytes[100:400]).decode(),
        jpeg_bytes[200:400].hex(),
    ]
    # Then every spelling is found, and ordinary log text is not
    for text in spellings:
        assert image_bytes_in(text), text[:80]
    assert not image_bytes_in(
        '{"level":"INFO","message":"resized","etag":"f719daf4df675fe547e2c15d8cad859c",'
        '"execution":"arn:aws:states:us-east-1:123456789012:execution:sm:0f1e2d3c"}'
    )
