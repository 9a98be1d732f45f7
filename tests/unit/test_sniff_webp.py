"""`imgpipe.sniff.webp`: WebP facts from the RIFF chunks, simple and extended."""

from __future__ import annotations

import pytest

from sniff_cases import (
    WEBP_CASES,
    Damaged,
    assert_corrupt,
    assert_facts_match_pillow,
    assert_truncated_copies_corrupt_or_the_same,
    fixture,
    patch_bytes,
    sniff_bytes,
)


def webp_canvas_mismatch() -> bytes:
    data = fixture("webp-lossy-alpha")  # VP8X + ALPH + VP8
    assert data[12:16] == b"VP8X"
    return patch_bytes(data, 24, (100).to_bytes(3, "little"))


@pytest.mark.parametrize("name", WEBP_CASES)
def test_given_pillow_written_image_when_sniffed_then_facts_match_pillow(name: str) -> None:
    assert_facts_match_pillow(name)


def test_given_image_when_sniffed_then_bit_depth_is_bits_per_sample() -> None:
    assert sniff_bytes(fixture("webp-lossless")).bit_depth == 8


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        *[(n, "icc_profile") for n in ("webp-icc", "webp-lossless-icc-exif-o8")],
        *[(n, "has_alpha") for n in ("webp-lossy-alpha", "webp-lossless-alpha")],
        ("webp-animated-alpha", "has_alpha"),
    ],
)
def test_given_image_with_a_feature_when_sniffed_then_its_flag_is_set(name: str, flag: str) -> None:
    # The Pillow comparison alone could agree on False.
    assert getattr(sniff_bytes(fixture(name)), flag) is True


CORRUPT: list[tuple[str, Damaged, str]] = [
    ("webp-riff-past-eof", b"RIFF\xff\xff\x00\x00WEBPVP8 " + bytes(24), "past the end"),
    ("webp-vp8-zero-width", lambda: patch_bytes(fixture("webp-lossy"), 26, b"\0\0"), "0x"),
    ("webp-canvas-mismatch", webp_canvas_mismatch, "does not match"),
    ("webp-animated-without-frames",
     b"RIFF\x1e\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x02\x00\x00\x00\x0f\x00\x00\x0f\x00\x00"
     b"ANIM\x00\x00\x00\x00", "no frames"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "message"), [pytest.param(m, s, id=i) for i, m, s in CORRUPT])
def test_given_damaged_header_when_sniffed_then_corrupt_image(make: Damaged, message: str) -> None:
    assert_corrupt(make, message)


@pytest.mark.parametrize("name", WEBP_CASES)
def test_given_truncated_image_when_sniffed_then_corrupt_or_the_same_facts(name: str) -> None:
    assert_truncated_copies_corrupt_or_the_same(name)
