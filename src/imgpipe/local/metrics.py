"""The CloudWatch figures of a local run, read from the functions' EMF output.

Powertools prints each metric as an Embedded Metric Format JSON line; CloudWatch turns
those lines into metrics. Locally the lines are in each invocation's log, so the same
aggregation the dashboard shows (sums for counts and bytes, percentiles for durations)
can be computed from them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_PERCENTILE_UNITS = {"Milliseconds", "Seconds"}


@dataclass(frozen=True)
class Datapoint:
    namespace: str
    name: str
    unit: str
    dimensions: tuple[tuple[str, str], ...]
    value: float


def emf_blobs(log_text: str) -> list[dict[str, Any]]:
    blobs = []
    for line in log_text.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        try:
            blob = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(blob, dict) and "CloudWatchMetrics" in blob.get("_aws", {}):
            blobs.append(blob)
    return blobs


def datapoints(blobs: Iterable[dict[str, Any]]) -> list[Datapoint]:
    points = []
    for blob in blobs:
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            dimension_sets = directive.get("Dimensions") or [[]]
            for metric in directive["Metrics"]:
                values = blob.get(metric["Name"])
                for value in values if isinstance(values, list) else [values]:
                    if not isinstance(value, int | float):
                        continue
                    for names in dimension_sets:
                        dims = tuple(sorted((n, str(blob.get(n, ""))) for n in names))
                        points.append(
                            Datapoint(
                                directive["Namespace"],
                                metric["Name"],
                                metric.get("Unit", "None"),
                                dims,
                                float(value),
                            )
                        )
    return points


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summarise(points: Iterable[Datapoint]) -> dict[str, tuple[float, str]]:
    """`name[dim=value,...]` -> (figure, unit): sums, or p50/p95 for durations."""
    groups: dict[tuple[str, tuple[tuple[str, str], ...], str], list[float]] = {}
    for point in points:
        dims = tuple(d for d in point.dimensions if d[0] not in ("service", "function_name"))
        groups.setdefault((point.name, dims, point.unit), []).append(point.value)
    figures: dict[str, tuple[float, str]] = {}
    for (name, dims, unit), values in sorted(groups.items()):
        label = name + (f"[{','.join(f'{k}={v}' for k, v in dims)}]" if dims else "")
        if unit in _PERCENTILE_UNITS:
            figures[f"{label} p50"] = (_percentile(values, 0.5), unit)
            figures[f"{label} p95"] = (_percentile(values, 0.95), unit)
        else:
            figures[label] = (sum(values), unit)
    return figures
