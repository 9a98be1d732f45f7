"""ICC profiles built byte by byte for the tests (no profile files are copied in).

A linear-light RGB or grey profile and a naive CMYK profile make colour conversion
observable: with the profile honoured, 50 % grey comes out near sRGB 188, without it
near 128.
"""

from __future__ import annotations

import struct

D50 = (0.9642, 1.0, 0.8249)
SRGB_COLORANTS = (
    (0.4361, 0.2225, 0.0139),
    (0.3851, 0.7169, 0.0971),
    (0.1431, 0.0606, 0.7141),
)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _gamma_curve(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def _text(text: str) -> bytes:
    utf16 = text.encode("utf-16-be")
    return b"mluc\0\0\0\0" + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(utf16), 28) + utf16


def icc_profile(device_class: bytes, space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    table_end = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        padded = data + b"\0" * (-len(data) % 4)
        table += struct.pack(">4sII", signature, table_end + len(body), len(data))
        body += padded
    header = struct.pack(
        ">I4sI4s4s4s12s4s4sI4s4s8sI",
        table_end + len(body),
        b"lcms",
        0x04300000,
        device_class,
        space,
        b"XYZ ",
        b"\0" * 12,
        b"acsp",
        b"\0" * 4,
        0,
        b"\0" * 4,
        b"\0" * 4,
        b"\0" * 8,
        0,
    )
    header += b"".join(_s15(v) for v in D50) + b"\0" * 48
    return header + struct.pack(">I", len(tags)) + table + body


def linear_rgb_profile() -> bytes:
    return icc_profile(
        b"mntr",
        b"RGB ",
        [
            (b"desc", _text("linear-light sRGB (test)")),
            (b"wtpt", _xyz(D50)),
            (b"rXYZ", _xyz(SRGB_COLORANTS[0])),
            (b"gXYZ", _xyz(SRGB_COLORANTS[1])),
            (b"bXYZ", _xyz(SRGB_COLORANTS[2])),
            (b"rTRC", _gamma_curve(1.0)),
            (b"gTRC", _gamma_curve(1.0)),
            (b"bTRC", _gamma_curve(1.0)),
        ],
    )


def linear_grey_profile() -> bytes:
    return icc_profile(
        b"mntr",
        b"GRAY",
        [
            (b"desc", _text("linear grey (test)")),
            (b"wtpt", _xyz(D50)),
            (b"kTRC", _gamma_curve(1.0)),
        ],
    )


def naive_cmyk_profile() -> bytes:
    """CMYK -> XYZ as a 2x2x2x2 lookup table: each ink removes its light linearly."""
    clut = b""
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    rgb = ((1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k))
                    xyz = [
                        sum(SRGB_COLORANTS[ch][i] * rgb[ch] for ch in range(3)) for i in range(3)
                    ]
                    clut += struct.pack(">3H", *(min(65535, round(v * 32768)) for v in xyz))
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = b"mft2\0\0\0\0" + struct.pack(">BBBB", 4, 3, 2, 0) + identity + struct.pack(">HH", 2, 2)
    lut += struct.pack(">2H", 0, 65535) * 4 + clut + struct.pack(">2H", 0, 65535) * 3
    return icc_profile(
        b"scnr",
        b"CMYK",
        [(b"desc", _text("naive CMYK (test)")), (b"wtpt", _xyz(D50)), (b"A2B0", lut)],
    )
