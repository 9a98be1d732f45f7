"""The manifest's placeholder: a ThumbHash and the average colour of the picture.

Pages paint it while the renditions load. It is made from the smallest rendition
already encoded (the picture as shown: oriented, sRGB, first frame of an animation), so
it costs one tiny decode and the hash, not another pass over the source.

The ThumbHash encoder is written here from the published algorithm (Evan Wallace's
reference, rgbaToThumbHash): the Python packages on PyPI either pin Pillow below 11 or
encode transparent images wrongly (docs/decisions.md).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from operator import mul

from PIL import Image, ImageStat

from imgpipe.specs import RenderedImage

__all__ = ["placeholder", "thumbhash"]

# ThumbHash keeps at most 7 DCT terms per axis, which 24 pixels on the long side still
# carry; the pure-Python encoder's time grows with the pixel count (~1 ms at 24 px,
# ~10 ms at the algorithm's 100-px maximum).
_HASH_EDGE = 24
_WITH_ALPHA = frozenset({"WEBP", "PNG", "AVIF"})


def placeholder(renditions: Sequence[RenderedImage], has_alpha: bool) -> dict[str, str] | None:
    """`{"thumbhash": <base64>, "color": "#rrggbb"}` of the picture, or None when there
    is no rendition to make it from."""
    source = _smallest(renditions, has_alpha)
    if source is None:
        return None
    with Image.open(io.BytesIO(source.data)) as im:
        # JPEG decodes at 1/8 scale straight away; the others are thumbnails already.
        im.draft("RGB", (_HASH_EDGE, _HASH_EDGE))
        small = im.convert("RGBA")
    small.thumbnail((_HASH_EDGE, _HASH_EDGE), Image.Resampling.BOX)
    return {"thumbhash": _thumbhash(small), "color": _average(small)}


def _smallest(renditions: Sequence[RenderedImage], has_alpha: bool) -> RenderedImage | None:
    # The whole picture, not a cover crop of it (unless crops are all there is).
    whole = [r for r in renditions if not r.spec.cover] or list(renditions)
    # A transparent picture's hash needs its alpha: only formats that keep it will do.
    usable = [r for r in whole if not has_alpha or r.spec.format in _WITH_ALPHA]
    # Of equal sizes the JPEG: libjpeg decodes it at 1/8 scale.
    return min(
        usable or whole,
        key=lambda r: (r.width * r.height, r.spec.format != "JPEG"),
        default=None,
    )


def _thumbhash(image: Image.Image) -> str:
    return base64.b64encode(thumbhash(image.width, image.height, image.tobytes())).decode("ascii")


def _round(value: float) -> int:
    # The reference is JavaScript: Math.round rounds halves up, Python's round to even.
    return math.floor(value + 0.5)


def thumbhash(width: int, height: int, rgba: bytes) -> bytes:
    """The ThumbHash of a width x height RGBA image of at most 100 x 100 pixels."""
    if not (0 < width <= 100 and 0 < height <= 100) or len(rgba) != 4 * width * height:
        msg = f"ThumbHash needs 1..100 x 1..100 RGBA pixels, got {width}x{height}"
        raise ValueError(msg)
    count = width * height
    reds, greens, blues = rgba[0::4], rgba[1::4], rgba[2::4]
    alphas = [a / 255 for a in rgba[3::4]]
    total_alpha = sum(alphas)
    avg_r, avg_g, avg_b = (
        sum(map(mul, alphas, band)) / 255 / total_alpha if total_alpha else 0.0
        for band in (reds, greens, blues)
    )
    has_alpha = total_alpha < count
    # Fewer luminance terms when alpha needs room.
    limit = 5 if has_alpha else 7
    lx = max(1, _round(limit * width / max(width, height)))
    ly = max(1, _round(limit * height / max(width, height)))
    # LPQA, composited over the average colour.
    lum, p_chan, q_chan = [], [], []
    for a, red, green, blue in zip(alphas, reds, greens, blues, strict=True):
        k, rest = a / 255, 1 - a
        r, g, b = avg_r * rest + k * red, avg_g * rest + k * green, avg_b * rest + k * blue
        lum.append((r + g + b) / 3)
        p_chan.append((r + g) / 2 - b)
        q_chan.append(r - g)

    def encode(channel: list[float], nx: int, ny: int) -> tuple[float, list[float], float]:
        # The 2-D cosine sums are separable: each row is summed against the x cosine
        # once per cx, then the row sums against the y cosine per term (3x fewer
        # multiplications than the reference's direct double loop, the same values).
        rows_by_cx = []
        for cx in range(nx):
            fx = [math.cos(math.pi / width * cx * (x + 0.5)) for x in range(width)]
            rows_by_cx.append(
                [sum(map(mul, channel[y * width : (y + 1) * width], fx)) for y in range(height)]
            )
        dc, ac, scale = 0.0, [], 0.0
        for cy in range(ny):
            fy = [math.cos(math.pi / height * cy * (y + 0.5)) for y in range(height)]
            cx = 0
            while cx * ny < nx * (ny - cy):
                f = sum(map(mul, rows_by_cx[cx], fy)) / count
                if cx or cy:
                    ac.append(f)
                    scale = max(scale, abs(f))
                else:
                    dc = f
                cx += 1
        if scale:
            ac = [0.5 + 0.5 / scale * f for f in ac]
        return dc, ac, scale

    l_dc, l_ac, l_scale = encode(lum, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = encode(p_chan, 3, 3)
    q_dc, q_ac, q_scale = encode(q_chan, 3, 3)
    landscape = width > height
    header24 = (
        _round(63 * l_dc)
        | _round(31.5 + 31.5 * p_dc) << 6
        | _round(31.5 + 31.5 * q_dc) << 12
        | _round(31 * l_scale) << 18
        | int(has_alpha) << 23
    )
    header16 = (
        (ly if landscape else lx)
        | _round(63 * p_scale) << 3
        | _round(63 * q_scale) << 9
        | int(landscape) << 15
    )
    digest = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    terms = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = encode(alphas, 5, 5)
        digest.append(_round(15 * a_dc) | _round(15 * a_scale) << 4)
        terms.append(a_ac)
    nibbles = [_round(15 * f) for ac in terms for f in ac]
    nibbles += [0] * (len(nibbles) % 2)
    digest += [low | high << 4 for low, high in zip(nibbles[::2], nibbles[1::2], strict=True)]
    return bytes(digest)


def _average(image: Image.Image) -> str:
    """The alpha-weighted mean colour: transparent pixels do not pull it to black."""
    alpha = ImageStat.Stat(image.getchannel("A")).sum[0]
    if alpha == 0:
        return "#000000"
    # Premultiplied sums are sum(c * a / 255); divided by sum(a / 255), the weighted mean.
    sums = ImageStat.Stat(image.convert("RGBa")).sum[:3]
    return "#" + "".join(f"{min(255, _round(255 * v / alpha)):02x}" for v in sums)
