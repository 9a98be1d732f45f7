"""Quality of rendered outputs: PSNR against a careful reference resize.

The reference is deliberately slow and independent of the pipeline's shortcuts: full
decode (no JPEG draft), `ImageOps.exif_transpose`, ICC profile -> sRGB (littleCMS,
perceptual, as the pipeline promises), alpha composited on white, then one
`resize(LANCZOS)` without `reducing_gap` straight to each output's size. Outputs with an
alpha channel are composited on white too, so every comparison is of what a viewer shows
on a white page (for a JPEG that is exactly what it must contain).

Besides the PSNR, three correctness checks, each only where the source makes it
meaningful: the output is closer to the upright reference than to the stored
(un-rotated) pixels (EXIF orientation), closer to the sRGB-converted reference than to
the unconverted pixels (ICC profile), and closer to the white-composited reference than
to the colour that hides under transparent pixels (alpha). The seed handler fails all
three; `None` means the source does not exercise that check.

Pure Pillow (no numpy): the squared error comes from the histogram of the difference
image.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

from PIL import Image, ImageChops, ImageOps

__all__ = ["OutputQuality", "Reference", "psnr"]

# Two references closer than this are the same picture for a check's purposes (e.g. an
# embedded profile that is sRGB itself): the check then does not apply.
_SAME_PICTURE_DB = 45.0
# The size the applicability of a check is decided at (cheap, and big enough to see).
_PROBE_LONG_EDGE = 256
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class OutputQuality:
    """How one output compares with the reference at its own size."""

    psnr_db: float
    orientation_ok: bool | None = None
    srgb_ok: bool | None = None
    alpha_ok: bool | None = None


def psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR in dB of two RGB images of the same size (inf when identical)."""
    if a.size != b.size:
        msg = f"PSNR of different sizes: {a.size} vs {b.size}"
        raise ValueError(msg)
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    histogram = diff.histogram()
    squared = sum(count * (index % 256) ** 2 for index, count in enumerate(histogram))
    mse = squared / (a.width * a.height * 3)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def on_white(image: Image.Image) -> Image.Image:
    """RGB as shown on white: alpha composited, anything else converted."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(backdrop, rgba).convert("RGB")
    return image.convert("RGB")


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image | None:
    from PIL import ImageCms

    mode = image.mode if image.mode in ("RGB", "RGBA", "CMYK", "L") else "RGB"
    out_mode = "RGBA" if mode == "RGBA" else "RGB"
    try:
        converted = ImageCms.profileToProfile(
            image.convert(mode),
            io.BytesIO(icc),
            ImageCms.createProfile("sRGB"),
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
            outputMode=out_mode,
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    return converted


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit and float grey scaled (not clipped, as Pillow's own conversion does) to L."""
    if image.mode.startswith("I;16") or image.mode == "I":
        return image.convert("I").point(lambda v: v / 257).convert("L")
    if image.mode == "F":
        return image.convert("L")
    return image


def _working_mode(image: Image.Image) -> str:
    if image.mode == "CMYK":
        return "CMYK"
    return "RGBA" if image.has_transparency_data else "RGB"


@dataclass
class Reference:
    """The careful reference of one source, with the wrong-on-purpose variants.

    `upright` is what every output should look like (before resizing). The variants are
    what an output that ignores one promise looks like: `stored` (orientation ignored),
    `unmanaged` (ICC profile ignored) and `stripped` (alpha dropped, showing the colour
    under transparent pixels). Each is `None` when the source does not distinguish it.
    """

    upright: Image.Image
    stored: Image.Image | None = None
    unmanaged: Image.Image | None = None
    stripped: Image.Image | None = None
    _cache: dict[tuple[str, tuple[int, int]], Image.Image] = field(default_factory=dict)

    @classmethod
    def from_bytes(cls, data: bytes) -> Reference:
        source: Image.Image = Image.open(io.BytesIO(data))
        source.load()
        icc = source.info.get("icc_profile")
        orientation = source.getexif().get(_ORIENTATION_TAG, 1)
        source = _eight_bit(source)
        oriented = ImageOps.exif_transpose(source) if orientation != 1 else source
        plain = oriented.convert(_working_mode(oriented))
        managed = _to_srgb(plain, icc) if isinstance(icc, bytes) and icc else None
        upright_full = (
            managed
            if managed is not None
            else plain.convert("RGBA" if plain.mode == "RGBA" else "RGB")
        )
        upright = on_white(upright_full)
        reference = cls(upright=upright)
        if orientation != 1:
            stored_plain = source.convert(_working_mode(source))
            stored = _to_srgb(stored_plain, icc) if managed is not None and icc else None
            reference.stored = on_white(stored if stored is not None else stored_plain)
        if managed is not None:
            reference.unmanaged = on_white(plain)
        if upright_full.mode == "RGBA":
            reference.stripped = upright_full.convert("RGB")
        # Variants that look like the real thing do not make a check.
        for name in ("stored", "unmanaged", "stripped"):
            variant = getattr(reference, name)
            if variant is not None and reference._same_picture(variant):
                setattr(reference, name, None)
        return reference

    def _same_picture(self, variant: Image.Image) -> bool:
        if variant.size != self.upright.size:
            return False
        scale = _PROBE_LONG_EDGE / max(self.upright.size)
        size = (
            max(1, round(self.upright.width * scale)),
            max(1, round(self.upright.height * scale)),
        )
        a = self.upright.resize(size, Image.Resampling.BOX)
        b = variant.resize(size, Image.Resampling.BOX)
        return psnr(a, b) >= _SAME_PICTURE_DB

    def at(self, size: tuple[int, int], variant: str = "upright") -> Image.Image:
        key = (variant, size)
        if key not in self._cache:
            image = getattr(self, variant)
            assert image is not None
            self._cache[key] = image.resize(size, Image.Resampling.LANCZOS)
        return self._cache[key]

    def score(self, encoded: bytes) -> OutputQuality:
        """PSNR of an encoded output and the checks its source allows."""
        output = Image.open(io.BytesIO(encoded))
        output.load()
        shown = on_white(output)
        value = psnr(shown, self.at(shown.size))
        checks: dict[str, bool | None] = {}
        for check, variant in (
            ("orientation_ok", "stored"),
            ("srgb_ok", "unmanaged"),
            ("alpha_ok", "stripped"),
        ):
            if getattr(self, variant) is None:
                checks[check] = None
            else:
                checks[check] = value > psnr(shown, self.at(shown.size, variant))
        return OutputQuality(psnr_db=value, **checks)
