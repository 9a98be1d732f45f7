"""Outputs follow the source's current state, whatever the order of events (contract 5).

Each race is reproduced deterministically: one execution is stopped between two of its
AWS calls (`Pauses`) while another execution or an S3 change runs, then let go. The
stages are the real ones, against moto's S3 and DynamoDB, driven as the ASL drives them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from imgpipe.errors import KeyBusy
from imgpipe.keys import MANIFEST_NAME, output_folder
from pipeline_world import (
    FOREIGN,
    IN,
    OUT,
    World,
    follows_current_state,
    nth,
    picture,
    visible_manifests_are_complete,
    world,
)

KEY = "photos/cat.jpg"
RED, BLUE = (200, 30, 30), (20, 40, 220)


@pytest.fixture
def w() -> Iterator[World]:
    with world() as it:
        yield it


class Run:
    """One execution on its own thread, named so `Pauses` can stop it."""

    def __init__(self, w: World, event: dict[str, Any], name: str) -> None:
        self.output: dict[str, Any] = {}
        self.error: BaseException | None = None

        def target() -> None:
            try:
                self.output = w.execute(event)
            except BaseException as error:
                self.error = error

        self.thread = threading.Thread(target=target, name=name, daemon=True)
        self.thread.start()

    def join(self) -> dict[str, Any]:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the execution did not finish"
        if self.error is not None:
            raise self.error
        return self.output


def code(output: dict[str, Any]) -> tuple[str, str | None]:
    return output["status"], (output.get("reason") or {}).get("code")


def test_a_delete_while_renditions_upload_waits_for_them_then_removes_them_all(w: World) -> None:
    # Given a render stopped inside its lock, after its first rendition is uploaded
    created = w.put(KEY, picture(RED))
    reached, release = w.pauses.at("render", lambda op, key: op == "write" and "big" in key)
    render = Run(w, created, "render")
    assert reached.wait(10)
    # When the photo is deleted and forget runs meanwhile
    deleted = w.delete(KEY)
    with pytest.raises(KeyBusy):
        w.execute(deleted)
    # (the state machine retries forget; by then the render has let go)
    release.set()
    rendered = render.join()
    forgotten = w.execute(deleted)
    # Then the render stopped short of a manifest and forget removed what it uploaded
    assert code(rendered) == ("skipped", "ObjectGone")
    assert forgotten["status"] == "deleted"
    assert len(forgotten["removed"]) == 4
    assert w.folder(KEY) == {}


def test_a_delete_between_resize_and_store_leaves_nothing_and_fails_nothing(w: World) -> None:
    # Given a render whose renditions are uploaded, stopped before store takes the
    # key's lock (resize took it first)
    created = w.put(KEY, picture(RED))
    reached, release = w.pauses.at("render", nth("lock", KEY, 2))
    render = Run(w, created, "render")
    assert reached.wait(10)
    assert len(w.folder(KEY)) == 4
    # When the photo is deleted and forgotten before store runs
    forgotten = w.execute(w.delete(KEY))
    release.set()
    # Then store skips instead of failing on the missing renditions, and nothing is left
    assert forgotten["status"] == "deleted"
    assert code(render.join()) == ("skipped", "ObjectGone")
    assert w.folder(KEY) == {}


def test_forget_cannot_slip_between_stores_check_and_its_manifest(w: World) -> None:
    # Given store stopped after checking the renditions, about to write the manifest
    manifest = output_folder("", KEY) + MANIFEST_NAME
    created = w.put(KEY, picture(RED))
    reached, release = w.pauses.at("render", lambda op, key: (op, key) == ("write", manifest))
    render = Run(w, created, "render")
    assert reached.wait(10)
    deleted = w.delete(KEY)

    # When forget runs meanwhile, Then it must wait for store's lock, and while it
    # waits no manifest is visible without its renditions
    def store_finishes() -> None:
        assert visible_manifests_are_complete(w, [KEY]) == []
        release.set()
        assert render.join()["status"] == "processed"
        assert visible_manifests_are_complete(w, [KEY]) == []

    forgotten = w.execute(deleted, on_busy=store_finishes)
    # And then forget removes the manifest first and the renditions after it
    assert forgotten["status"] == "deleted"
    assert forgotten["removed"][0] == manifest
    assert w.folder(KEY) == {}


def test_a_render_that_passed_validate_before_a_delete_never_uploads(w: World) -> None:
    # Given a render downloading the photo (validated, outside any lock)
    created = w.put(KEY, picture(RED))
    reached, release = w.pauses.at("render", lambda op, key: (op, key) == ("read", KEY))
    render = Run(w, created, "render")
    assert reached.wait(10)
    # When the photo is deleted (its version survives under the delete marker) and
    # forget finds nothing to remove yet
    forgotten = w.execute(w.delete(KEY))
    release.set()
    # Then the render notices it lost the key and uploads nothing
    assert code(forgotten) == ("skipped", "NothingToDelete")
    assert code(render.join()) == ("skipped", "Superseded")
    assert w.folder(KEY) == {}


def test_an_older_render_that_lost_the_key_never_overwrites_the_newer_one(w: World) -> None:
    # Given a render of the first picture stopped while it downloads
    first = w.put(KEY, picture(RED, (48, 32)))
    reached, release = w.pauses.at("old", lambda op, key: (op, key) == ("read", KEY))
    old = Run(w, first, "old")
    assert reached.wait(10)
    # When a second picture replaces it and is rendered to the end
    second = w.put(KEY, picture(BLUE, (30, 60)))
    assert w.execute(second)["status"] == "processed"
    release.set()
    # Then the old render stops, and the outputs are the second picture's
    assert code(old.join()) == ("skipped", "Superseded")
    assert follows_current_state(w, KEY) == []
    manifest = w.manifest(KEY)
    assert manifest is not None
    assert manifest["image"]["width"] == 30


def test_replaying_object_created_after_a_delete_recreates_nothing(w: World) -> None:
    created = w.put(KEY, picture(RED))
    assert w.execute(created)["status"] == "processed"
    assert w.execute(w.delete(KEY))["status"] == "deleted"
    # When the old Object Created event is delivered again
    replayed = w.execute(created)
    # Then it is skipped and the folder stays empty
    assert code(replayed) == ("skipped", "ObjectGone")
    assert w.folder(KEY) == {}


def test_a_duplicate_delivery_is_skipped_and_changes_nothing(w: World) -> None:
    created = w.put(KEY, picture(RED))
    assert w.execute(created)["status"] == "processed"
    before = w.manifest(KEY)
    assert code(w.execute(created)) == ("skipped", "Duplicate")
    assert w.manifest(KEY) == before


def test_events_naming_another_bucket_change_nothing(w: World) -> None:
    # Given a processed photo in the input bucket
    assert w.execute(w.put(KEY, picture(RED)))["status"] == "processed"
    before = w.folder(KEY)
    # When an object of the same key in a bucket the pipeline does not own, and a
    # forged deletion naming a bucket that does not exist, are handed to it
    foreign = w.execute(w.put(KEY, picture(BLUE), bucket=FOREIGN))
    forged = w.execute(
        w.event("Object Deleted", KEY, bucket="no-such-bucket", reason="DeleteObject")
    )
    # Then both are refused and the outputs are untouched
    assert code(foreign) == ("skipped", "ForeignBucket")
    assert code(forged) == ("skipped", "ForeignBucket")
    assert w.folder(KEY) == before
    assert follows_current_state(w, KEY) == []


def test_a_forged_delete_while_the_object_exists_changes_nothing(w: World) -> None:
    assert w.execute(w.put(KEY, picture(RED)))["status"] == "processed"
    before = w.folder(KEY)
    forged = w.execute(w.event("Object Deleted", KEY, reason="DeleteObject", sequencer="F" * 20))
    assert code(forged) == ("skipped", "StillExists")
    assert w.folder(KEY) == before
    # and its huge sequencer does not stop the next real upload
    assert w.execute(w.put(KEY, picture(BLUE, (30, 60))))["status"] == "processed"
    assert follows_current_state(w, KEY) == []


def test_a_permanent_delete_of_the_current_version_renders_the_previous_one(w: World) -> None:
    # Given two versions of a photo, the second rendered
    assert w.execute(w.put(KEY, picture(RED, (48, 32))))["status"] == "processed"
    second = w.put(KEY, picture(BLUE, (30, 60)))
    assert w.execute(second)["status"] == "processed"
    # When the current version is deleted by its version id
    output = w.execute(w.delete_version(KEY, second["detail"]["object"]["version-id"]))
    # Then the version that became current is rendered
    assert output["status"] == "processed"
    assert follows_current_state(w, KEY) == []
    manifest = w.manifest(KEY)
    assert manifest is not None
    assert manifest["image"]["width"] == 48


def test_a_permanent_delete_of_the_only_version_removes_everything(w: World) -> None:
    created = w.put(KEY, picture(RED))
    assert w.execute(created)["status"] == "processed"
    output = w.execute(w.delete_version(KEY, created["detail"]["object"]["version-id"]))
    assert output["status"] == "deleted"
    assert w.folder(KEY) == {}


def test_removing_the_delete_marker_renders_the_object_again(w: World) -> None:
    assert w.execute(w.put(KEY, picture(RED)))["status"] == "processed"
    marker = w.delete(KEY)
    assert w.execute(marker)["status"] == "deleted"
    # When the delete marker is removed (S3 reports a permanent delete of it)
    restored = w.execute(w.delete_version(KEY, marker["detail"]["object"]["version-id"]))
    # Then the object that is back gets its renditions back
    assert restored["status"] == "processed"
    assert follows_current_state(w, KEY) == []


def test_a_new_version_rendering_then_deleted_leaves_the_old_versions_outputs_right(
    w: World,
) -> None:
    # Given the first version rendered, and a second one stopped after its renditions
    # overwrote the first's (before store takes the key's lock)
    assert w.execute(w.put(KEY, picture(RED, (48, 32))))["status"] == "processed"
    second = w.put(KEY, picture(BLUE, (30, 60)))
    reached, release = w.pauses.at("second", nth("lock", KEY, 2))
    run = Run(w, second, "second")
    assert reached.wait(10)
    # Then no manifest vouched for the overwritten files at any moment
    assert visible_manifests_are_complete(w, [KEY]) == []
    assert w.manifest(KEY) is None
    # When the second version is deleted for good before its store runs
    restored = w.execute(w.delete_version(KEY, second["detail"]["object"]["version-id"]))
    release.set()
    # Then the first version is rendered again and the second's store stands down
    assert restored["status"] == "processed"
    assert code(run.join()) == ("skipped", "Superseded")
    assert follows_current_state(w, KEY) == []


def test_a_rejected_overwrite_clears_the_previous_pictures_outputs(w: World) -> None:
    assert w.execute(w.put(KEY, picture(RED)))["status"] == "processed"
    # When the photo is replaced by something that is not an image
    rejected = w.execute(w.put(KEY, b"<html>not a photo</html>"))
    # Then no thumbnail of the old picture stays under the key
    assert code(rejected) == ("rejected", "UnsupportedFormat")
    assert w.folder(KEY) == {}
    # and a replay of the rejected upload is a duplicate, not a second rejection
    # (the rejected object is still current)


def test_a_new_rendition_set_leaves_no_files_of_the_old_one(w: World) -> None:
    assert w.execute(w.put(KEY, picture(RED)))["status"] == "processed"
    assert len(w.folder(KEY)) == 5
    before = w.manifest(KEY)
    assert before is not None
    # When the rendition set changes and the photo is uploaded again
    w.env["RENDITIONS"] = "tiny:8"
    w.env["OUTPUT_FORMATS"] = "webp"
    assert w.execute(w.put(KEY, picture(BLUE)))["status"] == "processed"
    # Then only the new set and its manifest are in the folder
    folder = output_folder("", KEY)
    assert set(w.folder(KEY)) == {folder + "tiny.webp", folder + MANIFEST_NAME}
    assert follows_current_state(w, KEY) == []
    # and the manifest says the files come from another rendition set
    after = w.manifest(KEY)
    assert after is not None
    assert after["settings"]["fingerprint"] != before["settings"]["fingerprint"]


def test_forgetting_a_key_never_touches_a_nested_sources_outputs(w: World) -> None:
    # `photos/cat.jpg/` holds the outputs of `photos/cat.jpg` and, one level down,
    # the folder of a source named `photos/cat.jpg/x.png`
    nested = KEY + "/x.jpg"
    assert w.execute(w.put(KEY, picture(RED)))["status"] == "processed"
    assert w.execute(w.put(nested, picture(BLUE)))["status"] == "processed"
    assert w.execute(w.delete(KEY))["status"] == "deleted"
    assert w.folder(KEY) == {}
    assert follows_current_state(w, nested) == []
    assert w.s3.list_objects_v2(Bucket=OUT, Prefix=output_folder("", nested))["KeyCount"] == 5


def test_a_version_deleted_while_validate_reads_its_header_is_skipped_not_failed(
    w: World,
) -> None:
    # Given validate stopped just before it claims the key (it has sized the object)
    created = w.put(KEY, picture(RED))
    reached, release = w.pauses.at("render", lambda op, key: (op, key) == ("claim", KEY))
    render = Run(w, created, "render")
    assert reached.wait(10)
    # When that version is deleted for good before validate reads its header
    w.s3.delete_object(Bucket=IN, Key=KEY, VersionId=created["detail"]["object"]["version-id"])
    release.set()
    # Then the execution ends skipped, not failed, and nothing was made
    assert code(render.join()) == ("skipped", "ObjectGone")
    assert w.folder(KEY) == {}
