"""`imgpipe.sniff._reader`: byte sources, truncation, and how much of a file is read."""

from __future__ import annotations

import os
from typing import Any

import pytest
from PIL import Image

from imgpipe.errors import CorruptImage
from imgpipe.sniff import BytesSource, sniff
from sniff_cases import CountingSource, encode, exif_with_orientation, fixture, heic, needs_avif


def test_given_bytes_source_when_read_past_the_end_then_short_read() -> None:
    source = BytesSource(b"abcdef")
    assert (source.size, source.read(4, 10), source.read(10, 5)) == (6, b"ef", b"")
    with pytest.raises(ValueError, match="invalid read"):
        source.read(-1, 2)


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


@pytest.mark.parametrize(
    "fmt", ["PNG", "WEBP", "TIFF", pytest.param("AVIF", marks=needs_avif), "HEIF"]
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
    data = heic(im, quality=90) if fmt == "HEIF" else encode(im, fmt, **options[fmt])
    source = CountingSource(data)
    # When
    facts = sniff(source)
    # Then the facts come from a few header reads, not from reading the pixels
    assert (facts.width, facts.height) == (700, 700)
    assert len(source.reads) <= 2
    assert source.bytes_read <= 2 * 64 * 1024 < source.size
