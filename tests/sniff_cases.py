"""Fixture images for the `imgpipe.sniff` tests, and the Pillow view they are checked against.

Fixtures are made here with Pillow, and Pillow's own `Image.open` is the oracle: what
the validate Lambda learns from the header must match what the resize Lambda will see.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zlib
from collections.abc import Callable, Iterable
from functools import cache, partial
from typing import Any

import pillow_heif
import pytest
from PIL import Image, ImageCms, ImageDraw, features

from imgpipe.errors import CorruptImage
from imgpipe.sniff import BytesSource, sniff
from imgpipe.specs import ImageFacts

HAS_AVIF = features.check("avif")
needs_avif = pytest.mark.skipif(not HAS_AVIF, reason="Pillow built without AVIF support")


class CountingSource(BytesSource):
    """A BytesSource that records every read, as the S3 adapter would issue them."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[tuple[int, int]] = []

    def read(self, offset: int, length: int) -> bytes:
        chunk = super().read(offset, length)
        self.reads.append((offset, len(chunk)))
        return chunk

    @property
    def bytes_read(self) -> int:
        return sum(n for _, n in self.reads)


def sniff_bytes(data: bytes, **kwargs: Any) -> ImageFacts:
    return sniff(BytesSource(data), **kwargs)


# --- Fixture builders ------------------------------------------------------------------


@cache
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def big_icc() -> bytes:
    """An ICC-sized blob over 128 KiB; Pillow stores it without parsing it."""
    return srgb_icc() * (140_000 // len(srgb_icc()))


def drop_second_icc_segment(data: bytes) -> bytes:
    first = data.index(b"ICC_PROFILE\0")
    second = data.index(b"ICC_PROFILE\0", first + 1) - 4  # back to its FF E2 marker
    (length,) = struct.unpack(">H", data[second + 2 : second + 4])
    return data[:second] + data[second + 2 + length :]


def canvas(mode: str, size: tuple[int, int] = (64, 48), shade: int = 0) -> Image.Image:
    """A small drawing with opaque, half-transparent and fully transparent areas."""
    im = Image.new("RGBA", size, (200, 30 + shade, 30, 255))
    draw = ImageDraw.Draw(im)
    draw.ellipse((8, 8, 40, 36), fill=(20, 160, 40, 128))
    draw.rectangle((30, 4, 60, 20), fill=(10, 10, 220, 0))
    draw.line((0, size[1] - 1, size[0] - 1, 0), fill=(255, 255, shade, 255), width=3)
    if mode == "RGBA":
        return im
    if mode == "I;16":
        return im.convert("L").convert("I;16")
    return im.convert(mode)


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def exif_with_orientation(value: int, endian: str = "<") -> Image.Exif:
    exif = Image.Exif()
    exif.endian = endian
    exif[0x0112] = value
    return exif


def frames(mode: str, count: int, size: tuple[int, int] = (48, 32)) -> list[Image.Image]:
    return [canvas(mode, size, shade=40 * i) for i in range(count)]


def animated(fmt: str, mode: str, count: int, **params: Any) -> bytes:
    first, *rest = frames(mode, count)
    return encode(first, fmt, save_all=True, append_images=rest, **params)


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body)
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def crafted_png(width: int, height: int, depth: int, colour: int, samples: int) -> bytes:
    """A PNG Pillow cannot write itself (e.g. 16-bit RGB), built chunk by chunk."""
    row = b"\0" + bytes(width * samples * depth // 8)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(row * height))
        + png_chunk(b"IEND", b"")
    )


def crafted_tiff(
    entries: list[tuple[int, int, int, int]],
    *,
    order: str = "<",
    next_ifd: int = 0,
    big: bool = False,
) -> bytes:
    """A TIFF (or BigTIFF) with one IFD of (tag, type, count, inline value) entries."""
    o = order
    if big:
        head = (b"II+\0" if o == "<" else b"MM\0+") + struct.pack(o + "HHQ", 8, 0, 16)
        count_fmt, field_size, link_fmt = "Q", 8, "Q"
    else:
        head = (b"II*\0" if o == "<" else b"MM\0*") + struct.pack(o + "I", 8)
        count_fmt, field_size, link_fmt = "H", 4, "I"
    ifd = struct.pack(o + count_fmt, len(entries))
    for tag, typ, count, value in sorted(entries):
        field = struct.pack(o + ("H" if typ == 3 else "I"), value).ljust(field_size, b"\0")
        ifd += struct.pack(o + "HH" + ("Q" if big else "I"), tag, typ, count) + field
    ifd += struct.pack(o + link_fmt, next_ifd)
    return head + ifd + bytes(256)


