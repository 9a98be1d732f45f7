"""The benchmark's generated inputs, written once into its cache folder.

* `synthetic_50mp`: a 50 MP camera-like JPEG (what the memory target is about).
* `phone_heic`: a 12 MP HEIC as an iPhone writes it: 4032x3024 stored sideways with an
  EXIF orientation (which the encoder turns into the HEIF `irot` transform), a grid of
  512x512 HEVC tiles, a Display P3 ICC profile, GPS in the EXIF, quality 80.
* `long_animation`: a 500-frame 640x480 GIF, every frame different, uneven frame
  durations, looping forever.

All three are drawn with Pillow; the HEIC's and the animation's randomness comes from
fixed seeds (`random.Random`). The HEIC is encoded with pillow-heif, a development
dependency whose Pillow plugin is never registered, so the only HEIF reader in any
benchmark process is pi-heif's, as in the resize Lambda. A file already in the cache is
used as it is. Method: docs/performance.md.
"""

from __future__ import annotations

import math
import random
import struct
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from PIL import Image

__all__ = [
    "display_p3_icc",
    "long_animation",
    "long_animation_name",
    "phone_heic",
    "phone_heic_name",
    "synthetic_50mp",
]

SYNTHETIC_NAME = "x50_synthetic_50MP.jpg"
SYNTHETIC_SIZE = (8660, 5773)
PHONE_SIZE = (4032, 3024)  # the 12 MP iPhone sensor, stored landscape
PHONE_QUALITY = 80
PHONE_TILE = 512  # Apple encodes a grid of 512x512 HEVC tiles
ANIMATION_SIZE = (640, 480)
ANIMATION_FRAMES = 500
# Frame durations in ms, cycled: uneven on purpose (GIF stores them per frame).
ANIMATION_DURATIONS = (20, 40, 60, 100, 40)

# Display P3 (DCI-P3 primaries, D65 white, the sRGB transfer curve) as a matrix/TRC ICC
# profile: the colorants adapted to the ICC's D50 white, as Apple's and the ICC's
# published Display P3 profiles list them.
_D50 = (0.9642, 1.0, 0.8249)
_P3_COLORANTS = (
    (0.515102, 0.241196, -0.001053),
    (0.291965, 0.692245, 0.041887),
    (0.157153, 0.066561, 0.784072),
)
# The sRGB curve as ICC parametric curve type 3: g, a, b, c, d.
_SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)


