"""Lambda functions as local worker processes, one warm process per function.

Each worker sees what its Lambda function would see and nothing more:

* its template environment (plus the Lambda-provided variables and the emulator's
  endpoint and dummy credentials) — not the developer's shell;
* on `sys.path`, only its `CodeUri`, the `python/` folder of each layer the template
  attaches to it, and a runtime folder with what the Lambda Python runtime ships
  (boto3 and its dependencies). Layers are assembled from the packages pinned in the
  layer's `requirements.txt`, linked from this virtualenv (this machine's platform),
  plus the layer's own code from its `ContentUri`; so `import PIL` fails in validate
  exactly as it would in AWS.

The first invocation starts the process (a cold start, measured); later ones reuse it.
A handler exception comes back in the Python runtime's error shape; a worker that
exceeds the function's timeout is killed and reported as `Sandbox.Timedout`, as Lambda
reports it to Step Functions.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from imgpipe.local.runner import Invocation, lambda_environment
from imgpipe.local.template import FunctionSpec, Template

# What the Lambda Python runtime provides to every function (not shipped in layers).
RUNTIME_PACKAGES = (
    "boto3",
    "botocore",
    "jmespath",
    "s3transfer",
    "urllib3",
    "python-dateutil",
    "six",
)
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==")


def _requirements(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _REQUIREMENT.match(line)
        if match:
            names.append(match.group(1))
    return names


def _link_distribution(name: str, target: Path) -> None:
    """Link the top-level files of an installed distribution into `target`."""
    dist = importlib.metadata.distribution(name)
    tops: set[str] = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first == ".." or first == "__pycache__":
            continue
        tops.add(first)
    for top in sorted(tops):
        source = Path(str(dist.locate_file(top)))
        link = target / top
        if source.exists() and not link.exists():
            link.symlink_to(source)


def assemble_layers(template: Template, out: Path) -> dict[str, Path]:
    """Build `out/<LayerId>/python` for every layer, and `out/runtime`, as link farms."""
    if out.exists():
        shutil.rmtree(out)
    farms: dict[str, Path] = {}
    for logical, resource in template.resources("AWS::Serverless::LayerVersion").items():
        props = resource.get("Properties", {})
        content = (template.root / props["ContentUri"]).resolve()
        recipe = template.root / resource.get("Metadata", {}).get(
            "ContextPath", props["ContentUri"]
        )
        python = out / logical / "python"
        python.mkdir(parents=True)
        requirements = recipe / "requirements.txt"
        if requirements.is_file():
            for name in _requirements(requirements):
                _link_distribution(name, python)
        # The layer's own code: packages that sit in its ContentUri (CoreLayer: src/).
        for package in content.iterdir():
            if (package / "__init__.py").is_file():
                (python / package.name).symlink_to(package)
        farms[logical] = python
    runtime = out / "runtime"
    runtime.mkdir(parents=True)
    for name in RUNTIME_PACKAGES:
        _link_distribution(name, runtime)
    farms["runtime"] = runtime
    return farms


@dataclass
class _Worker:
    process: subprocess.Popen[str]
    lock: threading.Lock


class WorkerFunctions:
    """Same interface as `LocalFunctions`, with a process per function."""

    def __init__(
        self,
        specs: dict[str, FunctionSpec],
        *,
        names: dict[str, str],
        arns: dict[str, str],
        layers: dict[str, Path],
        endpoint_url: str,
        region: str,
        extra_environment: dict[str, str] | None = None,
    ) -> None:
        self._specs = specs
        self._names = names
        self._arns = arns
        self._by_name = {names[logical]: logical for logical in specs}
        self._layers = layers
        self._endpoint = endpoint_url
        self._region = region
        self._extra = extra_environment or {}
        self._workers: dict[str, _Worker] = {}
        self._guard = threading.Lock()
        self.invocations: list[Invocation] = []

    def logical_id(self, function_name: str) -> str:
        return self._by_name[function_name]

    def environment(self, logical: str) -> dict[str, str]:
        spec = self._specs[logical]
        env = lambda_environment(spec, self._names[logical], self._region)
        env.update(
            {
                # What makes its SDK talk to the emulator instead of AWS.
                "AWS_ENDPOINT_URL": self._endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_SESSION_TOKEN": "local",
            }
        )
        env.update(self._extra)
        env.update(spec.environment)
        return env

    def sys_path(self, logical: str) -> list[str]:
        spec = self._specs[logical]
        layer_paths = [str(self._layers[layer]) for layer in spec.layers if layer in self._layers]
        return [str(spec.code_uri), *layer_paths, str(self._layers["runtime"])]

    def _start(self, logical: str) -> _Worker:
        spec = self._specs[logical]
        config = {
            "function_name": self._names[logical],
            "function_arn": self._arns[logical],
            "memory_mb": spec.memory_mb,
            "handler": spec.handler,
            "code_uri": str(spec.code_uri),
            "path": self.sys_path(logical),
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                str(Path(__file__).with_name("worker.py")),
                json.dumps(config),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.environment(logical),
            cwd=str(spec.code_uri),
            text=True,
            bufsize=1,
        )
        return _Worker(process=process, lock=threading.Lock())

    def _worker(self, logical: str) -> _Worker:
        with self._guard:
            worker = self._workers.get(logical)
            if worker is None or worker.process.poll() is not None:
                worker = self._start(logical)
                self._workers[logical] = worker
            return worker

    def invoke(self, function_name: str, event: Any) -> Invocation:
        logical = self._by_name[function_name]
        spec = self._specs[logical]
        request_id = str(uuid.uuid4())
        worker = self._worker(logical)
        with worker.lock:
            started = time.perf_counter()
            reply = self._exchange(worker, event, request_id, spec.timeout_s)
            elapsed = (time.perf_counter() - started) * 1000
        if reply is None:
            self._kill(logical, worker)
            reply = {
                "response": {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"Task timed out after {spec.timeout_s:.2f} seconds",
                },
                "error_type": "Sandbox.Timedout",
                "logs": "",
                "duration_ms": elapsed,
                "init_ms": 0.0,
                "cold_start": False,
                "max_memory_mb": 0.0,
            }
        invocation = Invocation(
            function=logical,
            request_id=request_id,
            event=event,
            response=reply["response"],
            error_type=reply["error_type"],
            logs=reply["logs"] + _report_line(request_id, spec, reply),
            duration_ms=reply["duration_ms"],
            cold_start=reply["cold_start"],
            init_ms=reply["init_ms"],
        )
        self.invocations.append(invocation)
        return invocation

    def _exchange(
        self, worker: _Worker, event: Any, request_id: str, timeout_s: int
    ) -> dict[str, Any] | None:
        assert worker.process.stdin is not None
        assert worker.process.stdout is not None
        request = {"event": event, "request_id": request_id, "deadline_ms": timeout_s * 1000}
        try:
            worker.process.stdin.write(json.dumps(request) + "\n")
            worker.process.stdin.flush()
        except BrokenPipeError:
            return _crashed(worker.process)
        line = _read_line(worker.process.stdout, timeout_s)
        if line is None:
            return None
        if not line:
            return _crashed(worker.process)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _kill(self, logical: str, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.wait()
        with self._guard:
            if self._workers.get(logical) is worker:
                del self._workers[logical]

    def close(self) -> None:
        with self._guard:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
            try:
                worker.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            if worker.process.stdout is not None:
                worker.process.stdout.close()


def _read_line(stream: IO[str], timeout_s: float) -> str | None:
    """One line from the worker, or None if it takes longer than the timeout."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    if reader.is_alive():
        return None
    return result[0] if result else ""


def _crashed(process: subprocess.Popen[str]) -> dict[str, Any]:
    code = process.wait()
    output = process.stdout.read() if process.stdout is not None else ""
    message = f"RequestId: local Error: Runtime exited with error: exit status {code}"
    return {
        "response": {"errorType": "Runtime.ExitError", "errorMessage": message},
        "error_type": "Runtime.ExitError",
        "logs": output,
        "duration_ms": 0.0,
        "init_ms": 0.0,
        "cold_start": False,
        "max_memory_mb": 0.0,
    }


def _report_line(request_id: str, spec: FunctionSpec, reply: dict[str, Any]) -> str:
    """The REPORT line Lambda appends to every invocation's log."""
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {reply['duration_ms']:.2f} ms\t"
        f"Memory Size: {spec.memory_mb} MB\tMax Memory Used: {reply['max_memory_mb']:.0f} MB"
    )
    if reply.get("cold_start"):
        line += f"\tInit Duration: {reply['init_ms']:.2f} ms"
    return line + "\n"
