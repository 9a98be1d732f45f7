"""PNG: IHDR, and the chunks before the first IDAT.

Notes and limitations: the walk stops at the first IDAT, so an eXIf chunk after the
image data is not seen. APNG frames are the acTL count (plus the default image when it
is not a frame), as declared, not counted.
"""

from __future__ import annotations

import struct
from typing import Final

from imgpipe.errors import CorruptImage
from imgpipe.sniff._reader import Reader, make_facts
from imgpipe.sniff.exif import MAX_EXIF, exif_orientation
from imgpipe.specs import ImageFacts

_MAX_PNG_CHUNKS: Final = 10_000
# (bit depth, colour type) -> mode, as Pillow's PngImagePlugin maps them.
_PNG_MODES: Final = {
    (1, 0): "1",
    (2, 0): "L",
    (4, 0): "L",
    (8, 0): "L",
    (16, 0): "I;16",
    (8, 2): "RGB",
    (16, 2): "RGB",
    (1, 3): "P",
    (2, 3): "P",
    (4, 3): "P",
    (8, 3): "P",
    (8, 4): "LA",
    (16, 4): "RGBA",
    (8, 6): "RGBA",
    (16, 6): "RGBA",
}


def sniff_png(r: Reader, frame_cap: int) -> ImageFacts:
    length, ctype = struct.unpack(">I4s", r.take(8, 8, "PNG IHDR chunk"))
    if ctype != b"IHDR":
        msg = "PNG does not start with an IHDR chunk"
        raise CorruptImage(msg)
    if length < 13:
        msg = "PNG IHDR chunk is truncated"
        raise CorruptImage(msg)
    width, height, depth, colour = struct.unpack(">IIBB", r.take(16, 10, "PNG IHDR chunk"))
    mode = _PNG_MODES.get((depth, colour))
    if mode is None:
        msg = f"PNG with invalid bit depth {depth} for colour type {colour}"
        raise CorruptImage(msg)
    has_alpha = colour in (4, 6)
    icc = False
    orientation = 1
    actl_frames: int | None = None
    actl_seen = False
    fctl_before_idat = False
    pos = 8 + 12 + length
    for _ in range(_MAX_PNG_CHUNKS):
        length, ctype = struct.unpack(">I4s", r.take(pos, 8, "PNG chunk header"))
        if length > 0x7FFF_FFFF or not (ctype.isascii() and ctype.isalpha()):
            msg = f"PNG chunk at offset {pos} is damaged (type {ctype!r}, length {length})"
            raise CorruptImage(msg)
        body = pos + 8
        if ctype == b"IDAT":
            break
        if ctype == b"IEND":
            msg = "PNG has no image data (IEND before IDAT)"
            raise CorruptImage(msg)
        if ctype == b"tRNS":
            has_alpha = True
        elif ctype == b"iCCP":
            icc = True
        elif ctype == b"acTL":
            if length < 8:
                msg = "APNG acTL chunk is truncated"
                raise CorruptImage(msg)
            (declared,) = struct.unpack(">I", r.take(body, 4, "APNG acTL chunk"))
            # Pillow ignores a repeated acTL and an out-of-range count (plain PNG then).
            if actl_seen:
                actl_frames = None
            elif 0 < declared <= 0x8000_0000:
                actl_frames = declared
            actl_seen = True
        elif ctype == b"fcTL":
            fctl_before_idat = True
        elif ctype == b"eXIf":
            orientation = exif_orientation(r.take(body, min(length, MAX_EXIF), "PNG eXIf chunk"))
        pos = body + length + 4
    else:
        msg = f"PNG has more than {_MAX_PNG_CHUNKS} chunks before its image data"
        raise CorruptImage(msg)
    frames = 1
    if actl_frames is not None:
        # An IDAT not announced by an fcTL is a default image outside the animation,
        # which Pillow counts as an extra frame.
        frames = actl_frames + (0 if fctl_before_idat else 1)
    return make_facts(
        "PNG",
        width,
        height,
        mode=mode,
        orientation=orientation,
        frames=frames,
        has_alpha=has_alpha,
        bit_depth=depth,
        icc_profile=icc,
    )
