"""How much memory decoding an image will take, estimated from its header.

Validate runs without Pillow and without the image's pixels; it uses this estimate to
reject an upload that would run the resize function out of memory, instead of letting
resize crash (a crash is retried, then fails the execution; a rejection is final and
says why). Calibration and the factors are in docs/limits.md.
"""

from __future__ import annotations

from math import ceil
from typing import TYPE_CHECKING

from imgpipe.errors import DecodeTooLarge, TooManyFrames, TooManyPixels
from imgpipe.specs import ImageFacts

if TYPE_CHECKING:
    from imgpipe.config import Limits

# Bytes per pixel of the decoded image, by the mode Pillow decodes into. Pillow keeps
# every multi-band mode in 4-byte pixels (RGB included).
_BYTES_PER_PIXEL = {
    "1": 1, "L": 1, "P": 1, "LA": 4, "La": 4, "PA": 4, "RGB": 4, "YCbCr": 4, "LAB": 4,
    "HSV": 4, "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4,
    "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2,
}  # fmt: skip
# libwebp decodes into its own buffer before Pillow copies it (measured: ~16 bytes per
# pixel at the peak for a 50 MP WebP, docs/performance.md).
_DECODER_COPIES = {"WEBP": 2}
# The decoded image, a converted or premultiplied copy, and the first resize pass
# coexist at the peak.
_WORKING_COPIES = 3
# The Python runtime, boto3, Powertools and Pillow before any image is opened.
RUNTIME_MB = 120
# Animated renditions (imgpipe.animation) are made frame by frame, one pass over the
# source each. A pass holds the decoder's composited frame and its disposal copy, the
# working and premultiplied copies, the resized frame, and libwebp's three canvases and
# candidate pictures: measured 8-14 x the source frame in RGBA bytes, whatever its mode.
_ANIMATED_FRAME_COPIES = 14
# Encoded animated WebP at quality 80, bytes per pixel of every frame: 0.01-0.15
# measured on drawn, corpus and video-like animations, 0.55 on pure noise. The
# estimate takes the noise: an upload built to blow the memory must be refused, not
# retried until the execution fails.
_ANIMATED_BYTES_PER_PIXEL = 0.6
# libwebp's encoded frames, the assembled file and Python's copy of it (measured:
# 2.3 x the output at the peak).
_ANIMATED_OUTPUT_COPIES = 3


def jpeg_draft_scale(facts: ImageFacts, largest_rendition: int) -> int:
    """The DCT scale (1, 2, 4 or 8) libjpeg can decode at for this rendition set.

    The imaging core asks for twice the largest rendition, so the reduced decode never
    limits quality; this mirrors that rule.
    """
    if facts.format != "JPEG":
        return 1
    long_edge = max(facts.width, facts.height)
    for scale in (8, 4, 2):
        if ceil(long_edge / scale) >= 2 * largest_rendition:
            return scale
    return 1


def cover_need(facts: ImageFacts, box: tuple[int, int]) -> int:
    """The long edge the whole image must keep for a cover rendition of `box`.

    The crop is cut from the largest window of the box's shape in the upright image, so
    the whole image is needed at the window's scale, not the box's: a 6000x1000 photo cut
    to a 400x400 square needs its 1000-pixel height at 400, i.e. the whole at 2400 wide.
    Mirrors imaging._decode_sizes, without Pillow.
    """
    width, height = facts.oriented_size
    box_w, box_h = box
    if width * box_h >= height * box_w:
        window = (max(1, round(height * box_w / box_h)), height)
    else:
        window = (width, max(1, round(width * box_h / box_w)))
    out = box if window[0] >= box_w and window[1] >= box_h else window
    return max(-(-width * out[0] // window[0]), -(-height * out[1] // window[1]))


def largest_need(facts: ImageFacts, limits: Limits) -> int:
    """The long edge a JPEG decode must keep for every rendition of the set."""
    covers = (cover_need(facts, box) for box in limits.cover_boxes)
    return max([limits.largest_rendition, *covers])


def decode_bytes(facts: ImageFacts, largest_rendition: int) -> int:
    scale = jpeg_draft_scale(facts, largest_rendition)
    width, height = ceil(facts.width / scale), ceil(facts.height / scale)
    per_pixel = _BYTES_PER_PIXEL.get(facts.mode, 4)
    if facts.bit_depth > 8 and facts.mode in ("RGB", "RGBA", "LA"):
        per_pixel *= 2
    return width * height * per_pixel * _DECODER_COPIES.get(facts.format, 1)


def animated_bytes(facts: ImageFacts, max_animated_pixels: int) -> int:
    """Working memory of one animated rendition's pass over the source.

    The largest animated rendition has at most `max_animated_pixels` (frames x width x
    height), and never more than the source itself.
    """
    frame = facts.pixels * 4
    output = min(max_animated_pixels, facts.frames * facts.pixels) * _ANIMATED_BYTES_PER_PIXEL
    return ceil(frame * _ANIMATED_FRAME_COPIES + output * _ANIMATED_OUTPUT_COPIES)


def peak_memory_mb(
    facts: ImageFacts, largest_rendition: int, max_animated_pixels: int = 0
) -> float:
    """Estimated peak memory of the resize function for this image.

    For an animation whose renditions can move (`max_animated_pixels` > 0) it is the
    larger of the first frame's decode and an animated pass; the two never overlap.
    """
    working = decode_bytes(facts, largest_rendition) * _WORKING_COPIES
    if facts.animated and max_animated_pixels > 0:
        working = max(working, animated_bytes(facts, max_animated_pixels))
    return RUNTIME_MB + working / (1024 * 1024)


def check_frames(facts: ImageFacts, max_frames: int, max_animation_pixels: int) -> None:
    """Refuse an animation over the frame budgets; never render it as its first frame."""
    if facts.frames > max_frames:
        msg = f"the animation has more than {max_frames} frames"
        raise TooManyFrames(msg)
    if facts.frames > 1 and facts.frames * facts.pixels > max_animation_pixels:
        msg = (
            f"{facts.frames} frames of {facts.width}x{facts.height} are "
            f"{facts.frames * facts.pixels} pixels; the animation budget is "
            f"{max_animation_pixels}"
        )
        raise DecodeTooLarge(msg)


def check_budgets(facts: ImageFacts, limits: Limits) -> None:
    """Refuse, from the header, what would be too expensive to decode."""
    if facts.pixels > limits.max_pixels:
        msg = (
            f"{facts.width}x{facts.height} is {facts.pixels} pixels; "
            f"the limit is {limits.max_pixels}"
        )
        raise TooManyPixels(msg)
    check_frames(facts, limits.max_frames, limits.max_animation_pixels)
    needed = peak_memory_mb(facts, largest_need(facts, limits), limits.max_animated_pixels)
    if needed > limits.decode_memory_mb:
        msg = (
            f"decoding {facts.width}x{facts.height} {facts.mode or facts.format} needs about "
            f"{needed:.0f} MB; the resize function has {limits.decode_memory_mb} MB"
        )
        raise DecodeTooLarge(msg)
