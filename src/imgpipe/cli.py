"""`imgpipe` command line.

    imgpipe demo        run the sample uploads through the pipeline locally, with a report
    imgpipe local up    serve the local cloud on loopback until interrupted
    imgpipe executions  list recent executions (local or AWS)
    imgpipe trace       what happened to one upload (local or AWS)
    imgpipe redrive     run the failed executions of a time window again
    imgpipe audit       which uploads under a prefix lack current renditions (local or AWS)

`demo` and `local up` deploy template.yaml into moto's AWS emulation on 127.0.0.1,
with every Lambda function in its own worker process.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from imgpipe.local.cloud import ExecutionRecord, LocalCloud

TASK_STATES = ("Validate", "Resize", "Store")


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        # Piped output (CI logs, files) has no width to detect; give tables room.
        console = Console(width=140)
    return console


def _summarise(renditions: list[dict[str, Any]]) -> str:
    """`thumb 320x213 webp+jpeg` lines, one per rendition size; an animated encoding
    says so (`webp (24 frames)+jpeg`)."""
    sizes: dict[tuple[str, int, int], list[str]] = {}
    for r in renditions:
        label = r["format"].lower()
        if (r.get("frames") or 1) > 1:
            label += f" ({r['frames']} frames)"
        sizes.setdefault((r["name"], r["width"], r["height"]), []).append(label)
    return "\n".join(f"{n} {w}x{h} {'+'.join(f)}" for (n, w, h), f in sizes.items())


def _outcome_row(record: ExecutionRecord) -> tuple[str, str, str]:
    output = record.output or {}
    status = output.get("status", record.status) if record.status == "SUCCEEDED" else "FAILED"
    if status == "FAILED":
        detail = f"[red]{record.error}: {(record.cause or '')[:160]}"
    elif status == "processed":
        detail = output["manifest"]["key"]
    elif status == "deleted":
        detail = f"removed {len(output.get('removed', []))} objects"
    else:
        reason = output.get("reason") or {}
        detail = f"{reason.get('code')}: {reason.get('message')}"
    colour = {"processed": "green", "rejected": "yellow", "skipped": "cyan", "deleted": "blue"}.get(
        status, "red"
    )
    return f"[{colour}]{status}", detail, _summarise(output.get("renditions", [])) or "-"


def demo(out_dir: Path) -> int:
    from imgpipe.local.cloud import LocalCloud
    from imgpipe.local.metrics import datapoints, emf_blobs, summarise
    from imgpipe.local.report import ReportEntry, write_report
    from imgpipe.local.samples import samples
    from imgpipe.ops.history import parse_visits

    console = _console()
    table = Table(
        title="imgpipe local run: template.yaml on moto, real ASL, one process per function"
    )
    for column in ("source", "status", "renditions", "reason / manifest", "time per state"):
        table.add_column(column, overflow="fold")
    entries = []
    failures = 0
    with (
        console.status("starting the local cloud (moto on 127.0.0.1, template.yaml)") as status,
        LocalCloud.running(server=True, workers=True) as cloud,
    ):
        items = samples()
        for number, sample in enumerate(items, 1):
            status.update(f"upload {number}/{len(items)}: {sample.key}")
            started = time.perf_counter()
            record = cloud.upload(sample.key, sample.data, content_type=sample.content_type)
            elapsed = time.perf_counter() - started
            failures += record.status != "SUCCEEDED"
            outcome, detail, renditions = _outcome_row(record)
            timing = " · ".join(
                f"{visit.name} {visit.duration_s * 1000:.0f} ms"
                for visit in parse_visits(record.history)
                if visit.name in TASK_STATES and visit.duration_s is not None
            )
            table.add_row(
                f"{sample.key}\n[dim]{sample.description}",
                outcome,
                renditions,
                detail,
                f"{timing}\n[dim]end to end {elapsed:.2f} s",
            )
            produced = _download(cloud, record.output or {}, out_dir)
            entries.append(
                ReportEntry(
                    key=sample.key,
                    description=sample.description,
                    source=sample.data,
                    execution_arn=record.arn,
                    execution_status=record.status,
                    output=record.output,
                    history=record.history,
                    renditions=produced,
                    error=record.error,
                    cause=record.cause,
                )
            )
        # Deleting an upload removes what was made from it (the Forget path).
        deleted = items[3]
        status.update(f"deleting {deleted.key}")
        record = cloud.delete(deleted.key)
        failures += record.status != "SUCCEEDED"
        outcome, detail, _ = _outcome_row(record)
        table.add_row(f"{deleted.key}\n[dim]source deleted afterwards", outcome, "-", detail, "")
        workers = _worker_table(cloud)
        figures = summarise(
            datapoints(b for i in cloud.functions.invocations for b in emf_blobs(i.logs))
        )
    console.print(table)
    console.print(workers)
    console.print(_metrics_table(figures))
    report = write_report(out_dir / "report.html", entries, metrics=figures)
    console.print(f"renditions and manifests: [bold]{out_dir}[/bold]")
    console.print(f"report: [bold]{report}[/bold]")
    return 1 if failures else 0


def _metrics_table(figures: dict[str, tuple[float, str]]) -> Table:
    table = Table(title="CloudWatch metrics of this run (from the functions' EMF output)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for name, (value, unit) in figures.items():
        table.add_row(escape(name), f"{value:,.2f}".rstrip("0").rstrip("."), unit)
    return table


def _worker_table(cloud: LocalCloud) -> Table:
    table = Table(title="Lambda workers (one process per function)")
    for column in ("function", "invocations", "cold start (init)", "warm median", "max memory"):
        table.add_column(column)
    invocations = cloud.functions.invocations
    for logical in sorted({i.function for i in invocations}):
        mine = [i for i in invocations if i.function == logical]
        cold = [i.init_ms for i in mine if i.cold_start]
        warm = sorted(i.duration_ms for i in mine if not i.cold_start)
        memory = [
            float(line.rsplit("Max Memory Used: ", 1)[1].split()[0])
            for i in mine
            for line in i.logs.splitlines()
            if line.startswith("REPORT ") and "Max Memory Used: " in line
        ]
        table.add_row(
            logical,
            str(len(mine)),
            f"{cold[0]:.0f} ms" if cold else "-",
            f"{warm[len(warm) // 2]:.0f} ms" if warm else "-",
            f"{max(memory):.0f} MB" if memory else "-",
        )
    return table


def _download(cloud: LocalCloud, output: dict[str, Any], out_dir: Path) -> dict[str, bytes]:
    produced: dict[str, bytes] = {}
    keys = [r["key"] for r in output.get("renditions", [])]
    if output.get("manifest"):
        keys.append(output["manifest"]["key"])
    for key in keys:
        body = cloud.s3.get_object(Bucket=cloud.output_bucket, Key=key)["Body"].read()
        target = out_dir / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        if not key.endswith("manifest.json"):
            produced[key] = body
    return produced


def write_ready_file(path: Path, facts: dict[str, Any]) -> None:
    """Written whole, then renamed into place: whoever waits for the file to appear
    never reads it half-written."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def local_up(port: int, ready_file: Path | None, *, follow_events: bool = False) -> int:
    from imgpipe.local.cloud import REGION, LocalCloud
    from imgpipe.local.events import EventFollower, describe

    console = _console()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with LocalCloud.running(server=True, port=port, workers=True) as cloud:
        endpoint = cloud.endpoint_url
        facts = {
            "endpoint_url": endpoint,
            "region": REGION,
            "input_bucket": cloud.input_bucket,
            "output_bucket": cloud.output_bucket,
            "state_machine_arn": cloud.state_machine_arn,
            "backfill_state_machine_arn": cloud.backfill_state_machine_arn,
        }
        console.print(f"[bold green]imgpipe local cloud ready[/] at [bold]{endpoint}[/]")
        console.print(f"  input bucket   {cloud.input_bucket}")
        console.print(f"  output bucket  {cloud.output_bucket}")
        console.print(f"  state machine  {cloud.state_machine_arn}")
        console.print(f"  backfill       {cloud.backfill_state_machine_arn}")
        console.print("\nIn another shell:")
        console.print(
            f"  export AWS_ENDPOINT_URL={endpoint} AWS_DEFAULT_REGION={REGION} "
            "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local"
        )
        console.print(f"  aws s3 cp photo.jpg s3://{cloud.input_bucket}/photos/photo.jpg")
        console.print(f"  aws s3 ls --recursive s3://{cloud.output_bucket}/photos/")
        console.print(f"  imgpipe trace s3://{cloud.input_bucket}/photos/photo.jpg")
        backfill = json.dumps({"bucket": cloud.input_bucket, "prefix": "photos/", "mode": "all"})
        # One line, unwrapped, so that it can be copied into a shell.
        console.print(
            "  aws stepfunctions start-execution "
            f"--state-machine-arn {cloud.backfill_state_machine_arn} --input '{backfill}'",
            soft_wrap=True,
        )
        follower = EventFollower(cloud) if follow_events else None
        listed = "executions and the events they publish" if follower else "executions"
        console.print(f"\nCtrl-C stops it. Finished {listed} are listed below.\n")
        if ready_file is not None:
            write_ready_file(ready_file, facts)
        reported = 0
        drain_until: float | None = None
        while True:
            if stop.wait(0.25) and drain_until is None:
                # Report what is still finishing before shutting the emulator down.
                drain_until = time.monotonic() + 10
            if drain_until is not None and (
                reported >= len(cloud.bridge.deliveries) or time.monotonic() > drain_until
            ):
                break
            for event in follower.poll() if follower else ():
                console.print(f"[cyan]event[/] {escape(describe(event))}", soft_wrap=True)
            deliveries = cloud.bridge.deliveries
            while reported < len(deliveries):
                delivery = deliveries[reported]
                if delivery.execution_arn is None:
                    console.print(f"[red]event for {delivery.key} not delivered: {delivery.error}")
                    reported += 1
                    continue
                description = cloud.sfn.describe_execution(executionArn=delivery.execution_arn)
                if description["status"] == "RUNNING":
                    break
                record = cloud.wait(delivery.execution_arn, delivery.key)
                outcome, detail, _ = _outcome_row(record)
                console.print(f"{delivery.key}  {outcome}  [dim]{detail}")
                reported += 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgpipe", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("demo", help="run sample uploads through the pipeline locally")
    run.add_argument("--out", type=Path, default=Path("demo-output"), help="where outputs go")
    run.set_defaults(handler=lambda args: demo(args.out))

    local = commands.add_parser("local", help="the local cloud")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    up = local_commands.add_parser("up", help="serve the local cloud until interrupted")
    up.add_argument("--port", type=int, default=4566, help="loopback port (0: any free port)")
    up.add_argument("--ready-file", type=Path, help="write endpoint and names here as JSON")
    up.add_argument(
        "--follow-events",
        action="store_true",
        help="print each Image Processed/Rejected/Deleted event as an application receives it",
    )
    up.set_defaults(
        handler=lambda args: local_up(args.port, args.ready_file, follow_events=args.follow_events)
    )

    from imgpipe.ops.cli import add_commands

    add_commands(commands)
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
