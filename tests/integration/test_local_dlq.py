"""Events the rule cannot deliver end in the target's dead-letter queue."""

from __future__ import annotations

import json

import pytest

from helpers import jpeg
from imgpipe.local.cloud import LocalCloud

pytestmark = pytest.mark.xdist_group("local-dlq")


def test_event_that_cannot_start_an_execution_goes_to_the_dead_letter_queue() -> None:
    with LocalCloud.running() as cloud:
        # Given a state machine that no longer exists behind the rule
        cloud.sfn.delete_state_machine(stateMachineArn=cloud.state_machine_arn)
        seen = len(cloud.bridge.deliveries)
        # When an upload arrives
        cloud.s3.put_object(Bucket=cloud.input_bucket, Key="lost.jpg", Body=jpeg())
        # Then the event is in the DLQ with the reason
        (delivery,) = cloud.bridge.deliveries[seen:]
        assert delivery.execution_arn is None
        sqs = cloud.client("sqs")
        url = sqs.list_queues()["QueueUrls"][0]
        messages = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
        assert json.loads(messages[0]["Body"])["detail"]["object"]["key"] == "lost.jpg"
        assert messages[0]["MessageAttributes"]["ERROR_MESSAGE"]["StringValue"]
