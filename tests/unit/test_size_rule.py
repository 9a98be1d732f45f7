"""Properties of the rendition size rule (docs/imaging.md, "Size rule").

The rule lives in `imgpipe.imaging._fit` (private: the public way in is `render`), so
the arithmetic is checked on the helper over the whole input range, and a smaller
property ties the helper to what `render` really encodes, on tiny generated images.
"""

from __future__ import annotations

import io
from datetime import timedelta
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imgpipe import crop, imaging
from imgpipe.specs import RenderSettings, RenditionSpec

SIDES = st.integers(1, 100_000)
BOXES = st.integers(1, 8192)
ARITHMETIC = settings(max_examples=1000, database=None, deadline=None)


def fit(width: int, height: int, box: int, allow_upscale: bool = False) -> tuple[int, int]:
    return imaging._fit(width, height, box, allow_upscale)


@ARITHMETIC
@given(width=SIDES, height=SIDES, box=BOXES, allow_upscale=st.booleans())
def test_given_any_shape_when_fitted_then_no_side_is_zero_and_it_fits_the_box(
    width: int, height: int, box: int, allow_upscale: bool
) -> None:
    # Given any source and box / When the rule runs
    out_w, out_h = fit(width, height, box, allow_upscale)
    # Then both sides are at least 1 and the long side is within the box
    assert out_w >= 1
    assert out_h >= 1
    assert max(out_w, out_h) <= box


@ARITHMETIC
@given(width=SIDES, height=SIDES, box=BOXES)
def test_given_no_upscaling_when_fitted_then_long_side_is_the_smaller_of_box_and_source(
    width: int, height: int, box: int
) -> None:
    # Given upscaling off (the default) / When the rule runs
    out_w, out_h = fit(width, height, box)
    # Then the long side is min(box, source long side) and no side grew
    assert max(out_w, out_h) == min(box, max(width, height))
    assert out_w <= width
    assert out_h <= height


@ARITHMETIC
@given(width=SIDES, height=SIDES, box=BOXES)
def test_given_upscaling_allowed_when_fitted_then_long_side_is_the_box(
    width: int, height: int, box: int
) -> None:
    # Given AllowUpscale=true / When the rule runs / Then the long side is exactly the box
    assert max(fit(width, height, box, True)) == box


@ARITHMETIC
@given(width=SIDES, height=SIDES, box=BOXES, allow_upscale=st.booleans())
def test_given_any_shape_when_fitted_then_aspect_error_is_below_one_pixel(
    width: int, height: int, box: int, allow_upscale: bool
) -> None:
    # Given any source and box / When the rule runs
    out_w, out_h = fit(width, height, box, allow_upscale)
    # Then the short side is within one pixel of the exact scaled value, and within half
    # a pixel (rounding) unless it had to be raised to 1
    landscape = width >= height
    long_in, short_in = (width, height) if landscape else (height, width)
    long_out, short_out = (out_w, out_h) if landscape else (out_h, out_w)
    exact = Fraction(short_in * long_out, long_in)
    error = abs(short_out - exact)
    assert error < 1
    if exact >= Fraction(1, 2):
        assert error <= Fraction(1, 2)
    else:
        assert short_out == 1


@ARITHMETIC
@given(width=SIDES, height=SIDES, box=BOXES, allow_upscale=st.booleans())
def test_given_any_shape_when_fitted_then_orientation_and_symmetry_are_kept(
    width: int, height: int, box: int, allow_upscale: bool
) -> None:
    # Given any source / When it and its transpose are fitted
    out_w, out_h = fit(width, height, box, allow_upscale)
    # Then landscape stays landscape (portrait, square likewise) and the rule is symmetric
    assert (out_w > out_h) <= (width > height)
    assert (out_h > out_w) <= (height > width)
    if width == height:
        assert out_w == out_h
    assert fit(height, width, box, allow_upscale) == (out_h, out_w)


