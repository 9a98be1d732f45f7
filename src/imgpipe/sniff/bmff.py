"""ISO BMFF structure: box walking, and the primary item's properties from a `meta` box.

AVIF is a HEIF (ISO/IEC 23008-12) image format, so its still images are items of a
`meta` box: the primary (pitm), its properties (iprp: ipco/ipma) and its auxiliary
images (iref auxl).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from imgpipe.errors import CorruptImage
from imgpipe.sniff._reader import Cursor, Reader, fourcc_name

_MAX_BOXES: Final = 10_000
_ALPHA_URNS: Final = (b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha", b"urn:mpeg:hevc:2015:auxid:1")
MAX_TABLE: Final = 256 * 1024
_MAX_PROPERTY: Final = 256


def boxes(r: Reader, start: int, end: int, what: str) -> Iterator[tuple[bytes, int, int]]:
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


@dataclass
class BmffImage:
    """What libavif would report for one image (item or track)."""

    width: int = 0
    height: int = 0
    bit_depth: int = 8
    monochrome: bool = False
    icc: bool = False
    alpha: bool = False
    orientation: int = 1


def irot_imir_orientation(angle: int | None, axis: int | None) -> int:
    """The EXIF orientation equivalent to irot/imir, exactly as Pillow's _avif.c maps it."""
    if angle == 1:
        return 8 if axis is None else (7 if axis else 5)
    if angle == 2:
        return 3 if axis is None else (4 if axis else 2)
    if angle == 3:
        return 6 if axis is None else (5 if axis else 7)
    return 1 if axis is None else (2 if axis else 4)


def apply_properties(
    r: Reader, image: BmffImage, props: list[tuple[bytes, int, int]]
) -> tuple[bool, bool]:
    """Fill `image` from item properties; return (has ispe, is an alpha auxiliary).

    The first property of each type wins, so that when associations are unknown and all
    properties are applied, the primary image's (which writers list first) are used.
    """
    angle: int | None = None
    axis: int | None = None
    is_alpha = False
    seen: set[bytes] = set()
    for typ, start, end in props:
        if typ in seen:
            continue
        seen.add(typ)
        what = f"AVIF '{fourcc_name(typ)}' property"
        body = box_body(r, start, end, _MAX_PROPERTY, what)
        cursor = Cursor(body, what)
        if typ == b"ispe":
            cursor.take(4)
            image.width, image.height = cursor.uint(4), cursor.uint(4)
        elif typ == b"pixi":
            cursor.take(4)
            if cursor.uint(1) >= 1:
                image.bit_depth = cursor.uint(1)
        elif typ == b"av1C":
            flags = cursor.take(3)[2]
            image.monochrome = bool(flags & 0x10)
            if flags & 0x40:
                image.bit_depth = 12 if flags & 0x20 else 10
        elif typ == b"colr":
            # An item may carry an nclx and an ICC colr; either order.
            seen.discard(b"colr")
            image.icc = image.icc or cursor.take(4) in (b"prof", b"rICC")
        elif typ == b"irot":
            angle = cursor.uint(1) & 3
        elif typ == b"imir":
            axis = cursor.uint(1) & 1
        elif typ == b"auxC":
            cursor.take(4)
            is_alpha = body[4:].split(b"\0", 1)[0] in _ALPHA_URNS
    image.orientation = irot_imir_orientation(angle, axis)
    return b"ispe" in seen, is_alpha


def _parse_ipma(data: bytes) -> dict[int, list[int]]:
    cursor = Cursor(data, "AVIF ipma box")
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


def _parse_auxl(r: Reader, start: int, end: int) -> list[tuple[int, list[int]]]:
    """`auxl` references (from item, to items) of an iref box."""
    version = box_body(r, start, end, 4, "AVIF iref box")[0] if end > start else 0
    width = 2 if version == 0 else 4
    references = []
    for typ, s, e in boxes(r, start + 4, end, "AVIF iref"):
        if typ != b"auxl":
            continue
        cursor = Cursor(box_body(r, s, e, MAX_TABLE, "AVIF auxl"), "AVIF auxl reference")
        source = cursor.uint(width)
        targets = [cursor.uint(width) for _ in range(min(cursor.uint(2), cursor.left))]
        references.append((source, targets))
    return references


def primary_item(r: Reader, start: int, end: int) -> BmffImage:
    """The primary item of a `meta` box."""
    primary: int | None = None
    props: list[tuple[bytes, int, int]] = []
    associations: dict[int, list[int]] = {}
    auxl: list[tuple[int, list[int]]] = []
    for typ, s, e in boxes(r, start + 4, end, "AVIF meta"):
        if typ == b"pitm":
            cursor = Cursor(box_body(r, s, e, 8, "AVIF pitm"), "AVIF pitm box")
            primary = cursor.uint(4 if cursor.uint(4) >> 24 else 2)
        elif typ == b"iref":
            auxl = _parse_auxl(r, s, e)
        elif typ == b"iprp":
            for t2, s2, e2 in boxes(r, s, e, "AVIF iprp"):
                if t2 == b"ipco":
                    props = list(boxes(r, s2, e2, "AVIF ipco"))
                elif t2 == b"ipma":
                    associations.update(_parse_ipma(box_body(r, s2, e2, MAX_TABLE, "AVIF ipma")))

    def item_props(item: int | None) -> list[tuple[bytes, int, int]] | None:
        if item is None or item not in associations:
            return None
        return [props[i - 1] for i in associations[item] if 0 < i <= len(props)]

    image = BmffImage()
    own = item_props(primary)
    has_ispe, _ = apply_properties(r, image, own if own is not None else props)
    if not has_ispe:
        # Without usable associations the largest image is the best guess at the primary.
        sizes = [_ispe(r, s, e) for typ, s, e in props if typ == b"ispe"]
        if not sizes:
            msg = "AVIF has no image size (ispe) property"
            raise CorruptImage(msg)
        image.width, image.height = max(sizes, key=lambda wh: wh[0] * wh[1])
    for source, targets in auxl:
        if primary is None or primary in targets:
            source_props = item_props(source)
            if source_props and apply_properties(r, BmffImage(), source_props)[1]:
                image.alpha = True
    return image


def _ispe(r: Reader, start: int, end: int) -> tuple[int, int]:
    cursor = Cursor(box_body(r, start, end, 12, "AVIF ispe"), "AVIF ispe property")
    cursor.take(4)
    return cursor.uint(4), cursor.uint(4)
