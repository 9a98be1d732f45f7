"""What an application team's rule receives from the local cloud's pipeline.

`EventFollower` subscribes the way a consumer would: a rule for the stack's
`EventSource` on its `EventBusName`, with an SQS queue as target, so what it reads went
through EventBridge's matching and delivery (moto's), not around it.
"""

from __future__ import annotations

import json
from typing import Any

from imgpipe.local.cloud import LocalCloud

FOLLOWER = "imgpipe-local-follow-events"


class EventFollower:
    def __init__(self, cloud: LocalCloud) -> None:
        bus = cloud.template.parameters["EventBusName"]
        source = cloud.template.parameters["EventSource"]
        self.sqs = cloud.client("sqs")
        self.url: str = self.sqs.create_queue(QueueName=FOLLOWER)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        events = cloud.client("events")
        events.put_rule(
            Name=FOLLOWER, EventBusName=bus, EventPattern=json.dumps({"source": [source]})
        )
        events.put_targets(
            Rule=FOLLOWER,
            EventBusName=bus,
            Targets=[{"Id": "follow", "Arn": arn["Attributes"]["QueueArn"]}],
        )

    def poll(self) -> list[dict[str, Any]]:
        """The events delivered since the last poll (none: an empty list, at once)."""
        reply = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        events = []
        for message in reply.get("Messages", []):
            events.append(json.loads(message["Body"]))
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return events


def describe(event: dict[str, Any]) -> str:
    """One line: the detail-type, the source key, and the rest of the detail compacted."""
    detail = dict(event.get("detail") or {})
    source = detail.pop("source", {}) or {}
    if "renditions" in detail:
        detail["renditions"] = [
            f"{r['name']}.{str(r['format']).lower()} {r['width']}x{r['height']}"
            for r in detail["renditions"]
        ]
    if isinstance(detail.get("manifest"), dict):
        detail["manifest"] = detail["manifest"]["key"]
    compact = json.dumps(detail, separators=(",", ":"), ensure_ascii=False)
    return f"{event.get('detail-type')}  {source.get('key')}  {compact}"
