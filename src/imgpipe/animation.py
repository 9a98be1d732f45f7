"""Animated renditions: an animated GIF, WebP or APNG becomes an animated WebP.

Pure, like `imaging`, whose `render` hands over the renditions `animated_plans` picks
and makes every other one from its single decode of the first frame. Decisions and
measurements are in docs/imaging.md ("Animated input").

How frames flow: Pillow's WebP writer (`WebPImagePlugin._save_all`) reads a multi-frame
image's `n_frames`, then for each index calls `seek(i)` and `getim()` and gives that
frame to libwebp's animation encoder before asking for the next; it reads
`duration[i]` only after frame i was handed over. `_FrameSequence` is such an image
whose frames are made when asked: the source's next frame is decoded (Pillow's GIF,
WebP and APNG readers return it composited onto the full canvas, disposal and blending
applied), resized, converted to sRGB and oriented, and its duration appended to the
list the writer reads. One source frame and one rendition frame exist at a time;
libwebp keeps two canvases and the compressed frames.

Each distinct animated output (size and quality) is one pass over the source. Decoding
again per pass costs a few per cent of the encoding; one pass feeding every encoder
would need Pillow's private `_webp` module or a thread per encoder (docs/imaging.md).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from imgpipe import imaging
from imgpipe.colour import srgb_converter
from imgpipe.errors import CorruptImage, DecodeTooLarge
from imgpipe.specs import (
    STILL_BUDGET,
    STILL_FORMAT,
    STILL_SOURCE,
    ImageFacts,
    RenderedImage,
    RenderSettings,
    RenditionSpec,
)

if TYPE_CHECKING:
    from PIL._imaging import PixelAccess
    from PIL.ImageFile import ImageFile

__all__ = ["animated_plans", "render_animated", "still_reason"]

# WebP is the one output format the pipeline animates.
_ANIMATED_OUTPUT = "WEBP"
# WebP's ANIM chunk keeps the loop count in 16 bits; APNG's num_plays has 32.
_MAX_LOOP = 0xFFFF
_CLEAR = (0, 0, 0, 0)

_Plan = tuple[RenditionSpec, tuple[int, int], tuple[int, int]]


def still_reason(
    facts: ImageFacts, spec: RenditionSpec, size: tuple[int, int], settings: RenderSettings
) -> str | None:
    """Why a rendition of `size` is the first frame of an animated source; None when it
    is animated, or when the source is not an animation."""
    if facts.format == "AVIF" and facts.frames > 1:
        return STILL_SOURCE
    if not facts.animated:
        return None
    if spec.format != _ANIMATED_OUTPUT:
        return STILL_FORMAT
    if facts.frames * size[0] * size[1] > settings.max_animated_pixels:
        return STILL_BUDGET
    return None


def animated_plans(facts: ImageFacts, settings: RenderSettings) -> list[_Plan | None]:
    """Per rendition, in order: (spec, size as displayed, size as stored) when it moves,
    None when it is a still."""
    if not facts.animated:
        return [None] * len(settings.renditions)
    return [
        plan if still_reason(facts, plan[0], plan[1], settings) is None else None
        for plan in imaging._plan(facts.width, facts.height, facts.orientation, settings)
    ]


@dataclass(frozen=True)
class _Animation:
    data: bytes
    frames: int
    duration_ms: int
    loop: int


def render_animated(
    data: bytes,
    formats: tuple[str, ...],
    facts: ImageFacts,
    plans: list[_Plan],
    settings: RenderSettings,
    boxes: Mapping[str, tuple[float, float, float, float]] | None = None,
) -> list[RenderedImage]:
    """One animated WebP per plan; plans of one size, window and quality share one
    encode. `boxes` holds each cover rendition's window in the source canvas: every
    frame is cut with it, the way `imaging` cuts the first frame."""
    made: dict[tuple[object, ...], _Animation] = {}
    rendered = []
    for spec, out, stored in plans:
        box = (boxes or {}).get(spec.name) if spec.cover else None
        key = (out, stored, spec.quality, box)
        if key not in made:
            made[key] = _animate(data, formats, facts, out, stored, spec.quality, settings, box)
        animation = made[key]
        rendered.append(
            RenderedImage(
                spec,
                animation.data,
                *out,
                frames=animation.frames,
                duration_ms=animation.duration_ms,
                loop=animation.loop,
            )
        )
    return rendered


def _animate(
    data: bytes,
    formats: tuple[str, ...],
    facts: ImageFacts,
    out: tuple[int, int],
    stored: tuple[int, int],
    quality: int,
    settings: RenderSettings,
    box: tuple[float, float, float, float] | None = None,
) -> _Animation:
    imaging._register_plugin(_ANIMATED_OUTPUT)
    with imaging._open(data, formats) as source:
        # An APNG whose IDAT image comes before the first fcTL shows that image only
        # where APNG is not understood; the animation proper starts at the next frame.
        first = 1 if source.info.get("default_image") else 0
        frames = _FrameSequence(
            _frames(source, first, facts, stored, settings, box),
            facts.frames - first,
            out,
            "RGBA" if facts.has_alpha else "RGB",
        )
        loop = _loop(source.info.get("loop"))
        encoded = io.BytesIO()
        # The sequence carries no info: no EXIF, XMP or ICC profile reaches the writer.
        frames.save(
            encoded,
            _ANIMATED_OUTPUT,
            save_all=True,
            duration=frames.durations,
            loop=loop,
            quality=quality,
            method=settings.webp_method,
            # No key frames: libwebp would encode every frame a second time as a
            # candidate key frame, 20-37 % of the time for files no smaller (measured
            # in docs/imaging.md); browsers play animations from the start anyway.
            kmin=0,
            kmax=0,
        )
    data, count = _every_frame_kept(
        encoded.getvalue(), frames.durations, frames.translucent, out, loop
    )
    return _Animation(data, count, round(sum(frames.durations)), loop)


def _loop(value: object) -> int:
    """The WebP loop count (0 = forever) for a source's `info["loop"]`.

    Kept as Pillow reports it. A GIF without a NETSCAPE extension has none and plays
    once, which WebP spells 1.
    """
    if not isinstance(value, int):
        return 1
    return min(max(value, 0), _MAX_LOOP)


def _frames(
    source: ImageFile,
    first: int,
    facts: ImageFacts,
    stored: tuple[int, int],
    settings: RenderSettings,
    box: tuple[float, float, float, float] | None = None,
) -> Iterator[tuple[Image.Image, float]]:
    """Each frame from `first` on, composited, resized, sRGB and upright, with its
    duration in milliseconds."""
    canvas = (facts.width, facts.height)
    method = imaging._TRANSPOSE.get(facts.orientation)
    profile = source.info.get("icc_profile")
    converters: dict[str, Callable[[Image.Image], Image.Image]] = {}
    for index in range(first, facts.frames):
        try:
            source.seek(index)
            if source.size != canvas:
                _check_grown_canvas(source.size, facts, settings)
            source.load()
        except imaging._DECODE_ERRORS as exc:
            msg = imaging._corrupt_message(f"frame {index}", exc)
            raise CorruptImage(msg) from exc
        duration = source.info.get("duration")
        work = imaging._normalise(source)
        if work.size != canvas:
            work = work.crop((0, 0, *canvas))
        if work.mode not in converters:
            straight = imaging._STRAIGHT.get(work.mode, work.mode)
            converters[work.mode] = srgb_converter(
                straight, profile if isinstance(profile, bytes) and profile else None
            )
        frame = _shrink(work, stored, converters[work.mode], box)
        if method is not None:
            frame = frame.transpose(method)
        yield frame, float(duration) if isinstance(duration, int | float) else 0.0


def _check_grown_canvas(size: tuple[int, int], facts: ImageFacts, settings: RenderSettings) -> None:
    """A GIF frame reaching past the logical screen grows Pillow's canvas for the rest
    of the animation; the animation budget applies to the grown size too (the frame is
    cropped back to the screen afterwards, as browsers clip it)."""
    grown = size[0] * size[1] * facts.frames
    if grown > settings.max_animation_pixels:
        msg = (
            f"a frame grows the {facts.width}x{facts.height} canvas to {size[0]}x{size[1]}: "
            f"{facts.frames} frames of it are {grown} pixels; the animation budget is "
            f"{settings.max_animation_pixels}"
        )
        raise DecodeTooLarge(msg)


def _shrink(
    work: Image.Image,
    stored: tuple[int, int],
    to_srgb: Callable[[Image.Image], Image.Image],
    box: tuple[float, float, float, float] | None = None,
) -> Image.Image:
    """A new image of `stored` size in sRGB (of `box` only, when given): never the
    decoder's own, which the next frame is composited onto."""
    if box is None and work.size == stored:
        return to_srgb(work.copy())
    if work.mode in imaging._PREMULTIPLIED:
        # As for stills: transparent pixels carry no colour into their neighbours.
        work = work.convert(imaging._PREMULTIPLIED[work.mode])
    small = work.resize(
        stored, Image.Resampling.LANCZOS, box=box, reducing_gap=imaging._REDUCING_GAP
    )
    if small.mode in imaging._STRAIGHT:
        small = small.convert(imaging._STRAIGHT[small.mode])
    return to_srgb(small)


