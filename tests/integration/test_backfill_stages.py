"""A backfill item through the real stages: what it renders, what it leaves alone, and
how it races a new upload of the same key (docs/backfill.md).

The stages run against moto's S3 and DynamoDB as the backfill machine's item processor
drives them (the pipeline's Validate -> Resize -> Store); races are made with `Pauses`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_consistency import Run, code

from imgpipe.keys import output_folder
from pipeline_world import (
    OUT,
    World,
    follows_current_state,
    picture,
    visible_manifests_are_complete,
    world,
)

KEY = "photos/cat.jpg"
RED, BLUE, GREEN = (200, 30, 30), (20, 40, 220), (30, 180, 60)


@pytest.fixture
def w() -> Iterator[World]:
    with world() as it:
        yield it


def stamps(w: World, key: str) -> dict[str, tuple[str, Any]]:
    """Every output file of `key` with its ETag and LastModified: any write changes it."""
    prefix = output_folder("", key)
    listed = w.s3.list_objects_v2(Bucket=OUT, Prefix=prefix, Delimiter="/")
    return {i["Key"]: (i["ETag"], i["LastModified"]) for i in listed.get("Contents", [])}


def test_an_object_put_without_an_event_is_rendered_then_left_alone(w: World) -> None:
    # Given a photo that arrived before the pipeline existed (no event ever ran)
    w.s3.put_object(Bucket="uploads-in", Key=KEY, Body=picture(RED))
    # When a backfill reaches it
    first = w.execute(w.backfill(KEY))
    # Then it is rendered, and the manifest describes the current version
    assert first["status"] == "processed"
    assert follows_current_state(w, KEY) == []
    manifest = w.manifest(KEY)
    assert manifest is not None
    assert manifest["settings"]["fingerprint"].startswith("sha256:")
    # And a second backfill writes nothing
    before = stamps(w, KEY)
    second = w.execute(w.backfill(KEY))
    assert code(second) == ("skipped", "UpToDate")
    assert stamps(w, KEY) == before


def test_outputs_of_an_older_version_are_made_again_from_the_current_one(w: World) -> None:
    # Given a rendered photo replaced by a new version whose event never ran
    assert w.execute(w.put(KEY, picture(RED)))["status"] == "processed"
    w.s3.put_object(Bucket="uploads-in", Key=KEY, Body=picture(BLUE, (64, 32)))
    assert follows_current_state(w, KEY) != []
    # When a backfill reaches it
    assert w.execute(w.backfill(KEY))["status"] == "processed"
    # Then the outputs are the current version's (64x32 -> the 40 box is 40x20)
    assert follows_current_state(w, KEY) == []
    manifest = w.manifest(KEY)
    assert manifest is not None
    assert {(r["name"], r["width"], r["height"]) for r in manifest["renditions"]} >= {
        ("big", 40, 20)
    }


def test_a_new_rendition_set_is_picked_up_by_the_default_mode(w: World) -> None:
    # Given a photo rendered with the sizes small:16,big:40
    assert w.execute(w.put(KEY, picture(RED)))["status"] == "processed"
    old = w.manifest(KEY)
    assert old is not None
    # When the stack is redeployed with another rendition set and a backfill runs
    w.env["RENDITIONS"] = "small:16,huge:48"
    assert w.execute(w.backfill(KEY, "missing"))["status"] == "processed"
    # Then the manifest has the new fingerprint and renditions, and the files of the
    # dropped size are gone
    new = w.manifest(KEY)
    assert new is not None
    assert new["settings"]["fingerprint"] != old["settings"]["fingerprint"]
    assert {r["name"] for r in new["renditions"]} == {"small", "huge"}
    assert not [k for k in w.folder(KEY) if "/big." in k]
    assert follows_current_state(w, KEY) == []
    # And with that set in place, the next backfill leaves it alone
    assert code(w.execute(w.backfill(KEY))) == ("skipped", "UpToDate")


def test_a_rendition_removed_by_hand_is_made_again(w: World) -> None:
    assert w.execute(w.put(KEY, picture(RED)))["status"] == "processed"
    gone = next(k for k in w.folder(KEY) if k.endswith("small.webp"))
    w.s3.delete_object(Bucket=OUT, Key=gone)
    assert w.execute(w.backfill(KEY))["status"] == "processed"
    assert gone in w.folder(KEY)
    assert visible_manifests_are_complete(w, [KEY]) == []


def test_mode_all_renders_an_up_to_date_key_again(w: World) -> None:
    assert w.execute(w.put(KEY, picture(RED)))["status"] == "processed"
    before = w.manifest(KEY)
    assert before is not None
    assert w.execute(w.backfill(KEY, "all"))["status"] == "processed"
    after = w.manifest(KEY)
    assert after is not None
    assert after["execution"] != before["execution"]
    assert follows_current_state(w, KEY) == []


def test_a_hostile_file_is_rejected_with_its_reason_every_time_and_leaves_nothing(
    w: World,
) -> None:
    w.s3.put_object(Bucket="uploads-in", Key="photos/evil.jpg", Body=b"\xff\xd8\xff" + b"\0" * 64)
    for _ in range(2):
        assert code(w.execute(w.backfill("photos/evil.jpg"))) == ("rejected", "CorruptImage")
    assert w.folder("photos/evil.jpg") == {}


def test_a_key_deleted_after_the_listing_is_skipped_as_gone(w: World) -> None:
    w.s3.put_object(Bucket="uploads-in", Key=KEY, Body=picture(RED))
    w.s3.delete_object(Bucket="uploads-in", Key=KEY)
    assert code(w.execute(w.backfill(KEY))) == ("skipped", "ObjectGone")
    assert w.folder(KEY) == {}


def test_a_backfill_holding_the_old_version_never_wins_over_a_new_upload(w: World) -> None:
    # Given a backfill that validated v1 and is uploading its renditions, inside the lock
    w.s3.put_object(Bucket="uploads-in", Key=KEY, Body=picture(RED))
    reached, release = w.pauses.at("backfill", lambda op, key: op == "write" and KEY in key)
    backfill = Run(w, w.backfill(KEY), "backfill")
    assert reached.wait(10)

    # When v2 is uploaded and its execution runs meanwhile: it claims the key, finds
    # the lock held, and is retried (as the state machine would) once the backfill
    # has been let go
    def let_backfill_go() -> None:
        release.set()
        backfill.thread.join(10)

    uploaded = w.execute(w.put(KEY, picture(BLUE, (64, 32))), on_busy=let_backfill_go)
    backfilled = backfill.join()
    # Then the upload rendered v2, the backfill stood down, and the key shows v2
    assert uploaded["status"] == "processed"
    assert code(backfilled) == ("skipped", "Superseded")
    assert follows_current_state(w, KEY) == []
    assert visible_manifests_are_complete(w, [KEY]) == []
    manifest = w.manifest(KEY)
    assert manifest is not None
    assert manifest["image"]["width"] == 64


def test_a_backfill_of_the_version_an_upload_is_rendering_does_the_work_once(w: World) -> None:
    # Given an upload's execution stopped after validate claimed its version
    event = w.put(KEY, picture(GREEN, (32, 64)))
    reached, release = w.pauses.at("upload", lambda op, key: op == "lock" and key == KEY)
    upload = Run(w, event, "upload")
    assert reached.wait(10)
    # When a backfill reaches the same key (no outputs yet) and renders it
    assert w.execute(w.backfill(KEY))["status"] == "processed"
    rendered = stamps(w, KEY)
    # Then the upload, let go, finds its claim taken and writes nothing
    release.set()
    assert upload.join()["status"] == "skipped"
    assert stamps(w, KEY) == rendered
    assert follows_current_state(w, KEY) == []
    manifest = w.manifest(KEY)
    assert manifest is not None
    assert (manifest["image"]["width"], manifest["image"]["height"]) == (32, 64)


def test_a_rendition_overwritten_with_other_bytes_is_made_again(w: World) -> None:
    # Given a rendition replaced by hand with bytes of another size
    assert w.execute(w.put(KEY, picture(RED)))["status"] == "processed"
    damaged = next(k for k in w.folder(KEY) if k.endswith("big.jpg"))
    w.s3.put_object(Bucket=OUT, Key=damaged, Body=b"not the rendition")
    # When a backfill reaches it, the folder is made again to what the manifest lists
    assert w.execute(w.backfill(KEY))["status"] == "processed"
    assert w.folder(KEY)[damaged] > len(b"not the rendition")
    assert visible_manifests_are_complete(w, [KEY]) == []
