"""The imaging core: source bytes and settings in, image facts and encoded renditions out.

Pure: no boto3, no event shapes, no environment. Decisions and measurements behind the
constants below are in docs/imaging.md.

Flow of `render`:

1. `Image.open` reads the header only; the pixel budget is enforced there, before any
   pixel is decoded (ours and Pillow's decompression-bomb limit).
2. JPEG sources get `draft()` so libjpeg decodes at 1/2, 1/4 or 1/8 scale when the
   largest rendition allows it (the EXIF orientation is read from the header first so
   the requested box is in the stored, not the displayed, orientation).
3. One `load()`; everything after works on that single decode, normalised to 8 bits
   per sample (and premultiplied when there is alpha).
4. Resize in the stored orientation, each output size from the smallest already-made
   image that is still comfortably larger than it.
5. Convert each resized image to sRGB (ImageCms when the source embeds a profile).
6. Per rendition: composite onto the background for JPEG, apply the EXIF orientation
   to the small result, drop every piece of metadata and encode.
7. An animation's WebP renditions that move are made frame by frame afterwards, by
   `imgpipe.animation`, once the first frame's decode is released.
"""

from __future__ import annotations

import functools
import importlib
import io
import logging
import os
import re
import struct
import warnings
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError

from imgpipe import crop
from imgpipe.budget import check_frames
from imgpipe.colour import nclx_profile, srgb_converter
from imgpipe.errors import CorruptImage, ImageRejected, TooManyPixels, UnsupportedFormat
from imgpipe.sniff import BytesSource, sniff
from imgpipe.specs import (
    FOCUS_CONTENT,
    FOCUS_METADATA,
    OUTPUT_FORMATS,
    SOURCE_FORMATS,
    ImageFacts,
    RenderedImage,
    RenderSettings,
    RenditionSpec,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from PIL.ImageFile import ImageFile

__all__ = ["render"]

_LOG = logging.getLogger(__name__)

# Importing one plugin registers it; naming the plugin keeps `Image.open(formats=...)`
# and `Image.save` from falling back to `Image.init()`, which imports all ~40 plugins
# (measurable on a Lambda cold start).
_PLUGINS: dict[str, str] = {
    "JPEG": "JpegImagePlugin",
    "PNG": "PngImagePlugin",
    "WEBP": "WebPImagePlugin",
    "GIF": "GifImagePlugin",
    "TIFF": "TiffImagePlugin",
    "AVIF": "AvifImagePlugin",
}
# HEIF comes from pi-heif (libheif + libde265, decode only), not from Pillow itself.
# Thumbnails, depth maps and auxiliary images are never rendered: not reading them
# saves their decode and memory.
_HEIF_OPENER = {"thumbnails": False, "depth_images": False, "aux_images": False}

# What truncated or damaged data raises from inside Pillow's plugins and decoders
# (found by fuzzing: truncation, byte flips and zeroed runs over every source format).
# SyntaxError, IndexError, TypeError and struct.error are what Pillow itself treats as
# "not this format" while identifying; TypeError also comes from a TIFF IFD without
# dimensions found while counting frames, RuntimeError from the AVIF decoder.
# UnidentifiedImageError is an OSError too, so it is always caught before these.
_DECODE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    TypeError,
    RuntimeError,
)

# Ask draft() for this many times the largest rendition, so libjpeg's DCT-domain
# downscale never does the last (quality-deciding) step: Lanczos always finishes a
# reduction of at least this factor. Measured in docs/imaging.md.
_DRAFT_GAP = 2.0
# resize(reducing_gap=...): integer box-reduce first, then Lanczos over >= this factor.
# At 3.0 Pillow documents the result as indistinguishable from a plain Lanczos.
_REDUCING_GAP = 3.0
# A smaller rendition is made from an already-resized larger one when that one is at
# least this many times larger on both sides; otherwise from the decode itself. Sides
# are rounded to whole pixels, so twice a rounded side can exceed the rounded double by
# one (24 MP 4000x6000: 1365x2048 and 683x1024); one pixel of slack keeps such a pair
# chained instead of resizing the whole decode again. docs/performance.md.
_CHAIN_GAP = 2.0
_CHAIN_SLACK_PX = 1
# Progressive JPEG only pays off (smaller, and shows early on slow links) for outputs
# bigger than a thumbnail; below this many pixels baseline is smaller. docs/imaging.md.
_JPEG_PROGRESSIVE_MIN_PIXELS = 200_000

