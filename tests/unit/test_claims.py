"""Claims and locks per source key against moto's DynamoDB: duplicates, takeovers, leases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from imgpipe.claims import (
    CLAIMED,
    DELETED,
    DONE,
    LOCK_MARGIN_S,
    REJECTED,
    ClaimTable,
    SourceIdentity,
    normalise_sequencer,
)
from imgpipe.errors import KeyBusy

TABLE = "claims"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    """A client of an emulated DynamoDB holding an empty claims table."""
    with mock_aws():
        client: Any = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


@pytest.fixture
def table(dynamodb: Any) -> ClaimTable:
    return ClaimTable(dynamodb, TABLE)


def event(sequencer: str, version: str = "v1") -> SourceIdentity:
    return SourceIdentity("bucket", "a/cat.jpg", sequencer, version, "etag-" + version)


def test_sequencers_of_different_lengths_compare_as_numbers() -> None:
    # S3: pad the shorter sequencer with leading zeros, then compare as strings
    assert normalise_sequencer("FF") > normalise_sequencer("0A")
    assert normalise_sequencer("100") > normalise_sequencer("FF")
    assert normalise_sequencer("0055AED6DCD90281E5") > normalise_sequencer("55AED6DCD90281E4")


def test_first_claim_wins_and_a_redelivery_is_a_duplicate(table: ClaimTable) -> None:
    assert table.claim(event("10"), "exec-1").outcome == "claimed"
    duplicate = table.claim(event("10"), "exec-2")
    assert (duplicate.outcome, duplicate.holder) == ("duplicate", "exec-1")
    # The same execution retrying its own step keeps its claim
    assert table.claim(event("10"), "exec-1").outcome == "claimed"


def test_another_object_takes_the_key_over_whatever_the_sequencers_say(
    table: ClaimTable,
) -> None:
    # Given a claim made by an event with a (forged) huge sequencer
    table.claim(event("FFFFFFFFFFFFFFFF", "v1"), "exec-1")
    # When another object of the key is claimed with an ordinary sequencer
    assert table.claim(event("10", "v2"), "exec-2").outcome == "claimed"
    # Then it holds the key and the first execution has lost it (S3 decides which
    # object is current, not event order)
    assert table.holds(event("10", "v2"), "exec-2")
    assert not table.holds(event("FFFFFFFFFFFFFFFF", "v1"), "exec-1")
    assert table.finish(event("FFFFFFFFFFFFFFFF", "v1"), "exec-1", DONE) is False


def test_a_finished_object_is_a_duplicate_until_forced(table: ClaimTable) -> None:
    # Given an object rendered by one event
    table.claim(event("10"), "exec-1")
    assert table.finish(event("10"), "exec-1", DONE)
    # When another event for the same object arrives, Then it is a duplicate
    assert table.claim(event("20"), "exec-2").outcome == "duplicate"
    # But a forced claim (forget found its outputs missing) takes the key
    assert table.claim(event("30"), "exec-3", force=True).outcome == "claimed"
    assert table.holds(event("30"), "exec-3")


def test_a_rejected_object_is_a_duplicate_and_a_deleted_key_claims_anew(
    table: ClaimTable,
) -> None:
    table.claim(event("10"), "exec-1")
    table.finish(event("10"), "exec-1", REJECTED)
    assert table.claim(event("10"), "exec-2").outcome == "duplicate"
    # When the key is forgotten (no current version), the same object uploaded
    # again (a removed delete marker, an identical re-upload) is rendered again
    table.forget("bucket", "a/cat.jpg", "exec-3", "20")
    record = table.record("bucket", "a/cat.jpg")
    assert record is not None
    assert (record.object_id, record.state, record.live) == ("", DELETED, False)
    assert table.claim(event("30"), "exec-4").outcome == "claimed"


def test_expired_lease_of_an_unfinished_claim_can_be_taken_over(dynamodb: Any) -> None:
    # Given a claim whose lease is already over (its execution died)
    ClaimTable(dynamodb, TABLE, lease_s=-1).claim(event("10"), "exec-1")
    table = ClaimTable(dynamodb, TABLE)
    # When the event is delivered again, Then the new execution takes the key
    assert table.claim(event("10"), "exec-2").outcome == "claimed"
    record = table.record("bucket", "a/cat.jpg")
    assert record is not None
    assert (record.execution, record.state, record.live) == ("exec-2", CLAIMED, True)
    # But a finished claim is never taken over by the same event
    table.finish(event("10"), "exec-2", DONE)
    assert table.claim(event("10"), "exec-3").outcome == "duplicate"


def test_the_lock_is_exclusive_and_a_waiter_gives_up_with_key_busy(dynamodb: Any) -> None:
    waits: list[float] = []
    holder = ClaimTable(dynamodb, TABLE)
    waiter = ClaimTable(dynamodb, TABLE, lock_wait_s=0.3, sleep=waits.append)
    # Given one holder inside the lock of a key
    with holder.locked("bucket", "a/cat.jpg", lease_s=60):
        # When another tries to take it, Then it polls until its wait runs out
        with (
            pytest.raises(KeyBusy, match=r"a/cat\.jpg"),
            waiter.locked("bucket", "a/cat.jpg", lease_s=60),
        ):
            pytest.fail("entered a held lock")
        # (the injected sleep does not pass time, so it polled until the real clock ran out)
        assert waits
        assert waits[0] == 0.05
        assert max(waits) <= 0.5
        # Another key is not locked
        with waiter.locked("bucket", "a/dog.jpg", lease_s=60):
            pass
    # And once released, the lock is free again
    with waiter.locked("bucket", "a/cat.jpg", lease_s=60):
        pass


def test_the_lock_is_released_when_the_block_raises(dynamodb: Any) -> None:
    table = ClaimTable(dynamodb, TABLE, lock_wait_s=0)
    with pytest.raises(RuntimeError), table.locked("bucket", "a/cat.jpg", lease_s=60):
        raise RuntimeError("boom")
    with table.locked("bucket", "a/cat.jpg", lease_s=60):
        pass


def test_a_dead_holders_lock_is_taken_once_its_lease_is_over(dynamodb: Any) -> None:
    # Given a holder whose lease (its deadline plus the margin) is already over
    dead = ClaimTable(dynamodb, TABLE)
    lock = dead.locked("bucket", "a/cat.jpg", lease_s=-LOCK_MARGIN_S - 1)
    lock.__enter__()  # and which never leaves its block (the process was killed)
    # When another execution asks for the lock, Then it gets it at once
    with ClaimTable(dynamodb, TABLE, lock_wait_s=0).locked("bucket", "a/cat.jpg", lease_s=60):
        pass


def test_the_lock_does_not_disturb_the_claim_on_the_same_item(table: ClaimTable) -> None:
    table.claim(event("10"), "exec-1")
    with table.locked("bucket", "a/cat.jpg", lease_s=60):
        assert table.holds(event("10"), "exec-1")
    assert table.holds(event("10"), "exec-1")
    assert table.finish(event("10"), "exec-1", DONE)


def test_given_a_function_that_makes_the_client_then_it_runs_once_at_the_first_call(
    dynamodb: Any,
) -> None:
    made: list[Any] = []

    def connect() -> Any:
        made.append(dynamodb)
        return dynamodb

    # Given a table handed a function that makes its client, not a client
    table = ClaimTable(connect, TABLE)
    assert made == []
    # When it claims a key and checks the claim
    table.claim(event("10"), "exec-1")
    assert table.holds(event("10"), "exec-1")
    # Then the client was made by the first call and kept
    assert made == [dynamodb]