# ------------------------------------------------------------------ the container

# VP8X flag bits (WebP container specification).
_ALPHA_FLAG = 0x10
_ANIMATION_FLAG = 0x02
# The chunks of a still image's pixels, which an ANMF frame carries.
_IMAGE_CHUNKS = (b"ALPH", b"VP8 ", b"VP8L")


def _every_frame_kept(
    data: bytes, durations: list[float], translucent: bool, size: tuple[int, int], loop: int
) -> tuple[bytes, int]:
    """libwebp's animated WebP with one frame per source frame, and honest about alpha.

    Two things libwebp's animation encoder does are put right in the container:

    * A frame whose pixels all lie within the lossy tolerance of the one before is not
      stored; the earlier frame's duration grows instead (and when every frame looks
      like the first, the file becomes a still). The picture over time is the same,
      but frame count and durations no longer match the source. Each such frame is
      put back as the no-op frame libwebp itself writes when a duration overflows: one
      fully transparent pixel blended over the canvas.
    * Pixels as transparent as its initial canvas are left out of every frame, and the
      VP8X alpha flag is set only when a stored frame has an alpha channel: when the
      transparent area never changes, no frame has one, and readers that trust the
      flag (Pillow's among them) paint the area opaque black. The flag is set whenever
      a frame had a pixel that was not opaque.

    Returns the file and its number of frames.
    """
    # The start times libwebp was given (Pillow rounds the running total).
    starts, elapsed = [], 0.0
    for duration in durations:
        starts.append(round(elapsed))
        elapsed += duration
    starts.append(round(elapsed))
    # Views, not copies: the file can be tens of MB, and is joined once at the end.
    chunks = list(_chunks(memoryview(data)))
    stored = [payload for fourcc, payload in chunks if fourcc == b"ANMF"]
    if not stored:
        image = b"".join(b"".join(_chunk(f, p)) for f, p in chunks if f in _IMAGE_CHUNKS)
        header = bytes(6) + _sides(size) + starts[-1].to_bytes(3, "little") + b"\0"
        stored = [memoryview(header + image)]
    anim = next((p for f, p in chunks if f == b"ANIM"), bytes(4) + loop.to_bytes(2, "little"))
    frames: list[list[bytes | memoryview]] = []
    shown = 0
    for payload in stored:
        if shown == len(durations):
            return data, len(stored)
        end = starts[shown] + int.from_bytes(payload[12:15], "little")
        covered = 1
        while shown + covered < len(durations) and starts[shown + covered] < end:
            covered += 1
        spans = [starts[i + 1] - starts[i] for i in range(shown, shown + covered)]
        frames.append([payload[:12], spans[0].to_bytes(3, "little"), payload[15:]])
        frames += [[_noop_frame(span)] for span in spans[1:]]
        shown += covered
    if shown != len(durations):
        # Not the frames it was given: keep libwebp's file rather than guess.
        return data, len(stored)
    alpha = translucent or len(frames) > len(stored) or any(f == b"ALPH" for f, _ in chunks)
    flags = _ANIMATION_FLAG | (_ALPHA_FLAG if alpha else 0)
    parts = [*_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + _sides(size)), *_chunk(b"ANIM", anim)]
    for frame in frames:
        parts += _chunk(b"ANMF", *frame)
    body = sum(len(part) for part in parts) + 4
    return b"".join([b"RIFF", body.to_bytes(4, "little"), b"WEBP", *parts]), len(frames)


