"""Animated renditions: GIF, animated WebP and APNG sources through `imaging.render`.

Every source is made here. GIFs come from Pillow's writer or, where a test needs exact
frame rectangles, disposal methods and transparency, are assembled byte by byte; APNGs
are assembled chunk by chunk. What a browser shows is computed independently from the
raw frames (`browser_gif`, `browser_apng`), so the tests first check that Pillow's
readers composite as browsers do, then hold every rendition frame against Pillow's
composited source frame at the rendition's size.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat, features

from icc_profiles import linear_rgb_profile
from imgpipe import animation, imaging
from imgpipe.errors import CorruptImage, DecodeTooLarge, TooManyFrames
from imgpipe.imaging import render
from imgpipe.specs import (
    STILL_BUDGET,
    STILL_FORMAT,
    STILL_SOURCE,
    RenderedImage,
    RenderSettings,
    RenditionSpec,
)

CLEAR = (0, 0, 0, 0)
GREY = (128, 128, 128)
SCREEN = (80, 60)
# Index 0 is the transparent key of the GIFs below; the rest are what they draw with.
PALETTE = [0, 0, 0, 230, 30, 30, 30, 200, 60, 40, 60, 220, 240, 220, 30, 250, 250, 250]

Frame = tuple[Image.Image, float]


# ----------------------------------------------------------------------------- GIF


@dataclass(frozen=True)
class GifFrame:
    box: tuple[int, int, int, int]  # x, y, width, height
    indices: bytes  # palette indices, row by row
    delay_ms: int = 50
    disposal: int = 1
    transparent: int | None = None
    palette: list[int] | None = None  # a local colour table


def gif_lzw(indices: bytes) -> bytes:
    """Image data a GIF decoder reads back as `indices`: 9-bit literal codes, with a
    clear code before the table would grow to 10 bits."""
    codes: list[int] = []
    for start in range(0, len(indices), 254):
        codes += [256, *indices[start : start + 254]]
    codes.append(257)
    packed, bits, out = 0, 0, bytearray()
    for code in codes:
        packed |= code << bits
        bits += 9
        while bits >= 8:
            out.append(packed & 0xFF)
            packed, bits = packed >> 8, bits - 8
    if bits:
        out.append(packed)
    blocks = b"".join(
        bytes([len(out[i : i + 255])]) + out[i : i + 255] for i in range(0, len(out), 255)
    )
    return b"\x08" + blocks + b"\0"


def build_gif(size: tuple[int, int], frames: list[GifFrame], loop: int | None = None) -> bytes:
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", *size, 0xF7, 0, 0))
    out += bytes(PALETTE).ljust(768, b"\0")
    if loop is not None:
        out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", loop) + b"\0"
    for frame in frames:
        flags = frame.disposal << 2 | (frame.transparent is not None)
        delay = frame.delay_ms // 10
        out += b"\x21\xf9\x04" + struct.pack("<BHB", flags, delay, frame.transparent or 0) + b"\0"
        out += b"\x2c" + struct.pack("<HHHHB", *frame.box, 0) + gif_lzw(frame.indices)
    return bytes(out + b"\x3b")


def gif_lzw_decode(min_code: int, data: bytes) -> list[int]:
    clear = 1 << min_code
    table: list[list[int]] = [[i] for i in range(clear)] + [[], []]
    width, previous, out = min_code + 1, None, list[int]()
    packed = bits = pos = 0
    while True:
        while bits < width:
            if pos == len(data):
                return out
            packed |= data[pos] << bits
            bits, pos = bits + 8, pos + 1
        code, packed, bits = packed & ((1 << width) - 1), packed >> width, bits - width
        if code == clear:
            table, width, previous = table[: clear + 2], min_code + 1, None
            continue
        if code == clear + 1:
            return out
        if code < len(table):
            entry = table[code]
            if previous is not None:
                table.append([*previous, entry[0]])
        else:
            assert previous is not None
            entry = [*previous, previous[0]]
            table.append(entry)
        out += entry
        previous = entry
        if len(table) == 1 << width and width < 12:
            width += 1


def gif_raw_frames(data: bytes) -> tuple[tuple[int, int], list[GifFrame], list[int]]:
    """The logical screen, each frame as stored, and the global palette."""
    width, height, flags = struct.unpack("<HHB", data[6:11])
    pos, palette = 13, []
    if flags & 0x80:
        end = pos + (3 << ((flags & 7) + 1))
        palette, pos = list(data[pos:end]), end
    frames, control = [], (0, 0, None)
    while data[pos] != 0x3B:
        if data[pos] == 0x21:
            start = pos + 2
            if data[pos + 1] == 0xF9:
                packed, delay, key = struct.unpack("<BHB", data[start + 1 : start + 5])
                control = ((packed >> 2) & 7, delay * 10, key if packed & 1 else None)
            while data[start]:
                start += data[start] + 1
            pos = start + 1
            continue
        x, y, w, h, local = struct.unpack("<HHHHB", data[pos + 1 : pos + 10])
        assert not local & 0x40, "interlaced frames are not made here"
        pos, own = pos + 10, None
        if local & 0x80:
            end = pos + (3 << ((local & 7) + 1))
            own, pos = list(data[pos:end]), end
        min_code, pos, stream = data[pos], pos + 1, bytearray()
        while data[pos]:
            stream += data[pos + 1 : pos + 1 + data[pos]]
            pos += data[pos] + 1
        pixels = bytes(gif_lzw_decode(min_code, bytes(stream)))
        disposal, delay, key = control
        frames.append(GifFrame((x, y, w, h), pixels[: w * h], delay, disposal, key, own))
        control, pos = (0, 0, None), pos + 1
    return (width, height), frames, palette


def browser_gif(data: bytes) -> list[Image.Image]:
    """What a browser shows for each frame: the canvas starts transparent, disposal 2
    clears the frame's rectangle to transparent and 3 restores what was there before."""
    size, frames, palette = gif_raw_frames(data)
    canvas, shown = Image.new("RGBA", size, CLEAR), []
    for frame in frames:
        before = canvas.copy()
        x, y, w, h = frame.box
        tile = Image.frombytes("P", (w, h), frame.indices)
        tile.putpalette(frame.palette or palette)
        keep = bytes(0 if i == frame.transparent else 255 for i in frame.indices)
        canvas.paste(tile.convert("RGBA"), (x, y), Image.frombytes("L", (w, h), keep))
        shown.append(canvas.copy())
        if frame.disposal == 2:
            canvas.paste(CLEAR, (x, y, x + w, y + h))
        elif frame.disposal == 3:
            canvas = before
    return shown


