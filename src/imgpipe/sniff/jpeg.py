"""JPEG: all SOF types, the EXIF orientation and whether an ICC profile is complete.

Notes and limitations: the orientation comes from the first APP1 "Exif" segment; the
ICC profile from APP2 "ICC_PROFILE" segments (the complete set only, as in Pillow).
Pillow cannot decode precisions other than 8 bits; they are reported in `bit_depth`,
not rejected here. A JPEG with other than 1, 3 or 4 components is `UnsupportedFormat`
(Pillow refuses it too). Multi-picture (MPO) camera files are reported as a one-frame
JPEG; Pillow calls them "MPO" with one frame per picture.
"""

from __future__ import annotations

import struct
from typing import Final

from imgpipe.errors import CorruptImage, UnsupportedFormat
from imgpipe.sniff._reader import Reader, make_facts
from imgpipe.sniff.exif import MAX_EXIF, exif_orientation
from imgpipe.specs import ImageFacts

_MAX_JPEG_STEPS: Final = 100_000
_SOF_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF: Final = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
# TEM and RSTn have no length field; a second SOI is tolerated by libjpeg and Pillow.
_STANDALONE_MARKERS: Final = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
_JPEG_MODES: Final = {1: "L", 3: "RGB", 4: "CMYK"}


def sniff_jpeg(r: Reader, frame_cap: int) -> ImageFacts:
    pos = 2
    sof: tuple[int, int, int, int, int] | None = None
    orientation = 1
    exif_seen = False
    icc_parts: list[tuple[int, int]] = []
    icc = False
    # One step per segment or per stray byte: libjpeg and Pillow skip bytes between
    # segments, so we do too, within the step budget.
    for _ in range(_MAX_JPEG_STEPS):
        if r.u8(pos, "JPEG marker") != 0xFF:
            pos += 1
            continue
        marker = r.u8(pos + 1, "JPEG marker")
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        pos += 2
        if marker == 0x00 or marker in _STANDALONE_MARKERS:
            continue
        if marker == 0xD9:
            msg = "JPEG ends (EOI) before its frame header (SOF)"
            raise CorruptImage(msg)
        if marker == 0xDA:
            if sof is None:
                msg = "JPEG scan (SOS) comes before any frame header (SOF)"
                raise CorruptImage(msg)
            return _jpeg_facts(sof, orientation, icc)
        (length,) = struct.unpack(">H", r.take(pos, 2, "JPEG segment length"))
        if length < 2:
            msg = f"JPEG segment 0xFF{marker:02X} has an invalid length {length}"
            raise CorruptImage(msg)
        body, body_len = pos + 2, length - 2
        if marker in _SOF_MARKERS and sof is None:
            if body_len < 6:
                msg = "JPEG frame header (SOF) is truncated"
                raise CorruptImage(msg)
            precision, height, width, components = struct.unpack(
                ">BHHB", r.take(body, 6, "JPEG frame header")
            )
            sof = (marker, precision, width, height, components)
            # Pillow assembles the ICC profile at the first SOF, and only when every
            # chunk is there.
            icc = bool(icc_parts) and sorted(icc_parts)[0][1] == len(icc_parts)
        elif marker == 0xE1 and not exif_seen:
            head = r.take(body, min(body_len, 6), "JPEG APP1 segment")
            if head == b"Exif\0\0":
                exif_seen = True
                orientation = exif_orientation(
                    r.take(body + 6, min(body_len - 6, MAX_EXIF), "JPEG EXIF segment")
                )
        elif marker == 0xE2 and body_len >= 14:
            head = r.take(body, 14, "JPEG APP2 segment")
            if head.startswith(b"ICC_PROFILE\0"):
                icc_parts.append((head[12], head[13]))
        pos = body + body_len
    msg = "JPEG has too many segments before its first scan"
    raise CorruptImage(msg)


def _jpeg_facts(sof: tuple[int, int, int, int, int], orientation: int, icc: bool) -> ImageFacts:
    marker, precision, width, height, components = sof
    if components == 0:
        msg = "JPEG frame header declares no colour components"
        raise CorruptImage(msg)
    mode = _JPEG_MODES.get(components)
    if mode is None:
        msg = f"unsupported format: JPEG with {components} colour components"
        raise UnsupportedFormat(msg)
    return make_facts(
        "JPEG",
        width,
        height,
        mode=mode,
        orientation=orientation,
        bit_depth=precision,
        icc_profile=icc,
        progressive=marker in _PROGRESSIVE_SOF,
    )