def _chunks(data: memoryview) -> Iterator[tuple[bytes, memoryview]]:
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        yield bytes(data[pos : pos + 4]), data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)


def _chunk(fourcc: bytes, *payload: bytes | memoryview) -> list[bytes | memoryview]:
    """A RIFF chunk as the parts to join: header, payload pieces, padding."""
    size = sum(len(piece) for piece in payload)
    return [fourcc, size.to_bytes(4, "little"), *payload, b"\0" * (size & 1)]


def _sides(size: tuple[int, int]) -> bytes:
    return (size[0] - 1).to_bytes(3, "little") + (size[1] - 1).to_bytes(3, "little")


@functools.cache
def _transparent_pixel() -> bytes:
    """The VP8L chunk of one fully transparent pixel, as Pillow's encoder writes it."""
    out = io.BytesIO()
    Image.new("RGBA", (1, 1), _CLEAR).save(out, "WEBP", lossless=True)
    return b"".join(_chunk(*next(_chunks(memoryview(out.getvalue())))))


def _noop_frame(duration: int) -> bytes:
    """An ANMF payload: at (0, 0), 1 x 1, `duration` ms, blended, not disposed."""
    return bytes(12) + duration.to_bytes(3, "little") + b"\0" + _transparent_pixel()


# ---------------------------------------------------------------------- the frames