def drawn_gif(
    count: int = 36,
    size: tuple[int, int] = (96, 64),
    *,
    loop: int | None = 0,
    disposal: list[int] | int = 1,
    durations: list[int] | None = None,
) -> bytes:
    """Pillow's writer: a block moving over a striped backdrop with a transparent band,
    so every frame differs and Pillow stores only the rectangle that changed."""
    frames = []
    for i in range(count):
        im = Image.new("P", size, 5)
        im.putpalette(PALETTE)
        draw = ImageDraw.Draw(im)
        for x in range(0, size[0], 32):
            draw.rectangle((x, 0, x + 15, size[1]), fill=4)
        draw.rectangle((0, size[1] - 8, size[0], size[1]), fill=0)
        x = (i * 5) % (size[0] - 20)
        draw.rectangle((x, 10 + i % 7, x + 18, 30 + i % 7), fill=1 + i % 3)
        frames.append(im)
    params: dict[str, Any] = {"loop": loop} if loop is not None else {}
    return saved_animation(
        frames,
        "GIF",
        duration=durations or [20 + 10 * (i % 9) for i in range(count)],
        disposal=disposal,
        transparency=0,
        **params,
    )


def block(w: int, h: int, index: int, hole: int | None = None) -> bytes:
    """A w x h tile of one palette index, with a middle of `hole`."""
    inner = index if hole is None else hole
    return bytes(
        inner if w // 4 <= x < 3 * w // 4 and h // 4 <= y < 3 * h // 4 else index
        for y in range(h)
        for x in range(w)
    )


