"""Configuration is parsed once and fails loudly, naming the variable."""

from __future__ import annotations

import pytest

from imgpipe.config import folder_config, resize_config, validate_config
from imgpipe.errors import ConfigError

BASE = {
    "OUTPUT_BUCKET": "renditions-bucket",
    "STATE_TABLE": "imgpipe-state",
    "INPUT_BUCKET": "uploads-bucket",
}


def test_defaults_give_three_sizes_in_webp_and_jpeg() -> None:
    config = resize_config(BASE)
    got = [(r.name, r.size, r.format, r.quality) for r in config.render.renditions]
    assert got == [
        ("thumb", 320, "WEBP", 80),
        ("thumb", 320, "JPEG", 82),
        ("medium", 1024, "WEBP", 80),
        ("medium", 1024, "JPEG", 82),
        ("large", 2048, "WEBP", 80),
        ("large", 2048, "JPEG", 82),
    ]
    assert config.render.allow_upscale is False
    assert config.render.background == (255, 255, 255)
    assert [r.filename for r in config.render.renditions][:2] == ["thumb.webp", "thumb.jpg"]
    assert config.render.max_animated_pixels == 200_000_000
    # the header budgets reach the decoder too
    assert (config.render.max_frames, config.render.max_animation_pixels) == (500, 1_000_000_000)


def test_animated_cap_reaches_validates_memory_estimate_only_with_webp_output() -> None:
    # Given the cap set, with and without a WebP rendition
    with_webp = validate_config({**BASE, "MAX_ANIMATED_RENDITION_PIXELS": "1000"})
    without = validate_config(
        {**BASE, "MAX_ANIMATED_RENDITION_PIXELS": "1000", "OUTPUT_FORMATS": "jpeg,avif"}
    )
    # Then validate budgets an animated pass only when a rendition can move
    assert with_webp.limits.max_animated_pixels == 1000
    assert without.limits.max_animated_pixels == 0


def test_the_fingerprint_names_what_the_renditions_look_like() -> None:
    # Given the default rendition settings and variations of them
    base = resize_config(BASE).render
    same = resize_config({**BASE, "MAX_SOURCE_PIXELS": "1000"}).render
    changed = [
        resize_config({**BASE, name: value}).render
        for name, value in (
            ("RENDITIONS", "thumb:320,medium:1024,large:2000"),
            ("OUTPUT_FORMATS", "webp,avif"),
            ("WEBP_QUALITY", "81"),
            ("BACKGROUND_COLOR", "#000000"),
            ("ALLOW_UPSCALE", "true"),
            # still or animated
            ("MAX_ANIMATED_RENDITION_PIXELS", "0"),
        )
    ]
    # Then a budget leaves it alone, and anything that changes a file changes it
    assert same.fingerprint == base.fingerprint
    assert base.fingerprint.startswith("sha256:")
    assert len({base.fingerprint, *(c.fingerprint for c in changed)}) == 1 + len(changed)


def test_custom_set_with_avif_and_background() -> None:
    config = resize_config(
        {
            **BASE,
            "RENDITIONS": "sq:64",
            "OUTPUT_FORMATS": "avif,jpg",
            "AVIF_QUALITY": "50",
            "BACKGROUND_COLOR": "#102030",
            "ALLOW_UPSCALE": "true",
            "OUTPUT_PREFIX": "v1",
        }
    )
    assert [(r.format, r.quality, r.content_type) for r in config.render.renditions] == [
        ("AVIF", 50, "image/avif"),
        ("JPEG", 82, "image/jpeg"),
    ]
    assert config.render.background == (0x10, 0x20, 0x30)
    assert config.render.allow_upscale is True
    assert config.output.prefix == "v1/"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RENDITIONS", "thumb"),
        ("RENDITIONS", "Thumb:320"),
        ("RENDITIONS", "a:10,a:20"),
        ("RENDITIONS", "manifest:10"),
        ("RENDITIONS", "a:0"),
        ("OUTPUT_FORMATS", "gif"),
        ("JPEG_QUALITY", "101"),
        ("JPEG_QUALITY", "high"),
        ("ALLOW_UPSCALE", "maybe"),
        ("MAX_ANIMATED_RENDITION_PIXELS", "-1"),
        ("MAX_ANIMATED_RENDITION_PIXELS", "2e8"),
        ("BACKGROUND_COLOR", "white"),
        ("OUTPUT_BUCKET", "Not_A_Bucket"),
        ("OUTPUT_PREFIX", "a/../b"),
        ("MAX_SOURCE_PIXELS", "-1"),
        ("ALLOWED_FORMATS", "JPEG,BMP"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        resize_config({**BASE, name: value})


def test_missing_output_bucket_is_an_error_not_a_default() -> None:
    with pytest.raises(ConfigError, match="OUTPUT_BUCKET is required"):
        folder_config({})


def test_validate_limits() -> None:
    config = validate_config(
        {
            "MAX_SOURCE_BYTES": "10",
            "ALLOWED_FORMATS": "jpeg, png",
            "STATE_TABLE": "t",
            "RENDITIONS": "a:100,b:4000,c:30",
            "DECODE_MEMORY_MB": "2048",
            "INPUT_BUCKET": "uploads-in",
            "OUTPUT_BUCKET": "renditions-out",
        }
    )
    limits = config.limits
    assert (limits.max_bytes, limits.allowed_formats) == (10, ("JPEG", "PNG"))
    assert (limits.largest_rendition, limits.decode_memory_mb) == (4000, 2048)
    assert config.state_table == "t"
    assert (config.input_bucket, config.output.bucket) == ("uploads-in", "renditions-out")


def test_input_bucket_is_required_everywhere() -> None:
    # Without it the functions could not refuse events for buckets they do not own
    env = {**BASE}
    env.pop("INPUT_BUCKET", None)
    for parse in (resize_config, folder_config):
        with pytest.raises(ConfigError, match="INPUT_BUCKET"):
            parse(env)


def test_state_table_is_required() -> None:
    with pytest.raises(ConfigError, match="STATE_TABLE"):
        validate_config({})


def test_cover_renditions_count_towards_the_largest_rendition_and_the_fingerprint() -> None:
    # Given a set with a card whose box is taller than any fit rendition
    environ = {
        "STATE_TABLE": "t",
        "RENDITIONS": "thumb:320,card:1200x4500:cover",
        "INPUT_BUCKET": "uploads-in",
        "OUTPUT_BUCKET": "renditions-out",
    }
    # When validate and resize read it
    validate, resize = validate_config(environ), resize_config(environ)
    # Then the card's long side is the largest, and both agree on the fingerprint
    assert validate.limits.largest_rendition == 4500
    assert validate.limits.cover_boxes == ((1200, 4500),)
    assert [(r.name, r.cover, r.box) for r in resize.render.renditions][::2] == [
        ("thumb", False, (320, 320)),
        ("card", True, (1200, 4500)),
    ]
    assert validate.render_fingerprint == resize.render.fingerprint


def test_a_fit_rendition_with_a_wxh_box_names_the_variable() -> None:
    environ = {
        "STATE_TABLE": "t",
        "RENDITIONS": "card:1200x630",
        "INPUT_BUCKET": "uploads-in",
        "OUTPUT_BUCKET": "renditions-out",
    }
    with pytest.raises(ConfigError, match=r"RENDITIONS=.*only a cover rendition"):
        resize_config(environ)