# Pillow allocates pixels in blocks of up to 16 MiB and by default hands every freed
# block back to the C allocator, which returns large ones to the kernel: each render
# then page-faults its decode in again (~45 ms of kernel time for a 24 MP decode, 4-5 %
# of the default set). Keeping this many freed blocks for the next image of a warm
# process avoids that. It does not raise the peak: kept blocks are reused before any
# new one is allocated. PILLOW_BLOCKS_MAX in the environment still wins.
# docs/performance.md.
_KEPT_PIXEL_BLOCKS = 16

_ORIENTATION_TAG = 0x0112
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_RAWMODE_BITS = re.compile(r";(32|16|12|4|2|1)(?![0-9])")
_PREMULTIPLIED = {"LA": "La", "RGBA": "RGBa"}
_STRAIGHT = {"La": "LA", "RGBa": "RGBA"}


@dataclass(frozen=True)
class _Decoded:
    """The one decode every rendition comes from.

    `image` is 8-bit L, RGB, CMYK or LAB, or premultiplied La or RGBa, still in the
    source's colour space; `to_srgb` converts a (straight-alpha) image of that space to
    sRGB RGB or RGBA. `box` is the region of `image` that maps to the full source (a
    JPEG draft rounds its size up, so it can be fractional).
    """

    image: Image.Image
    box: tuple[float, float, float, float]
    to_srgb: Callable[[Image.Image], Image.Image]
    # The decoder applied the orientation already (libheif applies irot/imir).
    upright: bool = False


def _no_span(name: str) -> AbstractContextManager[None]:
    return nullcontext()


def render(
    data: bytes,
    settings: RenderSettings,
    *,
    source_format: str | None = None,
    span: Callable[[str], AbstractContextManager[None]] = _no_span,
    focus: tuple[float, float] | None = None,
) -> tuple[ImageFacts, list[RenderedImage]]:
    """Decode `data` once and encode one rendition per `settings.renditions` entry.

    `source_format` is the Pillow format name the header sniffer found; only that
    decoder is tried. Without it, any of `specs.SOURCE_FORMATS` is accepted.

    Raises `UnsupportedFormat`, `TooManyPixels`, `CorruptImage`, `TooManyFrames` or
    `DecodeTooLarge` for bad input. Any other exception is a bug or a misconfiguration
    (e.g. an unknown output format).

    An animated GIF, WebP or APNG gets animated WebP renditions from `imgpipe.animation`
    (up to `settings.max_animated_pixels`); every other rendition is the first frame.

    `span(name)` wraps the "decode", "resize" and "encode" stages; callers use it for
    timings and trace subsegments without this module knowing about either.

    `focus` (fractions of the upright image) centres the window of every cover
    rendition; without it the window goes where the image has the most detail.
    """
    for spec in settings.renditions:
        _check_spec(spec)
    formats = _decoder_formats(source_format)
    _keep_pixel_blocks()
    with _pixel_budget(settings.max_pixels), span("decode"):
        facts, decoded = _decode(data, settings, formats)
    # The budgets validate applied to the header, again on what the decoder counted.
    check_frames(facts, settings.max_frames, settings.max_animation_pixels)
    windows = _windows(decoded, facts, settings, focus)
    # The animation path builds on this module's decoding helpers; imported here, not
    # at the top, so that the two modules do not import each other while loading.
    from imgpipe import animation

    moving = animation.animated_plans(facts, settings)
    stills = tuple(spec for spec, plan in zip(settings.renditions, moving, strict=True) if not plan)
    made_still = iter(_derive(decoded, facts, replace(settings, renditions=stills), windows, span))
    # The first frame's decode is released before any animation pass begins.
    del decoded
    made_moving: Iterator[RenderedImage] = iter(())
    if len(stills) < len(moving):
        with _pixel_budget(settings.max_pixels), span("animate"):
            animated = [plan for plan in moving if plan]
            made_moving = iter(
                animation.render_animated(
                    data, formats, facts, animated, settings, _source_boxes(facts, windows)
                )
            )
    rendered = []
    for plan in moving:
        item = next(made_moving) if plan else next(made_still)
        reason = animation.still_reason(facts, item.spec, (item.width, item.height), settings)
        window, chosen = windows.get(item.spec.name, (None, None))
        rendered.append(
            replace(
                item,
                still_reason=reason,
                crop=window.as_tuple() if window is not None else None,
                focus=chosen,
            )
        )
    return facts, rendered


