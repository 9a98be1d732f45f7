"""Downstream events through the local cloud, as an application team's rule sees them:
one event per real change, none for a skip, each valid against docs/schemas/."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import pytest
from moto.events.models import EventsBackend

from helpers import jpeg
from imgpipe.errors import REJECTION_ERRORS
from imgpipe.local.cloud import LocalCloud

ASL = "statemachine/pipeline.asl.json"
SCHEMAS = Path(__file__).resolve().parents[2] / "docs/schemas"
SCHEMA_OF = {
    "Image Processed": "image-processed.json",
    "Image Rejected": "image-rejected.json",
    "Image Deleted": "image-deleted.json",
}


class Subscriber:
    """An SQS queue behind a rule for `source: imgpipe` on the default bus."""

    def __init__(self, cloud: LocalCloud, name: str) -> None:
        self.sqs = cloud.client("sqs")
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        events = cloud.client("events")
        events.put_rule(Name=name, EventPattern=json.dumps({"source": ["imgpipe"]}))
        events.put_targets(Rule=name, Targets=[{"Id": "app", "Arn": arn["Attributes"]["QueueArn"]}])

    def received(self, expected: int, *, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Every event delivered until `expected` arrived or the deadline passed."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while len(events) < expected and time.monotonic() < deadline:
            reply = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            for message in reply.get("Messages", []):
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            if len(events) < expected:
                time.sleep(0.05)
        return events


def assert_valid(event: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / SCHEMA_OF[event["detail-type"]]).read_text())
    jsonschema.validate(event, schema)


@pytest.fixture
def app(cloud: LocalCloud, request: pytest.FixtureRequest) -> Subscriber:
    return Subscriber(cloud, f"app-{request.node.name[:40]}".replace("[", "-").replace("]", ""))


def test_each_real_change_is_one_event_and_a_duplicate_is_none(
    cloud: LocalCloud, app: Subscriber
) -> None:
    key = "events/photo.jpg"
    # Given a photo uploaded; When it is processed
    processed = cloud.upload(key, jpeg(400, 300))
    assert processed.states_entered()[-1] == "Processed"
    (event,) = app.received(1)
    # Then one Image Processed, whose manifest is already there, names what was made
    assert event["detail-type"] == "Image Processed"
    assert event["source"] == "imgpipe"
    assert_valid(event)
    detail = event["detail"]
    assert detail["source"]["key"] == key
    assert processed.arn in event["resources"]
    manifest_object = cloud.s3.get_object(
        Bucket=detail["manifest"]["bucket"], Key=detail["manifest"]["key"]
    )
    manifest = json.loads(manifest_object["Body"].read())
    assert manifest["placeholder"] == detail["placeholder"]
    assert detail["placeholder"]["thumbhash"]
    assert [r["key"] for r in detail["renditions"]] == [r["key"] for r in manifest["renditions"]]
    # The execution output stays store's, the event's result is not mixed in
    assert processed.output is not None
    assert processed.output["status"] == "processed"
    assert "Entries" not in json.dumps(processed.output)

    # When the same S3 event is delivered again, Then nothing is announced
    duplicate = cloud.wait(cloud.start(cloud.object_created_event(key)), key)
    assert duplicate.output is not None
    assert duplicate.output["status"] == "skipped"
    assert app.received(1, timeout_s=1.0) == []

    # When the key is overwritten, Then one more Image Processed, for the new version
    overwrite = cloud.upload(key, jpeg(300, 400))
    (event,) = app.received(1)
    assert event["detail-type"] == "Image Processed"
    assert_valid(event)
    assert event["detail"]["source"]["etag"] != detail["source"]["etag"]
    assert overwrite.output is not None
    assert event["detail"]["renditions"] == overwrite.output["renditions"]

    # When it is deleted, Then one Image Deleted counting what was removed
    deleted = cloud.delete(key)
    assert deleted.states_entered()[-1] == "Forgotten"
    (event,) = app.received(1)
    assert event["detail-type"] == "Image Deleted"
    assert_valid(event)
    assert event["detail"]["source"]["key"] == key
    assert event["detail"]["removed"] == len(overwrite.output["renditions"]) + 1
    assert deleted.output is not None
    assert deleted.output["status"] == "deleted"
    assert app.received(1, timeout_s=1.0) == []


def test_a_hostile_file_is_one_image_rejected_with_its_code(
    cloud: LocalCloud, app: Subscriber
) -> None:
    # Given a web page uploaded as a JPEG
    record = cloud.upload("events/page.jpg", b"<!DOCTYPE html><html><body>hi</body></html>")
    # Then the execution output is the rejection it always was, and one event says why
    assert record.output is not None
    assert record.output == {
        "status": "rejected",
        "source": {"bucket": cloud.input_bucket, "key": "events/page.jpg"},
        "renditions": [],
        "manifest": None,
        "reason": record.output["reason"],
    }
    (event,) = app.received(1)
    assert event["detail-type"] == "Image Rejected"
    assert_valid(event)
    assert event["detail"]["reason"] == record.output["reason"]
    assert event["detail"]["reason"]["code"] == "UnsupportedFormat"
    assert event["detail"]["source"] == record.output["source"]


def test_deleting_what_was_never_rendered_announces_nothing(
    cloud: LocalCloud, app: Subscriber
) -> None:
    # Given a rejected upload (no outputs), When it is deleted
    cloud.upload("events/empty.png", b"")
    (rejected,) = app.received(1)
    assert rejected["detail"]["reason"]["code"] == "EmptyObject"
    record = cloud.delete("events/empty.png")
    # Then the deletion is skipped, and no Image Deleted is published
    assert record.output is not None
    assert record.output["status"] == "skipped"
    assert record.states_entered()[-1] == "NothingForgotten"
    assert app.received(1, timeout_s=1.0) == []


def test_the_schemas_name_every_rejection_code() -> None:
    schema = json.loads((SCHEMAS / "image-rejected.json").read_text())
    codes = schema["properties"]["detail"]["properties"]["reason"]["properties"]["code"]["enum"]
    assert set(codes) == set(REJECTION_ERRORS)
    for name in SCHEMA_OF.values():
        jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMAS / name).read_text()))


def test_an_event_eventbridge_never_takes_fails_the_execution_after_retries(
    cloud: LocalCloud, app: Subscriber
) -> None:
    # Given EventBridge refusing every entry (PutEvents answers FailedEntryCount 1)
    calls: list[int] = []

    def refuse(backend: EventsBackend, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        calls.append(len(events))
        return [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"} for _ in events]

    # When a photo is processed
    with mock.patch.object(EventsBackend, "put_events", refuse):
        record = cloud.upload("events/unheard.jpg", jpeg(200, 100))
    # Then the manifest is written, Processed publishes with backoff, and a lost event
    # fails the execution in PipelineFailed (redrive would publish it again)
    assert record.status == "FAILED"
    assert record.states_entered()[-2:] == ["Processed", "PipelineFailed"]
    assert record.error == "EventBridge.FailedEntry"
    retrier = json.loads((Path(__file__).resolve().parents[2] / ASL).read_text())["States"][
        "Processed"
    ]["Retry"][0]
    assert calls == [1] * (1 + retrier["MaxAttempts"])
    cloud.s3.head_object(Bucket=cloud.output_bucket, Key="events/unheard.jpg/manifest.json")
    assert app.received(1, timeout_s=1.0) == []


def test_a_backfill_announces_what_it_renders_and_nothing_up_to_date(
    cloud: LocalCloud, app: Subscriber
) -> None:
    # Given a photo in the bucket from before the stack (no upload event)
    key = "events-backfill/old.jpg"
    with cloud.bridge.paused():
        cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=jpeg(120, 80))

    def backfill(mode: str) -> None:
        arn = cloud.sfn.start_execution(
            stateMachineArn=cloud.backfill_state_machine_arn,
            name=str(uuid.uuid4()),
            input=json.dumps(
                {"bucket": cloud.input_bucket, "prefix": "events-backfill/", "mode": mode}
            ),
        )["executionArn"]
        assert cloud.wait(arn, key).status == "SUCCEEDED"

    # When a backfill renders it, Then consumers hear of the new renditions
    backfill("all")
    (event,) = app.received(1)
    assert event["detail-type"] == "Image Processed"
    assert_valid(event)
    assert event["detail"]["source"]["key"] == key
    # When a backfill of what is missing finds it up to date, Then nothing is published
    backfill("missing")
    assert app.received(1, timeout_s=1.0) == []
