"""Step Functions API responses turned into typed facts about one upload.

Pure: the input is what boto3 returns for DescribeExecution and GetExecutionHistory
(dicts, timestamps already parsed into aware datetimes); nothing here talks to AWS.
The modules, in the order they build on each other:

* `values` — execution statuses, payload text helpers, the one duration format;
* `causes` — `ErrorInfo`: an error as recorded, with a Lambda cause decoded;
* `targets` — the S3 object and outcome of an execution, `s3://` URIs, execution
  ARNs, which state machine is the pipeline's;
* `visits` — history events grouped into `StateVisit`s and their `Attempt`s
  (`parse_visits`): the one model of an execution's path, read by `imgpipe trace`
  and by the local demo's report;
* `verdicts` — how the execution ended, in one line (`verdict_of`);
* `summaries` — executions as rows (`summarize`) and timelines (`build_timeline`);
* `logs` — the same events, descriptions and listings read back from a state
  machine's CloudWatch Logs log group, for Express workflows, which Step Functions
  keeps no history of. Its two readers (`read_execution_history`,
  `list_executions_from_logs`) are the only code here that calls AWS, through a
  CloudWatch Logs client passed in.

Everything public is importable from `imgpipe.ops.history` itself.
"""

from imgpipe.ops.history.causes import ErrorInfo, last_frame
from imgpipe.ops.history.logs import (
    describe_from_events,
    events_from_log_records,
    list_executions_from_logs,
    log_group_of,
    quoted_term,
    read_execution_history,
    state_machine_of,
)
from imgpipe.ops.history.summaries import ExecutionSummary, Timeline, build_timeline, summarize
from imgpipe.ops.history.targets import (
    STATE_MACHINE_HINT,
    ExecutionOutcome,
    ObjectRef,
    is_execution_arn,
    is_upload_of,
    outcome_of,
    parse_s3_uri,
    pick_state_machine,
    source_of,
)
from imgpipe.ops.history.values import (
    FAILED,
    RUNNING,
    STOPPED_STATUSES,
    SUCCEEDED,
    clip,
    compact_json,
    duration,
    event_details,
    lambda_payload,
    seconds_between,
)
from imgpipe.ops.history.verdicts import (
    ExecutionVerdict,
    execution_error,
    failing_visit,
    rejecting_visit,
    verdict_of,
)
from imgpipe.ops.history.visits import Attempt, StateVisit, execution_bounds, parse_visits

__all__ = [
    "FAILED",
    "RUNNING",
    "STATE_MACHINE_HINT",
    "STOPPED_STATUSES",
    "SUCCEEDED",
    "Attempt",
    "ErrorInfo",
    "ExecutionOutcome",
    "ExecutionSummary",
    "ExecutionVerdict",
    "ObjectRef",
    "StateVisit",
    "Timeline",
    "build_timeline",
    "clip",
    "compact_json",
    "describe_from_events",
    "duration",
    "event_details",
    "events_from_log_records",
    "execution_bounds",
    "execution_error",
    "failing_visit",
    "is_execution_arn",
    "is_upload_of",
    "lambda_payload",
    "last_frame",
    "list_executions_from_logs",
    "log_group_of",
    "outcome_of",
    "parse_s3_uri",
    "parse_visits",
    "pick_state_machine",
    "quoted_term",
    "read_execution_history",
    "rejecting_visit",
    "seconds_between",
    "source_of",
    "state_machine_of",
    "summarize",
    "verdict_of",
]