class _FrameSequence(Image.Image):
    """An animation whose frames are made one at a time, in order, as a writer asks.

    `seek` only records the frame wanted; `load` (which `getim` calls) makes it. Pillow's
    WebP writer seeks back to the frame it started on after the last one and never loads
    it there, so that seek costs nothing. Asking for a frame out of order is a bug.
    """

    def __init__(
        self,
        frames: Iterator[tuple[Image.Image, float]],
        count: int,
        size: tuple[int, int],
        mode: str,
    ) -> None:
        super().__init__()
        self._mode = mode
        self._size = size
        self.n_frames = count
        # The list the writer is handed as `duration`: frame i's entry exists once
        # frame i was made, which is before the writer reads it.
        self.durations: list[float] = []
        # Some frame had a pixel that was not opaque.
        self.translucent = False
        self._frames = frames
        self._wanted = 0

    def tell(self) -> int:
        return self._wanted

    def seek(self, frame: int) -> None:
        self._wanted = frame

    def load(self) -> PixelAccess | None:
        made = len(self.durations)
        if self._wanted == made:
            image, duration = next(self._frames)
            if image.mode != self.mode:
                image = image.convert(self.mode)
            if self.mode == "RGBA" and not self.translucent:
                self.translucent = image.getchannel("A").getextrema() != (255, 255)
            self.im = image.im
            self.durations.append(duration)
        elif self._wanted != made - 1:
            msg = f"frame {self._wanted} asked for after frame {made - 1}; frames are made once"
            raise ValueError(msg)
        return super().load()
