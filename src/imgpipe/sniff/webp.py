"""WebP: simple lossy and lossless files, and extended (VP8X) ones.

Animation frames are counted from ANMF chunks.
"""

from __future__ import annotations

import struct
from typing import Final

from imgpipe.errors import CorruptImage
from imgpipe.sniff._reader import Reader, fourcc_name, make_facts
from imgpipe.sniff.exif import MAX_EXIF, exif_orientation
from imgpipe.specs import ImageFacts

_MAX_WEBP_CHUNKS: Final = 100_000
_VP8X_ALPHA: Final = 0x10
_VP8X_EXIF: Final = 0x08
_VP8X_ANIMATION: Final = 0x02


def _vp8_size(r: Reader, body: int, size: int) -> tuple[int, int]:
    """Frame size from a lossy VP8 key frame header."""
    if size < 10:
        msg = "WebP VP8 bitstream is truncated"
        raise CorruptImage(msg)
    header = r.take(body, 10, "WebP VP8 frame header")
    tag = int.from_bytes(header[:3], "little")
    # libwebp refuses an image whose first frame is not a visible key frame, or whose
    # first partition is larger than the chunk.
    if tag & 1 or not tag & 0x10 or (tag >> 5) >= size or header[3:6] != b"\x9d\x01\x2a":
        msg = "WebP VP8 bitstream does not start with a valid key frame"
        raise CorruptImage(msg)
    w, h = struct.unpack_from("<HH", header, 6)
    return w & 0x3FFF, h & 0x3FFF


def _vp8l_info(r: Reader, body: int, size: int) -> tuple[int, int, bool]:
    """Size and alpha hint from a lossless VP8L header."""
    if size < 5:
        msg = "WebP VP8L bitstream is truncated"
        raise CorruptImage(msg)
    header = r.take(body, 5, "WebP VP8L header")
    bits = int.from_bytes(header[1:], "little")
    if header[0] != 0x2F or bits >> 29:
        msg = "WebP VP8L bitstream has a bad signature or version"
        raise CorruptImage(msg)
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)


def sniff_webp(r: Reader, frame_cap: int) -> ImageFacts:
    (riff_size,) = struct.unpack("<I", r.take(4, 4, "WebP RIFF header"))
    end = 8 + riff_size
    if end > r.size:
        msg = f"WebP RIFF data ({end} bytes) runs past the end of the file ({r.size} bytes)"
        raise CorruptImage(msg)
    fourcc, size = struct.unpack("<4sI", r.take(12, 8, "WebP first chunk"))
    if 20 + size > end:
        msg = f"WebP '{fourcc_name(fourcc)}' chunk runs past the end of the RIFF data"
        raise CorruptImage(msg)
    if fourcc == b"VP8 ":
        width, height = _vp8_size(r, 20, size)
        return make_facts("WEBP", width, height, mode="RGB")
    if fourcc == b"VP8L":
        width, height, alpha = _vp8l_info(r, 20, size)
        return make_facts("WEBP", width, height, mode="RGBA" if alpha else "RGB", has_alpha=alpha)
    if fourcc != b"VP8X":
        msg = f"WebP starts with an unknown '{fourcc_name(fourcc)}' chunk"
        raise CorruptImage(msg)
    if size < 10:
        msg = "WebP VP8X chunk is truncated"
        raise CorruptImage(msg)
    vp8x = r.take(20, 10, "WebP VP8X chunk")
    flags = vp8x[0]
    width = int.from_bytes(vp8x[4:7], "little") + 1
    height = int.from_bytes(vp8x[7:10], "little") + 1
    return _webp_extended(r, 20 + size + (size & 1), end, flags, width, height, frame_cap)


def _webp_extended(
    r: Reader, pos: int, end: int, flags: int, width: int, height: int, frame_cap: int
) -> ImageFacts:
    animated = bool(flags & _VP8X_ANIMATION)
    frames = 0
    icc = False
    orientation = 1
    alph = False
    image: tuple[int, int, bool | None] | None = None  # width, height, VP8L alpha bit
    for _ in range(_MAX_WEBP_CHUNKS):
        if pos + 8 > end:
            break
        fourcc, size = struct.unpack("<4sI", r.take(pos, 8, "WebP chunk header"))
        body = pos + 8
        if body + size > end:
            msg = f"WebP '{fourcc_name(fourcc)}' chunk runs past the end of the RIFF data"
            raise CorruptImage(msg)
        if fourcc == b"ICCP":
            icc = True
        elif fourcc == b"EXIF":
            orientation = exif_orientation(r.take(body, min(size, MAX_EXIF), "WebP EXIF chunk"))
        elif fourcc == b"ALPH":
            alph = True
        elif fourcc == b"ANMF" and animated:
            if size < 16:
                msg = "WebP animation frame (ANMF) is truncated"
                raise CorruptImage(msg)
            frames += 1
            if frames > frame_cap:
                break
        elif fourcc == b"VP8 " and not animated and image is None:
            image = (*_vp8_size(r, body, size), None)
        elif fourcc == b"VP8L" and not animated and image is None:
            image = _vp8l_info(r, body, size)
        pos = body + size + (size & 1)
        # Metadata other than ICC follows the image data; skip reading further when the
        # header says there is no EXIF to find.
        if image is not None and not flags & _VP8X_EXIF:
            break
    else:
        msg = "WebP has too many chunks"
        raise CorruptImage(msg)
    if animated:
        if frames == 0:
            msg = "animated WebP has no frames (ANMF chunks)"
            raise CorruptImage(msg)
        has_alpha = bool(flags & _VP8X_ALPHA)
    else:
        if image is None:
            msg = "WebP has no image data (VP8/VP8L chunk)"
            raise CorruptImage(msg)
        if image[:2] != (width, height):
            msg = f"WebP canvas {width}x{height} does not match its image {image[0]}x{image[1]}"
            raise CorruptImage(msg)
        # libwebp (and so Pillow) takes a lossless bitstream's own alpha hint over the
        # VP8X flag; either way an ALPH chunk means alpha.
        hint = image[2]
        has_alpha = alph or (hint if hint is not None else bool(flags & _VP8X_ALPHA))
    return make_facts(
        "WEBP",
        width,
        height,
        mode="RGBA" if has_alpha else "RGB",
        orientation=orientation,
        frames=max(1, min(frames, frame_cap + 1)),
        has_alpha=has_alpha,
        icc_profile=icc,
    )
