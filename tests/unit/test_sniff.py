"""`imgpipe.sniff` reads image facts from headers, without Pillow.

Fixtures are made here with Pillow, and Pillow's own `Image.open` is the oracle: what
the validate Lambda learns from the header must match what the resize Lambda will see.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageDraw, features

from imgpipe.errors import CorruptImage, EmptyObject, ImageRejected, UnsupportedFormat
from imgpipe.sniff import BytesSource, sniff
from imgpipe.specs import ImageFacts

HAS_AVIF = features.check("avif")
needs_avif = pytest.mark.skipif(not HAS_AVIF, reason="Pillow built without AVIF support")

# No example database: every run explores afresh and none is saved in the checkout.
FUZZ = settings(
    max_examples=300,
    deadline=timedelta(seconds=2),
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


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


def tiff_chain(links: list[int]) -> bytes:
    """A TIFF whose IFDs (each a copy of IFD0) link as `links[i]` = index of the next."""
    entries = tiff_entries()
    size = 2 + 12 * len(entries) + 4
    offsets = [8 + i * size for i in range(len(links))]
    body = b""
    for link in links:
        ifd = crafted_tiff(entries, next_ifd=offsets[link] if link >= 0 else 0)[8 : 8 + size]
        body += ifd
    return b"II*\0" + struct.pack("<I", 8) + body + bytes(128)


def jpeg_with_app1(tiff_block: bytes) -> bytes:
    plain = encode(canvas("RGB"), "JPEG")
    segment = b"Exif\0\0" + tiff_block
    return plain[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + plain[2:]


def exif_block(order: str, typ: int, value: int) -> bytes:
    magic = b"II*\0" if order == "<" else b"MM\0*"
    field = value.to_bytes({1: 1, 3: 2, 4: 4}[typ], "little" if order == "<" else "big")
    entry = struct.pack(order + "HHI", 0x0112, typ, 1) + field.ljust(4, b"\0")
    return magic + struct.pack(order + "I", 8) + struct.pack(order + "H", 1) + entry + bytes(4)


def gif_with_screen(width: int, height: int, frame: tuple[int, int]) -> bytes:
    data = bytearray(encode(canvas("P", (8, 8)), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)
    at = data.index(b",")
    struct.pack_into("<HHHH", data, at + 1, 0, 0, *frame)
    return bytes(data)


def set_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    out = bytearray(data)
    sof = out.index(b"\xff\xc0")
    struct.pack_into(">HH", out, sof + 5, height, width)
    return bytes(out)


def patch_bytes(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def patch_sof_components(data: bytes, components: int) -> bytes:
    return patch_bytes(data, data.index(b"\xff\xc0") + 9, bytes([components]))


def webp_canvas_mismatch() -> bytes:
    data = fixture("webp-lossy-alpha")  # VP8X + ALPH + VP8
    assert data[12:16] == b"VP8X"
    return patch_bytes(data, 24, (100).to_bytes(3, "little"))


def avif_ispe_zero(data: bytes) -> bytes:
    out = bytearray(data)
    at = out.index(b"ispe")
    out[at + 8 : at + 16] = bytes(8)
    return bytes(out)


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
CASES: dict[str, Callable[[], bytes]] = {
    **JPEG_CASES,
    **PNG_CASES,
    **GIF_CASES,
    **WEBP_CASES,
    **TIFF_CASES,
    **(AVIF_CASES if HAS_AVIF else {}),
}


@cache
def fixture(name: str) -> bytes:
    return CASES[name]()


def case_params(names: Iterable[str]) -> list[Any]:
    return [
        pytest.param(name, marks=needs_avif, id=name) if name.startswith("avif") else name
        for name in names
    ]


ALL_CASES = case_params([*JPEG_CASES, *PNG_CASES, *GIF_CASES, *WEBP_CASES, *TIFF_CASES,
                         *AVIF_CASES])  # fmt: skip


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


# --- Agreement with Pillow -------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_CASES)
def test_given_pillow_written_image_when_sniffed_then_facts_match_pillow(name: str) -> None:
    # Given an image Pillow wrote
    data = fixture(name)
    # When it is sniffed from its bytes alone
    facts = sniff_bytes(data)
    # Then every fact agrees with what Pillow reports on open
    assert sniff_view(facts) == pillow_view(data)


@pytest.mark.parametrize(
    ("name", "bit_depth"),
    [
        ("jpeg-RGB", 8),
        ("png-1", 1),
        ("png-L-2bit", 2),
        ("png-I;16", 16),
        ("png-RGB-16bit", 16),
        ("png-RGBA-16bit", 16),
        ("gif-P", 8),
        ("webp-lossless", 8),
        ("tiff-1", 1),
        ("tiff-I;16", 16),
        ("tiff-RGB", 8),
        pytest.param("avif-RGB", 8, marks=needs_avif),
    ],
)
def test_given_image_when_sniffed_then_bit_depth_is_bits_per_sample(
    name: str, bit_depth: int
) -> None:
    # Given / When
    facts = sniff_bytes(fixture(name))
    # Then
    assert facts.bit_depth == bit_depth


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("jpeg-progressive", "progressive"),
        *[(n, "icc_profile") for n in ("jpeg-icc", "jpeg-icc-3-segments", "png-icc")],
        *[(n, "icc_profile") for n in ("webp-icc", "webp-lossless-icc-exif-o8", "tiff-icc")],
        *[(n, "has_alpha") for n in ("png-LA", "png-RGBA", "png-P-trns", "png-L-trns")],
        *[(n, "has_alpha") for n in ("png-RGB-trns", "png-LA-16bit", "gif-transparent")],
        *[(n, "has_alpha") for n in ("webp-lossy-alpha", "webp-lossless-alpha", "tiff-LA")],
        *[(n, "has_alpha") for n in ("webp-animated-alpha", "tiff-RGBA", "apng-RGBA-4")],
        pytest.param("avif-icc", "icc_profile", marks=needs_avif),
        pytest.param("avif-RGBA", "has_alpha", marks=needs_avif),
        pytest.param("avif-sequence-alpha", "has_alpha", marks=needs_avif),
    ],
)
def test_given_image_with_a_feature_when_sniffed_then_its_flag_is_set(name: str, flag: str) -> None:
    # Given an image written with a profile, transparency or progressive scans
    # When / Then the flag is set (the Pillow comparison alone could agree on False)
    assert getattr(sniff_bytes(fixture(name)), flag) is True


def test_given_tiff_with_rotating_orientation_when_sniffed_then_size_is_as_stored() -> None:
    # Given a 64x48 TIFF tagged "rotate 90 CW" (orientation 6)
    data = fixture("tiff-o6")
    # When
    facts = sniff_bytes(data)
    # Then the stored size is reported, and the oriented size is what Pillow 13 shows
    assert (facts.width, facts.height, facts.orientation) == (64, 48, 6)
    assert facts.oriented_size == Image.open(io.BytesIO(data)).size == (48, 64)


@pytest.mark.parametrize(
    ("order", "typ", "value", "expected"),
    [
        ("<", 3, 6, 6),
        (">", 3, 8, 8),
        ("<", 4, 3, 3),  # LONG instead of SHORT
        (">", 1, 5, 5),  # BYTE
        ("<", 3, 9, 1),  # out of range
        ("<", 3, 0, 1),
    ],
)
def test_given_jpeg_exif_variants_when_sniffed_then_orientation_is_read_or_defaults_to_1(
    order: str, typ: int, value: int, expected: int
) -> None:
    # Given a JPEG whose APP1 EXIF holds the orientation in an unusual encoding
    data = jpeg_with_app1(exif_block(order, typ, value))
    # When / Then
    assert sniff_bytes(data).orientation == expected


@pytest.mark.parametrize(
    "tiff_block",
    [b"", b"II*\0", b"II*\0\xff\xff\xff\x7f", b"MM\0*\0\0\0\x08\x00\x05", b"XX*\0" + bytes(20)],
    ids=["empty", "no-offset", "offset-past-end", "entries-past-end", "bad-byte-order"],
)
def test_given_damaged_exif_when_sniffed_then_image_is_fine_with_orientation_1(
    tiff_block: bytes,
) -> None:
    # Given a valid JPEG carrying a damaged EXIF block (common in camera files)
    data = jpeg_with_app1(tiff_block)
    # When
    facts = sniff_bytes(data)
    # Then the image is still readable; only the orientation is unknown
    assert (facts.format, facts.width, facts.orientation) == ("JPEG", 64, 1)


def test_given_jpeg_with_fill_bytes_and_restart_marker_when_sniffed_then_they_are_skipped() -> None:
    # Given a JPEG with 0xFF fill bytes and a stray RST marker before its tables
    plain = fixture("jpeg-RGB")
    data = plain[:2] + b"\xff\xd3\xff\xff\xff" + plain[3:]
    # When
    facts = sniff_bytes(data)
    # Then the frame header is still found, as Pillow finds it
    assert sniff_view(facts) == pillow_view(data)


def test_given_jpeg_with_tem_marker_when_sniffed_then_it_is_skipped_like_libjpeg() -> None:
    # Given a TEM marker (no length field) between segments; libjpeg skips it, although
    # Pillow's own header parser refuses it
    plain = fixture("jpeg-RGB")
    data = plain[:2] + b"\xff\x01" + plain[2:]
    # When / Then
    assert sniff_bytes(data) == sniff_bytes(plain)


def test_given_jpeg_with_stray_bytes_between_segments_when_sniffed_then_they_are_skipped() -> None:
    # Given junk between two segments (libjpeg and Pillow tolerate it)
    plain = fixture("jpeg-RGB")
    at = plain.index(b"\xff\xdb")
    data = plain[:at] + b"\x00junk\x00" + plain[at:]
    # When / Then
    assert sniff_view(sniff_bytes(data)) == pillow_view(data)


def test_given_png_exif_after_its_image_data_when_sniffed_then_it_is_not_seen() -> None:
    # Given a PNG whose eXIf chunk follows the image data (legal, but rare)
    plain = crafted_png(24, 16, 8, 2, 3)
    iend = plain.index(b"IEND") - 4
    exif = exif_with_orientation(6).tobytes()[6:]
    data = plain[:iend] + png_chunk(b"eXIf", exif) + plain[iend:]
    # When
    facts = sniff_bytes(data)
    # Then sniff stops at IDAT and reports no orientation (a documented limitation), while
    # Pillow only finds it after loading the pixels
    assert facts.orientation == 1
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.getexif().get(0x0112) == 6


def test_given_tiff_ifd_chain_with_a_loop_when_sniffed_then_counting_stops_like_pillow() -> None:
    # Given IFD0 -> IFD1 -> IFD0 ...
    data = tiff_chain([1, 0])
    # When
    facts = sniff_bytes(data)
    # Then the loop ends the chain, as it does in Pillow
    assert facts.frames == 2 == pillow_view(data)["frames"]


def test_given_tiff_ifd_pointing_at_itself_when_sniffed_then_one_frame() -> None:
    data = tiff_chain([0])
    assert sniff_bytes(data).frames == 1


# --- Rejections ------------------------------------------------------------------------


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.jpg", b"not really")
    return out.getvalue()


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\0\0\0\0" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + bytes(32)


NOT_IMAGES = [
    ("html", b"<!DOCTYPE html><html><head><title>x</title></head><body>hi</body></html>",
     "HTML document"),
    ("html-bom-whitespace", b"\xef\xbb\xbf\n   <html lang='en'><p>hello</p></html>",
     "HTML document"),
    ("svg", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="9"/>',
     "SVG"),
    ("svg-bare", b'<svg viewBox="0 0 10 10"><circle r="4"/></svg>', "SVG"),
    ("xml", b"<?xml version='1.0'?><root><item/></root>", "XML document"),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< >>\nendobj\n", "PDF"),
    ("zip", zip_bytes(), "ZIP archive"),
    ("gzip", gzip.compress(b"hello world"), "GZIP archive"),
    ("text", b"just some words\nand a second line\n", "plain text"),
    ("utf8-text", "héllo wörld, ça va?\n".encode(), "plain text"),
    ("json", b'{"photo": "cat.jpg"}', "JSON document"),
    ("bmp", encode(Image.new("RGB", (4, 4)), "BMP"), "BMP"),
    ("ico", encode(Image.new("RGB", (16, 16)), "ICO"), "ICO"),
    ("psd", b"8BPS\x00\x01" + bytes(40), "PSD"),
    ("heic", ftyp(b"heic", b"mif1", b"heic"), "HEIC"),
    ("heif-mif1", ftyp(b"mif1", b"mif1", b"heic", b"miaf"), "HEIC"),
    ("mp4", ftyp(b"isom", b"isom", b"mp41"), "MP4 video"),
    ("binary-noise", bytes(range(256)) * 4, "unknown"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "kind"), [pytest.param(d, k, id=i) for i, d, k in NOT_IMAGES]
)  # fmt: skip
def test_given_non_image_when_sniffed_then_unsupported_format_names_what_it_is(
    data: bytes, kind: str
) -> None:
    # Given bytes that are not an image we read
    # When / Then the rejection says what they look like
    with pytest.raises(UnsupportedFormat, match=kind):
        sniff_bytes(data)


def test_given_empty_object_when_sniffed_then_empty_object() -> None:
    with pytest.raises(EmptyObject):
        sniff_bytes(b"")


def test_given_png_when_only_jpeg_is_allowed_then_unsupported_format_names_png() -> None:
    # Given a valid PNG
    data = fixture("png-RGB")
    # When the allow-list has only JPEG / Then
    with pytest.raises(UnsupportedFormat, match=r"PNG is not an allowed format.*JPEG"):
        sniff_bytes(data, allowed=("JPEG",))


def test_given_lowercase_allow_list_when_sniffed_then_names_match_case_insensitively() -> None:
    assert sniff_bytes(fixture("webp-lossy"), allowed=["webp"]).format == "WEBP"


CORRUPT = [
    ("jpeg-sos-before-sof", b"\xff\xd8\xff\xda\x00\x08" + bytes(16), "SOS"),
    ("jpeg-eoi-before-sof", b"\xff\xd8\xff\xfe\x00\x04ab\xff\xd9", "EOI"),
    ("jpeg-bad-segment-length", b"\xff\xd8\xff\xe0\x00\x01" + bytes(16), "invalid length"),
    ("jpeg-zero-height", lambda: set_jpeg_size(fixture("jpeg-RGB"), 64, 0), "64x0"),
    ("jpeg-zero-width", lambda: set_jpeg_size(fixture("jpeg-RGB"), 0, 48), "0x48"),
    ("png-no-ihdr", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IEND", b""), "IHDR"),
    ("png-zero-width", lambda: crafted_png(0, 16, 8, 2, 3), "0x16"),
    ("png-bad-depth", lambda: crafted_png(4, 4, 3, 2, 3), "bit depth"),
    ("png-iend-before-idat",
     lambda: crafted_png(4, 4, 8, 0, 1)[:33] + png_chunk(b"IEND", b""), "IEND"),
    ("png-bad-chunk-length",
     lambda: crafted_png(4, 4, 8, 0, 1)[:33] + b"\xff\xff\xff\xffIDAT", "damaged"),
    ("png-chunk-past-eof",
     lambda: crafted_png(4, 4, 8, 0, 1)[:33] + b"\x00\x10\x00\x00tEXt" + bytes(8), "past"),
    ("gif-no-image", b"GIF89a\x10\x00\x10\x00\x00\x00\x00;", "no image"),
    ("gif-zero-size", lambda: gif_with_screen(0, 0, (0, 0)), "0x0"),
    ("webp-riff-past-eof", b"RIFF\xff\xff\x00\x00WEBPVP8 " + bytes(24), "past the end"),
    ("webp-vp8-zero-width", lambda: patch_bytes(fixture("webp-lossy"), 26, b"\0\0"), "0x"),
    ("webp-canvas-mismatch", webp_canvas_mismatch, "does not match"),
    ("webp-animated-without-frames",
     b"RIFF\x1e\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x02\x00\x00\x00\x0f\x00\x00\x0f\x00\x00"
     b"ANIM\x00\x00\x00\x00", "no frames"),
    ("tiff-ifd-past-eof", b"II*\x00\x00\x10\x00\x00" + bytes(16), "past the end"),
    ("tiff-ifd-in-header", b"II*\x00\x04\x00\x00\x00" + bytes(16), "header"),
    ("tiff-zero-width", lambda: crafted_tiff([(256, 3, 1, 0), *tiff_entries()[1:]]), "0x8"),
    ("tiff-no-entries", b"MM\x00*\x00\x00\x00\x08\x00\x00" + bytes(8), "0 entries"),
    ("avif-no-meta", ftyp(b"avif", b"avif", b"mif1") + b"\0\0\0\x10mdat" + bytes(8), "meta"),
]  # fmt: skip
UNSUPPORTED_VARIANTS = [
    ("jpeg-2-components", lambda: patch_sof_components(fixture("jpeg-L"), 2), "2 colour"),
    ("tiff-cfa-raw", lambda: crafted_tiff([*tiff_entries(), (262, 3, 1, 32803)]), "32803"),
    # Pillow 13 recognises BigTIFF only in little-endian byte order.
    ("bigtiff-big-endian", lambda: crafted_tiff(tiff_entries(), order=">", big=True), "BigTIFF"),
]
AVIF_CORRUPT = [
    ("avif-zero-ispe", lambda: avif_ispe_zero(fixture("avif-RGB")), "0x0"),
    ("avif-box-overrun", lambda: fixture("avif-RGB")[:200], "overruns|past the end"),
]


@pytest.mark.parametrize(
    ("make", "message"), [pytest.param(m, s, id=i) for i, m, s in UNSUPPORTED_VARIANTS]
)
def test_given_variant_pillow_cannot_open_when_sniffed_then_unsupported_format(
    make: Callable[[], bytes], message: str
) -> None:
    # Given a JPEG or TIFF flavour that Pillow refuses to open
    # When / Then it is rejected up front, naming the flavour
    with pytest.raises(UnsupportedFormat, match=message):
        sniff_bytes(make())


@pytest.mark.parametrize(
    ("make", "message"),
    [pytest.param(m, s, id=i) for i, m, s in CORRUPT]
    + [pytest.param(m, s, id=i, marks=needs_avif) for i, m, s in AVIF_CORRUPT],
)
def test_given_damaged_header_when_sniffed_then_corrupt_image(
    make: bytes | Callable[[], bytes], message: str
) -> None:
    # Given a header that is truncated or inconsistent
    data = make if isinstance(make, bytes) else make()
    # When / Then
    with pytest.raises(CorruptImage, match=message):
        sniff_bytes(data)


@pytest.mark.parametrize("name", ALL_CASES)
def test_given_truncated_image_when_sniffed_then_corrupt_or_the_same_facts(name: str) -> None:
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


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 11])
@pytest.mark.parametrize("name", ["jpeg-RGB", "png-RGB", "gif-P", "webp-lossy", "tiff-RGB"])
def test_given_image_cut_inside_its_magic_when_sniffed_then_rejected(name: str, cut: int) -> None:
    with pytest.raises((CorruptImage, UnsupportedFormat)):
        sniff_bytes(fixture(name)[:cut])


def test_given_source_shorter_than_its_size_when_sniffed_then_corrupt_image() -> None:
    # Given a source that claims more bytes than it delivers (an object cut short)
    data = fixture("png-RGB")

    class ShortSource(BytesSource):
        @property
        def size(self) -> int:
            return len(data)

    # When the header needs bytes past what is there / Then it is truncation
    with pytest.raises(CorruptImage, match="truncated"):
        sniff(ShortSource(data[:40]))


# --- Budgets: bytes read and frames counted --------------------------------------------


def test_given_large_jpeg_when_sniffed_then_one_read_of_at_most_64_kib() -> None:
    # Given a 6000x4000 JPEG (a smooth gradient, so it encodes fast: still ~0.5 MB)
    im = Image.linear_gradient("L").resize((6000, 4000)).convert("RGB")
    source = CountingSource(encode(im, "JPEG", quality=90))
    assert source.size > 8 * 64 * 1024
    # When
    facts = sniff(source)
    # Then it is identified from the first block alone
    assert (facts.width, facts.height) == (6000, 4000)
    assert len(source.reads) == 1
    assert source.bytes_read <= 64 * 1024


@pytest.mark.parametrize(
    "fmt", ["PNG", "WEBP", "TIFF", pytest.param("AVIF", marks=needs_avif)]
)  # fmt: skip
def test_given_large_still_image_when_sniffed_then_pixel_data_is_skipped(fmt: str) -> None:
    # Given a large image whose pixel data cannot be compressed away
    im = Image.frombytes("RGB", (700, 700), os.urandom(700 * 700 * 3))
    options: dict[str, dict[str, Any]] = {
        "PNG": {"compress_level": 1},
        "WEBP": {"quality": 90, "exif": exif_with_orientation(3)},  # EXIF follows the pixels
        "TIFF": {},
        "AVIF": {"speed": 10, "quality": 90},
    }
    source = CountingSource(encode(im, fmt, **options[fmt]))
    # When
    facts = sniff(source)
    # Then the facts come from a few header reads, not from reading the pixels
    assert (facts.width, facts.height) == (700, 700)
    assert len(source.reads) <= 2
    assert source.bytes_read <= 2 * 64 * 1024 < source.size


def test_given_long_gif_when_frame_limit_is_set_then_counting_stops_early() -> None:
    # Given a GIF of 20 noisy frames (each ~40 KB of image data)
    noise = [Image.frombytes("L", (200, 200), os.urandom(40_000)).convert("P") for _ in range(20)]
    data = encode(noise[0], "GIF", save_all=True, append_images=noise[1:])
    source = CountingSource(data)
    # When the caller only cares whether there are more than 3
    facts = sniff(source, frame_limit=3)
    # Then it learns "4" without walking the rest of the file
    assert facts.frames == 4
    assert source.bytes_read < len(data) // 2
    assert sniff_bytes(data).frames == 20


@pytest.mark.parametrize(
    ("name", "limit", "expected"),
    [
        ("gif-animated-5", 2, 3),
        ("gif-animated-5", 5, 5),
        ("webp-animated-alpha", 1, 2),
        ("webp-animated-alpha", 10, 4),
        ("tiff-multipage-3", 1, 2),
        ("tiff-multipage-3", 3, 3),
        ("apng-RGBA-4", 2, 4),  # declared in acTL, not counted: reported as declared
    ],
)
def test_given_frame_limit_when_sniffed_then_count_stops_at_limit_plus_one(
    name: str, limit: int, expected: int
) -> None:
    assert sniff_bytes(fixture(name), frame_limit=limit).frames == expected


def test_given_frame_limit_below_one_when_sniffed_then_value_error() -> None:
    with pytest.raises(ValueError, match="frame_limit"):
        sniff_bytes(fixture("gif-P"), frame_limit=0)


def test_given_jpeg_of_endless_empty_segments_when_sniffed_then_walk_is_bounded() -> None:
    # Given a JPEG made of 150,000 empty COM segments and no frame header
    data = b"\xff\xd8" + b"\xff\xfe\x00\x02" * 150_000
    # When / Then the walk gives up instead of running on
    with pytest.raises(CorruptImage, match="too many"):
        sniff_bytes(data)


def test_given_png_of_endless_chunks_when_sniffed_then_walk_is_bounded() -> None:
    data = crafted_png(4, 4, 8, 0, 1)[:33] + png_chunk(b"tEXt", b"") * 20_000
    with pytest.raises(CorruptImage, match="more than"):
        sniff_bytes(data)


def test_given_bytes_source_when_read_past_the_end_then_short_read() -> None:
    source = BytesSource(b"abcdef")
    assert (source.size, source.read(4, 10), source.read(10, 5)) == (6, b"ef", b"")
    with pytest.raises(ValueError, match="invalid read"):
        source.read(-1, 2)


# --- Never anything but facts or a rejection -------------------------------------------


def assert_well_behaved(data: bytes) -> None:
    try:
        facts = sniff_bytes(data, frame_limit=50)
    except ImageRejected:
        return
    assert facts.width > 0
    assert facts.height > 0
    assert facts.format in {"JPEG", "PNG", "GIF", "WEBP", "TIFF", "AVIF"}
    assert 1 <= facts.orientation <= 8


MAGICS = [
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xe1\x00\x40Exif\0\0II*\0\x08\0\0\0",
    b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR",
    b"GIF89a",
    b"RIFF\xff\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00",
    b"RIFF\xff\x00\x00\x00WEBPVP8L",
    b"II*\0\x08\0\0\0",
    b"MM\0*\0\0\0\x08",
    b"II+\0\x08\0\0\0\x10\0\0\0\0\0\0\0",
    b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf",
    b"\0\0\0\x1cftypavis\0\0\0\0avisavifmsf1",
]
# Small fixtures, so that random edits land in headers rather than in pixel data.
FUZZ_CASES = [name for name in CASES if not name.endswith("-icc")]


@FUZZ
@given(st.binary(max_size=4096))
def test_given_arbitrary_bytes_when_sniffed_then_facts_or_rejection(data: bytes) -> None:
    assert_well_behaved(data)


@FUZZ
@given(st.sampled_from(MAGICS), st.binary(max_size=2048))
def test_given_valid_magic_and_random_rest_when_sniffed_then_facts_or_rejection(
    magic: bytes, rest: bytes
) -> None:
    assert_well_behaved(magic + rest)


@settings(FUZZ, max_examples=1500)
@given(
    name=st.sampled_from(FUZZ_CASES),
    edits=st.lists(st.tuples(st.integers(0, 1023), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(1, 4096),
)
def test_given_mutated_valid_image_when_sniffed_then_facts_or_rejection(
    name: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    # Given a valid image with some header bytes changed and maybe cut short
    data = bytearray(fixture(name))
    for at, value in edits:
        if at < len(data):
            data[at] = value
    # When / Then
    assert_well_behaved(bytes(data[:cut]))


@pytest.mark.parametrize("name", FUZZ_CASES)
def test_given_each_header_byte_flipped_when_sniffed_then_facts_or_rejection(name: str) -> None:
    # Given a valid image, every one of its first 160 bytes is set to 0x00, 0xFF and flipped
    data = fixture(name)
    for at in range(min(len(data), 160)):
        for value in {0x00, 0xFF, data[at] ^ 0x80}:
            # When / Then
            assert_well_behaved(data[:at] + bytes([value]) + data[at + 1 :])


# --- Shared corpus (real files; skipped where the folder is absent) --------------------


def corpus_dir() -> Path:
    override = os.environ.get("IMGPIPE_CORPUS")
    return Path(override) if override else Path(__file__).resolve().parents[3] / "shared" / "corpus"


CORPUS = corpus_dir()
CORPUS_FILES = (
    sorted(p for p in CORPUS.iterdir() if p.is_file() and p.suffix.lower() != ".tsv")
    if CORPUS.is_dir()
    else []
)
NO_CORPUS = pytest.param(
    None, marks=pytest.mark.skip(reason=f"no image corpus at {CORPUS}"), id="no-corpus"
)


def manifest_rows() -> list[dict[str, str]]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    header, *rows = manifest.read_text(encoding="utf-8").splitlines()
    names = header.split("\t")
    return [dict(zip(names, row.split("\t"), strict=False)) for row in rows if row.strip()]


@pytest.mark.corpus
@pytest.mark.parametrize(
    "path", [pytest.param(p, id=p.name) for p in CORPUS_FILES] or [NO_CORPUS]
)  # fmt: skip
def test_given_corpus_image_when_sniffed_then_facts_match_pillow(path: Path) -> None:
    # Given a real-world file from another project's test suite
    data = path.read_bytes()
    # When
    facts = sniff(CountingSource(data))
    # Then sniff agrees with Pillow (p05, catalogued as corrupt, is damaged in its pixel
    # data, not its header: both read the same facts)
    assert sniff_view(facts) == pillow_view(data)


@pytest.mark.corpus
@pytest.mark.parametrize(
    "row", [pytest.param(r, id=r["file"]) for r in manifest_rows()] or [NO_CORPUS]
)  # fmt: skip
def test_given_corpus_manifest_when_sniffed_then_facts_match_the_catalogue(
    row: dict[str, str],
) -> None:
    # Given the catalogue's description of a corpus file
    notes = dict(n.split("=", 1) for n in row.get("notes", "").split(";") if "=" in n)
    # When
    facts = sniff(BytesSource((CORPUS / row["file"]).read_bytes()))
    # Then format, size, mode, frames and orientation are as catalogued
    assert (facts.format, facts.mode, facts.width, facts.height) == (
        row["format"], row["mode"], int(row["width"]), int(row["height"]),
    )  # fmt: skip
    assert facts.frames == int(notes.get("frames", "1"))
    assert facts.orientation == int(notes.get("exif_orientation", facts.orientation))
    if "icc" in notes:
        assert facts.icc_profile
