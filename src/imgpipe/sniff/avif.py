"""AVIF: still images and image sequences, as libavif (under Pillow's AVIF plugin) sees them.

Still images come from `meta` (pitm/ipma/ispe/pixi/av1C/colr/irot/imir, alpha from an
auxl-referenced auxC alpha item); image sequences (`avis`) take the frame count and size
from the colour track as libavif does. Orientation is the EXIF value equivalent to
irot/imir, mapped exactly as Pillow's AVIF plugin does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Final

from imgpipe.errors import CorruptImage
from imgpipe.sniff._reader import Cursor, Reader, make_facts
from imgpipe.sniff.bmff import (
    MAX_TABLE,
    Meta,
    Property,
    auxc_is_alpha,
    box_body,
    boxes,
    colr_is_icc,
    ftyp_brands,
    ispe_size,
    orientation,
    pixi_depth,
    property_cursor,
)
from imgpipe.specs import ImageFacts

_MAX_TRACKS: Final = 16
_AUXL: Final = frozenset({b"auxl"})


@dataclass
class _AvifImage:
    """What libavif would report for one image (item or track)."""

    width: int = 0
    height: int = 0
    bit_depth: int = 8
    monochrome: bool = False
    icc: bool = False
    alpha: bool = False
    orientation: int = 1


def _apply_properties(r: Reader, image: _AvifImage, props: list[Property]) -> tuple[bool, bool]:
    """Fill `image` from item properties; return (has ispe, is an alpha auxiliary).

    The first property of each type wins, so that when associations are unknown and all
    properties are applied, the primary image's (which writers list first) are used.
    """
    angle: int | None = None
    axis: int | None = None
    is_alpha = False
    seen: set[bytes] = set()
    for prop in props:
        typ = prop[0]
        if typ in seen:
            continue
        seen.add(typ)
        cursor = property_cursor(r, prop, "AVIF")
        if typ == b"ispe":
            image.width, image.height = ispe_size(cursor)
        elif typ == b"pixi":
            depth = pixi_depth(cursor)
            if depth is not None:
                image.bit_depth = depth
        elif typ == b"av1C":
            flags = cursor.take(3)[2]
            image.monochrome = bool(flags & 0x10)
            if flags & 0x40:
                image.bit_depth = 12 if flags & 0x20 else 10
        elif typ == b"colr":
            # An item may carry an nclx and an ICC colr; either order.
            seen.discard(b"colr")
            image.icc = image.icc or colr_is_icc(cursor)
        elif typ == b"irot":
            angle = cursor.uint(1) & 3
        elif typ == b"imir":
            axis = cursor.uint(1) & 1
        elif typ == b"auxC":
            is_alpha = auxc_is_alpha(cursor)
    # libavif applies the mirror after the rotation, whatever order ipma lists them in
    # (MIAF fixes that order), and Pillow maps the pair to EXIF the same way.
    fixed_order = ((b"irot", angle), (b"imir", axis))
    image.orientation = orientation((typ, v) for typ, v in fixed_order if v is not None)
    return b"ispe" in seen, is_alpha


def _primary_item(r: Reader, start: int, end: int) -> _AvifImage:
    """The primary item of a `meta` box."""
    meta = Meta(r, start, end, "AVIF")
    primary = meta.primary
    props = meta.properties
    image = _AvifImage()
    own = meta.item_properties(primary)
    has_ispe, _ = _apply_properties(r, image, own if own is not None else props)
    if not has_ispe:
        # Without usable associations the largest image is the best guess at the primary.
        sizes = [ispe_size(property_cursor(r, p, "AVIF")) for p in props if p[0] == b"ispe"]
        if not sizes:
            msg = "AVIF has no image size (ispe) property"
            raise CorruptImage(msg)
        image.width, image.height = max(sizes, key=lambda wh: wh[0] * wh[1])
    for _, source, targets in meta.references(_AUXL):
        if primary is None or primary in targets:
            source_props = meta.item_properties(source)
            if source_props and _apply_properties(r, _AvifImage(), source_props)[1]:
                image.alpha = True
    return image


@dataclass
class _Track:
    track_id: int = 0
    width: int = 0
    height: int = 0
    aux_for: list[int] = field(default_factory=list)
    samples: int = 0
    av01: bool = False
    image: _AvifImage = field(default_factory=_AvifImage)


def _avif_track(r: Reader, start: int, end: int) -> _Track:
    track = _Track()
    stack = [(start, end)]
    # trak -> mdia -> minf -> stbl -> stsd: a fixed path, walked without recursion.
    containers = {b"tref", b"mdia", b"minf", b"stbl"}
    for _ in range(8):
        if not stack:
            break
        s0, e0 = stack.pop()
        for typ, s, e in boxes(r, s0, e0, "AVIF track"):
            if typ in containers:
                stack.append((s, e))
            elif typ == b"tkhd":
                cursor = Cursor(box_body(r, s, e, 96, "AVIF tkhd"), "AVIF tkhd box")
                long_times = cursor.uint(1) == 1
                cursor.take(3 + (16 if long_times else 8))
                track.track_id = cursor.uint(4)
                cursor.take(4 + (8 if long_times else 4) + 52)
                track.width, track.height = cursor.uint(4) >> 16, cursor.uint(4) >> 16
            elif typ == b"auxl":
                cursor = Cursor(box_body(r, s, e, MAX_TABLE, "AVIF auxl"), "AVIF auxl box")
                track.aux_for = [cursor.uint(4) for _ in range(cursor.left // 4)]
            elif typ == b"stsz":
                cursor = Cursor(box_body(r, s, e, 12, "AVIF stsz"), "AVIF stsz box")
                cursor.take(8)
                track.samples = cursor.uint(4)
            elif typ == b"stsd":
                _avif_sample_entry(r, s, e, track)
    return track


def _avif_sample_entry(r: Reader, start: int, end: int, track: _Track) -> None:
    """Read the track's first sample entry, if it is AV1."""
    typ, s, e = next(boxes(r, start + 8, end, "AVIF stsd"), (b"", 0, 0))
    if typ == b"av01" and e - s >= 78:
        track.av01 = True
        # A VisualSampleEntry has 78 bytes of fields before its child boxes.
        _apply_properties(r, track.image, list(boxes(r, s + 78, e, "AVIF av01")))


