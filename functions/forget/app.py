"""forget: a source was deleted; remove its renditions and manifest."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from imgpipe.claims import ClaimTable
from imgpipe.config import folder_config
from imgpipe.events import parse_s3_event
from imgpipe.stages.forget import forget_upload
from imgpipe.storage import ObjectStore
from imgpipe.telemetry import correlate, count_outcome, handler_tracer, lease_of, report_errors

logger = Logger()
metrics = Metrics()
tracer = handler_tracer()
CONFIG = folder_config()
# The clients are made by the first invocation that calls AWS, then reused while the
# execution environment lives: init does not pay for them.
STORE = ObjectStore(lambda: boto3.client("s3"))
CLAIMS = ClaimTable(lambda: boto3.client("dynamodb"), CONFIG.state_table)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(correlation_id_path="execution", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deletion = parse_s3_event(event["event"])
    correlate(
        logger, event, bucket=deletion.bucket, key=deletion.key, version_id=deletion.version_id
    )
    with report_errors(metrics, logger):
        outcome = forget_upload(
            STORE, deletion, CONFIG, CLAIMS, event["execution"], lease_s=lease_of(context)
        )
    count_outcome(metrics, outcome.status, outcome.reason)
    if outcome.status == "deleted":
        metrics.add_metric(name="ImagesDeleted", unit=MetricUnit.Count, value=1)
    logger.info("forgotten", extra={"status": outcome.status, "removed": len(outcome.removed)})
    return outcome.to_dict()
