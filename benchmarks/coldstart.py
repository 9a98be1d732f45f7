"""Cold start of each Lambda handler against a bare `import boto3, PIL.Image` process.

    python -m benchmarks.coldstart [--runs N]

Each measurement is a fresh interpreter that does what Lambda's init phase does for the
function: import `functions/<name>/app.py` (its imports plus module-level
initialisation: Powertools Logger/Metrics, the tracer, the parsed configuration, the
storage adapters) with the environment the template gives that function, plus what
Lambda sets (region, dummy credentials, function name, `LAMBDA_TASK_ROOT`,
`LAMBDA_RUNTIME_DIR`, `_HANDLER`, X-Ray daemon address). The X-Ray daemon address is
loopback and nothing is sent.

The handlers make their boto3 clients at first use, so init does not include them; the
first invocation pays for them instead. `<name>+first-use` measures that cost: the same
import, then the clients made through the adapters' `client` property, the path the
first invocation takes (no call is made). It is reported next to the handler's init
(`first_use_ms`), so a smaller init is not read as a saving it is not.

Reported per variant, as medians over interleaved rounds:

* `process_ms`: the whole process, spawn to exit (interpreter start included, as
  Lambda's init duration includes its runtime start);
* `init_ms`: from the child's first statement to the end of the import;
* `cpu_ms` of the child (`os.wait4`) and its peak RSS (`VmHWM`) at the end of init;
* for the handlers, `first_use_ms` (making the clients after init), the peak RSS once
  they exist (`first_use_rss_mb`) and `init_and_first_use_ratio`: init plus first use
  against the bare init.

Variants besides the four handlers: `bare` (the baseline), `<name>-no-xray` (the same
handler with Powertools' `Tracer` replaced by a no-op before the import: what the X-Ray
SDK still costs) and `breakdown` (the resize handler's init, one step at a time, then
its first-use steps, to attribute the cost).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REGION = "us-east-1"
# Label suffix of the variants that time the clients the first invocation makes.
FIRST_USE = "+first-use"

# Runs in the child with `python -c`: stdlib only until the measured import, so the
# baseline and the handlers pay the same fixed costs.
_CHILD = r"""
import time
_t0 = time.perf_counter()
import sys
kind, target = sys.argv[1], sys.argv[2]
marks = []
# End of init; the kinds that go on past it (first use) set it where init ends.
_t1 = None
first_use_ms = None
if kind == "bare":
    import boto3, PIL.Image
elif kind == "breakdown":
    import boto3, PIL.Image
    marks.append(("import boto3, PIL.Image", time.perf_counter()))
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.typing import LambdaContext
    Logger(); Metrics()
    marks.append(("Powertools Logger + Metrics", time.perf_counter()))
    sys.path.insert(0, target)
    import imgpipe.claims, imgpipe.config, imgpipe.messages, imgpipe.stages.resize
    import imgpipe.storage, imgpipe.telemetry
    config = imgpipe.config.resize_config()
    store = imgpipe.storage.ObjectStore(lambda: boto3.client("s3"))
    claims = imgpipe.claims.ClaimTable(lambda: boto3.client("dynamodb"), config.state_table)
    marks.append(("imgpipe modules + resize_config() + adapters", time.perf_counter()))
    imgpipe.telemetry.handler_tracer()
    marks.append(("handler_tracer() (imports aws_xray_sdk, patches botocore)", time.perf_counter()))
    _t1 = time.perf_counter()
    store.client
    marks.append(("first use: S3 client (boto3.client('s3'))", time.perf_counter()))
    claims.client
    marks.append(("first use: DynamoDB client (boto3.client('dynamodb'))", time.perf_counter()))
