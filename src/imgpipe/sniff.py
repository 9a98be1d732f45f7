"""Identify an image and read its facts from the header, without Pillow and without pixels.

The validate Lambda has no Pillow layer. It calls `sniff` to decide from the bytes (never
from the key's extension) what an upload is, and to read what it needs to reject hostile
or unsupported uploads before anything is decoded or even fully downloaded.

Bytes come through a `ByteSource`; in production that is an S3 ranged GET behind a block
cache, where a request costs far more than its bytes. So `sniff` reads one first block
(64 KiB, which holds the whole header of nearly every JPEG, PNG, WebP and AVIF) and goes
further only by offset, to the structures a format needs: the next JPEG segment, a TIFF
IFD, a BMFF box header, the chunk after a WebP bitstream. GIF is the exception: its
frames can only be counted by walking every sub-block, so a GIF is read to its end (or to
the frame after `frame_limit`); sequential walks read in growing blocks to keep the
number of requests logarithmic in the file size.

The facts follow Pillow's view of the file, because Pillow is what the resize Lambda
decodes with: Pillow's format names, and the mode that `Image.open(...).mode` reports
right after opening (e.g. 16-bit RGB PNG is "RGB", 16-bit grey+alpha PNG is "RGBA", a
GIF whose palette is a plain grey ramp is "L", grey AVIF is "L" but grey AVIF with alpha
is "RGBA"). Width and height are as stored, before EXIF orientation. Pillow 13 reports a
TIFF whose Orientation tag is 5-8 with width and height already swapped (it transposes
TIFFs itself on load); `ImageFacts.oriented_size` gives that view.

Every loop is bounded, nothing is allocated from a length field read from the file, and
any input ends in `ImageFacts` (width and height > 0) or one of:

* `EmptyObject` -- the object has no bytes;
* `UnsupportedFormat` -- not a supported image, or not on the allow-list; the message
  names what it looks like when that can be told ("HTML document", "ZIP archive", ...);
* `CorruptImage` -- the bytes claim to be a supported image but the header is
  truncated or inconsistent.

Format notes, limitations included:

* JPEG: all SOF types; EXIF orientation from the first APP1 "Exif" segment; ICC from
  APP2 "ICC_PROFILE" segments (complete set only, as Pillow). Pillow cannot decode
  precisions other than 8 bits; they are reported in `bit_depth`, not rejected here.
  A JPEG with other than 1, 3 or 4 components is `UnsupportedFormat` (Pillow refuses
  it too). Multi-picture (MPO) camera files are reported as a one-frame JPEG; Pillow
  calls them "MPO" with one frame per picture.
* PNG: stops at the first IDAT, so an eXIf chunk after the image data is not seen.
  APNG frames are the acTL count (plus the default image when it is not a frame),
  as declared, not counted.
* GIF: frames counted by walking the blocks; stray bytes between blocks are skipped
  as Pillow does (up to a budget), and a missing trailer is accepted. `has_alpha` is
  the first frame's transparency (later frames' transparent index only lets the
  previous frame show through). `bit_depth` is 8 (the palette's sample depth).
* WebP: simple lossy/lossless and extended (VP8X) files; animation frames are
  counted from ANMF chunks.
* TIFF: classic TIFF and little-endian BigTIFF; IFD0 gives the facts, the IFD chain
  gives the frames (loops end the chain, as in Pillow). Big-endian BigTIFF is
  `UnsupportedFormat`: Pillow 13 cannot open it. So are photometric interpretations
  Pillow has no mode for (CFA/LinearRaw camera data, transparency masks, LogLuv).
* AVIF: still images from `meta` (pitm/ipma/ispe/pixi/av1C/colr/irot/imir, alpha from
  an auxl-referenced auxC alpha item); image sequences (`avis`) take the frame count
  and size from the colour track as libavif does. Orientation is the EXIF value
  equivalent to irot/imir, mapped exactly as Pillow's AVIF plugin does.

Frame counts are exact up to `frame_limit`; past it, counted formats (GIF, WebP, TIFF)
stop and report `frame_limit + 1`, while declared counts (APNG acTL, AVIF sample
tables) are reported as declared. Without a `frame_limit`, counting stops after
10,000 frames (reported as 10,001).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Final, Protocol

from imgpipe.errors import CorruptImage, EmptyObject, UnsupportedFormat
from imgpipe.specs import SOURCE_FORMATS, ImageFacts

__all__ = ["ByteSource", "BytesSource", "sniff"]


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
# Counting formats stop here even without a frame_limit (and report one more).
_MAX_COUNTED_FRAMES: Final = 10_000
# Only the start of an EXIF block is needed: IFD0 comes first in every writer we know.
_MAX_EXIF: Final = 64 * 1024

# Sub-blocks a GIF walk may visit: far more than any GIF within an upload budget has
# (a 50 MB GIF has ~200,000 full sub-blocks), yet a fraction of a second of CPU.
_MAX_STEPS: Final = 1_000_000
_MAX_JPEG_STEPS: Final = 100_000
_MAX_PNG_CHUNKS: Final = 10_000
# Top-level GIF blocks (extensions and image descriptors): ~3 per frame.
_MAX_GIF_BLOCKS: Final = 200_000
_MAX_GIF_JUNK: Final = 64 * 1024
_MAX_WEBP_CHUNKS: Final = 100_000
_MAX_TIFF_ENTRIES: Final = 4096
_MAX_TIFF_VALUES: Final = 16
_MAX_BOXES: Final = 10_000
_MAX_TRACKS: Final = 16
_MAX_EXIF_ENTRIES: Final = 1024


# --- Bounded reader --------------------------------------------------------------------


class _Reader:
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
        if self._steps > _MAX_STEPS:
            msg = f"{what} has too many blocks to inspect (more than {_MAX_STEPS})"
            raise CorruptImage(msg)

    def _get(self, offset: int, length: int) -> bytes:
        if self._fetches >= _MAX_FETCHES:
            msg = f"the header walk needs more than {_MAX_FETCHES} reads"
            raise CorruptImage(msg)
        self._fetches += 1
        return bytes(self._source.read(offset, length))[:length]


class _Cursor:
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


def _facts(
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
    )


def _name(fourcc: bytes) -> str:
    return fourcc.decode("latin-1")


# --- EXIF ------------------------------------------------------------------------------

# Sizes of the TIFF field types that hold integers, and which of them are signed.
_TIFF_INT_SIZES: Final = {1: 1, 3: 2, 4: 4, 6: 1, 8: 2, 9: 4, 13: 4, 16: 8, 17: 8, 18: 8}
_TIFF_SIGNED: Final = frozenset({6, 8, 9, 17})


def _exif_orientation(exif: bytes) -> int:
    """Orientation (tag 0x0112) from IFD0 of an EXIF block; 1 when absent or unreadable.

    A damaged EXIF block is common in camera files and does not make the image corrupt,
    so this never raises: Pillow also just reports no orientation then.
    """
    if exif.startswith(b"Exif\0\0"):
        exif = exif[6:]
    if exif[:4] == b"II*\0":
        order = "<"
    elif exif[:4] == b"MM\0*":
        order = ">"
    else:
        return 1
    if len(exif) < 8:
        return 1
    (ifd,) = struct.unpack_from(order + "I", exif, 4)
    if ifd + 2 > len(exif):
        return 1
    (count,) = struct.unpack_from(order + "H", exif, ifd)
    for i in range(min(count, _MAX_EXIF_ENTRIES)):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(exif):
            break
        tag, typ = struct.unpack_from(order + "HH", exif, entry)
        if tag != 0x0112:
            continue
        size = _TIFF_INT_SIZES.get(typ, 0)
        if size not in (1, 2, 4):
            return 1
        value = int.from_bytes(
            exif[entry + 8 : entry + 8 + size], "little" if order == "<" else "big"
        )
        return value if 1 <= value <= 8 else 1
    return 1


# --- Identification --------------------------------------------------------------------

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_AVIF_MAJOR_BRANDS: Final = frozenset({b"avif", b"avis", b"mif1", b"msf1"})
_HEIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1",
     b"mif2", b"avci"}
)  # fmt: skip
_MP4_BRANDS: Final = frozenset(
    {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"M4A ",
     b"3gp4", b"3gp5", b"3g2a", b"dash", b"f4v "}
)  # fmt: skip
_BMP_DIB_SIZES: Final = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_BINARY_KINDS: Final = (
    (b"%PDF-", "PDF"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"PK\x05\x06", "ZIP archive"),
    (b"PK\x07\x08", "ZIP archive"),
    (b"\x1f\x8b", "GZIP archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"BZh", "BZIP2 archive"),
    (b"\xfd7zXZ\x00", "XZ archive"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"qoif", "QOI"),
    (b"v/1\x01", "OpenEXR"),
    (b"gimp xcf", "XCF"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"OggS", "Ogg media"),
    (b"ID3", "MP3 audio"),
    (b"\x1a\x45\xdf\xa3", "Matroska/WebM video"),
)
_TEXT_BYTES: Final = (
    frozenset(b"\t\n\r\x0b\x0c\x1b") | frozenset(range(0x20, 0x7F)) | frozenset(range(0x80, 0x100))
)


def _identify(head: bytes) -> tuple[str | None, str]:
    """(Pillow format name, "") for a supported format, else (None, what it looks like)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG", ""
    if head.startswith(_PNG_SIGNATURE):
        return "PNG", ""
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF", ""
    if head.startswith(b"RIFF"):
        kinds = {b"WEBP": "WEBP", b"AVI ": "AVI video", b"WAVE": "WAV audio"}
        kind = kinds.get(head[8:12], "RIFF file")
        return ("WEBP", "") if kind == "WEBP" else (None, kind)
    if head.startswith((b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")):
        return "TIFF", ""
    if head[4:8] == b"ftyp":
        return _identify_bmff(head)
    # "BM" alone is too weak (text can start with it): require a known DIB header size.
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return None, "BMP"
    # ICO/CUR: reserved 0, type 1 (icon) or 2 (cursor), then an image count of at least
    # one. The count matters: an uncompressed true-colour TGA without a colour map also
    # starts 00 00 02 00, but with a zero where the count would be.
    if head[:2] == b"\0\0" and head[2:4] in (b"\1\0", b"\2\0") and head[4:6] != b"\0\0":
        return None, "ICO" if head[2] == 1 else "CUR"
    for magic, kind in _BINARY_KINDS:
        if head.startswith(magic):
            return None, kind
    return None, _identify_text(head)


def _ftyp_brands(head: bytes) -> tuple[bytes, frozenset[bytes]]:
    """Major brand, and all brands (major and compatible), of a leading `ftyp` box."""
    major = head[8:12]
    box_end = min(int.from_bytes(head[:4], "big"), len(head), 16 + 4 * 256)
    return major, frozenset({major, *(head[i : i + 4] for i in range(16, box_end - 3, 4))})


def _identify_bmff(head: bytes) -> tuple[str | None, str]:
    major, brands = _ftyp_brands(head)
    # Pillow's AVIF plugin only looks at files with these major brands, and libavif then
    # wants avif or avis among the brands; anything else Pillow cannot open.
    if major in _AVIF_MAJOR_BRANDS and brands & {b"avif", b"avis"}:
        return "AVIF", ""
    if brands & _HEIF_BRANDS or brands & {b"avif", b"avis"}:
        return None, "HEIC"
    if b"crx " in brands:
        return None, "Canon CR3 raw"
    if major == b"qt  ":
        return None, "QuickTime video"
    if brands & _MP4_BRANDS:
        return None, "MP4 video"
    return None, "ISO media file"


def _identify_text(head: bytes) -> str:
    sample = head[:4096]
    text = sample.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if b"%pdf-" in sample[:1024].lower():
        return "PDF"
    if text.startswith(b"<"):
        if text.startswith((b"<svg", b"<!doctype svg")):
            return "SVG"
        if b"<svg" in text and b"<html" not in text:
            return "SVG"
        html_starts = (b"<!doctype html", b"<html", b"<head", b"<body", b"<meta", b"<script")
        if text.startswith(html_starts) or b"<html" in text:
            return "HTML document"
        if text.startswith(b"<?xml"):
            return "XML document"
    if not sample or not set(sample) <= _TEXT_BYTES:
        return "unknown"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the sample is still text.
        if exc.start < len(sample) - 3:
            return "unknown"
    if text.startswith((b"{", b"[")):
        return "JSON document"
    return "plain text"


# --- JPEG ------------------------------------------------------------------------------

_SOF_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF: Final = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
# TEM and RSTn have no length field; a second SOI is tolerated by libjpeg and Pillow.
_STANDALONE_MARKERS: Final = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
_JPEG_MODES: Final = {1: "L", 3: "RGB", 4: "CMYK"}


def _sniff_jpeg(r: _Reader, frame_cap: int) -> ImageFacts:
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
                orientation = _exif_orientation(
                    r.take(body + 6, min(body_len - 6, _MAX_EXIF), "JPEG EXIF segment")
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
    return _facts(
        "JPEG",
        width,
        height,
        mode=mode,
        orientation=orientation,
        bit_depth=precision,
        icc_profile=icc,
        progressive=marker in _PROGRESSIVE_SOF,
    )


# --- PNG -------------------------------------------------------------------------------

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


def _sniff_png(r: _Reader, frame_cap: int) -> ImageFacts:
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
            orientation = _exif_orientation(r.take(body, min(length, _MAX_EXIF), "PNG eXIf chunk"))
        pos = body + length + 4
    else:
        msg = f"PNG has more than {_MAX_PNG_CHUNKS} chunks before its image data"
        raise CorruptImage(msg)
    frames = 1
    if actl_frames is not None:
        # An IDAT not announced by an fcTL is a default image outside the animation,
        # which Pillow counts as an extra frame.
        frames = actl_frames + (0 if fctl_before_idat else 1)
    return _facts(
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


# --- GIF -------------------------------------------------------------------------------

_GREY_RAMP: Final = bytes(i for i in range(256) for _ in range(3))


def _palette_needed(palette: bytes) -> bool:
    # Pillow opens a GIF whose palette is the identity grey ramp as mode "L".
    return palette != _GREY_RAMP[: len(palette)]


def _skip_sub_blocks(r: _Reader, pos: int) -> tuple[int, bytes]:
    """Skip a sub-block chain; return the offset after it and its first sub-block.

    Chains are scanned a window at a time: a GIF's image data is a chain of up to
    255-byte sub-blocks, and a call per sub-block would dominate the walk.
    """
    first: bytes | None = None
    for _ in range(_MAX_STEPS):
        window = r.window(pos, "GIF sub-block")
        i = steps = 0
        while i < len(window):
            size = window[i]
            if size == 0:
                r.spend(steps, "GIF")
                return pos + i + 1, first or b""
            if first is None:
                first = r.take(pos + i + 1, size, "GIF sub-block")
            i += 1 + size
            steps += 1
        r.spend(steps, "GIF")
        pos += i
    msg = "GIF sub-block chain is too long"
    raise CorruptImage(msg)


def _sniff_gif(r: _Reader, frame_cap: int) -> ImageFacts:
    width, height, flags = struct.unpack("<HHB", r.take(6, 5, "GIF screen descriptor"))
    pos = 13
    global_palette = False
    if flags & 0x80:
        size = 3 << ((flags & 7) + 1)
        global_palette = _palette_needed(r.take(pos, size, "GIF global colour table"))
        pos += size
    frames = 0
    mode = "L"
    has_alpha = False
    junk = 0
    for _ in range(_MAX_GIF_BLOCKS):
        if pos >= r.size:  # no trailer: Pillow also just stops at the end of the file
            break
        intro = r.u8(pos, "GIF block")
        if intro == 0x3B:  # trailer
            break
        if intro == 0x21:  # extension
            label = r.u8(pos + 1, "GIF extension")
            pos, first = _skip_sub_blocks(r, pos + 2)
            # Only the first frame's transparency shows: later frames' transparent index
            # is how encoders leave the previous frame showing through (Pillow, too,
            # reports alpha from the first frame).
            if label == 0xF9 and frames == 0 and len(first) >= 4 and first[0] & 1:
                has_alpha = True
            continue
        if intro == 0x2C:  # image descriptor
            frames += 1
            if frames > frame_cap:
                break
            x, y, w, h, dflags = struct.unpack("<HHHHB", r.take(pos + 1, 9, "GIF image"))
            pos += 10
            local_palette: bool | None = None
            if dflags & 0x80:
                size = 3 << ((dflags & 7) + 1)
                if frames == 1:
                    local_palette = _palette_needed(r.take(pos, size, "GIF colour table"))
                pos += size
            if frames == 1:
                # Pillow grows the canvas to fit the first frame, and takes the mode from
                # the palette that frame uses.
                width, height = max(width, x + w), max(height, y + h)
                palette = local_palette if local_palette is not None else global_palette
                mode = "P" if palette else "L"
            r.u8(pos, "GIF LZW code size")
            pos, _ = _skip_sub_blocks(r, pos + 1)
            continue
        # Pillow skips stray bytes between blocks one at a time; so do we, within budget.
        junk += 1
        if junk > _MAX_GIF_JUNK:
            msg = "GIF block structure is damaged (too many stray bytes)"
            raise CorruptImage(msg)
        pos += 1
    else:
        msg = "GIF has too many blocks"
        raise CorruptImage(msg)
    if frames == 0:
        msg = "GIF contains no image (no image descriptor)"
        raise CorruptImage(msg)
    return _facts(
        "GIF",
        width,
        height,
        mode=mode,
        frames=min(frames, frame_cap + 1),
        has_alpha=has_alpha,
    )


# --- WebP ------------------------------------------------------------------------------

_VP8X_ALPHA: Final = 0x10
_VP8X_EXIF: Final = 0x08
_VP8X_ANIMATION: Final = 0x02


def _vp8_size(r: _Reader, body: int, size: int) -> tuple[int, int]:
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


def _vp8l_info(r: _Reader, body: int, size: int) -> tuple[int, int, bool]:
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


def _sniff_webp(r: _Reader, frame_cap: int) -> ImageFacts:
    (riff_size,) = struct.unpack("<I", r.take(4, 4, "WebP RIFF header"))
    end = 8 + riff_size
    if end > r.size:
        msg = f"WebP RIFF data ({end} bytes) runs past the end of the file ({r.size} bytes)"
        raise CorruptImage(msg)
    fourcc, size = struct.unpack("<4sI", r.take(12, 8, "WebP first chunk"))
    if 20 + size > end:
        msg = f"WebP '{_name(fourcc)}' chunk runs past the end of the RIFF data"
        raise CorruptImage(msg)
    if fourcc == b"VP8 ":
        width, height = _vp8_size(r, 20, size)
        return _facts("WEBP", width, height, mode="RGB")
    if fourcc == b"VP8L":
        width, height, alpha = _vp8l_info(r, 20, size)
        return _facts("WEBP", width, height, mode="RGBA" if alpha else "RGB", has_alpha=alpha)
    if fourcc != b"VP8X":
        msg = f"WebP starts with an unknown '{_name(fourcc)}' chunk"
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
    r: _Reader, pos: int, end: int, flags: int, width: int, height: int, frame_cap: int
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
            msg = f"WebP '{_name(fourcc)}' chunk runs past the end of the RIFF data"
            raise CorruptImage(msg)
        if fourcc == b"ICCP":
            icc = True
        elif fourcc == b"EXIF":
            orientation = _exif_orientation(r.take(body, min(size, _MAX_EXIF), "WebP EXIF chunk"))
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
    return _facts(
        "WEBP",
        width,
        height,
        mode="RGBA" if has_alpha else "RGB",
        orientation=orientation,
        frames=max(1, min(frames, frame_cap + 1)),
        has_alpha=has_alpha,
        icc_profile=icc,
    )


# --- TIFF ------------------------------------------------------------------------------


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


def _tiff_ifd(r: _Reader, layout: _TiffLayout, offset: int, *, entries: bool) -> _Ifd:
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


def _tiff_values(r: _Reader, layout: _TiffLayout, ifd: _Ifd, tag: int) -> tuple[int, ...]:
    """The first few integer values of a tag; () when absent or not an integer type."""
    entry = ifd.entries.get(tag)
    if entry is None:
        return ()
    typ, count, value_field = entry
    size = _TIFF_INT_SIZES.get(typ)
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
            signed=typ in _TIFF_SIGNED,
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


def _sniff_tiff(r: _Reader, frame_cap: int) -> ImageFacts:
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
    return _facts(
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


def _tiff_frames(r: _Reader, layout: _TiffLayout, first: int, link: int, frame_cap: int) -> int:
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


# --- AVIF (ISO BMFF / HEIF) ------------------------------------------------------------

_ALPHA_URNS: Final = (b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha", b"urn:mpeg:hevc:2015:auxid:1")
_MAX_TABLE: Final = 256 * 1024
_MAX_PROPERTY: Final = 256


def _boxes(r: _Reader, start: int, end: int, what: str) -> Iterator[tuple[bytes, int, int]]:
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
            msg = f"{what}: box '{_name(typ)}' at offset {pos} overruns its container"
            raise CorruptImage(msg)
        yield typ, pos + header, pos + size
        pos += size
    msg = f"{what} has too many boxes"
    raise CorruptImage(msg)


def _body(r: _Reader, start: int, end: int, limit: int, what: str) -> bytes:
    return r.take(start, min(end - start, limit), what)


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


def _irot_imir_orientation(angle: int | None, axis: int | None) -> int:
    """The EXIF orientation equivalent to irot/imir, exactly as Pillow's _avif.c maps it."""
    if angle == 1:
        return 8 if axis is None else (7 if axis else 5)
    if angle == 2:
        return 3 if axis is None else (4 if axis else 2)
    if angle == 3:
        return 6 if axis is None else (5 if axis else 7)
    return 1 if axis is None else (2 if axis else 4)


def _apply_properties(
    r: _Reader, image: _AvifImage, props: list[tuple[bytes, int, int]]
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
        what = f"AVIF '{_name(typ)}' property"
        body = _body(r, start, end, _MAX_PROPERTY, what)
        cursor = _Cursor(body, what)
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
    image.orientation = _irot_imir_orientation(angle, axis)
    return b"ispe" in seen, is_alpha


def _parse_ipma(data: bytes) -> dict[int, list[int]]:
    cursor = _Cursor(data, "AVIF ipma box")
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


def _parse_auxl(r: _Reader, start: int, end: int) -> list[tuple[int, list[int]]]:
    """`auxl` references (from item, to items) of an iref box."""
    version = _body(r, start, end, 4, "AVIF iref box")[0] if end > start else 0
    width = 2 if version == 0 else 4
    references = []
    for typ, s, e in _boxes(r, start + 4, end, "AVIF iref"):
        if typ != b"auxl":
            continue
        cursor = _Cursor(_body(r, s, e, _MAX_TABLE, "AVIF auxl"), "AVIF auxl reference")
        source = cursor.uint(width)
        targets = [cursor.uint(width) for _ in range(min(cursor.uint(2), cursor.left))]
        references.append((source, targets))
    return references


def _avif_items(r: _Reader, start: int, end: int) -> _AvifImage:
    """The primary item of a `meta` box."""
    primary: int | None = None
    props: list[tuple[bytes, int, int]] = []
    associations: dict[int, list[int]] = {}
    auxl: list[tuple[int, list[int]]] = []
    for typ, s, e in _boxes(r, start + 4, end, "AVIF meta"):
        if typ == b"pitm":
            cursor = _Cursor(_body(r, s, e, 8, "AVIF pitm"), "AVIF pitm box")
            primary = cursor.uint(4 if cursor.uint(4) >> 24 else 2)
        elif typ == b"iref":
            auxl = _parse_auxl(r, s, e)
        elif typ == b"iprp":
            for t2, s2, e2 in _boxes(r, s, e, "AVIF iprp"):
                if t2 == b"ipco":
                    props = list(_boxes(r, s2, e2, "AVIF ipco"))
                elif t2 == b"ipma":
                    associations.update(_parse_ipma(_body(r, s2, e2, _MAX_TABLE, "AVIF ipma")))

    def item_props(item: int | None) -> list[tuple[bytes, int, int]] | None:
        if item is None or item not in associations:
            return None
        return [props[i - 1] for i in associations[item] if 0 < i <= len(props)]

    image = _AvifImage()
    own = item_props(primary)
    has_ispe, _ = _apply_properties(r, image, own if own is not None else props)
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
            if source_props and _apply_properties(r, _AvifImage(), source_props)[1]:
                image.alpha = True
    return image


def _ispe(r: _Reader, start: int, end: int) -> tuple[int, int]:
    cursor = _Cursor(_body(r, start, end, 12, "AVIF ispe"), "AVIF ispe property")
    cursor.take(4)
    return cursor.uint(4), cursor.uint(4)


@dataclass
class _Track:
    track_id: int = 0
    width: int = 0
    height: int = 0
    aux_for: list[int] = field(default_factory=list)
    samples: int = 0
    av01: bool = False
    image: _AvifImage = field(default_factory=_AvifImage)


def _avif_track(r: _Reader, start: int, end: int) -> _Track:
    track = _Track()
    stack = [(start, end)]
    # trak -> mdia -> minf -> stbl -> stsd: a fixed path, walked without recursion.
    containers = {b"tref", b"mdia", b"minf", b"stbl"}
    for _ in range(8):
        if not stack:
            break
        s0, e0 = stack.pop()
        for typ, s, e in _boxes(r, s0, e0, "AVIF track"):
            if typ in containers:
                stack.append((s, e))
            elif typ == b"tkhd":
                cursor = _Cursor(_body(r, s, e, 96, "AVIF tkhd"), "AVIF tkhd box")
                long_times = cursor.uint(1) == 1
                cursor.take(3 + (16 if long_times else 8))
                track.track_id = cursor.uint(4)
                cursor.take(4 + (8 if long_times else 4) + 52)
                track.width, track.height = cursor.uint(4) >> 16, cursor.uint(4) >> 16
            elif typ == b"auxl":
                cursor = _Cursor(_body(r, s, e, _MAX_TABLE, "AVIF auxl"), "AVIF auxl box")
                track.aux_for = [cursor.uint(4) for _ in range(cursor.left // 4)]
            elif typ == b"stsz":
                cursor = _Cursor(_body(r, s, e, 12, "AVIF stsz"), "AVIF stsz box")
                cursor.take(8)
                track.samples = cursor.uint(4)
            elif typ == b"stsd":
                _avif_sample_entry(r, s, e, track)
    return track


def _avif_sample_entry(r: _Reader, start: int, end: int, track: _Track) -> None:
    """Read the track's first sample entry, if it is AV1."""
    typ, s, e = next(_boxes(r, start + 8, end, "AVIF stsd"), (b"", 0, 0))
    if typ == b"av01" and e - s >= 78:
        track.av01 = True
        # A VisualSampleEntry has 78 bytes of fields before its child boxes.
        _apply_properties(r, track.image, list(_boxes(r, s + 78, e, "AVIF av01")))


def _sniff_avif(r: _Reader, frame_cap: int) -> ImageFacts:
    major, brands = _ftyp_brands(r.head)
    sequence_brand = b"avis" in brands
    meta: tuple[int, int] | None = None
    moov: tuple[int, int] | None = None
    for typ, s, e in _boxes(r, 0, r.size, "AVIF file"):
        if typ == b"meta" and meta is None:
            meta = (s, e)
        elif typ == b"moov" and moov is None:
            moov = (s, e)
        if meta is not None and (moov is not None or not sequence_brand or major == b"avif"):
            break
    tracks: list[_Track] = []
    if moov is not None:
        traks = ((s, e) for typ, s, e in _boxes(r, *moov, "AVIF moov") if typ == b"trak")
        tracks = [_avif_track(r, s, e) for s, e in islice(traks, _MAX_TRACKS)]
    colour = next((t for t in tracks if t.av01 and not t.aux_for), None)
    # libavif honours an avif major brand; otherwise it prefers tracks when present.
    if colour is not None and major != b"avif":
        image = colour.image
        if meta is not None:
            item = _avif_items(r, *meta)
            image.orientation = item.orientation
        width, height = colour.width, colour.height
        alpha = any(colour.track_id in t.aux_for for t in tracks)
        if colour.samples == 0:
            msg = "AVIF image sequence has no samples"
            raise CorruptImage(msg)
        frames = colour.samples
    elif meta is not None:
        image = _avif_items(r, *meta)
        width, height, alpha, frames = image.width, image.height, image.alpha, 1
    else:
        msg = "AVIF has neither image items (meta) nor an image track (moov)"
        raise CorruptImage(msg)
    mode = "RGBA" if alpha else ("L" if image.monochrome else "RGB")
    return _facts(
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


# --- Entry point -----------------------------------------------------------------------

_PARSERS: Final = {
    "JPEG": _sniff_jpeg,
    "PNG": _sniff_png,
    "GIF": _sniff_gif,
    "WEBP": _sniff_webp,
    "TIFF": _sniff_tiff,
    "AVIF": _sniff_avif,
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
    reader = _Reader(source)
    fmt, kind = _identify(reader.head)
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
