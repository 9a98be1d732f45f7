"""`imgpipe.sniff.gif`: GIF facts, and frames counted by walking the blocks."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from imgpipe.sniff import sniff
from sniff_cases import (
    GIF_CASES,
    CountingSource,
    Damaged,
    assert_corrupt,
    assert_facts_match_pillow,
    assert_truncated_copies_corrupt_or_the_same,
    encode,
    fixture,
    gif_with_screen,
    sniff_bytes,
)


@pytest.mark.parametrize("name", GIF_CASES)
def test_given_pillow_written_image_when_sniffed_then_facts_match_pillow(name: str) -> None:
    assert_facts_match_pillow(name)


def test_given_image_when_sniffed_then_bit_depth_is_bits_per_sample() -> None:
    assert sniff_bytes(fixture("gif-P")).bit_depth == 8


def test_given_image_with_a_feature_when_sniffed_then_its_flag_is_set() -> None:
    # Given a GIF with a transparent colour
    # When / Then the flag is set (the Pillow comparison alone could agree on False)
    assert sniff_bytes(fixture("gif-transparent")).has_alpha is True


CORRUPT: list[tuple[str, Damaged, str]] = [
    ("gif-no-image", b"GIF89a\x10\x00\x10\x00\x00\x00\x00;", "no image"),
    ("gif-zero-size", lambda: gif_with_screen(0, 0, (0, 0)), "0x0"),
]


@pytest.mark.parametrize(("make", "message"), [pytest.param(m, s, id=i) for i, m, s in CORRUPT])
def test_given_damaged_header_when_sniffed_then_corrupt_image(make: Damaged, message: str) -> None:
    assert_corrupt(make, message)


@pytest.mark.parametrize("name", GIF_CASES)
def test_given_truncated_image_when_sniffed_then_corrupt_or_the_same_facts(name: str) -> None:
    assert_truncated_copies_corrupt_or_the_same(name)


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
