"""`imgpipe.sniff.exif`: the orientation from an EXIF block, carried here by a JPEG APP1."""

from __future__ import annotations

import struct

import pytest

from sniff_cases import canvas, encode, sniff_bytes


def jpeg_with_app1(tiff_block: bytes) -> bytes:
    plain = encode(canvas("RGB"), "JPEG")
    segment = b"Exif\0\0" + tiff_block
    return plain[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + plain[2:]


def exif_block(order: str, typ: int, value: int) -> bytes:
    magic = b"II*\0" if order == "<" else b"MM\0*"
    field = value.to_bytes({1: 1, 3: 2, 4: 4}[typ], "little" if order == "<" else "big")
    entry = struct.pack(order + "HHI", 0x0112, typ, 1) + field.ljust(4, b"\0")
    return magic + struct.pack(order + "I", 8) + struct.pack(order + "H", 1) + entry + bytes(4)


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
