"""S3 access behind a small adapter that takes its client as a parameter.

Tests hand it a moto-backed client; nothing here reads the environment. S3 errors are
translated at this boundary: throttling and 5xx become `TransientError` (the state
machine retries it), a missing object becomes `None`, anything else propagates and
fails the execution, because it means a permission or configuration problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from imgpipe.errors import ObjectGone, TransientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
    }
)
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NoSuchVersion", "NotFound"})


# Network faults that survive botocore's own retries, or that happen while a response
# body is streamed (after botocore has returned, so it never retries them).
_NETWORK_ERRORS = (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)


def _network(error: Exception, action: str) -> TransientError:
    msg = f"S3 {action} failed on the network: {type(error).__name__}"
    return TransientError(msg)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _translate(error: ClientError, action: str) -> Exception:
    code = _code(error)
    status: object = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
        msg = f"S3 {action} failed transiently: {code}"
        return TransientError(msg)
    unchanged: Exception = error
    return unchanged


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes and its user metadata (`x-amz-meta-*`, names lowercased, as
    S3 returns them)."""

    data: bytes
    metadata: dict[str, str]


@dataclass(frozen=True)
class ObjectHead:
    key: str
    size: int
    etag: str | None
    version_id: str | None


class ObjectStore:
    """The handful of S3 operations the pipeline performs.

    `client` is an S3 client, or a function without arguments that makes one: the
    handlers pass the function, so the client is made at their first S3 call rather
    than during init, and kept for the life of the execution environment.
    """

    def __init__(self, client: S3Client | Callable[[], S3Client]) -> None:
        self._connect: Callable[[], S3Client] = client if callable(client) else lambda: client
        self._client: S3Client | None = None

    @property
    def client(self) -> S3Client:
        """The S3 client, made now if this is its first use."""
        if self._client is None:
            self._client = self._connect()
        return self._client

    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectHead | None:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            response = self.client.head_object(**kwargs)
        except ClientError as error:
            if _code(error) in _MISSING_CODES:
                return None
            raise _translate(error, "HeadObject") from error
        except _NETWORK_ERRORS as error:
            raise _network(error, "HeadObject") from error
        version = response.get("VersionId")
        return ObjectHead(
            key=key,
            size=int(response["ContentLength"]),
            etag=response.get("ETag", "").strip('"') or None,
            version_id=None if version in (None, "null") else version,
        )

    def read_range(
        self, bucket: str, key: str, version_id: str | None, start: int, length: int
    ) -> bytes:
        kwargs: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Range": f"bytes={start}-{start + length - 1}",
        }
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            response = self.client.get_object(**kwargs)
            return bytes(response["Body"].read())
        except ClientError as error:
            if _code(error) in _MISSING_CODES:
                # Deleted between the HEAD that sized it and this read: a race, not a fault.
                msg = f"s3://{bucket}/{key} was deleted while it was being read"
                raise ObjectGone(msg) from error
            raise _translate(error, "GetObject") from error
        except _NETWORK_ERRORS as error:
            raise _network(error, "GetObject") from error

    def read(
        self, bucket: str, key: str, version_id: str | None = None, etag: str | None = None
    ) -> bytes | None:
        """The whole object, or None when it (that version / that ETag) is gone."""
        found = self.read_object(bucket, key, version_id, etag)
        return found.data if found is not None else None

    def read_object(
        self, bucket: str, key: str, version_id: str | None = None, etag: str | None = None
    ) -> StoredObject | None:
        """As `read`, with the user metadata GetObject returns alongside the bytes."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        elif etag:
            # Without versioning, IfMatch makes sure we render the bytes that were
            # validated and not a newer upload that replaced them in between.
            kwargs["IfMatch"] = f'"{etag}"'
        try:
            response = self.client.get_object(**kwargs)
            data = bytes(response["Body"].read())
            return StoredObject(
                data, {k.lower(): v for k, v in response.get("Metadata", {}).items()}
            )
        except ClientError as error:
            if _code(error) in _MISSING_CODES or _code(error) == "PreconditionFailed":
                return None
            raise _translate(error, "GetObject") from error
        except _NETWORK_ERRORS as error:
            raise _network(error, "GetObject") from error

    def write(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str,
        cache_control: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Body": data,
            "ContentType": content_type,
        }
        if cache_control:
            kwargs["CacheControl"] = cache_control
        if metadata:
            kwargs["Metadata"] = metadata
        try:
            self.client.put_object(**kwargs)
        except ClientError as error:
            raise _translate(error, "PutObject") from error
        except _NETWORK_ERRORS as error:
            raise _network(error, "PutObject") from error

    def list_keys(self, bucket: str, prefix: str, *, direct: bool = False) -> list[str]:
        """Keys under `prefix`; `direct` keeps only those without a further `/`.

        An output folder holds files only, but another source's folder can sit inside
        it (`a/cat.jpg/` and `a/cat.jpg/x.png/`): whoever clears or tidies a folder
        lists it `direct`, or it would remove the other source's outputs too.
        """
        return list(self.list_sizes(bucket, prefix, direct=direct))

    def list_sizes(self, bucket: str, prefix: str, *, direct: bool = False) -> dict[str, int]:
        """`list_keys` with each object's size in bytes."""
        extra: dict[str, Any] = {"Delimiter": "/"} if direct else {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, **extra
            )
            return {
                item["Key"]: int(item.get("Size", 0))
                for page in pages
                for item in page.get("Contents", [])
            }
        except ClientError as error:
            raise _translate(error, "ListObjectsV2") from error
        except _NETWORK_ERRORS as error:
            raise _network(error, "ListObjectsV2") from error

    def delete_keys(self, bucket: str, keys: list[str]) -> None:
        # DeleteObjects takes at most 1000 keys per request.
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            try:
                response = self.client.delete_objects(
                    Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except ClientError as error:
                raise _translate(error, "DeleteObjects") from error
            failed = response.get("Errors", [])
            if failed:
                codes = sorted({str(e.get("Code")) for e in failed})
                msg = f"S3 DeleteObjects failed for {len(failed)} keys: {', '.join(codes)}"
                raise TransientError(msg)


class S3RangeSource:
    """A `ByteSource` over one S3 object: ranged GETs through a small block cache.

    The header sniffer reads a few KiB of a 50 MB upload; this keeps it from
    downloading the rest. The first read fetches one whole block so the usual case
    (every header field in the first 64 KiB) costs a single request.
    """

    BLOCK = 64 * 1024

    def __init__(
        self, store: ObjectStore, bucket: str, key: str, version_id: str | None, size: int
    ) -> None:
        self._store = store
        self._bucket = bucket
        self._key = key
        self._version_id = version_id
        self._size = size
        self._blocks: dict[int, bytes] = {}
        self.requests = 0
        self.bytes_read = 0

    @property
    def size(self) -> int:
        return self._size

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is None:
            start = index * self.BLOCK
            length = min(self.BLOCK, self._size - start)
            block = self._store.read_range(self._bucket, self._key, self._version_id, start, length)
            self.requests += 1
            self.bytes_read += len(block)
            self._blocks[index] = block
        return block

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self._size:
            return b""
        end = min(offset + length, self._size)
        parts = []
        for index in range(offset // self.BLOCK, (end - 1) // self.BLOCK + 1):
            block = self._block(index)
            base = index * self.BLOCK
            parts.append(block[max(offset - base, 0) : end - base])
        return b"".join(parts)
