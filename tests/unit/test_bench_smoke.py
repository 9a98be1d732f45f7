"""Smoke test of the benchmark (`make bench`): it runs end to end and writes its results.

Two tiny generated images, one round, one cold-start run, the way `make bench` runs it
(`python -m benchmarks.run` from the repository root), plus the benchmark's own
generated HEIC and animation in their --quick sizes. No timing is asserted: only that
every stage ran and the result file has the shape the docs describe. libvips candidates
run when pyvips is installed (`make bench` installs it) and are skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]


def _sideways_jpeg(path: Path) -> None:
    # A landscape card stored with EXIF orientation 6, as phones write portraits.
    image = Image.linear_gradient("L").resize((120, 80)).convert("RGB")
    ImageDraw.Draw(image).rectangle((0, 0, 30, 20), fill=(220, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, "JPEG", quality=90, exif=exif.tobytes())


def _transparent_png(path: Path) -> None:
    # An opaque disc on a fully transparent background whose hidden colour is black.
    image = Image.new("RGBA", (80, 60), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((10, 5, 70, 55), fill=(30, 90, 200, 255))
    image.save(path, "PNG")


def _run_benchmark(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    images, out = tmp_path / "images", tmp_path / "results"
    images.mkdir()
    _sideways_jpeg(images / "sideways.jpg")
    # In a subfolder: --images takes a whole tree, and names images by their path in it.
    (images / "brand").mkdir()
    _transparent_png(images / "brand" / "logo.png")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--images",
            str(images),
            "--out",
            str(out),
            "--coldstart-runs",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [result_file] = out.glob("*.json")
    return json.loads(result_file.read_text()), out


def test_given_two_tiny_images_when_benchmarked_then_result_files_are_well_formed(
    tmp_path: Path,
) -> None:
    # Given two tiny generated images, one in a subfolder / When the quick benchmark runs
    # over their folder
    result, out = _run_benchmark(tmp_path)

    # Then the JSON names both images and every candidate that could run ...
    expected = {"seed", "imgpipe-300", "imgpipe-set"}
    if importlib.util.find_spec("pyvips") is not None:
        expected |= {"libvips-300", "libvips-set"}
    floors = {"floor-300", "floor-set"}
    assert result["schema"] == 1
    folder = {i["name"] for i in result["images"] if i["group"] in ("photo", "other")}
    assert folder == {"sideways.jpg", "brand/logo.png"}
    assert set(result["settings"]["candidates"]) == expected
    for name in ("sideways.jpg", "brand/logo.png"):
        per = result["summary"][name]
        assert set(per) == expected | floors
        for candidate, entry in per.items():
            # ... each with a time; the candidates with their outputs (bytes and a
            # PSNR) and peak RSS; the floors with their decode and encode parts ...
            assert "error" not in entry, (candidate, entry)
            assert entry["cpu_ms"] > 0
            if candidate in floors:
                assert entry["decode_cpu_ms"] > 0
                assert entry["encode_cpu_ms"] > 0
                assert entry["placeholder_cpu_ms"] > 0
                continue
            assert entry["outputs"]
            assert all(o["bytes"] > 0 for o in entry["outputs"])
            assert all(isinstance(o["psnr_db"], float | None) for o in entry["outputs"])
            assert entry["peak_rss_mb"] >= entry["base_rss_mb"] > 0
        assert {"thumb_speedup_vs_seed", "thumb_vs_floor", "set_vs_floor"} <= set(
            result["ratios"][name]
        )
    assert len(result["summary"]["brand/logo.png"]["imgpipe-set"]["outputs"]) == 6
    # ... what the manifest's placeholder adds to the render is reported ...
    preview = result["placeholder"]
    assert (preview["images"], preview["over"]) == (2, "images of this set")
    assert preview["max_ms"] >= preview["median_ms"] > 0
    assert "Placeholder (ThumbHash" in (out / "latest.md").read_text()

    # ... the correctness checks see what the seed gets wrong and the core gets right ...
    checks = result["correctness"]
    assert checks["seed"]["orientation_ok"]["failed"] == ["sideways.jpg"]
    assert checks["seed"]["alpha_ok"]["failed"] == ["brand/logo.png"]
    for candidate in ("imgpipe-300", "imgpipe-set"):
        assert checks[candidate]["orientation_ok"] == {
            "passed": 1,
            "applicable": 1,
            "failed": [],
        }
        assert checks[candidate]["alpha_ok"]["failed"] == []

    # ... the generated HEIC and long animation ran through our default set, with real
    # figures beside the run's JPEGs ...
    generated = {i["group"]: i for i in result["images"] if i["group"] in ("heic", "animation")}
    assert generated["heic"]["format"] == "HEIF"
    assert generated["animation"]["format"] == "GIF"
    assert generated["animation"]["frames"] > 1
    new = result["heic_and_animation"]
    assert [e["image"] for e in new["inputs"]] == [
        generated["heic"]["name"],
        generated["animation"]["name"],
    ]
    assert new["baseline"]["images"] == ["sideways.jpg"]
    for entry in new["inputs"]:
        ours = entry["ours"]
        for figure in ("cpu_ms", "wall_ms", "cpu_ms_per_mp", "peak_rss_mb", "output_bytes"):
            assert ours[figure] > 0, (entry["image"], figure)
        assert ours["outputs"] == 6
        assert entry["vs_jpeg"]["cpu_ms_per_mp"] > 0
        # ... every other candidate reported, whether it could decode the input or not ...
        assert set(entry["candidates"]) == expected | floors
        assert all(c["result"] for c in entry["candidates"].values())
    heic = new["inputs"][0]
    assert heic["candidates"]["seed"]["result"].startswith("cannot decode")
    assert "cpu_ms" not in heic["candidates"]["seed"]
    assert heic["candidates"]["imgpipe-300"]["cpu_ms"] > 0

    # ... the cold starts, the targets and a cost estimate are there ...
    variants = result["coldstart"]["variants"]
    assert {"bare", "validate", "resize", "store", "resize-no-xray"} <= set(variants)
    assert variants["bare"]["process_ratio"] == 1.0
    assert result["targets"]
    assert result["cost"]
    assert result["cost"][0]["total_standard"] > result["cost"][0]["total_express"] > 0

    # ... and the markdown summary has its tables.
    markdown = (out / "latest.md").read_text()
    for heading in (
        "## Targets",
        "## HEIC and long animation beside the JPEG photos",
        "## HEIC and long animation: every candidate",
        "## Quality",
        "## Cold start",
        "## Cost per million images",
    ):
        assert heading in markdown
    for entry in new["inputs"]:
        assert f"| {entry['image']} | " in markdown
    assert "| JPEG images (no photo >= 4 MP in this run), median of 1 | " in markdown
