"""Unit tests of the pure imaging core (`imgpipe.imaging.render`).

Every fixture is generated here with `Image.new` and drawing, encoded in memory; no
files, no network, no AWS. ICC profiles that are not sRGB are built byte by byte below
(Pillow can only create sRGB/LAB/XYZ profiles itself).
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageDraw, ImageFile, JpegImagePlugin

from icc_profiles import (
    linear_grey_profile,
    linear_rgb_profile,
    naive_cmyk_profile,
)
from imgpipe import colour, imaging
from imgpipe.errors import CorruptImage, TooManyPixels, UnsupportedFormat
from imgpipe.imaging import render
from imgpipe.specs import ImageFacts, RenderedImage, RenderSettings, RenditionSpec

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)

# --------------------------------------------------------------------------- helpers


def spec(size: int, fmt: str = "PNG", quality: int = 90, name: str | None = None) -> RenditionSpec:
    return RenditionSpec(name or f"{fmt.lower()}{size}", size, fmt, quality)


def settings(*specs: RenditionSpec, **kwargs: Any) -> RenderSettings:
    return RenderSettings(renditions=specs, **kwargs)


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def decode(rendered: RenderedImage) -> Image.Image:
    im = Image.open(io.BytesIO(rendered.data))
    im.load()
    return im


def render_one(
    data: bytes, rendition: RenditionSpec, **kwargs: Any
) -> tuple[ImageFacts, Image.Image]:
    facts, outputs = render(data, settings(rendition, **kwargs))
    assert len(outputs) == 1
    return facts, decode(outputs[0])


def close(actual: Any, expected: Any, tolerance: int) -> bool:
    if isinstance(actual, int):
        actual, expected = (actual,), (expected,)
    return len(actual) == len(expected) and all(
        abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)
    )


def quadrants(width: int, height: int) -> Image.Image:
    """What the eye should see: red top-left, green top-right, blue bottom-left, white
    bottom-right."""
    im = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(im)
    half_w, half_h = width // 2, height // 2
    draw.rectangle((0, 0, half_w - 1, half_h - 1), fill=RED)
    draw.rectangle((half_w, 0, width - 1, half_h - 1), fill=GREEN)
    draw.rectangle((0, half_h, half_w - 1, height - 1), fill=BLUE)
    return im


def quadrant_colours(im: Image.Image) -> list[tuple[int, ...]]:
    rgb = im.convert("RGB")
    w, h = rgb.size
    points = (
        (w // 4, h // 4),
        (3 * w // 4, h // 4),
        (w // 4, 3 * h // 4),
        (3 * w // 4, 3 * h // 4),
    )
    return [rgb.getpixel(p) for p in points]  # type: ignore[misc]


def exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width x height, with no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def png_16bit_rgb(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A 16-bit-per-sample RGB PNG (Pillow cannot write one)."""
    row = b"\x00" + struct.pack(">3H", *colour) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(row * height))
        + png_chunk(b"IEND", b"")
    )


# --- ICC profiles built by hand: a linear-light ("gamma 1.0") sRGB, a linear grey and
# a naive CMYK. Mid-grey 128 in linear light is sRGB ~188, far from what a conversion
# that ignores the profile gives (128, or 127 for CMYK), so the tests can tell.


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# --- spies on Pillow's decoder: how often and at what size pixels are really decoded


@pytest.fixture
def decoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = Image._getdecoder

    def spy(mode: str, decoder_name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(decoder_name)
        return original(mode, decoder_name, *args, **kwargs)

    monkeypatch.setattr(Image, "_getdecoder", spy)
    return calls


@pytest.fixture
def jpeg_decode_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.load

    def spy(self: JpegImagePlugin.JpegImageFile) -> Any:
        if self.tile:
            sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy)
    return sizes


@pytest.fixture(scope="module")
def gradient_jpeg_4000x3000() -> bytes:
    im = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    return encode(im, "JPEG", quality=85)


# ------------------------------------------------------------------------ size rule


@pytest.mark.parametrize(
    ("source", "box", "expected"),
    [
        ((640, 480), 320, (320, 240)),
        ((480, 640), 320, (240, 320)),
        ((1001, 1000), 320, (320, 320)),  # 319.68 rounds to 320
        ((321, 200), 320, (320, 199)),  # 199.38
        ((2000, 1333), 1024, (1024, 682)),  # 682.496
        ((1000, 25), 100, (100, 3)),  # 2.5 rounds half up (banker's rounding gives 2)
        ((45, 1000), 100, (5, 100)),  # 4.5 -> 5 (banker's: 4)
        ((15, 1000), 100, (2, 100)),  # 1.5 -> 2
        ((1000, 7), 100, (100, 1)),  # 0.7 -> 1
        ((1000, 3), 100, (100, 1)),  # 0.3 would round to 0: clamped to 1
        ((333, 111), 100, (100, 33)),
        ((320, 200), 320, (320, 200)),  # already fits exactly
        ((100, 50), 320, (100, 50)),  # smaller than the box: never upscaled
    ],
)
def test_given_shape_when_rendered_then_size_follows_the_documented_rounding(
    source: tuple[int, int], box: int, expected: tuple[int, int]
) -> None:
    # Given a source of that shape
    data = encode(Image.new("L", source, 90), "PNG")
    # When it is rendered into a box x box rendition
    _, outputs = render(data, settings(spec(box)))
    # Then the reported and the encoded size are exactly the documented ones
    assert (outputs[0].width, outputs[0].height) == expected
    assert decode(outputs[0]).size == expected


