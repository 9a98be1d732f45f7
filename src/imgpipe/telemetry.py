"""Powertools glue shared by the handlers: the tracer, correlation keys and metrics.

Metric names and dimensions are documented in docs/observability.md; keep the two in
step.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from imgpipe.stages.resize import ResizeResult

from imgpipe.errors import ImageRejected

# A rejected or skipped invocation publishes its one metric as a single-metric blob,
# leaving the shared set empty on purpose; Powertools would warn about that each time.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
# The tracer logs every handler exception again, as plain text without the correlation
# keys; `report_errors` has already logged it once, as JSON with them.
logging.getLogger("aws_lambda_powertools.tracing.tracer").setLevel(logging.CRITICAL)


# The only library the functions make calls with: boto3's S3 and DynamoDB clients.
_TRACED_LIBRARIES = ("botocore",)


def handler_tracer() -> Tracer:
    """The handlers' tracer: a subsegment per handler call, per stage, per AWS call.

    Patches botocore only. `Tracer()` would patch every library the X-Ray SDK supports
    (requests, httpx, sqlite3, database drivers...), importing each one it finds at
    every cold start, for calls these functions never make.
    """
    return Tracer(patch_modules=_TRACED_LIBRARIES)


def correlate(
    logger: Logger,
    payload: Mapping[str, Any],
    *,
    bucket: str,
    key: str,
    version_id: str | None = None,
) -> None:
    """Tie every following log line to the execution, the state and the source object.

    The EventBridge event id does not reach later states, so the state machine passes
    its execution ARN and the state's name in every task payload.
    """
    logger.append_keys(
        execution=payload.get("execution"),
        state=payload.get("state"),
        source_bucket=bucket,
        source_key=key,
        source_version=version_id,
    )


# Lambda's longest timeout: the lease when a caller's context cannot say (a test
# double, a runner of its own); and the shortest one taken, so a context that answers
# 0 cannot hand a lock over while its holder is still writing.
_MAX_LAMBDA_S = 900.0
_MIN_LEASE_S = 30.0


def lease_of(context: LambdaContext) -> float:
    """Seconds this invocation can still run: Lambda stops it then, so a lock leased
    for that long (plus the claims table's margin) cannot outlive its holder."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return _MAX_LAMBDA_S
    return max(float(remaining()) / 1000, _MIN_LEASE_S)


def count_outcome(metrics: Metrics, status: str, reason: Mapping[str, str] | None) -> None:
    """One metric per outcome; skips carry their reason code as a dimension."""
    if status == "skipped" and reason is not None:
        _reasoned_metric(metrics, "ImagesSkipped", reason["code"])
    elif status == "processed":
        metrics.add_metric(name="ImagesProcessed", unit=MetricUnit.Count, value=1)


def _reasoned_metric(metrics: Metrics, name: str, code: str) -> None:
    dimensioned_metric(metrics, name, MetricUnit.Count, 1, "reason", code)


def dimensioned_metric(
    metrics: Metrics, name: str, unit: MetricUnit, value: float, dimension: str, label: str
) -> None:
    """A metric with one extra dimension, published on its own.

    A dimension added to the shared Metrics object would apply to every metric of the
    invocation; a single-metric blob keeps it on this one only.
    """
    provider = metrics.provider
    with single_metric(name=name, unit=unit, value=value, namespace=provider.namespace) as metric:
        if provider.service:
            metric.add_dimension(name="service", value=str(provider.service))
        metric.add_dimension(name=dimension, value=label)


class StageTimer:
    """Times named stages and wraps each in an X-Ray subsegment (`## decode`, ...)."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self.durations_ms: dict[str, float] = {}

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        with self._tracer.provider.in_subsegment(f"## {name}"):
            yield
        self.durations_ms[name] = (time.perf_counter() - started) * 1000


@contextmanager
def report_errors(metrics: Metrics, logger: Logger) -> Iterator[None]:
    """Count and log a rejection once, then let it reach the state machine's Catch.

    Any other error is logged once too, with its cause, before it reaches Step
    Functions' Retry: otherwise a failed attempt leaves no line carrying the
    correlation keys, and a search by source key would not find it.
    """
    try:
        yield
    except ImageRejected as rejection:
        _reasoned_metric(metrics, "ImagesRejected", rejection.code)
        logger.warning(
            "upload rejected", extra={"reason": rejection.code, "detail": str(rejection)}
        )
        raise
    except Exception as error:
        logger.exception("step failed", extra={"error": type(error).__name__})
        raise


_STAGE_METRICS = {
    "download": "DownloadDuration",
    "decode": "DecodeDuration",
    "resize": "ResizeDuration",
    "encode": "EncodeDuration",
    "upload": "UploadDuration",
}


def record_rendering(
    metrics: Metrics, result: ResizeResult, durations_ms: Mapping[str, float]
) -> None:
    """What a rendered upload cost: bytes, megapixels, stage durations, renditions."""
    metrics.add_metric(name="SourceBytes", unit=MetricUnit.Bytes, value=result.bytes_in)
    metrics.add_metric(name="OutputBytes", unit=MetricUnit.Bytes, value=result.bytes_out)
    if result.image is not None:
        megapixels = result.image.width * result.image.height / 1_000_000
        metrics.add_metric(name="SourceMegapixels", unit=MetricUnit.NoUnit, value=megapixels)
    for stage, name in _STAGE_METRICS.items():
        if stage in durations_ms:
            metrics.add_metric(
                name=name, unit=MetricUnit.Milliseconds, value=round(durations_ms[stage], 2)
            )
    per_format: dict[str, int] = {}
    for rendition in result.renditions:
        per_format[rendition.format] = per_format.get(rendition.format, 0) + 1
    for fmt, count in sorted(per_format.items()):
        dimensioned_metric(metrics, "RenditionsWritten", MetricUnit.Count, count, "format", fmt)
