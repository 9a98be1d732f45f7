"""store: write the manifest after every rendition exists; return the execution output."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from imgpipe.claims import ClaimTable
from imgpipe.config import folder_config
from imgpipe.errors import skip
from imgpipe.messages import RenditionRecord, SourceRef, facts_from_dict
from imgpipe.stages.store import store_manifest
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
    source = SourceRef.from_dict(event["source"])
    image = facts_from_dict(event["image"])
    renditions = tuple(RenditionRecord.from_dict(r) for r in event["renditions"])
    correlate(logger, event, bucket=source.bucket, key=source.key, version_id=source.version_id)
    with report_errors(metrics, logger):
        outcome = store_manifest(
            STORE,
            CONFIG.output,
            source,
            image,
            renditions,
            CLAIMS,
            execution=event["execution"],
            lease_s=lease_of(context),
            settings=event.get("settings"),
            placeholder=event.get("placeholder"),
        )
    count_outcome(metrics, outcome.status, outcome.reason)
    logger.info("stored", extra={"manifest": outcome.manifest})
    if outcome.status == "skipped" and outcome.reason is not None:
        # Counted and logged above; the state machine's Catch ends the execution in
        # Skipped, so the processed path needs no Choice state.
        raise skip(**outcome.reason)
    return outcome.to_dict()
