"""Runs one benchmark candidate in its own process; speaks JSON lines.

    python -m benchmarks.worker once CANDIDATE IMAGE [--outputs DIR]
    python -m benchmarks.worker serve CANDIDATE      (requests on stdin, one per line)

`once` is a fresh process for one image: it imports what the candidate needs, reads the
image into memory, runs the candidate once and reports its peak RSS (the memory one
invocation needs, interpreter included) and its outputs' sizes and frame counts (an
animation's rendition may be animated or a still); with `--outputs` it writes the
encoded outputs for the quality comparison.

`serve` is the timing process: one per candidate for a whole run, so a timed run never
pays for imports, plugin registration or a first-use code path (an untimed warm-up run
precedes the first image of each file type). Each request `{"image": PATH, "runs": N}`
gets N runs timed with CPU time (all threads) and wall time.

Candidates (docs/performance.md):

* `seed`: the classic tutorial handler, `Image.open` -> `convert("RGB")` ->
  `thumbnail((300, 300))` -> JPEG with Pillow's defaults (quality 75).
* `imgpipe-300`: `imaging.render` for one 300-px JPEG at the seed's quality (75).
* `imgpipe-set`: `imaging.render` for the default rendition set (`resize_config`).
* `libvips-300` / `libvips-set`: the same outputs with pyvips: one `thumbnail` (shrink
  on load, autorotate, ICC import to sRGB when the source has a profile, as ours), then
  chained `thumbnail_image` calls on the in-memory result, the same encoder settings;
  single-threaded (`VIPS_CONCURRENCY=1`), operation cache off.

The decode floor is measured by the imgpipe candidates' timing processes right after
each timed run, on the same image: the decode alone at the JPEG draft scale the largest
rendition needs (`draft` + `load`), at two scales (the one the pipeline's quality rule
needs, at least 2x left for the final Lanczos, which is also libvips's shrink-on-load
rule; and the bare minimum, the smallest DCT scale still as large as the output), plus
the encode alone of exactly the pixels the pipeline handed its encoder in that run.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEED_BOX = 300
SEED_QUALITY = 75  # Pillow's JPEG default, which the tutorial handler uses
THUMB_SIZE = 300
# Lets the benchmark measure another WebP effort for both imgpipe and libvips.
WEBP_METHOD_ENV = "IMGPIPE_BENCH_WEBP_METHOD"

CANDIDATES = ("seed", "imgpipe-300", "imgpipe-set", "libvips-300", "libvips-set")
VIPS_CANDIDATES = frozenset({"libvips-300", "libvips-set"})
# The floor measured alongside each imgpipe candidate.
FLOORS = {"imgpipe-300": "floor-300", "imgpipe-set": "floor-set"}


@dataclass(frozen=True)
class Output:
    name: str
    format: str
    width: int
    height: int
    data: bytes = field(repr=False)


Timing = tuple[float, float]  # CPU ms, wall ms
Runner = Callable[[], list[Output]]
FloorTimer = Callable[[], dict[str, Timing]]


def _timed(fn: Callable[[], Any]) -> tuple[Any, Timing]:
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    return value, ((time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000)


# ------------------------------------------------------------------------- candidates


def _seed(data: bytes) -> tuple[Runner, FloorTimer | None]:
    from PIL import Image

    def run() -> list[Output]:
        image: Image.Image = Image.open(io.BytesIO(data))
        image = image.convert("RGB")
        image.thumbnail((SEED_BOX, SEED_BOX))
        out = io.BytesIO()
        image.save(out, "JPEG")
        return [Output("300.jpg", "JPEG", image.width, image.height, out.getvalue())]

    return run, None


def thumb_settings() -> Any:
    from imgpipe.specs import RenderSettings, RenditionSpec

    return RenderSettings((RenditionSpec("300", THUMB_SIZE, "JPEG", SEED_QUALITY),))


def default_settings() -> Any:
    from imgpipe.config import resize_config

    # The defaults the template gives; only the required names need a value.
    env = {"OUTPUT_BUCKET": "bench-output", "STATE_TABLE": "bench", "INPUT_BUCKET": "bench-input"}
    settings = resize_config(env).render
    method = os.environ.get(WEBP_METHOD_ENV)
    if method:
        settings = dataclasses.replace(settings, webp_method=int(method))
    return settings


def _imgpipe(
    settings_factory: Callable[[], Any],
) -> Callable[[bytes], tuple[Runner, FloorTimer | None]]:
    def prepare(data: bytes) -> tuple[Runner, FloorTimer | None]:
        from PIL import Image

        from imgpipe import imaging
        from imgpipe.placeholder import placeholder

        settings = settings_factory()
        encoder = imaging._encode
        # What the last run handed its encoder (references only: nothing is copied,
        # and the encoder only clears `info`), for the floor's encode-alone timing.
        handed: list[tuple[Any, Any]] = []
        facts_box: list[Any] = []
        rendered_box: list[Any] = []

        def capture(image: Any, spec: Any, settings: Any) -> bytes:
            handed.append((image, spec))
            return encoder(image, spec, settings)

        def run() -> list[Output]:
            handed.clear()
            imaging._encode = capture
            try:
                facts, rendered = imaging.render(data, settings)
            finally:
                imaging._encode = encoder
            facts_box[:] = [facts]
            rendered_box[:] = rendered
            return [
                Output(r.spec.filename, r.spec.format, r.width, r.height, r.data) for r in rendered
            ]

        def decode(gap: float) -> None:
            facts = facts_box[0]
            plans = imaging._plan(facts.width, facts.height, facts.orientation, settings)
            need = max((stored for _, _, stored in plans), key=lambda s: s[0] * s[1])
            image = Image.open(io.BytesIO(data))
            if image.format in ("JPEG", "MPO") and need[0] < image.width:
                image.draft(image.mode, (round(need[0] * gap), round(need[1] * gap)))
            image.load()

        def floor() -> dict[str, Timing]:
            _, at_gap = _timed(lambda: decode(imaging._DRAFT_GAP))
            _, at_minimum = _timed(lambda: decode(1.0))
            pairs = list(handed)
            _, encode = _timed(lambda: [encoder(image, spec, settings) for image, spec in pairs])
            # What the resize stage adds to the render: the manifest's placeholder.
            _, preview = _timed(lambda: placeholder(rendered_box, facts_box[0].has_alpha))
            return {
                "decode": at_gap,
                "decode_1x": at_minimum,
                "encode": encode,
                "placeholder": preview,
            }

        return run, floor

    return prepare


def _vips_encode(image: Any, name: str, fmt: str, quality: int, webp_effort: int) -> Output:
    if fmt == "JPEG":
        if image.hasalpha():
            image = image.flatten(background=[255] * (image.bands - 1))
        data = image.jpegsave_buffer(
            Q=quality,
            optimize_coding=True,
            interlace=image.width * image.height >= 200_000,
            subsample_mode="on",
            keep=0,
        )
    else:
        data = image.webpsave_buffer(Q=quality, effort=webp_effort, keep=0)
    return Output(name, fmt, image.width, image.height, data)


def _vips_eight_bit(image: Any) -> Any:
    if image.format == "uchar":
        return image
    return image.colourspace("b-w" if image.bands in (1, 2) else "srgb")


def _libvips(
    settings_factory: Callable[[], Any],
) -> Callable[[bytes], tuple[Runner, FloorTimer | None]]:
    def prepare(data: bytes) -> tuple[Runner, FloorTimer | None]:
        os.environ.setdefault("VIPS_CONCURRENCY", "1")
        import pyvips

        pyvips.cache_set_max(0)
        settings = settings_factory()
        sizes = sorted({spec.size for spec in settings.renditions}, reverse=True)

        def run() -> list[Output]:
            # Colour-manage exactly when the source embeds a profile, as the pipeline
            # does (libvips's thumbnail ignores an embedded profile unless asked to
            # export to one; asking always would also transform every untagged image).
            header = pyvips.Image.new_from_buffer(data, "")
            managed = header.get_typeof("icc-profile-data") != 0
            colour = {"output_profile": "srgb"} if managed else {}
            made: dict[int, Any] = {}
            previous = None
            for size in sizes:
                if previous is None:
                    image = pyvips.Image.thumbnail_buffer(
                        data, size, height=size, size="down", **colour
                    )
                else:
                    image = previous.thumbnail_image(size, height=size, size="down")
                previous = made[size] = _vips_eight_bit(image).copy_memory()
            return [
                _vips_encode(
                    made[spec.size], spec.filename, spec.format, spec.quality, settings.webp_method
                )
                for spec in settings.renditions
            ]

        return run, None

    return prepare


PREPARE: dict[str, Callable[[bytes], tuple[Runner, FloorTimer | None]]] = {
    "seed": _seed,
    "imgpipe-300": _imgpipe(thumb_settings),
    "imgpipe-set": _imgpipe(default_settings),
    "libvips-300": _libvips(thumb_settings),
    "libvips-set": _libvips(default_settings),
}


# ----------------------------------------------------------------------------- process


def _peak_rss_kb() -> int:
    """This process's peak RSS in KiB since it started its program.

    `VmHWM` rather than `ru_maxrss`: Linux carries `ru_maxrss` over `exec` from the
    address space the child was spawned with, which is the parent's, so a large parent
    (the orchestrator after scoring a 50 MP image) would show up in every worker.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _frames(data: bytes) -> int | None:
    """How many frames an encoded output holds (1: a still); None if Pillow cannot tell."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(getattr(image, "n_frames", 1))
    except (OSError, SyntaxError, ValueError):
        return None


def _error(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    # libvips puts the cause last, after a line per failed seek: keep both ends.
    return text if len(text) <= 300 else f"{text[:100]} ... {text[-195:]}"


def once(candidate: str, image: Path, outputs: Path | None) -> dict[str, Any]:
    """A fresh process's single run: peak RSS and the outputs."""
    result: dict[str, Any] = {"candidate": candidate, "image": image.name}
    try:
        data = image.read_bytes()
        run, _ = PREPARE[candidate](data)
        result["rss_base_kb"] = _peak_rss_kb()
        produced, timing = _timed(run)
        result["rss_peak_kb"] = _peak_rss_kb()
        result["cold"] = {"cpu_ms": timing[0], "wall_ms": timing[1]}
        # Counted after the peak was read: opening the outputs must not add to it.
        result["outputs"] = [
            {"name": o.name, "format": o.format, "width": o.width, "height": o.height}
            | {"bytes": len(o.data), "frames": _frames(o.data)}
            for o in produced
        ]
        if outputs is not None:
            outputs.mkdir(parents=True, exist_ok=True)
            for o in produced:
                (outputs / o.name).write_bytes(o.data)
    except Exception as exc:
        # An image a candidate cannot handle (libvips on the damaged corpus JPEG) is a
        # result to report, not a reason to stop the benchmark.
        result["error"] = _error(exc)
    return result


