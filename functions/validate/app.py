"""validate: is this upload an image we can render? Decided from its header."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from imgpipe.claims import ClaimTable
from imgpipe.config import validate_config
from imgpipe.errors import skip
from imgpipe.events import parse_s3_event
from imgpipe.stages.validate import validate_upload
from imgpipe.storage import ObjectStore
from imgpipe.telemetry import correlate, count_outcome, handler_tracer, lease_of, report_errors

logger = Logger()
metrics = Metrics()
tracer = handler_tracer()
CONFIG = validate_config()
# The clients are made by the first invocation that calls AWS, then reused while the
# execution environment lives: init does not pay for them.
STORE = ObjectStore(lambda: boto3.client("s3"))
CLAIMS = ClaimTable(lambda: boto3.client("dynamodb"), CONFIG.state_table)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(correlation_id_path="execution", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    upload = parse_s3_event(event["event"])
    correlate(logger, event, bucket=upload.bucket, key=upload.key, version_id=upload.version_id)
    with report_errors(metrics, logger):
        verdict = validate_upload(
            STORE, upload, CONFIG, CLAIMS, event["execution"], lease_s=lease_of(context)
        )
    count_outcome(metrics, verdict.status, verdict.reason)
    metrics.add_metric(
        name="HeaderBytesRead", unit=MetricUnit.Bytes, value=verdict.header_bytes_read
    )
    logger.info(
        "validated", extra={"status": verdict.status, "bytes_read": verdict.header_bytes_read}
    )
    if verdict.status == "skipped" and verdict.reason is not None:
        # Counted and logged above; the state machine's Catch ends the execution in
        # Skipped, so the processed path needs no Choice state.
        raise skip(**verdict.reason)
    return verdict.to_dict()
