"""`imgpipe audit` against outputs the deployed pipeline really made.

template.yaml is deployed into moto once; some uploads run through the pipeline
(S3 -> EventBridge -> Step Functions), others are put, replaced or deleted while the
bridge delivers nothing, and a few outputs are then edited in the output bucket by
hand, so every kind of finding exists at once under `audit/`. `clean/` holds only a
rendered photo and a rejected file. The command is driven the way the main CLI drives
it (`add_commands`, `args.handler(args)`).

The >1000-object listing runs on plain moto S3 with a hand-made `Deployment`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from helpers import CliRun, Imgpipe, jpeg
from imgpipe.config import OutputLocation, validate_config
from imgpipe.local.cloud import REGION, LocalCloud
from imgpipe.ops import audit
from imgpipe.ops.aws import AwsOptions, connect
from imgpipe.ops.deployment import Deployment
from imgpipe.storage import ObjectStore

pytestmark = pytest.mark.xdist_group("audit")

HTML = b"<!DOCTYPE html><html><body>not a photo</body></html>"
REPORT_KEYS = {
    "bucket",
    "prefix",
    "requested_prefix",
    "deployment",
    "counts",
    "needs_attention",
    "sources",
    "orphans",
}
SOURCE_KEYS = {
    "key",
    "status",
    "size",
    "etag",
    "version_id",
    "manifest",
    "detail",
    "reason",
    "renditions",
    "made_from",
    "made_with",
}


def truncated_jpeg() -> bytes:
    # Cut inside the header: validate itself refuses it, before anything is decoded.
    return jpeg(300, 200)[:200]


@dataclass(frozen=True)
class Scene:
    fingerprint: str
    # The output key of the rendition deleted from audit/broken.jpg, and the one
    # rewritten with other bytes.
    deleted_rendition: str
    resized_rendition: str
    resized_expected: int


def _manifest(cloud: LocalCloud, key: str) -> dict[str, Any]:
    body = cloud.s3.get_object(Bucket=cloud.output_bucket, Key=f"{key}/manifest.json")["Body"]
    document: dict[str, Any] = json.loads(body.read())
    return document


def _put_manifest(cloud: LocalCloud, key: str, document: dict[str, Any]) -> None:
    cloud.s3.put_object(
        Bucket=cloud.output_bucket,
        Key=f"{key}/manifest.json",
        Body=json.dumps(document).encode(),
        ContentType="application/json",
    )


def _processed(cloud: LocalCloud, key: str, body: bytes) -> None:
    record = cloud.upload(key, body)
    assert record.status == "SUCCEEDED", record
    assert (record.output or {}).get("status") == "processed", record.output


@pytest.fixture(scope="module")
def scene(cloud: LocalCloud) -> Scene:
    s3 = cloud.s3
    for key in (
        "audit/cat.jpg",
        "audit/replaced.jpg",
        "audit/old-settings.jpg",
        "audit/no-fingerprint.jpg",
        "audit/broken.jpg",
        "audit/gone.jpg",
        "audit/half.jpg",
        "clean/cat.jpg",
    ):
        _processed(cloud, key, jpeg(320, 240))
    assert cloud.upload("clean/page.jpg", HTML).output["status"] == "rejected"  # type: ignore[index]

    fingerprint = str(_manifest(cloud, "audit/cat.jpg")["settings"]["fingerprint"])
    with cloud.bridge.paused():
        # No event reaches the pipeline for any of these.
        s3.put_object(Bucket=cloud.input_bucket, Key="audit/quiet.jpg", Body=jpeg(64, 48))
        s3.put_object(Bucket=cloud.input_bucket, Key="audit/truncated.jpg", Body=truncated_jpeg())
        s3.put_object(Bucket=cloud.input_bucket, Key="audit/page.jpg", Body=HTML)
        s3.put_object(Bucket=cloud.input_bucket, Key="audit/replaced.jpg", Body=jpeg(90, 60))
        s3.delete_object(Bucket=cloud.input_bucket, Key="audit/gone.jpg")
        # A console "folder": not an upload.
        s3.put_object(Bucket=cloud.input_bucket, Key="audit/", Body=b"")

    old = _manifest(cloud, "audit/old-settings.jpg")
    old["settings"]["fingerprint"] = "sha256:0000000000000000"
    _put_manifest(cloud, "audit/old-settings.jpg", old)
    unmarked = _manifest(cloud, "audit/no-fingerprint.jpg")
    del unmarked["settings"]
    _put_manifest(cloud, "audit/no-fingerprint.jpg", unmarked)

    sizes = {r["key"]: r["bytes"] for r in _manifest(cloud, "audit/broken.jpg")["renditions"]}
    deleted, resized = sorted(sizes)[:2]
    s3.delete_object(Bucket=cloud.output_bucket, Key=deleted)
    s3.put_object(Bucket=cloud.output_bucket, Key=resized, Body=b"not the rendition")
    s3.delete_object(Bucket=cloud.output_bucket, Key="audit/half.jpg/manifest.json")

    # What a backfill's Map Run leaves in the output bucket: not outputs of a source.
    results = "imgpipe-backfill/0f1e2d3c-map-run"
    s3.put_object(
        Bucket=cloud.output_bucket,
        Key=f"{results}/manifest.json",
        Body=json.dumps(
            {
                "DestinationBucket": cloud.output_bucket,
                "MapRunArn": "arn:aws:states:us-east-1:123456789012:mapRun:x/y:z",
                "ResultFiles": {"SUCCEEDED": [{"Key": f"{results}/SUCCEEDED_0.json"}]},
            }
        ).encode(),
    )
    s3.put_object(Bucket=cloud.output_bucket, Key=f"{results}/SUCCEEDED_0.json", Body=b"[]")
    return Scene(fingerprint, deleted, resized, int(sizes[resized]))


def _audit(imgpipe: Imgpipe, cloud: LocalCloud, uri: str, *extra: str) -> CliRun:
    return imgpipe("audit", uri, "--state-machine", cloud.state_machine_arn, *extra)


def _by_key(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {source["key"]: source for source in document["sources"]}


# -- every finding, from the JSON report ---------------------------------------------


@pytest.fixture(scope="module")
def report(cloud: LocalCloud, scene: Scene) -> dict[str, Any]:
    """The report of audit/, made once through the public functions the command calls."""
    # Module-scoped, so set up before the per-test AWS environment: name the region.
    clients = connect(AwsOptions(region=REGION))
    deployment = Deployment.of(clients, cloud.state_machine_arn)
    return audit.audit(ObjectStore(cloud.s3), deployment, cloud.input_bucket, "audit/").to_dict()


def test_rendered_photo_is_up_to_date(report: dict[str, Any], scene: Scene) -> None:
    cat = _by_key(report)["audit/cat.jpg"]
    assert cat["status"] == "up_to_date"
    assert cat["manifest"] == "audit/cat.jpg/manifest.json"
    assert cat["made_with"] == scene.fingerprint
    assert cat["renditions"] == []
    assert cat["version_id"]


def test_photo_put_without_event_is_missing(report: dict[str, Any]) -> None:
    quiet = _by_key(report)["audit/quiet.jpg"]
    assert quiet["status"] == "missing"
    assert quiet["manifest"] is None
    assert quiet["reason"] is None


def test_hostile_files_without_outputs_are_rejected_with_validates_code(
    report: dict[str, Any],
) -> None:
    sources = _by_key(report)
    assert sources["audit/truncated.jpg"]["status"] == "rejected"
    assert sources["audit/truncated.jpg"]["reason"]["code"] == "CorruptImage"
    assert "truncated" in sources["audit/truncated.jpg"]["reason"]["message"]
    assert sources["audit/page.jpg"]["status"] == "rejected"
    assert sources["audit/page.jpg"]["reason"]["code"] == "UnsupportedFormat"
    assert "HTML" in sources["audit/page.jpg"]["reason"]["message"]


def test_source_replaced_without_rendering_is_stale(report: dict[str, Any]) -> None:
    replaced = _by_key(report)["audit/replaced.jpg"]
    assert replaced["status"] == "stale"
    assert replaced["made_from"]["version_id"] != replaced["version_id"]
    assert replaced["made_from"]["version_id"] in replaced["detail"]
    assert replaced["version_id"] in replaced["detail"]


def test_manifest_with_other_or_no_fingerprint_is_outdated(
    report: dict[str, Any], scene: Scene
) -> None:
    sources = _by_key(report)
    old = sources["audit/old-settings.jpg"]
    assert old["status"] == "outdated"
    assert old["made_with"] == "sha256:0000000000000000"
    assert scene.fingerprint in old["detail"]
    unmarked = sources["audit/no-fingerprint.jpg"]
    assert unmarked["status"] == "outdated"
    assert unmarked["made_with"] is None
    assert "no settings fingerprint" in unmarked["detail"]


def test_deleted_or_rewritten_rendition_makes_it_incomplete(
    report: dict[str, Any], scene: Scene
) -> None:
    broken = _by_key(report)["audit/broken.jpg"]
    assert broken["status"] == "incomplete"
    assert broken["detail"] == (
        f"{scene.deleted_rendition.rpartition('/')[2]} absent; "
        f"{scene.resized_rendition.rpartition('/')[2]} 17 bytes, not {scene.resized_expected}"
    )
    problems = {p["key"]: p for p in broken["renditions"]}
    assert set(problems) == {scene.deleted_rendition, scene.resized_rendition}
    assert problems[scene.deleted_rendition]["found_bytes"] is None
    assert problems[scene.resized_rendition] == {
        "key": scene.resized_rendition,
        "expected_bytes": scene.resized_expected,
        "found_bytes": len(b"not the rendition"),
    }


def test_deleted_source_leaves_an_orphan_and_a_manifestless_folder_is_one(
    report: dict[str, Any],
) -> None:
    orphans = {o["folder"]: o for o in report["orphans"]}
    assert set(orphans) == {"audit/gone.jpg/", "audit/half.jpg/"}
    gone = orphans["audit/gone.jpg/"]
    assert gone["reason"] == "source_gone"
    assert gone["source_key"] == "audit/gone.jpg"
    assert "audit/gone.jpg/manifest.json" in gone["keys"]
    assert len(gone["keys"]) == 7  # 3 sizes x 2 formats + the manifest
    half = orphans["audit/half.jpg/"]
    assert half["reason"] == "no_manifest"
    assert len(half["keys"]) == 6
    # Its source is still there and owes a manifest.
    assert _by_key(report)["audit/half.jpg"]["status"] == "missing"
    assert "audit/gone.jpg" not in _by_key(report)


def test_counts_and_shape_of_the_report(
    report: dict[str, Any], cloud: LocalCloud, scene: Scene
) -> None:
    assert set(report) == REPORT_KEYS
    assert report["counts"] == {
        "sources": 9,
        "up_to_date": 1,
        "missing": 2,
        "stale": 1,
        "outdated": 2,
        "incomplete": 1,
        "rejected": 2,
        "orphans": 2,
    }
    assert report["needs_attention"] is True
    assert all(set(source) == SOURCE_KEYS for source in report["sources"])
    # The console folder marker is not a source.
    assert "audit/" not in _by_key(report)
    assert [s["key"] for s in report["sources"]] == sorted(s["key"] for s in report["sources"])
    deployment = report["deployment"]
    assert deployment["input_bucket"] == cloud.input_bucket
    assert deployment["output"] == {"bucket": cloud.output_bucket, "prefix": ""}
    assert deployment["fingerprint"] == scene.fingerprint
    assert deployment["resize_function"].endswith("resizefunction:live")
    assert deployment["limits"]["decode_memory_mb"] == 1024


def test_audit_sources_yields_the_reports_findings_for_a_dry_run(
    cloud: LocalCloud, scene: Scene, report: dict[str, Any]
) -> None:
    # Given the classification another command (backfill --dry-run) calls on its own
    deployment = Deployment.of(connect(AwsOptions(region=REGION)), cloud.state_machine_arn)
    findings = list(
        audit.audit_sources(ObjectStore(cloud.s3), deployment, cloud.input_bucket, "audit/")
    )
    # Then it gives the same findings, and which of them a render would change
    assert [f.to_dict() for f in findings] == report["sources"]
    assert sorted(f.key for f in findings if f.needs_render) == [
        "audit/broken.jpg",
        "audit/half.jpg",
        "audit/no-fingerprint.jpg",
        "audit/old-settings.jpg",
        "audit/quiet.jpg",
        "audit/replaced.jpg",
    ]


# -- the command -----------------------------------------------------------------------


def test_cli_json_matches_the_report_and_exits_3(
    cloud: LocalCloud, scene: Scene, report: dict[str, Any], imgpipe: Imgpipe
) -> None:
    # Given the audit/ prefix with every kind of finding
    # When it is audited from the command line with --json
    run = _audit(imgpipe, cloud, f"s3://{cloud.input_bucket}/audit/", "--json")
    # Then it prints the whole report and exits 3
    assert run.code == 3, run.err
    document = run.json()
    assert document["counts"] == report["counts"]
    assert _by_key(document) == _by_key(report)
    assert document["orphans"] == report["orphans"]


def test_cli_text_shows_counts_and_keys_within_80_columns(
    cloud: LocalCloud, scene: Scene, imgpipe: Imgpipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    run = _audit(imgpipe, cloud, f"s3://{cloud.input_bucket}/audit/", "--show", "1")
    assert run.code == 3, run.err
    lines = run.out.splitlines()
    assert max(len(line) for line in lines) <= 80
    text = run.out
    for label, count in (
        ("up to date", 1),
        ("missing", 2),
        ("stale", 1),
        ("outdated", 2),
        ("incomplete", 1),
        ("rejected", 2),
        ("orphans", 2),
    ):
        assert any(label in line and f" {count} " in line for line in lines), label
    assert "audit/replaced.jpg" in text
    assert "audit/broken.jpg" in text
    assert "CorruptImage" in text or "UnsupportedFormat" in text
    # --show 1: the second missing key is summarised, not listed.
    assert "and 1 more" in text
    assert "needs attention: 6 sources to render, 2 orphan folders to remove" in text


def test_only_up_to_date_and_rejected_exits_0(
    cloud: LocalCloud, scene: Scene, imgpipe: Imgpipe
) -> None:
    # Given clean/ holds a rendered photo and a rejected upload
    run = _audit(imgpipe, cloud, f"s3://{cloud.input_bucket}/clean/", "--json")
    # Then nothing needs attention
    assert run.code == 0, run.err
    document = run.json()
    assert document["counts"]["up_to_date"] == 1
    assert document["counts"]["rejected"] == 1
    assert document["counts"]["sources"] == 2
    assert document["needs_attention"] is False
    assert _by_key(document)["clean/page.jpg"]["reason"]["code"] == "UnsupportedFormat"
    text = _audit(imgpipe, cloud, f"s3://{cloud.input_bucket}/clean/")
    assert text.code == 0
    assert "nothing needs attention" in text.out


def test_backfill_results_in_the_output_bucket_are_not_orphans(
    cloud: LocalCloud, scene: Scene, imgpipe: Imgpipe
) -> None:
    # Given the whole bucket is audited, and the output bucket holds a Map Run's results
    run = _audit(imgpipe, cloud, f"s3://{cloud.input_bucket}", "--json")
    assert run.code == 3, run.err
    folders = {orphan["folder"] for orphan in run.json()["orphans"]}
    # Then only the real orphans are reported
    assert folders == {"audit/gone.jpg/", "audit/half.jpg/"}


def test_backfill_state_machine_gives_the_same_deployment(
    cloud: LocalCloud, scene: Scene, imgpipe: Imgpipe
) -> None:
    run = imgpipe(
        "audit",
        f"s3://{cloud.input_bucket}/clean/",
        "--state-machine",
        cloud.backfill_state_machine_arn,
        "--json",
    )
    assert run.code == 0, run.err
    deployment = run.json()["deployment"]
    assert deployment["fingerprint"] == scene.fingerprint
    assert deployment["output"]["bucket"] == cloud.output_bucket
    assert deployment["validate_function"].endswith("validatefunction:live")


def test_another_bucket_is_an_error_naming_the_input_bucket(
    cloud: LocalCloud, imgpipe: Imgpipe
) -> None:
    run = _audit(imgpipe, cloud, f"s3://{cloud.output_bucket}/audit/")
    assert run.code == 1
    assert run.out == ""
    assert f"s3://{cloud.output_bucket} is not the input bucket" in run.err
    assert cloud.input_bucket in run.err


def test_a_machine_without_imgpipe_tasks_is_an_error(cloud: LocalCloud, imgpipe: Imgpipe) -> None:
    sfn = cloud.sfn
    arn = sfn.create_state_machine(
        name="not-imgpipe",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/whatever",
    )["stateMachineArn"]
    try:
        run = imgpipe("audit", f"s3://{cloud.input_bucket}/", "--state-machine", arn)
    finally:
        sfn.delete_state_machine(stateMachineArn=arn)
    assert run.code == 1
    assert "has no Resize task" in run.err


# -- more than one ListObjectsV2 page, on plain moto S3 -------------------------------

INPUT = "audit-input"
OUTPUT = "audit-output"
MANY = 1105


@pytest.fixture
def many() -> Iterator[Any]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=INPUT)
        s3.create_bucket(Bucket=OUTPUT)
        yield s3


def test_more_than_a_page_of_sources_and_outputs_are_all_counted(many: Any) -> None:
    # Given 1105 sources (0-byte: rejected from the HEAD alone) and 1105 folders of
    # sources that are gone, each side more than one ListObjectsV2 page
    for index in range(MANY):
        many.put_object(Bucket=INPUT, Key=f"bulk/{index:05}.jpg", Body=b"")
        many.put_object(Bucket=OUTPUT, Key=f"bulk/gone-{index:05}.jpg/thumb.webp", Body=b"w")
    deployment = Deployment(
        state_machine="arn:aws:states:us-east-1:123456789012:stateMachine:test",
        input_bucket=INPUT,
        input_prefix="",
        output=OutputLocation(OUTPUT, ""),
        fingerprint="sha256:1234",
        validate=validate_config(
            {"STATE_TABLE": "t", "INPUT_BUCKET": INPUT, "OUTPUT_BUCKET": OUTPUT}
        ),
        resize_function="",
        validate_function="",
    )
    seen: list[int] = []
    # When the prefix is audited
    report = audit.audit(ObjectStore(many), deployment, INPUT, "bulk/", progress=seen.append)
    # Then every source and every orphan is in the report
    counts = report.counts()
    assert counts["sources"] == MANY
    assert counts["rejected"] == MANY
    assert counts["orphans"] == MANY
    assert {f.reason["code"] for f in report.sources if f.reason} == {"EmptyObject"}
    assert len(seen) == MANY
    assert report.orphans[-1].source_key == f"bulk/gone-{MANY - 1:05}.jpg"
