"""`imgpipe` command line: run the pipeline locally on sample images.

    imgpipe demo [--out demo-output]

deploys template.yaml into moto's AWS emulation, uploads the generated samples,
follows each execution of the real state machine to its end, prints a summary and
copies the renditions and manifests into `--out` so they can be looked at.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _durations(history: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds spent in each state, from the execution history's timestamps."""
    entered: dict[str, Any] = {}
    spent: dict[str, float] = {}
    for event in history:
        if "stateEnteredEventDetails" in event:
            entered[event["stateEnteredEventDetails"]["name"]] = event["timestamp"]
        elif "stateExitedEventDetails" in event:
            name = event["stateExitedEventDetails"]["name"]
            if name in entered:
                spent[name] = (event["timestamp"] - entered[name]).total_seconds()
    return spent


TASK_STATES = ("Validate", "Resize", "Store")


def _summarise(renditions: list[dict[str, Any]]) -> str:
    """`thumb 320x213 webp+jpeg` lines, one per rendition size."""
    sizes: dict[tuple[str, int, int], list[str]] = {}
    for r in renditions:
        sizes.setdefault((r["name"], r["width"], r["height"]), []).append(r["format"].lower())
    return "\n".join(f"{n} {w}x{h} {'+'.join(f)}" for (n, w, h), f in sizes.items())


def demo(out_dir: Path) -> int:
    from imgpipe.local.cloud import LocalCloud
    from imgpipe.local.samples import samples

    console = Console()
    if not console.is_terminal:
        # Piped output (CI logs, files) has no width to detect; give the table room.
        console = Console(width=140)
    table = Table(title="imgpipe local run (template.yaml on moto, real ASL)")
    for column in ("source", "status", "renditions", "reason / manifest", "time per state"):
        table.add_column(column, overflow="fold")
    failures = 0
    with LocalCloud.running() as cloud, console.status("running uploads through the pipeline"):
        for sample in samples():
            started = time.perf_counter()
            record = cloud.upload(sample.key, sample.data, content_type=sample.content_type)
            elapsed = time.perf_counter() - started
            output = record.output or {}
            status = output.get("status", record.status)
            if record.status != "SUCCEEDED":
                failures += 1
                detail = f"[red]{record.error}: {record.cause}"
            elif status == "processed":
                detail = output["manifest"]["key"]
                _download(cloud, output, out_dir)
            else:
                reason = output.get("reason") or {}
                detail = f"{reason.get('code')}: {reason.get('message')}"
            renditions = _summarise(output.get("renditions", []))
            timing = " · ".join(
                f"{name} {seconds * 1000:.0f} ms"
                for name, seconds in _durations(record.history).items()
                if name in TASK_STATES
            )
            colour = {"processed": "green", "rejected": "yellow"}.get(status, "red")
            table.add_row(
                f"{sample.key}\n[dim]{sample.description}",
                f"[{colour}]{status}",
                renditions or "-",
                detail,
                f"{timing}\n[dim]total {elapsed:.2f}s",
            )
    console.print(table)
    console.print(f"renditions and manifests copied to [bold]{out_dir}[/bold]")
    return 1 if failures else 0


def _download(cloud: Any, output: dict[str, Any], out_dir: Path) -> None:
    keys = [r["key"] for r in output["renditions"]] + [output["manifest"]["key"]]
    for key in keys:
        target = out_dir / key
        target.parent.mkdir(parents=True, exist_ok=True)
        body = cloud.s3.get_object(Bucket=cloud.output_bucket, Key=key)["Body"].read()
        target.write_bytes(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgpipe", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="run the pipeline locally on sample images")
    run.add_argument("--out", type=Path, default=Path("demo-output"), help="where to copy outputs")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.out)
    return 2


if __name__ == "__main__":
    sys.exit(main())