def disposal_gif(first_transparent: bool = True) -> bytes:
    """Partial frames with transparency and every disposal method, on an 80 x 60 screen."""
    row = bytes(0 if first_transparent and x < 8 else 4 + (x // 20) % 2 for x in range(80))
    frames = [
        GifFrame((0, 0, *SCREEN), row * 60, 30, 1, 0 if first_transparent else None),
        GifFrame((10, 10, 20, 16), block(20, 16, 1, hole=0), 40, 2, 0),
        GifFrame((24, 8, 24, 24), block(24, 24, 2, hole=0), 60, 3, 0),
        GifFrame((40, 20, 30, 30), block(30, 30, 3), 20, 1, None),
        GifFrame((0, 40, 20, 20), block(20, 20, 1, hole=0), 70, 2, 0),
        GifFrame((60, 0, 20, 20), block(20, 20, 2, hole=0), 50, 3, 0),
        GifFrame((16, 24, 12, 12), block(12, 12, 3), 30, 1, 0),
    ]
    return build_gif(SCREEN, frames, loop=2)


# ---------------------------------------------------------------------------- APNG

APNG_NONE, APNG_BACKGROUND, APNG_PREVIOUS = 0, 1, 2
APNG_SOURCE, APNG_OVER = 0, 1


@dataclass(frozen=True)
class ApngFrame:
    image: Image.Image  # RGBA
    offset: tuple[int, int]
    dispose: int
    blend: int
    delay: tuple[int, int] = (40, 1000)  # seconds, as a fraction


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def build_apng(size: tuple[int, int], frames: list[ApngFrame], plays: int = 0) -> bytes:
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", *size, 8, 6, 0, 0, 0))
    out += png_chunk(b"acTL", struct.pack(">II", len(frames), plays))
    sequence = 0
    for i, frame in enumerate(frames):
        w, h = frame.image.size
        control = (sequence, w, h, *frame.offset, *frame.delay, frame.dispose, frame.blend)
        out += png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", *control))
        rows = frame.image.tobytes()
        data = zlib.compress(b"".join(b"\0" + rows[y * w * 4 : (y + 1) * w * 4] for y in range(h)))
        if i == 0:
            out += png_chunk(b"IDAT", data)
            sequence += 1
        else:
            out += png_chunk(b"fdAT", struct.pack(">I", sequence + 1) + data)
            sequence += 2
    return out + png_chunk(b"IEND", b"")


def browser_apng(size: tuple[int, int], frames: list[ApngFrame]) -> list[Image.Image]:
    """The APNG specification's output buffer after each frame."""
    canvas, shown = Image.new("RGBA", size, CLEAR), []
    for i, frame in enumerate(frames):
        x, y = frame.offset
        region = (x, y, x + frame.image.width, y + frame.image.height)
        before = canvas.copy()
        if frame.blend == APNG_SOURCE:
            canvas.paste(frame.image, region)
        else:
            canvas.alpha_composite(frame.image, (x, y))
        shown.append(canvas.copy())
        # A first frame's PREVIOUS is treated as BACKGROUND.
        if frame.dispose == APNG_BACKGROUND or (frame.dispose == APNG_PREVIOUS and i == 0):
            canvas.paste(CLEAR, region)
        elif frame.dispose == APNG_PREVIOUS:
            canvas = before
    return shown


def tile(w: int, h: int, colour: tuple[int, ...], hole: bool = True) -> Image.Image:
    """An opaque tile, with a fully transparent middle when `hole`."""
    im = Image.new("RGBA", (w, h), colour)
    if hole:
        im.paste(CLEAR, (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
    return im


def apng_frames(ops: list[tuple[int, int]]) -> list[ApngFrame]:
    """An 80 x 60 backdrop with a hole, then one tile per (dispose, blend) pair."""
    tiles = [
        (tile(28, 24, (230, 30, 30, 255)), (20, 12)),
        (tile(24, 20, (30, 200, 60, 255)), (8, 4)),
        (tile(20, 24, (40, 60, 220, 255)), (44, 28)),
        (tile(16, 16, (240, 220, 30, 255), hole=False), (60, 4)),
    ]
    frames = [ApngFrame(tile(*SCREEN, (250, 250, 250, 255)), (0, 0), APNG_NONE, APNG_SOURCE)]
    for i, (dispose, blend) in enumerate(ops):
        image, offset = tiles[i % len(tiles)]
        frames.append(ApngFrame(image, offset, dispose, blend, (30 + 10 * i, 1000)))
    return frames


# --------------------------------------------------------------------------- helpers


def spec(size: int, fmt: str = "WEBP", quality: int = 95, name: str | None = None) -> RenditionSpec:
    return RenditionSpec(name or f"{fmt.lower()}{size}", size, fmt, quality)


def settings(*specs: RenditionSpec, **kwargs: Any) -> RenderSettings:
    return RenderSettings(renditions=specs, **kwargs)


def frames_of(data: bytes) -> Iterator[Frame]:
    """Each frame as Pillow composites it, in RGBA, with its duration."""
    with Image.open(io.BytesIO(data)) as im:
        for index in range(getattr(im, "n_frames", 1)):
            im.seek(index)
            im.load()
            yield im.convert("RGBA"), float(im.info.get("duration") or 0)


def saved_animation(frames: list[Image.Image], fmt: str, **params: Any) -> bytes:
    """`frames` saved as one animated file by Pillow's writer for `fmt`."""
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], **params)
    return out.getvalue()


def animated_webp(frames: list[Image.Image], durations: list[int], **params: Any) -> bytes:
    return saved_animation(frames, "WEBP", duration=durations, **params)


def on_grey(im: Image.Image) -> Image.Image:
    """What an RGBA frame looks like on a grey page."""
    page = Image.new("RGBA", im.size, (*GREY, 255))
    return Image.alpha_composite(page, im.convert("RGBA")).convert("RGB")


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """The largest per-channel mean absolute difference."""
    assert a.size == b.size
    return max(ImageStat.Stat(ImageChops.difference(a, b)).mean)


def beyond_codec(
    got: Image.Image, want: Image.Image, fmt: str = "WEBP", quality: int = 95
) -> float:
    """How much further `got` is from `want` than `want` itself encoded the same way:
    what the pipeline adds to the codec's own loss (4:2:0 chroma on saturated edges
    alone costs several levels at these sizes)."""
    out = io.BytesIO()
    params: dict[str, Any] = {"quality": quality}
    if fmt == "JPEG":
        params["subsampling"] = "4:2:0"
    reference = want.convert("RGB") if fmt == "JPEG" else want
    reference.save(out, fmt, **params)
    coded = Image.open(out).convert("RGBA")
    return mean_difference(on_grey(got), on_grey(want)) - mean_difference(
        on_grey(coded), on_grey(want)
    )


def frame_count(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as im:
        return int(getattr(im, "n_frames", 1))


def same_composite(a: Image.Image, b: Image.Image) -> bool:
    """Equal where visible: colour under full transparency does not count."""
    return ImageChops.difference(a.convert("RGBa"), b.convert("RGBa")).getbbox() is None


def only(rendered: list[RenderedImage]) -> RenderedImage:
    assert len(rendered) == 1
    return rendered[0]


def apng_plays(data: bytes) -> int:
    at = data.index(b"acTL")
    return int(struct.unpack(">I", data[at + 8 : at + 12])[0])


# ------------------------------------------- the readers composite as browsers do


def test_given_gif_with_disposal_2_and_3_when_decoded_then_pillow_shows_what_browsers_do() -> None:
    # Given a GIF whose partial frames use transparency and every disposal method
    data = disposal_gif()
    _, raw, _ = gif_raw_frames(data)
    assert {f.disposal for f in raw} >= {1, 2, 3}
    assert any(f.box[2:] != SCREEN for f in raw)
    # When Pillow seeks through it
    decoded = [frame for frame, _ in frames_of(data)]
    # Then each frame is the browser's composite, pixel for pixel
    expected = browser_gif(data)
    assert len(decoded) == len(expected) == 7
    for index, (got, want) in enumerate(zip(decoded, expected, strict=True)):
        assert same_composite(got, want), index


def test_given_gif_written_by_pillow_with_disposal_when_decoded_then_browsers_frames() -> None:
    # Given Pillow's own writer storing changed rectangles with disposal 1, 2 and 3
    data = drawn_gif(24, disposal=[1, 2, 3] * 8)
    _, raw, _ = gif_raw_frames(data)
    assert {f.disposal for f in raw} == {1, 2, 3}
    assert sum(f.box[2:] != (96, 64) for f in raw) > 10
    # When decoded, Then Pillow's frames are what a browser shows
    for index, ((got, _), want) in enumerate(zip(frames_of(data), browser_gif(data), strict=True)):
        assert same_composite(got, want), index


@pytest.mark.xfail(
    strict=True,
    reason="Pillow 13 fills a disposal-2 area with the transparent index's colour when "
    "the first frame is opaque; browsers clear it (docs/imaging.md, known differences)",
)
def test_given_opaque_first_frame_when_a_later_frame_uses_disposal_2_then_the_area_clears() -> None:
    # Given a GIF whose first frame has no transparency
    data = disposal_gif(first_transparent=False)
    # When decoded, Then the rectangle frame 1 disposes is transparent in frame 2
    decoded = [frame for frame, _ in frames_of(data)]
    assert same_composite(decoded[2], browser_gif(data)[2])


SUPPORTED_APNG_OPS = [
    [(APNG_NONE, APNG_SOURCE), (APNG_BACKGROUND, APNG_SOURCE), (APNG_PREVIOUS, APNG_SOURCE)],
    [(APNG_BACKGROUND, APNG_OVER), (APNG_NONE, APNG_OVER), (APNG_PREVIOUS, APNG_SOURCE)],
    [(APNG_PREVIOUS, APNG_SOURCE), (APNG_NONE, APNG_OVER), (APNG_BACKGROUND, APNG_OVER)],
    [(APNG_NONE, APNG_OVER), (APNG_PREVIOUS, APNG_SOURCE), (APNG_BACKGROUND, APNG_SOURCE)],
]


@pytest.mark.parametrize("ops", SUPPORTED_APNG_OPS)
def test_given_apng_dispose_and_blend_ops_when_decoded_then_pillow_follows_the_specification(
    ops: list[tuple[int, int]],
) -> None:
    # Given an APNG of partial tiles with holes over a backdrop with a hole
    frames = apng_frames([*ops, (APNG_NONE, APNG_OVER)])
    data = build_apng(SCREEN, frames)
    # When Pillow seeks through it, Then every frame is the specification's buffer
    decoded = [frame for frame, _ in frames_of(data)]
    for index, (got, want) in enumerate(zip(decoded, browser_apng(SCREEN, frames), strict=True)):
        assert same_composite(got, want), (ops, index)


@pytest.mark.xfail(
    strict=True,
    reason="Pillow 13 blends APNG OP_OVER with the source alpha as a paste mask: a "
    "half-transparent pixel over an opaque one comes out half-transparent (docs/imaging.md)",
)
def test_given_half_transparent_apng_tile_blended_over_when_decoded_then_canvas_stays_opaque() -> (
    None
):
    frames = [
        ApngFrame(tile(*SCREEN, (250, 250, 250, 255), hole=False), (0, 0), APNG_NONE, APNG_SOURCE),
        ApngFrame(Image.new("RGBA", (20, 20), (230, 30, 30, 128)), (10, 10), APNG_NONE, APNG_OVER),
    ]
    decoded = [frame for frame, _ in frames_of(build_apng(SCREEN, frames))]
    assert same_composite(decoded[1], browser_apng(SCREEN, frames)[1])


@pytest.mark.xfail(
    strict=True,
    reason="Pillow 13 does not undo an APNG frame blended OP_OVER and disposed OP_PREVIOUS "
    "when the next frame overlaps it (docs/imaging.md)",
)
def test_given_apng_tile_blended_over_and_disposed_to_previous_when_next_frame_then_gone() -> None:
    frames = apng_frames([(APNG_PREVIOUS, APNG_OVER), (APNG_NONE, APNG_SOURCE)])
    decoded = [frame for frame, _ in frames_of(build_apng(SCREEN, frames))]
    assert same_composite(decoded[2], browser_apng(SCREEN, frames)[2])


# ------------------------------------------------------- timing, loop, frame count


@pytest.mark.parametrize(("loop", "plays"), [(0, 0), (3, 3), (None, 1)])
def test_given_animated_gif_when_rendered_then_webp_keeps_every_frame_its_duration_and_loop(
    loop: int | None, plays: int
) -> None:
    # Given 36 frames with durations from 20 to 100 ms, looping forever, 3 or no loop
    # extension (which plays once)
    durations = [20 + 10 * (i % 9) for i in range(36)]
    data = drawn_gif(36, loop=loop, durations=durations)
    # When rendered to WebP
    _, rendered = render(data, settings(spec(48)))
    item = only(rendered)
    # Then every frame is there with its duration, and the play count is kept
    assert frame_count(item.data) == 36
    assert [round(d) for _, d in frames_of(item.data)] == durations
    assert Image.open(io.BytesIO(item.data)).info["loop"] == plays
    assert (item.frames, item.duration_ms, item.loop, item.still_reason) == (
        36,
        sum(durations),
        plays,
        None,
    )


def test_given_apng_with_fractional_delays_when_rendered_then_durations_stay_within_a_ms() -> None:
    # Given an APNG at 30 fps (33.3 ms per frame) playing twice
    frames = [replace(f, delay=(1, 30)) for f in apng_frames([(APNG_NONE, APNG_SOURCE)] * 30)]
    data = build_apng(SCREEN, frames, plays=2)
    source = [d for _, d in frames_of(data)]
    assert source[0] == pytest.approx(33.33, abs=0.01)
    # When rendered
    item = only(render(data, settings(spec(32)))[1])
    # Then each frame keeps its time to the millisecond and nothing drifts
    got = [d for _, d in frames_of(item.data)]
    assert len(got) == 31
    assert all(abs(g - s) <= 1 for g, s in zip(got, source, strict=True))
    assert item.duration_ms == round(sum(source)) == 1033
    assert Image.open(io.BytesIO(item.data)).info["loop"] == apng_plays(data) == 2


def test_given_frames_that_look_alike_at_the_rendition_size_when_rendered_then_all_are_kept() -> (
    None
):
    # Given 12 frames that differ only by a one-pixel dot, gone at a tenth of the size
    frames = []
    for i in range(12):
        frame = Image.new("RGB", (200, 100), (250, 250, 250))
        frame.putpixel((20 + i * 10, 50), (230, 30, 30))
        frames.append(frame)
    durations = [40 + 10 * (i % 3) for i in range(12)]
    data = animated_webp(frames, durations, lossless=True)
    small = [f.resize((20, 10), Image.Resampling.LANCZOS) for f in frames]
    # (libwebp alone folds such frames into one, adding up their durations)
    assert frame_count(animated_webp(small, durations, quality=95)) < 12
    # When rendered at 20 x 10
    item = only(render(data, settings(spec(20)))[1])
    # Then every frame is there, with its own duration, and still shows the picture
    assert item.frames == frame_count(item.data) == 12
    rendition = list(frames_of(item.data))
    assert [d for _, d in rendition] == durations
    for (got, _), want in zip(rendition, small, strict=True):
        assert got.getchannel("A").getextrema() == (255, 255)
        assert beyond_codec(got, want.convert("RGBA")) < 1


def test_given_zero_and_missing_delays_when_rendered_then_they_stay_zero() -> None:
    # Given a GIF with frames of 0 ms between timed ones
    durations = [0, 0, 50, 0, 30, 0]
    data = drawn_gif(6, durations=durations)
    # When rendered, Then Pillow's reading of the source is kept as it is
    item = only(render(data, settings(spec(32)))[1])
    assert [d for _, d in frames_of(item.data)] == durations
    assert item.duration_ms == 80


# ------------------------------------------------------------------ the pictures


def composited_sources() -> dict[str, bytes]:
    webp_frames = [tile(60, 40, (250, 250, 250, 255)).copy() for _ in range(12)]
    for i, frame in enumerate(webp_frames):
        ImageDraw.Draw(frame).ellipse((i * 3, 4, i * 3 + 20, 30), fill=(230, 30, 30, 255))
    return {
        "gif with disposal": disposal_gif(),
        "gif by pillow": drawn_gif(24, disposal=[1, 2, 3] * 8),
        "apng with ops": build_apng(SCREEN, apng_frames(SUPPORTED_APNG_OPS[1] * 3)),
        "webp": animated_webp(webp_frames, [40 + i for i in range(12)], lossless=True),
    }


@pytest.mark.parametrize("name", list(composited_sources()))
def test_given_animation_when_rendered_then_every_frame_is_the_composited_source_frame_resized(
    name: str,
) -> None:
    # Given an animation whose frames are partial rectangles composited by the reader
    data = composited_sources()[name]
    source = list(frames_of(data))
    # When rendered to a WebP half its size
    box = max(source[0][0].size) // 2
    item = only(render(data, settings(spec(box)))[1])
    rendition = list(frames_of(item.data))
    # Then each frame is Pillow's composited source frame, resized: the same picture on
    # a page and the same transparency, within the codec's error
    assert len(rendition) == len(source) == item.frames
    for index, ((got, _), (want, _)) in enumerate(zip(rendition, source, strict=True)):
        want = want.resize(got.size, Image.Resampling.LANCZOS)
        assert beyond_codec(got, want) < 1, (name, index)
        assert mean_difference(got.getchannel("A"), want.getchannel("A")) < 2, (name, index)


def test_given_transparent_areas_when_rendered_then_webp_frames_keep_them_transparent() -> None:
    # Given a GIF with a transparent band along its bottom edge in every frame
    data = drawn_gif(12, size=(96, 64))
    # When rendered
    item = only(render(data, settings(spec(48)))[1])
    # Then the band is transparent and the rest opaque in every frame
    for frame, _ in frames_of(item.data):
        # (Lanczos rings by a level or two next to the band's edge)
        assert frame.getchannel("A").crop((0, 29, 48, 32)).getextrema() in {(0, 0), (0, 1), (0, 2)}
        assert frame.getchannel("A").crop((0, 0, 48, 24)).getextrema() == (255, 255)


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [((96, 64), 48, (48, 32)), ((30, 91), 64, (21, 64)), ((40, 30), 320, (40, 30))],
)
def test_given_shape_when_rendered_then_every_frame_has_the_size_rule_size(
    size: tuple[int, int], box: int, expected: tuple[int, int]
) -> None:
    # Given animations of several shapes; When rendered into a box
    item = only(render(drawn_gif(8, size=size), settings(spec(box)))[1])
    # Then the size is the still rule's (never upscaled), in the record and the file
    assert expected == imaging._fit(*size, box, allow_upscale=False)
    assert (item.width, item.height) == expected
    assert {frame.size for frame, _ in frames_of(item.data)} == {expected}


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "AVIF"])
def test_given_animation_when_rendered_as_a_still_format_then_it_is_the_first_frame(
    fmt: str,
) -> None:
    if fmt == "AVIF" and not features.check("avif"):
        pytest.skip("Pillow without AVIF")
    # Given an animated GIF
    data = drawn_gif(10)
    first = next(frames_of(data))[0]
    # When rendered to a format the pipeline does not animate
    item = only(render(data, settings(spec(48, fmt)))[1])
    # Then the rendition is the first frame, and says why
    out = Image.open(io.BytesIO(item.data))
    assert frame_count(item.data) == 1
    want = first.resize(out.size, Image.Resampling.LANCZOS)
    if fmt == "JPEG":
        # flattened onto the white background, as JPEG renditions are
        want = Image.alpha_composite(Image.new("RGBA", want.size, (255, 255, 255, 255)), want)
    assert beyond_codec(out.convert("RGBA"), want, fmt) < 1
    assert (item.frames, item.duration_ms, item.loop, item.still_reason) == (
        1,
        None,
        None,
        STILL_FORMAT,
    )


