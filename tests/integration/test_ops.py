"""`imgpipe executions` / `imgpipe trace` against real executions of the deployed ASL.

The module deploys template.yaml into moto once, runs a handful of uploads through the
pipeline (processed, rejected, failed after retries, a URL-encoded key, an upload that
is then deleted, a re-upload),
then drives the command handlers the way the main CLI does: parse the arguments with
`add_commands`, call `args.handler(args)`, read stdout/stderr. The handlers build
their own boto3 clients from the environment, which in-process moto answers.

The history parser on its own, on hand-written event lists, is tested in
tests/unit/test_history.py.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from helpers import CliRun, Imgpipe, s3_slows_down
from imgpipe.local.cloud import ExecutionRecord, LocalCloud

pytestmark = pytest.mark.xdist_group("ops")

HTML = b"<!DOCTYPE html><html><body>not a photo</body></html>"
SPACED_KEY = "enc/summer 2024+best.jpg"
GONE_KEY = "gone/bird.jpg"
# Every state of the path an upload takes when it is processed.
PROCESSED_PATH = ["WhatHappened", "Validate", "Resize", "Store", "Processed"]


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 60, 200)).save(out, "JPEG", quality=85)
    return out.getvalue()


@dataclass(frozen=True)
class Uploads:
    first_cat: ExecutionRecord
    rejected: ExecutionRecord
    failed: ExecutionRecord
    spaced: ExecutionRecord
    gone_upload: ExecutionRecord
    deleted: ExecutionRecord  # the "Object Deleted" execution of gone/bird.jpg
    cat: ExecutionRecord  # the re-upload of photos/cat.jpg, newest execution of all


@pytest.fixture(scope="module")
def uploads(cloud: LocalCloud) -> Uploads:
    first_cat = cloud.upload("photos/cat.jpg", jpeg(300, 200))
    rejected = cloud.upload("bad/page.jpg", HTML)
    failed = _upload_with_s3_slowdown(cloud, "faults/dog.jpg")
    spaced = cloud.upload(SPACED_KEY, jpeg(64, 48), url_encode_key=True)
    gone_upload = cloud.upload(GONE_KEY, jpeg(200, 100))
    deleted = cloud.delete(GONE_KEY)
    cat = cloud.upload("photos/cat.jpg", jpeg(320, 240))
    records = (first_cat, rejected, failed, spaced, gone_upload, deleted, cat)
    assert [r.status for r in records] == [
        "SUCCEEDED",
        "SUCCEEDED",
        "FAILED",
        "SUCCEEDED",
        "SUCCEEDED",
        "SUCCEEDED",
        "SUCCEEDED",
    ]
    return Uploads(first_cat, rejected, failed, spaced, gone_upload, deleted, cat)


def _upload_with_s3_slowdown(cloud: LocalCloud, key: str) -> ExecutionRecord:
    """Every PutObject of the resize function answers SlowDown, so Resize exhausts retries."""
    with s3_slows_down(cloud):
        return cloud.upload(key, jpeg(300, 200))


def _in_order(text: str, *needles: str) -> bool:
    positions = [text.find(needle) for needle in needles]
    return all(p >= 0 for p in positions) and positions == sorted(positions)


def _only(document: dict[str, Any]) -> dict[str, Any]:
    executions = document["executions"]
    assert len(executions) == 1, [e["arn"] for e in executions]
    return dict(executions[0])


# -- trace: timelines of real executions -------------------------------------------


def test_trace_of_processed_upload_shows_steps_in_order_and_the_renditions(
    cloud: LocalCloud, uploads: Uploads, imgpipe: Imgpipe
) -> None:
    # Given the newest upload of photos/cat.jpg was processed
    # When it is traced by its S3 URI, newest execution only
    run = imgpipe("trace", f"s3://{cloud.input_bucket}/photos/cat.jpg", "--latest")
    # Then the timeline walks WhatHappened -> Validate -> Resize -> Store -> Processed
    # with durations and a verdict
    assert run.code == 0, run.err
    assert _in_order(
        run.out, "WhatHappened", "Validate", "Resize", "Store", "Processed", "verdict:"
    )
    assert "processed: 6 renditions" in run.out
    assert "photos/cat.jpg/manifest.json" in run.out
    assert " ms" in run.out
    assert uploads.cat.arn.rsplit(":", 1)[1] in run.out
    assert uploads.first_cat.arn.rsplit(":", 1)[1] not in run.out


def test_trace_json_has_states_attempts_durations_and_verdict(
    cloud: LocalCloud, uploads: Uploads, imgpipe: Imgpipe
) -> None:
    run = imgpipe("trace", f"s3://{cloud.input_bucket}/photos/cat.jpg", "--latest", "--json")
    assert run.code == 0, run.err
    document = run.json()
    assert document["state_machine"] == cloud.state_machine_arn
    assert document["scanned"] >= 1
    execution = _only(document)
    assert execution["arn"] == uploads.cat.arn
    assert execution["status"] == "SUCCEEDED"
    assert execution["source"]["key"] == "photos/cat.jpg"
    states = execution["states"]
    assert [s["name"] for s in states] == PROCESSED_PATH
    for state in states:
        assert isinstance(state["duration_s"], float)
        assert state["result"] == "succeeded"
    assert [s["type"] for s in states] == [
        "Choice",
        "Task",
        "Task",
        "Task",
        "Task",
    ]
    # Processed is the task that publishes Image Processed: one attempt, no function
    (published,) = states[-1]["attempts"]
    assert published["resource"].endswith("putEvents"), published
    tasks = [s for s in states[:-1] if s["type"] == "Task"]
    assert [s["name"] for s in tasks] == ["Validate", "Resize", "Store"]
    assert [len(s["attempts"]) for s in tasks] == [1, 1, 1]
    # each task calls its function's `live` alias
    assert [s["attempts"][0]["resource"].rsplit("-", 1)[-1] for s in tasks] == [
        "validatefunction:live",
        "resizefunction:live",
        "storefunction:live",
    ]
    assert isinstance(tasks[1]["attempts"][0]["duration_s"], float)
    # Choice states invoke nothing
    assert [s["attempts"] for s in states if s["type"] == "Choice"] == [[]]
    verdict = execution["verdict"]
    assert verdict["status"] == "processed"
    assert verdict["renditions"] == 6
    assert verdict["manifest"] == f"s3://{cloud.output_bucket}/photos/cat.jpg/manifest.json"


def test_trace_of_rejected_upload_names_the_code_and_the_state(
    cloud: LocalCloud, uploads: Uploads, imgpipe: Imgpipe
) -> None:
    # Given an HTML page uploaded as .jpg
    run = imgpipe("trace", f"s3://{cloud.input_bucket}/bad/page.jpg")
    # Then the verdict says it was rejected by Validate with UnsupportedFormat
    assert run.code == 0, run.err
    verdict = next(line for line in run.out.splitlines() if "verdict:" in line)
    assert "rejected by Validate" in verdict
    assert "UnsupportedFormat" in verdict
    assert "HTML" in verdict  # the human message
    assert "caught UnsupportedFormat" in run.out
    as_json = _only(imgpipe("trace", uploads.rejected.arn, "--json").json())
    assert as_json["verdict"]["state"] == "Validate"
    assert as_json["verdict"]["code"] == "UnsupportedFormat"
    names = [s["name"] for s in as_json["states"]]
    assert names[:2] == ["WhatHappened", "Validate"]
    assert "Resize" not in names
    validate = next(s for s in as_json["states"] if s["name"] == "Validate")
    assert validate["result"] == "caught"
    assert validate["error"]["error_type"] == "UnsupportedFormat"
    assert "sniff" in validate["error"]["frame"]


def test_trace_of_failed_upload_shows_every_retry_and_the_failing_state(
    cloud: LocalCloud, uploads: Uploads, imgpipe: Imgpipe
) -> None:
    # Given an upload whose Resize hit S3 SlowDown on every attempt
    run = imgpipe("trace", f"s3://{cloud.input_bucket}/faults/dog.jpg")
    # Then the verdict blames Resize, not the PipelineFailed messenger state
    assert run.code == 0, run.err
    verdict = next(line for line in run.out.splitlines() if "verdict:" in line)
    assert "FAILED in Resize" in verdict
    assert "TransientError" in verdict
    assert "SlowDown" in verdict
    assert "after 7 attempts" in verdict
    # And every attempt and retry is listed with its error
    for number in range(1, 8):
        assert f"attempt {number}" in run.out
    assert run.out.count("retry after") == 6
    assert "storage.py" in run.out  # the last stack frame of the Lambda error
    execution = _only(imgpipe("trace", uploads.failed.arn, "--json").json())
    resize = next(s for s in execution["states"] if s["name"] == "Resize")
    assert resize["retries"] == 6
    attempts = resize["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3, 4, 5, 6, 7]
    assert {a["result"] for a in attempts} == {"failed"}
    assert {a["error"]["error"] for a in attempts} == {"TransientError"}
    assert attempts[0]["wait_before_s"] is None
    assert all(isinstance(a["wait_before_s"], float) for a in attempts[1:])
    assert [s["name"] for s in execution["states"]] == [
        "WhatHappened",
        "Validate",
        "Resize",
        "PipelineFailed",
    ]
    assert execution["failed_state"] == "Resize"
    assert execution["error"] == "TransientError"
    assert execution["error_detail"]["message"] == "S3 PutObject failed transiently: SlowDown"


def test_trace_finds_a_key_with_space_and_plus_that_the_event_url_encoded(
    cloud: LocalCloud, uploads: Uploads, imgpipe: Imgpipe
) -> None:
    # Given an upload of `enc/summer 2024+best.jpg` announced as `enc/summer+2024%2Bbest.jpg`
    # When it is traced by its literal key
    run = imgpipe("trace", f"s3://{cloud.input_bucket}/{SPACED_KEY}", "--json")
    # Then its execution is found
    assert run.code == 0, run.err
    execution = _only(run.json())
    assert execution["arn"] == uploads.spaced.arn
    assert execution["source"]["key"] == "enc/summer+2024%2Bbest.jpg"
    assert execution["resolved_key"] == SPACED_KEY
    # And other real keys that decode alike are other objects: the processed output
    # names the key the pipeline resolved, which settles it
    for other_key in ("enc/summer+2024+best.jpg", "enc/summer+2024%2Bbest.jpg"):
        other = imgpipe("trace", f"s3://{cloud.input_bucket}/{other_key}")
        assert other.code == 1
    assert "no execution for" in other.err


def test_trace_by_execution_arn(uploads: Uploads, imgpipe: Imgpipe) -> None:
    run = imgpipe("trace", uploads.first_cat.arn, "--json")
    assert run.code == 0, run.err
    document = run.json()
    assert document["state_machine"] is None  # not needed for an ARN
    assert _only(document)["arn"] == uploads.first_cat.arn


def test_trace_of_a_reuploaded_key_shows_every_execution_newest_first(
    cloud: LocalCloud, uploads: Uploads, imgpipe: Imgpipe
) -> None:
    run = imgpipe("trace", f"s3://{cloud.input_bucket}/photos/cat.jpg", "--json")
    assert [e["arn"] for e in run.json()["executions"]] == [uploads.cat.arn, uploads.first_cat.arn]
    text = imgpipe("trace", f"s3://{cloud.input_bucket}/photos/cat.jpg")
    assert "2 executions for" in text.out
    assert _in_order(
        text.out, uploads.cat.arn.rsplit(":", 1)[1], uploads.first_cat.arn.rsplit(":", 1)[1]
    )


def test_trace_of_a_deleted_upload_walks_the_forget_path(
    cloud: LocalCloud, uploads: Uploads, imgpipe: Imgpipe
) -> None:
    # Given gone/bird.jpg was processed, then deleted from the input bucket
    # When its newest execution is traced
    run = imgpipe("trace", f"s3://{cloud.input_bucket}/{GONE_KEY}", "--latest", "--json")
    assert run.code == 0, run.err
    execution = _only(run.json())
    # Then it is the deletion's, which went WhatHappened -> Forget -> IsForgotten ->
    # Forgotten only
    assert execution["arn"] == uploads.deleted.arn
    assert execution["status"] == "SUCCEEDED"
    states = execution["states"]
    assert [(s["name"], s["type"]) for s in states] == [
        ("WhatHappened", "Choice"),
        ("Forget", "Task"),
        ("IsForgotten", "Choice"),
        ("Forgotten", "Task"),
    ]
    assert {s["result"] for s in states} == {"succeeded"}
    (attempt,) = states[1]["attempts"]
    assert attempt["resource"].endswith("forgetfunction:live")
    assert attempt["result"] == "succeeded"
    assert execution["verdict"]["status"] == "deleted"
    assert execution["outcome"] == "deleted"
    # And what it removed is what the upload's execution had made, manifest first
    made = uploads.gone_upload.output
    assert made is not None
    assert made["status"] == "processed"
    output = uploads.deleted.output
    assert output is not None
    assert (output["status"], output["source"]["key"]) == ("deleted", GONE_KEY)
    assert output["removed"][0] == f"{GONE_KEY}/manifest.json"
    assert set(output["removed"]) == {r["key"] for r in made["renditions"]} | {
        f"{GONE_KEY}/manifest.json"
    }
    left = cloud.s3.list_objects_v2(Bucket=cloud.output_bucket, Prefix=f"{GONE_KEY}/")
    assert left.get("KeyCount") == 0
    # And both executions of the key are listed, the deletion first
    both = imgpipe("trace", f"s3://{cloud.input_bucket}/{GONE_KEY}", "--json").json()
    assert [e["arn"] for e in both["executions"]] == [uploads.deleted.arn, uploads.gone_upload.arn]
    assert [e["states"][0]["name"] for e in both["executions"]] == ["WhatHappened"] * 2
    assert [s["name"] for s in both["executions"][1]["states"]] == PROCESSED_PATH


def test_trace_clips_payloads_unless_full(uploads: Uploads, imgpipe: Imgpipe) -> None:
    clipped = _only(imgpipe("trace", uploads.cat.arn, "--json").json())
    full = _only(imgpipe("trace", uploads.cat.arn, "--json", "--full").json())
    store_at = PROCESSED_PATH.index("Store")
    assert [s["name"] for s in clipped["states"]] == PROCESSED_PATH
    assert [s["name"] for s in full["states"]] == PROCESSED_PATH
    store_out = clipped["states"][store_at]["attempts"][0]["response"]
    assert len(store_out) < 340
    assert store_out.endswith("chars)")
    full_out = json.loads(full["states"][store_at]["attempts"][0]["response"])
    assert full_out["status"] == "processed"
    text = imgpipe("trace", uploads.cat.arn).out
    full_text = imgpipe("trace", uploads.cat.arn, "--full").out
    assert "chars)" in text
    assert "state input" in full_text
    assert len(full_text) > len(text)


def test_trace_scan_bound_is_respected(
    cloud: LocalCloud, uploads: Uploads, imgpipe: Imgpipe
) -> None:
    # The first upload is the oldest execution: the 2 newest do not include it
    run = imgpipe("trace", f"s3://{cloud.input_bucket}/bad/page.jpg", "--scan", "2")
    assert run.code == 1
    assert "among the 2 most recent" in run.err


# -- executions --------------------------------------------------------------------


def test_executions_lists_uploads_with_status_and_outcome(
    cloud: LocalCloud, uploads: Uploads, imgpipe: Imgpipe
) -> None:
    run = imgpipe("executions", "--json")
    assert run.code == 0, run.err
    rows = {row["arn"]: row for row in run.json()["executions"]}
    assert set(rows) >= {
        uploads.first_cat.arn,
        uploads.rejected.arn,
        uploads.failed.arn,
        uploads.spaced.arn,
        uploads.gone_upload.arn,
        uploads.deleted.arn,
        uploads.cat.arn,
    }
    cat = rows[uploads.cat.arn]
    assert (cat["status"], cat["outcome"]) == ("SUCCEEDED", "processed")
    assert cat["source"] == {
        "bucket": cloud.input_bucket,
        "key": "photos/cat.jpg",
        "version_id": cat["source"]["version_id"],
        "size": cat["source"]["size"],
    }
    assert isinstance(cat["duration_s"], float)
    rejected = rows[uploads.rejected.arn]
    assert (rejected["outcome"], rejected["reason_code"]) == ("rejected", "UnsupportedFormat")
    deleted = rows[uploads.deleted.arn]
    assert (deleted["status"], deleted["outcome"]) == ("SUCCEEDED", "deleted")
    assert deleted["source"]["key"] == GONE_KEY
    assert deleted["failed_state"] is None
    failed = rows[uploads.failed.arn]
    assert (failed["status"], failed["failed_state"], failed["error"]) == (
        "FAILED",
        "Resize",
        "TransientError",
    )
    started = [row["started_at"] for row in run.json()["executions"]]
    assert started == sorted(started, reverse=True)


def test_executions_table_and_filters(
    cloud: LocalCloud, uploads: Uploads, imgpipe: Imgpipe
) -> None:
    table = imgpipe("executions")
    assert table.code == 0, table.err
    for text in (
        "photos/cat.jpg",
        "SUCCEEDED",
        "FAILED",
        "processed · 6 renditions",
        "rejected · UnsupportedFormat",
        "Resize: TransientError",
    ):
        assert text in table.out
    failed_only = imgpipe("executions", "--status", "failed", "--json").json()["executions"]
    assert [row["arn"] for row in failed_only] == [uploads.failed.arn]
    newest = imgpipe("executions", "--limit", "1", "--json").json()["executions"]
    assert [row["arn"] for row in newest] == [uploads.cat.arn]


# -- finding the state machine -----------------------------------------------------


def test_state_machine_by_arn_and_by_stack_output(
    cloud: LocalCloud, uploads: Uploads, imgpipe: Imgpipe
) -> None:
    by_arn = imgpipe("executions", "--state-machine", cloud.state_machine_arn, "--json")
    assert by_arn.json()["state_machine"] == cloud.state_machine_arn
    # A stack whose StateMachineArn output names the pipeline (as template.yaml's does)
    template = {
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"StateMachineArn": {"Value": cloud.state_machine_arn}},
    }
    stacks = boto3.client("cloudformation")
    stacks.create_stack(StackName="imgpipe-ops-test", TemplateBody=json.dumps(template))
    try:
        by_stack = imgpipe("executions", "--stack", "imgpipe-ops-test", "--json")
        assert by_stack.code == 0, by_stack.err
        assert by_stack.json()["state_machine"] == cloud.state_machine_arn
    finally:
        stacks.delete_stack(StackName="imgpipe-ops-test")
    missing = imgpipe("executions", "--stack", "no-such-stack")
    assert missing.code == 1
    assert "no CloudFormation stack named no-such-stack" in missing.err


def test_several_matching_state_machines_is_an_error(
    cloud: LocalCloud, uploads: Uploads, imgpipe: Imgpipe
) -> None:
    # Given a second state machine whose name also contains ImagePipeline
    other = cloud.sfn.create_state_machine(
        name="other-ImagePipeline-x",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/unused",
    )["stateMachineArn"]
    try:
        # When the machine is to be discovered by name
        run = imgpipe("executions")
        # Then the command refuses to guess, and --state-machine settles it
        assert run.code == 1
        assert "other-ImagePipeline-x" in run.err
        assert "imgpipe-local-imagepipeline" in run.err
        assert "--state-machine" in run.err
        chosen = imgpipe("executions", "--state-machine", cloud.state_machine_arn, "--json")
        assert chosen.code == 0, chosen.err
    finally:
        cloud.sfn.delete_state_machine(stateMachineArn=other)
    assert imgpipe("executions", "--json").code == 0


# -- errors ------------------------------------------------------------------------


def _one_line_error(run: CliRun) -> str:
    assert run.code != 0
    assert run.out == ""
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert "Traceback" not in run.err
    return lines[0]


def test_unknown_execution_arn_fails_with_one_line(cloud: LocalCloud, imgpipe: Imgpipe) -> None:
    arn = cloud.state_machine_arn.replace(":stateMachine:", ":execution:") + ":no-such-run"
    line = _one_line_error(imgpipe("trace", arn))
    assert line == f"imgpipe trace: no such execution: {arn}"


def test_target_that_is_neither_uri_nor_arn_fails_with_one_line(imgpipe: Imgpipe) -> None:
    line = _one_line_error(imgpipe("trace", "photos/cat.jpg"))
    assert "expected s3://bucket/key or an execution ARN" in line


def test_unreachable_endpoint_fails_with_one_line(cloud: LocalCloud, imgpipe: Imgpipe) -> None:
    # Port 9 (discard) on loopback refuses connections at once.
    line = _one_line_error(imgpipe("executions", "--endpoint-url", "http://127.0.0.1:9"))
    assert "cannot reach http://127.0.0.1:9" in line


def test_missing_credentials_fail_with_one_line(
    cloud: LocalCloud, imgpipe: Imgpipe, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    line = _one_line_error(imgpipe("executions"))
    assert "no AWS credentials" in line
    unknown_profile = _one_line_error(imgpipe("executions", "--profile", "nobody"))
    assert "nobody" in unknown_profile
