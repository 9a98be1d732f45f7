"""Identify an image and read its facts from the header, without Pillow and without pixels.

The validate Lambda has no Pillow layer. It calls `sniff` to decide from the bytes (never
from the key's extension) what an upload is, and to read what it needs to reject hostile
or unsupported uploads before anything is decoded or even fully downloaded.

Bytes come through a `ByteSource`; in production that is an S3 ranged GET behind a block
cache, where a request costs far more than its bytes. So `sniff` reads one first block
(64 KiB, which holds the whole header of nearly every JPEG, PNG, WebP, AVIF and HEIC)
and goes further only by offset, to the structures a format needs: the next JPEG
segment, a TIFF IFD, a BMFF box header, the chunk after a WebP bitstream. GIF is the
exception: its frames can only be counted by walking every sub-block, so a GIF is read
to its end (or to the frame after `frame_limit`); sequential walks read in growing
blocks to keep the number of requests logarithmic in the file size.

The facts follow Pillow's view of the file, because Pillow is what the resize Lambda
decodes with (HEIF through pi-heif's plugin): Pillow's format names, and the mode that
`Image.open(...).mode` reports right after opening (e.g. 16-bit RGB PNG is "RGB",
16-bit grey+alpha PNG is "RGBA", a GIF whose palette is a plain grey ramp is "L", grey
AVIF is "L" but grey AVIF with alpha is "RGBA"). Width and height are as stored, before
EXIF orientation. Pillow 13 reports a TIFF whose Orientation tag is 5-8 with width and
height already swapped (it transposes TIFFs itself on load), and pi-heif reports a HEIF
upright (libheif applies its irot/imir); `ImageFacts.oriented_size` gives that view.

Every loop is bounded, nothing is allocated from a length field read from the file, and
any input ends in `ImageFacts` (width and height > 0) or one of:

* `EmptyObject` -- the object has no bytes;
* `UnsupportedFormat` -- not a supported image, or not on the allow-list; the message
  names what it looks like when that can be told ("HTML document", "ZIP archive", ...);
* `CorruptImage` -- the bytes claim to be a supported image but the header is
  truncated or inconsistent.

One module per format, as Pillow has one plugin per format, each with its own notes and
limitations: `jpeg`, `png`, `gif`, `webp`, `tiff`, and `avif` and `heif` on the ISO
BMFF parsing they share in `bmff`; beside them `identify` (what the first bytes are),
`exif` (the EXIF orientation) and `_reader` (the byte source, the bounded reader and
its budgets). A HEIF is identified exactly when pi-heif's opener takes it (by its major
brand), after AVIF as Pillow tries them; its facts are its primary image's, with the
container's top-level images counted in `ImageFacts.images`; an image sequence without
a still image, or a picture not coded in HEVC, is `UnsupportedFormat`.

Frame counts are exact up to `frame_limit`; past it, counted formats (GIF, WebP, TIFF)
stop and report `frame_limit + 1`, while declared counts (APNG acTL, AVIF sample
tables) are reported as declared. Without a `frame_limit`, counting stops after
10,000 frames (reported as 10,001). A HEIF is one frame: only its primary image shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from imgpipe.errors import EmptyObject, UnsupportedFormat
from imgpipe.sniff._reader import ByteSource, BytesSource, Reader
from imgpipe.sniff.avif import sniff_avif
from imgpipe.sniff.gif import sniff_gif
from imgpipe.sniff.heif import sniff_heif
from imgpipe.sniff.identify import identify
from imgpipe.sniff.jpeg import sniff_jpeg
from imgpipe.sniff.png import sniff_png
from imgpipe.sniff.tiff import sniff_tiff
from imgpipe.sniff.webp import sniff_webp
from imgpipe.specs import SOURCE_FORMATS, ImageFacts

__all__ = ["ByteSource", "BytesSource", "sniff"]

# Counting formats stop here even without a frame_limit (and report one more).
_MAX_COUNTED_FRAMES: Final = 10_000
_PARSERS: Final = {
    "JPEG": sniff_jpeg,
    "PNG": sniff_png,
    "GIF": sniff_gif,
    "WEBP": sniff_webp,
    "TIFF": sniff_tiff,
    "AVIF": sniff_avif,
    "HEIF": sniff_heif,
}


def sniff(
    source: ByteSource,
    *,
    allowed: Iterable[str] = SOURCE_FORMATS,
    frame_limit: int | None = None,
) -> ImageFacts:
    """Identify the image in `source` from its bytes and read its facts from the header.

    `allowed` is the allow-list of Pillow format names. `frame_limit` lets frame
    counting stop early: once more than `frame_limit` frames are seen the count is
    reported as `frame_limit + 1`, which is enough for the caller to reject.
    """
    if frame_limit is not None and frame_limit < 1:
        msg = f"frame_limit must be at least 1, not {frame_limit}"
        raise ValueError(msg)
    if source.size <= 0:
        msg = "the object is empty (0 bytes)"
        raise EmptyObject(msg)
    reader = Reader(source)
    fmt, kind = identify(reader.head)
    if fmt is None:
        msg = f"unsupported format: not an image we can read (looks like: {kind})"
        raise UnsupportedFormat(msg)
    allowed_formats = {name.upper() for name in allowed}
    if fmt not in allowed_formats:
        names = ", ".join(sorted(allowed_formats)) or "none"
        msg = f"unsupported format: {fmt} is not an allowed format (allowed: {names})"
        raise UnsupportedFormat(msg)
    frame_cap = frame_limit if frame_limit is not None else _MAX_COUNTED_FRAMES
    return _PARSERS[fmt](reader, frame_cap)