def test_given_avif_sequence_when_rendered_then_first_frame_because_of_its_format() -> None:
    if not features.check("avif"):
        pytest.skip("Pillow without AVIF")
    # Given a three-frame AVIF sequence, red then green then blue
    frames = [Image.new("RGB", (32, 32), c) for c in ((230, 30, 30), (30, 200, 60), (40, 60, 220))]
    # When rendered to WebP
    facts, rendered = render(saved_animation(frames, "AVIF", duration=100), settings(spec(16)))
    item = only(rendered)
    # Then the rendition is the red first frame, and says the source format is why
    assert facts.frames == 3
    assert (item.frames, item.still_reason) == (1, STILL_SOURCE)
    red = Image.open(io.BytesIO(item.data)).convert("RGB").getpixel((8, 8))
    assert isinstance(red, tuple)
    assert red[0] > 180


def test_given_still_source_when_rendered_then_no_animation_fields() -> None:
    # Given a one-frame GIF; When rendered to WebP
    data = drawn_gif(1)
    item = only(render(data, settings(spec(48)))[1])
    # Then nothing says it moves, or why it does not
    assert (item.frames, item.duration_ms, item.loop, item.still_reason) == (1, None, None, None)


# ----------------------------------------------------------------------- the cap


def test_given_cap_between_two_renditions_when_rendered_then_the_larger_is_the_first_frame() -> (
    None
):
    # Given 20 frames of 96 x 64, a thumb (48 x 32: 30,720 animated pixels) and a large
    # rendition (96 x 64: 122,880), and a cap between the two
    data = drawn_gif(20)
    cap = 20 * 48 * 32
    # When rendered
    _, (thumb, large) = render(
        data, settings(spec(48, name="thumb"), spec(200, name="large"), max_animated_pixels=cap)
    )
    # Then the thumb moves and the large rendition is the first frame, saying why
    assert (thumb.frames, thumb.still_reason) == (20, None)
    assert (large.frames, large.duration_ms, large.loop) == (1, None, None)
    assert large.still_reason == STILL_BUDGET
    out = Image.open(io.BytesIO(large.data))
    assert frame_count(large.data) == 1
    assert beyond_codec(out.convert("RGBA"), next(frames_of(data))[0]) < 1