@given(
    width=st.integers(1, 60_000),
    height=st.integers(1, 60_000),
    box=st.integers(1, 4096),
    allow_upscale=st.booleans(),
)
def test_size_rule_properties(width: int, height: int, box: int, allow_upscale: bool) -> None:
    # Given any source shape and box / When the size rule runs
    out_w, out_h = imaging._fit(width, height, box, allow_upscale)
    # Then: no 0-pixel side, fits the box, long edge is the box (or the source when small
    # and no upscaling), and the short edge is the exact value rounded half up
    assert out_w >= 1
    assert out_h >= 1
    long_edge, short_edge = max(width, height), min(width, height)
    if long_edge <= box and not allow_upscale:
        assert (out_w, out_h) == (width, height)
        return
    assert max(out_w, out_h) == box
    exact = Fraction(short_edge * box, long_edge)
    assert min(out_w, out_h) == max(1, math.floor(exact + Fraction(1, 2)))
    if width > height:
        assert out_w >= out_h
    elif height > width:
        assert out_h >= out_w


@pytest.mark.parametrize(("source", "expected"), [((30000, 12), (320, 1)), ((12, 30000), (1, 320))])
def test_given_extreme_aspect_when_rendered_then_no_side_is_zero(
    source: tuple[int, int], expected: tuple[int, int]
) -> None:
    # Given a 30000x12 (or 12x30000) strip
    data = encode(Image.new("RGB", source, (10, 200, 30)), "PNG")
    # When rendered at 320 in two formats
    _, outputs = render(data, settings(spec(320, "JPEG"), spec(320, "WEBP")))
    # Then both are 320x1 (1x320), decodable, and keep the colour
    for out in outputs:
        im = decode(out)
        assert im.size == expected == (out.width, out.height)
        assert close(im.convert("RGB").getpixel((0, 0)), (10, 200, 30), 12)


def test_given_1x1_source_when_rendered_then_it_stays_1x1_unless_upscaling_is_allowed() -> None:
    # Given a single pixel
    data = encode(Image.new("RGB", (1, 1), (200, 30, 60)), "PNG")
    # When rendered without and with upscaling
    _, plain = render_one(data, spec(320))
    _, upscaled = render_one(data, spec(8), allow_upscale=True)
    # Then it stays 1x1, or becomes 8x8 of the same colour
    assert plain.size == (1, 1)
    assert plain.convert("RGB").getpixel((0, 0)) == (200, 30, 60)
    assert upscaled.size == (8, 8)
    assert close(upscaled.convert("RGB").getpixel((4, 4)), (200, 30, 60), 1)


def test_given_100x50_source_when_rendered_then_never_upscaled_by_default() -> None:
    # Given a small source
    data = encode(Image.new("RGB", (100, 50), RED), "JPEG")
    # When rendered into larger boxes
    _, outputs = render(data, settings(spec(320, "JPEG"), spec(1024, "WEBP"), spec(64, "PNG")))
    # Then the larger boxes keep the source size and only the smaller one shrinks
    assert [(o.width, o.height) for o in outputs] == [(100, 50), (100, 50), (64, 32)]


def test_given_allow_upscale_when_rendered_then_small_source_fills_the_box() -> None:
    # Given a 100x50 source and allow_upscale
    data = encode(Image.new("RGB", (100, 50), RED), "PNG")
    # When rendered at 320
    _, im = render_one(data, spec(320), allow_upscale=True)
    # Then the long edge is 320
    assert im.size == (320, 160)


def test_given_several_specs_when_rendered_then_one_output_per_spec_in_order() -> None:
    # Given specs in no particular size order, two of them the same size
    specs = (spec(64, "JPEG", name="b"), spec(256, "WEBP", name="a"), spec(64, "PNG", name="c"))
    data = encode(quadrants(400, 300), "PNG")
    # When rendered
    _, outputs = render(data, settings(*specs))
    # Then the outputs follow the specs' order, carry their spec, and decode as declared
    assert [o.spec for o in outputs] == list(specs)
    assert [decode(o).format for o in outputs] == ["JPEG", "WEBP", "PNG"]
    assert [(o.width, o.height) for o in outputs] == [(64, 48), (256, 192), (64, 48)]


def test_given_unknown_output_format_when_rendering_then_value_error_before_decoding(
    decoder_calls: list[str],
) -> None:
    # Given a spec with a format the pipeline cannot write
    bad = RenditionSpec("x", 64, "BMP", 90)
    # When rendering / Then a configuration error, raised before any pixel is decoded
    with pytest.raises(ValueError, match="unknown output format"):
        render(encode(Image.new("RGB", (8, 8)), "PNG"), settings(bad))
    assert decoder_calls == []


# ----------------------------------------------------------------------- orientation

# stored = visual.transpose(INVERSE[o]) is what a camera writes for orientation o.
INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
# Straight from the EXIF 2.3 definition of the tag ("the 0th row is the visual ...,
# the 0th column is the visual ..."): which visual corner the stored top-left pixel is.
STORED_TOP_LEFT = {1: RED, 2: GREEN, 3: WHITE, 4: BLUE, 5: RED, 6: GREEN, 7: WHITE, 8: BLUE}


def stored_for(visual: Image.Image, orientation: int) -> Image.Image:
    if orientation == 1:
        return visual.copy()
    return visual.transpose(INVERSE[orientation])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_given_exif_orientation_when_rendered_then_red_quadrant_is_top_left(
    orientation: int,
) -> None:
    # Given a camera-style JPEG: pixels stored rotated/flipped, EXIF says how to show them
    stored = stored_for(quadrants(64, 32), orientation)
    assert close(stored.getpixel((2, 2)), STORED_TOP_LEFT[orientation], 0)
    data = encode(stored, "JPEG", quality=95, exif=exif_with_orientation(orientation))
    # When rendered without resizing and with a downscale
    facts, outputs = render(data, settings(spec(64), spec(16, "JPEG")))
    # Then the facts report the stored size and orientation, and both outputs look like
    # the visual image: landscape, red top-left, green top-right, blue bottom-left
    assert (facts.width, facts.height) == stored.size
    assert facts.orientation == orientation
    full, small = decode(outputs[0]), decode(outputs[1])
    assert full.size == (64, 32)
    assert small.size == (16, 8)
    for im in (full, small):
        for got, want in zip(quadrant_colours(im), (RED, GREEN, BLUE, WHITE), strict=True):
            assert close(got, want, 60), (orientation, quadrant_colours(im))