@ARITHMETIC
@given(
    width=SIDES,
    height=SIDES,
    boxes=st.lists(BOXES, min_size=2, max_size=2, unique=True).map(sorted),
    allow_upscale=st.booleans(),
)
def test_given_two_boxes_when_fitted_then_the_larger_box_is_never_smaller(
    width: int, height: int, boxes: list[int], allow_upscale: bool
) -> None:
    # Given a smaller and a larger box / When the same source is fitted in both
    small = fit(width, height, boxes[0], allow_upscale)
    large = fit(width, height, boxes[1], allow_upscale)
    # Then the rule is monotonic: neither side shrinks as the box grows
    assert small[0] <= large[0]
    assert small[1] <= large[1]


@ARITHMETIC
@given(width=SIDES, height=SIDES, box=BOXES)
def test_given_a_fitted_size_when_fitted_again_then_it_is_unchanged(
    width: int, height: int, box: int
) -> None:
    # Given a size the rule produced / When it is fitted in the same box again
    once = fit(width, height, box)
    # Then nothing changes (a rendition of a rendition is the same size)
    assert fit(*once, box) == once


@ARITHMETIC
@given(width=SIDES, height=SIDES, box=BOXES, orientation=st.integers(1, 8))
def test_given_exif_orientation_when_planned_then_stored_size_is_the_displayed_one_turned(
    width: int, height: int, box: int, orientation: int
) -> None:
    # Given a stored width x height with an EXIF orientation
    spec = RenditionSpec("r", box, "WEBP", 80)
    # When renditions are planned
    [(_, shown, stored)] = imaging._plan(width, height, orientation, RenderSettings((spec,)))
    # Then the displayed size fits the displayed image, and the resize target (stored
    # orientation) is that size turned back for orientations 5-8
    turned = orientation in (5, 6, 7, 8)
    assert shown == fit(*((height, width) if turned else (width, height)), box)
    assert stored == (shown[::-1] if turned else shown)


@settings(max_examples=40, database=None, deadline=timedelta(seconds=5))
@given(
    width=st.integers(1, 48),
    height=st.integers(1, 48),
    box=st.integers(1, 64),
    allow_upscale=st.booleans(),
)
def test_given_tiny_image_when_rendered_then_encoded_size_follows_the_rule(
    width: int, height: int, box: int, allow_upscale: bool
) -> None:
    # Given a tiny generated PNG
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, "PNG")
    spec = RenditionSpec("r", box, "PNG", 80)
    # When render makes a box x box rendition
    _, [rendition] = imaging.render(
        out.getvalue(), RenderSettings((spec,), allow_upscale=allow_upscale)
    )
    # Then the reported and the encoded sizes are the rule's
    expected = fit(width, height, box, allow_upscale)
    assert (rendition.width, rendition.height) == expected
    assert Image.open(io.BytesIO(rendition.data)).size == expected


@ARITHMETIC
@given(
    width=SIDES,
    height=SIDES,
    box_w=BOXES,
    box_h=BOXES,
    allow_upscale=st.booleans(),
    fx=st.floats(0, 1),
    fy=st.floats(0, 1),
)
def test_given_any_shape_when_covered_then_the_window_is_inside_and_of_the_box_aspect(
    width: int, height: int, box_w: int, box_h: int, allow_upscale: bool, fx: float, fy: float
) -> None:
    # Given any source, cover box and focus / When the crop rule runs
    (win_w, win_h), (out_w, out_h) = crop.cover_size(width, height, (box_w, box_h), allow_upscale)
    placed = crop.place(width, height, (win_w, win_h), (fx, fy))
    # Then the window lies inside the source and fills one of its sides
    assert 1 <= win_w <= width
    assert 1 <= win_h <= height
    assert win_w == width or win_h == height
    assert 0 <= placed.x <= width - win_w
    assert 0 <= placed.y <= height - win_h
    # its free side is the box's aspect rounded to the nearest pixel, or 1 below that
    if win_h == height and win_w < width:
        exact = Fraction(height * box_w, box_h)
        assert abs(win_w - exact) <= Fraction(1, 2) or (win_w == 1 and exact < 1)
    elif win_w == width and win_h < height:
        exact = Fraction(width * box_h, box_w)
        assert abs(win_h - exact) <= Fraction(1, 2) or (win_h == 1 and exact < 1)
    # and the output is the box, or the window itself when that is smaller (no upscale)
    if allow_upscale or (win_w >= box_w and win_h >= box_h):
        assert (out_w, out_h) == (box_w, box_h)
    else:
        assert (out_w, out_h) == (win_w, win_h)