def test_given_cap_of_zero_when_rendered_then_no_rendition_moves() -> None:
    _, rendered = render(drawn_gif(6), settings(spec(48), spec(64), max_animated_pixels=0))
    assert [(r.frames, r.still_reason) for r in rendered] == [(1, STILL_BUDGET)] * 2


def test_given_renditions_of_one_size_and_quality_when_rendered_then_one_pass_encodes_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a 96 x 64 GIF and three WebP boxes, two of which it fits whole
    opened: list[int] = []
    original = imaging._open

    def counting_open(data: bytes, formats: tuple[str, ...]) -> Any:
        opened.append(len(data))
        return original(data, formats)

    monkeypatch.setattr(imaging, "_open", counting_open)
    # When rendered
    _, (thumb, medium, large) = render(
        drawn_gif(8), settings(spec(48), spec(1024, name="m"), spec(2048, name="l"))
    )
    # Then the first frame's decode and one pass per distinct animation: three opens,
    # and the two full-size renditions are the same file
    assert len(opened) == 3
    assert medium.data == large.data
    assert thumb.frames == medium.frames == 8


# ------------------------------------------------------------------ budgets


def test_given_more_frames_than_the_budget_when_rendered_then_too_many_frames() -> None:
    # Given 12 frames against a budget of 11, counted by Pillow (a header that lied)
    data = drawn_gif(12)
    # When rendered, Then the upload is refused, not flattened to its first frame
    with pytest.raises(TooManyFrames):
        render(data, settings(spec(48), max_frames=11))
    assert only(render(data, settings(spec(48), max_frames=12))[1]).frames == 12