@contextmanager
def _pixel_budget(max_pixels: int) -> Iterator[None]:
    """Pillow's decompression-bomb guard set to the configured budget, as an error.

    Its default (~89.5 Mpx) would silently cap a larger budget, so the two limits are
    made to agree. Pillow only *warns* between the limit and twice that; a warning
    would let a near-bomb through, so inside this block it is raised like the error.
    Both settings are process-global while active, which is fine for
    one-request-at-a-time Lambda.
    """
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            msg = f"image is larger than the pixel budget: {exc}"
            raise TooManyPixels(msg) from exc
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit


# --------------------------------------------------------------------------- decoding


def _check_spec(spec: RenditionSpec) -> None:
    if spec.format not in OUTPUT_FORMATS:
        msg = f"rendition {spec.name!r}: unknown output format {spec.format!r}"
        raise ValueError(msg)
    if spec.size < 1:
        msg = f"rendition {spec.name!r}: size must be at least 1, got {spec.size}"
        raise ValueError(msg)


def _decoder_formats(source_format: str | None) -> tuple[str, ...]:
    if source_format is None:
        wanted = SOURCE_FORMATS
    elif source_format.upper() in SOURCE_FORMATS:
        wanted = (source_format.upper(),)
    else:
        msg = f"source format {source_format!r} is not on the allow-list"
        raise UnsupportedFormat(msg)
    available = tuple(fmt for fmt in wanted if _register_plugin(fmt))
    if not available:
        msg = f"no decoder for {', '.join(wanted)} in this Pillow build"
        raise UnsupportedFormat(msg)
    return available


@functools.cache
def _keep_pixel_blocks() -> None:
    if "PILLOW_BLOCKS_MAX" not in os.environ:
        Image.core.set_blocks_max(_KEPT_PIXEL_BLOCKS)


@functools.cache
def _register_plugin(fmt: str) -> bool:
    try:
        if fmt == "HEIF":
            importlib.import_module("pi_heif").register_heif_opener(**_HEIF_OPENER)
        else:
            importlib.import_module(f"PIL.{_PLUGINS[fmt]}")
    except ImportError:
        return False
    return fmt in Image.OPEN or fmt in Image.SAVE


def _open(data: bytes, formats: tuple[str, ...]) -> ImageFile:
    try:
        return Image.open(io.BytesIO(data), formats=list(formats))
    except UnidentifiedImageError as exc:
        # Pillow also reports a damaged header (bad IHDR CRC, short SOF) as "cannot
        # identify"; when the magic bytes do match, the upload is corrupt, not foreign.
        matching = _formats_with_magic(data, formats)
        if matching:
            msg = _corrupt_message("header", _header_error(data, matching) or exc)
            raise CorruptImage(msg) from exc
        msg = f"not a {'/'.join(formats)} image"
        raise UnsupportedFormat(msg) from exc
    except _DECODE_ERRORS as exc:
        msg = _corrupt_message("header", exc)
        raise CorruptImage(msg) from exc


