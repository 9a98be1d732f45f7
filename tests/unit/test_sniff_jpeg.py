"""`imgpipe.sniff.jpeg`: JPEG facts from the segments before the first scan."""

from __future__ import annotations

import struct

import pytest
from PIL import Image

from imgpipe.errors import CorruptImage, UnsupportedFormat
from imgpipe.sniff import sniff
from sniff_cases import (
    JPEG_CASES,
    CountingSource,
    Damaged,
    assert_corrupt,
    assert_facts_match_pillow,
    assert_truncated_copies_corrupt_or_the_same,
    encode,
    fixture,
    patch_bytes,
    pillow_view,
    sniff_bytes,
    sniff_view,
)


def set_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    out = bytearray(data)
    sof = out.index(b"\xff\xc0")
    struct.pack_into(">HH", out, sof + 5, height, width)
    return bytes(out)


def patch_sof_components(data: bytes, components: int) -> bytes:
    return patch_bytes(data, data.index(b"\xff\xc0") + 9, bytes([components]))


@pytest.mark.parametrize("name", JPEG_CASES)
def test_given_pillow_written_image_when_sniffed_then_facts_match_pillow(name: str) -> None:
    assert_facts_match_pillow(name)


def test_given_image_when_sniffed_then_bit_depth_is_bits_per_sample() -> None:
    assert sniff_bytes(fixture("jpeg-RGB")).bit_depth == 8


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("jpeg-progressive", "progressive"),
        *[(n, "icc_profile") for n in ("jpeg-icc", "jpeg-icc-3-segments")],
    ],
)
def test_given_image_with_a_feature_when_sniffed_then_its_flag_is_set(name: str, flag: str) -> None:
    # The Pillow comparison alone could agree on False.
    assert getattr(sniff_bytes(fixture(name)), flag) is True


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


CORRUPT: list[tuple[str, Damaged, str]] = [
    ("jpeg-sos-before-sof", b"\xff\xd8\xff\xda\x00\x08" + bytes(16), "SOS"),
    ("jpeg-eoi-before-sof", b"\xff\xd8\xff\xfe\x00\x04ab\xff\xd9", "EOI"),
    ("jpeg-bad-segment-length", b"\xff\xd8\xff\xe0\x00\x01" + bytes(16), "invalid length"),
    ("jpeg-zero-height", lambda: set_jpeg_size(fixture("jpeg-RGB"), 64, 0), "64x0"),
    ("jpeg-zero-width", lambda: set_jpeg_size(fixture("jpeg-RGB"), 0, 48), "0x48"),
]


@pytest.mark.parametrize(("make", "message"), [pytest.param(m, s, id=i) for i, m, s in CORRUPT])
def test_given_damaged_header_when_sniffed_then_corrupt_image(make: Damaged, message: str) -> None:
    assert_corrupt(make, message)


def test_given_variant_pillow_cannot_open_when_sniffed_then_unsupported_format() -> None:
    # Given a JPEG with two colour components, which Pillow refuses to open
    data = patch_sof_components(fixture("jpeg-L"), 2)
    # When / Then it is rejected up front, naming the flavour
    with pytest.raises(UnsupportedFormat, match="2 colour"):
        sniff_bytes(data)


@pytest.mark.parametrize("name", JPEG_CASES)
def test_given_truncated_image_when_sniffed_then_corrupt_or_the_same_facts(name: str) -> None:
    assert_truncated_copies_corrupt_or_the_same(name)


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


def test_given_jpeg_of_endless_empty_segments_when_sniffed_then_walk_is_bounded() -> None:
    # Given a JPEG made of 150,000 empty COM segments and no frame header
    data = b"\xff\xd8" + b"\xff\xfe\x00\x02" * 150_000
    # When / Then the walk gives up instead of running on
    with pytest.raises(CorruptImage, match="too many"):
        sniff_bytes(data)
