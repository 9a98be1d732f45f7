"""TIFF: classic TIFF and little-endian BigTIFF.

IFD0 gives the facts, the IFD chain gives the frames (loops end the chain, as in
Pillow). Big-endian BigTIFF is `UnsupportedFormat`: Pillow 13 cannot open it. So are
photometric interpretations Pillow has no mode for (CFA/LinearRaw camera data,
transparency masks, LogLuv).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from imgpipe.errors import CorruptImage, UnsupportedFormat
from imgpipe.sniff._reader import Reader, make_facts
from imgpipe.sniff.exif import TIFF_INT_SIZES, TIFF_SIGNED
from imgpipe.specs import ImageFacts

_MAX_TIFF_ENTRIES: Final = 4096
_MAX_TIFF_VALUES: Final = 16


@dataclass(frozen=True)
class _TiffLayout:
    order: str  # struct byte order, "<" or ">"
    big: bool  # BigTIFF: 64-bit counts and offsets

    @property
    def count_size(self) -> int:
        return 8 if self.big else 2

    @property
    def entry_size(self) -> int:
        return 20 if self.big else 12

    @property
    def field_size(self) -> int:
        return 8 if self.big else 4

    def uint(self, data: bytes) -> int:
        return int.from_bytes(data, "little" if self.order == "<" else "big")


@dataclass
class _Ifd:
    entries: dict[int, tuple[int, int, bytes]] = field(default_factory=dict)
    next_offset: int = 0


def _tiff_ifd(r: Reader, layout: _TiffLayout, offset: int, *, entries: bool) -> _Ifd:
    """Read one IFD: its entries (tag -> type, count, value field) if asked, and the link."""
    if offset < 8:
        msg = f"TIFF IFD offset {offset} points into the file header"
        raise CorruptImage(msg)
    count = layout.uint(r.take(offset, layout.count_size, "TIFF IFD"))
    if count == 0 or count > _MAX_TIFF_ENTRIES:
        msg = f"TIFF IFD at offset {offset} declares {count} entries"
        raise CorruptImage(msg)
    table_at = offset + layout.count_size
    next_at = table_at + count * layout.entry_size
    ifd = _Ifd(next_offset=layout.uint(r.take(next_at, layout.field_size, "TIFF IFD link")))
    if entries:
        table = r.take(table_at, count * layout.entry_size, "TIFF IFD entries")
        counter = "Q" if layout.big else "I"
        for i in range(count):
            at = i * layout.entry_size
            tag, typ, n = struct.unpack_from(layout.order + "HH" + counter, table, at)
            value_at = at + 4 + layout.field_size  # the count is as wide as the value field
            # A repeated tag overrides the earlier one, as in Pillow.
            ifd.entries[tag] = (typ, n, table[value_at : value_at + layout.field_size])
    return ifd


def _tiff_values(r: Reader, layout: _TiffLayout, ifd: _Ifd, tag: int) -> tuple[int, ...]:
    """The first few integer values of a tag; () when absent or not an integer type."""
    entry = ifd.entries.get(tag)
    if entry is None:
        return ()
    typ, count, value_field = entry
    size = TIFF_INT_SIZES.get(typ)
    if size is None:
        return ()
    wanted = min(count, _MAX_TIFF_VALUES)
    if count * size <= layout.field_size:
        data = value_field
    else:
        offset = layout.uint(value_field)
        data = r.take(offset, wanted * size, f"TIFF tag {tag} value")
    return tuple(
        int.from_bytes(
            data[i * size : (i + 1) * size],
            "little" if layout.order == "<" else "big",
            signed=typ in TIFF_SIGNED,
        )
        for i in range(wanted)
    )


def _tiff_mode(
    photometric: int,
    compression: int,
    bits: tuple[int, ...],
    extra: tuple[int, ...],
    sample_format: int,
    big_endian: bool,
) -> tuple[str, bool]:
    """Mode and alpha as Pillow's TiffImagePlugin would pick them (common cases).

    Pillow looks the whole combination up in a table and refuses what is not in it; this
    follows the table's structure rather than copying it, so rarer combinations get the
    mode their photometric interpretation implies.
    """
    colour_samples = {2: 3, 5: 4, 6: 3, 8: 3}.get(photometric, 1)
    # ExtraSamples 0 is padding; 1 and 2 are (pre-multiplied / straight) alpha, and
    # Pillow treats a fourth RGB sample without ExtraSamples as alpha too.
    alpha_kind = extra[0] if extra else 2
    has_alpha = len(bits) > colour_samples and alpha_kind != 0
    depth = bits[0]
    if sample_format == 3:
        return "F", False
    if photometric in (0, 1):
        if depth == 1:
            return "1", False
        if depth <= 8:
            if has_alpha:
                return ("La" if alpha_kind == 1 else "LA"), True
            return "L", False
        if depth in (12, 16) and sample_format != 2:
            return ("I;16B" if big_endian and photometric == 1 and depth == 16 else "I;16"), False
        return "I", False
    if photometric == 2:
        return ("RGBA" if has_alpha else "RGB"), has_alpha
    if photometric == 3:
        return ("PA" if has_alpha else "P"), has_alpha
    if photometric == 5:
        return "CMYK", False
    if photometric == 6:
        # Pillow lets libtiff convert compressed YCbCr to RGB; raw YCbCr stays YCbCr.
        if compression != 1:
            return "RGB", False
        return ("YCbCr" if len(bits) >= 3 else "L"), False
    if photometric == 8:
        return "LAB", False
    # Transparency masks, CFA and LinearRaw camera data, LogLuv...: Pillow cannot open them.
    msg = f"unsupported format: TIFF with photometric interpretation {photometric}"
    raise UnsupportedFormat(msg)


def sniff_tiff(r: Reader, frame_cap: int) -> ImageFacts:
    head = r.take(0, 8, "TIFF header")
    layout = _TiffLayout(order="<" if head[:2] == b"II" else ">", big=head[2:4] in (b"+\0", b"\0+"))
    if layout.big and layout.order == ">":
        # Pillow 13 only recognises little-endian BigTIFF ("II+"); "MM\0+" files fail to
        # open there, so they are refused here rather than in the resize step.
        msg = "unsupported format: big-endian BigTIFF (Pillow cannot read it)"
        raise UnsupportedFormat(msg)
    if layout.big:
        big_head = r.take(8, 8, "BigTIFF header")
        if layout.uint(head[4:6]) != 8 or layout.uint(head[6:8]) != 0:
            msg = "BigTIFF header declares an unsupported offset size"
            raise CorruptImage(msg)
        first = layout.uint(big_head)
    else:
        first = layout.uint(head[4:8])
    ifd = _tiff_ifd(r, layout, first, entries=True)

    def value(tag: int, default: int) -> int:
        values = _tiff_values(r, layout, ifd, tag)
        return values[0] if values else default

    width, height = value(256, 0), value(257, 0)
    compression = value(259, 1)
    # Old-style JPEG compression is always YCbCr, whatever the tag says (as in Pillow).
    photometric = 6 if compression == 6 else value(262, 0)
    default_samples = 3 if compression == 6 and photometric in (2, 6) else 1
    samples = value(277, default_samples)
    bits = _tiff_values(r, layout, ifd, 258) or (1,)
    extra = _tiff_values(r, layout, ifd, 338)
    if value(284, 1) == 2 and extra and max(extra) == 0:
        # Planar files can ignore trailing padding samples, as Pillow does.
        samples -= len(extra)
        extra = ()
    if len(bits) == 1 and samples > 1:
        bits = bits * min(samples, _MAX_TIFF_VALUES)
    bits = bits[: max(samples, 1)]
    mode, has_alpha = _tiff_mode(
        photometric, compression, bits, extra, value(339, 1), layout.order == ">"
    )
    icc_entry = ifd.entries.get(34675)
    return make_facts(
        "TIFF",
        width,
        height,
        mode=mode,
        orientation=value(274, 1),
        frames=_tiff_frames(r, layout, first, ifd.next_offset, frame_cap),
        has_alpha=has_alpha,
        bit_depth=bits[0],
        icc_profile=icc_entry is not None and icc_entry[1] > 0,
    )


def _tiff_frames(r: Reader, layout: _TiffLayout, first: int, link: int, frame_cap: int) -> int:
    seen = {first}
    frames = 1
    # Pillow ends the chain at an IFD it has already visited instead of looping.
    while link and link not in seen:
        frames += 1
        if frames > frame_cap:
            break
        seen.add(link)
        link = _tiff_ifd(r, layout, link, entries=False).next_offset
    return min(frames, frame_cap + 1)