@pytest.mark.parametrize("orientation", [6, 8, 5, 7])
def test_given_rotated_jpeg_when_drafted_then_box_is_requested_in_stored_orientation(
    orientation: int, jpeg_decode_sizes: list[tuple[int, int]]
) -> None:
    # Given a 1600x800 picture stored as 800x1600 (portrait) with a rotating orientation
    stored = stored_for(quadrants(1600, 800), orientation)
    data = encode(stored, "JPEG", quality=90, exif=exif_with_orientation(orientation))
    # When a 100-px rendition (100x50 shown, so 50x100 stored) is made
    _, im = render_one(data, spec(100))
    # Then libjpeg decoded at 1/8 (asking for 100x200 stored; a box left unswapped,
    # 200x100, would only allow 1/4) and the result is still upright
    assert jpeg_decode_sizes == [(100, 200)]
    assert im.size == (100, 50)
    for got, want in zip(quadrant_colours(im), (RED, GREEN, BLUE, WHITE), strict=True):
        assert close(got, want, 60), quadrant_colours(im)


@pytest.mark.parametrize("value", [0, 9, 65535])
def test_given_out_of_range_orientation_when_rendered_then_treated_as_upright(value: int) -> None:
    # Given an EXIF orientation outside 1..8
    data = encode(quadrants(64, 32), "JPEG", exif=exif_with_orientation(value))
    # When rendered
    facts, im = render_one(data, spec(64))
    # Then it is shown as stored
    assert facts.orientation == 1
    assert im.size == (64, 32)
    assert close(quadrant_colours(im)[0], RED, 60)


def test_given_garbage_exif_when_rendered_then_picture_is_kept_upright() -> None:
    # Given an APP1 Exif segment that is not TIFF data at all
    data = encode(quadrants(64, 32), "JPEG", exif=b"Exif\x00\x00not a tiff header")
    # When rendered / Then it renders, upright
    facts, im = render_one(data, spec(64))
    assert facts.orientation == 1
    assert im.size == (64, 32)


# ----------------------------------------------------------------------------- draft


def test_given_12mp_jpeg_when_thumbnail_rendered_then_libjpeg_decodes_at_reduced_scale(
    gradient_jpeg_4000x3000: bytes, jpeg_decode_sizes: list[tuple[int, int]]
) -> None:
    # Given a 4000x3000 JPEG
    # When only a 320-px rendition is wanted
    _, outputs = render(gradient_jpeg_4000x3000, settings(spec(320, "JPEG")))
    # Then the decoder produced 1000x750 (1/4 scale: the largest DCT scale that still
    # leaves 2x the 320x240 output), not 4000x3000
    assert jpeg_decode_sizes == [(1000, 750)]
    assert decode(outputs[0]).size == (320, 240)


def test_given_12mp_jpeg_when_a_large_rendition_is_wanted_then_draft_does_not_reduce_it(
    gradient_jpeg_4000x3000: bytes, jpeg_decode_sizes: list[tuple[int, int]]
) -> None:
    # Given a 4000x3000 JPEG / When a 2048 rendition is part of the set
    _, outputs = render(gradient_jpeg_4000x3000, settings(spec(320, "JPEG"), spec(2048, "JPEG")))
    # Then the one decode is large enough for the largest rendition
    assert len(jpeg_decode_sizes) == 1
    assert jpeg_decode_sizes[0][0] >= 2048
    assert jpeg_decode_sizes[0][1] >= 1536
    assert [(o.width, o.height) for o in outputs] == [(320, 240), (2048, 1536)]


@pytest.mark.parametrize(
    ("source", "box"),
    [
        ((2001, 1333), 250),
        ((1333, 2001), 250),
        ((4099, 17), 500),
        ((640, 480), 79),
        ((999, 999), 124),
    ],
)
def test_given_jpeg_shapes_when_drafted_then_decode_never_drops_below_the_rendition(
    source: tuple[int, int], box: int, jpeg_decode_sizes: list[tuple[int, int]]
) -> None:
    # Given JPEGs of awkward sizes
    data = encode(Image.new("RGB", source, (120, 60, 30)), "JPEG")
    # When rendered small
    _, outputs = render(data, settings(spec(box)))
    # Then the decode is at least the output size on both sides (in fact at least 2x)
    (decoded,) = jpeg_decode_sizes
    out = outputs[0]
    assert decoded[0] >= min(source[0], 2 * out.width)
    assert decoded[1] >= min(source[1], 2 * out.height)


