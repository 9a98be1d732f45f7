"""HEIC/HEIF sources through the imaging core (`render`), decoded by pi-heif.

Fixtures are encoded here with pillow-heif (a dev-only dependency: its x265 encoder
never reaches a layer). pillow-heif's Pillow plugin is never registered, so the only
HEIF reader in the process is pi-heif's, as in the resize Lambda.
"""

from __future__ import annotations

import io
import itertools
import struct
from typing import Any

import pillow_heif
import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from imgpipe.colour import nclx_profile
from imgpipe.errors import CorruptImage
from imgpipe.imaging import render
from imgpipe.specs import ImageFacts, RenderSettings, RenditionSpec

# Display P3 (SMPTE EG 432-1: DCI-P3 primaries, D65 white), H.273 code points.
P3_NCLX = {"color_primaries": 12, "transfer_characteristics": 13, "matrix_coefficients": 6}
# The D50-adapted colorants of Display P3 as Apple's and the ICC's published profiles
# list them; written out here so the fixture does not come from the code under test.
P3_COLORANTS = (
    (0.515102, 0.241196, -0.001053),
    (0.291965, 0.692245, 0.041887),
    (0.157153, 0.066561, 0.784072),
)
D50 = (0.9642, 1.0, 0.8249)
# Linear Display P3 -> linear sRGB (both D65), the published 3x3.
P3_TO_SRGB = (
    (1.224940, -0.224940, 0.0),
    (-0.042057, 1.042057, 0.0),
    (-0.019638, -0.078636, 1.098274),
)


def heic(image: Image.Image, **params: Any) -> bytes:
    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(out, quality=params.pop("quality", 95), **params)
    return out.getvalue()


def one(data: bytes, size: int = 4096, fmt: str = "PNG") -> tuple[ImageFacts, Image.Image]:
    facts, [rendition] = render(
        data, RenderSettings((RenditionSpec("r", size, fmt, 100 if fmt == "PNG" else 90),)),
        source_format="HEIF",
    )  # fmt: skip
    image = Image.open(io.BytesIO(rendition.data))
    image.load()
    return facts, image


