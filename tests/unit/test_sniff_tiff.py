"""`imgpipe.sniff.tiff`: TIFF and BigTIFF facts from IFD0, frames from the IFD chain."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import pytest
from PIL import Image

from imgpipe.errors import UnsupportedFormat
from sniff_cases import (
    TIFF_CASES,
    Damaged,
    assert_corrupt,
    assert_facts_match_pillow,
    assert_truncated_copies_corrupt_or_the_same,
    crafted_tiff,
    fixture,
    pillow_view,
    sniff_bytes,
    tiff_entries,
)


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


@pytest.mark.parametrize("name", TIFF_CASES)
def test_given_pillow_written_image_when_sniffed_then_facts_match_pillow(name: str) -> None:
    assert_facts_match_pillow(name)


@pytest.mark.parametrize(("name", "bit_depth"), [("tiff-1", 1), ("tiff-I;16", 16), ("tiff-RGB", 8)])
def test_given_image_when_sniffed_then_bit_depth_is_bits_per_sample(
    name: str, bit_depth: int
) -> None:
    assert sniff_bytes(fixture(name)).bit_depth == bit_depth


@pytest.mark.parametrize(
    ("name", "flag"),
    [("tiff-icc", "icc_profile"), ("tiff-LA", "has_alpha"), ("tiff-RGBA", "has_alpha")],
)
def test_given_image_with_a_feature_when_sniffed_then_its_flag_is_set(name: str, flag: str) -> None:
    # The Pillow comparison alone could agree on False.
    assert getattr(sniff_bytes(fixture(name)), flag) is True


def test_given_tiff_with_rotating_orientation_when_sniffed_then_size_is_as_stored() -> None:
    # Given a 64x48 TIFF tagged "rotate 90 CW" (orientation 6)
    data = fixture("tiff-o6")
    # When
    facts = sniff_bytes(data)
    # Then the stored size is reported, and the oriented size is what Pillow 13 shows
    assert (facts.width, facts.height, facts.orientation) == (64, 48, 6)
    assert facts.oriented_size == Image.open(io.BytesIO(data)).size == (48, 64)


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


CORRUPT: list[tuple[str, Damaged, str]] = [
    ("tiff-ifd-past-eof", b"II*\x00\x00\x10\x00\x00" + bytes(16), "past the end"),
    ("tiff-ifd-in-header", b"II*\x00\x04\x00\x00\x00" + bytes(16), "header"),
    ("tiff-zero-width", lambda: crafted_tiff([(256, 3, 1, 0), *tiff_entries()[1:]]), "0x8"),
    ("tiff-no-entries", b"MM\x00*\x00\x00\x00\x08\x00\x00" + bytes(8), "0 entries"),
]
UNSUPPORTED_VARIANTS = [
    ("tiff-cfa-raw", lambda: crafted_tiff([*tiff_entries(), (262, 3, 1, 32803)]), "32803"),
    # Pillow 13 recognises BigTIFF only in little-endian byte order.
    ("bigtiff-big-endian", lambda: crafted_tiff(tiff_entries(), order=">", big=True), "BigTIFF"),
]


@pytest.mark.parametrize(
    ("make", "message"), [pytest.param(m, s, id=i) for i, m, s in UNSUPPORTED_VARIANTS]
)
def test_given_variant_pillow_cannot_open_when_sniffed_then_unsupported_format(
    make: Callable[[], bytes], message: str
) -> None:
    # Given a TIFF flavour that Pillow refuses to open
    # When / Then it is rejected up front, naming the flavour
    with pytest.raises(UnsupportedFormat, match=message):
        sniff_bytes(make())


@pytest.mark.parametrize(("make", "message"), [pytest.param(m, s, id=i) for i, m, s in CORRUPT])
def test_given_damaged_header_when_sniffed_then_corrupt_image(make: Damaged, message: str) -> None:
    assert_corrupt(make, message)


@pytest.mark.parametrize("name", TIFF_CASES)
def test_given_truncated_image_when_sniffed_then_corrupt_or_the_same_facts(name: str) -> None:
    assert_truncated_copies_corrupt_or_the_same(name)