def test_given_a_draft_that_over_reduces_when_rendered_then_falls_back_to_a_full_decode(
    monkeypatch: pytest.MonkeyPatch,
    jpeg_decode_sizes: list[tuple[int, int]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a Pillow whose draft() reduced more than it was asked to
    original = JpegImagePlugin.JpegImageFile.draft

    def greedy(self: JpegImagePlugin.JpegImageFile, mode: Any, size: Any) -> Any:
        return original(self, mode, (size[0] // 8, size[1] // 8))

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", greedy)
    data = encode(Image.new("RGB", (1600, 1200), (10, 120, 200)), "JPEG")
    # When rendered at 400
    with caplog.at_level(logging.WARNING, logger="imgpipe.imaging"):
        _, im = render_one(data, spec(400))
    # Then the check after draft caught it, decoded at full size, and the size is right
    assert jpeg_decode_sizes == [(1600, 1200)]
    assert im.size == (400, 300)
    assert "draft" in caplog.text


def test_given_cmyk_jpeg_when_drafted_then_it_stays_cmyk_and_converts_to_rgb(
    jpeg_decode_sizes: list[tuple[int, int]],
) -> None:
    # Given a large CMYK JPEG without profile: cyan left half, 100% black right half
    im = Image.new("CMYK", (1600, 800), (255, 0, 0, 0))
    im.paste((0, 0, 0, 255), (800, 0, 1600, 800))
    data = encode(im, "JPEG", quality=95)
    # When a small JPEG rendition is made
    facts, outputs = render(data, settings(spec(100, "JPEG")))
    # Then it was decoded reduced, and the colours are Pillow's CMYK -> RGB ones
    assert facts.mode == "CMYK"
    assert jpeg_decode_sizes == [(200, 100)]
    out = decode(outputs[0])
    assert out.mode == "RGB"
    assert out.size == (100, 50)
    assert close(out.getpixel((20, 25)), (0, 255, 255), 12)
    assert close(out.getpixel((80, 25)), (0, 0, 0), 12)


def test_given_any_source_when_rendered_to_many_sizes_then_pixels_are_decoded_once(
    decoder_calls: list[str],
) -> None:
    # Given a JPEG and six renditions in four formats
    data = encode(quadrants(800, 600), "JPEG")
    specs = (spec(600, "JPEG"), spec(600, "WEBP"), spec(200, "AVIF"), spec(64, "PNG"), spec(32))
    # When rendered
    render(data, settings(*specs))
    # Then libjpeg ran exactly once
    assert decoder_calls == ["jpeg"]


# --------------------------------------------------------------------- pixel budget


def test_given_header_over_budget_when_rendered_then_too_many_pixels_before_decoding(
    decoder_calls: list[str],
) -> None:
    # Given a PNG header claiming 5000x5000 with no pixel data behind it (decoding it
    # would fail as corrupt), and a 1-megapixel budget
    data = png_header_only(5000, 5000)
    # When rendered / Then the header check rejects it and no decoder was ever created
    with pytest.raises(TooManyPixels, match="25000000"):
        render(data, settings(spec(320), max_pixels=1_000_000))
    assert decoder_calls == []


def test_given_decompression_bomb_header_when_rendered_then_too_many_pixels() -> None:
    # Given a 100000x100000 IHDR (10 gigapixels; allocating it would need 30 GB)
    data = png_header_only(100_000, 100_000)
    # When rendered with the default budget
    # Then it is refused from the header, before any decoder exists
    with pytest.raises(TooManyPixels):
        render(data, settings(spec(320)))


def test_given_pillow_warning_zone_of_the_budget_then_warning_becomes_too_many_pixels() -> None:
    # Given 1.5 Mpx against a 1 Mpx budget: the zone where Pillow only warns
    data = png_header_only(1_500, 1_000)
    filters_before = list(warnings.filters)
    limit_before = Image.MAX_IMAGE_PIXELS
    # When rendered / Then the warning is an error, and the global state is untouched
    with pytest.raises(TooManyPixels, match="pixel budget"):
        render(data, settings(spec(320), max_pixels=1_000_000))
    assert warnings.filters == filters_before
    assert limit_before == Image.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_given_budget_above_pillows_default_then_pillow_follows_the_budget() -> None:
    # Given 95 Mpx, above Pillow's default limit (~89.5 Mpx), and a 200 Mpx budget
    data = png_header_only(10_000, 9_500)
    # When rendered, Then the size is accepted and decoding is attempted (and fails
    # here only because the file holds no pixel data)
    with pytest.raises(CorruptImage):
        render(data, settings(spec(320), max_pixels=200_000_000))


# ------------------------------------------------------------------------ bad input


def noisy(size: tuple[int, int] = (256, 256)) -> Image.Image:
    return Image.merge("RGB", [Image.effect_noise(size, 64) for _ in range(3)])


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF"])
def test_given_truncated_file_when_rendered_then_corrupt_image_with_short_message(
    fmt: str,
) -> None:
    # Given an image cut off halfway through its pixel data
    data = encode(noisy(), fmt)
    truncated = data[: len(data) // 2]
    # When rendered / Then CorruptImage, with a short message
    with pytest.raises(CorruptImage) as caught:
        render(truncated, settings(spec(64)))
    assert 0 < len(str(caught.value)) <= 200
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_given_tiff_whose_second_page_is_damaged_when_rendered_then_corrupt_image() -> None:
    # Given a two-page TIFF whose second IFD lost its ImageWidth tag (found by fuzzing:
    # Pillow raises TypeError while counting the pages)
    pages = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), BLUE)]
    data = bytearray(encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    width_tags = [m.start() for m in re.finditer(rb"\x00\x01[\x03\x04]\x00\x01\x00\x00\x00", data)]
    assert len(width_tags) == 2
    data[width_tags[1] : width_tags[1] + 2] = b"\xfe\xfe"
    # When rendered / Then it is rejected as corrupt, not a crash
    with pytest.raises(CorruptImage, match="Missing dimensions"):
        render(bytes(data), settings(spec(4)))


def test_given_avif_with_damaged_bitstream_when_rendered_then_corrupt_image() -> None:
    # Given an AVIF whose AV1 data starts with 32 zero bytes (libavif reports this as a
    # RuntimeError from Pillow's decoder)
    data = bytearray(encode(quadrants(64, 64), "AVIF"))
    payload = data.index(b"mdat") + 4
    data[payload : payload + 32] = bytes(32)
    # When rendered / Then CorruptImage
    with pytest.raises(CorruptImage):
        render(bytes(data), settings(spec(16)))


def test_given_png_with_damaged_header_when_rendered_then_corrupt_not_unsupported() -> None:
    # Given a PNG whose IHDR checksum is wrong (Pillow says "cannot identify")
    data = bytearray(encode(Image.new("RGB", (8, 8)), "PNG"))
    data[29] ^= 0xFF  # inside the IHDR CRC
    # When rendered / Then it is a damaged PNG, not a foreign format
    with pytest.raises(CorruptImage):
        render(bytes(data), settings(spec(64)), source_format="PNG")


@pytest.mark.parametrize(
    ("data", "source_format"),
    [
        (b"hello, this is plain text and not an image at all", None),
        (b"", None),
        (encode(Image.new("RGB", (8, 8)), "PNG"), "JPEG"),
        (encode(Image.new("RGB", (8, 8)), "BMP"), None),
        (encode(Image.new("RGB", (8, 8)), "BMP"), "BMP"),
    ],
    ids=["text", "empty", "png-said-jpeg", "bmp", "bmp-declared"],
)
def test_given_non_allowed_bytes_when_rendered_then_unsupported_format(
    data: bytes, source_format: str | None
) -> None:
    # Given bytes that are not an allowed image format (or not the one the sniffer said)
    # When rendered / Then UnsupportedFormat
    with pytest.raises(UnsupportedFormat):
        render(data, settings(spec(64)), source_format=source_format)


def test_given_source_format_when_rendered_then_only_that_plugin_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a WebP and its sniffed format (lower case, as a careless caller might pass it)
    data = encode(Image.new("RGB", (16, 16), BLUE), "WEBP")
    init_calls: list[int] = []

    def counting_init() -> bool:
        init_calls.append(1)
        return False

    monkeypatch.setattr(Image, "init", counting_init)
    # When rendered
    facts, _ = render(data, settings(spec(8, "AVIF")), source_format="webp")
    # Then it is read as WebP without Pillow importing all of its plugins
    assert facts.format == "WEBP"
    assert init_calls == []


def test_given_cold_start_when_sniffed_jpeg_is_rendered_then_only_needed_modules_load() -> None:
    # Given a fresh interpreter (as on a Lambda cold start)
    code = (
        "import io, sys\n"
        "from PIL import Image\n"
        "import imgpipe.imaging as m\n"
        "from imgpipe.specs import RenderSettings, RenditionSpec\n"
        "print(sorted(n for n in sys.modules if n.startswith('PIL.')))\n"
        "b = io.BytesIO(); Image.new('RGB', (32, 32)).save(b, 'JPEG')\n"
        "s = RenderSettings((RenditionSpec('t', 8, 'WEBP', 80),))\n"
        "m.render(b.getvalue(), s, source_format='JPEG')\n"
        "print(sorted(n for n in sys.modules if n.startswith('PIL.')))\n"
    )
    # When the module is imported, then renders a profile-less JPEG to WebP
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    after_import, after_render = result.stdout.splitlines()
    # Then importing loads no plugin at all; rendering loads the WebP plugin it needs and
    # Pillow's preinit() set, but not littleCMS, not ImageOps and not every plugin
    # (which Image.init() would do)
    assert "Plugin" not in after_import
    assert "ImageCms" not in after_import
    assert "PIL.WebPImagePlugin" in after_render
    for absent in ("PIL.ImageCms", "PIL.ImageOps", "PIL.TiffImagePlugin", "PIL.PsdImagePlugin"):
        assert absent not in after_render, absent


# ---------------------------------------------------------------- colour management


def test_given_source_tagged_srgb_when_rendered_then_pixels_are_unchanged() -> None:
    # Given an RGB PNG tagged with an sRGB profile
    colours = [(200, 100, 50), (12, 240, 99), (255, 255, 255), (0, 0, 0)]
    im = Image.new("RGB", (4, 1))
    for x, c in enumerate(colours):
        im.putpixel((x, 0), c)
    data = encode(im, "PNG", icc_profile=srgb_profile())
    # When rendered losslessly at the same size
    facts, out = render_one(data, spec(4))
    # Then every pixel is what it was, and the output carries no profile of its own
    assert facts.icc_profile is True
    assert [out.getpixel((x, 0)) for x in range(4)] == colours
    assert "icc_profile" not in out.info


def test_given_non_srgb_profile_when_rendered_then_converted_to_srgb() -> None:
    # Given mid-grey 128 in a linear-light RGB space (sRGB ~188)
    data = encode(
        Image.new("RGB", (8, 8), (128, 128, 128)), "PNG", icc_profile=linear_rgb_profile()
    )
    # When rendered
    _, out = render_one(data, spec(8))
    # Then the pixel is converted, and no foreign profile is passed on
    assert close(out.getpixel((4, 4)), (188, 188, 188), 2)
    assert "icc_profile" not in out.info


def test_given_rgba_with_profile_when_rendered_then_converted_and_alpha_kept() -> None:
    # Given semi-transparent linear-light grey
    src = Image.new("RGBA", (8, 8), (128, 128, 128, 77))
    data = encode(src, "PNG", icc_profile=linear_rgb_profile())
    # When rendered to a format with alpha
    _, out = render_one(data, spec(8, "WEBP", quality=100))
    # Then colour is managed and alpha survives
    assert out.mode == "RGBA"
    r, g, b, a = out.getpixel((4, 4))  # type: ignore[misc]
    assert close((r, g, b), (188, 188, 188), 4)
    assert close(a, 77, 2)


def test_given_grey_with_grey_profile_when_rendered_then_converted_to_srgb() -> None:
    # Given a grey JPEG with a linear grey profile
    data = encode(
        Image.new("L", (16, 16), 128), "JPEG", quality=100, icc_profile=linear_grey_profile()
    )
    # When rendered
    _, out = render_one(data, spec(16))
    # Then it is RGB, at the sRGB value of linear 50 %
    assert out.mode == "RGB"
    assert close(out.getpixel((8, 8)), (188, 188, 188), 3)


def test_given_cmyk_with_profile_when_rendered_then_converted_through_the_profile() -> None:
    # Given a CMYK JPEG with a profile: left half 50 % K, right half magenta + yellow
    im = Image.new("CMYK", (64, 32), (0, 0, 0, 128))
    im.paste((0, 255, 255, 0), (32, 0, 64, 32))
    data = encode(im, "JPEG", quality=100, icc_profile=naive_cmyk_profile())
    # When rendered
    facts, out = render_one(data, spec(64))
    # Then the profile was used (50 % K is ~188, the profile-less formula would give 127)
    assert facts.mode == "CMYK"
    assert facts.icc_profile
    assert close(out.getpixel((16, 16)), (188, 188, 188), 6)
    assert close(out.getpixel((48, 16)), RED, 8)


def test_given_lab_tiff_when_rendered_then_converted_colorimetrically() -> None:
    # Given CIE L*a*b* white and a saturated red-ish a*
    im = Image.new("LAB", (2, 1), (255, 128, 128))
    im.putpixel((1, 0), (138, 208, 195))  # L* 54, a* +80, b* +67: close to sRGB red
    data = encode(im, "TIFF")
    # When rendered
    _, out = render_one(data, spec(2))
    # Then white is white and the red is red
    assert close(out.getpixel((0, 0)), WHITE, 3)
    r, g, b = out.getpixel((1, 0))  # type: ignore[misc]
    assert r > 200
    assert max(g, b) < 60


@pytest.mark.parametrize(
    "profile",
    [b"definitely not an ICC profile", linear_rgb_profile()],
    ids=["garbage", "wrong-space"],
)
def test_given_unusable_profile_when_rendered_then_plain_conversion_and_a_warning(
    profile: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a grey PNG with either garbage or an RGB profile (wrong colour space)
    data = encode(Image.new("L", (8, 8), 128), "PNG", icc_profile=profile)
    # When rendered
    with caplog.at_level(logging.WARNING, logger="imgpipe.imaging"):
        facts, out = render_one(data, spec(8))
    # Then it is not rejected: converted without colour management, and logged
    assert facts.icc_profile is True
    assert out.getpixel((4, 4)) == (128, 128, 128)
    assert "ICC" in caplog.text


# ---------------------------------------------------------------- modes and depths


@pytest.mark.parametrize(
    ("mode", "fmt", "value", "expected"),
    [
        ("I;16", "PNG", 65535, 255),
        ("I;16", "PNG", 32768, 128),
        ("I;16", "PNG", 0, 0),
        ("I;16", "TIFF", 65535, 255),
        ("I;16B", "TIFF", 32768, 128),
        ("I", "TIFF", 65535, 255),
        ("I", "TIFF", 257 * 100, 100),
    ],
)
def test_given_16bit_grey_when_rendered_then_scaled_not_clipped(
    mode: str, fmt: str, value: int, expected: int
) -> None:
    # Given a 16-bit grey image (Pillow's own I -> L conversion clips: 32768 -> 255)
    data = encode(Image.new(mode, (4, 4), value), fmt)
    # When rendered
    facts, out = render_one(data, spec(4))
    # Then the 8-bit value is value * 255 / 65535, rounded
    assert facts.bit_depth in (16, 32)
    assert out.getpixel((1, 1)) == (expected,) * 3


def test_given_16bit_rgb_png_when_rendered_then_white_stays_white_and_half_is_half() -> None:
    # Given 16-bit-per-sample RGB PNGs
    white = png_16bit_rgb(4, 4, (65535, 65535, 65535))
    mixed = png_16bit_rgb(4, 4, (32768, 0, 65535))
    # When rendered
    facts, white_out = render_one(white, spec(4))
    _, mixed_out = render_one(mixed, spec(4))
    # Then they are scaled to 8 bits
    assert facts.bit_depth == 16
    assert white_out.getpixel((0, 0)) == WHITE
    assert mixed_out.getpixel((0, 0)) == (128, 0, 255)


def test_given_16bit_grey_with_colour_key_when_rendered_then_key_becomes_transparent() -> None:
    # Given a 16-bit grey PNG whose tRNS colour key is 1000, left half keyed
    im = Image.new("I;16", (8, 4), 40000)
    im.paste(Image.new("I;16", (4, 4), 1000), (0, 0))
    assert im.getpixel((1, 1)) == 1000
    data = encode(im, "PNG", transparency=1000)
    # When rendered to WebP (lossless quality) and PNG
    _, outputs = render(data, settings(spec(8), spec(8, "WEBP", quality=100)))
    # Then the keyed half is transparent and the rest is scaled grey
    for out in map(decode, outputs):
        assert out.mode == "RGBA"
        assert out.getpixel((1, 1))[3] == 0  # type: ignore[index]
        assert close(out.getpixel((6, 1)), (156, 156, 156, 255), 2)


@pytest.mark.parametrize(
    ("mode", "value", "expected_mode", "expected"),
    [
        ("1", 1, "RGB", WHITE),
        ("L", 77, "RGB", (77, 77, 77)),
        ("LA", (77, 128), "RGBA", (77, 77, 77, 128)),
        ("La", (38, 128), "RGBA", (76, 76, 76, 128)),
        ("PA", None, "RGBA", None),
        ("P", None, "RGB", None),
        ("RGBa", (50, 25, 0, 128), "RGBA", (100, 50, 0, 128)),
        ("RGBX", (1, 2, 3, 0), "RGB", (1, 2, 3)),
        ("RGBA", (1, 2, 3, 4), "RGBA", (1, 2, 3, 4)),
        ("YCbCr", (128, 128, 128), "RGB", (128, 128, 128)),
        ("HSV", (0, 255, 255), "RGB", RED),
        ("CMYK", (0, 255, 255, 0), "RGB", RED),
        ("LAB", (255, 128, 128), "RGB", WHITE),
        ("I;16", 65535, "RGB", WHITE),
        ("I;16B", 32768, "RGB", (128, 128, 128)),
        ("I", 65535, "RGB", WHITE),
    ],
)
def test_given_each_pillow_mode_when_normalised_then_8bit_srgb_rgb_or_rgba(
    mode: str, value: Any, expected_mode: str, expected: tuple[int, ...] | None
) -> None:
    # Given an image in that mode (some modes cannot be stored in an allowed format,
    # so this tests the conversion step directly)
    im = Image.new(mode, (2, 2), value) if value is not None else Image.new(mode, (2, 2))
    if mode in ("P", "PA"):
        im.putpalette([10, 20, 30] * 256)
        expected = (10, 20, 30) if mode == "P" else (10, 20, 30, 0)
    # When normalised and converted to sRGB
    normalised = imaging._normalise(im)
    out = colour.srgb_converter(normalised.mode, None)(normalised)
    # Then it is 8-bit RGB or RGBA with the right value
    assert out.mode == expected_mode
    assert close(out.getpixel((0, 0)), expected, 2)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_given_palette_with_transparency_when_rendered_then_alpha_or_background(fmt: str) -> None:
    # Given a palette image: left half transparent index, right half red
    im = Image.new("P", (64, 32), 0)
    im.putpalette([0, 255, 0] + [255, 0, 0] + [0, 0, 0] * 254)
    im.paste(1, (32, 0, 64, 32))
    data = encode(im, fmt, transparency=0)
    rendition_specs = (spec(32, "WEBP", quality=100), spec(32, "PNG"), spec(32, "JPEG", quality=95))
    # When rendered to WebP, PNG and JPEG on a blue background
    facts, outputs = render(data, settings(*rendition_specs, background=BLUE))
    webp, png, jpeg = map(decode, outputs)
    # Then WebP and PNG keep the transparency; JPEG shows the background, not the
    # (green) colour hidden behind the transparent index and not black
    assert facts.mode == "P"
    assert facts.has_alpha
    for out in (webp, png):
        assert out.mode == "RGBA"
        assert out.getpixel((4, 8))[3] == 0  # type: ignore[index]
        assert close(out.getpixel((28, 8)), (*RED, 255), 3)
    assert jpeg.mode == "RGB"
    assert close(jpeg.getpixel((4, 8)), BLUE, 12)
    assert close(jpeg.getpixel((28, 8)), RED, 12)


def test_given_la_png_when_rendered_then_grey_and_alpha_survive() -> None:
    # Given grey with a half-transparent left side
    im = Image.new("LA", (32, 16), (200, 255))
    im.paste((50, 128), (0, 0, 16, 16))
    data = encode(im, "PNG")
    # When rendered to PNG and WebP
    facts, outputs = render(data, settings(spec(32), spec(32, "WEBP", quality=100)))
    # Then they are RGBA with the grey and the alpha of the source
    assert facts.has_alpha
    assert facts.mode == "LA"
    for out in map(decode, outputs):
        assert out.mode == "RGBA"
        assert close(out.getpixel((4, 8)), (50, 50, 50, 128), 3)
        assert close(out.getpixel((28, 8)), (200, 200, 200, 255), 3)


def test_given_fully_opaque_alpha_when_rendered_then_alpha_is_dropped() -> None:
    # Given an RGBA PNG whose alpha is 255 everywhere
    data = encode(Image.new("RGBA", (16, 16), (1, 2, 3, 255)), "PNG")
    # When rendered to formats that could carry alpha
    facts, outputs = render(data, settings(spec(16), spec(16, "WEBP")))
    # Then the facts still say the source has an alpha channel, the outputs are RGB
    assert facts.has_alpha
    assert [decode(o).mode for o in outputs] == ["RGB", "RGB"]


def test_given_transparent_edge_when_downscaled_then_no_dark_fringe() -> None:
    # Given opaque red next to fully transparent *black* (what most editors store)
    im = Image.new("RGBA", (101, 50), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (0, 0, 50, 50))
    data = encode(im, "PNG")
    # When downscaled (the edge lands between output pixels)
    _, out = render_one(data, spec(37))
    # Then every visible pixel is still pure red: the black under alpha 0 did not bleed
    assert out.mode == "RGBA"
    partial = [p for p in out.get_flattened_data() if 0 < p[3] < 255]  # type: ignore[index]
    assert partial, "the edge should produce partially transparent pixels"
    for r, g, b, a in out.get_flattened_data():  # type: ignore[misc]
        if a > 8:
            assert (r >= 245, g <= 5, b <= 5) == (True, True, True), (r, g, b, a)


def test_given_transparent_edge_when_rendered_as_jpeg_then_composited_on_background() -> None:
    # Given 50 % transparent red
    data = encode(Image.new("RGBA", (16, 16), (255, 0, 0, 128)), "PNG")
    # When rendered to JPEG over white
    _, out = render_one(data, spec(16, "JPEG", quality=100))
    # Then the colour is red blended half way to white (not red with alpha dropped)
    assert out.mode == "RGB"
    assert close(out.getpixel((8, 8)), (255, 127, 127), 6)


# --------------------------------------------------------------------- metadata


@pytest.fixture(scope="module")
def jpeg_full_of_metadata() -> bytes:
    exif = exif_with_orientation(1)
    exif[0x010F] = "SpyCam"  # Make
    exif[0x0131] = "SecretEditor 1.0"  # Software
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 26.0), 3: "W", 4: (0.0, 7.0, 39.0)}  # GPS
    return encode(
        quadrants(64, 48),
        "JPEG",
        exif=exif,
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">SecretXMP</x:xmpmeta>',
        comment=b"SecretComment",
        icc_profile=srgb_profile(),
        dpi=(300, 300),
    )


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "AVIF", "PNG"])
def test_given_source_with_exif_gps_xmp_comment_when_rendered_then_output_has_none(
    fmt: str, jpeg_full_of_metadata: bytes
) -> None:
    # Given a JPEG with EXIF (camera, GPS), XMP, a comment, an ICC profile and dpi
    source = Image.open(io.BytesIO(jpeg_full_of_metadata))
    assert source.getexif().get_ifd(0x8825)
    assert "xmp" in source.info
    assert "comment" in source.info
    # When rendered to the format
    _, outputs = render(jpeg_full_of_metadata, settings(spec(32, fmt)))
    data = outputs[0].data
    out = decode(outputs[0])
    # Then nothing but pixels made it into the output
    assert not out.getexif()
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "icc_profile", "comment", "dpi"):
        assert key not in out.info, key
    for secret in (b"SpyCam", b"SecretEditor", b"SecretXMP", b"SecretComment", b"Exif", b"EXIF"):
        assert secret not in data, secret