else:
    import importlib.util
    if kind == "no-xray":
        import aws_lambda_powertools

        class _NoTracer:
            def __init__(self, *args, **kwargs):
                pass

            def capture_lambda_handler(self, *args, **kwargs):
                return lambda handler: handler

            def capture_method(self, *args, **kwargs):
                return lambda method: method

        aws_lambda_powertools.Tracer = _NoTracer
    sys.path.insert(0, target)
    spec = importlib.util.spec_from_file_location("app", target + "/app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    if kind == "first-use":
        _t1 = time.perf_counter()
        # What the first invocation does before its first AWS call.
        module.STORE.client
        module.CLAIMS.client
        first_use_ms = (time.perf_counter() - _t1) * 1000
if _t1 is None:
    _t1 = time.perf_counter()
import json
steps, previous = [], _t0
for name, at in marks:
    steps.append([name, (at - previous) * 1000])
    previous = at
rss_kb = 0
try:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                rss_kb = int(line.split()[1])
except OSError:
    pass
heavy = ["aws_xray_sdk.core", "PIL.Image", "PIL.ImageCms", "PIL.AvifImagePlugin", "botocore"]
print(json.dumps({
    "init_ms": (_t1 - _t0) * 1000,
    "first_use_ms": first_use_ms,
    "rss_kb": rss_kb,
    "steps": steps,
    "loaded": [m for m in heavy if m in sys.modules],
}))
"""


def handler_dirs(repo: Path) -> dict[str, Path]:
    return {p.parent.name: p.parent for p in sorted((repo / "functions").glob("*/app.py"))}


def lambda_environment(repo: Path) -> dict[str, dict[str, Any]]:
    """Per function folder name: the template's environment and memory size."""
    sys.path.insert(0, str(repo / "src"))
    from imgpipe.local.template import Template

    template = Template(repo / "template.yaml")
    # Physical names for the resources the environment refers to (a table, buckets).
    for logical in template.data.get("Resources", {}):
        template.resolver.physical[logical] = f"imgpipe-bench-{logical.lower()}"
    out: dict[str, dict[str, Any]] = {}
    for spec in template.functions().values():
        out[spec.code_uri.name] = {
            "environment": spec.environment,
            "memory_mb": spec.memory_mb,
            "name": spec.logical_id,
        }
    return out


def _base_environment(function: str, memory_mb: int) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_SESSION_TOKEN": "bench",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_LAMBDA_FUNCTION_NAME": f"imgpipe-bench-{function}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            # Libraries branch on these: the X-Ray SDK's recorder uses its cheap local
            # sampler inside Lambda and builds botocore X-Ray clients everywhere else.
            "LAMBDA_TASK_ROOT": "/var/task",
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "_HANDLER": "app.handler",
            # Lambda points the X-Ray SDK at its daemon; here loopback, and nothing is
            # emitted during init anyway.
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        }
    )
    return env


