"""`imgpipe.sniff.avif`: AVIF still images (meta items) and image sequences (tracks)."""

from __future__ import annotations

import pytest

from imgpipe.sniff.bmff import orientation
from sniff_cases import (
    AVIF_CASES,
    Damaged,
    assert_corrupt,
    assert_facts_match_pillow,
    assert_truncated_copies_corrupt_or_the_same,
    case_params,
    fixture,
    ftyp,
    needs_avif,
    sniff_bytes,
)


def avif_ispe_zero(data: bytes) -> bytes:
    out = bytearray(data)
    at = out.index(b"ispe")
    out[at + 8 : at + 16] = bytes(8)
    return bytes(out)


@pytest.mark.parametrize("name", case_params(AVIF_CASES))
def test_given_pillow_written_image_when_sniffed_then_facts_match_pillow(name: str) -> None:
    assert_facts_match_pillow(name)


@needs_avif
def test_given_image_when_sniffed_then_bit_depth_is_bits_per_sample() -> None:
    assert sniff_bytes(fixture("avif-RGB")).bit_depth == 8


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        pytest.param("avif-icc", "icc_profile", marks=needs_avif),
        pytest.param("avif-RGBA", "has_alpha", marks=needs_avif),
        pytest.param("avif-sequence-alpha", "has_alpha", marks=needs_avif),
    ],
)
def test_given_image_with_a_feature_when_sniffed_then_its_flag_is_set(name: str, flag: str) -> None:
    # The Pillow comparison alone could agree on False.
    assert getattr(sniff_bytes(fixture(name)), flag) is True


# Pillow's _avif.c: (irot angle, imir axis, or None without one) -> EXIF orientation.
PILLOW_AVIF_ORIENTATIONS = {
    (0, None): 1, (0, 1): 2, (0, 0): 4,
    (1, None): 8, (1, 1): 7, (1, 0): 5,
    (2, None): 3, (2, 1): 4, (2, 0): 2,
    (3, None): 6, (3, 1): 5, (3, 0): 7,
}  # fmt: skip


@pytest.mark.parametrize(("turn", "expected"), PILLOW_AVIF_ORIENTATIONS.items(), ids=str)
def test_given_irot_then_imir_when_mapped_then_exif_orientation_is_pillows(
    turn: tuple[int, int | None], expected: int
) -> None:
    # Given an AVIF's rotation and mirror, which libavif applies in that order
    angle, axis = turn
    transforms = [(b"irot", angle)] + ([(b"imir", axis)] if axis is not None else [])
    # When / Then the orientation is the one Pillow's AVIF plugin reports
    assert orientation(transforms) == expected


CORRUPT: list[tuple[str, Damaged, str]] = [
    ("avif-no-meta", ftyp(b"avif", b"avif", b"mif1") + b"\0\0\0\x10mdat" + bytes(8), "meta"),
]
AVIF_CORRUPT: list[tuple[str, Damaged, str]] = [
    ("avif-zero-ispe", lambda: avif_ispe_zero(fixture("avif-RGB")), "0x0"),
    ("avif-box-overrun", lambda: fixture("avif-RGB")[:200], "overruns|past the end"),
]


@pytest.mark.parametrize(
    ("make", "message"),
    [pytest.param(m, s, id=i) for i, m, s in CORRUPT]
    + [pytest.param(m, s, id=i, marks=needs_avif) for i, m, s in AVIF_CORRUPT],
)
def test_given_damaged_header_when_sniffed_then_corrupt_image(make: Damaged, message: str) -> None:
    assert_corrupt(make, message)


@pytest.mark.parametrize("name", case_params(AVIF_CASES))
def test_given_truncated_image_when_sniffed_then_corrupt_or_the_same_facts(name: str) -> None:
    assert_truncated_copies_corrupt_or_the_same(name)