def test_given_png_with_text_chunks_when_rendered_then_png_output_has_none() -> None:
    # Given a PNG with tEXt chunks and an eXIf chunk
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "SecretAuthor")
    exif = exif_with_orientation(1)
    exif[0x010F] = "SpyCam"
    data = encode(quadrants(32, 32), "PNG", pnginfo=text, exif=exif)
    # When rendered to PNG
    _, outputs = render(data, settings(spec(32)))
    # Then the output has only the image chunks
    assert b"SecretAuthor" not in outputs[0].data
    assert b"SpyCam" not in outputs[0].data
    assert set(decode(outputs[0]).info) <= {"srgb"}


# --------------------------------------------------------------------- animation


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG", "AVIF"])
def test_given_animation_when_rendered_then_first_frame_and_real_frame_count(fmt: str) -> None:
    # Given a three-frame animation: red, green, blue
    frames = [Image.new("RGB", (32, 32), c) for c in (RED, GREEN, BLUE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    # When rendered
    facts, out = render_one(data, spec(16, "JPEG", quality=95))
    # Then the facts count all frames and the rendition shows the first
    assert facts.format == fmt
    assert facts.frames == 3
    assert close(out.getpixel((8, 8)), RED, 16)


# --------------------------------------------------------------------- facts


def test_given_progressive_jpeg_when_rendered_then_facts_describe_the_source() -> None:
    # Given a progressive RGB JPEG
    data = encode(quadrants(300, 200), "JPEG", progressive=True, icc_profile=srgb_profile())
    # When rendered
    facts, _ = render(data, settings(spec(64)))
    # Then the facts are the source's, not the rendition's
    assert facts == ImageFacts(
        format="JPEG",
        width=300,
        height=200,
        orientation=1,
        frames=1,
        mode="RGB",
        has_alpha=False,
        bit_depth=8,
        icc_profile=True,
        progressive=True,
    )


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: encode(Image.new("1", (8, 8)), "PNG"), ("PNG", "1", 1, False)),
        (lambda: encode(Image.new("I;16", (8, 8)), "PNG"), ("PNG", "I;16", 16, False)),
        (
            lambda: encode(Image.new("RGBA", (8, 8)), "WEBP", lossless=True),
            ("WEBP", "RGBA", 8, True),
        ),
        (lambda: encode(Image.new("RGB", (8, 8)), "TIFF"), ("TIFF", "RGB", 8, False)),
        (lambda: png_16bit_rgb(8, 8, (1, 2, 3)), ("PNG", "RGB", 16, False)),
    ],
    ids=["bilevel", "grey16", "webp-alpha", "tiff", "rgb16"],
)
def test_given_sources_when_rendered_then_mode_depth_and_alpha_facts(
    make: Callable[[], bytes], expected: tuple[str, str, int, bool]
) -> None:
    # Given a source / When rendered
    facts, _ = render(make(), settings(spec(4)))
    # Then format, mode as opened, bit depth and alpha are reported
    assert (facts.format, facts.mode, facts.bit_depth, facts.has_alpha) == expected


