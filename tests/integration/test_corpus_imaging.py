"""The imaging core over the shared corpus of real-world images.

The corpus lives outside the project (`../shared/corpus`, or `$IMGPIPE_CORPUS`) and is
never copied into it; without it every test here is skipped. Each image is rendered
with the default rendition set and compared with an independent, deliberately slow
reference: full decode, `ImageOps.exif_transpose`, ICC -> sRGB, plain Lanczos.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat

from imgpipe.errors import CorruptImage
from imgpipe.imaging import render
from imgpipe.specs import ImageFacts, RenderSettings, RenditionSpec

CORPUS = Path(
    os.environ.get("IMGPIPE_CORPUS") or Path(__file__).resolve().parents[3] / "shared" / "corpus"
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff", ".avif"}

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no image corpus at {CORPUS}"),
]

SIZES = (320, 1024, 2048)
DEFAULT_SET = RenderSettings(
    renditions=tuple(
        RenditionSpec(f"{fmt.lower()}{size}", size, fmt, quality)
        for size in SIZES
        for fmt, quality in (("WEBP", 80), ("JPEG", 82))
    )
)
# Colour check: mean absolute difference per channel (0-255) between each output scaled
# to the 320 rendition's size and the reference at that size, minus what the codec alone
# costs there (the reference itself encoded the same way). Over this corpus the excess
# measures <= 0.44; ignoring an ICC profile costs 5.3-9.1 and a wrong orientation >= 14
# (docs/imaging.md, "Corpus check").
MAX_EXCESS_MEAN_ABS_DIFF = 1.5
# A deliberately damaged file: 16 KiB of its JPEG entropy data overwritten with 0xFF.
# libjpeg resynchronises at the next restart marker and Pillow decodes it (a short
# smeared band, as every browser shows it), so the pipeline renders it on purpose.
DAMAGED_BUT_DECODABLE = "p05_olympus_u1020_10MP.jpg"


def corpus_images() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def manifest() -> dict[str, dict[str, str]]:
    path = CORPUS / "MANIFEST.tsv"
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}


def reference(path: Path) -> Image.Image:
    """Displayed, sRGB, 8-bit RGB or RGBA: what the renditions should look like."""
    source = Image.open(path)
    icc = source.info.get("icc_profile")
    oriented = ImageOps.exif_transpose(source)
    has_alpha = oriented.has_transparency_data
    image = oriented.convert("RGBA" if has_alpha else "RGB")
    if icc:
        converted = ImageCms.profileToProfile(
            image,
            io.BytesIO(icc),
            ImageCms.createProfile("sRGB"),
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
            outputMode=image.mode,
        )
        assert converted is not None
        image = converted
    return image


def on_white(image: Image.Image) -> Image.Image:
    if image.mode != "RGBA":
        return image.convert("RGB")
    backdrop = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(backdrop, image).convert("RGB")


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    stat = ImageStat.Stat(ImageChops.difference(on_white(a), on_white(b)))
    return sum(stat.mean) / len(stat.mean)


def psnr(a: Image.Image, b: Image.Image) -> float:
    stat = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB")))
    mse = sum(stat.sum2) / (a.width * a.height * 3)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def encode_like_the_pipeline(image: Image.Image, fmt: str) -> Image.Image:
    out = io.BytesIO()
    if fmt == "JPEG":
        on_white(image).save(out, "JPEG", quality=82, optimize=True, subsampling="4:2:0")
    else:
        image.save(out, "WEBP", quality=80, method=4)
    return decoded(out.getvalue())


@pytest.mark.parametrize("path", corpus_images(), ids=lambda p: p.name)
def test_given_corpus_image_when_rendered_then_renditions_match_the_reference(
    path: Path,
) -> None:
    # Given a real-world image and its independent reference rendering
    ref = reference(path)
    visible_alpha = ref.mode == "RGBA" and ref.getchannel("A").getextrema() != (255, 255)
    # When the default set is rendered
    facts, outputs = render(path.read_bytes(), DEFAULT_SET)
    # Then the facts agree with the reference's displayed size
    assert isinstance(facts, ImageFacts)
    assert facts.oriented_size == ref.size
    shown_w, shown_h = ref.size
    long_side = max(shown_w, shown_h)
    comparison_size = outputs[0].width, outputs[0].height
    ref_small = ref.resize(comparison_size, Image.Resampling.LANCZOS)
    codec_floor = {
        fmt: mean_abs_diff(encode_like_the_pipeline(ref_small, fmt), ref_small)
        for fmt in ("WEBP", "JPEG")
    }
    assert [o.spec for o in outputs] == list(DEFAULT_SET.renditions)
    for out in outputs:
        image = decoded(out.data)
        box = out.spec.size
        # ... each output has its reported size, inside the box and the source, with
        # the source's aspect (short side within half a pixel of exact) ...
        assert image.size == (out.width, out.height)
        assert max(out.width, out.height) == min(box, long_side)
        assert out.width <= shown_w
        assert out.height <= shown_h
        assert abs(out.width * shown_h - out.height * shown_w) <= long_side / 2
        # ... is RGB, or RGBA in WebP exactly when the source shows any transparency ...
        expected_mode = "RGBA" if visible_alpha and out.spec.format == "WEBP" else "RGB"
        assert image.mode == expected_mode, out.spec.name
        # ... carries no metadata ...
        assert not image.getexif()
        assert not {"exif", "xmp", "icc_profile", "comment"} & set(image.info)
        # ... and looks like the reference.
        small = image.resize(comparison_size, Image.Resampling.LANCZOS)
        excess = mean_abs_diff(small, ref_small) - codec_floor[out.spec.format]
        assert excess <= MAX_EXCESS_MEAN_ABS_DIFF, f"{out.spec.name}: {excess:+.2f} over codec"


def test_given_the_damaged_corpus_jpeg_then_rendering_it_is_deliberate() -> None:
    # Given the corpus file marked corrupt (its entropy data has a 16 KiB hole)
    path = CORPUS / DAMAGED_BUT_DECODABLE
    if not path.is_file():
        pytest.skip(f"{DAMAGED_BUT_DECODABLE} not in the corpus")
    row = manifest().get(DAMAGED_BUT_DECODABLE, {})
    assert row.get("category", "jpeg-photo-corrupt") == "jpeg-photo-corrupt"
    data = path.read_bytes()
    assert b"\xff" * 16384 in data
    # When rendered whole, and when cut short
    facts, outputs = render(data, DEFAULT_SET)
    # Then the whole file is rendered (libjpeg recovers at the next restart marker, as
    # browsers do) while a truncated copy is rejected as corrupt
    assert (facts.format, facts.width, facts.height) == ("JPEG", 3648, 2736)
    assert [(o.width, o.height) for o in outputs[:2]] == [(320, 240), (320, 240)]
    with pytest.raises(CorruptImage):
        render(data[: len(data) // 2], DEFAULT_SET)


ORIENTATION_SET = RenderSettings(renditions=(RenditionSpec("t", 320, "PNG", 100),))


def test_given_the_eight_exif_orientation_samples_then_all_render_identically() -> None:
    # Given the same landscape photo stored in each of the 8 EXIF orientations
    paths = [CORPUS / f"o{n}_Landscape_{n}.jpg" for n in range(1, 9)]
    if not all(p.is_file() for p in paths):
        pytest.skip("orientation samples not in the corpus")
    # When each is rendered at 320
    images = []
    for n, path in enumerate(paths, start=1):
        facts, (out,) = render(path.read_bytes(), ORIENTATION_SET)
        assert facts.orientation == n
        images.append(decoded(out.data))
    # Then all eight look the same (upright landscape) as the one needing no transform
    upright = images[0]
    for n, image in enumerate(images[1:], start=2):
        assert image.size == upright.size == (320, 213)
        diff = mean_abs_diff(image, upright)
        assert diff < 2.0, f"orientation {n}: mean |diff| {diff:.2f}"


# The shortcuts (JPEG draft at >= 2x, reduce() before Lanczos at >= 3x, smaller
# renditions from larger ones at >= 2x) against a plain Lanczos from the full decode:
# after encoding, the outputs must be within 0.3 dB PSNR of encoding the reference.
PSNR_CASES = [
    ("p02_olympus_EP3_12MP.jpg", (320,)),  # draft 1/4
    ("p04_xiaomi_mi9t_12MP_ori6.jpg", (320,)),  # draft on a rotated image
    ("s04_cardinal_2MP.jpg", (320,)),  # draft 1/2
    ("p01_bimg_vertical_24MP.jpg", (1024, 320)),  # draft 1/2 + ICC + chaining
    ("w01_bimg_vertical_24MP.webp", (1024, 320)),  # no draft: reduce() + chaining
    ("p12_flickr_grizdave_6MP.jpg", (2048, 1024, 320)),  # the default set's chain
]
PSNR_BUDGET_DB = 0.3


@pytest.mark.parametrize(("name", "sizes"), PSNR_CASES, ids=[c[0] for c in PSNR_CASES])
def test_given_photo_when_rendered_then_within_psnr_budget_of_plain_lanczos(
    name: str, sizes: tuple[int, ...]
) -> None:
    # Given a photo and its careful reference
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"{name} not in the corpus")
    ref = reference(path)
    specs = tuple(
        RenditionSpec(f"{fmt}{size}", size, fmt, 82 if fmt == "JPEG" else 80)
        for size in sizes
        for fmt in ("JPEG", "WEBP")
    )
    # When rendered with the pipeline's shortcuts
    _, outputs = render(path.read_bytes(), RenderSettings(renditions=specs))
    # Then each output is as close to the ideal resize as encoding the ideal resize is
    for out in outputs:
        ideal = ref.resize((out.width, out.height), Image.Resampling.LANCZOS)
        budget = psnr(encode_like_the_pipeline(ideal, out.spec.format), ideal)
        ours = psnr(decoded(out.data), ideal)
        assert budget - ours <= PSNR_BUDGET_DB, f"{out.spec.name}: {budget:.2f} vs {ours:.2f} dB"
