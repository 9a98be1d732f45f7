"""Sample uploads for the local demo, generated on the spot (nothing to license).

Each sample exercises a promise of the pipeline: EXIF rotation, transparency, CMYK,
a tiny image, and a broken upload that must be rejected rather than crash anything.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Sample:
    key: str
    data: bytes
    content_type: str
    description: str


def _scene(width: int, height: int) -> Image.Image:
    """A photo-like test card: a sky gradient, a sun, hills, and a red top-left marker."""
    sky = Image.linear_gradient("L").resize((width, height))
    image = Image.merge(
        "RGB",
        (
            sky.point(lambda v: 40 + v // 3),
            sky.point(lambda v: 90 + v // 3),
            Image.new("L", (width, height), 230),
        ),
    )
    draw = ImageDraw.Draw(image)
    r = min(width, height) // 8
    draw.ellipse(
        (width * 3 // 4 - r, height // 4 - r, width * 3 // 4 + r, height // 4 + r),
        fill=(255, 210, 60),
    )
    draw.polygon(
        [(0, height), (width // 3, height // 2), (width * 2 // 3, height), (0, height)],
        fill=(40, 120, 50),
    )
    draw.polygon(
        [(width // 3, height), (width * 3 // 4, height * 3 // 5), (width, height)],
        fill=(30, 90, 40),
    )
    draw.rectangle((0, 0, width // 10, height // 10), fill=(220, 20, 20))
    return image


def _jpeg(image: Image.Image, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, **params)
    return out.getvalue()


def samples() -> list[Sample]:
    # A 24 MP camera-style JPEG stored sideways with EXIF orientation 6, as phones do.
    stored = _scene(6000, 4000).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "imgpipe sample camera"
    camera = _jpeg(stored, exif=exif.tobytes())

    logo = Image.new("RGBA", (800, 600), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.ellipse((100, 50, 700, 550), fill=(20, 110, 220, 255))
    draw.ellipse((250, 200, 550, 400), fill=(255, 255, 255, 128))
    png = io.BytesIO()
    logo.save(png, "PNG")

    cmyk = _jpeg(_scene(1600, 1067).convert("CMYK"))

    tiny = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 30, 90)).save(tiny, "PNG")

    return [
        Sample(
            "uploads/camera/holiday.jpg", camera, "image/jpeg", "24 MP JPEG, EXIF orientation 6"
        ),
        Sample("uploads/logos/badge.png", png.getvalue(), "image/png", "PNG with transparency"),
        Sample("uploads/print/poster-cmyk.jpg", cmyk, "image/jpeg", "CMYK JPEG"),
        Sample("uploads/icons/pixel.png", tiny.getvalue(), "image/png", "1x1 PNG"),
        Sample(
            "uploads/camera/not-a-photo.jpg",
            b"<html><body>oops</body></html>",
            "image/jpeg",
            "HTML named .jpg (rejected)",
        ),
        Sample(
            "uploads/camera/truncated.jpg",
            camera[: len(camera) // 3],
            "image/jpeg",
            "truncated JPEG (rejected)",
        ),
    ]