# --------------------------------------------------------------------- encoders


def test_given_renditions_when_encoded_then_each_codec_gets_its_settings() -> None:
    # Given a photo-like source with alpha
    im = noisy((1200, 800)).convert("RGBA")
    im.putalpha(Image.linear_gradient("L").resize((1200, 800)))
    data = encode(im, "PNG")
    specs = (
        spec(1024, "JPEG", quality=82),
        spec(320, "JPEG", quality=82),
        spec(320, "WEBP", quality=80),
        spec(320, "AVIF", quality=60),
        spec(320, "PNG"),
    )
    # When rendered
    _, outputs = render(data, settings(*specs))
    big_jpeg, small_jpeg, webp, avif, png = map(decode, outputs)
    # Then JPEG is RGB 4:2:0, progressive only when large; the others keep alpha
    assert big_jpeg.mode == small_jpeg.mode == "RGB"
    assert JpegImagePlugin.get_sampling(big_jpeg) == 2
    assert big_jpeg.info.get("progressive") == 1
    assert "progressive" not in small_jpeg.info
    assert (webp.format, webp.mode) == ("WEBP", "RGBA")
    assert (avif.format, avif.mode) == ("AVIF", "RGBA")
    assert (png.format, png.mode) == ("PNG", "RGBA")


def test_given_two_qualities_when_encoded_then_quality_reaches_the_encoder() -> None:
    # Given a noisy source
    data = encode(noisy(), "PNG")
    # When rendered at quality 30 and 95 in the lossy formats
    for fmt in ("JPEG", "WEBP", "AVIF"):
        _, outputs = render(data, settings(spec(128, fmt, quality=30), spec(128, fmt, quality=95)))
        # Then the higher quality is the bigger file
        assert len(outputs[0].data) < len(outputs[1].data), fmt


