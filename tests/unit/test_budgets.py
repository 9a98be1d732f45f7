"""Budgets checked from the header before anything is decoded."""

from __future__ import annotations

from dataclasses import replace

import pytest

from imgpipe.budget import (
    check_budgets,
    cover_need,
    jpeg_draft_scale,
    largest_need,
    peak_memory_mb,
)
from imgpipe.config import Limits, OutputLocation, ResizeConfig
from imgpipe.errors import ConfigError, DecodeTooLarge, TooManyFrames, TooManyPixels
from imgpipe.messages import SourceRef
from imgpipe.specs import ImageFacts, RenderSettings
from imgpipe.stages.resize import refuse_recursion

LIMITS = Limits(
    max_bytes=50_000_000,
    max_pixels=80_000_000,
    max_frames=500,
    allowed_formats=("JPEG", "PNG", "GIF"),
    max_animation_pixels=100_000_000,
    decode_memory_mb=1024,
    largest_rendition=2048,
    max_animated_pixels=200_000_000,
)


def test_jpeg_decodes_at_the_smallest_scale_that_keeps_twice_the_largest_rendition() -> None:
    photo = ImageFacts("JPEG", 8688, 5792, mode="RGB")
    assert jpeg_draft_scale(photo, 2048) == 2
    assert jpeg_draft_scale(photo, 320) == 8
    assert jpeg_draft_scale(ImageFacts("PNG", 8688, 5792, mode="RGB"), 320) == 1


def test_a_cover_rendition_of_a_wide_photo_needs_its_window_not_its_box() -> None:
    # Given a 6000x1000 panorama and a 400x400 cover square beside a 320 thumbnail
    panorama = ImageFacts("JPEG", 6000, 1000, mode="RGB")
    limits = replace(LIMITS, largest_rendition=400, cover_boxes=((400, 400),))
    # Then the square is cut from a 1000x1000 window scaled to 400: the whole image is
    # needed 2400 wide, so the decode is at full size, not at the box's 1/4
    assert cover_need(panorama, (400, 400)) == 2400
    assert largest_need(panorama, limits) == 2400
    assert jpeg_draft_scale(panorama, largest_need(panorama, limits)) == 1
    assert jpeg_draft_scale(panorama, limits.largest_rendition) == 4
    # and EXIF-turned sources are measured upright; a source smaller than the box keeps
    # its own size (no upscaling): the whole image at scale 1
    turned = ImageFacts("JPEG", 1000, 6000, orientation=6, mode="RGB")
    assert cover_need(turned, (400, 400)) == 2400
    assert cover_need(ImageFacts("JPEG", 300, 200, mode="RGB"), (400, 400)) == 300
    # and a fit-only set is measured as before
    assert largest_need(panorama, LIMITS) == 2048


def test_a_50_megapixel_jpeg_fits_the_default_resize_function() -> None:
    photo = ImageFacts("JPEG", 8688, 5792, mode="RGB")
    check_budgets(photo, LIMITS)
    assert peak_memory_mb(photo, 2048) < 1024 / 2


@pytest.mark.parametrize(
    ("facts", "error"),
    [
        (ImageFacts("PNG", 10_000, 9_000, mode="RGBA"), TooManyPixels),
        (ImageFacts("GIF", 100, 100, mode="P", frames=501), TooManyFrames),
        (ImageFacts("GIF", 2_000, 2_000, mode="P", frames=30), DecodeTooLarge),
        (ImageFacts("PNG", 8_000, 8_000, mode="RGBA", bit_depth=16), DecodeTooLarge),
        # a pass over 4000 x 4000 frames needs ~1 GB, the first frame alone ~170 MB
        (ImageFacts("GIF", 4_000, 4_000, mode="P", frames=6), DecodeTooLarge),
    ],
)
def test_over_budget_headers_are_rejected_with_a_reason(
    facts: ImageFacts, error: type[Exception]
) -> None:
    with pytest.raises(error):
        check_budgets(facts, LIMITS)


def _resize_config(bucket: str, prefix: str, watched: str) -> ResizeConfig:
    return ResizeConfig(
        limits=LIMITS,
        output=OutputLocation(bucket, prefix),
        render=RenderSettings(renditions=()),
        cache_control="",
        state_table="t",
        input_bucket="uploads",
        input_prefix=watched,
    )


@pytest.mark.parametrize(
    ("prefix", "watched"),
    [("", ""), ("out/", ""), ("", "in/"), ("in/out/", "in/"), ("out/", "out/sub/")],
)
def test_outputs_that_would_trigger_the_pipeline_again_are_refused(
    prefix: str, watched: str
) -> None:
    source = SourceRef("shared", "in/cat.jpg", 10)
    with pytest.raises(ConfigError, match="new executions"):
        refuse_recursion(source, _resize_config("shared", prefix, watched))


def test_disjoint_prefixes_in_one_bucket_or_two_buckets_are_fine() -> None:
    source = SourceRef("shared", "in/cat.jpg", 10)
    refuse_recursion(source, _resize_config("shared", "out/", "in/"))
    refuse_recursion(source, _resize_config("other", "", ""))


def test_an_animation_that_fits_as_a_still_but_not_animated_is_refused_not_flattened() -> None:
    # Given 15 frames of 6000 x 6000 (within the frame, pixel and animation budgets)
    facts = ImageFacts("GIF", 6000, 6000, mode="P", frames=15)
    limits = replace(LIMITS, max_animation_pixels=1_000_000_000)
    # Then its first frame fits the function and an animated pass over it does not
    assert peak_memory_mb(facts, 2048) < limits.decode_memory_mb
    assert peak_memory_mb(facts, 2048, limits.max_animated_pixels) > limits.decode_memory_mb
    # So it is refused with the reason, never rendered as its first frame instead
    with pytest.raises(DecodeTooLarge, match="MB"):
        check_budgets(facts, limits)
    # And where no rendition can move (no WebP output, or a cap of 0) it renders
    check_budgets(facts, replace(limits, max_animated_pixels=0))


def test_the_animated_estimate_covers_the_measured_peaks() -> None:
    # Peak growth of render() measured in a warm interpreter (docs/limits.md), which
    # itself holds ~40 MiB with Pillow and imgpipe loaded, against the whole estimate
    measured_mib = {
        ImageFacts("GIF", 640, 480, mode="P", frames=500): 27,
        ImageFacts("GIF", 2000, 2000, mode="P", frames=10): 160,
        ImageFacts("PNG", 1500, 1500, mode="RGBA", frames=10): 106,
        ImageFacts("WEBP", 1500, 1500, mode="RGBA", frames=10): 118,
        ImageFacts("WEBP", 1920, 1080, mode="RGB", frames=50): 103,
        ImageFacts("WEBP", 3840, 2160, mode="RGB", frames=20): 247,
        # pure noise: a 30 MB source, 26 MB of animated output
        ImageFacts("WEBP", 1024, 768, mode="RGB", frames=60): 161,
    }
    for facts, grown in measured_mib.items():
        assert peak_memory_mb(facts, 2048, 200_000_000) >= grown + 40, facts
        # A still decode of the same header would not have covered most of them
        assert peak_memory_mb(facts, 2048) < peak_memory_mb(facts, 2048, 200_000_000)
