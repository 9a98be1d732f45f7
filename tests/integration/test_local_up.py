"""`imgpipe local up`: a long-running endpoint that plain AWS clients can use."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from helpers import jpeg, local_up

pytestmark = pytest.mark.xdist_group("local-up")


def test_plain_boto3_upload_to_the_running_endpoint_is_processed(tmp_path: Path) -> None:
    with local_up(tmp_path, "--follow-events") as served:
        facts, deadline = served.facts, served.deadline
        # Given only the endpoint, and an application's queue subscribed to the
        # pipeline's events on the default bus
        session = boto3.Session(
            region_name=facts["region"],
            aws_access_key_id="anything",
            aws_secret_access_key="anything",
        )
        s3 = session.client("s3", endpoint_url=facts["endpoint_url"])
        sqs = session.client("sqs", endpoint_url=facts["endpoint_url"])
        events = session.client("events", endpoint_url=facts["endpoint_url"])
        queue = sqs.create_queue(QueueName="app")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        events.put_rule(Name="app", EventPattern=json.dumps({"source": ["imgpipe"]}))
        events.put_targets(
            Rule="app", Targets=[{"Id": "q", "Arn": queue_arn["Attributes"]["QueueArn"]}]
        )
        # When a plain boto3 client uploads a photo
        s3.put_object(Bucket=facts["input_bucket"], Key="boto/cat.jpg", Body=jpeg(900, 600))
        # Then its manifest and renditions appear in the output bucket
        manifest = None
        while manifest is None:
            assert time.monotonic() < deadline, "no manifest appeared"
            try:
                body = s3.get_object(
                    Bucket=facts["output_bucket"], Key="boto/cat.jpg/manifest.json"
                )
                manifest = json.loads(body["Body"].read())
            except s3.exceptions.NoSuchKey:
                time.sleep(0.2)
        sizes = {}
        for rendition in manifest["renditions"]:
            data = s3.get_object(Bucket=facts["output_bucket"], Key=rendition["key"])["Body"].read()
            sizes[rendition["key"]] = Image.open(io.BytesIO(data)).size
        assert sizes["boto/cat.jpg/thumb.webp"] == (320, 213)
        assert sizes["boto/cat.jpg/large.jpg"] == (900, 600)
        # And the application hears of it once, through EventBridge
        received: list[dict[str, Any]] = []
        while not received:
            assert time.monotonic() < deadline, "no Image Processed arrived"
            reply = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
            received += [json.loads(m["Body"]) for m in reply.get("Messages", [])]
            time.sleep(0.1)
        (event,) = received
        assert event["detail-type"] == "Image Processed"
        assert event["detail"]["manifest"]["key"] == "boto/cat.jpg/manifest.json"
    assert "boto/cat.jpg" in served.output
    # --follow-events printed the event as the application received it
    assert "Image Processed  boto/cat.jpg" in served.output
