"""`imgpipe executions` and `imgpipe trace`: what happened to an upload; `imgpipe redrive`;
`imgpipe audit`: did every upload under a prefix get its renditions.

    imgpipe executions [--limit 20] [--status FAILED] [--json]
    imgpipe trace s3://bucket/key | EXECUTION_ARN [--latest] [--scan 1000] [--full] [--json]
    imgpipe redrive [--since 24h] [--until now] [--status FAILED] [--dry-run] [--json]
    imgpipe audit s3://bucket/prefix [--show 10] [--json]
    imgpipe backfill s3://bucket/prefix [--wait] [--all] [--dry-run] [--json]

All find the state machine from `--state-machine`, `--stack` (its
`StateMachineArn` output) or the single machine named `*imagepipeline*`, and use
the standard AWS configuration (`--profile`/`--region`/`--endpoint-url` or the
AWS_* environment), so they work against the local emulator and a real account.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from imgpipe.errors import TransientError
from imgpipe.ops import audit, aws, backfill, redrive
from imgpipe.ops.deployment import Deployment
from imgpipe.ops.errors import OpsError
from imgpipe.ops.history import (
    STOPPED_STATUSES,
    ExecutionSummary,
    build_timeline,
    is_execution_arn,
    parse_s3_uri,
    summarize,
)
from imgpipe.ops.render import DEFAULT_CLIP, executions_table, timeline_view, timestamp
from imgpipe.storage import ObjectStore

BACKFILL_HINT = "backfill"
BACKFILL_OUTPUT = "BackfillStateMachineArn"
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
EXIT_OK = 0
EXIT_ERROR = 1
# `imgpipe audit` found sources to render or orphan outputs.
EXIT_FINDINGS = 3
EXIT_INTERRUPTED = 130


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"must be at least 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _common_options(
    machine: str = "pipeline", hint: str = "imagepipeline", output: str = aws.STACK_OUTPUT
) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group(f"state machine (default: the one named *{hint}*)")
    where.add_argument("--state-machine", metavar="ARN", help=f"the {machine} state machine ARN")
    where.add_argument(
        "--stack", metavar="NAME", help=f"read {output} from this CloudFormation stack"
    )
    connection = common.add_argument_group("AWS (default: boto3's environment and config)")
    connection.add_argument("--profile", help="AWS profile (else AWS_PROFILE)")
    connection.add_argument("--region", help="AWS region (else AWS_REGION/AWS_DEFAULT_REGION)")
    connection.add_argument(
        "--endpoint-url", help="API endpoint, e.g. a local emulator (else AWS_ENDPOINT_URL)"
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of tables")
    return common


AUDIT_DESCRIPTION = """\
Read-only: compares the input bucket's objects under the prefix with the output
bucket and the deployed configuration (the environment of the state machine's
Validate and Resize functions). Each source is

  up to date  its manifest describes the current object, made with the deployed
              rendition settings, every listed rendition present with its size
  missing     no manifest
  stale       the manifest describes another version of the source
  outdated    the manifest was made with other rendition settings
  incomplete  a rendition the manifest lists is absent or of another size
  rejected    no manifest, and validate's header checks refuse it (fine)