def _write(path: Path, write: Callable[[Path], object]) -> Path:
    """Write through a temporary name, so an interrupted run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- 50 MP JPEG


def synthetic_50mp(cache: Path) -> Path:
    """A 50 MP camera-like JPEG: smooth structure, sharp edges, texture and sensor noise."""
    path = cache / SYNTHETIC_NAME
    if path.exists():
        return path
    from PIL import Image, ImageChops, ImageDraw, ImageFilter

    width, height = SYNTHETIC_SIZE
    small = (width // 4, height // 4)
    # Structure: a fractal at quarter size (edges and detail at every scale), coloured.
    fractal = Image.effect_mandelbrot(small, (-0.7454, 0.1130, -0.7446, 0.1136), 100)
    sky = Image.linear_gradient("L").resize(small)
    base = Image.merge(
        "RGB",
        (
            ImageChops.add(fractal, sky.point(lambda v: v // 3)),
            ImageChops.add(fractal.point(lambda v: 255 - v), sky.point(lambda v: v // 4), 2),
            sky.point(lambda v: 60 + v // 2),
        ),
    )
    draw = ImageDraw.Draw(base)
    for i in range(40):
        x = (i * 7919) % small[0]
        draw.line((x, 0, small[0] - x, small[1]), fill=(20 + i * 5, 200 - i * 4, 90), width=3)
    full = base.resize(SYNTHETIC_SIZE, Image.Resampling.BICUBIC)
    # Texture and noise at full resolution, so nothing about it is smooth.
    noise = Image.effect_noise(SYNTHETIC_SIZE, 18).filter(ImageFilter.GaussianBlur(0.6))
    grain = Image.merge("RGB", (noise, noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT), noise))
    photo = ImageChops.add(
        ImageChops.subtract(full, Image.new("RGB", SYNTHETIC_SIZE, (64,) * 3)), grain
    )
    return _write(path, lambda tmp: photo.save(tmp, "JPEG", quality=90, subsampling="4:2:0"))


# ------------------------------------------------------------------------ 12 MP HEIC


def display_p3_icc() -> bytes:
    """Display P3 as a 476-byte ICC v4 display profile (matrix/TRC)."""

    def s15f16(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(value: tuple[float, float, float]) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(s15f16(v) for v in value)

    def mluc(text: str) -> bytes:
        name = text.encode("utf-16-be")
        return b"mluc\0\0\0\0" + struct.pack(">II4sII", 1, 12, b"enUS", len(name), 28) + name

    curve = b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(map(s15f16, _SRGB_CURVE))
    tags = [
        (b"desc", mluc("Display P3")),
        (b"cprt", mluc("No copyright, use freely")),
        (b"wtpt", xyz(_D50)),
        (b"rXYZ", xyz(_P3_COLORANTS[0])),
        (b"gXYZ", xyz(_P3_COLORANTS[1])),
        (b"bXYZ", xyz(_P3_COLORANTS[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    start = 128 + 4 + 12 * len(tags)
    table, body, offsets = b"", b"", {}
    for signature, data in tags:
        if data not in offsets:  # the three curves share one copy
            offsets[data] = start + len(body)
            body += data + b"\0" * (-len(data) % 4)
        table += struct.pack(">4sII", signature, offsets[data], len(data))
    header = (
        struct.pack(
            ">I4sI4s4s4s", start + len(body), b"\0" * 4, 0x04300000, b"mntr", b"RGB ", b"XYZ "
        )
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + b"".join(map(s15f16, _D50))
        + b"\0" * 48
    )
    return header + struct.pack(">I", len(tags)) + table + body


def _octaves(size: tuple[int, int], rng: random.Random, scales: tuple[int, ...]) -> Image.Image:
    """Value noise summed over several scales (coarse first): clouds, foliage, terrain."""
    from PIL import Image, ImageOps

    result: Image.Image | None = None
    for i, scale in enumerate(scales):
        w, h = max(2, size[0] // scale), max(2, size[1] // scale)
        layer = Image.frombytes("L", (w, h), rng.randbytes(w * h))
        layer = layer.resize(size, Image.Resampling.BICUBIC)
        result = layer if result is None else Image.blend(result, layer, 1 / (2 * i + 1))
    assert result is not None
    return ImageOps.autocontrast(result, cutoff=1)


def phone_scene(size: tuple[int, int], seed: int = 2024) -> Image.Image:
    """A photo-like landscape: a sky gradient with clouds, textured hills, buildings
    with lit windows (sharp edges), lens softness and a little sensor grain."""
    from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

    width, height = size
    rng = random.Random(seed)
    ramp = Image.linear_gradient("L").resize(size)
    sky = Image.merge(
        "RGB",
        (
            ramp.point(lambda v: 70 + v // 2),
            ramp.point(lambda v: 120 + v // 3),
            Image.new("L", size, 235),
        ),
    )
    clouds = _octaves(size, rng, (128, 32, 8)).point(lambda v: max(0, v - 140) * 2)
    sky = Image.composite(Image.new("RGB", size, (245, 245, 250)), sky, clouds)
    terrain = _octaves(size, rng, (256, 64, 16, 4))
    land = ImageOps.colorize(terrain, black=(25, 40, 15), mid=(95, 125, 50), white=(215, 200, 150))
    # The skyline: a random walk, scaled with the width.
    walk, y = [], height * 0.45
    for x in range(0, width + 16, 16):
        y = min(max(y + rng.uniform(-12, 12) * width / 1000, height * 0.3), height * 0.6)
        walk.append((x, y))
    ground = Image.new("L", size, 0)
    ImageDraw.Draw(ground).polygon([*walk, (width, height), (0, height)], fill=255)
    image = Image.composite(land, sky, ground)
    draw = ImageDraw.Draw(image)
    step = max(6, width // 250)
    for _ in range(14):
        w, h = rng.randint(width // 40, width // 12), rng.randint(height // 12, height // 3)
        left = rng.randint(0, width - w)
        top = int(height * 0.62) - h + rng.randint(0, height // 10)
        shade = rng.randint(90, 200)
        draw.rectangle((left, top, left + w, top + h), fill=(shade, shade - 10, shade - 25))
        for wx in range(left + step, left + w - step, 2 * step):
            for wy in range(top + step, top + h - step, 2 * step):
                lit = rng.random() < 0.4
                colour = (250, 220, 140) if lit else (40, 45, 60)
                draw.rectangle((wx, wy, wx + step - 2, wy + step - 2), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(0.7))
    grain = Image.frombytes("L", size, rng.randbytes(width * height))
    grain = grain.point(lambda v: 128 + (v - 128) // 64)
    return ImageChops.add(
        ImageChops.subtract(image, Image.new("RGB", size, (8,) * 3)),
        Image.merge("RGB", (grain, grain, grain)),
        1,
        -120,
    )


def phone_heic_name(size: tuple[int, int] = PHONE_SIZE) -> str:
    megapixels = size[0] * size[1] / 1e6
    label = f"{megapixels:.0f}" if megapixels >= 10 else f"{megapixels:.1f}"
    return f"x{round(megapixels):02d}_phone_{label}MP.heic"


def phone_heic(cache: Path, size: tuple[int, int] = PHONE_SIZE) -> Path | None:
    """The phone's HEIC of `phone_scene`; None when pillow-heif (the encoder) is absent."""
    path = cache / phone_heic_name(size)
    if path.exists():
        return path
    try:
        import pillow_heif
    except ImportError:
        return None
    from PIL import Image

    # The sensor's landscape pixels of a portrait shot: the scene turned a quarter,
    # with orientation 6 to turn it back (the encoder writes it as `irot`).
    scene = phone_scene((size[1], size[0])).transpose(Image.Transpose.ROTATE_90)
    scene.info["icc_profile"] = display_p3_icc()
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone (imgpipe benchmark)"
    exif.get_ifd(0x8825).update(
        {1: "N", 2: (52.0, 22.0, 31.5), 3: "E", 4: (4.0, 53.0, 40.2), 6: 12.0}
    )
    heif = pillow_heif.from_pillow(scene)
    return _write(
        path,
        lambda tmp: heif.save(
            tmp, format="HEIF", quality=PHONE_QUALITY, exif=exif.tobytes(), tile_size=PHONE_TILE
        ),
    )