def _formats_with_magic(data: bytes, formats: tuple[str, ...]) -> tuple[str, ...]:
    """The formats whose plugin accepts the first bytes of `data` as its own."""
    matching = []
    for fmt in formats:
        accept = Image.OPEN[fmt][1] if fmt in Image.OPEN else None
        answer = accept(data[:16]) if accept is not None else False
        # A str answer means "this format, but this build cannot read it".
        if answer and not isinstance(answer, str):
            matching.append(fmt)
    return tuple(matching)


def _header_error(data: bytes, formats: tuple[str, ...]) -> Exception | None:
    """Why the plugin refused the header, which `Image.open` does not say.

    Its `UnidentifiedImageError` only reads "cannot identify image file <_io.BytesIO
    object at 0x...>" (a memory address, useless to whoever reads the rejection), and
    drops the plugin's own reason ("broken PNG file (bad header checksum in b'IHDR')").
    Running the plugin's header parser again, on this error path only, recovers it.
    """
    for fmt in formats:
        factory = Image.OPEN[fmt][0]
        try:
            factory(io.BytesIO(data), "").close()
        except _DECODE_ERRORS as exc:
            return exc
    return None


def _corrupt_message(stage: str, exc: Exception) -> str:
    detail = str(exc) or type(exc).__name__
    return f"damaged image {stage}: {detail}"[:200]


def _decode(
    data: bytes, settings: RenderSettings, formats: tuple[str, ...]
) -> tuple[ImageFacts, _Decoded]:
    im = _open(data, formats)
    width, height = im.size
    if width < 1 or height < 1:
        msg = f"image header declares an empty image ({width}x{height})"
        raise CorruptImage(msg)
    if width * height > settings.max_pixels:
        msg = f"{width}x{height} is {width * height} pixels; the limit is {settings.max_pixels}"
        raise TooManyPixels(msg)

    # Everything the header tells us, read before load() changes it (tile, size, mode).
    mode = im.mode
    bit_depth = _bit_depth(im)
    fmt = "JPEG" if im.format == "MPO" else (im.format or formats[0])
    try:
        frames = int(getattr(im, "n_frames", 1))
        orientation = 1
        box: tuple[float, float, float, float] = (0.0, 0.0, float(width), float(height))
        if fmt == "JPEG":
            # JPEG EXIF lives in the header, so reading it does not decode pixels (for PNG
            # it would: an eXIf chunk may follow the image data).
            orientation = _orientation(im)
            im, box = _draft(im, data, formats, settings, orientation)
        im.load()
        if fmt != "JPEG":
            orientation = _orientation(im)
    except _DECODE_ERRORS as exc:
        msg = _corrupt_message("data", exc)
        raise CorruptImage(msg) from exc

    icc = im.info.get("icc_profile")
    images = 1
    if fmt == "HEIF":
        # libheif decodes upright and in 8 bits; the facts still describe the file.
        orientation = _heif_orientation(data)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        images, frames = frames, 1
        bit_depth = int(im.info.get("bit_depth") or 8)
    facts = ImageFacts(
        format=fmt,
        width=width,
        height=height,
        orientation=orientation,
        frames=frames,
        mode=mode,
        has_alpha=im.has_transparency_data,
        bit_depth=bit_depth,
        icc_profile=bool(icc),
        progressive=bool(im.info.get("progressive") or im.info.get("interlace")),
        images=images,
    )
    work = _normalise(im)
    if work.mode in _PREMULTIPLIED:
        if work.getchannel("A").getextrema() == (255, 255):
            work = work.convert(work.mode[:-1])
        else:
            # Premultiplied once here, so chained resizes don't round-trip through
            # straight alpha at each step (and no dark fringes from transparent pixels).
            work = work.convert(_PREMULTIPLIED[work.mode])
    profile = icc if isinstance(icc, bytes) and icc else None
    nclx = im.info.get("nclx_profile")
    if profile is None and isinstance(nclx, dict):
        profile = nclx_profile(nclx)
    to_srgb = srgb_converter(_STRAIGHT.get(work.mode, work.mode), profile)
    return facts, _Decoded(work, box, to_srgb, upright=fmt == "HEIF")


