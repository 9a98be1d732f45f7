"""The manifest's placeholder: our ThumbHash encoder and the choice of its picture."""

from __future__ import annotations

import base64
import io
import random

import pytest
import thumbhash as reference
from PIL import Image, ImageDraw

from imgpipe.imaging import render
from imgpipe.placeholder import placeholder, thumbhash
from imgpipe.specs import RenderSettings, RenditionSpec


def noise(width: int, height: int, seed: int) -> Image.Image:
    rnd = random.Random(seed)
    image = Image.new("RGB", (width, height))
    image.putdata([(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
                   for _ in range(width * height)])  # fmt: skip
    return image.convert("RGBA")


@pytest.mark.parametrize(("width", "height"), [(24, 16), (16, 24), (24, 24), (7, 3), (1, 1)])
def test_given_opaque_pixels_when_hashed_then_equal_to_a_second_implementation(
    width: int, height: int
) -> None:
    image = noise(width, height, seed=width * 100 + height)
    ours = thumbhash(width, height, image.tobytes())
    theirs = bytes(reference.rgba_to_thumb_hash(width, height, list(image.tobytes())))
    assert ours == theirs


def test_given_transparency_when_hashed_then_alpha_flag_and_alpha_terms_are_written() -> None:
    # Given a 24x16 picture, its left half transparent
    image = Image.new("RGBA", (24, 16), (200, 40, 40, 255))
    image.paste((0, 0, 0, 0), (0, 0, 12, 16))
    digest = thumbhash(24, 16, image.tobytes())
    header24 = digest[0] | digest[1] << 8 | digest[2] << 16
    # Then the alpha flag is set, the alpha byte holds about half coverage, and the
    # alpha AC terms follow the colour ones (5x5 -> 14 terms)
    assert header24 >> 23 & 1
    assert abs((digest[5] & 15) / 15 - 0.5) <= 1 / 15
    colour_terms = 10 + 5 + 5  # 5x3 luminance (landscape, alpha limit 5), 3x3 P and Q
    assert len(digest) == 6 + (colour_terms + 14 + 1) // 2
    opaque = thumbhash(24, 16, Image.new("RGBA", (24, 16), (200, 40, 40, 255)).tobytes())
    assert not (opaque[2] >> 7 & 1)


def test_thumbhash_refuses_what_the_algorithm_does_not_take() -> None:
    with pytest.raises(ValueError, match=r"1\.\.100"):
        thumbhash(101, 10, bytes(4 * 1010))
    with pytest.raises(ValueError, match=r"1\.\.100"):
        thumbhash(10, 10, bytes(10))


def settings() -> RenderSettings:
    specs = [RenditionSpec(n, s, f, 80) for n, s in (("thumb", 320), ("large", 1024))
             for f in ("WEBP", "JPEG")]  # fmt: skip
    return RenderSettings(tuple(specs))


def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def test_given_a_photo_when_placeholder_made_then_colour_and_aspect_follow_it() -> None:
    # Given a 3:2 picture: blue with a yellow disc
    image = Image.new("RGB", (1500, 1000), (30, 90, 200))
    ImageDraw.Draw(image).ellipse((500, 250, 1000, 750), fill=(250, 210, 30))
    facts, renditions = render(encoded(image, "PNG"), settings())
    # When
    made = placeholder(renditions, facts.has_alpha)
    # Then the colour is the picture's mean, and the hash decodes to its shape and colour
    assert made is not None
    mean = image.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert isinstance(mean, tuple)
    colour = tuple(int(made["color"][i : i + 2], 16) for i in (1, 3, 5))
    assert max(abs(a - b) for a, b in zip(colour, mean, strict=True)) <= 4
    digest = list(base64.b64decode(made["thumbhash"]))
    assert reference.thumb_hash_to_approximate_aspect_ratio(digest) == pytest.approx(1.5, abs=0.15)
    r, g, b, a = reference.thumb_hash_to_average_rgba(digest)
    assert max(abs(255 * v - m) for v, m in zip((r, g, b), mean, strict=True)) <= 12
    assert a == 1.0


def test_given_transparent_png_when_placeholder_made_then_from_an_alpha_rendition() -> None:
    # Given a logo on a transparent field (JPEG renditions would flatten it on white)
    logo = Image.new("RGBA", (800, 600), (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((200, 100, 600, 500), fill=(20, 110, 220, 255))
    facts, renditions = render(encoded(logo, "PNG"), settings())
    made = placeholder(renditions, facts.has_alpha)
    assert made is not None
    digest = base64.b64decode(made["thumbhash"])
    # Then the hash carries alpha, and the colour is the logo's blue, not white or black
    assert digest[2] >> 7 & 1
    colour = tuple(int(made["color"][i : i + 2], 16) for i in (1, 3, 5))
    assert max(abs(a - b) for a, b in zip(colour, (20, 110, 220), strict=True)) <= 3


def test_given_no_renditions_then_no_placeholder() -> None:
    assert placeholder([], has_alpha=False) is None


def test_given_a_small_cover_square_when_placeholder_made_then_from_the_whole_picture() -> None:
    # Given a 3:1 panorama rendered as a 64-px square crop and a 1024 fit rendition
    image = Image.new("RGB", (3000, 1000), (200, 60, 40))
    specs = (
        RenditionSpec("square", 64, "JPEG", 80, cover=True),
        RenditionSpec("large", 1024, "JPEG", 80),
    )
    facts, renditions = render(encoded(image, "PNG"), RenderSettings(specs))
    made = placeholder(renditions, facts.has_alpha)
    assert made is not None
    # Then the hash has the panorama's shape, not the square's
    digest = list(base64.b64decode(made["thumbhash"]))
    assert reference.thumb_hash_to_approximate_aspect_ratio(digest) > 2
