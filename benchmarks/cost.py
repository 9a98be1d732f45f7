"""Cost per million processed images, from measured render times and list prices.

The render's CPU time comes from the benchmark; the state transitions and the warm
validate/store durations from a real processed execution of template.yaml and the ASL
on the local cloud (`measure_processed_path`); requests are counted from the code's
shape; the rest is a stated allowance. `python -m benchmarks.cost` prints both
workflow types for a generated 12 MP photo. Prices: us-east-1
list prices as given in the performance issue (Lambda arm64, Step Functions Standard
and Express, S3 Standard requests, DynamoDB on-demand).

CPU scaling: Lambda gives a function CPU in proportion to its memory, one full vCPU at
1,769 MB, so a 1,024 MB function gets ~0.58 vCPU and a 256 MB one ~0.145. The render is
single-threaded and CPU-bound, so its Lambda duration is taken as the CPU time measured
here divided by that share, assuming one Graviton core does this work at the speed of
one core of the benchmark machine (the codecs have NEON paths there as they have SIMD
paths here; this is the assumption to check first against a deployed stack).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

LAMBDA_GB_SECOND = 0.0000133334  # arm64
LAMBDA_REQUEST = 0.20 / 1_000_000
SFN_STANDARD_TRANSITION = 0.025 / 1000
SFN_EXPRESS_REQUEST = 1.00 / 1_000_000
SFN_EXPRESS_GB_SECOND = 0.00001667
SFN_EXPRESS_CHUNK_GB = 64 / 1024
S3_PUT = 0.005 / 1000
S3_GET = 0.0004 / 1000  # GET and HEAD
DDB_WRITE = 1.25 / 1_000_000
DDB_READ = 0.25 / 1_000_000

VCPU_AT_MB = 1769  # one full vCPU at this memory size
# Requests per processed image (docs/performance.md, "Cost"), with the consistency
# design of docs/delivery.md: every folder write happens in a lock, after a HEAD.
S3_GETS = 3 + 3 + 7  # validate: 2 HEAD + ranged GET; resize: GET, HEAD, manifest GET;
# store: HEAD of the source + one per rendition
S3_PUTS = 6 + 1 + 1  # resize: one per rendition; store: the manifest + a LIST (PUT price)
DDB_WRITES = 1 + 2 + 3  # validate: claim; resize: lock + release; store: lock, finish, release
DDB_READS = 2 + 1  # resize: claim checks before and in the lock; store: claim check
# Allowances for AWS's network round trips, which the local cloud does not have: floors
# under the durations measured there (validate, store) and resize's I/O.
VALIDATE_MS = 60.0
STORE_MS = 80.0
RESIZE_IO_MS = 200.0  # GetItem + GET of the source + 6 PUTs, sequential
SFN_OVERHEAD_MS = 150.0  # state transitions between the three tasks (Express duration)


@dataclass(frozen=True)
class ProcessedPath:
    """One processed execution of the real ASL on the local cloud, as it was billed."""

    states: tuple[str, ...]  # every StateEntered, in order: Standard bills each
    warm_ms: dict[str, float]  # validate/resize/store durations of a warm run

    @property
    def transitions(self) -> int:
        return len(self.states)


def transitions_of(history: list[dict[str, Any]]) -> tuple[str, ...]:
    """The states an execution entered, from its history (what Standard bills)."""
    return tuple(
        str(e["stateEnteredEventDetails"]["name"])
        for e in history
        if "stateEnteredEventDetails" in e
    )


def measure_processed_path(photo: bytes) -> ProcessedPath:
    """Upload `photo` twice through template.yaml and the ASL on the local cloud; the
    second (warm) execution's history and Lambda durations are the measurement."""
    from imgpipe.local.cloud import LocalCloud

    with LocalCloud.running(retry_sleep=lambda seconds: None) as cloud:
        cloud.upload("cost/warm-up.jpg", photo)
        seen = len(cloud.functions.invocations)
        record = cloud.upload("cost/photo.jpg", photo)
        if record.output is None or record.output.get("status") != "processed":
            msg = f"the cost run did not process its photo: {record.status} {record.output}"
            raise RuntimeError(msg)
        warm = {
            i.function.removesuffix("Function").lower(): i.duration_ms
            for i in cloud.functions.invocations[seen:]
        }
        return ProcessedPath(transitions_of(record.history), warm)


@dataclass(frozen=True)
class CostLine:
    item: str
    usd_per_million: float
    basis: str


def cpu_share(memory_mb: int) -> float:
    return min(1.0, memory_mb / VCPU_AT_MB)


def _billed_ms(ms: float) -> float:
    return float(int(ms) + (0 if ms == int(ms) else 1))  # Lambda bills per started ms