def _heif_orientation(data: bytes) -> int:
    """The EXIF orientation equivalent to the primary image's irot/imir.

    pi-heif does not report the transforms it applied (and resets the EXIF tag, which
    HEIF readers must ignore); the header sniffer reads them from the boxes.
    """
    try:
        return sniff(BytesSource(data), allowed=("HEIF",)).orientation
    except ImageRejected:
        # libheif decoded it, so the picture is shown; only the recorded fact is lost.
        _LOG.warning("HEIF header unreadable to the sniffer; recording orientation 1")
        return 1


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:
        # A broken EXIF block must not cost the user the picture; upright is the
        # reading every viewer that cannot parse it falls back to as well.
        _LOG.warning("unreadable EXIF block; treating orientation as 1")
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _bit_depth(im: ImageFile) -> int:
    """Bits per sample as stored, from what the header parse left in the image."""
    if im.mode == "1":
        return 1
    if im.mode.startswith("I;16"):
        return 16
    if im.mode in ("I", "F"):
        return 32
    for tile in im.tile:
        rawmode = tile.args[0] if isinstance(tile.args, tuple) and tile.args else tile.args
        if isinstance(rawmode, str) and (found := _RAWMODE_BITS.search(rawmode)):
            return int(found.group(1))
    # JPEG records its sample precision (8, or 12 for some medical/raw-derived files).
    bits = getattr(im, "bits", 8)
    return bits if isinstance(bits, int) else 8


# ----------------------------------------------------------------------------- draft


