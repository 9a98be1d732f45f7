"""Benchmark the imaging core against the seed handler, libvips and the decode floor.

    python -m benchmarks.run [--images PATH] [--rounds N] [--runs N] [--quick]

Two phases, each candidate always in its own process (`benchmarks.worker`):

1. Memory and quality: a fresh process per (candidate, image) runs it once and reports
   its peak RSS; its outputs are scored against a careful reference resize
   (`benchmarks.quality`).
2. Time: one warm process per candidate; the orchestrator walks the images round after
   round and asks each candidate in turn (the order rotates per image and per round, so
   drift in the machine's load hits every candidate alike). Times are medians over the
   rounds of CPU time (all threads); wall time is recorded too. The imgpipe processes
   also time the decode floor after each run.

Besides the folder's images, generated ones (`benchmarks.inputs`, cached): a 50 MP JPEG,
a phone's 12 MP HEIC and a 500-frame GIF. The last two are measured like the rest and
reported beside the JPEG photos, with what every other candidate made of them.

Then the cold start of every handler (`benchmarks.coldstart`) and a cost estimate
(`benchmarks.cost`).

Results: `benchmarks/results/<timestamp>.json` (everything, machine-readable) and
`benchmarks/results/latest.md` (the tables); the ratios are printed with rich.
Method and findings: docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks import coldstart, cost, inputs
from benchmarks.quality import Reference
from benchmarks.worker import CANDIDATES, FLOORS, VIPS_CANDIDATES, WEBP_METHOD_ENV

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
IMAGE_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".avif",
    ".heic",
    ".heif",
}
PHOTO_MIN_MP = 4.0
# --quick's generated inputs: the same code paths, a fraction of the pixels and frames.
QUICK_PHONE_SIZE = (1008, 756)
QUICK_ANIMATION_FRAMES = 60
# The generated inputs with a section of their own, beside the JPEG photos.
NEW_INPUTS = {"heic": "HEIC", "animation": "animation"}
# JPEG photos "of the HEIC's size": within these factors of its megapixels.
SIZE_CLASS = (0.8, 1.25)
QUICK_PREFERRED = ("p13_canonG9_4MP_icc.jpg", "n03_rgba_bird.png")
LAMBDA_MB = 1024
# "Room to spare" in a 1024 MB function: the render's peak plus the handler's own
# footprint at most this share of the memory size.
MEMORY_HEADROOM_SHARE = 0.75

console = Console()
if not console.is_terminal:
    # make and CI pipe the output: wide enough for the per-image tables.
    console = Console(width=200)


# ------------------------------------------------------------------------------ images


@dataclass(frozen=True)
class ImageInfo:
    name: str
    path: str
    format: str
    width: int
    height: int
    megapixels: float
    bytes: int
    orientation: int
    icc: bool
    alpha: bool
    # "photo" (JPEG >= 4 MP), "other", or a generated input: "synthetic" (the 50 MP
    # JPEG), "heic" (the phone's HEIC) or "animation" (the long GIF).
    group: str
    frames: int = 1


@functools.cache
def register_heif_reader() -> bool:
    """pi-heif's Pillow plugin in this process, the HEIF reader the imaging core uses.

    (pillow-heif's plugin is never registered: pi-heif owns the HEIF format.)
    """
    try:
        import pi_heif
    except ImportError:
        return False
    pi_heif.register_heif_opener()
    return True


def describe(path: Path, *, group: str | None = None, root: Path | None = None) -> ImageInfo | None:
    """What the benchmark needs to know of one image; None when Pillow cannot read it.

    Its name is its path below `root` (images in subfolders of `--images` may share a
    file name), else its file name. `group` is set for the generated inputs; the
    others are photos or not by their format and size.
    """
    from PIL import Image, UnidentifiedImageError

    register_heif_reader()
    try:
        with Image.open(path) as im:
            fmt = "JPEG" if im.format == "MPO" else str(im.format)
            orientation = im.getexif().get(0x0112, 1) if fmt == "JPEG" else 1
            info = ImageInfo(
                name=path.relative_to(root).as_posix() if root is not None else path.name,
                path=str(path),
                format=fmt,
                width=im.width,
                height=im.height,
                megapixels=im.width * im.height / 1e6,
                bytes=path.stat().st_size,
                orientation=int(orientation) if isinstance(orientation, int) else 1,
                icc=bool(im.info.get("icc_profile")),
                alpha=im.has_transparency_data,
                group="other",
                # Counting GIF frames walks the file without decoding the pixels.
                frames=int(getattr(im, "n_frames", 1)),
            )
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    if group is None:
        photo = info.format == "JPEG" and info.megapixels >= PHOTO_MIN_MP
        group = "photo" if photo else "other"
    return ImageInfo(**(asdict(info) | {"group": group}))


def default_images_dir(repo: Path = REPO) -> Path:
    return Path(repo).parent / "shared" / "corpus"


def _image_files(folder: Path) -> list[Path]:
    """The images in `folder` and its subfolders (hidden ones skipped), in name order."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def sample_images(cache: Path) -> list[Path]:
    """The project's own samples (`imgpipe demo`'s uploads), written once to `cache`."""
    from imgpipe.local.samples import samples

    folder = cache / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for sample in samples():
        path = folder / sample.key.replace("/", "_")
        if not path.exists():
            path.write_bytes(sample.data)
        paths.append(path)
    return paths


def select_images(args: argparse.Namespace, cache: Path) -> tuple[list[ImageInfo], str]:
    if args.images is not None:
        folder = Path(args.images)
        if not folder.is_dir():
            msg = f"--images {folder} is not a folder"
            raise SystemExit(msg)
        paths, source = _image_files(folder), str(folder)
    elif default_images_dir().is_dir():
        folder = default_images_dir()
        paths, source = _image_files(folder), str(folder)
    else:
        paths, source = sample_images(cache), "imgpipe.local.samples"
        folder = cache / "samples"
    if args.quick:
        preferred = [p for p in paths if p.name in QUICK_PREFERRED]
        paths = (preferred or paths)[: args.quick_images]
    infos = [info for info in (describe(p, root=folder) for p in paths) if info is not None]
    generated: list[tuple[str, Path | None]] = []
    if args.synthetic:
        generated.append(("synthetic", inputs.synthetic_50mp(cache)))
    if args.heic:
        with console.status("generating the phone's HEIC (once; cached)"):
            size = QUICK_PHONE_SIZE if args.quick else inputs.PHONE_SIZE
            generated.append(("heic", inputs.phone_heic(cache, size)))
    if args.animation:
        frames = QUICK_ANIMATION_FRAMES if args.quick else inputs.ANIMATION_FRAMES
        generated.append(("animation", inputs.long_animation(cache, frames)))
    for group, path in generated:
        info = describe(path, group=group) if path is not None else None
        if info is None:
            # pillow-heif (the HEIC's encoder) or pi-heif (its reader) is missing.
            console.print(f"[yellow]no {group} input: its encoder or reader is not installed[/]")
            continue
        infos.append(info)
    if not infos:
        msg = f"no images Pillow can read in {source}"
        raise SystemExit(msg)
    return infos, source


# ----------------------------------------------------------------------------- running


def _worker_env() -> dict[str, str]:
    # A PYTHONPATH of the caller's is kept after the repository's: it can put another
    # checkout's `src` (a frozen copy of the core) ahead of the installed one.
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return os.environ | {"VIPS_CONCURRENCY": "1", "PYTHONPATH": os.pathsep.join(paths)}


def run_once(candidate: str, image: ImageInfo, outputs: Path | None) -> dict[str, Any]:
    """A fresh process for one (candidate, image): peak RSS and the outputs."""
    command = [sys.executable, "-m", "benchmarks.worker", "once", candidate, image.path]
    if outputs is not None:
        command += ["--outputs", str(outputs)]
    proc = subprocess.run(
        command,
        cwd=REPO,
        env=_worker_env(),
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"candidate": candidate, "image": image.name, "error": proc.stderr.strip()[-300:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result | {"image": image.name}


class TimingWorker:
    """One long-lived `benchmarks.worker serve` process per candidate."""

    def __init__(self, candidate: str) -> None:
        self.candidate = candidate
        self.process = self._start()

    def _start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", "serve", self.candidate],
            cwd=REPO,
            env=_worker_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def time(self, image: ImageInfo, runs: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"image": image.path, "runs": runs}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            # The process died (a crash in a codec): report it and start a new one.
            self.process.wait()
            code = self.process.returncode
            self.process = self._start()
            return {"candidate": self.candidate, "image": image.name, "error": f"exit {code}"}
        result: dict[str, Any] = json.loads(line)
        return result | {"image": image.name}

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def rotated(items: list[str], by: int) -> list[str]:
    shift = by % len(items)
    return items[shift:] + items[:shift]


def score_outputs(
    info: ImageInfo, folder: Path, candidates: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    try:
        reference = Reference.from_bytes(Path(info.path).read_bytes())
    except (OSError, SyntaxError, ValueError) as exc:
        # A file the careful reference cannot decode (the samples' truncated JPEG, a
        # rejection case) has no quality to score; its timings still stand.
        console.print(f"[yellow]{info.name}: no reference ({exc}); quality not scored[/]")
        return {}
    scores: dict[str, list[dict[str, Any]]] = {}
    for candidate in candidates:
        directory = folder / candidate
        if not directory.is_dir():
            continue
        scores[candidate] = [
            {"name": path.name} | asdict(reference.score(path.read_bytes()))
            for path in sorted(directory.iterdir())
        ]
    return scores


@dataclass
class Measurements:
    memory: list[dict[str, Any]]  # one fresh process per (candidate, image)
    timing: list[dict[str, Any]]  # per round and (candidate, image), from the servers
    quality: dict[str, dict[str, list[dict[str, Any]]]]


def measure(images: list[ImageInfo], candidates: list[str], rounds: int, runs: int) -> Measurements:
    memory: list[dict[str, Any]] = []
    timing: list[dict[str, Any]] = []
    quality: dict[str, dict[str, list[dict[str, Any]]]] = {}
    total = len(images) * len(candidates) * (1 + rounds)
    with (
        tempfile.TemporaryDirectory(prefix="imgpipe-bench-") as tmp,
        Progress(console=console, transient=True) as progress,
    ):
        task = progress.add_task("benchmark", total=total)
        # 1. Memory and outputs: a fresh process per (candidate, image); then quality.
        for image_index, info in enumerate(images):
            keep = Path(tmp) / info.name
            for candidate in rotated(candidates, image_index):
                progress.update(task, description=f"memory {info.name[:24]} {candidate}")
                memory.append(run_once(candidate, info, keep / candidate))
                progress.advance(task)
            progress.update(task, description=f"quality {info.name[:24]}")
            quality[info.name] = score_outputs(info, keep, candidates)
            shutil.rmtree(keep, ignore_errors=True)
        # 2. Time: one warm process per candidate, candidates interleaved per image and
        # their order rotated per image and per round.
        workers = {candidate: TimingWorker(candidate) for candidate in candidates}
        try:
            for round_index in range(rounds):
                for image_index, info in enumerate(images):
                    for candidate in rotated(candidates, round_index + image_index):
                        label = f"round {round_index + 1}/{rounds} {info.name[:24]} {candidate}"
                        progress.update(task, description=label)
                        record = workers[candidate].time(info, runs)
                        record["round"] = round_index
                        timing.append(record)
                        progress.advance(task)
        finally:
            for worker in workers.values():
                worker.close()
    return Measurements(memory, timing, quality)


# --------------------------------------------------------------------------- summaries


def _times(runs: list[dict[str, Any]], clock: str, parts: tuple[str, ...] = ()) -> float:
    if not parts:
        return statistics.median(run[clock] for run in runs)
    return statistics.median(sum(run["floor"][p][clock] for p in parts) for run in runs)


def summarise(
    images: list[ImageInfo], measured: Measurements
) -> dict[str, dict[str, dict[str, Any]]]:
    memory = {(r["image"], r["candidate"]): r for r in measured.memory}
    timing: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in measured.timing:
        timing.setdefault((record["image"], record["candidate"]), []).append(record)
    candidates = sorted({r["candidate"] for r in measured.memory + measured.timing})
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for info in images:
        per: dict[str, dict[str, Any]] = {}
        for candidate in candidates:
            once = memory.get((info.name, candidate), {})
            records = timing.get((info.name, candidate), [])
            runs = [run for r in records if "error" not in r for run in r["runs"]]
            errors = [r["error"] for r in [once, *records] if "error" in r]
            if not runs or "outputs" not in once:
                per[candidate] = {"error": errors[0] if errors else "no result"}
                continue
            cpu = _times(runs, "cpu_ms")
            entry: dict[str, Any] = {
                "cpu_ms": cpu,
                "wall_ms": _times(runs, "wall_ms"),
                "samples": len(runs),
                "mp_per_s": info.megapixels / (cpu / 1000) if cpu > 0 else math.inf,
                "cold_cpu_ms": once["cold"]["cpu_ms"],
                "peak_rss_mb": once["rss_peak_kb"] / 1024,
                "base_rss_mb": once["rss_base_kb"] / 1024,
                "output_bytes": sum(o["bytes"] for o in once["outputs"]),
                "outputs": once["outputs"],
            }
            scores = measured.quality.get(info.name, {}).get(candidate)
            if scores:
                psnr_by_name = {s["name"]: s["psnr_db"] for s in scores}
                for output in entry["outputs"]:
                    output["psnr_db"] = psnr_by_name.get(output["name"])
                for check in ("orientation_ok", "srgb_ok", "alpha_ok"):
                    values = [s[check] for s in scores if s[check] is not None]
                    entry[check] = all(values) if values else None
            if errors:
                entry["errors"] = errors
            per[candidate] = entry
            if candidate in FLOORS and all("floor" in run for run in runs):
                floor_cpu = _times(runs, "cpu_ms", ("decode", "encode"))
                per[FLOORS[candidate]] = {
                    "cpu_ms": floor_cpu,
                    "wall_ms": _times(runs, "wall_ms", ("decode", "encode")),
                    "cpu_ms_1x": _times(runs, "cpu_ms", ("decode_1x", "encode")),
                    "decode_cpu_ms": _times(runs, "cpu_ms", ("decode",)),
                    "decode_1x_cpu_ms": _times(runs, "cpu_ms", ("decode_1x",)),
                    "encode_cpu_ms": _times(runs, "cpu_ms", ("encode",)),
                    "placeholder_cpu_ms": _times(runs, "cpu_ms", ("placeholder",)),
                    "samples": len(runs),
                    "mp_per_s": info.megapixels / (floor_cpu / 1000) if floor_cpu else math.inf,
                    "outputs": [],
                }
        summary[info.name] = per
    return summary


def _ok(entry: dict[str, Any] | None) -> bool:
    return entry is not None and "error" not in entry


def _pair(
    per: dict[str, dict[str, Any]], a: str, b: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    first, second = per.get(a), per.get(b)
    if first is None or second is None or not _ok(first) or not _ok(second):
        return None
    return first, second


def image_ratios(per: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The ratios the targets are about, for one image (missing ones left out)."""
    ratios: dict[str, float] = {}
    if pair := _pair(per, "seed", "imgpipe-300"):
        seed, thumb = pair
        ratios["thumb_speedup_vs_seed"] = seed["cpu_ms"] / thumb["cpu_ms"]
        ratios["thumb_rss_vs_seed"] = thumb["peak_rss_mb"] / seed["peak_rss_mb"]
        # What the work itself adds over the process after its imports (the interpreter
        # and Pillow are ~20 MB of every peak, which the ratio above includes).
        added_seed = seed["peak_rss_mb"] - seed["base_rss_mb"]
        if added_seed > 0:
            added_thumb = max(thumb["peak_rss_mb"] - thumb["base_rss_mb"], 0.1)
            ratios["thumb_added_rss_vs_seed"] = added_thumb / added_seed
    if pair := _pair(per, "imgpipe-300", "floor-300"):
        thumb, floor = pair
        ratios["thumb_vs_floor"] = thumb["cpu_ms"] / floor["cpu_ms"]
        ratios["thumb_vs_floor_1x"] = thumb["cpu_ms"] / floor["cpu_ms_1x"]
    if pair := _pair(per, "seed", "floor-300"):
        seed, floor = pair
        # The most any pipeline that decodes could gain on the seed.
        ratios["floor_speedup_vs_seed"] = seed["cpu_ms"] / floor["cpu_ms"]
    if pair := _pair(per, "imgpipe-300", "libvips-300"):
        thumb, vips = pair
        ratios["thumb_vs_libvips"] = thumb["cpu_ms"] / vips["cpu_ms"]
    if pair := _pair(per, "imgpipe-set", "libvips-set"):
        full, vips = pair
        ratios["set_vs_libvips"] = full["cpu_ms"] / vips["cpu_ms"]
        ratios["set_rss_vs_libvips"] = full["peak_rss_mb"] / vips["peak_rss_mb"]
    if pair := _pair(per, "imgpipe-set", "floor-set"):
        full, floor = pair
        ratios["set_vs_floor"] = full["cpu_ms"] / floor["cpu_ms"]
        ratios["set_vs_floor_1x"] = full["cpu_ms"] / floor["cpu_ms_1x"]
    if pair := _pair(per, "floor-set", "libvips-set"):
        floor, vips = pair
        ratios["floor_vs_libvips"] = floor["cpu_ms"] / vips["cpu_ms"]
    # Quality: ours minus theirs, per output of the same name (dB; positive = better).
    for ours, theirs, key in (
        ("imgpipe-set", "libvips-set", "set_psnr_vs_libvips_min_db"),
        ("imgpipe-300", "libvips-300", "thumb_psnr_vs_libvips_db"),
        ("imgpipe-300", "seed", "thumb_psnr_vs_seed_db"),
    ):
        if pair := _pair(per, ours, theirs):
            a, b = pair
            theirs_psnr = {o["name"]: o.get("psnr_db") for o in b["outputs"]}
            deltas = [
                o["psnr_db"] - theirs_psnr[o["name"]]
                for o in a["outputs"]
                if o.get("psnr_db") is not None and theirs_psnr.get(o["name"]) is not None
            ]
            finite = [d for d in deltas if math.isfinite(d)]
            if finite:
                ratios[key] = min(finite)
    return ratios


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else math.nan


@dataclass(frozen=True)
class Target:
    key: str
    text: str
    measure: str  # "geomean", "max" or "min" over the images
    threshold: float
    better: str  # "low" or "high"
    unit: str = "x"


TARGETS = (
    Target("thumb_speedup_vs_seed", "300-px JPEG: faster than the seed", "geomean", 3.5, "high"),
    Target(
        "floor_speedup_vs_seed",
        "(bound) 300-px JPEG: seed / decode floor",
        "geomean",
        3.5,
        "high",
    ),
    Target("thumb_vs_floor", "300-px JPEG: time / decode floor", "geomean", 1.2, "low"),
    Target("thumb_rss_vs_seed", "300-px JPEG: peak RSS / seed's", "geomean", 1 / 6, "low"),
    Target(
        "thumb_added_rss_vs_seed",
        "(info) 300-px JPEG: RSS the work adds / seed's",
        "geomean",
        1 / 6,
        "low",
    ),
    Target("set_vs_libvips", "default set: time / libvips's", "geomean", 0.8, "low"),
    Target(
        "floor_vs_libvips", "(bound) default set: floor / libvips's time", "geomean", 0.8, "low"
    ),
    Target("set_vs_floor", "default set: time / decode+encode floor", "geomean", 1.5, "low"),
    Target(
        "set_psnr_vs_libvips_min_db",
        "default set: PSNR - libvips's (worst output)",
        "min",
        -0.3,
        "high",
        "dB",
    ),
    Target("thumb_psnr_vs_seed_db", "300-px JPEG: PSNR - seed's", "min", 0.0, "high", "dB"),
)


def evaluate_targets(
    images: list[ImageInfo], ratios: dict[str, dict[str, float]]
) -> list[dict[str, Any]]:
    photos = [i.name for i in images if i.group == "photo"]
    everything = [i.name for i in images]
    out = []
    for target in TARGETS:
        # Speed and memory targets are about JPEG photos of 4 MP and up; quality about
        # every image that both candidates rendered.
        names = photos if "psnr" not in target.key else everything
        values = [ratios[n][target.key] for n in names if target.key in ratios.get(n, {})]
        if not values:
            continue
        if target.measure == "geomean":
            value = geomean(values)
        elif target.measure == "max":
            value = max(values)
        else:
            value = min(values)
        met = value >= target.threshold if target.better == "high" else value <= target.threshold
        passing = sum(
            (v >= target.threshold) if target.better == "high" else (v <= target.threshold)
            for v in values
        )
        out.append(
            asdict(target)
            | {"value": value, "met": met, "images": len(values), "images_meeting": passing}
        )
    return out


def with_round_spread(
    targets: list[dict[str, Any]], images: list[ImageInfo], measured: Measurements
) -> list[dict[str, Any]]:
    """Each target's aggregate recomputed from every timing round on its own.

    The verdicts use medians over the rounds; the lowest and highest single-round
    aggregate show how much of a margin is the machine rather than the code (memory and
    quality come from one run per image, so their spread is nil).
    """
    rounds = sorted({r["round"] for r in measured.timing})
    if len(rounds) < 2:
        return targets
    per_round: dict[str, list[float]] = {}
    for index in rounds:
        alone = replace(measured, timing=[r for r in measured.timing if r["round"] == index])
        summary = summarise(images, alone)
        ratios = {info.name: image_ratios(summary[info.name]) for info in images}
        for target in evaluate_targets(images, ratios):
            per_round.setdefault(target["key"], []).append(target["value"])
    return [
        t | {"round_min": min(per_round[t["key"]]), "round_max": max(per_round[t["key"]])}
        if t["key"] in per_round
        else t
        for t in targets
    ]


def correctness(
    images: list[ImageInfo], summary: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    """Per candidate and check: images passed / images where the check applies."""
    out: dict[str, Any] = {}
    for candidate in ("seed", "imgpipe-300", "imgpipe-set", "libvips-300", "libvips-set"):
        per_check: dict[str, Any] = {}
        for check in ("orientation_ok", "srgb_ok", "alpha_ok"):
            values = [
                summary[i.name][candidate][check]
                for i in images
                if _ok(summary[i.name].get(candidate))
                and summary[i.name][candidate].get(check) is not None
            ]
            failed = [
                i.name
                for i in images
                if _ok(summary[i.name].get(candidate))
                and summary[i.name][candidate].get(check) is False
            ]
            per_check[check] = {"passed": sum(values), "applicable": len(values), "failed": failed}
        out[candidate] = per_check
    return out


def memory_50mp(
    images: list[ImageInfo],
    summary: dict[str, dict[str, dict[str, Any]]],
    handler_rss_mb: float | None,
) -> dict[str, Any] | None:
    big = [i for i in images if i.megapixels >= 45 and i.format == "JPEG"]
    if not big:
        return None
    info = max(big, key=lambda i: i.megapixels)
    entry = summary[info.name].get("imgpipe-set")
    if not _ok(entry):
        return None
    assert entry is not None
    handler = handler_rss_mb or 0.0
    # The worker's peak includes its own interpreter and Pillow; the handler's init
    # footprint (boto3, Powertools, X-Ray) comes on top of what the render adds.
    render_adds = entry["peak_rss_mb"] - entry["base_rss_mb"]
    in_lambda = handler + render_adds + info.bytes / 2**20
    return {
        "image": info.name,
        "megapixels": info.megapixels,
        "peak_rss_mb": entry["peak_rss_mb"],
        "render_adds_mb": render_adds,
        "handler_init_rss_mb": handler_rss_mb,
        "estimated_lambda_peak_mb": in_lambda,
        "lambda_mb": LAMBDA_MB,
        "met": in_lambda <= LAMBDA_MB * MEMORY_HEADROOM_SHARE,
        "cpu_ms": entry["cpu_ms"],
        "others": {
            c: summary[info.name][c].get("peak_rss_mb")
            for c in ("seed", "imgpipe-300", "libvips-set", "libvips-300")
            if _ok(summary[info.name].get(c))
        },
    }


# ------------------------------------------------------ the HEIC and the long animation

# The order of the candidates in the table: each of ours, then what is set against it.
CANDIDATE_ORDER = (
    "imgpipe-300",
    "floor-300",
    "seed",
    "libvips-300",
    "imgpipe-set",
    "floor-set",
    "libvips-set",
)
# Which of our candidates each other candidate's time is set against.
OURS_FOR = {
    "seed": "imgpipe-300",
    "floor-300": "imgpipe-300",
    "libvips-300": "imgpipe-300",
    "floor-set": "imgpipe-set",
    "libvips-set": "imgpipe-set",
}
# What a candidate that cannot decode the input raises (Pillow, the imaging core, libvips).
_CANNOT_DECODE = re.compile(
    r"^(UnidentifiedImageError|UnsupportedFormat|CorruptImage)\b"
    r"|not in a known format|has not been built in"
)


def _figures(entry: dict[str, Any], info: ImageInfo) -> dict[str, Any]:
    """One candidate's figures for one input; CPU ms per megapixel counts every frame."""
    source_mp = info.megapixels * info.frames
    return {
        "cpu_ms": entry["cpu_ms"],
        "wall_ms": entry["wall_ms"],
        "cpu_ms_per_mp": entry["cpu_ms"] / source_mp,
        "peak_rss_mb": entry["peak_rss_mb"],
        "work_adds_mb": entry["peak_rss_mb"] - entry["base_rss_mb"],
        "output_bytes": entry["output_bytes"],
        "outputs": len(entry["outputs"]),
        "animated_outputs": sum((o.get("frames") or 1) > 1 for o in entry["outputs"]),
        "output_frames": max(((o.get("frames") or 1) for o in entry["outputs"]), default=0),
    }


def _medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("cpu_ms", "wall_ms", "cpu_ms_per_mp", "peak_rss_mb", "work_adds_mb", "output_bytes")
    return {key: statistics.median(row[key] for row in rows) for key in keys}


def _kind_of_outputs(figures: dict[str, Any], source_frames: int) -> str:
    count, animated = figures["outputs"], figures["animated_outputs"]
    if animated:
        stills = count - animated
        text = f"{animated} animated ({figures['output_frames']} frames)"
        return text + (f" + {stills} still{'s' * (stills > 1)}" if stills else "")
    text = f"{count} still{'s' * (count > 1)}"
    return text + (f" (of {source_frames} frames)" if source_frames > 1 else "")


def _failure(error: str) -> str:
    """What a candidate's error says, short: its last line (libvips puts the cause
    there), without memory addresses or trailing parentheticals (libheif's codes)."""
    lines = [line.strip() for line in error.splitlines() if line.strip()] or ["no result"]
    text = re.sub(r" (object )?at 0x[0-9a-f]+", "", lines[-1])
    text = re.sub(r" \(.*\)$", "", text)[:120]
    return f"cannot decode: {text}" if _CANNOT_DECODE.search(error) else f"failed: {text}"


def heic_and_animation(
    images: list[ImageInfo], summary: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, Any] | None:
    """The generated HEIC and long animation, set beside the JPEG photos.

    Our default set's figures for each, the same figures for the JPEG photos (medians:
    all photos >= 4 MP, and those of the HEIC's own size), the ratios between them, and
    what every other candidate did with each input. A candidate's time is set against
    ours only where both made the same outputs (as many, each as many frames): a still
    against an animation is no comparison.
    """
    new = [i for i in images if i.group in NEW_INPUTS]
    if not new:
        return None
    ours = "imgpipe-set"
    photos = [i for i in images if i.group == "photo" and _ok(summary[i.name].get(ours))]
    label = "JPEG photos >= 4 MP"
    if not photos:
        # A run without photos (--quick, a folder of small images): its JPEGs, said so.
        photos = [
            i
            for i in images
            if i.group == "other" and i.format == "JPEG" and _ok(summary[i.name].get(ours))
        ]
        label = "JPEG images (no photo >= 4 MP in this run)"
    photo_rows = [_figures(summary[i.name][ours], i) for i in photos]
    baseline = (
        {"label": label, "images": [i.name for i in photos]}
        | {"megapixels": statistics.median(i.megapixels for i in photos)}
        | _medians(photo_rows)
        if photos
        else None
    )
    rows = []
    for info in new:
        per = summary[info.name]
        entry: dict[str, Any] = {
            "image": info.name,
            "kind": NEW_INPUTS[info.group],
            "format": info.format,
            "width": info.width,
            "height": info.height,
            "megapixels": info.megapixels,
            "frames": info.frames,
            "bytes": info.bytes,
        }
        mine = per.get(ours)
        if not _ok(mine):
            entry["error"] = (mine or {}).get("error", "not run")
            rows.append(entry)
            continue
        assert mine is not None
        figures = _figures(mine, info)
        entry["ours"] = figures | {"described": _kind_of_outputs(figures, info.frames)}
        if baseline is not None:
            entry["vs_jpeg"] = {
                "cpu_ms_per_mp": figures["cpu_ms_per_mp"] / baseline["cpu_ms_per_mp"]
            }
        low, high = (info.megapixels * f for f in SIZE_CLASS)
        same_size = [
            (i, row)
            for i, row in zip(photos, photo_rows, strict=True)
            if low <= i.megapixels <= high
        ]
        if info.frames == 1 and same_size:
            medians = _medians([row for _, row in same_size])
            entry["size_class"] = {
                "range_mp": [low, high],
                "images": [i.name for i, _ in same_size],
                "megapixels": statistics.median(i.megapixels for i, _ in same_size),
            } | medians
            entry["vs_size_class"] = {
                key: figures[key] / medians[key]
                for key in ("cpu_ms", "wall_ms", "peak_rss_mb")
                if medians[key] > 0
            }
        candidates: dict[str, Any] = {}
        rank = {c: i for i, c in enumerate(CANDIDATE_ORDER)}
        for candidate in sorted(per, key=lambda c: (rank.get(c, len(rank)), c)):
            result = per[candidate]
            if not _ok(result):
                candidates[candidate] = {"result": _failure(result.get("error", "no result"))}
                continue
            record: dict[str, Any] = {"cpu_ms": result["cpu_ms"], "wall_ms": result["wall_ms"]}
            if candidate in FLOORS.values():
                record["result"] = "decode alone + encode alone" + (
                    " (frame 0)" if info.frames > 1 else ""
                )
            else:
                theirs = _figures(result, info)
                record |= {
                    "peak_rss_mb": theirs["peak_rss_mb"],
                    "output_bytes": theirs["output_bytes"],
                    "result": _kind_of_outputs(theirs, info.frames),
                }
            reference = per.get(OURS_FOR.get(candidate, ""))
            if _ok(reference) and reference is not None:
                ours_outputs = [o.get("frames") or 1 for o in reference["outputs"]]
                their_outputs = [o.get("frames") or 1 for o in result["outputs"]]
                same = their_outputs == ours_outputs or (
                    not their_outputs and set(ours_outputs) == {1}  # a floor: stills only
                )
                record["ours"] = OURS_FOR[candidate]
                record["comparable"] = same
                if same and result["cpu_ms"] > 0:
                    record["ours_vs_this"] = reference["cpu_ms"] / result["cpu_ms"]
            candidates[candidate] = record
        entry["candidates"] = candidates
        rows.append(entry)
    return {"baseline": baseline, "inputs": rows}


# ----------------------------------------------------------------------------- reports


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{suffix}"


def _target_rows(targets: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for t in targets:
        sign = ">=" if t["better"] == "high" else "<="
        unit = t["unit"]
        value = _fmt(t["value"], "+.2f" if unit == "dB" else ".2f", " dB" if unit == "dB" else "x")
        threshold = _fmt(
            t["threshold"], "+.2f" if unit == "dB" else ".3g", " dB" if unit == "dB" else "x"
        )
        low, high = t.get("round_min"), t.get("round_max")
        timed = unit == "x" and "rss" not in t["key"]  # memory and quality: one run each
        alone = f"{low:.2f}-{high:.2f}x" if timed and low is not None and high else "-"
        rows.append(
            [
                t["text"],
                f"{t['measure']} over {t['images']}",
                value,
                alone,
                f"{sign} {threshold}",
                "met" if t["met"] else "NOT met",
                f"{t['images_meeting']}/{t['images']}",
            ]
        )
    return rows


TARGET_HEADER = [
    "target",
    "aggregate",
    "measured",
    # Each round's timings on their own (the headline uses medians over all rounds per
    # image, so it need not lie inside this range; docs/performance.md).
    "each round alone",
    "threshold",
    "verdict",
    "images meeting it",
]
IMAGE_HEADER = [
    "image",
    "MP",
    "seed ms",
    "ours-300 ms",
    "floor-300 ms",
    "vs seed",
    "vs floor",
    "RSS seed/ours MB",
    "ours-set ms",
    "libvips ms",
    "floor-set ms",
    "vs libvips",
    "vs floor",
    "RSS ours/libvips MB",
]


def _image_rows(
    images: list[ImageInfo],
    summary: dict[str, dict[str, dict[str, Any]]],
    ratios: dict[str, dict[str, float]],
) -> list[list[str]]:
    rows = []
    for info in images:
        per, r = summary[info.name], ratios.get(info.name, {})

        def ms(candidate: str, per: dict[str, dict[str, Any]] = per) -> str:
            entry = per.get(candidate)
            return _fmt(entry["cpu_ms"], ".0f") if _ok(entry) and entry else "err"

        def rss(candidate: str, per: dict[str, dict[str, Any]] = per) -> str:
            entry = per.get(candidate)
            return _fmt(entry.get("peak_rss_mb"), ".0f") if _ok(entry) and entry else "-"

        rows.append(
            [
                info.name,
                f"{info.megapixels:.1f}",
                ms("seed"),
                ms("imgpipe-300"),
                ms("floor-300"),
                _fmt(r.get("thumb_speedup_vs_seed"), ".1f", "x"),
                _fmt(r.get("thumb_vs_floor"), ".2f", "x"),
                f"{rss('seed')}/{rss('imgpipe-300')}",
                ms("imgpipe-set"),
                ms("libvips-set"),
                ms("floor-set"),
                _fmt(r.get("set_vs_libvips"), ".2f", "x"),
                _fmt(r.get("set_vs_floor"), ".2f", "x"),
                f"{rss('imgpipe-set')}/{rss('libvips-set')}",
            ]
        )
    return rows


THROUGHPUT_CANDIDATES = (
    ("seed", "seed"),
    ("ours-300", "imgpipe-300"),
    ("libvips-300", "libvips-300"),
    ("ours-set", "imgpipe-set"),
    ("libvips-set", "libvips-set"),
)
THROUGHPUT_HEADER = (
    ["image"]
    + [f"{label} MP/s" for label, _ in THROUGHPUT_CANDIDATES]
    + [f"{label} KB" for label, _ in THROUGHPUT_CANDIDATES]
)


def _throughput_rows(
    images: list[ImageInfo], summary: dict[str, dict[str, dict[str, Any]]]
) -> list[list[str]]:
    """Source megapixels per CPU second and total output size, per image and in aggregate.

    The aggregate row is over the images every candidate rendered: geometric mean of
    MP/s (like the ratios) and the sum of the output bytes.
    """
    rows = []
    complete = []
    for info in images:
        per = summary[info.name]
        entries = [per.get(candidate) for _, candidate in THROUGHPUT_CANDIDATES]
        if all(_ok(entry) for entry in entries):
            complete.append(entries)
        rows.append(
            [info.name]
            + [_fmt(e["mp_per_s"], ".0f") if e and _ok(e) else "err" for e in entries]
            + [_fmt(e["output_bytes"] / 1000, ".0f") if e and _ok(e) else "-" for e in entries]
        )
    if complete:
        columns = list(zip(*complete, strict=True))
        rows.append(
            [f"all {len(complete)} (geomean MP/s, total KB)"]
            + [_fmt(geomean([e["mp_per_s"] for e in column]), ".0f") for column in columns]
            + [_fmt(sum(e["output_bytes"] for e in column) / 1000, ".0f") for column in columns]
        )
    return rows


NEW_INPUT_HEADER = [
    "input",
    "MP x frames",
    "CPU ms",
    "wall ms",
    "CPU ms per MP",
    "peak RSS MB",
    "work adds MB",
    "output KB",
    "outputs",
    "ms per MP vs JPEG photos",
    "CPU vs same-size JPEGs",
    "wall vs them",
    "peak RSS vs them",
]
CANDIDATE_HEADER = [
    "input",
    "candidate",
    "result",
    "CPU ms",
    "wall ms",
    "peak RSS MB",
    "output KB",
    "ours / this",
]


def _new_input_rows(new: dict[str, Any]) -> list[list[str]]:
    rows = []
    for entry in new["inputs"]:
        size = f"{entry['megapixels']:.1f} x {entry['frames']}"
        figures = entry.get("ours")
        if figures is None:
            rows.append([entry["image"], size, _failure(entry["error"])] + ["-"] * 10)
            continue
        vs_jpeg, vs_size = entry.get("vs_jpeg", {}), entry.get("vs_size_class", {})
        rows.append(
            [
                entry["image"],
                size,
                f"{figures['cpu_ms']:.0f}",
                f"{figures['wall_ms']:.0f}",
                f"{figures['cpu_ms_per_mp']:.1f}",
                f"{figures['peak_rss_mb']:.0f}",
                f"{figures['work_adds_mb']:.0f}",
                f"{figures['output_bytes'] / 1000:.0f}",
                figures["described"],
                _fmt(vs_jpeg.get("cpu_ms_per_mp"), ".2f", "x"),
                _fmt(vs_size.get("cpu_ms"), ".2f", "x"),
                _fmt(vs_size.get("wall_ms"), ".2f", "x"),
                _fmt(vs_size.get("peak_rss_mb"), ".2f", "x"),
            ]
        )
    references = []
    if new["baseline"]:
        references.append((new["baseline"]["label"], new["baseline"]))
    for entry in new["inputs"]:
        if entry.get("size_class"):
            low, high = entry["size_class"]["range_mp"]
            label = f"JPEG photos of {entry['image']}'s size ({low:.1f}-{high:.1f} MP)"
            references.append((label, entry["size_class"]))
    for label, figures in references:
        rows.append(
            [
                f"{label}, median of {len(figures['images'])}",
                f"{figures['megapixels']:.1f} x 1",
                f"{figures['cpu_ms']:.0f}",
                f"{figures['wall_ms']:.0f}",
                f"{figures['cpu_ms_per_mp']:.1f}",
                f"{figures['peak_rss_mb']:.0f}",
                f"{figures['work_adds_mb']:.0f}",
                f"{figures['output_bytes'] / 1000:.0f}",
                "stills",
                "1.00x" if figures is new["baseline"] else "-",
                "-",
                "-",
                "-",
            ]
        )
    return rows


def _candidate_rows(new: dict[str, Any]) -> list[list[str]]:
    rows = []
    for entry in new["inputs"]:
        for candidate, record in entry.get("candidates", {}).items():
            if "ours_vs_this" in record:
                versus = f"{record['ours_vs_this']:.2f}x"
            elif record.get("comparable") is False:
                versus = "not comparable"
            else:
                versus = "-"
            rows.append(
                [
                    entry["image"],
                    candidate,
                    record["result"],
                    _fmt(record.get("cpu_ms"), ".0f"),
                    _fmt(record.get("wall_ms"), ".0f"),
                    _fmt(record.get("peak_rss_mb"), ".0f"),
                    _fmt(record["output_bytes"] / 1000, ".0f") if "output_bytes" in record else "-",
                    versus,
                ]
            )
    return rows


QUALITY_HEADER = [
    "image",
    "ours-set worst vs libvips",
    "ours-300 vs seed",
    "ours-300 vs libvips",
    "seed checks failed",
]


def _quality_rows(
    images: list[ImageInfo],
    summary: dict[str, dict[str, dict[str, Any]]],
    ratios: dict[str, dict[str, float]],
) -> list[list[str]]:
    rows = []
    for info in images:
        r = ratios.get(info.name, {})
        seed = summary[info.name].get("seed") or {}
        failed = [
            c.removesuffix("_ok")
            for c in ("orientation_ok", "srgb_ok", "alpha_ok")
            if seed.get(c) is False
        ]
        rows.append(
            [
                info.name,
                _fmt(r.get("set_psnr_vs_libvips_min_db"), "+.2f", " dB"),
                _fmt(r.get("thumb_psnr_vs_seed_db"), "+.2f", " dB"),
                _fmt(r.get("thumb_psnr_vs_libvips_db"), "+.2f", " dB"),
                ", ".join(failed) or "-",
            ]
        )
    return rows


COLD_HEADER = [
    "process",
    "whole process ms",
    "init ms",
    "vs bare (process)",
    "vs bare (init)",
    "RSS MB",
    "clients at first use ms",
    "init + first use vs bare (init)",
    "heavy modules loaded",
]


def _cold_rows(cold: dict[str, Any]) -> list[list[str]]:
    rows = []
    for label, v in cold["variants"].items():
        rows.append(
            [
                label,
                f"{v['process_ms']:.0f}",
                f"{v['init_ms']:.0f}",
                f"{v['process_ratio']:.2f}x",
                f"{v['init_ratio']:.2f}x",
                f"{v['rss_mb']:.0f}",
                # Moved out of init, not saved: shown beside it (benchmarks/coldstart.py).
                f"{v['first_use_ms']:.0f}" if v.get("first_use_ms") is not None else "-",
                f"{v['init_and_first_use_ratio']:.2f}x" if "init_and_first_use_ratio" in v else "-",
                ", ".join(m for m in v["loaded"] if m not in ("botocore",)) or "-",
            ]
        )
    return rows


def _cost_rows(estimate: dict[str, Any]) -> list[list[str]]:
    rows = [
        [line["item"], f"${line['usd_per_million']:.2f}", line["basis"]]
        for line in estimate["lines"]
    ]
    for key, name in (
        ("step_functions_standard", "Step Functions Standard"),
        ("step_functions_express", "Step Functions Express"),
    ):
        rows.append([name, f"${estimate[key]['usd_per_million']:.2f}", estimate[key]["basis"]])
    rows.append(["total with Standard", f"${estimate['total_standard']:.2f}", ""])
    rows.append(["total with Express", f"${estimate['total_express']:.2f}", ""])
    return rows


def _rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(header):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_reports(
    result: dict[str, Any], images: list[ImageInfo]
) -> tuple[list[tuple[str, list[str], list[list[str]]]], str]:
    summary, ratios = result["summary"], result["ratios"]
    photos = [i for i in images if i.group in ("photo", "synthetic")]
    others = [i for i in images if i.group == "other"]
    sections: list[tuple[str, list[str], list[list[str]]]] = [
        (
            "Targets (JPEG photos >= 4 MP; quality over every image)",
            TARGET_HEADER,
            _target_rows(result["targets"]),
        ),
        (
            "JPEG photos >= 4 MP (CPU ms, medians)",
            IMAGE_HEADER,
            _image_rows(photos, summary, ratios),
        ),
    ]
    if others:
        sections.append(
            ("Other images (CPU ms, medians)", IMAGE_HEADER, _image_rows(others, summary, ratios))
        )
    new = result.get("heic_and_animation")
    if new:
        sections.append(
            (
                "HEIC and long animation beside the JPEG photos "
                "(default set, ours; medians; CPU ms per MP counts every frame)",
                NEW_INPUT_HEADER,
                _new_input_rows(new),
            )
        )
        sections.append(
            (
                "HEIC and long animation: every candidate (medians; ours / this only where "
                "both made the same outputs)",
                CANDIDATE_HEADER,
                _candidate_rows(new),
            )
        )
    for title, group in (("JPEG photos >= 4 MP", photos), ("other images", others)):
        if group:
            sections.append(
                (
                    f"Throughput and output size, {title} (source MP per CPU second; KB)",
                    THROUGHPUT_HEADER,
                    _throughput_rows(group, summary),
                )
            )
    sections.append(
        (
            "Quality (PSNR differences; positive = ours better)",
            QUALITY_HEADER,
            _quality_rows(images, summary, ratios),
        )
    )
    checks = result.get("correctness") or {}
    if checks:
        rows = [
            [candidate]
            + [
                f"{c[check]['passed']}/{c[check]['applicable']}"
                for check in ("orientation_ok", "srgb_ok", "alpha_ok")
            ]
            for candidate, c in checks.items()
        ]
        header = ["candidate", "EXIF orientation", "ICC -> sRGB", "alpha"]
        sections.append(
            ("Correctness (images passing / images the check applies to)", header, rows)
        )
    if result.get("coldstart"):
        sections.append(("Cold start (medians)", COLD_HEADER, _cold_rows(result["coldstart"])))
        breakdown = result["coldstart"].get("resize_breakdown") or []
        if breakdown:
            sections.append(
                (
                    "Resize handler init, step by step",
                    ["step", "ms"],
                    [[b["step"], f"{b['ms']:.0f}"] for b in breakdown],
                )
            )
    for estimate in result.get("cost", []):
        sections.append(
            (
                f"Cost per million images: {estimate['label']}",
                ["item", "USD / 1M images", "basis"],
                _cost_rows(estimate),
            )
        )

    settings = result["settings"]
    md = [
        "# Benchmark results (latest run)",
        "",
        f"Run {result['started']} on {result['machine']['cpu']} "
        f"({result['machine']['cpus']} CPUs), "
        f"load average {result['machine']['load_start']} -> {result['machine']['load_end']}; "
        f"{len(images)} images from `{settings['images']}`, {settings['rounds']} timing "
        f"round(s) x {settings['runs']} run(s) per image; {result['duration_s']:.0f} s. "
        "Times are CPU time (all threads). Method: docs/performance.md.",
        "",
    ]
    preview = result.get("placeholder")
    if preview:
        md += [_placeholder_line(preview), ""]
    memory = result.get("memory_50mp")
    if memory:
        md += [
            f"50 MP ({memory['image']}, {memory['megapixels']:.1f} MP) default set: peak RSS "
            f"{memory['peak_rss_mb']:.0f} MB in the benchmark process (render adds "
            f"{memory['render_adds_mb']:.0f} MB); with the resize handler's footprint once "
            "its clients exist "
            f"({_fmt(memory['handler_init_rss_mb'], '.0f')} MB) and the source bytes: "
            f"~{memory['estimated_lambda_peak_mb']:.0f} MB of {memory['lambda_mb']} MB "
            f"({'room to spare' if memory['met'] else 'too tight'}).",
            "",
        ]
    for title, header, rows in sections:
        md += [f"## {title}", "", _md_table(header, rows), ""]
    return sections, "\n".join(md)


PLACEHOLDER_TARGET_MS = 5.0


def placeholder_cost(
    images: list[ImageInfo], summary: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, Any] | None:
    """CPU ms the manifest's placeholder adds to the default set: over the JPEG photos,
    or over every image of the set when it has none."""

    def measured(info: ImageInfo) -> bool:
        return "placeholder_cpu_ms" in summary[info.name].get("floor-set", {}) and _ok(
            summary[info.name].get("imgpipe-set")
        )

    chosen = [i for i in images if i.group == "photo" and measured(i)]
    over = "JPEG photos >= 4 MP"
    if not chosen:
        chosen = [i for i in images if i.group in ("photo", "other") and measured(i)]
        over = "images of this set"
    if not chosen:
        return None
    pairs = [
        (
            summary[i.name]["floor-set"]["placeholder_cpu_ms"],
            summary[i.name]["imgpipe-set"]["cpu_ms"],
        )
        for i in chosen
    ]
    times = [ms for ms, _ in pairs]
    return {
        "over": over,
        "images": len(pairs),
        "median_ms": statistics.median(times),
        "max_ms": max(times),
        "share_of_render": statistics.median(ms / render for ms, render in pairs),
        "target_ms": PLACEHOLDER_TARGET_MS,
        "met": max(times) < PLACEHOLDER_TARGET_MS,
    }


def _placeholder_line(preview: dict[str, Any]) -> str:
    return (
        f"Placeholder (ThumbHash + average colour, from the smallest rendition of the default "
        f"set): median {preview['median_ms']:.1f} ms, slowest {preview['max_ms']:.1f} ms of CPU "
        f"over {preview['images']} {preview['over']}, {100 * preview['share_of_render']:.1f} % "
        f"of their render; target < {preview['target_ms']:.0f} ms: "
        f"{'met' if preview['met'] else 'NOT met'}."
    )


# -------------------------------------------------------------------------------- main


def machine_info() -> dict[str, Any]:
    from PIL import __version__ as pillow_version
    from PIL import features

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "pillow": pillow_version,
        "libjpeg": features.version("jpg"),
        "libwebp": features.version("webp"),
    }
    if importlib.util.find_spec("pyvips") is not None:
        import pyvips

        info["libvips"] = f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
        info["pyvips"] = pyvips.__version__
    return info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--images", type=Path, help="folder of images (default ../shared/corpus, else the samples)"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (default 3; --quick: 1)"
    )
    parser.add_argument("--runs", type=int, default=1, help="timed runs per image and round")
    parser.add_argument("--quick", action="store_true", help="a few images, one round (smoke test)")
    parser.add_argument("--quick-images", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the result files go")
    parser.add_argument("--candidates", help=f"comma-separated subset of {','.join(CANDIDATES)}")
    parser.add_argument(
        "--coldstart-runs",
        type=int,
        default=None,
        help="cold-start runs (default 7; --quick: 1; 0 skips)",
    )
    parser.add_argument(
        "--webp-method", type=int, help="WebP method/effort for both imgpipe and libvips"
    )
    parser.add_argument(
        "--no-synthetic",
        dest="synthetic",
        action="store_false",
        help="skip the generated 50 MP JPEG",
    )
    parser.add_argument(
        "--no-heic",
        dest="heic",
        action="store_false",
        help="skip the generated 12 MP HEIC (--quick: 0.8 MP)",
    )
    parser.add_argument(
        "--no-animation",
        dest="animation",
        action="store_false",
        help="skip the generated 500-frame GIF (--quick: 60 frames)",
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.coldstart_runs is None:
        args.coldstart_runs = 1 if args.quick else 7
    if args.quick:
        args.synthetic = False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    load_start = os.getloadavg()[0]
    candidates = (
        list(CANDIDATES) if not args.candidates else [c.strip() for c in args.candidates.split(",")]
    )
    unknown = sorted(set(candidates) - set(CANDIDATES))
    if unknown:
        msg = f"unknown candidates: {', '.join(unknown)}"
        raise SystemExit(msg)
    if importlib.util.find_spec("pyvips") is None and VIPS_CANDIDATES & set(candidates):
        console.print(
            "[yellow]pyvips is not installed (make bench installs it): "
            "libvips candidates skipped[/]"
        )
        candidates = [c for c in candidates if c not in VIPS_CANDIDATES]

    if args.webp_method is not None:
        os.environ[WEBP_METHOD_ENV] = str(args.webp_method)
    cache = args.out / "cache"
    images, source = select_images(args, cache)
    console.print(
        f"{len(images)} images from {source}; candidates: {', '.join(candidates)}; "
        f"rounds: {args.rounds}"
    )
    measured = measure(images, candidates, args.rounds, args.runs)
    summary = summarise(images, measured)
    ratios = {info.name: image_ratios(summary[info.name]) for info in images}
    targets = with_round_spread(evaluate_targets(images, ratios), images, measured)

    cold = None
    if args.coldstart_runs > 0:
        with console.status("cold starts"):
            cold = coldstart.measure(REPO, args.coldstart_runs)
    # The footprint the render sits on: after init and after the first use of the
    # clients (which exist by the time the source is downloaded).
    resize_cold = cold["variants"].get("resize", {}) if cold else {}
    handler_rss = resize_cold.get("first_use_rss_mb") or resize_cold.get("rss_mb")
    result: dict[str, Any] = {
        "schema": 1,
        "started": started.isoformat(timespec="seconds"),
        "machine": machine_info() | {"load_start": round(load_start, 2)},
        "settings": {
            "images": source,
            "rounds": args.rounds,
            "runs": args.runs,
            "quick": args.quick,
            "candidates": candidates,
            "webp_method": args.webp_method,
            "clock": "cpu_ms (process CPU time, all threads); wall_ms also recorded",
        },
        "images": [asdict(i) for i in images],
        "memory_records": measured.memory,
        "timing_records": measured.timing,
        "summary": summary,
        "ratios": ratios,
        "targets": targets,
        "correctness": correctness(images, summary),
        "memory_50mp": memory_50mp(images, summary, handler_rss),
        "heic_and_animation": heic_and_animation(images, summary),
        "coldstart": cold,
    }
    if cold is not None:
        cold_targets = [
            {
                "handler": label,
                "process_ratio": v["process_ratio"],
                "init_ratio": v["init_ratio"],
                "met": max(v["process_ratio"], v["init_ratio"]) <= 1.3,
            }
            for label, v in cold["variants"].items()
            if label != "bare" and not label.endswith("-no-xray")
        ]
        result["coldstart_targets"] = cold_targets
    estimates = []
    memory_mb = cold["memory_mb"] if cold else {"validate": 256, "resize": 1024, "store": 256}
    # Transitions and validate/store durations from one real execution of the ASL.
    path = cost.measure_processed_path(_cost_photo())
    for group, label in (("photo", "JPEG photo >= 4 MP"), (None, "image of this set")):
        times = [
            summary[i.name]["imgpipe-set"]["cpu_ms"]
            for i in images
            if (i.group == group if group else i.group in ("photo", "other"))
            and _ok(summary[i.name].get("imgpipe-set"))
        ]
        if times:
            median, slowest = statistics.median(times), max(times)
            estimates.append(cost.estimate(median, memory_mb, path, f"median {label}"))
            estimates.append(cost.estimate(slowest, memory_mb, path, f"slowest {label}"))
            break
    result["cost"] = estimates
    result["placeholder"] = placeholder_cost(images, summary)
    result["machine"]["load_end"] = round(os.getloadavg()[0], 2)
    result["duration_s"] = time.perf_counter() - clock

    sections, markdown = render_reports(result, images)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    json_path = args.out / f"{stamp}.json"
    json_path.write_text(
        json.dumps(_finite(result), indent=1, allow_nan=False) + "\n", encoding="utf-8"
    )
    (args.out / "latest.md").write_text(markdown + "\n", encoding="utf-8")
    for title, header, rows in sections:
        console.print(_rich_table(title, header, rows))
    if result["placeholder"]:
        console.print(_placeholder_line(result["placeholder"]))
    console.print(f"results: {json_path} and {args.out / 'latest.md'}")
    return 0


def _cost_photo() -> bytes:
    """A small generated photo for the cost model's measured execution."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.radial_gradient("L").resize((1200, 800)).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def _finite(value: Any) -> Any:
    """The result with inf/nan (an identical output's PSNR) as null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    raise SystemExit(main())
