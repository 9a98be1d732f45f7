"""`imgpipe.sniff.sniff`: the allow-list, empty objects and the frame limit."""

from __future__ import annotations

import pytest

from imgpipe.errors import EmptyObject, UnsupportedFormat
from sniff_cases import fixture, sniff_bytes


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
