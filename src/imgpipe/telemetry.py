"""Powertools glue shared by the three handlers: correlation keys and outcome metrics.

Metric names and dimensions are documented in docs/observability.md; keep the two in
step.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from imgpipe.errors import ImageRejected

# A rejected or skipped invocation publishes its one metric as a single-metric blob,
# leaving the shared set empty on purpose; Powertools would warn about that each time.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


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


def count_outcome(metrics: Metrics, status: str, reason: Mapping[str, str] | None) -> None:
    """One metric per outcome; skips carry their reason code as a dimension."""
    if status == "skipped" and reason is not None:
        _reasoned_metric(metrics, "ImagesSkipped", reason["code"])
    elif status == "processed":
        metrics.add_metric(name="ImagesProcessed", unit=MetricUnit.Count, value=1)


def _reasoned_metric(metrics: Metrics, name: str, code: str) -> None:
    # A dimension added to the shared Metrics object would apply to every metric of
    # the invocation; a single-metric blob keeps `reason` on this one only.
    provider = metrics.provider
    with single_metric(
        name=name, unit=MetricUnit.Count, value=1, namespace=provider.namespace
    ) as metric:
        if provider.service:
            metric.add_dimension(name="service", value=str(provider.service))
        metric.add_dimension(name="reason", value=code)


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
