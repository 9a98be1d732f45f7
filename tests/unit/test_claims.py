"""Claims per source key against moto's DynamoDB: ordering, duplicates, leases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from imgpipe.claims import DONE, ClaimTable, SourceIdentity, normalise_sequencer

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


def test_newer_event_takes_over_and_older_one_is_superseded(table: ClaimTable) -> None:
    table.claim(event("10"), "exec-1")
    assert table.claim(event("20", "v2"), "exec-2").outcome == "claimed"
    assert not table.holds(event("10"), "exec-1")
    assert table.holds(event("20", "v2"), "exec-2")
    assert table.claim(event("10"), "exec-3").outcome == "superseded"
    # And the old execution cannot mark the key done any more
    assert table.finish(event("10"), "exec-1", DONE) is False


def test_same_sequencer_for_another_object_is_treated_as_newer(table: ClaimTable) -> None:
    # The local emulator sends one constant sequencer; a new version must still render
    table.claim(event("10", "v1"), "exec-1")
    assert table.claim(event("10", "v2"), "exec-2").outcome == "claimed"


def test_expired_lease_of_an_unfinished_claim_can_be_taken_over(dynamodb: Any) -> None:
    # Given a claim whose lease is already over (its execution died)
    ClaimTable(dynamodb, TABLE, lease_s=-1).claim(event("10"), "exec-1")
    table = ClaimTable(dynamodb, TABLE)
    # When the event is delivered again, Then the new execution takes the key
    assert table.claim(event("10"), "exec-2").outcome == "claimed"
    # But a finished claim is never taken over by the same event
    table.finish(event("10"), "exec-2", DONE)
    assert table.claim(event("10"), "exec-3").outcome == "duplicate"


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
