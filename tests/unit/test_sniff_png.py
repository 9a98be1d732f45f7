"""`imgpipe.sniff.png`: PNG facts from IHDR and the chunks before the image data."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from imgpipe.errors import CorruptImage
from sniff_cases import (
    PNG_CASES,
    Damaged,
    assert_corrupt,
    assert_facts_match_pillow,
    assert_truncated_copies_corrupt_or_the_same,
    crafted_png,
    exif_with_orientation,
    fixture,
    png_chunk,
    sniff_bytes,
)


@pytest.mark.parametrize("name", PNG_CASES)
def test_given_pillow_written_image_when_sniffed_then_facts_match_pillow(name: str) -> None:
    assert_facts_match_pillow(name)


@pytest.mark.parametrize(
    ("name", "bit_depth"),
    [
        ("png-1", 1),
        ("png-L-2bit", 2),
        ("png-I;16", 16),
        ("png-RGB-16bit", 16),
        ("png-RGBA-16bit", 16),
    ],
)
def test_given_image_when_sniffed_then_bit_depth_is_bits_per_sample(
    name: str, bit_depth: int
) -> None:
    assert sniff_bytes(fixture(name)).bit_depth == bit_depth


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("png-icc", "icc_profile"),
        *[(n, "has_alpha") for n in ("png-LA", "png-RGBA", "png-P-trns", "png-L-trns")],
        *[(n, "has_alpha") for n in ("png-RGB-trns", "png-LA-16bit", "apng-RGBA-4")],
    ],
)
def test_given_image_with_a_feature_when_sniffed_then_its_flag_is_set(name: str, flag: str) -> None:
    # The Pillow comparison alone could agree on False.
    assert getattr(sniff_bytes(fixture(name)), flag) is True


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


CORRUPT: list[tuple[str, Damaged, str]] = [
    ("png-no-ihdr", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IEND", b""), "IHDR"),
    ("png-zero-width", lambda: crafted_png(0, 16, 8, 2, 3), "0x16"),
    ("png-bad-depth", lambda: crafted_png(4, 4, 3, 2, 3), "bit depth"),
    ("png-iend-before-idat",
     lambda: crafted_png(4, 4, 8, 0, 1)[:33] + png_chunk(b"IEND", b""), "IEND"),
    ("png-bad-chunk-length",
     lambda: crafted_png(4, 4, 8, 0, 1)[:33] + b"\xff\xff\xff\xffIDAT", "damaged"),
    ("png-chunk-past-eof",
     lambda: crafted_png(4, 4, 8, 0, 1)[:33] + b"\x00\x10\x00\x00tEXt" + bytes(8), "past"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "message"), [pytest.param(m, s, id=i) for i, m, s in CORRUPT])
def test_given_damaged_header_when_sniffed_then_corrupt_image(make: Damaged, message: str) -> None:
    assert_corrupt(make, message)


@pytest.mark.parametrize("name", PNG_CASES)
def test_given_truncated_image_when_sniffed_then_corrupt_or_the_same_facts(name: str) -> None:
    assert_truncated_copies_corrupt_or_the_same(name)


def test_given_png_of_endless_chunks_when_sniffed_then_walk_is_bounded() -> None:
    data = crafted_png(4, 4, 8, 0, 1)[:33] + png_chunk(b"tEXt", b"") * 20_000
    with pytest.raises(CorruptImage, match="more than"):
        sniff_bytes(data)