def test_given_frames_times_pixels_over_the_budget_when_rendered_then_decode_too_large() -> None:
    data = drawn_gif(10, size=(96, 64))
    with pytest.raises(DecodeTooLarge):
        render(data, settings(spec(48), max_animation_pixels=10 * 96 * 64 - 1))
    assert only(render(data, settings(spec(48), max_animation_pixels=10 * 96 * 64))[1]).frames == 10


# -------------------------------------------------------------- sources and edges


def test_given_apng_whose_default_image_is_not_a_frame_when_rendered_then_poster_only() -> None:
    # Given an APNG whose IDAT image precedes the animation (shown where APNG is not
    # understood), then three frames
    frames = [tile(40, 30, (240, 220, 30, 255), hole=False)] + [
        tile(40, 30, colour, hole=False)
        for colour in ((230, 30, 30, 255), (30, 200, 60, 255), (40, 60, 220, 255))
    ]
    data = saved_animation(frames, "PNG", duration=[40, 50, 60], default_image=True)
    # When rendered to WebP and JPEG
    facts, (moving, poster) = render(data, settings(spec(20), spec(20, "JPEG")))
    # Then the animation has the three frames and the JPEG is the default image
    assert facts.frames == 4
    assert moving.frames == 3
    colours = [frame.convert("RGB").getpixel((10, 7)) for frame, _ in frames_of(moving.data)]
    assert [c.index(max(c)) for c in colours if isinstance(c, tuple)] == [0, 1, 2]
    yellow = Image.open(io.BytesIO(poster.data)).convert("RGB").getpixel((10, 7))
    assert isinstance(yellow, tuple)
    assert yellow[0] > 200
    assert yellow[1] > 180
    assert yellow[2] < 90


