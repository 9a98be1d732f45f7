"""`imgpipe backfill` against template.yaml deployed on the local cloud, driven as an
operator would: objects put straight into the input bucket (no events), some rendered
beforehand, then the backfill machine run over one prefix (docs/backfill.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from helpers import CliRun, Imgpipe, jpeg
from imgpipe.local.cloud import LocalCloud

pytestmark = pytest.mark.xdist_group("backfill-cli")

PHOTOS = [f"bf/photo-{n}.jpg" for n in range(6)]
RENDERED = PHOTOS[:4]
HOSTILE = {
    "bf/truncated.jpg": jpeg(300, 200)[:200],
    "bf/page.jpg": b"<!DOCTYPE html><html><body>not a photo</body></html>",
    "bf/empty.jpg": b"",
}
OTHER = ["other/photo-a.jpg", "other/photo-b.jpg"]


@dataclass(frozen=True)
class Bucket:
    cloud: LocalCloud

    def outputs(self) -> dict[str, tuple[str, Any]]:
        """Every object in the output bucket but backfill results, with ETag and time."""
        found: dict[str, tuple[str, Any]] = {}
        pages = self.cloud.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.cloud.output_bucket
        )
        for page in pages:
            for item in page.get("Contents", []):
                if not item["Key"].startswith("imgpipe-backfill/"):
                    found[item["Key"]] = (item["ETag"], item["LastModified"])
        return found

    def manifest(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.cloud.s3.get_object(
                Bucket=self.cloud.output_bucket, Key=f"{key}/manifest.json"
            )["Body"]
        except self.cloud.s3.exceptions.NoSuchKey:
            return None
        document: dict[str, Any] = json.loads(body.read())
        return document

    def current(self, key: str) -> tuple[str | None, str]:
        head = self.cloud.s3.head_object(Bucket=self.cloud.input_bucket, Key=key)
        return head.get("VersionId"), head["ETag"].strip('"')


@pytest.fixture(scope="module")
def bucket(cloud: LocalCloud) -> Bucket:
    for n, key in enumerate(RENDERED):
        record = cloud.upload(key, jpeg(200 + n, 150))
        assert (record.output or {}).get("status") == "processed", record
    with cloud.bridge.paused():
        # What was there before the stack, or changed while nothing listened.
        for n, key in enumerate(PHOTOS[len(RENDERED) :]):
            cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=jpeg(120, 90 + n))
        for key, body in HOSTILE.items():
            cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=body)
        for key in OTHER:
            cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=jpeg(80, 60))
    return Bucket(cloud)


def backfill(imgpipe: Imgpipe, cloud: LocalCloud, uri: str, *extra: str) -> CliRun:
    return imgpipe("backfill", uri, "--state-machine", cloud.backfill_state_machine_arn, *extra)


def test_dry_run_says_what_would_be_rendered_and_starts_nothing(
    imgpipe: Imgpipe, cloud: LocalCloud, bucket: Bucket
) -> None:
    before = cloud.sfn.list_executions(stateMachineArn=cloud.backfill_state_machine_arn)
    run = backfill(imgpipe, cloud, f"s3://{cloud.input_bucket}/bf/", "--dry-run", "--json")
    assert run.code == 0, run.err
    assert run.json() == {
        "mode": "missing",
        "would_render": 2,
        "would_render_by_status": {"missing": 2},
        "up_to_date": 4,
        "would_be_rejected": 3,
        "rejected_by_code": {"CorruptImage": 1, "UnsupportedFormat": 1, "EmptyObject": 1},
    }
    after = cloud.sfn.list_executions(stateMachineArn=cloud.backfill_state_machine_arn)
    assert len(after["executions"]) == len(before["executions"])
    table = backfill(imgpipe, cloud, f"s3://{cloud.input_bucket}/bf/", "--dry-run", "--all")
    assert table.code == 0
    assert "render" in table.out
    assert "6" in table.out


def test_backfill_renders_what_is_missing_and_nothing_else(
    imgpipe: Imgpipe, cloud: LocalCloud, bucket: Bucket
) -> None:
    # Given four photos rendered beforehand
    before = bucket.outputs()
    rendered_before = {k: v for k, v in before.items() if k.startswith(tuple(RENDERED))}
    # When the prefix is backfilled and waited for
    run = backfill(imgpipe, cloud, f"s3://{cloud.input_bucket}/bf/", "--wait", "--json")
    # Then it succeeds, with every object's outcome counted
    assert run.code == 0, run.err
    summary = run.json()
    assert summary["status"] == "SUCCEEDED"
    assert summary["read_from"] == "result files"
    assert summary["outcomes"] == {
        "processed": 2,
        "up to date": 4,
        "skipped": 0,
        "rejected": 3,
        "failed": 0,
    }
    assert summary["reasons"]["rejected"] == {
        "CorruptImage": 1,
        "UnsupportedFormat": 1,
        "EmptyObject": 1,
    }
    # And every photo under the prefix has a manifest for its current version
    for key in PHOTOS:
        manifest = bucket.manifest(key)
        assert manifest is not None, key
        made_from = manifest["source"]
        assert (made_from["version_id"], made_from["etag"]) == bucket.current(key), key
        assert {r["format"] for r in manifest["renditions"]} == {"WEBP", "JPEG"}
    after = bucket.outputs()
    # The four rendered before are untouched, the hostile files and the other prefix
    # have no outputs
    assert {k: after[k] for k in rendered_before} == rendered_before
    assert not [k for k in after if k.startswith(tuple(HOSTILE))]
    assert not [k for k in after if k.startswith("other/")]

    # When it runs again, it writes nothing
    again = backfill(imgpipe, cloud, f"s3://{cloud.input_bucket}/bf/", "--wait", "--json")
    assert again.code == 0, again.err
    assert again.json()["outcomes"]["processed"] == 0
    assert again.json()["outcomes"]["up to date"] == 6
    assert bucket.outputs() == after


def test_all_renders_every_photo_and_the_table_names_the_outcomes(
    imgpipe: Imgpipe, cloud: LocalCloud, bucket: Bucket
) -> None:
    # Given photos under other/ that are not rendered; When --all backfills them
    run = backfill(imgpipe, cloud, f"s3://{cloud.input_bucket}/other/", "--wait", "--all")
    # Then the table says the run succeeded and both were processed
    assert run.code == 0, run.err
    cells = " ".join(run.out.replace("│", " ").replace("┃", " ").split())
    assert "SUCCEEDED" in cells
    assert f"processed {len(OTHER)}" in cells
    assert "failed 0" in cells
    for key in OTHER:
        assert bucket.manifest(key) is not None, key


def test_without_wait_it_prints_the_execution_and_how_to_follow_it(
    imgpipe: Imgpipe, cloud: LocalCloud, bucket: Bucket
) -> None:
    run = backfill(imgpipe, cloud, f"s3://{cloud.input_bucket}/other/")
    assert run.code == 0, run.err
    (arn,) = [w for w in run.out.split() if w.startswith("arn:aws:states:")][:1]
    assert ":execution:" in arn
    assert "list-map-runs" in run.out
    assert cloud.wait(arn, "other/").status == "SUCCEEDED"


def test_an_empty_prefix_starts_nothing(
    imgpipe: Imgpipe, cloud: LocalCloud, bucket: Bucket
) -> None:
    run = backfill(imgpipe, cloud, f"s3://{cloud.input_bucket}/nothing-here/", "--wait")
    assert run.code == 0, run.err
    assert "no backfill started" in run.out


def test_another_bucket_is_refused_with_a_reason(
    imgpipe: Imgpipe, cloud: LocalCloud, bucket: Bucket
) -> None:
    run = backfill(imgpipe, cloud, f"s3://{cloud.output_bucket}/bf/", "--wait")
    assert run.code == 1
    assert "input bucket" in run.err
