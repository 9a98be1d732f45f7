"""Value objects shared by the imaging core, the configuration and the handlers.

Pure data: no Pillow, no boto3, so every function can import them cheaply.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

# Output formats the pipeline can write, with the file extension and Content-Type
# that go with each. The extension is part of the output-key contract.
OUTPUT_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "WEBP": ("webp", "image/webp"),
    "AVIF": ("avif", "image/avif"),
    "PNG": ("png", "image/png"),
}

# Source formats the pipeline knows how to read, as Pillow names them.
SOURCE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "AVIF", "HEIF")
# Sources whose frames are an animation (APNG is a PNG). TIFF pages and HEIF images are
# separate pictures, and AVIF sequences are rendered as their first frame
# (docs/imaging.md).
ANIMATED_SOURCES: frozenset[str] = frozenset({"GIF", "WEBP", "PNG"})


@dataclass(frozen=True)
class RenditionSpec:
    """One output: a long-edge bound (or a box to fill) and an encoding.

    `size` bounds both sides (the image fits in a size x size box, aspect kept), so a
    portrait and a landscape photo get the same long edge. A cover rendition fills a
    `size` x `height` box instead, cropping what does not fit (docs/imaging.md,
    "Crops").
    """

    name: str
    size: int
    format: str
    quality: int
    cover: bool = False
    # The cover box's height; 0 means a square (`size` x `size`).
    height: int = 0

    @property
    def box(self) -> tuple[int, int]:
        """The box as width x height: square for a fit rendition."""
        return self.size, (self.height or self.size)

    @property
    def extension(self) -> str:
        return OUTPUT_FORMATS[self.format][0]

    @property
    def content_type(self) -> str:
        return OUTPUT_FORMATS[self.format][1]

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.extension}"


@dataclass(frozen=True)
class RenderSettings:
    """Everything the imaging core needs to know besides the bytes."""

    renditions: tuple[RenditionSpec, ...]
    background: tuple[int, int, int] = (255, 255, 255)
    allow_upscale: bool = False
    max_pixels: int = 80_000_000
    # The animation budgets of `config.Limits`, enforced again on what the decoder
    # reports: a header the sniffer misread must not make resize animate past them.
    max_frames: int = 500
    max_animation_pixels: int = 1_000_000_000
    # A WebP rendition of an animated source moves while its frames x width x height
    # stays within this; larger ones, and every other format, carry the first frame.
    # docs/limits.md.
    max_animated_pixels: int = 200_000_000
    # WebP `method` (0 fastest .. 6 smallest); see docs/imaging.md for the measurements.
    webp_method: int = 4
    # AVIF `speed` (0 slowest/smallest .. 10 fastest).
    avif_speed: int = 8

    @property
    def fingerprint(self) -> str:
        """Names the files these settings make: equal fingerprints, equal renditions.

        The manifest records it, so renditions made with an earlier set (a new size, a
        new format, another quality) can be found and made again. The pixel and frame
        budgets are left out: they decide what is rendered, not what a rendition looks
        like. The animation cap is in: it decides whether a rendition moves.
        """
        shape = {
            "renditions": [_spec_shape(r) for r in self.renditions],
            "background": list(self.background),
            "allow_upscale": self.allow_upscale,
            "webp_method": self.webp_method,
            "avif_speed": self.avif_speed,
            "max_animated_pixels": self.max_animated_pixels,
        }
        canonical = json.dumps(shape, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _spec_shape(spec: RenditionSpec) -> list[object]:
    # A fit rendition keeps the shape it always had, so fit-only sets keep their
    # fingerprint and deployments made before crops existed do not render again.
    shape: list[object] = [spec.name, spec.size, spec.format, spec.quality]
    if spec.cover:
        shape += ["cover", *spec.box]
    return shape


@dataclass(frozen=True)
class ImageFacts:
    """What the source is, as read from its header (and confirmed by the decoder)."""

    format: str
    width: int
    height: int
    orientation: int = 1
    frames: int = 1
    mode: str = ""
    has_alpha: bool = False
    bit_depth: int = 8
    icc_profile: bool = False
    progressive: bool = False
    # Top-level images of a HEIF container (a burst, a Live Photo's still and its
    # variants); the primary one is what is rendered.
    images: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def animated(self) -> bool:
        """A GIF, WebP or APNG of more than one frame: its WebP renditions can move."""
        return self.format in ANIMATED_SOURCES and self.frames > 1

    @property
    def oriented_size(self) -> tuple[int, int]:
        """Width and height after the EXIF orientation is applied (5-8 swap sides)."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class RenderedImage:
    """One encoded rendition, ready to upload."""

    spec: RenditionSpec
    data: bytes = field(repr=False)
    width: int
    height: int
    frames: int = 1
    # Animated renditions only: the total display time and the play count (0 = forever).
    duration_ms: int | None = None
    loop: int | None = None
    # Why a rendition of an animated source (or an AVIF sequence) is its first frame
    # only: one of the `STILL_*` codes below.
    still_reason: str | None = None
    # Cover renditions only: the window cut from the source, as (x, y, width, height)
    # in pixels of the upright source, and what placed it (`FOCUS_*`).
    crop: tuple[int, int, int, int] | None = None
    focus: str | None = None


# What placed a cover rendition's window: the uploader's `focus` metadata, or the
# detail measured in the image itself.
FOCUS_METADATA = "metadata"
FOCUS_CONTENT = "content"

# Reasons a rendition of an animated source carries its first frame only.
STILL_FORMAT = "OutputFormat"
STILL_BUDGET = "MaxAnimatedRenditionPixels"
# An AVIF image sequence: Pillow reports no repetition count for it, so the loop could
# not be kept (docs/imaging.md).
STILL_SOURCE = "SourceFormat"
