"""At-least-once delivery made safe: one DynamoDB item per source key.

EventBridge may deliver an event twice, and events for one key may arrive out of order.
Each execution *claims* its source key with a conditional write before doing any work:

* no item yet, or the item's sequencer is older than the event's: the claim succeeds
  (a newer upload takes over the key);
* same sequencer and same object (version id and ETag), held by another execution that
  is still working or has finished: a **duplicate** delivery, skipped;
* same sequencer, held by an execution whose lease ran out (it crashed or failed): the
  claim is taken over, so a redelivered event can finish the job;
* the item's sequencer is newer: the event is **superseded**, skipped.

Resize checks the claim is still held before it uploads, and store before it writes the
manifest, so an older execution that lost its key to a newer upload stops instead of
overwriting the newer renditions. The window left is the time between that check and
the uploads themselves (milliseconds); the newer execution's own writes come after it.

S3 sequencers are hexadecimal strings of varying length that compare as numbers once
padded to the same length (S3 documentation); they are stored left-padded so
DynamoDB's string comparison orders them. The local emulator uses one constant
sequencer; two different objects with the same sequencer are treated as a newer
upload (last writer wins), never as duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imgpipe.errors import TransientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any

CLAIMED, DONE, DELETED = "claimed", "done", "deleted"
_SEQUENCER_WIDTH = 40
# Items outlive any event EventBridge could still deliver (its maximum event age is 24 h).
_RETENTION_S = 7 * 24 * 3600
_TRANSIENT = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)


def normalise_sequencer(sequencer: str | None) -> str:
    return (sequencer or "").upper().zfill(_SEQUENCER_WIDTH)


@dataclass(frozen=True)
class SourceIdentity:
    """Which event for which object: the key, the event's sequencer, the object's version."""

    bucket: str
    key: str
    sequencer: str | None
    version_id: str | None
    etag: str | None

    @property
    def pk(self) -> str:
        # Bucket names cannot contain "/", so this cannot collide across buckets.
        return f"{self.bucket}/{self.key}"

    @property
    def object_id(self) -> str:
        return f"{self.version_id or ''}|{(self.etag or '').strip(chr(34))}"


@dataclass(frozen=True)
class Claim:
    outcome: str  # claimed | duplicate | superseded
    holder: str | None = None


class ClaimTable:
    """The claims of one table.

    `client` is a DynamoDB client, or a function without arguments that makes one at
    the first call (as `ObjectStore` takes its S3 client); it is kept after that.
    """

    def __init__(
        self,
        client: DynamoDBClient | Callable[[], DynamoDBClient],
        table: str,
        *,
        lease_s: int = 900,
    ) -> None:
        self._connect: Callable[[], DynamoDBClient] = client if callable(client) else lambda: client
        self._client: DynamoDBClient | None = None
        self._table = table
        self._lease_s = lease_s

    @property
    def client(self) -> DynamoDBClient:
        """The DynamoDB client, made now if this is its first use."""
        if self._client is None:
            self._client = self._connect()
        return self._client

    def claim(self, source: SourceIdentity, execution: str, *, state: str = CLAIMED) -> Claim:
        now = int(time.time())
        try:
            self.client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": source.pk},
                    "seq": {"S": normalise_sequencer(source.sequencer)},
                    "obj": {"S": source.object_id},
                    "exe": {"S": execution},
                    "st": {"S": state},
                    "lease": {"N": str(now + self._lease_s)},
                    "expires_at": {"N": str(now + _RETENTION_S)},
                },
                ConditionExpression=(
                    "attribute_not_exists(pk) OR seq < :seq OR "
                    "(seq = :seq AND (exe = :exe OR obj <> :obj OR "
                    "(st = :claimed AND lease < :now)))"
                ),
                ExpressionAttributeValues={
                    ":seq": {"S": normalise_sequencer(source.sequencer)},
                    ":obj": {"S": source.object_id},
                    ":exe": {"S": execution},
                    ":claimed": {"S": CLAIMED},
                    ":now": {"N": str(now)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code != "ConditionalCheckFailedException":
                raise _translate(error) from error
            old = error.response.get("Item") or self._get(source.pk) or {}
            holder = old.get("exe", {}).get("S")
            if old.get("seq", {}).get("S", "") > normalise_sequencer(source.sequencer):
                return Claim("superseded", holder)
            return Claim("duplicate", holder)
        return Claim("claimed", execution)

    def holds(self, source: SourceIdentity, execution: str) -> bool:
        """Whether `execution` still owns the key for this event (strongly consistent)."""
        item = self._get(source.pk)
        return bool(
            item
            and item.get("exe", {}).get("S") == execution
            and item.get("seq", {}).get("S") == normalise_sequencer(source.sequencer)
        )

    def finish(self, source: SourceIdentity, execution: str, state: str) -> bool:
        """Mark the claim done (or deleted); False if another execution took the key."""
        try:
            self.client.update_item(
                TableName=self._table,
                Key={"pk": {"S": source.pk}},
                UpdateExpression="SET st = :st",
                ConditionExpression="exe = :exe AND seq = :seq",
                ExpressionAttributeValues={
                    ":st": {"S": state},
                    ":exe": {"S": execution},
                    ":seq": {"S": normalise_sequencer(source.sequencer)},
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise _translate(error) from error
        return True

    def _get(self, pk: str) -> dict[str, Any] | None:
        try:
            response = self.client.get_item(
                TableName=self._table, Key={"pk": {"S": pk}}, ConsistentRead=True
            )
        except ClientError as error:
            raise _translate(error) from error
        item: dict[str, Any] | None = response.get("Item")
        return item


def _translate(error: ClientError) -> Exception:
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code in _TRANSIENT:
        msg = f"DynamoDB failed transiently: {code}"
        return TransientError(msg)
    unchanged: Exception = error
    return unchanged