def sniff_avif(r: Reader, frame_cap: int) -> ImageFacts:
    major, brands = ftyp_brands(r.head)
    sequence_brand = b"avis" in brands
    meta: tuple[int, int] | None = None
    moov: tuple[int, int] | None = None
    for typ, s, e in boxes(r, 0, r.size, "AVIF file"):
        if typ == b"meta" and meta is None:
            meta = (s, e)
        elif typ == b"moov" and moov is None:
            moov = (s, e)
        if meta is not None and (moov is not None or not sequence_brand or major == b"avif"):
            break
    tracks: list[_Track] = []
    if moov is not None:
        traks = ((s, e) for typ, s, e in boxes(r, *moov, "AVIF moov") if typ == b"trak")
        tracks = [_avif_track(r, s, e) for s, e in islice(traks, _MAX_TRACKS)]
    colour = next((t for t in tracks if t.av01 and not t.aux_for), None)
    # libavif honours an avif major brand; otherwise it prefers tracks when present.
    if colour is not None and major != b"avif":
        image = colour.image
        if meta is not None:
            item = _primary_item(r, *meta)
            image.orientation = item.orientation
        width, height = colour.width, colour.height
        alpha = any(colour.track_id in t.aux_for for t in tracks)
        if colour.samples == 0:
            msg = "AVIF image sequence has no samples"
            raise CorruptImage(msg)
        frames = colour.samples
    elif meta is not None:
        image = _primary_item(r, *meta)
        width, height, alpha, frames = image.width, image.height, image.alpha, 1
    else:
        msg = "AVIF has neither image items (meta) nor an image track (moov)"
        raise CorruptImage(msg)
    mode = "RGBA" if alpha else ("L" if image.monochrome else "RGB")
    return make_facts(
        "AVIF",
        width,
        height,
        mode=mode,
        orientation=image.orientation,
        frames=frames,
        has_alpha=alpha,
        bit_depth=image.bit_depth,
        icc_profile=image.icc,
    )