def _draft(
    im: ImageFile,
    data: bytes,
    formats: tuple[str, ...],
    settings: RenderSettings,
    orientation: int,
) -> tuple[ImageFile, tuple[float, float, float, float]]:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale if the largest rendition allows it."""
    width, height = im.size
    full_box = (0.0, 0.0, float(width), float(height))
    stored_sizes = _decode_sizes(width, height, orientation, settings)
    if not stored_sizes:
        return im, full_box
    need = max(stored_sizes, key=lambda size: size[0] * size[1])
    if need[0] >= width or need[1] >= height:
        return im, full_box
    request = (round(need[0] * _DRAFT_GAP), round(need[1] * _DRAFT_GAP))
    result = im.draft(im.mode, request)
    if result is None:
        return im, full_box
    if im.size[0] < need[0] or im.size[1] < need[1]:
        # Pillow's scale choice guarantees this cannot happen; if a future version
        # rounds differently, a full decode is slower but still correct.
        _LOG.warning("JPEG draft reduced %s below %s; decoding at full size", im.size, need)
        return _open(data, formats), full_box
    return im, result[1]


_Plan = tuple[RenditionSpec, tuple[int, int], tuple[int, int]]


def _plan(width: int, height: int, orientation: int, settings: RenderSettings) -> list[_Plan]:
    """Per rendition: its spec, its size as displayed, and that size as stored.

    Resizing happens before the EXIF transpose (on the smaller image), so the resize
    target and the draft box are in the stored orientation: sides swapped for 5-8.
    """
    swap = orientation in (5, 6, 7, 8)
    shown = (height, width) if swap else (width, height)
    plans = []
    for spec in settings.renditions:
        if spec.cover:
            out = crop.cover_size(*shown, spec.box, settings.allow_upscale)[1]
        else:
            out = _fit(*shown, spec.size, settings.allow_upscale)
        plans.append((spec, out, (out[1], out[0]) if swap else out))
    return plans


def _decode_sizes(
    width: int, height: int, orientation: int, settings: RenderSettings
) -> list[tuple[int, int]]:
    """Per rendition, the whole stored image's size at the rendition's scale: what a
    draft decode must keep. A cover rendition scales its window, not the whole image,
    so it needs the image larger than its output."""
    swap = orientation in (5, 6, 7, 8)
    shown = (height, width) if swap else (width, height)
    sizes = []
    for spec, out, stored in _plan(width, height, orientation, settings):
        if spec.cover:
            window = crop.cover_size(*shown, spec.box, settings.allow_upscale)[0]
            whole = (
                -(-shown[0] * out[0] // window[0]),
                -(-shown[1] * out[1] // window[1]),
            )
            stored = (whole[1], whole[0]) if swap else whole
        sizes.append(stored)
    return sizes


def _fit(width: int, height: int, box: int, allow_upscale: bool) -> tuple[int, int]:
    """The size rule: fit in box x box, aspect kept, long edge exactly `box`.

    The short edge is short * box / long rounded half up, in integers (no float
    surprises, no banker's rounding), and never below 1.
    """
    long_edge, short_edge = max(width, height), min(width, height)
    if long_edge <= box and not allow_upscale:
        return width, height
    scaled = max(1, (2 * short_edge * box + long_edge) // (2 * long_edge))
    return (box, scaled) if width >= height else (scaled, box)


# ---------------------------------------------------------------------------- colour


def _normalise(im: Image.Image) -> Image.Image:
    """Normalise to L, LA, RGB, RGBA, CMYK or LAB with 8-bit straight (not premultiplied)
    samples, turning palette and colour-key transparency into an alpha channel.

    Colour spaces are left alone: converting to sRGB is done on the (much smaller)
    resized images, where littleCMS costs ~0.1 s instead of ~1 s for a 24 MP decode.
    """
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        return _scale_sixteen(im)
    if mode in ("L", "RGB", "RGBA", "LA", "CMYK", "LAB"):
        if mode in ("L", "RGB") and "transparency" in im.info:
            return im.convert("LA" if mode == "L" else "RGBA")
        return im
    if mode in ("1", "F"):
        return im.convert("L")
    if mode == "La":
        return im.convert("LA")
    if mode in ("P", "PA", "RGBa"):
        return im.convert("RGBA" if im.has_transparency_data else "RGB")
    # RGBX, YCbCr, HSV and anything else Pillow can convert.
    return im.convert("RGB")


@functools.cache
def _sixteen_to_eight_lut() -> list[int]:
    # v * 255 / 65535 rounded: 65535 -> 255, 32768 -> 128, 0 -> 0. Pillow's own I -> L
    # conversion clips instead (every value above 255 becomes white).
    return [(v * 255 + 32767) // 65535 for v in range(65536)]


def _scale_sixteen(im: Image.Image) -> Image.Image:
    grey = im if im.mode == "I" else im.convert("I")
    scaled = grey.point(_sixteen_to_eight_lut(), "L")
    key = im.info.get("transparency")
    if isinstance(key, int):
        # A tRNS colour key is a 16-bit sample value; Pillow's own LA conversion ignores
        # it for these modes, so the mask is built from the 16-bit samples here.
        alpha = grey.point([0 if v == key else 255 for v in range(65536)], "L")
        return Image.merge("LA", (scaled, alpha))
    return scaled


# ------------------------------------------------------------------------ renditions


def _derive(
    decoded: _Decoded,
    facts: ImageFacts,
    settings: RenderSettings,
    windows: dict[str, tuple[crop.Window, str]],
    span: Callable[[str], AbstractContextManager[None]],
) -> list[RenderedImage]:
    if decoded.upright:
        plans = _plan(*facts.oriented_size, 1, settings)
        method = None
    else:
        plans = _plan(facts.width, facts.height, facts.orientation, settings)
        method = _TRANSPOSE.get(facts.orientation)
    boxes = _source_boxes(facts, windows, decoded.upright)
    with span("resize"):
        resized = _resize_all(decoded, {stored for spec, _, stored in plans if not spec.cover})
        # A cover is cut from the decode itself: a fit rendition has lost the margins.
        for spec, _, stored in plans:
            if spec.cover and (stored, spec.name) not in resized:
                resized[stored, spec.name] = decoded.image.resize(
                    stored,
                    Image.Resampling.LANCZOS,
                    box=_decoded_box(decoded, facts, boxes[spec.name]),
                    reducing_gap=_REDUCING_GAP,
                )
        srgb = {
            size: decoded.to_srgb(
                image.convert(_STRAIGHT[image.mode]) if image.mode in _STRAIGHT else image
            )
            for size, image in resized.items()
        }
        finished = []
        for spec, out, stored in plans:
            made = srgb[(stored, spec.name) if spec.cover else stored]
            image = _finish(made, spec, settings)
            if method is not None:
                image = image.transpose(method)
            assert image.size == out
            finished.append((spec, image, out))
    with span("encode"):
        return [
            RenderedImage(spec, _encode(image, spec, settings), *out)
            for spec, image, out in finished
        ]


# ----------------------------------------------------------------------------- crops

# Above this long side, the detail image is first sampled (nearest) down to this many
# times its size, so finding the detail costs ~1 ms whatever the decode (a box filter
# over a 24 MP decode costs 25 ms). docs/imaging.md, "Crops".
_DETAIL_SAMPLE = 4


def _frame(decoded_upright: bool, facts: ImageFacts) -> tuple[tuple[int, int], int]:
    """The size of the source as decoded (full scale) and the orientation still to
    apply: libheif hands HEIF over upright."""
    if decoded_upright:
        return facts.oriented_size, 1
    return (facts.width, facts.height), facts.orientation


def _windows(
    decoded: _Decoded,
    facts: ImageFacts,
    settings: RenderSettings,
    focus: tuple[float, float] | None,
) -> dict[str, tuple[crop.Window, str]]:
    """Each cover rendition's window in the upright source, and what placed it."""
    covers = [spec for spec in settings.renditions if spec.cover]
    if not covers:
        return {}
    shown = facts.oriented_size
    detail = None if focus is not None else _detail(decoded, facts)
    chosen: dict[str, tuple[crop.Window, str]] = {}
    for spec in covers:
        window = crop.cover_size(*shown, spec.box, settings.allow_upscale)[0]
        if detail is None:
            centre, how = focus or (0.5, 0.5), FOCUS_METADATA
        else:
            scale = (detail.width / shown[0], detail.height / shown[1])
            centre = crop.content_focus(detail, (window[0] * scale[0], window[1] * scale[1]))
            how = FOCUS_CONTENT
        chosen[spec.name] = (crop.place(*shown, window, centre), how)
    return chosen


def _detail(decoded: _Decoded, facts: ImageFacts) -> Image.Image:
    """The detail map of a small, upright, greyscale copy of the decode."""
    (width, height), orientation = _frame(decoded.upright, facts)
    scale = min(1.0, crop.DETAIL_SIDE / max(width, height))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image, box = decoded.image, decoded.box
    sample = (small_size[0] * _DETAIL_SAMPLE, small_size[1] * _DETAIL_SAMPLE)
    if image.width > 2 * sample[0] and image.height > 2 * sample[1]:
        image = image.resize(sample, Image.Resampling.NEAREST, box=box)
        box = (0.0, 0.0, float(sample[0]), float(sample[1]))
    small = image.resize(small_size, Image.Resampling.BOX, box=box)
    # Lightness alone: premultiplied and LAB samples need no conversion for that.
    grey = small.getchannel(0) if small.mode in ("La", "LA", "LAB") else small.convert("L")
    method = _TRANSPOSE.get(orientation)
    return crop.detail_map(grey.transpose(method) if method is not None else grey)


def _source_boxes(
    facts: ImageFacts, windows: dict[str, tuple[crop.Window, str]], upright: bool = False
) -> dict[str, tuple[float, float, float, float]]:
    """Each window as a box of the source as decoded (before the EXIF transpose)."""
    (width, height), orientation = _frame(upright, facts)
    boxes = {}
    for name, (window, _) in windows.items():
        corners = [
            _unorient(x, y, width, height, orientation)
            for x, y in (
                (window.x, window.y),
                (window.x + window.width, window.y + window.height),
            )
        ]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        boxes[name] = (float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys)))
    return boxes


