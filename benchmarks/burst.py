"""A burst of uploads through the local cloud: does every one come out, first time?

    python -m benchmarks.burst [--uploads 200] [--clients 32] [--deadline 900] [--json]

Starts the local cloud the way `imgpipe local up` and `imgpipe demo` do (moto served on
loopback, each function in its own worker process), uploads N small generated JPEGs at
once with plain boto3 against its endpoint (`--clients` threads sharing one client),
waits until every execution has ended (or the deadline passes), then reports:

* executions by status (SUCCEEDED / FAILED / ...) and by the pipeline's output status
  (processed / rejected / skipped / deleted);
* executions that needed a task retry: a state whose task was scheduled more than once
  (read from GetExecutionHistory), with the errors that caused the retries;
* timings: how long the uploads took, and the drain time (first upload to the last
  execution's end).

Every upload is a different key, so nothing in the burst is a duplicate, a race or a
stale event: in AWS it would need no retry (beyond Lambda throttling, which the local
cloud does not emulate), and the goal here is none either. `--json` prints the figures
as one JSON document (what the test reads).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from PIL import Image

from imgpipe.local.cloud import REGION, TERMINAL, LocalCloud


@dataclass
class Execution:
    key: str
    status: str
    output_status: str | None
    # State name -> the errors its task failed with before the attempt that counted.
    retries: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None


@dataclass
class BurstResult:
    uploads: int
    executions: int
    by_status: dict[str, int]
    by_output_status: dict[str, int]
    retried: int
    retries_by_state: dict[str, int]
    retry_errors: dict[str, int]
    failures: list[dict[str, Any]]
    upload_s: float
    drain_s: float
    timed_out: bool


def photo(index: int) -> bytes:
    """A small JPEG, different for every upload (size and colour)."""
    width, height = 160 + index % 7 * 16, 120 + index % 5 * 16
    colour = (index * 37 % 256, index * 91 % 256, index * 53 % 256)
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=85)
    return out.getvalue()


# History events of a failed task attempt, and where their error is.
_FAILED = {
    "TaskFailed": "taskFailedEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
    "LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
    "LambdaFunctionTimedOut": "lambdaFunctionTimedOutEventDetails",
}


def retries_in(history: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per state, the errors of the task attempts that were followed by another one."""
    scheduled: Counter[str] = Counter()
    errors: dict[str, list[str]] = {}
    state = ""
    for event in history:
        entered = event.get("stateEnteredEventDetails")
        if entered is not None:
            state = entered["name"]
        kind = event["type"]
        if kind in ("TaskScheduled", "LambdaFunctionScheduled"):
            scheduled[state] += 1
        elif kind in _FAILED:
            details = event.get(_FAILED[kind], {})
            errors.setdefault(state, []).append(str(details.get("error", kind)))
    # The last attempt's error (if any) is the one the state ended with, not a retry.
    return {
        name: errors.get(name, [])[: count - 1] or ["(no error recorded)"]
        for name, count in scheduled.items()
        if count > 1
    }


def _describe(sfn: Any, arn: str, key: str) -> Execution:
    description = sfn.describe_execution(executionArn=arn)
    output = json.loads(description["output"]) if description.get("output") else {}
    events: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = sfn.get_execution_history(
            executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {})
        )
        events.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            break
    return Execution(
        key=key,
        status=description["status"],
        output_status=output.get("status"),
        retries=retries_in(events),
        error=description.get("error"),
    )


def _executions(sfn: Any, machine: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
        listed.extend(page["executions"])
    return listed


def run_burst(uploads: int = 200, clients: int = 32, deadline_s: float = 900.0) -> BurstResult:
    with LocalCloud.running(server=True, workers=True) as cloud:
        session = boto3.Session(
            region_name=REGION, aws_access_key_id="burst", aws_secret_access_key="burst"
        )
        config = Config(max_pool_connections=clients, retries={"mode": "standard"})
        s3 = session.client("s3", endpoint_url=cloud.endpoint_url, config=config)
        sfn = session.client("stepfunctions", endpoint_url=cloud.endpoint_url, config=config)
        bodies = [photo(n) for n in range(uploads)]
        keys = [f"burst/{n:04d}.jpg" for n in range(uploads)]

        started = time.time()
        with ThreadPoolExecutor(clients) as pool:
            list(
                pool.map(
                    lambda n: s3.put_object(
                        Bucket=cloud.input_bucket,
                        Key=keys[n],
                        Body=bodies[n],
                        ContentType="image/jpeg",
                    ),
                    range(uploads),
                )
            )
        uploaded = time.time()

        # Every upload starts one execution; wait until all of them have ended.
        deadline = time.monotonic() + deadline_s
        timed_out = False
        while True:
            listed = _executions(sfn, cloud.state_machine_arn)
            if len(listed) >= uploads and all(e["status"] in TERMINAL for e in listed):
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.5)

        key_of = {d.execution_arn: d.key for d in cloud.bridge.deliveries}
        with ThreadPoolExecutor(8) as pool:
            executions = list(
                pool.map(
                    lambda e: _describe(sfn, e["executionArn"], key_of.get(e["executionArn"], "")),
                    listed,
                )
            )
        ends = [e["stopDate"] for e in listed if isinstance(e.get("stopDate"), datetime)]
        drained = max(end.timestamp() for end in ends) if ends else time.time()

    retried = [e for e in executions if e.retries]
    return BurstResult(
        uploads=uploads,
        executions=len(executions),
        by_status=dict(Counter(e.status for e in executions)),
        by_output_status=dict(Counter(str(e.output_status) for e in executions)),
        retried=len(retried),
        retries_by_state=dict(Counter(state for e in retried for state in e.retries)),
        retry_errors=dict(
            Counter(error for e in retried for errors in e.retries.values() for error in errors)
        ),
        failures=[asdict(e) for e in executions if e.status != "SUCCEEDED"][:20],
        upload_s=round(uploaded - started, 2),
        drain_s=round(drained - started, 2),
        timed_out=timed_out,
    )


def _print(result: BurstResult) -> None:
    print(f"uploads            {result.uploads} (put in {result.upload_s:.1f} s)")
    print(f"executions         {result.executions}")
    for status, count in sorted(result.by_status.items()):
        print(f"  {status:<16} {count}")
    print("output status")
    for status, count in sorted(result.by_output_status.items()):
        print(f"  {status:<16} {count}")
    print(f"needed a retry     {result.retried}")
    for state, count in sorted(result.retries_by_state.items()):
        print(f"  in {state:<13} {count}")
    for error, count in sorted(result.retry_errors.items()):
        print(f"  after {error:<10} {count}")
    print(f"drain time         {result.drain_s:.1f} s (first upload to last execution end)")
    if result.timed_out:
        print("deadline passed before every execution had ended")
    for failure in result.failures:
        print(f"  {failure['key']}: {failure['status']} {failure['error']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.burst", description=__doc__)
    parser.add_argument("--uploads", type=int, default=200, help="how many uploads (200)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent uploaders (32)")
    parser.add_argument(
        "--deadline", type=float, default=900.0, help="seconds to wait for the executions"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = run_burst(args.uploads, args.clients, args.deadline)
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        _print(result)
    ok = (
        not result.timed_out
        and result.executions == result.uploads
        and result.by_status.get("SUCCEEDED", 0) == result.uploads
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
