"""Sample uploads for the local demo, generated on the spot (nothing to license).

Each sample exercises a promise of the pipeline: EXIF rotation, transparency, CMYK,
a tiny image, a phone's HEIC, an animation, and broken uploads that must be rejected
rather than crash anything.
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


def _heic(image: Image.Image, **params: object) -> bytes:
    # pillow-heif (a development dependency) only encodes the sample; the pipeline
    # decodes it with pi-heif, as the resize Lambda does.
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(out, quality=80, **params)
    return out.getvalue()


def _phone_photo() -> bytes:
    """What an iPhone saves: HEIC in Display P3, stored sideways with a rotation."""
    stored = _scene(2016, 1512).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # the encoder writes it as the HEIF irot transform
    exif[0x010F] = "imgpipe sample phone"
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 1.5)})
    return _heic(
        stored,
        exif=exif.tobytes(),
        color_primaries=12,  # Display P3
        transfer_characteristics=13,
        matrix_coefficients=6,
    )


def _animation() -> bytes:
    """A ball bouncing over a gradient: 24 frames, uneven timing, looping forever."""
    width, height, r = 400, 240, 28
    backdrop = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    frames = []
    for i in range(24):
        frame = backdrop.copy()
        x = r + (width - 2 * r) * i // 23
        y = height - r - abs(round((height - 2 * r) * (1 - ((i % 12) - 6) ** 2 / 36)))
        ImageDraw.Draw(frame).ellipse((x - r, y - r, x + r, y + r), fill=(230, 60, 40))
        frames.append(frame)
    out = io.BytesIO()
    durations = [40 if i % 12 else 200 for i in range(len(frames))]
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
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
            "uploads/phone/IMG_0001.HEIC",
            _phone_photo(),
            "image/heic",
            "phone HEIC: Display P3, rotated, GPS",
        ),
        Sample("uploads/fun/bounce.gif", _animation(), "image/gif", "animated GIF, 24 frames"),
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