def _unorient(x: int, y: int, width: int, height: int, orientation: int) -> tuple[int, int]:
    """A point of the upright image as a point of the stored one (`width` x `height`)."""
    return {
        2: (width - x, y),
        3: (width - x, height - y),
        4: (x, height - y),
        5: (y, x),
        6: (y, height - x),
        7: (width - y, height - x),
        8: (width - y, x),
    }.get(orientation, (x, y))


def _decoded_box(
    decoded: _Decoded, facts: ImageFacts, box: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """A box in source pixels as a box of the decode (a JPEG draft is smaller)."""
    (width, height), _ = _frame(decoded.upright, facts)
    left, top, right, bottom = decoded.box
    sx, sy = (right - left) / width, (bottom - top) / height
    return (left + box[0] * sx, top + box[1] * sy, left + box[2] * sx, top + box[3] * sy)


def _resize_all(
    decoded: _Decoded, sizes: set[tuple[int, int]]
) -> dict[tuple[int, int] | tuple[tuple[int, int], str], Image.Image]:
    """Every distinct output size, largest first, each from the cheapest good source."""
    made: dict[tuple[int, int] | tuple[tuple[int, int], str], Image.Image] = {}
    for size in sorted(sizes, key=lambda s: s[0] * s[1], reverse=True):
        source, box = decoded.image, decoded.box
        for candidate in sorted(made.values(), key=lambda im: im.width * im.height):
            if (
                candidate.width + _CHAIN_SLACK_PX >= _CHAIN_GAP * size[0]
                and candidate.height + _CHAIN_SLACK_PX >= _CHAIN_GAP * size[1]
            ):
                source, box = candidate, (0.0, 0.0, float(candidate.width), float(candidate.height))
                break
        made[size] = source.resize(
            size, Image.Resampling.LANCZOS, box=box, reducing_gap=_REDUCING_GAP
        )
    return made


def _finish(image: Image.Image, spec: RenditionSpec, settings: RenderSettings) -> Image.Image:
    """The pixels to encode: alpha kept where the format has it, else composited."""
    if image.mode != "RGBA" or spec.format != "JPEG":
        return image
    backdrop = Image.new("RGBA", image.size, (*settings.background, 255))
    return Image.alpha_composite(backdrop, image).convert("RGB")


def _encode(image: Image.Image, spec: RenditionSpec, settings: RenderSettings) -> bytes:
    # Several plugins fall back to im.info for what the caller did not pass (JPEG
    # comment, PNG/AVIF icc_profile, PNG transparency): an empty info means nothing
    # from the source (EXIF, GPS, XMP, comments, profile) can leak into an output.
    image.info = {}
    _register_plugin(spec.format)
    out = io.BytesIO()
    if spec.format == "JPEG":
        image.save(
            out,
            "JPEG",
            quality=spec.quality,
            optimize=True,
            progressive=image.width * image.height >= _JPEG_PROGRESSIVE_MIN_PIXELS,
            subsampling="4:2:0",
        )
    elif spec.format == "WEBP":
        image.save(out, "WEBP", quality=spec.quality, method=settings.webp_method)
    elif spec.format == "AVIF":
        image.save(out, "AVIF", quality=spec.quality, speed=settings.avif_speed)
    else:
        image.save(out, "PNG", optimize=False)
    return out.getvalue()
