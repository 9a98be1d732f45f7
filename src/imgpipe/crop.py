"""Cover renditions: which window of the upright source fills the box.

Pure, like `imaging`: sizes, fractions and a small greyscale image in, windows out. The
rule, the focus and the content measure are in docs/imaging.md ("Crops").
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass

from PIL import Image, ImageChops

__all__ = ["Window", "content_focus", "cover_size", "detail_map", "parse_focus", "place"]

_LOG = logging.getLogger(__name__)

# The long side of the image the content measure looks at: enough to find an object a
# fiftieth of the picture across, small enough that the whole choice costs ~1 ms.
DETAIL_SIDE = 128


@dataclass(frozen=True)
class Window:
    """A crop window in pixels of the upright source."""

    x: int
    y: int
    width: int
    height: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.width, self.height


def parse_focus(text: str | None) -> tuple[float, float] | None:
    """`"x,y"` (fractions 0..1 of the upright image) -> (x, y); None, with a warning
    when something was given, for anything else: a bad value never rejects an upload."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        x, y = (float(part) for part in parts)
    except ValueError:
        _LOG.warning("ignoring focus metadata %r: not x,y", text[:64])
        return None
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        # Also refuses nan and inf, which fail every comparison.
        _LOG.warning("ignoring focus metadata %r: x and y must be in 0..1", text[:64])
        return None
    return x, y


def _window_size(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """The largest window of the box's aspect ratio inside width x height, rounded to
    whole pixels (half up) and never below 1."""
    box_w, box_h = box
    if width * box_h >= height * box_w:
        # The source is wider than the box: the window takes the full height.
        return min(width, max(1, (2 * height * box_w + box_h) // (2 * box_h))), height
    return width, min(height, max(1, (2 * width * box_h + box_w) // (2 * box_w)))


def cover_size(
    width: int, height: int, box: tuple[int, int], allow_upscale: bool
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The window size in the upright source and the output size, for a cover box.

    The output is the box when the window is at least as large as the box (or upscaling
    is allowed); otherwise the window itself, unscaled: a source smaller than the box
    gives the largest crop of the box's aspect ratio it has, at its own size.
    """
    window = _window_size(width, height, box)
    if allow_upscale or (window[0] >= box[0] and window[1] >= box[1]):
        return window, box
    return window, window


def place(width: int, height: int, window: tuple[int, int], focus: tuple[float, float]) -> Window:
    """The window centred on `focus` (fractions of width x height), kept inside."""
    w, h = window
    x = round(focus[0] * width - w / 2)
    y = round(focus[1] * height - h / 2)
    return Window(min(max(x, 0), width - w), min(max(y, 0), height - h), w, h)


def detail_map(small: Image.Image) -> Image.Image:
    """Gradient magnitude of a small greyscale image: (|dx| + |dy|) / 2 between
    neighbouring pixels, as floats; 0 on a flat field whatever its brightness."""
    grey = small if small.mode == "L" else small.convert("L")
    w, h = grey.size
    dx = Image.new("L", (w, h), 0)
    dy = Image.new("L", (w, h), 0)
    if w > 1:
        dx.paste(ImageChops.difference(grey.crop((1, 0, w, h)), grey.crop((0, 0, w - 1, h))))
    if h > 1:
        dy.paste(ImageChops.difference(grey.crop((0, 1, w, h)), grey.crop((0, 0, w, h - 1))))
    return ImageChops.add(dx, dy, scale=2.0).convert("F")


def content_focus(detail: Image.Image, window: tuple[float, float]) -> tuple[float, float]:
    """The focus (fractions) that centres the window of `window` size, in the detail
    map's pixels, on the most detail.

    The window slides along the one axis it does not fill; the position with the most
    detail wins (ties: the one nearest the middle), and the focus is the centre of the
    detail inside it, so a small object ends up in the middle of the crop, not at its
    edge. A flat image is cropped in the middle.
    """
    w, h = detail.size
    horizontal = window[0] < w - 0.5
    # Per column (or row) means: a BOX resize to one row (column) of floats.
    line = detail.resize((w, 1) if horizontal else (1, h), Image.Resampling.BOX)
    profile = list(struct.unpack(f"={line.width * line.height}f", line.tobytes()))
    length = len(profile)
    span = max(1, min(length, math.floor((window[0] if horizontal else window[1]) + 0.5)))
    sums = [0.0]
    for value in profile:
        sums.append(sums[-1] + value)
    middle = (length - span) / 2
    best = max(
        range(length - span + 1),
        key=lambda start: (round(sums[start + span] - sums[start], 6), -abs(start - middle)),
    )
    inside = profile[best : best + span]
    total = sum(inside)
    if total <= 0:
        return 0.5, 0.5
    along = (best + sum((i + 0.5) * v for i, v in enumerate(inside)) / total) / length
    return (along, 0.5) if horizontal else (0.5, along)
