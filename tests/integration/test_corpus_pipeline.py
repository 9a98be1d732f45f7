"""Real photos nobody here made, pushed through the deployed ASL on moto.

Runs over `../shared/corpus` (or $IMGPIPE_CORPUS) and is skipped when the folder is
absent. Each image must come out processed (or, for a file that is really broken,
rejected with a reason), with renditions whose size, orientation, mode and alpha are
what the source calls for.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from imgpipe.local.cloud import LocalCloud

CORPUS = Path(
    os.environ.get("IMGPIPE_CORPUS") or Path(__file__).resolve().parents[3] / "shared" / "corpus"
)
IMAGES = (
    sorted(p for p in CORPUS.glob("*") if p.is_file() and p.suffix.lower() != ".tsv")
    if CORPUS.is_dir()
    else []
)
BOX = {"thumb": 320, "medium": 1024, "large": 2048}

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.xdist_group("corpus-pipeline"),
    pytest.mark.skipif(not IMAGES, reason=f"no corpus at {CORPUS}"),
]


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud.running() as deployed:
        yield deployed


@pytest.fixture(scope="module")
def outcomes(cloud: LocalCloud) -> dict[str, dict[str, object]]:
    results = {}
    for path in IMAGES:
        record = cloud.upload(f"corpus/{path.name}", path.read_bytes())
        assert record.status == "SUCCEEDED", f"{path.name}: {record.error} {record.cause}"
        assert record.output is not None
        results[path.name] = record.output
    return results


def _displayed_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        orientation = im.getexif().get(0x0112, 1)
        return (im.height, im.width) if orientation in (5, 6, 7, 8) else im.size


def _has_alpha(path: Path) -> bool:
    """Whether the (first frame of the) source has any pixel that is not fully opaque."""
    with Image.open(path) as im:
        if im.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in im.info:
            return False
        lowest, _ = im.convert("RGBA").getchannel("A").getextrema()
        return bool(isinstance(lowest, int) and lowest < 255)


def _fit(size: tuple[int, int], box: int) -> tuple[int, int]:
    width, height = size
    scale = min(box / width, box / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _fetch(cloud: LocalCloud, key: str) -> Image.Image:
    body = cloud.s3.get_object(Bucket=cloud.output_bucket, Key=key)["Body"].read()
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_corpus_image_renders_upright_in_the_right_size_mode_and_alpha(
    cloud: LocalCloud, outcomes: dict[str, dict[str, object]], path: Path
) -> None:
    output = outcomes[path.name]
    if output["status"] == "rejected":
        # Only a damaged file may be rejected, and then with a reason saying so.
        assert "corrupt" in path.name or path.name.startswith("p05"), output
        assert output["reason"]["code"] == "CorruptImage"  # type: ignore[index]
        return
    assert output["status"] == "processed", output
    displayed = _displayed_size(path)
    alpha = _has_alpha(path)
    renditions = output["renditions"]
    assert isinstance(renditions, list)
    assert len(renditions) == 6
    for rendition in renditions:
        image = _fetch(cloud, rendition["key"])
        expected = _fit(displayed, BOX[rendition["name"]])
        # Within a pixel of the exact fit: the rounding rule is the imaging core's.
        assert abs(image.width - expected[0]) <= 1, (rendition, expected)
        assert abs(image.height - expected[1]) <= 1, (rendition, expected)
        assert max(image.size) <= BOX[rendition["name"]]
        assert not image.getexif()
        assert "icc_profile" not in image.info or image.info["icc_profile"]
        if rendition["format"] == "JPEG":
            assert image.mode == "RGB"
        else:
            assert image.mode == ("RGBA" if alpha else "RGB"), (path.name, image.mode)


ORIENTED = [p for p in IMAGES if p.name.startswith("o") and "_Landscape_" in p.name]


@pytest.mark.skipif(len(ORIENTED) < 8, reason="the eight EXIF orientation samples are not there")
def test_all_eight_exif_orientations_display_the_same_picture(
    cloud: LocalCloud, outcomes: dict[str, dict[str, object]]
) -> None:
    thumbs = []
    for path in ORIENTED:
        output = outcomes[path.name]
        thumb = next(r for r in output["renditions"] if r["key"].endswith("/thumb.jpg"))  # type: ignore[attr-defined]
        thumbs.append(_fetch(cloud, thumb["key"]).convert("L"))
    reference = ImageOps.exif_transpose(Image.open(ORIENTED[0])).convert("L").resize(thumbs[0].size)
    for path, thumb in zip(ORIENTED, thumbs, strict=True):
        assert thumb.size == thumbs[0].size, path.name
        difference = ImageStat.Stat(ImageChops.difference(thumb, reference)).mean[0]
        assert difference < 8, f"{path.name} differs from upright by {difference:.1f}"
