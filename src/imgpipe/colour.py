"""Colour management: from a source's colour space to sRGB, with littleCMS.

Pure, like the rest of the imaging core. A source describes its colours either with an
embedded ICC profile (JPEG, PNG, WebP, TIFF, AVIF, HEIF's `colr` of type prof) or, in
HEIF, with an `nclx` colour description: code points from ITU-T H.273 for primaries and
transfer function instead of a profile. littleCMS only speaks ICC, so an nclx
description is written out as the small matrix/TRC ICC profile it stands for
(`nclx_profile`) and goes down the same path. Decisions in docs/imaging.md.
"""

from __future__ import annotations

import functools
import io
import logging
import struct
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    from PIL.ImageCms import ImageCmsProfile, ImageCmsTransform

__all__ = ["nclx_profile", "srgb_converter"]

_LOG = logging.getLogger(__name__)

# An embedded profile whose transform to sRGB moves no probe colour by more than this
# many levels is sRGB already, and its (per-output) transform is skipped: cameras and
# editors embed the 3144-byte IEC 61966-2.1 profile, which littleCMS maps onto its own
# sRGB within one level. docs/performance.md.
_SRGB_TOLERANCE = 1
_WITH_ALPHA = ("LA", "RGBA")


@functools.cache
def _srgb_profile() -> ImageCmsProfile:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def srgb_converter(mode: str, icc: bytes | None) -> Callable[[Image.Image], Image.Image]:
    """How to turn images of `mode` (L, LA, RGB, RGBA, CMYK, LAB) into sRGB RGB/RGBA."""
    if icc is not None or mode == "LAB":
        managed = _icc_converter(mode, icc)
        if managed is not None:
            return managed
    plain_mode = "RGBA" if mode in _WITH_ALPHA else "RGB"

    def plain(im: Image.Image) -> Image.Image:
        # The resized images are ours alone: one already in the output mode needs no copy.
        return im if im.mode == plain_mode else im.convert(plain_mode)

    return plain


def _icc_converter(mode: str, icc: bytes | None) -> Callable[[Image.Image], Image.Image] | None:
    """A littleCMS transform to sRGB; None when the profile is unusable or sRGB already."""
    # Imported here: only images that carry a profile pay for loading littleCMS.
    from PIL import ImageCms

    in_mode = "L" if mode == "LA" else mode
    out_mode = "RGBA" if mode == "RGBA" else "RGB"
    transform = _icc_transform(in_mode, out_mode, icc)
    if isinstance(transform, str):
        # A profile we cannot use is not worth rejecting a photo over: the pixels are
        # still shown, only possibly with slightly wrong colours.
        _LOG.warning(
            "unusable ICC profile (%s, %s); converting without colour management",
            mode,
            transform,
        )
        return None
    if in_mode in ("RGB", "RGBA") and icc is not None and _is_srgb_already(icc):
        return None

    def managed(im: Image.Image) -> Image.Image:
        # RGBA -> RGBA keeps alpha inside littleCMS; LA has no such transform, so its
        # grey goes through alone and the alpha is put back.
        converted = ImageCms.applyTransform(
            im.getchannel("L") if im.mode == "LA" else im, transform
        )
        assert converted is not None  # only None with inPlace=True
        if im.mode == "LA":
            converted.putalpha(im.getchannel("A"))
        return converted

    return managed