def tiff_entries(width: int = 16, height: int = 8) -> list[tuple[int, int, int, int]]:
    """A 1-sample 8-bit grey TIFF: width, height, bits, photometric, strip, counts."""
    return [
        (256, 3, 1, width),
        (257, 3, 1, height),
        (258, 3, 1, 8),
        (262, 3, 1, 1),
        (273, 4, 1, 8),
        (279, 4, 1, width * height),
    ]


def gif_with_screen(width: int, height: int, frame: tuple[int, int]) -> bytes:
    data = bytearray(encode(canvas("P", (8, 8)), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)
    at = data.index(b",")
    struct.pack_into("<HHHH", data, at + 1, 0, 0, *frame)
    return bytes(data)


def patch_bytes(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\0\0\0\0" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + bytes(32)


def heic(im: Image.Image | pillow_heif.HeifFile, **params: Any) -> bytes:
    """A HEIC written by libheif's encoder (pillow-heif, a dev-only dependency).

    pillow-heif's Pillow plugin is never registered: pi-heif's, the resize Lambda's,
    is the only HEIF reader in the process.
    """
    heif = im if isinstance(im, pillow_heif.HeifFile) else pillow_heif.from_pillow(im)
    out = io.BytesIO()
    heif.save(out, **{"quality": 60, **params})
    return out.getvalue()


def deep_heic(mode: str, bit_depth: int = 10) -> bytes:
    """A 10- or 12-bit HEIC from 16-bit samples (a ramp, so it is not flat)."""
    width, height = 64, 48
    samples = {"L;16": 1, "RGB;16": 3, "RGBA;16": 4}[mode]
    row = b"".join(struct.pack("<H", 1000 * x) * samples for x in range(width))
    return heic(pillow_heif.from_bytes(mode, (width, height), row * height), bit_depth=bit_depth)


def tagged_heic(orientation: int) -> bytes:
    return heic(canvas("RGB"), exif=exif_with_orientation(orientation).tobytes())


def burst(count: int, primary_index: int, **params: Any) -> bytes:
    container = pillow_heif.from_pillow(canvas("RGB"))
    for i in range(1, count):
        container.add_from_pillow(canvas("RGB", shade=40 * i))
    return heic(container, primary_index=primary_index, **params)


def still(mode: str, fmt: str, **params: Any) -> Callable[[], bytes]:
    """A fixture builder: the test drawing in `mode`, saved as `fmt` with `params`."""
    return lambda: encode(canvas(mode), fmt, **params)


def oriented(mode: str, fmt: str, orientations: range) -> dict[str, Callable[[], bytes]]:
    return {
        f"{fmt.lower()}-exif-o{n}": still(mode, fmt, exif=exif_with_orientation(n))
        for n in orientations
    }


JPEG_CASES: dict[str, Callable[[], bytes]] = {
    "jpeg-L": still("L", "JPEG"),
    "jpeg-RGB": still("RGB", "JPEG"),
    "jpeg-RGB-444": still("RGB", "JPEG", subsampling=0, quality=95),
    "jpeg-CMYK": still("CMYK", "JPEG"),
    "jpeg-progressive": still("RGB", "JPEG", progressive=True),
    "jpeg-icc": still("RGB", "JPEG", icc_profile=srgb_icc()),
    # Profiles over 64 KiB span several APP2 segments, past the first 64 KiB block.
    "jpeg-icc-3-segments": still("RGB", "JPEG", icc_profile=big_icc()),
    "jpeg-icc-segment-missing": lambda: drop_second_icc_segment(
        encode(canvas("RGB"), "JPEG", icc_profile=big_icc())
    ),
    "jpeg-exif-big-endian-o6": still("RGB", "JPEG", exif=exif_with_orientation(6, ">")),
    **oriented("RGB", "JPEG", range(1, 9)),
}
PNG_CASES: dict[str, Callable[[], bytes]] = {
    **{f"png-{m}": still(m, "PNG") for m in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")},
    "png-P-trns": lambda: encode(canvas("RGB").quantize(16), "PNG", transparency=0),
    "png-L-trns": still("L", "PNG", transparency=0),
    "png-RGB-trns": still("RGB", "PNG", transparency=(200, 30, 30)),
    "png-RGB-16bit": lambda: crafted_png(24, 16, 16, 2, 3),
    "png-LA-16bit": lambda: crafted_png(24, 16, 16, 4, 2),
    "png-RGBA-16bit": lambda: crafted_png(24, 16, 16, 6, 4),
    "png-L-2bit": lambda: crafted_png(24, 16, 2, 0, 1),
    "png-icc": still("RGB", "PNG", icc_profile=srgb_icc()),
    **oriented("RGB", "PNG", range(6, 7)),
    "apng-3": lambda: animated("PNG", "RGB", 3),
    "apng-RGBA-4": lambda: animated("PNG", "RGBA", 4),
    "apng-default-image": lambda: animated("PNG", "RGB", 3, default_image=True),
}
GIF_CASES: dict[str, Callable[[], bytes]] = {
    "gif-P": still("P", "GIF"),
    "gif-from-1": still("1", "GIF"),
    "gif-from-L": still("L", "GIF"),
    "gif-transparent": still("RGBA", "GIF"),
    "gif-animated-5": lambda: animated("GIF", "RGB", 5),
    "gif-animated-transparent": lambda: animated("GIF", "RGBA", 3, disposal=2),
    "gif-no-trailer": lambda: animated("GIF", "RGB", 3)[:-1],
    "gif-first-frame-outgrows-screen": lambda: gif_with_screen(4, 3, (8, 8)),
}
WEBP_CASES: dict[str, Callable[[], bytes]] = {
    "webp-lossy": still("RGB", "WEBP"),
    "webp-lossless": still("RGB", "WEBP", lossless=True),
    "webp-lossy-alpha": still("RGBA", "WEBP"),
    "webp-lossless-alpha": still("RGBA", "WEBP", lossless=True),
    "webp-animated": lambda: animated("WEBP", "RGB", 3),
    "webp-animated-alpha": lambda: animated("WEBP", "RGBA", 4),
    **oriented("RGB", "WEBP", range(6, 7)),
    "webp-icc": still("RGB", "WEBP", icc_profile=srgb_icc()),
    "webp-lossless-icc-exif-o8": still(
        "RGBA", "WEBP", lossless=True, icc_profile=srgb_icc(), exif=exif_with_orientation(8)
    ),
}
TIFF_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "YCbCr", "F")
TIFF_CASES: dict[str, Callable[[], bytes]] = {
    **{f"tiff-{m}": still(m, "TIFF") for m in TIFF_MODES},
    "tiff-lzw": still("RGB", "TIFF", compression="tiff_lzw"),
    "tiff-jpeg": still("RGB", "TIFF", compression="jpeg"),
    "tiff-deflate-RGBA": still("RGBA", "TIFF", compression="tiff_adobe_deflate"),
    "tiff-multipage-3": lambda: animated("TIFF", "RGB", 3),
    "tiff-o6": still("RGB", "TIFF", tiffinfo={274: 6}),
    **oriented("RGB", "TIFF", range(3, 4)),
    "tiff-icc": still("RGB", "TIFF", icc_profile=srgb_icc()),
    "tiff-bigtiff": still("RGB", "TIFF", big_tiff=True),
    "tiff-big-endian": lambda: crafted_tiff(tiff_entries(), order=">"),
    "tiff-bigtiff-crafted-o8": lambda: crafted_tiff([*tiff_entries(), (274, 3, 1, 8)], big=True),
}
AVIF_CASES: dict[str, Callable[[], bytes]] = {
    "avif-RGB": still("RGB", "AVIF"),
    "avif-RGBA": still("RGBA", "AVIF"),
    "avif-L": still("L", "AVIF"),
    "avif-icc": still("RGB", "AVIF", icc_profile=srgb_icc()),
    # Pillow writes the orientation as irot/imir boxes, and maps them back on open.
    **oriented("RGBA", "AVIF", range(1, 9)),
    # Pillow 13.0.0 crashes (SIGSEGV) saving an animated AVIF with an EXIF orientation,
    # so sequences are only tested without one.
    "avif-sequence": lambda: animated("AVIF", "RGB", 3),
    "avif-sequence-alpha": lambda: animated("AVIF", "RGBA", 4),
}
# Display P3 by H.273 code points (an nclx colr, not an ICC profile).
P3_NCLX = {"color_primaries": 12, "transfer_characteristics": 13, "matrix_coefficients": 6}
HEIF_CASES: dict[str, Callable[[], bytes]] = {
    # x265 codes at least 64x64: a 64x48 picture is cut from it by a clean aperture.
    "heic-RGB": lambda: heic(canvas("RGB")),
    "heic-RGB-240x160": lambda: heic(canvas("RGB", (240, 160))),
    "heic-RGBA": lambda: heic(canvas("RGBA")),
    "heic-LA": lambda: heic(canvas("LA")),
    "heic-L": lambda: heic(canvas("L")),
    "heic-L-10bit": lambda: deep_heic("L;16"),
    "heic-RGB-10bit": lambda: deep_heic("RGB;16"),
    "heic-RGB-12bit": lambda: deep_heic("RGB;16", bit_depth=12),
    "heic-RGBA-10bit": lambda: deep_heic("RGBA;16"),
    "heic-icc": lambda: heic(canvas("RGB"), icc_profile=srgb_icc()),
    "heic-nclx-p3": lambda: heic(canvas("RGB"), **P3_NCLX),
    # libheif's encoder turns the EXIF orientation into irot/imir.
    **{f"heic-exif-o{n}": partial(tagged_heic, n) for n in range(1, 9)},
    "heic-thumbnail": lambda: heic(canvas("RGB", (240, 160)), thumbnails=[32]),
    # A grid of 64x64 tiles (hidden items referenced by dimg), as cameras write them.
    "heic-grid": lambda: heic(canvas("RGB", (200, 130)), tile_size=64),
    "heic-grid-o6-icc-thumbnail": lambda: heic(
        canvas("RGB", (200, 130)),
        tile_size=64,
        thumbnails=[32],
        icc_profile=srgb_icc(),
        exif=exif_with_orientation(6).tobytes(),
    ),
    "heic-burst-3": lambda: burst(3, primary_index=1),
    "heic-burst-3-thumbnails": lambda: burst(3, primary_index=2, thumbnails=[16]),
}
CASES: dict[str, Callable[[], bytes]] = {
    **JPEG_CASES,
    **PNG_CASES,
    **GIF_CASES,
    **WEBP_CASES,
    **TIFF_CASES,
    **(AVIF_CASES if HAS_AVIF else {}),
    **HEIF_CASES,
}


@cache
def fixture(name: str) -> bytes:
    return CASES[name]()


def case_params(names: Iterable[str]) -> list[Any]:
    return [
        pytest.param(name, marks=needs_avif, id=name) if name.startswith("avif") else name
        for name in names
    ]


def pillow_view(data: bytes) -> dict[str, object]:
    """What Pillow reports right after `Image.open`, in sniff's terms."""
    with Image.open(io.BytesIO(data)) as im:
        return {
            "format": im.format,
            "size": im.size,
            "mode": im.mode,
            "frames": getattr(im, "n_frames", 1),
            "orientation": im.getexif().get(0x0112, 1),
            "has_alpha": im.has_transparency_data,
            "icc_profile": bool(im.info.get("icc_profile")),
            "progressive": bool(im.info.get("progressive")),
        }


def sniff_view(facts: ImageFacts) -> dict[str, object]:
    return {
        "format": facts.format,
        # Pillow 13 reports a TIFF with orientation 5-8 with its sides already swapped
        # (it transposes TIFFs on load); sniff keeps the stored size, like every format.
        "size": facts.oriented_size if facts.format == "TIFF" else (facts.width, facts.height),
        "mode": facts.mode,
        "frames": facts.frames,
        "orientation": facts.orientation,
        "has_alpha": facts.has_alpha,
        "icc_profile": facts.icc_profile,
        "progressive": facts.progressive,
    }


# --- Checks every format's fixtures go through -----------------------------------------


# Bytes, or a builder of them when they derive from another fixture.
Damaged = bytes | Callable[[], bytes]


def assert_corrupt(make: Damaged, message: str) -> None:
    # Given a header that is truncated or inconsistent
    data = make if isinstance(make, bytes) else make()
    # When / Then
    with pytest.raises(CorruptImage, match=message):
        sniff_bytes(data)


def assert_facts_match_pillow(name: str) -> None:
    # Given an image Pillow wrote
    data = fixture(name)
    # When it is sniffed from its bytes alone
    facts = sniff_bytes(data)
    # Then every fact agrees with what Pillow reports on open
    assert sniff_view(facts) == pillow_view(data)


def assert_truncated_copies_corrupt_or_the_same(name: str) -> None:
    # Given a valid image and copies of it cut at several points
    data = fixture(name)
    full = sniff_bytes(data)
    cuts = sorted({64, 100, 200, 400, len(data) // 4, len(data) // 2, len(data) - 1})
    for cut in (c for c in cuts if 0 < c < len(data)):
        # When a cut copy is sniffed
        try:
            facts = sniff_bytes(data[:cut])
        except CorruptImage:
            continue
        # Then it is rejected as corrupt, or the header was complete and the facts are
        # the same (a GIF cut between frames can only know the frames it still holds)
        assert dataclasses.replace(facts, frames=full.frames) == full, cut
        assert 1 <= facts.frames <= full.frames, cut
