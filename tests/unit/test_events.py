"""Parsing the S3 EventBridge event at the edge."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from imgpipe.errors import InvalidEvent
from imgpipe.events import key_candidates, parse_s3_event

# The documented AWS shape of an S3 "Object Created" event delivered by EventBridge.
EVENT: dict[str, Any] = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": "111122223333",
    "time": "2021-11-12T00:00:00Z",
    "region": "ca-central-1",
    "resources": ["arn:aws:s3:::amzn-s3-demo-bucket1"],
    "detail": {
        "version": "0",
        "bucket": {"name": "amzn-s3-demo-bucket1"},
        "object": {
            "key": "example-key",
            "size": 5,
            "etag": "b1946ac92492d2347c6235b4d2611184",
            "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            "sequencer": "617f08299329d189",
        },
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "source-ip-address": "1.2.3.4",
        "reason": "PutObject",
    },
}


def test_documented_event_parses() -> None:
    event = parse_s3_event(EVENT)
    assert (event.bucket, event.key, event.size) == ("amzn-s3-demo-bucket1", "example-key", 5)
    assert event.etag == "b1946ac92492d2347c6235b4d2611184"
    assert event.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"
    assert event.sequencer == "617f08299329d189"
    assert event.reason == "PutObject"


def test_unversioned_bucket_and_emulator_etag_spelling() -> None:
    raw = copy.deepcopy(EVENT)
    obj = raw["detail"]["object"]
    del obj["version-id"]
    obj["eTag"] = obj.pop("etag")
    event = parse_s3_event(raw)
    assert event.version_id is None
    assert event.etag == "b1946ac92492d2347c6235b4d2611184"


def test_key_is_kept_as_spelled() -> None:
    raw = copy.deepcopy(EVENT)
    raw["detail"]["object"]["key"] = "a+b%20c.jpg"
    assert parse_s3_event(raw).key == "a+b%20c.jpg"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.update(source="aws.ec2"),
        lambda e: e.update({"detail-type": "Object Restore Completed"}),
        lambda e: e.pop("detail"),
        lambda e: e["detail"]["object"].pop("key"),
        lambda e: e["detail"].pop("bucket"),
    ],
)
def test_not_an_s3_object_event_is_invalid(mutate: Any) -> None:
    raw = copy.deepcopy(EVENT)
    mutate(raw)
    with pytest.raises(InvalidEvent):
        parse_s3_event(raw)


def test_key_candidates_literal_first_then_decodings() -> None:
    assert key_candidates("a+b%2Bc.jpg") == ["a+b%2Bc.jpg", "a b+c.jpg", "a+b+c.jpg"]
    assert key_candidates("plain.jpg") == ["plain.jpg"]


EVENT_BUCKET = "amzn-s3-demo-bucket1"
BACKFILL_ITEM: dict[str, Any] = {
    "version": "0",
    "source": "imgpipe.backfill",
    "detail-type": "Object Created",
    "time": "2026-12-03T10:00:00Z",
    "detail": {
        "bucket": {"name": EVENT_BUCKET},
        "object": {"key": "photos/a+b.jpg"},
        "reason": "Backfill",
        "mode": "missing",
    },
}


@pytest.mark.parametrize("mode", ["missing", "all"])
def test_backfill_item_parses_with_its_mode_and_no_version(mode: str) -> None:
    item = copy.deepcopy(BACKFILL_ITEM)
    item["detail"]["mode"] = mode
    parsed = parse_s3_event(item)
    assert (parsed.backfill, parsed.key, parsed.bucket) == (mode, "photos/a+b.jpg", EVENT_BUCKET)
    assert (parsed.version_id, parsed.sequencer, parsed.etag) == (None, None, None)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mode", "everything", "detail.mode"),
        ("mode", None, "detail.mode"),
        ("detail-type", "Object Deleted", "must be 'Object Created'"),
        ("source", "imgpipe.other", "event source"),
    ],
)
def test_backfill_item_without_a_known_mode_or_as_a_deletion_is_invalid(
    field: str, value: Any, message: str
) -> None:
    item = copy.deepcopy(BACKFILL_ITEM)
    if field == "mode":
        item["detail"]["mode"] = value
    else:
        item[field] = value
    with pytest.raises(InvalidEvent, match=message):
        parse_s3_event(item)


def test_an_s3_event_is_never_a_backfill_whatever_its_detail_says() -> None:
    event = copy.deepcopy(EVENT)
    event["detail"]["mode"] = "all"
    assert parse_s3_event(event).backfill is None