# -------------------------------------------------------------------- long animation


def long_animation_name(frames: int = ANIMATION_FRAMES) -> str:
    width, height = ANIMATION_SIZE
    return f"x00_animation_{width}x{height}_{frames}f.gif"


def long_animation(cache: Path, frames: int = ANIMATION_FRAMES) -> Path:
    """Shapes moving over a diagonal gradient, a progress bar; uneven durations; loop 0.

    Drawn straight in palette mode (192 gradient levels and eight shape colours), so
    every frame has the same palette and nothing is quantised.
    """
    path = cache / long_animation_name(frames)
    if path.exists():
        return path
    from PIL import Image, ImageChops, ImageDraw

    width, height = ANIMATION_SIZE
    levels = 192
    palette = []
    for i in range(levels):
        f = i / (levels - 1)
        palette += [round(20 + 200 * f), round(40 + 150 * f), round(110 + 90 * (1 - f))]
    shapes = [
        (230, 60, 40),
        (250, 210, 60),
        (40, 170, 90),
        (60, 120, 230),
        (240, 240, 240),
        (30, 30, 30),
        (200, 80, 200),
        (250, 140, 30),
    ]
    for colour in shapes:
        palette += colour
    across = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize((width, height))
    down = Image.linear_gradient("L").resize((width, height))
    index = ImageChops.add(across, down, scale=2).point(lambda v: v * (levels - 1) // 255)
    backdrop = Image.frombytes("P", (width, height), index.tobytes())
    backdrop.putpalette(palette)
    images = []
    for i in range(frames):
        frame = backdrop.copy()
        draw = ImageDraw.Draw(frame)
        for k in range(6):
            phase = i * (0.02 + 0.007 * k) + k
            x = width / 2 + (width / 2 - 60) * math.sin(phase * (1 + k % 3))
            y = height / 2 + (height / 2 - 60) * math.cos(phase * 1.3)
            r = 25 + 10 * k
            if k % 2:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=levels + k)
            else:
                draw.rectangle((x - r, y - r * 0.6, x + r, y + r * 0.6), fill=levels + k)
        draw.rectangle(
            (0, height - 8, round(width * i / max(1, frames - 1)), height), fill=levels + 6
        )
        images.append(frame)
    durations = [ANIMATION_DURATIONS[i % len(ANIMATION_DURATIONS)] for i in range(frames)]
    return _write(
        path,
        lambda tmp: images[0].save(
            tmp,
            "GIF",
            save_all=True,
            append_images=images[1:],
            duration=durations,
            loop=0,
        ),
    )