def _spawn(python: str, kind: str, target: str, env: dict[str, str]) -> dict[str, Any]:
    start = time.perf_counter()
    child = subprocess.Popen(
        [python, "-c", _CHILD, kind, target],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert child.stdout is not None
    output = child.stdout.read()
    child.stdout.close()
    # wait4 rather than Popen.wait: it also returns the child's own CPU time and peak RSS.
    _, status, usage = os.wait4(child.pid, 0)
    process_ms = (time.perf_counter() - start) * 1000
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        msg = f"cold-start child {kind} {target} failed: {output.strip()[-800:]}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["process_ms"] = process_ms
    result["cpu_ms"] = (usage.ru_utime + usage.ru_stime) * 1000
    # The child's own VmHWM: ru_maxrss would carry the parent's RSS over the exec.
    result["rss_mb"] = (result.get("rss_kb") or usage.ru_maxrss) / 1024
    return result


def measure(repo: Path, runs: int, python: str | None = None) -> dict[str, Any]:
    """Median cold starts of every handler, the bare baseline and the what-ifs."""
    python = python or sys.executable
    functions = lambda_environment(repo)
    handlers = handler_dirs(repo)
    variants: list[tuple[str, str, str, dict[str, str]]] = []
    bare_env = _base_environment("bare", 1024)
    variants.append(("bare", "bare", "-", bare_env))
    for name, folder in handlers.items():
        info = functions.get(name, {"environment": {}, "memory_mb": 128})
        env = _base_environment(name, int(info["memory_mb"])) | dict(info["environment"])
        variants.append((name, "handler", str(folder), env))
        variants.append((f"{name}{FIRST_USE}", "first-use", str(folder), env))
        variants.append((f"{name}-no-xray", "no-xray", str(folder), env))
    if "resize" in handlers:
        resize_env = _base_environment("resize", 1024) | dict(
            functions.get("resize", {"environment": {}})["environment"]
        )
        variants.append(("breakdown", "breakdown", str(handlers["resize"]), resize_env))

    samples: dict[str, list[dict[str, Any]]] = {label: [] for label, *_ in variants}
    for round_index in range(runs):
        # Rotate the order each round so drift in machine load hits every variant alike.
        shift = round_index % len(variants)
        for label, kind, target, env in variants[shift:] + variants[:shift]:
            samples[label].append(_spawn(python, kind, target, env))

    def median(label: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[label])

    results: dict[str, Any] = {}
    for label, kind, _, _ in variants:
        if kind in ("breakdown", "first-use"):
            continue
        results[label] = {
            "process_ms": median(label, "process_ms"),
            "init_ms": median(label, "init_ms"),
            "cpu_ms": median(label, "cpu_ms"),
            "rss_mb": median(label, "rss_mb"),
            "loaded": samples[label][0]["loaded"],
            "runs": len(samples[label]),
        }
    breakdown: list[dict[str, Any]] = []
    if samples.get("breakdown"):
        names = [step[0] for step in samples["breakdown"][0]["steps"]]
        for index, step in enumerate(names):
            breakdown.append(
                {
                    "step": step,
                    "ms": statistics.median(s["steps"][index][1] for s in samples["breakdown"]),
                }
            )
    bare = results["bare"]
    for value in results.values():
        value["process_ratio"] = value["process_ms"] / bare["process_ms"]
        value["init_ratio"] = value["init_ms"] / bare["init_ms"]
    for name in handlers:
        # The cost moved out of init, beside it: the first invocation pays it.
        handler = results[name]
        handler["first_use_ms"] = median(f"{name}{FIRST_USE}", "first_use_ms")
        handler["first_use_rss_mb"] = median(f"{name}{FIRST_USE}", "rss_mb")
        moved = handler["init_ms"] + handler["first_use_ms"]
        handler["init_and_first_use_ratio"] = moved / bare["init_ms"]
    return {
        "runs": runs,
        "memory_mb": {name: functions.get(name, {}).get("memory_mb") for name in handlers},
        "variants": results,
        "resize_breakdown": breakdown,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved rounds (default 7)")
    args = parser.parse_args()
    result = measure(Path(__file__).resolve().parents[1], args.runs)
    print(
        f"{'variant':<16}{'process ms':>11}{'init ms':>9}{'x bare':>8}{'x bare init':>12}"
        f"{'RSS MB':>8}{'first use ms':>14}{'init+first use':>16}{'RSS then MB':>13}"
    )
    for label, v in result["variants"].items():
        first_use = (
            f"{v['first_use_ms']:>14.0f}{v['init_and_first_use_ratio']:>15.2f}x"
            f"{v['first_use_rss_mb']:>13.0f}"
            if "first_use_ms" in v
            else ""
        )
        print(
            f"{label:<16}{v['process_ms']:>11.0f}{v['init_ms']:>9.0f}"
            f"{v['process_ratio']:>7.2f}x{v['init_ratio']:>11.2f}x{v['rss_mb']:>8.0f}{first_use}"
        )
    print(f"\nresize, step by step ({args.runs} rounds, medians):")
    for step in result["resize_breakdown"]:
        print(f"{step['ms']:>7.1f} ms  {step['step']}")


if __name__ == "__main__":
    main()