def test_given_animated_webp_with_exif_orientation_when_rendered_then_every_frame_is_upright() -> (
    None
):
    # Given a landscape animation stored with orientation 6 (shown rotated clockwise):
    # a red mark in the stored top-left corner lands in the displayed top-right corner
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [Image.new("RGB", (60, 40), (250, 250, 250)) for _ in range(5)]
    for i, frame in enumerate(frames):
        frame.paste((230, 30, 30), (0, 0, 12, 10))
        frame.paste((40, 60, 220), (30 + i * 4, 20, 36 + i * 4, 26))
    data = animated_webp(frames, [50] * 5, exif=exif.tobytes(), lossless=True)
    # When rendered
    facts, rendered = render(data, settings(spec(30)))
    item = only(rendered)
    # Then every frame is portrait, with the mark top right
    assert facts.orientation == 6
    assert (item.width, item.height) == (20, 30)
    for frame, _ in frames_of(item.data):
        assert frame.size == (20, 30)
        red = frame.getpixel((17, 2))
        assert isinstance(red, tuple)
        assert red[0] > 180
        assert red[1] < 90


def test_given_animation_with_icc_profile_and_metadata_when_rendered_then_srgb_pixels_only() -> (
    None
):
    # Given an animated WebP tagged linear-light RGB, with EXIF and XMP, in mid grey
    frames = [Image.new("RGB", (40, 30), (128, 128, 128)) for _ in range(4)]
    for i, frame in enumerate(frames):
        frame.paste((0, 0, 0), (i * 8, 0, i * 8 + 4, 4))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"
    data = animated_webp(
        frames,
        [50] * 4,
        lossless=True,
        icc_profile=linear_rgb_profile(),
        exif=exif.tobytes(),
        xmp=b"<x:xmpmeta>SecretAuthor</x:xmpmeta>",
    )
    # When rendered
    facts, rendered = render(data, settings(spec(40)))
    item = only(rendered)
    # Then every frame is converted (linear 0.5 is sRGB ~188, not 128) ...
    assert facts.icc_profile
    for frame, _ in frames_of(item.data):
        grey = frame.getpixel((20, 20))
        assert isinstance(grey, tuple)
        assert all(abs(v - 188) <= 4 for v in grey[:3])
    # ... and the file carries pixels only
    out = Image.open(io.BytesIO(item.data))
    assert not {"icc_profile", "exif", "xmp"} & set(out.info)
    for marker in (b"ICCP", b"EXIF", b"XMP ", b"SpyCam", b"SecretAuthor"):
        assert marker not in item.data


