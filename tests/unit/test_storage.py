"""The S3 adapter against moto: ranged reads, conditional reads, error translation."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from imgpipe.errors import TransientError
from imgpipe.storage import ObjectStore, S3RangeSource

BUCKET = "input-bucket"


@pytest.fixture
def store(s3: Any) -> ObjectStore:
    s3.create_bucket(Bucket=BUCKET)
    return ObjectStore(s3)


def test_range_source_reads_only_the_blocks_it_needs(s3: Any, store: ObjectStore) -> None:
    # Given a 1 MiB object
    data = bytes(range(256)) * 4096
    s3.put_object(Bucket=BUCKET, Key="big.bin", Body=data)
    source = S3RangeSource(store, BUCKET, "big.bin", None, len(data))
    # When the first bytes and a few bytes near the end are read
    head = source.read(0, 10)
    tail = source.read(len(data) - 5, 100)
    again = source.read(3, 4)
    # Then the bytes are right and only two 64 KiB blocks were fetched
    assert head == data[:10]
    assert tail == data[-5:]
    assert again == data[3:7]
    assert source.requests == 2
    assert source.bytes_read == 2 * S3RangeSource.BLOCK


def test_range_source_spans_block_boundaries(s3: Any, store: ObjectStore) -> None:
    data = bytes(i % 251 for i in range(200_000))
    s3.put_object(Bucket=BUCKET, Key="k", Body=data)
    source = S3RangeSource(store, BUCKET, "k", None, len(data))
    start = S3RangeSource.BLOCK - 7
    assert source.read(start, 20) == data[start : start + 20]
    assert source.read(len(data), 10) == b""


def test_head_of_missing_object_is_none(store: ObjectStore) -> None:
    assert store.head(BUCKET, "nope.jpg") is None


def test_read_with_stale_etag_is_none(s3: Any, store: ObjectStore) -> None:
    # Given an object overwritten after its ETag was noted
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"first")
    old = store.head(BUCKET, "k")
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"second")
    assert old is not None
    # When it is read with the old ETag, Then nothing is returned (not the new bytes)
    assert store.read(BUCKET, "k", etag=old.etag) is None
    current = store.head(BUCKET, "k")
    assert current is not None
    assert store.read(BUCKET, "k", etag=current.etag) == b"second"


def _failing(code: str, status: int) -> Any:
    def raise_error(**_: Any) -> None:
        raise ClientError(
            {
                "Error": {"Code": code, "Message": code},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            "PutObject",
        )

    return raise_error


@pytest.mark.parametrize(("code", "status"), [("SlowDown", 503), ("InternalError", 500)])
def test_throttling_and_5xx_become_transient(
    s3: Any, store: ObjectStore, code: str, status: int
) -> None:
    s3.put_object = _failing(code, status)
    with pytest.raises(TransientError, match=code):
        store.write(BUCKET, "k", b"x", content_type="image/jpeg")


def test_access_denied_is_not_transient(s3: Any, store: ObjectStore) -> None:
    s3.put_object = _failing("AccessDenied", 403)
    with pytest.raises(ClientError):
        store.write(BUCKET, "k", b"x", content_type="image/jpeg")


def test_given_a_function_that_makes_the_client_then_it_runs_once_at_the_first_call(
    s3: Any,
) -> None:
    # Given a store given a function that makes its client
    made: list[Any] = []

    def connect() -> Any:
        made.append(s3)
        return s3

    store = ObjectStore(connect)
    s3.create_bucket(Bucket=BUCKET)
    assert made == []
    # When it makes two calls
    store.head(BUCKET, "a.jpg")
    store.head(BUCKET, "b.jpg")
    # Then the client was made by the first one and kept
    assert made == [s3]
    assert store.client is s3


def test_read_object_returns_the_user_metadata_with_the_bytes(s3: Any, store: ObjectStore) -> None:
    # Given an upload with a focus set by its uploader (x-amz-meta-focus)
    s3.put_object(Bucket=BUCKET, Key="k.jpg", Body=b"pixels", Metadata={"Focus": "0.9,0.5"})
    # When it is read with its metadata, and read plainly
    found = store.read_object(BUCKET, "k.jpg")
    # Then both give the bytes, and the metadata comes with lowercased names
    assert found is not None
    assert (found.data, found.metadata) == (b"pixels", {"focus": "0.9,0.5"})
    assert store.read(BUCKET, "k.jpg") == b"pixels"
    assert store.read_object(BUCKET, "missing.jpg") is None
