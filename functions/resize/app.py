"""resize: render every configured rendition from one decode and upload them."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from imgpipe.claims import ClaimTable
from imgpipe.config import resize_config
from imgpipe.errors import skip
from imgpipe.messages import SourceRef, facts_from_dict
from imgpipe.stages.resize import render_upload
from imgpipe.storage import ObjectStore
from imgpipe.telemetry import (
    StageTimer,
    correlate,
    count_outcome,
    handler_tracer,
    lease_of,
    record_rendering,
    report_errors,
)

logger = Logger()
metrics = Metrics()
tracer = handler_tracer()
CONFIG = resize_config()
# The clients are made by the first invocation that calls AWS, then reused while the
# execution environment lives: init does not pay for them.
STORE = ObjectStore(lambda: boto3.client("s3"))
CLAIMS = ClaimTable(lambda: boto3.client("dynamodb"), CONFIG.state_table)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(correlation_id_path="execution", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    source = SourceRef.from_dict(event["source"])
    image = facts_from_dict(event["image"]) if event.get("image") else None
    correlate(logger, event, bucket=source.bucket, key=source.key, version_id=source.version_id)
    timer = StageTimer(tracer)
    with report_errors(metrics, logger):
        result = render_upload(
            STORE,
            source,
            image,
            CONFIG,
            CLAIMS,
            event["execution"],
            lease_s=lease_of(context),
            span=timer.span,
        )
    count_outcome(metrics, result.status, result.reason)
    if result.status == "rendered":
        record_rendering(metrics, result, timer.durations_ms)
    logger.info("resized", extra={"status": result.status, "renditions": len(result.renditions)})
    if result.status == "skipped" and result.reason is not None:
        # Counted and logged above; the state machine's Catch ends the execution in
        # Skipped, so the processed path needs no Choice state.
        raise skip(**result.reason)
    return result.to_dict()
