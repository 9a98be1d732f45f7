"""One DynamoDB item per source key: claims against duplicate events, and a lock.

EventBridge may deliver an event twice and events for one key may arrive in any order.
The item does two jobs (docs/delivery.md has the design and the argument):

**Claims** make a duplicate delivery do nothing. Validate claims the key for the
object it is about to render (version id + ETag) and the event that asked for it
(its S3 sequencer). The claim is refused -- a *duplicate* -- when the item already
names the same object and either that object was finished (rendered or rejected) or
the same event holds a live claim on it in another execution. Any other claim takes
the key over, whatever the sequencers say: which object is current is decided by S3
itself inside the lock below, not by event order, so a forged or replayed event can
never make the key refuse later uploads. Resize and store check they still hold the
claim; an execution whose claim was taken over stops before writing.

**The lock** serialises every write to a key's output folder (resize's uploads,
store's manifest, forget's and a rejection's removals). A holder writes only after
re-reading the source's current state from S3 inside the lock, so the writes to a
folder happen one section at a time, each for the state S3 showed at its start. A
lock is a lease that ends at the holder's Lambda deadline plus a margin: Lambda
stops a function at its timeout, so no holder can still be writing when its lease
runs out and another takes the lock.

S3 sequencers are hexadecimal strings of varying length that compare as numbers
once padded to the same length (S3 documentation); they are stored left-padded.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from imgpipe.errors import KeyBusy, TransientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any

ClaimState = Literal["claimed", "done", "rejected", "deleted"]
CLAIMED: ClaimState = "claimed"
DONE: ClaimState = "done"
REJECTED: ClaimState = "rejected"
DELETED: ClaimState = "deleted"
_SEQUENCER_WIDTH = 40
# Items outlive any event EventBridge could still deliver (its maximum event age is 24 h).
_RETENTION_S = 7 * 24 * 3600
# Lambda hosts keep their clocks within milliseconds of each other (NTP); a lease
# outlives its holder's deadline by this much so clock skew cannot hand it over early.
LOCK_MARGIN_S = 10.0
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
        return key_id(self.bucket, self.key)

    @property
    def object_id(self) -> str:
        return object_id(self.version_id, self.etag)


def key_id(bucket: str, key: str) -> str:
    # Bucket names cannot contain "/", so this cannot collide across buckets.
    return f"{bucket}/{key}"


def object_id(version_id: str | None, etag: str | None) -> str:
    return f"{version_id or ''}|{(etag or '').strip(chr(34))}"


@dataclass(frozen=True)
class Claim:
    outcome: Literal["claimed", "duplicate"]
    holder: str | None = None


@dataclass(frozen=True)
class KeyRecord:
    """What the item says about a key: the last claim and whether it is still live."""

    object_id: str
    state: str
    execution: str
    live: bool


class ClaimTable:
    """The claims and locks of one table.

    `client` is a DynamoDB client, or a function without arguments that makes one at
    the first call (as `ObjectStore` takes its S3 client); it is kept after that.
    `lock_wait_s` is how long `locked` waits for another holder before it raises
    `KeyBusy` for the state machine to retry; `sleep` is injectable for tests.
    """

    def __init__(
        self,
        client: DynamoDBClient | Callable[[], DynamoDBClient],
        table: str,
        *,
        lease_s: int = 900,
        lock_wait_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connect: Callable[[], DynamoDBClient] = client if callable(client) else lambda: client
        self._client: DynamoDBClient | None = None
        self._table = table
        self._lease_s = lease_s
        self._lock_wait_s = lock_wait_s
        self._sleep = sleep

    @property
    def client(self) -> DynamoDBClient:
        """The DynamoDB client, made now if this is its first use."""
        if self._client is None:
            self._client = self._connect()
        return self._client

    # ------------------------------------------------------------------ claims
    def claim(self, source: SourceIdentity, execution: str, *, force: bool = False) -> Claim:
        """Claim the key for `source`; `force` takes it even from a finished claim.

        Forced claims re-render an object that is current again (forget found its
        outputs missing or stale), which a finished claim on it would otherwise refuse.
        """
        now = int(time.time())
        condition = (
            "attribute_not_exists(obj) OR obj <> :obj OR exe = :exe OR "
            "(st = :claimed AND (seq <> :seq OR lease < :now))"
        )
        values: dict[str, Any] = {
            ":seq": {"S": normalise_sequencer(source.sequencer)},
            ":obj": {"S": source.object_id},
            ":exe": {"S": execution},
            ":claimed": {"S": CLAIMED},
            ":lease": {"N": str(now + self._lease_s)},
            ":expires": {"N": str(now + _RETENTION_S)},
        }
        kwargs: dict[str, Any] = {}
        if not force:
            values[":now"] = {"N": str(now)}
            kwargs["ConditionExpression"] = condition
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            self.client.update_item(
                TableName=self._table,
                Key={"pk": {"S": source.pk}},
                UpdateExpression=(
                    "SET seq = :seq, obj = :obj, exe = :exe, st = :claimed, "
                    "lease = :lease, expires_at = :expires"
                ),
                ExpressionAttributeValues=values,
                **kwargs,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _translate(error) from error
            old = error.response.get("Item") or self._get(source.pk) or {}
            return Claim("duplicate", old.get("exe", {}).get("S"))
        return Claim("claimed", execution)

    def holds(self, source: SourceIdentity, execution: str) -> bool:
        """Whether `execution` still owns the key for this event (strongly consistent)."""
        item = self._get(source.pk)
        return bool(
            item
            and item.get("exe", {}).get("S") == execution
            and item.get("seq", {}).get("S") == normalise_sequencer(source.sequencer)
        )

    def finish(self, source: SourceIdentity, execution: str, state: ClaimState) -> bool:
        """Mark the claim done or rejected; False if another execution took the key."""
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

    def forget(self, bucket: str, key: str, execution: str, sequencer: str | None) -> None:
        """Record that the key has no current object: any render in flight has lost it."""
        now = int(time.time())
        try:
            self.client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key_id(bucket, key)}},
                UpdateExpression=(
                    "SET seq = :seq, obj = :none, exe = :exe, st = :deleted, "
                    "lease = :now, expires_at = :expires"
                ),
                ExpressionAttributeValues={
                    ":seq": {"S": normalise_sequencer(sequencer)},
                    ":none": {"S": ""},
                    ":exe": {"S": execution},
                    ":deleted": {"S": DELETED},
                    ":now": {"N": str(now)},
                    ":expires": {"N": str(now + _RETENTION_S)},
                },
            )
        except ClientError as error:
            raise _translate(error) from error

    def record(self, bucket: str, key: str) -> KeyRecord | None:
        item = self._get(key_id(bucket, key))
        if not item or "obj" not in item:
            return None
        state = item.get("st", {}).get("S", "")
        lease = int(item.get("lease", {}).get("N", "0"))
        return KeyRecord(
            object_id=item["obj"]["S"],
            state=state,
            execution=item.get("exe", {}).get("S", ""),
            live=state == CLAIMED and lease >= int(time.time()),
        )

    # ------------------------------------------------------------------ lock
    @contextmanager
    def locked(self, bucket: str, key: str, *, lease_s: float) -> Iterator[None]:
        """Hold the key's output-folder lock for the block; `lease_s` is the holder's
        remaining lifetime (its Lambda deadline), the margin is added here."""
        pk = key_id(bucket, key)
        token = uuid.uuid4().hex
        self._acquire(pk, token, lease_s + LOCK_MARGIN_S)
        try:
            yield
        finally:
            self._release(pk, token)

    def _acquire(self, pk: str, token: str, lease_s: float) -> None:
        deadline = time.monotonic() + self._lock_wait_s
        pause = 0.05
        while True:
            now_ms = int(time.time() * 1000)
            try:
                self.client.update_item(
                    TableName=self._table,
                    Key={"pk": {"S": pk}},
                    # A key locked before it was ever claimed (forget of an unknown
                    # key) still gets the item's expiry.
                    UpdateExpression=(
                        "SET lk = :me, lku = :until, expires_at = if_not_exists(expires_at, :exp)"
                    ),
                    ConditionExpression="attribute_not_exists(lk) OR lku < :now OR lk = :me",
                    ExpressionAttributeValues={
                        ":me": {"S": token},
                        ":until": {"N": str(now_ms + int(lease_s * 1000))},
                        ":now": {"N": str(now_ms)},
                        ":exp": {"N": str(now_ms // 1000 + _RETENTION_S)},
                    },
                )
                return
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise _translate(error) from error
            if time.monotonic() >= deadline:
                msg = f"another execution is writing the outputs of {pk}; retry later"
                raise KeyBusy(msg)
            self._sleep(pause)
            pause = min(pause * 2, 0.5)

    def _release(self, pk: str, token: str) -> None:
        try:
            self.client.update_item(
                TableName=self._table,
                Key={"pk": {"S": pk}},
                UpdateExpression="REMOVE lk, lku",
                ConditionExpression="lk = :me",
                ExpressionAttributeValues={":me": {"S": token}},
            )
        except ClientError as error:
            # Not ours any more: the lease ran out, which the deadline-sized lease
            # rules out unless clocks drift by more than the margin. Nothing to undo.
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _translate(error) from error

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
