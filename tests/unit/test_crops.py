"""Cover renditions: parsing, the crop rule, the focus and the content-based choice."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image, ImageDraw

from imgpipe import crop, imaging
from imgpipe.config import parse_renditions
from imgpipe.errors import ConfigError
from imgpipe.imaging import render
from imgpipe.specs import ImageFacts, RenderSettings, RenditionSpec

QUALITIES = {"JPEG": 82, "WEBP": 80, "AVIF": 60, "PNG": 100}
GREY = (128, 128, 128)
RED = (255, 0, 0)
# The 3000 x 1000 field's object: a 60-pixel red square centred at (2530, 430).
OBJECT = (2500, 400, 2560, 460)
OBJECT_FOCUS = (2530 / 3000, 430 / 1000)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _field(size: tuple[int, int] = (3000, 1000), box: tuple[int, ...] = OBJECT) -> Image.Image:
    image = Image.new("RGB", size, GREY)
    ImageDraw.Draw(image).rectangle(box, fill=RED)
    return image


def _red_pixels(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as out:
        rgb = out.convert("RGB")
    return sum(1 for r, g, b in rgb.get_flattened_data() if r > 200 and g < 60 and b < 60)  # type: ignore[misc]


def _settings(renditions: str, formats: str = "png", **kwargs: object) -> RenderSettings:
    return RenderSettings(renditions=parse_renditions(renditions, formats, QUALITIES), **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- parsing


def test_cover_entries_parse_beside_fit_entries() -> None:
    specs = parse_renditions(
        "thumb:320,square:320:cover,card:1200x630:cover,same:400x400:cover", "webp", QUALITIES
    )
    assert [(s.name, s.size, s.cover, s.box) for s in specs] == [
        ("thumb", 320, False, (320, 320)),
        ("square", 320, True, (320, 320)),
        ("card", 1200, True, (1200, 630)),
        ("same", 400, True, (400, 400)),
    ]


@pytest.mark.parametrize(
    "entry",
    [
        "card:1200x630",
        "square:320:fill",
        "square:0:cover",
        "card:1200x0:cover",
        "card:20000x630:cover",
        "square:320:cover:cover",
        "Square:320:cover",
        "square::cover",
    ],
)
def test_bad_entries_fail_naming_the_variable(entry: str) -> None:
    with pytest.raises(ConfigError, match="RENDITIONS"):
        parse_renditions(f"thumb:320,{entry}", "webp", QUALITIES)


def test_fit_only_sets_keep_the_fingerprint_they_had_before_crops() -> None:
    # The value HEAD~ computed for the default set: existing deployments do not re-render.
    settings = _settings("thumb:320,medium:1024,large:2048", "webp,jpeg")
    assert settings.fingerprint == "sha256:80a19665a990dcbd"


def test_a_cover_rendition_changes_the_fingerprint_by_its_box() -> None:
    fit = _settings("square:320").fingerprint
    square = _settings("square:320:cover").fingerprint
    wide = _settings("square:320x200:cover").fingerprint
    assert len({fit, square, wide}) == 3


# ---------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("source", "box", "upscale", "window", "out"),
    [
        ((3000, 1000), (320, 320), False, (1000, 1000), (320, 320)),
        ((1000, 3000), (320, 320), False, (1000, 1000), (320, 320)),
        ((4000, 3000), (1200, 630), False, (4000, 2100), (1200, 630)),
        # Smaller than the box: the largest window of its aspect, at its own size.
        ((200, 100), (320, 320), False, (100, 100), (100, 100)),
        ((200, 100), (320, 320), True, (100, 100), (320, 320)),
        ((1000, 400), (1200, 630), False, (762, 400), (762, 400)),
        # Never a 0-pixel side.
        ((1, 5000), (1200, 630), False, (1, 1), (1, 1)),
        ((5000, 1), (320, 320), False, (1, 1), (1, 1)),
    ],
)
def test_cover_size_rule(
    source: tuple[int, int],
    box: tuple[int, int],
    upscale: bool,
    window: tuple[int, int],
    out: tuple[int, int],
) -> None:
    assert crop.cover_size(*source, box, upscale) == (window, out)


def test_place_centres_on_the_focus_and_stays_inside() -> None:
    assert crop.place(3000, 1000, (1000, 1000), (0.5, 0.5)) == crop.Window(1000, 0, 1000, 1000)
    assert crop.place(3000, 1000, (1000, 1000), (0.95, 0.5)) == crop.Window(2000, 0, 1000, 1000)
    assert crop.place(3000, 1000, (1000, 1000), (0.0, 1.0)) == crop.Window(0, 0, 1000, 1000)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("0.9,0.5", (0.9, 0.5)),
        (" 0 , 1 ", (0.0, 1.0)),
        ("1.5,0.5", None),
        ("0.5", None),
        ("0.1,0.2,0.3", None),
        ("nan,0.5", None),
        ("left,top", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_focus(text: str | None, parsed: tuple[float, float] | None) -> None:
    assert crop.parse_focus(text) == parsed


@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_upright_window_maps_back_to_the_stored_pixels(orientation: int) -> None:
    # Given a stored image with distinct pixels and a window of its upright view
    stored = Image.new("L", (7, 5))
    stored.putdata(list(range(35)))
    method = imaging._TRANSPOSE.get(orientation)
    upright = stored.transpose(method) if method is not None else stored
    x, y, w, h = 1, 2, 3, 2
    # When the window is mapped to the stored image, cut there and turned upright
    corners = [imaging._unorient(px, py, 7, 5, orientation) for px, py in ((x, y), (x + w, y + h))]
    box = (
        min(c[0] for c in corners),
        min(c[1] for c in corners),
        max(c[0] for c in corners),
        max(c[1] for c in corners),
    )
    cut = stored.crop(box)
    cut = cut.transpose(method) if method is not None else cut
    # Then it is the window cut from the upright view
    assert list(cut.get_flattened_data()) == list(
        upright.crop((x, y, x + w, y + h)).get_flattened_data()
    )


# ----------------------------------------------------------------------- rendering


@pytest.mark.parametrize("focus", [OBJECT_FOCUS, None])
def test_a_square_cover_of_a_wide_field_contains_its_object(
    focus: tuple[float, float] | None,
) -> None:
    # Given a 3000 x 1000 grey field with one small red object near the right
    data = _png(_field())
    # When a 320-pixel square is made with the object's position as focus, and without
    _, (made,) = render(data, _settings("square:320:cover"), focus=focus)
    # Then it is 320 x 320, cut from the right third, and shows the object
    assert (made.width, made.height) == (320, 320)
    assert made.crop == (2000, 0, 1000, 1000)
    assert made.focus == ("metadata" if focus else "content")
    assert _red_pixels(made.data) > 100


def test_the_focus_moves_the_window() -> None:
    _, (made,) = render(_png(_field()), _settings("square:320:cover"), focus=(0.0, 0.5))
    assert made.crop == (0, 0, 1000, 1000)
    assert _red_pixels(made.data) == 0


def test_a_flat_image_is_cropped_in_the_middle() -> None:
    flat = Image.new("RGB", (3000, 1000), GREY)
    _, (made,) = render(_png(flat), _settings("square:320:cover"))
    assert made.crop == (1000, 0, 1000, 1000)


def test_a_tall_source_is_cut_where_its_object_is() -> None:
    # Given a 1000 x 3000 field with the object near the top
    data = _png(_field((1000, 3000), (400, 300, 460, 360)))
    # When a square is made by content
    _, (made,) = render(data, _settings("square:320:cover"))
    # Then the window is the top third and shows it
    assert made.crop == (0, 0, 1000, 1000)
    assert _red_pixels(made.data) > 100


@pytest.mark.parametrize("focus", [OBJECT_FOCUS, None])
def test_the_focus_is_in_the_upright_frame_of_an_exif_rotated_jpeg(
    focus: tuple[float, float] | None,
) -> None:
    # Given a JPEG stored turned a quarter, whose EXIF orientation 6 shows it as the
    # 3000 x 1000 field with the object on the right
    stored = _field().transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif)
    # When a square and a fit rendition are made
    facts, (square, thumb) = render(
        out.getvalue(), _settings("square:320:cover,thumb:320"), focus=focus
    )
    # Then the window is in upright pixels, on the object, and the fit is unchanged
    assert facts.orientation == 6
    assert square.crop == (2000, 0, 1000, 1000)
    assert (square.width, square.height) == (320, 320)
    assert _red_pixels(square.data) > 100
    assert (thumb.width, thumb.height, thumb.crop, thumb.focus) == (320, 107, None, None)


def test_a_card_cover() -> None:
    data = _png(_field((4000, 3000), (3000, 2500, 3100, 2600)))
    _, (card,) = render(data, _settings("card:1200x630:cover"))
    assert (card.width, card.height) == (1200, 630)
    assert card.crop == (0, 900, 4000, 2100)
    assert _red_pixels(card.data) > 100


def test_a_source_smaller_than_the_box_is_cut_not_upscaled() -> None:
    data = _png(_field((200, 100), (180, 40, 190, 50)))
    _, (small,) = render(data, _settings("square:320:cover"))
    assert (small.width, small.height) == (100, 100)
    assert small.crop == (100, 0, 100, 100)
    _, (grown,) = render(data, _settings("square:320:cover", allow_upscale=True))
    assert (grown.width, grown.height) == (320, 320)


def test_a_one_pixel_wide_source_gives_one_pixel() -> None:
    _, (made,) = render(_png(Image.new("RGB", (1, 500), GREY)), _settings("card:1200x630:cover"))
    assert (made.width, made.height) == (1, 1)


def test_a_draft_decoded_jpeg_keeps_enough_pixels_for_its_window() -> None:
    # Given a 6000 x 1000 JPEG: a 100-pixel fit needs 1/8 scale, a 400-pixel square of
    # a 1000 x 1000 window needs the full height
    out = io.BytesIO()
    _field((6000, 1000), (5000, 400, 5060, 460)).save(out, "JPEG", quality=90)
    settings = _settings("thumb:100,square:400:cover", "jpeg")
    # When the decode sizes are planned and the renditions made
    needs = imaging._decode_sizes(6000, 1000, 1, settings)
    _, (thumb, square) = render(out.getvalue(), settings)
    # Then the square asks for the whole image at its own scale (2400 x 400)
    assert needs == [(100, 17), (2400, 400)]
    assert (thumb.width, thumb.height) == (100, 17)
    assert (square.width, square.height) == (400, 400)
    assert square.crop is not None
    x, y, w, h = square.crop
    assert (y, w, h) == (0, 1000, 1000)
    assert x <= 5000
    assert x + w >= 5060
    assert _red_pixels(square.data) > 400


def test_an_animation_is_cut_with_one_window_on_every_frame() -> None:
    # Given a 3-frame 300 x 100 GIF whose object sits on the right in every frame
    frames = [_field((300, 100), (250 + i, 40, 260 + i, 50)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    # When a square WebP is made
    _, (made,) = render(out.getvalue(), _settings("square:64:cover", "webp"))
    # Then it moves, and each frame is the same window
    assert (made.width, made.height, made.frames, made.still_reason) == (64, 64, 3, None)
    assert made.crop == (200, 0, 100, 100)
    with Image.open(io.BytesIO(made.data)) as moving:
        assert getattr(moving, "n_frames", 1) == 3
        for index in range(3):
            moving.seek(index)
            assert moving.size == (64, 64)


def test_the_content_choice_costs_a_few_milliseconds() -> None:
    # Given a 24 MP decode (the choice itself, not the decode, is measured)
    big = Image.new("RGB", (6000, 4000), GREY)
    decoded = imaging._Decoded(big, (0.0, 0.0, 6000.0, 4000.0), lambda image: image)
    facts = ImageFacts("PNG", 6000, 4000)
    settings = _settings("square:320:cover,card:1200x630:cover")
    imaging._windows(decoded, facts, settings, None)
    # When the windows are chosen by content, Then it takes well under 20 ms
    start = time.perf_counter()
    for _ in range(5):
        imaging._windows(decoded, facts, settings, None)
    assert (time.perf_counter() - start) / 5 < 0.020


def test_spec_defaults_keep_fit_renditions() -> None:
    assert RenditionSpec("thumb", 320, "WEBP", 80).box == (320, 320)


def _in_mode(mode: str) -> bytes:
    image = _field((600, 200), (500, 80, 530, 110))
    out = io.BytesIO()
    if mode == "CMYK":
        image.convert("CMYK").save(out, "JPEG")
    elif mode == "I;16":
        sixteen = image.convert("L").convert("I").point(lambda v: v * 257)
        sixteen.convert("I;16").save(out, "PNG")
    elif mode == "P":
        image.convert("P", palette=Image.Palette.ADAPTIVE).save(out, "GIF")
    else:
        converted = image.convert(mode)
        if "A" in mode:
            converted.putalpha(Image.new("L", image.size, 200))
        converted.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "CMYK", "I;16", "P"])
def test_every_source_mode_gets_a_content_window(mode: str) -> None:
    _, (made,) = render(_in_mode(mode), _settings("square:100:cover", "webp"))
    assert (made.width, made.height, made.focus) == (100, 100, "content")
    assert made.crop == (400, 0, 200, 200)
