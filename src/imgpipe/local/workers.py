"""Lambda functions as local worker processes, one warm process per function version.

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
Calls queue for the process; the function's timeout counts each call's own run only
(not its wait, not the initialisation). A handler exception comes back in the Python
runtime's error shape; a worker that exceeds the function's timeout is killed and
reported as `Sandbox.Timedout`, one that dies as `Runtime.ExitError`, as Lambda reports
them to Step Functions; only the call it was running fails, and the next call in the
queue starts a replacement.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgpipe.local.runner import Invocation, function_name, lambda_environment
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


# Lambda gives a function's initialisation (imports, module-level clients) up to 10 s of
# its own; the function's Timeout starts with the invocation. An init that runs over is
# retried inside the invocation, under the function's timeout: so at most this + Timeout.
INIT_LIMIT_S = 10.0


class _Process:
    """One worker process, with a reader thread that queues each line it writes."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.popen = popen
        self.stray: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stdout = self.popen.stdout
        assert stdout is not None
        with stdout:
            for line in stdout:
                self._lines.put(line)
        self._lines.put("")  # end of file: the process has exited

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, message: dict[str, Any]) -> bool:
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(json.dumps(message) + "\n")
            self.popen.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def receive(self, deadline: float) -> str | None:
        """The next protocol line ("" once the process has exited), or None at the
        deadline. Anything else the process wrote to its stdout or stderr file
        descriptors (a fatal error's traceback) is kept in `stray`."""
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if not line or line.startswith("{"):
                return line
            self.stray.append(line)

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait()

    def close(self) -> None:
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class _Slot:
    """A function version's execution environment, as callers see it.

    Callers queue on `lock`, and only the holder looks at `process`: when the process
    dies (killed, crashed, timed out), the holder's call fails, the slot is emptied and
    the next caller in the queue starts a replacement.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    process: _Process | None = None
    waiting: int = 0


class WorkerFunctions:
    """Same interface as `LocalFunctions`, with a process per function version."""

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
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._guard = threading.Lock()
        self.invocations: list[Invocation] = []

    def logical_id(self, function: str) -> str:
        """The template's logical id for a function name, `name:qualifier` or ARN."""
        return self._by_name[function_name(function)]

    def environment(self, logical: str, version: str = "$LATEST") -> dict[str, str]:
        spec = self._specs[logical]
        env = lambda_environment(spec, self._names[logical], self._region, version)
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

    def queued(self, function: str, version: str = "$LATEST") -> int:
        """How many calls of this function version are waiting for its worker."""
        slot = self._slots.get((self.logical_id(function), version))
        return 0 if slot is None else slot.waiting

    def pid(self, function: str, version: str = "$LATEST") -> int | None:
        """The process id of the worker serving this function version, if one runs."""
        slot = self._slots.get((self.logical_id(function), version))
        process = None if slot is None else slot.process
        return None if process is None else process.popen.pid

    def _start(self, logical: str, version: str) -> _Process:
        spec = self._specs[logical]
        config = {
            "function_name": self._names[logical],
            "function_version": version,
            "memory_mb": spec.memory_mb,
            "handler": spec.handler,
            "code_uri": str(spec.code_uri),
            "log_group": spec.log_group or f"/aws/lambda/{self._names[logical]}",
            "path": self.sys_path(logical),
        }
        popen = subprocess.Popen(
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
            env=self.environment(logical, version),
            cwd=str(spec.code_uri),
            text=True,
            bufsize=1,
        )
        return _Process(popen)

    def _slot(self, logical: str, version: str) -> _Slot:
        with self._guard:
            return self._slots.setdefault((logical, version), _Slot())

    def invoke(
        self,
        function: str,
        event: Any,
        *,
        version: str = "$LATEST",
        invoked_arn: str | None = None,
    ) -> Invocation:
        logical = self.logical_id(function)
        spec = self._specs[logical]
        request_id = str(uuid.uuid4())
        slot = self._slot(logical, version)
        with self._guard:
            slot.waiting += 1
        try:
            slot.lock.acquire()
        finally:
            with self._guard:
                slot.waiting -= 1
        try:
            reply = self._run(slot, logical, version, event, request_id, invoked_arn)
        finally:
            slot.lock.release()
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

    def _run(
        self,
        slot: _Slot,
        logical: str,
        version: str,
        event: Any,
        request_id: str,
        invoked_arn: str | None,
    ) -> dict[str, Any]:
        """One invocation in the slot's process (started first if there is none);
        the caller holds the slot's lock."""
        spec = self._specs[logical]
        if slot.process is not None and not slot.process.alive():
            slot.process.close()
            slot.process = None
        if slot.process is None:
            process = self._start(logical, version)
            ready = process.receive(time.monotonic() + INIT_LIMIT_S + spec.timeout_s)
            if not ready:
                failure = _timed_out(spec, 0.0) if ready is None else _crashed(process)
                process.kill()
                process.close()
                return failure
            slot.process = process
        process = slot.process
        # The function's timeout counts this invocation only: not the time the call
        # waited for the worker, nor the worker's initialisation. The worker is handed
        # the same deadline, for the handler's context.get_remaining_time_in_millis().
        started = time.monotonic()
        deadline = started + spec.timeout_s
        request = {
            "event": event,
            "request_id": request_id,
            "deadline": deadline,
            "invoked_function_arn": invoked_arn or self._qualified_arn(logical, version),
        }
        line = process.receive(deadline) if process.send(request) else ""
        if line:
            answer: dict[str, Any] = json.loads(line)
            return answer
        slot.process = None
        if line is None:
            process.kill()
            failure = _timed_out(spec, (time.monotonic() - started) * 1000)
        else:
            failure = _crashed(process)
        process.close()
        return failure

    def _qualified_arn(self, logical: str, version: str) -> str:
        arn = self._arns[logical]
        return arn if version == "$LATEST" else f"{arn}:{version}"

    def close(self) -> None:
        with self._guard:
            slots = list(self._slots.values())
            self._slots.clear()
        for slot in slots:
            if slot.process is not None:
                slot.process.close()


def _timed_out(spec: FunctionSpec, elapsed_ms: float) -> dict[str, Any]:
    return {
        "response": {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"Task timed out after {spec.timeout_s:.2f} seconds",
        },
        "error_type": "Sandbox.Timedout",
        "logs": "",
        "duration_ms": elapsed_ms,
        "init_ms": 0.0,
        "cold_start": False,
        "max_memory_mb": 0.0,
    }


def _crashed(process: _Process) -> dict[str, Any]:
    code = process.popen.wait()
    message = f"RequestId: local Error: Runtime exited with error: exit status {code}"
    return {
        "response": {"errorType": "Runtime.ExitError", "errorMessage": message},
        "error_type": "Runtime.ExitError",
        "logs": "".join(process.stray),
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
