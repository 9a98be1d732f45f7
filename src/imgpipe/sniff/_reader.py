"""The byte source, the bounded reader every format parser reads through, and its budgets."""

from __future__ import annotations

from typing import Final, Protocol

from imgpipe.errors import CorruptImage
from imgpipe.specs import ImageFacts


class ByteSource(Protocol):
    """Random access to an object's bytes (an S3 object, a file, a bytes buffer)."""

    @property
    def size(self) -> int:
        """Total object size in bytes."""
        ...

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset`; fewer only at the end of the object."""
        ...


class BytesSource:
    """A `ByteSource` over bytes already in memory."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            msg = f"invalid read: offset={offset}, length={length}"
            raise ValueError(msg)
        return self._data[offset : offset + length]


# --- Budgets ---------------------------------------------------------------------------

_FIRST_BLOCK: Final = 64 * 1024
_NEXT_BLOCK: Final = 64 * 1024
# Sequential walks (GIF) double their read size up to this, so a 50 MB file costs ~60
# requests rather than ~800.
_MAX_BLOCK: Final = 1024 * 1024
# Largest single structure read in one piece; header structures are far smaller, so a
# larger request means a lying length field.
_MAX_STRUCT: Final = 1024 * 1024
_MAX_FETCHES: Final = 512
# Sub-blocks a GIF walk may visit: far more than any GIF within an upload budget has
# (a 50 MB GIF has ~200,000 full sub-blocks), yet a fraction of a second of CPU.
MAX_STEPS: Final = 1_000_000


# --- Bounded reader --------------------------------------------------------------------


class Reader:
    """Exact-length reads through a one-window cache; anything short is `CorruptImage`."""

    def __init__(self, source: ByteSource) -> None:
        self.size = source.size
        self._source = source
        self._fetches = 0
        self._steps = 0
        self._block = _NEXT_BLOCK
        # The first block may come back short if the size lied; identification works
        # with what there is and exact reads past it fail later as truncation.
        self.head = self._get(0, min(self.size, _FIRST_BLOCK))
        self._start = 0
        self._data = self.head

    def take(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            msg = f"{what} runs past the end of the file (truncated, or a bad offset)"
            raise CorruptImage(msg)
        rel = offset - self._start
        if rel >= 0 and rel + length <= len(self._data):
            return self._data[rel : rel + length]
        if length > _MAX_STRUCT:
            msg = f"{what} is implausibly large ({length} bytes)"
            raise CorruptImage(msg)
        # A miss at or just past the window's end is a forward walk (GIF sub-blocks,
        # chained JPEG segments): read ahead more each time. A jump resets the size.
        sequential = self._start < offset <= self._start + len(self._data) + _NEXT_BLOCK
        self._block = min(self._block * 2, _MAX_BLOCK) if sequential else _NEXT_BLOCK
        data = self._get(offset, min(max(length, self._block), self.size - offset))
        if len(data) < length:
            msg = f"{what} runs past the end of the data (the object is truncated)"
            raise CorruptImage(msg)
        self._start, self._data = offset, data
        return data[:length]

    def peek(self, offset: int, length: int, what: str) -> bytes:
        """Up to `length` bytes at `offset`: fewer at the end of the file, never an error."""
        if offset >= self.size:
            return b""
        return self.take(offset, min(length, self.size - offset), what)

    def u8(self, offset: int, what: str) -> int:
        return self.take(offset, 1, what)[0]

    def window(self, offset: int, what: str) -> memoryview:
        """The cached bytes from `offset` on (at least one), without copying them."""
        rel = offset - self._start
        if not 0 <= rel < len(self._data):
            self.take(offset, 1, what)
            rel = 0
        return memoryview(self._data)[rel:]

    def spend(self, steps: int, what: str) -> None:
        """Charge `steps` structures visited against the walk's budget."""
        self._steps += steps
        if self._steps > MAX_STEPS:
            msg = f"{what} has too many blocks to inspect (more than {MAX_STEPS})"
            raise CorruptImage(msg)

    def _get(self, offset: int, length: int) -> bytes:
        if self._fetches >= _MAX_FETCHES:
            msg = f"the header walk needs more than {_MAX_FETCHES} reads"
            raise CorruptImage(msg)
        self._fetches += 1
        return bytes(self._source.read(offset, length))[:length]


class Cursor:
    """Big-endian parsing of an in-memory structure; running short is `CorruptImage`."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            msg = f"{self.what} is truncated"
            raise CorruptImage(msg)
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")


def make_facts(
    fmt: str,
    width: int,
    height: int,
    *,
    mode: str,
    orientation: int = 1,
    frames: int = 1,
    has_alpha: bool = False,
    bit_depth: int = 8,
    icc_profile: bool = False,
    progressive: bool = False,
    images: int = 1,
) -> ImageFacts:
    if width <= 0 or height <= 0:
        msg = f"{fmt} header declares a {width}x{height} image"
        raise CorruptImage(msg)
    return ImageFacts(
        format=fmt,
        width=width,
        height=height,
        orientation=orientation if 1 <= orientation <= 8 else 1,
        frames=frames,
        mode=mode,
        has_alpha=has_alpha,
        bit_depth=bit_depth,
        icc_profile=icc_profile,
        progressive=progressive,
        images=images,
    )


def fourcc_name(fourcc: bytes) -> str:
    return fourcc.decode("latin-1")
