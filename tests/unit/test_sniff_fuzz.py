"""`imgpipe.sniff` on hostile bytes: never anything but facts or a rejection."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgpipe.errors import ImageRejected
from sniff_cases import CASES, fixture, sniff_bytes

# No example database: every run explores afresh and none is saved in the checkout.
FUZZ = settings(
    max_examples=300,
    deadline=timedelta(seconds=2),
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def assert_well_behaved(data: bytes) -> None:
    try:
        facts = sniff_bytes(data, frame_limit=50)
    except ImageRejected:
        return
    assert facts.width > 0
    assert facts.height > 0
    assert facts.format in {"JPEG", "PNG", "GIF", "WEBP", "TIFF", "AVIF", "HEIF"}
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
    b"\0\0\0\x1cftypheic\0\0\0\0mif1heicmiaf",
    b"\0\0\0\x18ftypmsf1\0\0\0\0msf1hevc",
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