# Building a transform costs ~3-4 ms (37 ms for a 400 KB LUT profile); a warm function
# sees the same few profiles (one per camera model) over and over. Keyed by the
# profile's bytes; a handful of profiles is a few KB each.
@functools.lru_cache(maxsize=16)
def _icc_transform(in_mode: str, out_mode: str, icc: bytes | None) -> ImageCmsTransform | str:
    """The transform from `icc` (LAB when None) to sRGB, or why there is none."""
    from PIL import ImageCms

    try:
        if icc is None:
            source = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
        else:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.buildTransform(
            source,
            _srgb_profile(),
            in_mode,
            out_mode,
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        return str(exc) or type(exc).__name__


@functools.cache
def _srgb_probe() -> Image.Image:
    """A 33-level RGB grid plus every level of grey, red, green and blue (36,961 colours)."""
    levels = [min(255, 8 * i) for i in range(33)]
    colours = [(r, g, b) for r in levels for g in levels for b in levels]
    for v in range(256):
        colours += [(v, v, v), (v, 0, 0), (0, v, 0), (0, 0, v)]
    probe = Image.new("RGB", (len(colours), 1))
    probe.putdata(colours)
    return probe


@functools.lru_cache(maxsize=16)
def _is_srgb_already(icc: bytes) -> bool:
    """Whether an RGB profile's transform to sRGB moves no probe colour noticeably."""
    from PIL import ImageChops, ImageCms

    transform = _icc_transform("RGB", "RGB", icc)
    if isinstance(transform, str):
        return False
    probe = _srgb_probe()
    converted = ImageCms.applyTransform(probe, transform)
    assert converted is not None  # only None with inPlace=True
    extrema = ImageChops.difference(converted, probe).getextrema()
    return all(high <= _SRGB_TOLERANCE for _, high in extrema)  # type: ignore[misc]


# ------------------------------------------------------------------------------ nclx

# H.273 transfer characteristics whose curve an ICC parametric curve (type 3:
# Y = (aX + b)^g above d, cX below) writes exactly: (g, a, b, c, d).
_SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
_CURVES: dict[int, tuple[float, float, float, float, float]] = {
    13: _SRGB_CURVE,  # IEC 61966-2-1 (sRGB, Display P3)
    4: (2.2, 1.0, 0.0, 0.0, 0.0),  # BT.470 System M
    5: (2.8, 1.0, 0.0, 0.0, 0.0),  # BT.470 System B, G
    8: (1.0, 1.0, 0.0, 0.0, 0.0),  # linear
}
# BT.709/601/2020 name a camera's encoding curve, which no decoder inverts for
# display; encoders write them for sRGB-like material and browsers show it as sRGB.
# PQ (16) and HLG (18) are HDR and cannot be shown on sRGB without tone mapping:
# they too get the sRGB curve (docs/imaging.md).
_SRGB_LIKE_TRANSFERS = frozenset({1, 2, 6, 14, 15, 16, 18})
# H.273 colour primaries that are sRGB's own (BT.709) or unspecified.
_SRGB_PRIMARIES = frozenset({1, 2})
_D50 = (0.9642, 1.0, 0.8249)
_BRADFORD = (
    (0.8951, 0.2664, -0.1614),
    (-0.7502, 1.7135, 0.0367),
    (0.0389, -0.0685, 1.0296),
)


def nclx_profile(nclx: Mapping[str, Any]) -> bytes | None:
    """The ICC profile an nclx colour description stands for; None when it is sRGB.

    `nclx` is libheif's description as pi-heif reports it: the H.273 code points and the
    chromaticities (x, y) of the primaries and the white point.
    """
    primaries = nclx.get("color_primaries")
    transfer = nclx.get("transfer_characteristics")
    curve = _CURVES.get(transfer, _SRGB_CURVE) if isinstance(transfer, int) else _SRGB_CURVE
    if isinstance(transfer, int) and transfer in (16, 18):
        _LOG.warning("HDR transfer function %d shown as sRGB (no tone mapping)", transfer)
    if primaries in _SRGB_PRIMARIES and curve is _SRGB_CURVE:
        return None
    try:
        chromaticities = tuple(
            (float(nclx[f"color_primary_{c}_x"]), float(nclx[f"color_primary_{c}_y"]))
            for c in ("red", "green", "blue", "white")
        )
    except (KeyError, TypeError, ValueError):
        _LOG.warning("nclx description without chromaticities; treating it as sRGB")
        return None
    # libheif hands them over as float32: 0.68 arrives as 0.6800000071525574.
    rounded = tuple((round(x, 4), round(y, 4)) for x, y in chromaticities)
    if any(y <= 0 for _, y in rounded):
        _LOG.warning("nclx chromaticities %s are unusable; treating them as sRGB", rounded)
        return None
    return _matrix_trc_profile(rounded, curve)


def _xyz(x: float, y: float) -> tuple[float, float, float]:
    return x / y, 1.0, (1 - x - y) / y


def _mul(m: tuple[tuple[float, ...], ...], v: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(sum(a * b for a, b in zip(row, v, strict=True)) for row in m)


def _inverse(m: tuple[tuple[float, ...], ...]) -> tuple[tuple[float, ...], ...]:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return (
        ((e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det),
        ((f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det),
        ((d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det),
    )


def _d50_colorants(
    chromaticities: tuple[tuple[float, float], ...],
) -> list[tuple[float, ...]]:
    """The XYZ (D50, Bradford-adapted) of full red, green and blue, as ICC wants them."""
    red, green, blue, white = (_xyz(x, y) for x, y in chromaticities)
    primaries = tuple(zip(red, green, blue, strict=True))
    scale = _mul(_inverse(primaries), white)
    colorants = [
        tuple(v * s for v in xyz) for xyz, s in zip((red, green, blue), scale, strict=True)
    ]
    cone_src, cone_dst = _mul(_BRADFORD, white), _mul(_BRADFORD, _D50)
    gain = tuple(d / s for d, s in zip(cone_dst, cone_src, strict=True))
    back = _inverse(_BRADFORD)
    return [
        _mul(back, tuple(g * v for g, v in zip(gain, _mul(_BRADFORD, c), strict=True)))
        for c in colorants
    ]


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: tuple[float, ...]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _para_tag(curve: tuple[float, float, float, float, float]) -> bytes:
    return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in curve)


def _text_tag(text: str) -> bytes:
    utf16 = text.encode("utf-16-be")
    return b"mluc\0\0\0\0" + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(utf16), 28) + utf16


def _matrix_trc_profile(
    chromaticities: tuple[tuple[float, float], ...],
    curve: tuple[float, float, float, float, float],
) -> bytes:
    red, green, blue = _d50_colorants(chromaticities)
    trc = _para_tag(curve)
    tags = [
        (b"desc", _text_tag("imgpipe nclx")),
        (b"cprt", _text_tag("No copyright, use freely")),
        (b"wtpt", _xyz_tag(_D50)),
        (b"rXYZ", _xyz_tag(red)),
        (b"gXYZ", _xyz_tag(green)),
        (b"bXYZ", _xyz_tag(blue)),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
    ]
    table_end = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += struct.pack(">4sII", signature, table_end + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    size = table_end + len(body)
    header = (
        struct.pack(">I4sI4s4s4s", size, b"\0\0\0\0", 0x04300000, b"mntr", b"RGB ", b"XYZ ")
        + b"\0" * 12  # date
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # perceptual
        + b"".join(_s15(v) for v in _D50)
        + b"\0" * 48  # creator, profile id, reserved
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body
