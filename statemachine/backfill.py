"""Write backfill.asl.json: a Distributed Map whose item processor is the pipeline's
rendering path, copied state for state from pipeline.asl.json.

Run `make asl` after changing pipeline.asl.json; tests/unit/test_asl.py fails while the
two differ. The definition is a file (not built at deploy time) so that `sam deploy`,
the console and any other deployer read the same JSON.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PIPELINE = HERE / "pipeline.asl.json"
BACKFILL = HERE / "backfill.asl.json"
# The rendering path of the pipeline, from Validate to its end states. The deletion
# path (WhatHappened, Forget, ...) is not reachable from a backfill item.
RENDERING_STATES = (
    "Validate",
    "Resize",
    "Store",
    "Processed",
    "ReadSkip",
    "Skipped",
    "ReadRejection",
    "Rejected",
    "PipelineFailed",
)


def item_processor_states(pipeline: dict[str, Any]) -> dict[str, Any]:
    return {name: copy.deepcopy(pipeline["States"][name]) for name in RENDERING_STATES}


def definition(pipeline: dict[str, Any]) -> dict[str, Any]:
    return {
        "Comment": (
            "imgpipe backfill: render the objects already under a prefix of the input bucket "
            "with the pipeline's own validate -> resize -> store path, one child execution "
            "per object (docs/backfill.md). Input: {bucket, prefix, mode: missing|all}."
        ),
        "StartAt": "Settings",
        "States": {
            "Settings": {
                "Type": "Pass",
                "Comment": (
                    "Template parameters arrive as text (DefinitionSubstitutions); the Map "
                    "reads its limits as numbers from here."
                ),
                "Parameters": {
                    "bucket.$": "$.bucket",
                    "prefix.$": "$.prefix",
                    "mode.$": "$.mode",
                    "max_concurrency.$": "States.StringToJson('${BackfillMaxConcurrency}')",
                    "tolerated_failure_percentage.$": (
                        "States.StringToJson('${BackfillToleratedFailurePercentage}')"
                    ),
                },
                "Next": "RenderExisting",
            },
            "RenderExisting": {
                "Type": "Map",
                "Label": "Backfill",
                "Comment": (
                    "Each listed key becomes an event in the S3 EventBridge shape with source "
                    "imgpipe.backfill; validate renders the key's current version unless its "
                    "outputs are up to date (mode missing)."
                ),
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:listObjectsV2",
                    "Parameters": {"Bucket.$": "$.bucket", "Prefix.$": "$.prefix"},
                },
                "ItemSelector": {
                    "version": "0",
                    "source": "imgpipe.backfill",
                    "detail-type": "Object Created",
                    "time.$": "$$.Execution.StartTime",
                    "detail": {
                        "bucket": {"name.$": "$.bucket"},
                        "object": {"key.$": "$$.Map.Item.Value.Key"},
                        "reason": "Backfill",
                        "mode.$": "$.mode",
                    },
                },
                "MaxConcurrencyPath": "$.max_concurrency",
                "ToleratedFailurePercentagePath": "$.tolerated_failure_percentage",
                "ItemProcessor": {
                    "ProcessorConfig": {
                        "Mode": "DISTRIBUTED",
                        "ExecutionType": "${BackfillExecutionType}",
                    },
                    "StartAt": "Validate",
                    "States": item_processor_states(pipeline),
                },
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {
                        "Bucket": "${BackfillResultsBucket}",
                        "Prefix": "${BackfillResultsPrefix}",
                    },
                },
                "End": True,
            },
        },
    }


def render() -> str:
    pipeline = json.loads(PIPELINE.read_text(encoding="utf-8"))
    return json.dumps(definition(pipeline), indent=2) + "\n"


if __name__ == "__main__":
    BACKFILL.write_text(render(), encoding="utf-8")
