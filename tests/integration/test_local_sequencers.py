"""The S3 events the local cloud delivers carry S3's per-key sequencers, in AWS's shape.

moto writes one constant sequencer in every S3 event; S3's increase, per object key,
with each PUT and DELETE of that key. The pipeline orders events of a key by them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from helpers import jpeg
from imgpipe.local.cloud import Delivery, LocalCloud

pytestmark = pytest.mark.xdist_group("local-sequencers")


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud.running() as deployed:
        yield deployed


def padded(sequencer: str) -> str:
    # S3: pad the shorter sequencer with leading zeros, then compare as strings
    return sequencer.upper().zfill(32)


def sequencer(delivery: Delivery) -> str:
    return str(delivery.event["detail"]["object"]["sequencer"])


def deliveries(cloud: LocalCloud, key: str, after: int) -> list[Delivery]:
    return [d for d in cloud.bridge.deliveries[after:] if d.key == key]


def test_puts_and_deletes_of_one_key_carry_increasing_sequencers(cloud: LocalCloud) -> None:
    # Given a key written, overwritten, deleted, written again and deleted again
    key = "seq/one.jpg"
    seen = len(cloud.bridge.deliveries)
    for step in ("put", "put", "delete", "put", "delete"):
        record = cloud.upload(key, jpeg(64, 48)) if step == "put" else cloud.delete(key)
        assert record.status == "SUCCEEDED"
    # Then its five events reached the state machine in that order, each with a
    # sequencer above the one before (S3's hex format, compared as S3 says)
    events = deliveries(cloud, key, seen)
    assert [d.event["detail-type"] for d in events] == [
        "Object Created",
        "Object Created",
        "Object Deleted",
        "Object Created",
        "Object Deleted",
    ]
    sequencers = [sequencer(d) for d in events]
    assert all(len(s) >= 16 and int(s, 16) >= 0 for s in sequencers)
    assert all(padded(before) < padded(after) for before, after in itertools.pairwise(sequencers))


def test_sequencers_of_different_keys_are_independent(cloud: LocalCloud) -> None:
    # Given two writes of one key
    seen = len(cloud.bridge.deliveries)
    cloud.upload("seq/a.jpg", jpeg(32, 32))
    cloud.upload("seq/a.jpg", jpeg(32, 32))
    # When another key is written for the first time
    cloud.upload("seq/b.jpg", jpeg(32, 32))
    # Then the new key's series starts on its own, not after the other key's
    a = [sequencer(d) for d in deliveries(cloud, "seq/a.jpg", seen)]
    (b,) = [sequencer(d) for d in deliveries(cloud, "seq/b.jpg", seen)]
    assert padded(a[0]) < padded(a[1])
    assert padded(b) < padded(a[1])


def test_concurrent_puts_of_one_key_are_sequenced_in_the_order_s3_stored_them(
    cloud: LocalCloud,
) -> None:
    # Given eight clients putting the same key at once
    key = "seq/race.jpg"
    seen = len(cloud.bridge.deliveries)
    with ThreadPoolExecutor(8) as pool:
        puts = list(
            pool.map(
                lambda n: cloud.s3.put_object(
                    Bucket=cloud.input_bucket, Key=key, Body=jpeg(16 + n, 16)
                ),
                range(8),
            )
        )
    events = [
        cloud.bridge.wait_for(cloud.input_bucket, key, put["VersionId"], after=seen, timeout_s=30)
        for put in puts
    ]
    for event in events:
        assert event.execution_arn is not None
        cloud.wait(event.execution_arn, key)
    # Then ordering the events by sequencer gives the order of the versions in S3
    # (every one kept: none lost to another put), and the last is the current object
    stored = cloud.s3.list_object_versions(Bucket=cloud.input_bucket, Prefix=key)["Versions"]
    oldest_first = [v["VersionId"] for v in reversed(stored)]
    by_sequencer = sorted(events, key=lambda d: padded(sequencer(d)))
    assert [d.version_id for d in by_sequencer] == oldest_first
    assert len(oldest_first) == 8
    assert (
        by_sequencer[-1].version_id
        == cloud.s3.head_object(Bucket=cloud.input_bucket, Key=key)["VersionId"]
    )


def test_delivered_events_have_the_documented_aws_shape(cloud: LocalCloud) -> None:
    # Given one upload and its deletion
    key = "seq/shape.jpg"
    seen = len(cloud.bridge.deliveries)
    cloud.upload(key, jpeg(40, 30))
    cloud.delete(key)
    created, deleted = (d.event for d in deliveries(cloud, key, seen))
    # Then they read as S3's EventBridge events do (etag, S3's reasons, unique ids)
    obj: dict[str, Any] = created["detail"]["object"]
    assert set(obj) == {"key", "size", "etag", "version-id", "sequencer"}
    assert created["detail"]["reason"] == "PutObject"
    assert created["time"].endswith("Z")
    assert deleted["detail"]["reason"] == "DeleteObject"
    assert deleted["detail"]["deletion-type"] == "Delete Marker Created"
    assert set(deleted["detail"]["object"]) == {"key", "version-id", "sequencer"}
    assert created["id"] != deleted["id"]


def test_a_hand_built_event_carries_the_sequencer_of_its_version(cloud: LocalCloud) -> None:
    # Given an upload delivered through the rule
    key = "seq/again.jpg"
    seen = len(cloud.bridge.deliveries)
    cloud.upload(key, jpeg(40, 30))
    (delivered,) = deliveries(cloud, key, seen)
    # When the event for the current version is built by hand (a redelivery)
    rebuilt = cloud.object_created_event(key)
    # Then it names the same version with the same sequencer
    assert rebuilt["detail"]["object"]["version-id"] == delivered.version_id
    assert rebuilt["detail"]["object"]["sequencer"] == sequencer(delivered)