def serve(candidate: str) -> None:
    """Timed runs for each request on stdin; one JSON line out per request."""
    warmed: set[str] = set()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        image = Path(request["image"])
        result: dict[str, Any] = {"candidate": candidate, "image": image.name, "runs": []}
        try:
            data = image.read_bytes()
            run, floor = PREPARE[candidate](data)
            kind = image.suffix.lower()
            if kind not in warmed:
                run()  # untimed: lazy plugin imports and first-use paths of this type
                warmed.add(kind)
            for _ in range(int(request.get("runs", 1))):
                _, timing = _timed(run)
                sample: dict[str, Any] = {"cpu_ms": timing[0], "wall_ms": timing[1]}
                if floor is not None:
                    sample["floor"] = {
                        part: {"cpu_ms": c, "wall_ms": w} for part, (c, w) in floor().items()
                    }
                result["runs"].append(sample)
        except Exception as exc:
            result["error"] = _error(exc)
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    modes = parser.add_subparsers(dest="mode", required=True)
    one = modes.add_parser("once", help="one run in this fresh process: peak RSS, outputs")
    one.add_argument("candidate", choices=CANDIDATES)
    one.add_argument("image", type=Path)
    one.add_argument("--outputs", type=Path, help="write the encoded outputs here")
    server = modes.add_parser("serve", help="timed runs for JSON requests on stdin")
    server.add_argument("candidate", choices=CANDIDATES)
    args = parser.parse_args(argv)
    if args.mode == "once":
        sys.stdout.write(json.dumps(once(args.candidate, args.image, args.outputs)) + "\n")
    else:
        serve(args.candidate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
