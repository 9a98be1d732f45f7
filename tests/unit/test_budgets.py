"""Budgets checked from the header before anything is decoded."""

from __future__ import annotations

import pytest

from imgpipe.budget import check_budgets, jpeg_draft_scale, peak_memory_mb
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
)


def test_jpeg_decodes_at_the_smallest_scale_that_keeps_twice_the_largest_rendition() -> None:
    photo = ImageFacts("JPEG", 8688, 5792, mode="RGB")
    assert jpeg_draft_scale(photo, 2048) == 2
    assert jpeg_draft_scale(photo, 320) == 8
    assert jpeg_draft_scale(ImageFacts("PNG", 8688, 5792, mode="RGB"), 320) == 1


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