Output folders whose source no longer exists, or with renditions but no
manifest, are orphans."""
AUDIT_EXIT_CODES = """\
exit status:
  0  nothing needs attention (rejected uploads are fine)
  3  findings: missing, stale, outdated, incomplete or orphans
  1  the audit could not run (configuration, permissions, network)"""


def _when(text: str) -> redrive.When:
    try:
        return redrive.parse_when(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `executions`, `trace`, `redrive` and `audit`; each sets `handler(args) -> exit code`."""
    common = _common_options()
    listing = subparsers.add_parser(
        "executions",
        parents=[common],
        help="list recent executions of the pipeline with their upload and outcome",
        description="Recent executions, newest first: source object, status, the "
        "pipeline's outcome (processed/rejected/skipped) or the failing state and error.",
    )
    listing.add_argument(
        "--limit", type=_positive, default=20, help="how many executions (default 20)"
    )
    listing.add_argument(
        "--status", type=str.upper, choices=STATUSES, help="only executions with this status"
    )
    listing.set_defaults(handler=executions_command)

    trace = subparsers.add_parser(
        "trace",
        parents=[common],
        help="show what happened to one upload, state by state",
        description="Timeline of the execution(s) for an upload: states, durations, "
        "Lambda attempts and retries, errors, and a verdict.",
    )
    trace.add_argument(
        "target", metavar="S3_URI|EXECUTION_ARN", help="s3://bucket/key or an execution ARN"
    )
    trace.add_argument(
        "--latest", action="store_true", help="only the newest execution for the upload"
    )
    trace.add_argument(
        "--scan",
        type=_positive,
        default=1000,
        metavar="N",
        help="look through at most the N newest executions (default 1000)",
    )
    trace.add_argument(
        "--full", action="store_true", help="show payloads and causes without clipping"
    )
    trace.set_defaults(handler=trace_command)

    again = subparsers.add_parser(
        "redrive",
        parents=[common],
        help="run the failed executions of a time window again",
        description="Redrive (RedriveExecution, from the failed state) each execution that "
        "stopped in the window, or, where it cannot be redriven, start a new execution "
        "with the same input, named <original>-redrive-<time>. Try --dry-run first.",
    )
    again.add_argument(
        "--since",
        type=_when,
        metavar="WHEN",
        help="window start, on the stop time: 30m, 2h, 1d, or ISO 8601 (default 24h)",
    )
    again.add_argument(
        "--until", type=_when, metavar="WHEN", help="window end, same forms (default now)"
    )
    again.add_argument(
        "--status",
        type=str.upper,
        choices=redrive.REDRIVE_STATUSES,
        action="append",
        help="which stopped executions (default FAILED; repeat for several)",
    )
    again.add_argument(
        "--dry-run", action="store_true", help="list what would be done and do nothing"
    )
    again.set_defaults(handler=redrive_command)

    check = subparsers.add_parser(
        "audit",
        parents=[common],
        help="check that every upload under a prefix has complete, current renditions",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=AUDIT_DESCRIPTION,
        epilog=AUDIT_EXIT_CODES,
    )
    check.add_argument(
        "target", metavar="S3_URI", help="s3://bucket/prefix of the input bucket (s3://bucket: all)"
    )
    check.add_argument(
        "--show",
        type=_positive,
        default=audit.DEFAULT_SHOWN,
        metavar="N",
        help=f"list the first N keys of each finding (default {audit.DEFAULT_SHOWN})",
    )
    check.set_defaults(handler=audit_command)

    fill = subparsers.add_parser(
        "backfill",
        parents=[_common_options("backfill", BACKFILL_HINT, BACKFILL_OUTPUT)],
        help="render the objects already under a prefix (Distributed Map)",
        description="Start the backfill state machine over s3://bucket/prefix of the input "
        "bucket: each object runs the pipeline's validate -> resize -> store path. By "
        "default only objects whose outputs are missing, of another version or of another "
        "rendition set are rendered; the rest are counted as up to date (docs/backfill.md).",
        epilog="exit codes: 0 started (or, with --wait, finished with no failed object; "
        "rejected files are not failures), 1 error or failed objects, 130 interrupted",
    )
    fill.add_argument(
        "target", metavar="S3_URI", help="s3://bucket/prefix of the input bucket (s3://bucket: all)"
    )
    fill.add_argument(
        "--wait", action="store_true", help="follow the run with a progress bar, then summarise"
    )
    fill.add_argument("--all", action="store_true", help="render every object, up to date or not")
    fill.add_argument(
        "--dry-run",
        action="store_true",
        help="start nothing: say what a backfill would render, leave alone and reject",
    )
    fill.set_defaults(handler=backfill_command)


# -- handlers ----------------------------------------------------------------------


def executions_command(args: argparse.Namespace) -> int:
    return _guarded("executions", _executions, args)


def trace_command(args: argparse.Namespace) -> int:
    return _guarded("trace", _trace, args)


