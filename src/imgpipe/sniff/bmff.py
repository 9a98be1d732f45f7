"""ISO BMFF structure shared by AVIF and HEIF: boxes, and the items of a `meta` box.

AVIF and HEIC are both HEIF (ISO/IEC 23008-12) files, so a still image is an item of a
`meta` box: the primary item (pitm), the items and their types (iinf), the references
between them (iref: auxl, dimg, thmb, cdsc) and their properties (iprp: ipco holds the
properties, ipma associates them with items, in the order they apply).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Final

from imgpipe.errors import CorruptImage
from imgpipe.sniff._reader import Cursor, Reader, fourcc_name

_MAX_BOXES: Final = 10_000
_ALPHA_URNS: Final = (b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha", b"urn:mpeg:hevc:2015:auxid:1")
MAX_TABLE: Final = 256 * 1024
_MAX_PROPERTY: Final = 256
# An infe box's fields up to its item type (version 3: 32-bit item IDs).
_MAX_INFE: Final = 14
# Content types are short ("image/jpeg"); this bounds how much of an item name is read.
_MAX_INFE_NAMES: Final = 512

# The EXIF orientation of "mirror left-right (or not), then turn k quarter turns
# anticlockwise", indexed [mirrored][k].
_EXIF_ORIENTATIONS: Final = ((1, 8, 3, 6), (2, 5, 4, 7))

Property = tuple[bytes, int, int]  # type, body start, body end
Span = tuple[int, int]


def boxes(r: Reader, start: int, end: int, what: str) -> Iterator[Property]:
    """Child boxes of [start, end) as (type, body start, body end)."""
    pos = start
    for _ in range(_MAX_BOXES):
        if pos >= end:
            return
        size, typ = struct.unpack(">I4s", r.take(pos, 8, f"{what} box header"))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", r.take(pos + 8, 8, f"{what} box header"))
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            msg = f"{what}: box '{fourcc_name(typ)}' at offset {pos} overruns its container"
            raise CorruptImage(msg)
        yield typ, pos + header, pos + size
        pos += size
    msg = f"{what} has too many boxes"
    raise CorruptImage(msg)


def box_body(r: Reader, start: int, end: int, limit: int, what: str) -> bytes:
    return r.take(start, min(end - start, limit), what)


def ftyp_brands(head: bytes) -> tuple[bytes, frozenset[bytes]]:
    """Major brand, and all brands (major and compatible), of a leading `ftyp` box."""
    major = head[8:12]
    box_end = min(int.from_bytes(head[:4], "big"), len(head), 16 + 4 * 256)
    return major, frozenset({major, *(head[i : i + 4] for i in range(16, box_end - 3, 4))})


# --- Item properties -------------------------------------------------------------------


def property_cursor(r: Reader, prop: Property, fmt: str) -> Cursor:
    typ, start, end = prop
    what = f"{fmt} '{fourcc_name(typ)}' property"
    return Cursor(box_body(r, start, end, _MAX_PROPERTY, what), what)


def ispe_size(cursor: Cursor) -> tuple[int, int]:
    cursor.take(4)
    return cursor.uint(4), cursor.uint(4)


def pixi_depth(cursor: Cursor) -> int | None:
    """Bits of the first channel, or None when the pixi box lists no channels."""
    cursor.take(4)
    return cursor.uint(1) if cursor.uint(1) >= 1 else None


def colr_is_icc(cursor: Cursor) -> bool:
    # An nclx colr describes colours by code points; only these two carry a profile.
    return cursor.take(4) in (b"prof", b"rICC")


def auxc_is_alpha(cursor: Cursor) -> bool:
    cursor.take(4)
    return cursor.data[cursor.pos :].split(b"\0", 1)[0] in _ALPHA_URNS


def orientation(transforms: Iterable[tuple[bytes, int]]) -> int:
    """The EXIF orientation equivalent to irot (angle) and imir (axis) applied in order.

    irot turns anticlockwise by `angle` quarter turns; imir axis 1 exchanges left and
    right, axis 0 top and bottom (a left-right mirror, then a half turn).
    """
    mirrored, turns = 0, 0
    for typ, value in transforms:
        if typ == b"irot":
            turns += value
        elif typ == b"imir":
            # Mirroring reverses the sense of the turns made before it.
            mirrored, turns = 1 - mirrored, (0 if value else 2) - turns
    return _EXIF_ORIENTATIONS[mirrored][turns % 4]


# --- Items -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    type: bytes
    hidden: bool
    content_type: bytes = b""


class Meta:
    """The item structure of a `meta` box; each part is parsed when first asked for.

    Where a child box is repeated, the last pitm, iinf, iref and ipco count and every
    ipma adds to the associations.
    """

    def __init__(self, r: Reader, start: int, end: int, fmt: str) -> None:
        self._r = r
        self._fmt = fmt
        self._pitm: Span | None = None
        self._iinf: Span | None = None
        self._iref: Span | None = None
        self._ipco: Span | None = None
        self._ipma: list[Span] = []
        for typ, s, e in boxes(r, start + 4, end, f"{fmt} meta"):
            if typ == b"pitm":
                self._pitm = (s, e)
            elif typ == b"iinf":
                self._iinf = (s, e)
            elif typ == b"iref":
                self._iref = (s, e)
            elif typ == b"iprp":
                for t2, s2, e2 in boxes(r, s, e, f"{fmt} iprp"):
                    if t2 == b"ipco":
                        self._ipco = (s2, e2)
                    elif t2 == b"ipma":
                        self._ipma.append((s2, e2))

    @cached_property
    def primary(self) -> int | None:
        if self._pitm is None:
            return None
        fmt = self._fmt
        cursor = Cursor(box_body(self._r, *self._pitm, 8, f"{fmt} pitm"), f"{fmt} pitm box")
        return cursor.uint(4 if cursor.uint(4) >> 24 else 2)

    @cached_property
    def items(self) -> dict[int, Item]:
        """Item ID -> type; items described by version 0/1 infe boxes have no type."""
        if self._iinf is None:
            return {}
        r, fmt = self._r, self._fmt
        start, end = self._iinf
        version = box_body(r, start, end, 1, f"{fmt} iinf box")[0]
        items: dict[int, Item] = {}
        for typ, s, e in boxes(r, start + (6 if version == 0 else 8), end, f"{fmt} iinf"):
            if typ != b"infe":
                continue
            cursor = Cursor(box_body(r, s, e, _MAX_INFE, f"{fmt} infe"), f"{fmt} infe box")
            infe_version = cursor.uint(1)
            hidden = bool(cursor.uint(3) & 1)
            if infe_version < 2:
                continue
            item_id = cursor.uint(2 if infe_version == 2 else 4)
            cursor.take(2)  # protection index
            item_type = cursor.take(4)
            content_type = b""
            if item_type == b"mime":
                names = box_body(r, s + cursor.pos, e, _MAX_INFE_NAMES, f"{fmt} infe")
                # item_name, then content_type, each NUL-terminated
                content_type = names.partition(b"\0")[2].split(b"\0", 1)[0]
            items.setdefault(item_id, Item(item_type, hidden, content_type))
        return items

    def references(self, kinds: frozenset[bytes]) -> list[tuple[bytes, int, list[int]]]:
        """(kind, from item, to items) of the iref references of the given kinds."""
        if self._iref is None:
            return []
        r, fmt = self._r, self._fmt
        start, end = self._iref
        version = box_body(r, start, end, 4, f"{fmt} iref box")[0] if end > start else 0
        width = 2 if version == 0 else 4
        references = []
        for typ, s, e in boxes(r, start + 4, end, f"{fmt} iref"):
            if typ not in kinds:
                continue
            what = f"{fmt} {fourcc_name(typ)}"
            cursor = Cursor(box_body(r, s, e, MAX_TABLE, what), f"{what} reference")
            source = cursor.uint(width)
            targets = [cursor.uint(width) for _ in range(min(cursor.uint(2), cursor.left))]
            r.spend(len(targets), f"{fmt} iref")
            references.append((typ, source, targets))
        return references

    @cached_property
    def properties(self) -> list[Property]:
        if self._ipco is None:
            return []
        return list(boxes(self._r, *self._ipco, f"{self._fmt} ipco"))

    @cached_property
    def associations(self) -> dict[int, list[int]]:
        """Item ID -> its property indexes (1-based, into `properties`), in ipma order."""
        associations: dict[int, list[int]] = {}
        for s, e in self._ipma:
            data = box_body(self._r, s, e, MAX_TABLE, f"{self._fmt} ipma")
            entries = _parse_ipma(data, self._fmt)
            self._r.spend(len(entries), f"{self._fmt} ipma")
            associations.update(entries)
        return associations

    def item_properties(self, item: int | None) -> list[Property] | None:
        """The item's properties in the order they apply; None when it has no ipma entry."""
        if item is None or item not in self.associations:
            return None
        props = self.properties
        return [props[i - 1] for i in self.associations[item] if 0 < i <= len(props)]


def _parse_ipma(data: bytes, fmt: str) -> dict[int, list[int]]:
    cursor = Cursor(data, f"{fmt} ipma box")
    version = cursor.uint(1)
    flags = cursor.uint(3)
    associations: dict[int, list[int]] = {}
    for _ in range(min(cursor.uint(4), len(data))):
        item = cursor.uint(2 if version < 1 else 4)
        indexes = []
        for _ in range(cursor.uint(1)):
            if flags & 1:
                indexes.append(cursor.uint(2) & 0x7FFF)
            else:
                indexes.append(cursor.uint(1) & 0x7F)
        associations.setdefault(item, indexes)
    return associations