def marker(width: int = 240, height: int = 160) -> Image.Image:
    """Grey, with a red block top-left and a blue block top-right: any flip or turn
    moves them somewhere else."""
    image = Image.new("RGB", (width, height), (128, 128, 128))
    image.paste((220, 20, 20), (0, 0, width // 4, height // 4))
    image.paste((20, 20, 220), (width - width // 4, 0, width, height // 4))
    return image


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    return value if isinstance(value, tuple) else (int(value or 0),)


def near(got: tuple[int, ...], expected: tuple[int, ...], tolerance: int) -> bool:
    return max(abs(g - e) for g, e in zip(got, expected, strict=True)) <= tolerance


def srgb_encode(v: float) -> float:
    v = min(max(v, 0.0), 1.0)
    return 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055


def srgb_decode(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def p3_to_srgb(rgb: tuple[int, int, int]) -> tuple[int, ...]:
    linear = [srgb_decode(c / 255) for c in rgb]
    out = [sum(m * c for m, c in zip(row, linear, strict=True)) for row in P3_TO_SRGB]
    return tuple(round(255 * srgb_encode(v)) for v in out)


def p3_icc() -> bytes:
    """Display P3 as an ICC v4 matrix/TRC profile, built from the published colorants."""

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(v: tuple[float, ...]) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(s15(c) for c in v)

    srgb_curve = (
        b"para\0\0\0\0"
        + struct.pack(">HH", 3, 0)
        + b"".join(s15(v) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
    )
    name = "Display P3".encode("utf-16-be")
    desc = b"mluc\0\0\0\0" + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(name), 28) + name
    tags = [
        (b"desc", desc), (b"wtpt", xyz(D50)),
        (b"rXYZ", xyz(P3_COLORANTS[0])), (b"gXYZ", xyz(P3_COLORANTS[1])),
        (b"bXYZ", xyz(P3_COLORANTS[2])),
        (b"rTRC", srgb_curve), (b"gTRC", srgb_curve), (b"bTRC", srgb_curve),
    ]  # fmt: skip
    start = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        table += struct.pack(">4sII", sig, start + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    header = (
        struct.pack(">I4sI4s4s4s", start + len(body), b"\0" * 4, 0x04300000, b"mntr", b"RGB ",
                    b"XYZ ")
        + b"\0" * 12 + b"acsp" + b"\0" * 28 + b"".join(s15(v) for v in D50) + b"\0" * 48
    )  # fmt: skip
    return header + struct.pack(">I", len(tags)) + table + body


# ----------------------------------------------------------------------------- basics


def test_given_heic_when_rendered_then_manifest_facts_say_heif_and_pixels_match() -> None:
    # Given an 8-bit opaque HEIC
    source = marker()
    # When rendered at its own size
    facts, image = one(heic(source, quality=-1, chroma=444))
    # Then the facts describe it and the pixels are the source's
    assert (facts.format, facts.width, facts.height, facts.frames) == ("HEIF", 240, 160, 1)
    assert (facts.mode, facts.has_alpha, facts.bit_depth, facts.images) == ("RGB", False, 8, 1)
    assert image.mode == "RGB"
    assert image.size == (240, 160)
    assert mean_difference(image, source) < 1.5


def test_given_heic_when_downscaled_then_long_edge_is_the_box() -> None:
    _, image = one(heic(marker(1200, 800)), size=300, fmt="WEBP")
    assert image.format == "WEBP"
    assert image.size == (300, 200)
    assert mean_difference(image, marker(1200, 800).resize((300, 200))) < 4


@pytest.mark.parametrize("orientation", range(1, 9))
def test_given_heic_with_irot_imir_when_rendered_then_upright_as_photos_shows_it(
    orientation: int,
) -> None:
    # Given a HEIC whose encoder turned EXIF orientation N into irot/imir transforms
    exif = Image.Exif()
    exif[0x0112] = orientation
    source = marker()
    data = heic(source, quality=-1, chroma=444, exif=exif.tobytes())
    # When rendered
    facts, image = one(data)
    # Then it shows as every EXIF-aware viewer shows the same picture with that tag
    tagged = source.copy()
    tagged.getexif()[0x0112] = orientation
    expected = ImageOps.exif_transpose(tagged)
    assert image.size == expected.size
    assert mean_difference(image, expected) < 1.5
    # and the facts say the stored size and the orientation applied
    assert facts.orientation == orientation
    assert (facts.width, facts.height) == source.size
    assert facts.oriented_size == expected.size


# ----------------------------------------------------------------------------- colour


def test_nclx_display_p3_becomes_the_published_p3_colorants() -> None:
    profile = nclx_profile({**P3_NCLX, **chromaticities(P3_XY)})
    assert profile is not None
    tags = icc_tags(profile)
    for name, expected in zip((b"rXYZ", b"gXYZ", b"bXYZ"), P3_COLORANTS, strict=True):
        got = struct.unpack(">3i", tags[name][8:20])
        assert all(abs(g / 65536 - e) < 0.0015 for g, e in zip(got, expected, strict=True))


def test_nclx_srgb_needs_no_profile() -> None:
    srgb = {"color_primaries": 1, "transfer_characteristics": 13, **chromaticities(SRGB_XY)}
    assert nclx_profile(srgb) is None
    assert nclx_profile({"color_primaries": 2, "transfer_characteristics": 2}) is None


P3_XY = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.3127, 0.3290))
SRGB_XY = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), (0.3127, 0.3290))


def chromaticities(xy: tuple[tuple[float, float], ...]) -> dict[str, float]:
    names = ("red", "green", "blue", "white")
    return {
        f"color_primary_{n}_{axis}": v
        for n, point in zip(names, xy, strict=True)
        for axis, v in zip("xy", point, strict=True)
    }


def icc_tags(profile: bytes) -> dict[bytes, bytes]:
    (count,) = struct.unpack_from(">I", profile, 128)
    tags = {}
    for i in range(count):
        sig, offset, size = struct.unpack_from(">4sII", profile, 132 + 12 * i)
        tags[sig] = profile[offset : offset + size]
    return tags


SWATCHES = [(200, 100, 50), (60, 160, 90), (90, 80, 200), (128, 128, 128), (240, 230, 40)]


def swatch_image() -> Image.Image:
    image = Image.new("RGB", (64 * len(SWATCHES), 64))
    for i, colour in enumerate(SWATCHES):
        image.paste(colour, (64 * i, 0, 64 * (i + 1), 64))
    return image


@pytest.mark.parametrize("described_by", ["icc", "nclx"])
def test_given_display_p3_heic_when_rendered_then_colours_are_converted_to_srgb(
    described_by: str,
) -> None:
    # Given P3 colours, described by an ICC profile (the iPhone's way) or by nclx
    params: dict[str, Any] = {"icc_profile": p3_icc()} if described_by == "icc" else dict(P3_NCLX)
    data = heic(swatch_image(), quality=-1, chroma=444, **params)
    # When rendered
    _, image = one(data)
    # Then each swatch is the sRGB colour the published P3 -> sRGB conversion gives
    for i, colour in enumerate(SWATCHES):
        got = pixel(image, (64 * i + 32, 32))
        assert near(got, p3_to_srgb(colour), 3), (colour, got, p3_to_srgb(colour))
    # and the rendition carries no profile (outputs are plain sRGB)
    assert "icc_profile" not in image.info


def test_given_heic_with_gps_exif_when_rendered_then_no_metadata_leaks() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[2] = (52.0, 22.0, 1.5)
    gps[1] = "N"
    data = heic(marker(), exif=exif.tobytes(), xmp=b"<x:xmpmeta>secret</x:xmpmeta>")
    specs = tuple(RenditionSpec(f"r{fmt}", 200, fmt, 90) for fmt in ("JPEG", "WEBP", "PNG"))
    _, renditions = render(data, RenderSettings(specs), source_format="HEIF")
    for rendition in renditions:
        assert b"PhoneMaker" not in rendition.data
        assert b"secret" not in rendition.data
        image = Image.open(io.BytesIO(rendition.data))
        assert not image.getexif()
        assert "exif" not in image.info
        assert "xmp" not in image.info


# ------------------------------------------------------------------ depth, alpha, images


def test_given_10_bit_heic_when_rendered_then_8_bit_without_extra_banding() -> None:
    # Given a smooth 10-bit grey ramp (stored as 16-bit samples, encoded at 10 bits)
    width, height = 1024, 8
    ramp = [round(65535 * x / (width - 1)) for x in range(width)]
    raw = b"".join(struct.pack("<HHH", v, v, v) for v in ramp) * height
    out = io.BytesIO()
    pillow_heif.from_bytes("RGB;16", (width, height), raw).save(
        out, quality=-1, chroma=444, save_to_12bit=False
    )
    data = out.getvalue()
    # When rendered
    facts, image = one(data)
    # Then it says 10 bits, comes out 8-bit, and every step of the ramp is a plain
    # rounding of the 10-bit value: no level skipped or repeated beyond that
    assert facts.bit_depth == 10
    assert image.mode == "RGB"
    row = [pixel(image, (x, 4))[1] for x in range(width)]
    plain = [round(255 * x / (width - 1)) for x in range(width)]
    assert max(abs(a - b) for a, b in zip(row, plain, strict=True)) <= 2
    assert len(set(row)) >= 250
    assert all(b >= a for a, b in itertools.pairwise(row))


def test_given_heic_with_alpha_when_rendered_then_webp_keeps_it_and_jpeg_flattens() -> None:
    source = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    source.paste((30, 160, 60, 255), (100, 0, 200, 100))
    data = heic(source, quality=-1, chroma=444)
    facts, webp = one(data, fmt="WEBP")
    assert facts.has_alpha
    assert webp.mode == "RGBA"
    assert pixel(webp, (20, 50))[3] == 0
    assert pixel(webp, (150, 50))[3] == 255
    _, jpeg = one(data, fmt="JPEG")
    assert jpeg.mode == "RGB"
    assert all(c > 240 for c in pixel(jpeg, (20, 50)))  # the white background


def test_given_multi_image_container_when_rendered_then_the_primary_image_is() -> None:
    # Given three images (a burst) whose second is the primary
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    container = pillow_heif.from_pillow(Image.new("RGB", (64, 48), colours[0]))
    for colour in colours[1:]:
        container.add_from_pillow(Image.new("RGB", (64, 48), colour))
    out = io.BytesIO()
    container.save(out, quality=-1, chroma=444, primary_index=1)
    # When rendered
    facts, image = one(out.getvalue())
    # Then the primary is rendered, once, and the facts count the images
    assert (facts.images, facts.frames) == (3, 1)
    assert near(pixel(image, (32, 24)), colours[1], 3)


# ------------------------------------------------------------------------- bad input


def test_given_truncated_heic_when_rendered_then_corrupt_image() -> None:
    data = heic(marker(640, 480))
    for cut in (len(data) // 2, len(data) - 200):
        with pytest.raises(CorruptImage, match="damaged image"):
            one(data[:cut])


def test_given_a_turned_heic_when_cut_to_a_square_then_the_focus_is_in_the_upright_frame() -> None:
    # Given a HEIC stored 1000 x 3000 whose irot shows it as a 3000 x 1000 field with a
    # red object on the right (EXIF orientation 6 turned into irot by the encoder)
    upright = Image.new("RGB", (3000, 1000), (128, 128, 128))
    upright.paste((255, 0, 0), (2500, 400, 2560, 460))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = heic(upright.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
    settings = RenderSettings((RenditionSpec("square", 320, "PNG", 100, cover=True),))
    for focus in ((2530 / 3000, 0.43), None):
        # When a square is cut with the object's position as focus, and by content
        facts, [square] = render(data, settings, source_format="HEIF", focus=focus)
        # Then the window is the right third of the upright picture and shows the object
        assert facts.oriented_size == (3000, 1000)
        assert square.crop == (2000, 0, 1000, 1000)
        with Image.open(io.BytesIO(square.data)) as image:
            assert image.size == (320, 320)
            red = image.convert("RGB").crop((162, 130, 178, 146))
            assert ImageStat.Stat(red).mean[0] > 150