def redrive_command(args: argparse.Namespace) -> int:
    return _guarded("redrive", _redrive, args)


def audit_command(args: argparse.Namespace) -> int:
    return _guarded("audit", _audit, args)


def backfill_command(args: argparse.Namespace) -> int:
    return _guarded("backfill", _backfill, args)


Command = Callable[[argparse.Namespace, Console, Console], int]


def _guarded(name: str, command: Command, args: argparse.Namespace) -> int:
    """Run a command; anything expected becomes one line on stderr and exit code 1."""
    out = Console()
    err = Console(stderr=True)
    try:
        return command(args, out, err)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (OpsError, BotoCoreError, ClientError) as error:
        err.print(
            f"imgpipe {name}: {explain(error)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
            style="red",
        )
        return EXIT_ERROR


def explain(error: Exception) -> str:
    """One line an operator can act on."""
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return (
            "no AWS credentials found: pass --profile, set AWS_PROFILE, or configure "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(error, NoRegionError):
        return "no AWS region configured: pass --region or set AWS_REGION"
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        endpoint = getattr(error, "kwargs", {}).get("endpoint_url", "the endpoint")
        return f"cannot reach {endpoint} (is the emulator running / the network up?)"
    if isinstance(error, ProfileNotFound):
        return f"{error} (check --profile / AWS_PROFILE)"
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        operation = getattr(error, "operation_name", "the request")
        return f"{operation} failed: {details.get('Code', '?')}: {details.get('Message', '')}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _clients(args: argparse.Namespace, *, region: str | None = None) -> aws.Clients:
    return aws.connect(
        aws.AwsOptions(
            profile=args.profile, region=args.region or region, endpoint_url=args.endpoint_url
        )
    )


def _region_of(arn: str | None) -> str | None:
    """The region an ARN names: an operator passing one should not also need --region."""
    parts = (arn or "").split(":")
    return parts[3] if len(parts) > 3 and parts[0] == "arn" and parts[3] else None


def _state_machine(args: argparse.Namespace, clients: aws.Clients) -> str:
    return aws.resolve_state_machine(clients, state_machine=args.state_machine, stack=args.stack)


@contextmanager
def _progress(err: Console, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A transient bar on stderr (stdout stays clean for --json and pipes)."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        # Pipes and CI logs get no bar (rich would leave a blank line there).
        disable=not err.is_terminal,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.advance(task, done)


def _executions(args: argparse.Namespace, out: Console, err: Console) -> int:
    clients = _clients(args)
    machine = _state_machine(args, clients)
    executions = aws.Executions.of(clients, machine)
    items = list(executions.recent(status=args.status, limit=args.limit))
    arns = [str(item["executionArn"]) for item in items]
    with _progress(err, "reading executions", len(arns)) as advance:
        descriptions = executions.describe_all(arns, advance)
        summaries: list[ExecutionSummary] = []
        for description in descriptions:
            # Only a stopped execution needs its history: the failing state is not in
            # DescribeExecution.
            events = None
            if description.get("status") in STOPPED_STATUSES:
                events = executions.history(description["executionArn"])
            summaries.append(summarize(description, events))
    if args.json:
        document = {
            "state_machine": machine,
            "executions": [summary.to_dict() for summary in summaries],
        }
        out.file.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    filtered = f" with status {args.status}" if args.status else ""
    plural = "" if len(summaries) == 1 else "s"
    title = (
        f"{len(summaries)} execution{plural}{filtered} of {machine.rsplit(':', 1)[-1]}, "
        "newest first"
    )
    if not summaries:
        out.print(f"no executions{filtered} of {machine}", markup=False, highlight=False)
        return EXIT_OK
    out.print(executions_table(summaries, title))
    return EXIT_OK


def _trace(args: argparse.Namespace, out: Console, err: Console) -> int:
    target: str = args.target
    # An ARN names its region; an operator pasting one from another region's console
    # should not also have to pass --region.
    clients = _clients(args, region=target.split(":")[3] if is_execution_arn(target) else None)
    machine: str | None = None
    scanned: int | None = None
    if is_execution_arn(target):
        executions = aws.Executions(clients, aws.machine_of_execution(clients.sfn, target))
        descriptions = [executions.describe(target)]
    elif target.startswith("s3://"):
        wanted = parse_s3_uri(target)
        machine = _state_machine(args, clients)
        executions = aws.Executions.of(clients, machine)
        with _progress(err, f"scanning executions for {wanted.uri}", args.scan) as advance:
            search = aws.find_uploads(
                executions, wanted, scan=args.scan, latest=args.latest, progress=advance
            )
        scanned = search.scanned
        if not search.matches:
            msg = (
                f"no execution for {wanted.uri} among the {search.scanned} most recent of "
                f"{machine} (look further back with --scan, or check the bucket and key)"
            )
            raise OpsError(msg)
        descriptions = search.matches
    else:
        msg = f"expected s3://bucket/key or an execution ARN, got {target!r}"
        raise OpsError(msg)

    timelines = [
        build_timeline(description, executions.history(description["executionArn"]))
        for description in descriptions
    ]
    limit = None if args.full else DEFAULT_CLIP
    if args.json:
        document: dict[str, Any] = {
            "target": target,
            "state_machine": machine,
            "scanned": scanned,
            "executions": [timeline.to_dict(limit) for timeline in timelines],
        }
        out.file.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    if len(timelines) > 1:
        out.print(
            f"{len(timelines)} executions for {target}, newest first "
            "(re-uploads; --latest shows only the newest)",
            markup=False,
            highlight=False,
        )
    for timeline in timelines:
        out.print(timeline_view(timeline, full=args.full))
    return EXIT_OK


def _redrive(args: argparse.Namespace, out: Console, err: Console) -> int:
    now = datetime.now(UTC)
    try:
        span = redrive.window(args.since, args.until, now)
    except ValueError as error:
        raise OpsError(str(error)) from None
    statuses = tuple(dict.fromkeys(args.status or ["FAILED"]))
    clients = _clients(args)
    machine = _state_machine(args, clients)
    executions = aws.Executions.of(clients, machine)
    with _progress(err, "redriving" if not args.dry_run else "planning", None) as advance:
        outcomes = redrive.run(
            clients.sfn,
            machine,
            span,
            statuses=statuses,
            dry_run=args.dry_run,
            now=now,
            progress=advance,
            executions=executions,
        )
    code = EXIT_OK if all(outcome.ok for outcome in outcomes) else EXIT_ERROR
    if args.json:
        document = [outcome.to_dict() for outcome in outcomes]
        out.file.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return code
    which = "/".join(statuses)
    between = f"stopped between {timestamp(span.since, millis=False)} and " + timestamp(
        span.until, millis=False
    )
    if not outcomes:
        out.print(f"no {which} executions of {machine} {between}", markup=False, highlight=False)
        return code
    plural = "" if len(outcomes) == 1 else "s"
    dry = " (dry run: nothing was started)" if args.dry_run else ""
    title = (
        f"{len(outcomes)} {which} execution{plural} of {machine.rsplit(':', 1)[-1]} {between}{dry}"
    )
    out.print(redrive.outcomes_view(outcomes, title))
    failed = [outcome for outcome in outcomes if not outcome.ok]
    if failed:
        err.print(
            f"imgpipe redrive: {len(failed)} of {len(outcomes)} could not be run again",
            markup=False,
            highlight=False,
            style="red",
        )
    return code


def _audit(args: argparse.Namespace, out: Console, err: Console) -> int:
    bucket, prefix = audit.parse_s3_prefix(args.target)
    clients = _clients(args, region=_region_of(args.state_machine))
    machine = _state_machine(args, clients)
    deployment = Deployment.of(clients, machine)
    store = ObjectStore(clients.s3)
    try:
        with _progress(err, f"auditing s3://{bucket}/{prefix}", None) as advance:
            report = audit.audit(store, deployment, bucket, prefix, progress=advance)
    except TransientError as error:
        raise OpsError(str(error)) from error
    code = EXIT_FINDINGS if report.needs_attention else EXIT_OK
    if args.json:
        out.file.write(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return code
    out.print(audit.report_view(report, shown=args.show))
    return code


def _backfill(args: argparse.Namespace, out: Console, err: Console) -> int:
    target = backfill.Target.parse(args.target)
    clients = _clients(args, region=_region_of(args.state_machine))
    machine = aws.resolve_state_machine(
        clients,
        state_machine=args.state_machine,
        stack=args.stack,
        output=BACKFILL_OUTPUT,
        hint=BACKFILL_HINT,
    )
    deployment = Deployment.of(clients, machine)
    if target.bucket != deployment.input_bucket:
        msg = (
            f"{target.uri} is not in the pipeline's input bucket {deployment.input_bucket}: "
            "a backfill renders that bucket only"
        )
        raise OpsError(msg)
    # The functions may read nothing outside the rule's prefix: list only inside it.
    target = backfill.Target(
        target.bucket, audit.scope_prefix(target.prefix, deployment.input_prefix)
    )
    mode: backfill.Mode = "all" if args.all else "missing"
    if args.dry_run:
        store = ObjectStore(clients.s3)
        return _backfill_plan(out, err, store, deployment, target, mode, as_json=args.json)
    if not backfill.has_objects(clients.s3, target):
        out.print(f"nothing under {target.uri}: no backfill started", markup=False, highlight=False)
        return EXIT_OK
    arn = backfill.start(clients.sfn, machine, target, mode, datetime.now(UTC))
    if not args.wait:
        return _backfill_started(args, out, arn, target)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        console=err,
        transient=True,
        disable=not err.is_terminal,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as bar:
        task = bar.add_task(f"backfilling {target.uri}", total=None, counts="listing")

        def report(progress: backfill.Progress) -> None:
            counts = f"{progress.running} running, {progress.failed} failed"
            bar.update(task, total=progress.total or None, completed=progress.done, counts=counts)

        description, map_run = backfill.follow(clients.sfn, arn, report=report)
    summary = backfill.summarize(clients.sfn, clients.s3, description, map_run)
    if args.json:
        out.file.write(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        out.print(backfill.summary_view(summary, target))
        out.print(f"execution: {arn}", markup=False, highlight=False, soft_wrap=True)
        if summary.failed_keys:
            shown = ", ".join(sorted(summary.failed_keys)[:10])
            out.print(f"failed: {shown}", markup=False, highlight=False, soft_wrap=True)
    if not summary.ok:
        failed = summary.counts[backfill.FAILED]
        why = summary.error or summary.status
        err.print(
            f"imgpipe backfill: {failed} object(s) failed; the run ended {summary.status}"
            + (f" ({why})" if why != summary.status else ""),
            markup=False,
            highlight=False,
            style="red",
        )
        return EXIT_ERROR
    return EXIT_OK


def _backfill_started(
    args: argparse.Namespace, out: Console, arn: str, target: backfill.Target
) -> int:
    if args.json:
        out.file.write(json.dumps({"execution_arn": arn, "target": target.uri}) + "\n")
        return EXIT_OK
    region = arn.split(":")[3]
    out.print(f"started {arn}", markup=False, highlight=False, soft_wrap=True)
    out.print(
        "follow it: aws stepfunctions list-map-runs --execution-arn " + arn + "\n"
        "           (then describe-map-run for its item counts), or the console: "
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{arn}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_OK


def _backfill_plan(
    out: Console,
    err: Console,
    store: ObjectStore,
    deployment: Deployment,
    target: backfill.Target,
    mode: backfill.Mode,
    *,
    as_json: bool,
) -> int:
    with _progress(err, f"planning a backfill of {target.uri}", None) as advance:
        try:
            findings = list(
                audit.audit_sources(
                    store, deployment, target.bucket, target.prefix, progress=advance
                )
            )
        except TransientError as error:
            raise OpsError(str(error)) from error
    plan = backfill.Plan.of(findings, mode)
    if as_json:
        out.file.write(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    out.print(backfill.plan_view(plan, target))
    return EXIT_OK
