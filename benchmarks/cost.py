"""Cost per million processed images, from measured render times and list prices.

Only the compute of `resize` is measured here; everything else is counted from the
pipeline's shape (states, requests, items) or is a stated allowance. Prices: us-east-1
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
from pathlib import Path
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
# The processed path through statemachine/pipeline.asl.json, one transition per state.
PROCESSED_PATH = (
    "WhatHappened",
    "Validate",
    "IsRenderable",
    "Resize",
    "IsRendered",
    "Store",
    "IsStored",
    "Processed",
)
# Requests per processed image (docs/performance.md, "Cost").
S3_GETS = 2 + 1 + 6  # validate HEAD + ranged GET; resize GET; store HEAD per rendition
S3_PUTS = 6 + 1  # resize: one per rendition; store: the manifest
DDB_WRITES = 2  # validate PutItem (claim); store UpdateItem (finish)
DDB_READS = 2  # resize GetItem; store GetItem
# Allowances for the parts not measured here (network-bound, not CPU-bound), warm.
VALIDATE_MS = 60.0  # HEAD + 64 KiB ranged GET + PutItem
STORE_MS = 80.0  # GetItem + 6 HEADs + manifest PUT + UpdateItem
RESIZE_IO_MS = 200.0  # GetItem + GET of the source + 6 PUTs, sequential
SFN_OVERHEAD_MS = 150.0  # state transitions between the three tasks (Express duration)


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
    asl_path: Path,
    label: str,
) -> dict[str, Any]:
    """Dollars per million images whose resize render takes `render_cpu_ms` of CPU here."""
    states = json.loads(asl_path.read_text(encoding="utf-8"))["States"]
    missing = [s for s in PROCESSED_PATH if s not in states]
    if missing:
        msg = f"{asl_path} has no states {missing}: update PROCESSED_PATH"
        raise ValueError(msg)

    resize_mb = memory_mb.get("resize", 1024)
    validate_mb = memory_mb.get("validate", 256)
    store_mb = memory_mb.get("store", 256)
    resize_ms = render_cpu_ms / cpu_share(resize_mb) + RESIZE_IO_MS
    durations = {"validate": VALIDATE_MS, "resize": resize_ms, "store": STORE_MS}
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
    standard = len(PROCESSED_PATH) * SFN_STANDARD_TRANSITION * 1e6
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
            "basis": f"{len(PROCESSED_PATH)} state transitions",
        },
        "step_functions_express": {
            "usd_per_million": express,
            "basis": f"1 request + {billed_s:.1f} s x 64 MB",
        },
        "total_standard": common + standard,
        "total_express": common + express,
        "assumptions": {
            "validate_ms": VALIDATE_MS,
            "store_ms": STORE_MS,
            "resize_io_ms": RESIZE_IO_MS,
            "sfn_overhead_ms": SFN_OVERHEAD_MS,
        },
    }