def test_given_truncated_animation_when_rendered_then_corrupt_image() -> None:
    data = drawn_gif(20)
    with pytest.raises(CorruptImage):
        render(data[: len(data) * 2 // 3], settings(spec(48)))


def test_frames_are_made_once_and_in_order() -> None:
    # The writer's protocol the sequence relies on: a frame asked for out of order is a
    # bug, not a silent re-decode
    made = iter([(Image.new("RGB", (4, 4)), 10.0), (Image.new("RGB", (4, 4)), 20.0)])
    sequence = animation._FrameSequence(made, 2, (4, 4), "RGB")
    sequence.load()
    sequence.seek(1)
    sequence.load()
    assert sequence.durations == [10.0, 20.0]
    sequence.seek(0)
    with pytest.raises(ValueError, match="made once"):
        sequence.load()


# ----------------------------------------------------------------------- memory

RENDER_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import io, sys
    from PIL import Image
    from imgpipe.imaging import render
    from imgpipe.specs import RenderSettings, RenditionSpec

    def peak_kib():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1])

    sizes = (RenditionSpec("t", 320, "WEBP", 80), RenditionSpec("m", 1024, "WEBP", 80))
    # Imports, plugins and Pillow's block cache warmed as in a warm Lambda
    warm = io.BytesIO()
    still = [Image.new("P", (8, 8), i) for i in (0, 1)]
    still[0].save(warm, "GIF", save_all=True, append_images=still[1:])
    render(warm.getvalue(), RenderSettings(sizes))
    data = open(sys.argv[1], "rb").read()
    before = peak_kib()
    facts, rendered = render(data, RenderSettings(sizes))
    print(facts.frames, *(r.frames for r in rendered), peak_kib() - before)
    """
)


def test_given_a_long_animation_when_rendered_then_peak_memory_far_below_all_its_frames(
    tmp_path: Path,
) -> None:
    # Given 240 different frames of 480 x 360: 158 MiB in RGBA at full size, 70 MiB as
    # 320 x 240 thumbnails
    count, size = 240, (480, 360)
    frames = []
    for i in range(count):
        frame = Image.new("P", size, i % 5 + 1)
        frame.putpalette(PALETTE)
        ImageDraw.Draw(frame).rectangle((i, i % 90, i + 120, i % 90 + 200), fill=(i + 2) % 5 + 1)
        frames.append(frame)
    source = tmp_path / "long.gif"
    frames[0].save(source, "GIF", save_all=True, append_images=frames[1:], duration=40)
    # When both renditions are made in a fresh interpreter
    result = subprocess.run(
        [sys.executable, "-c", RENDER_IN_A_FRESH_PROCESS, str(source)],
        capture_output=True,
        text=True,
        check=True,
    )
    source_frames, thumb_frames, full_frames, grown_kib = map(int, result.stdout.split())
    # Then every frame was made, and the peak grew by far less than a quarter of the
    # thumbnails alone (measured: ~10 MiB)
    assert source_frames == thumb_frames == full_frames == count
    thumbnails_kib = count * 320 * 240 * 4 // 1024
    assert grown_kib < thumbnails_kib // 4


# ------------------------------------------------------------------------ corpus

CORPUS = Path(
    os.environ.get("IMGPIPE_CORPUS") or Path(__file__).resolve().parents[3] / "shared" / "corpus"
)


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["a01_rotating_earth_44f.gif", "a02_wireframe_globe_24f.gif"])
def test_given_real_gif_when_rendered_then_frames_durations_and_pictures_are_kept(
    name: str,
) -> None:
    if not (CORPUS / name).is_file():
        pytest.skip(f"no {name} in the image corpus at {CORPUS}")
    # Given a real animated GIF; When rendered to a 200-pixel WebP
    data = (CORPUS / name).read_bytes()
    source = list(frames_of(data))
    item = only(render(data, settings(spec(200, quality=90)))[1])
    rendition = list(frames_of(item.data))
    # Then every frame keeps its time and picture
    assert len(rendition) == len(source) == item.frames
    for (got, got_ms), (want, want_ms) in zip(rendition, source, strict=True):
        assert abs(got_ms - want_ms) <= 1
        want = want.resize(got.size, Image.Resampling.LANCZOS)
        assert beyond_codec(got, want, quality=90) < 1