def estimate(
    render_cpu_ms: float,
    memory_mb: dict[str, int],
    path: ProcessedPath,
    label: str,
) -> dict[str, Any]:
    """Dollars per million images whose resize render takes `render_cpu_ms` of CPU here,
    with the transitions and the validate/store durations of a measured execution."""
    resize_mb = memory_mb.get("resize", 1024)
    validate_mb = memory_mb.get("validate", 256)
    store_mb = memory_mb.get("store", 256)
    resize_ms = render_cpu_ms / cpu_share(resize_mb) + RESIZE_IO_MS
    # The emulator's S3 and DynamoDB answer in well under a millisecond; AWS's round
    # trips do not, so the allowances stay as floors under the measured durations.
    durations = {
        "validate": max(path.warm_ms.get("validate", 0.0), VALIDATE_MS),
        "resize": resize_ms,
        "store": max(path.warm_ms.get("store", 0.0), STORE_MS),
    }
    sizes = {"validate": validate_mb, "resize": resize_mb, "store": store_mb}
    lines: list[CostLine] = []
    for name in ("validate", "resize", "store"):
        gb_s = _billed_ms(durations[name]) / 1000 * sizes[name] / 1024
        lines.append(
            CostLine(
                f"Lambda {name} compute",
                gb_s * LAMBDA_GB_SECOND * 1e6,
                f"{durations[name]:.0f} ms x {sizes[name]} MB = {gb_s:.4f} GB-s",
            )
        )
    lines.append(CostLine("Lambda requests", 3 * LAMBDA_REQUEST * 1e6, "3 invocations"))
    standard = path.transitions * SFN_STANDARD_TRANSITION * 1e6
    execution_s = (sum(durations.values()) + SFN_OVERHEAD_MS) / 1000
    billed_s = -(-execution_s * 10 // 1) / 10  # Express bills in 100 ms steps
    express = (SFN_EXPRESS_REQUEST + SFN_EXPRESS_CHUNK_GB * billed_s * SFN_EXPRESS_GB_SECOND) * 1e6
    lines.append(
        CostLine(
            "S3 requests",
            (S3_GETS * S3_GET + S3_PUTS * S3_PUT) * 1e6,
            f"{S3_GETS} GET/HEAD + {S3_PUTS} PUT",
        )
    )
    lines.append(
        CostLine(
            "DynamoDB on-demand",
            (DDB_WRITES * DDB_WRITE + DDB_READS * DDB_READ) * 1e6,
            f"{DDB_WRITES} writes + {DDB_READS} reads",
        )
    )
    common = sum(line.usd_per_million for line in lines)
    return {
        "label": label,
        "render_cpu_ms": render_cpu_ms,
        "resize_lambda_ms": resize_ms,
        "cpu_share": {name: cpu_share(mb) for name, mb in sizes.items()},
        "lines": [asdict(line) for line in lines],
        "step_functions_standard": {
            "usd_per_million": standard,
            "basis": f"{path.transitions} state transitions ({' > '.join(path.states)})",
        },
        "step_functions_express": {
            "usd_per_million": express,
            "basis": f"1 request + {billed_s:.1f} s x 64 MB",
        },
        "total_standard": common + standard,
        "total_express": common + express,
        "assumptions": {
            "validate_ms": durations["validate"],
            "store_ms": durations["store"],
            "resize_io_ms": RESIZE_IO_MS,
            "sfn_overhead_ms": SFN_OVERHEAD_MS,
        },
    }


def backfill_estimate(result: dict[str, Any]) -> dict[str, float]:
    """Dollars per million objects a backfill reaches, with Express children (the
    default): each child started by the Distributed Map bills the parent one state
    transition. A rendered object then costs what an Express execution of the pipeline
    costs; an up-to-date one a validate invocation (HEAD, manifest GET, folder LIST)
    and a short Express execution. The listing (1,000 keys per ListObjectsV2) and the
    result files are below a cent per million."""
    transition = SFN_STANDARD_TRANSITION * 1e6
    validate_gb_s = _billed_ms(VALIDATE_MS) / 1000 * 256 / 1024
    short_express = SFN_EXPRESS_REQUEST + SFN_EXPRESS_CHUNK_GB * 0.2 * SFN_EXPRESS_GB_SECOND
    up_to_date = (
        validate_gb_s * LAMBDA_GB_SECOND
        + LAMBDA_REQUEST
        + short_express
        + 2 * S3_GET
        + S3_PUT  # the LIST, at PUT price
        + DDB_READ
    ) * 1e6 + transition
    return {"rendered": result["total_express"] + transition, "up_to_date": up_to_date}


def main() -> int:
    import io

    from PIL import Image

    photo = io.BytesIO()
    Image.radial_gradient("L").resize((4000, 3000)).convert("RGB").save(photo, "JPEG", quality=90)
    path = measure_processed_path(photo.getvalue())
    render_ms = path.warm_ms.get("resize", 0.0) - RESIZE_IO_MS
    memory = {"validate": 256, "resize": 1024, "store": 256}
    # The local worker has a whole core: its time stands in for the render's CPU time at
    # one full vCPU, which `estimate` scales to the resize function's share.
    result = estimate(max(render_ms, 0.0), memory, path, "12 MP")
    print(f"processed path: {path.transitions} transitions: {' > '.join(path.states)}")
    print(f"warm durations (ms): {json.dumps({k: round(v) for k, v in path.warm_ms.items()})}")
    for kind in ("standard", "express"):
        sfn = result[f"step_functions_{kind}"]
        print(
            f"{kind:>8}: ${result[f'total_{kind}']:.2f} per million images "
            f"(Step Functions ${sfn['usd_per_million']:.2f}: {sfn['basis']})"
        )
    backfill = backfill_estimate(result)
    print(
        f"backfill: ${backfill['rendered']:.2f} per million objects rendered, "
        f"${backfill['up_to_date']:.2f} per million found up to date (Express children)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
