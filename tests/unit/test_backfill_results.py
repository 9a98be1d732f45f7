"""Reading a backfill's outcome: the target URI, the execution name, and the
ResultWriter files in the shape AWS documents them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from imgpipe.ops.backfill import (
    FAILED,
    PROCESSED,
    REJECTED,
    SKIPPED,
    UP_TO_DATE,
    ItemOutcome,
    Summary,
    Target,
    execution_name,
    results_from_writer,
)
from imgpipe.ops.errors import OpsError


def item(key: str) -> str:
    return json.dumps(
        {
            "source": "imgpipe.backfill",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": "in"}, "object": {"key": key}, "mode": "missing"},
        }
    )


def output(status: str, code: str | None = None) -> str:
    return json.dumps(
        {"status": status, "reason": {"code": code, "message": "m"} if code else None}
    )


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [("s3://in/photos/", "in", "photos/"), ("s3://in", "in", ""), ("s3://in/a+b c", "in", "a+b c")],
)
def test_target_keeps_the_prefix_as_typed(uri: str, bucket: str, prefix: str) -> None:
    assert Target.parse(uri) == Target(bucket, prefix)


@pytest.mark.parametrize("uri", ["in/photos", "s3:///photos", "https://in/photos"])
def test_target_must_be_an_s3_uri(uri: str) -> None:
    with pytest.raises(OpsError, match="s3://bucket/prefix"):
        Target.parse(uri)


def test_execution_names_are_valid_whatever_the_prefix_holds() -> None:
    now = datetime(2026, 12, 3, 10, 4, 5, tzinfo=UTC)
    name = execution_name(Target("in", "ünïcode prefix/with spaces+" * 5), now)
    assert name.startswith("backfill-20261203T100405Z-")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name)
    assert execution_name(Target("in", "a/"), now) != execution_name(Target("in", "b/"), now)


@pytest.mark.parametrize(
    ("status", "result", "error", "expected"),
    [
        ("SUCCEEDED", output("processed"), None, (PROCESSED, None)),
        ("SUCCEEDED", output("skipped", "UpToDate"), None, (UP_TO_DATE, "UpToDate")),
        ("SUCCEEDED", output("skipped", "ObjectGone"), None, (SKIPPED, "ObjectGone")),
        ("SUCCEEDED", output("rejected", "CorruptImage"), None, (REJECTED, "CorruptImage")),
        ("FAILED", None, "TransientError", (FAILED, "TransientError")),
        ("TIMED_OUT", None, None, (FAILED, "TIMED_OUT")),
    ],
)
def test_each_child_output_is_one_outcome_with_its_code(
    status: str, result: str | None, error: str | None, expected: tuple[str, str | None]
) -> None:
    outcome = ItemOutcome.of_child(status, item("photos/a.jpg"), result, error)
    assert (outcome.outcome, outcome.code) == expected
    assert outcome.key == "photos/a.jpg"


def test_result_files_are_read_as_aws_writes_them(s3: Any) -> None:
    # Given a run's manifest and result files in the documented shape (Input and Output
    # are JSON text; FAILED records carry Error and Cause)
    s3.create_bucket(Bucket="out")
    base = "imgpipe-backfill/0f3c"
    records = {
        f"{base}/SUCCEEDED_0.json": [
            {"Status": "SUCCEEDED", "Input": item("p/a.jpg"), "Output": output("processed")},
            {"Status": "SUCCEEDED", "Input": item("p/b.jpg"), "Output": output("processed")},
            {
                "Status": "SUCCEEDED",
                "Input": item("p/c.jpg"),
                "Output": output("skipped", "UpToDate"),
            },
            {
                "Status": "SUCCEEDED",
                "Input": item("p/evil.jpg"),
                "Output": output("rejected", "UnsupportedFormat"),
            },
        ],
        f"{base}/FAILED_0.json": [
            {"Status": "FAILED", "Input": item("p/d.jpg"), "Error": "States.Timeout", "Cause": ""}
        ],
    }
    for key, body in records.items():
        s3.put_object(Bucket="out", Key=key, Body=json.dumps(body).encode())
    manifest = {
        "DestinationBucket": "out",
        "MapRunArn": "arn:aws:states:us-east-1:1:mapRun:b/Backfill:0f3c",
        "ResultFiles": {
            "FAILED": [{"Key": f"{base}/FAILED_0.json", "Size": 1}],
            "PENDING": [],
            "SUCCEEDED": [{"Key": f"{base}/SUCCEEDED_0.json", "Size": 1}],
        },
    }
    s3.put_object(Bucket="out", Key=f"{base}/manifest.json", Body=json.dumps(manifest).encode())
    run_output = json.dumps(
        {"ResultWriterDetails": {"Bucket": "out", "Key": f"{base}/manifest.json"}}
    )
    # When the outcomes are read and summed
    outcomes = results_from_writer(s3, run_output)
    assert outcomes is not None
    summary = Summary.of(
        {"executionArn": "arn:x", "status": "SUCCEEDED"}, "arn:run", outcomes, "result files"
    )
    # Then every object is counted once under its outcome, with reason codes
    document = summary.to_dict()
    assert document["outcomes"] == {
        PROCESSED: 2,
        UP_TO_DATE: 1,
        SKIPPED: 0,
        REJECTED: 1,
        FAILED: 1,
    }
    assert document["reasons"][REJECTED] == {"UnsupportedFormat": 1}
    assert document["failed_keys"] == ["p/d.jpg"]
    assert not summary.ok


def test_a_manifest_without_result_files_asks_for_another_source(s3: Any) -> None:
    # moto's ResultWriter writes the manifest with empty ResultFiles
    s3.create_bucket(Bucket="out")
    empty = {"DestinationBucket": "out", "ResultFiles": {"FAILED": [], "SUCCEEDED": []}}
    s3.put_object(Bucket="out", Key="r/manifest.json", Body=json.dumps(empty).encode())
    pointer = {"ResultWriterDetails": {"Bucket": "out", "Key": "r/manifest.json"}}
    assert results_from_writer(s3, json.dumps(pointer)) is None
    assert results_from_writer(s3, None) is None