@pytest.fixture(autouse=True)
def _no_global_state_leaks() -> Iterator[None]:
    # Every test: the module must leave Pillow's global switches as it found them.
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    yield
    assert before == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


@pytest.mark.parametrize(
    ("environment", "reused"), [({}, True), ({"PILLOW_BLOCKS_MAX": "0"}, False)]
)
def test_given_warm_process_when_second_image_rendered_then_pixel_memory_is_reused(
    environment: dict[str, str], reused: bool
) -> None:
    # Given a fresh interpreter that renders two photos in turn (a warm Lambda), with or
    # without the operator overriding Pillow's block cache
    code = (
        "import io\n"
        "from PIL import Image\n"
        "from imgpipe.imaging import render\n"
        "from imgpipe.specs import RenderSettings, RenditionSpec\n"
        "b = io.BytesIO(); Image.effect_noise((1200, 900), 64).convert('RGB').save(b, 'PNG')\n"
        "s = RenderSettings((RenditionSpec('t', 200, 'JPEG', 80),))\n"
        "render(b.getvalue(), s)\n"
        "Image.core.reset_stats()\n"
        "render(b.getvalue(), s)\n"
        "stats = Image.core.get_stats()\n"
        "print(stats['reused_blocks'], stats['allocated_blocks'])\n"
    )
    # When the second image is rendered
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, **environment},
    )
    reused_blocks, allocated_blocks = map(int, result.stdout.split())
    # Then its pixels go into blocks the first render freed instead of fresh memory the
    # kernel must fault in again; an explicit PILLOW_BLOCKS_MAX=0 turns that off
    if reused:
        assert reused_blocks > 0
        assert reused_blocks >= allocated_blocks
    else:
        assert reused_blocks == 0
        assert allocated_blocks > 0
