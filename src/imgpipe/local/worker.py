"""One Lambda execution environment: a process that loads one handler and serves it.

Started by `imgpipe.local.workers` as `python -I -S worker.py '<config json>'`: isolated
mode and no `site`, so nothing from the developer's virtualenv is importable; the
config lists the only folders that go on `sys.path` (the function's CodeUri, its
layers' `python/` folders, and a runtime folder holding what the Lambda Python
runtime provides, i.e. boto3). The environment is exactly the function's.

Protocol, in JSON lines: once initialised (handler module imported, or failed to), the
worker writes `{"ready": true}` on the original stdout; then it reads one request per
line on stdin (`{"event": ..., "request_id": ..., "deadline": ...,
"invoked_function_arn": ...}`, the deadline on the system's monotonic clock) and
answers each with one response line. Whatever the
handler prints (Powertools' JSON logs, EMF metrics) is captured per invocation and
returned in the response, the way Lambda sends it to the function's log stream.

Standard library only: this file runs before anything else is importable.
"""

from __future__ import annotations

import importlib.util
import io
import json
import resource
import sys
import time
import traceback
from typing import Any


class _Capture(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr; collects one invocation's output."""

    def __init__(self) -> None:
        self.buffer_: list[str] = []

    def write(self, text: str) -> int:
        self.buffer_.append(text)
        return len(text)

    def flush(self) -> None:
        return None

    def take(self) -> str:
        text = "".join(self.buffer_)
        self.buffer_.clear()
        return text


class _Context:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    def __init__(self, config: dict[str, Any], request: dict[str, Any]) -> None:
        self.function_name = config["function_name"]
        self.function_version = config["function_version"]
        self.invoked_function_arn = request["invoked_function_arn"]
        self.memory_limit_in_mb = config["memory_mb"]
        self.aws_request_id = request["request_id"]
        self.log_group_name = config["log_group"]
        self.log_stream_name = "local"
        # When the caller kills this process: its clock started with this invocation.
        # time.monotonic() is the system-wide monotonic clock, the same in both processes.
        self._deadline = float(request["deadline"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _max_rss_mb() -> float:
    """Peak resident memory of this process, as Lambda's "Max Memory Used".

    ru_maxrss survives exec, so a worker forked from a large parent would report the
    parent's peak; the kernel's high-water mark of this address space does not.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    config = json.loads(sys.argv[1])
    sys.path[:0] = config["path"]
    protocol = sys.stdout
    capture = _Capture()
    # Loggers bind to sys.stdout when the handler module is imported: put the capture
    # in place first so their output is per invocation, not mixed into the protocol.
    sys.stdout = capture
    sys.stderr = capture

    init_started = time.perf_counter()
    module_name, _, function_name = config["handler"].rpartition(".")
    handler = None
    init_error: dict[str, Any] | None = None
    try:
        spec = importlib.util.spec_from_file_location(
            module_name, f"{config['code_uri']}/{module_name.replace('.', '/')}.py"
        )
        if spec is None or spec.loader is None:
            msg = f"cannot load handler module {module_name}"
            raise ImportError(msg)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        handler = getattr(module, function_name)
    except Exception as error:
        init_error = {
            "errorType": "Runtime.ImportModuleError",
            "errorMessage": f"Unable to import module '{module_name}': {error}",
            "stackTrace": traceback.format_tb(error.__traceback__),
        }
    init_ms = (time.perf_counter() - init_started) * 1000
    init_logs = capture.take()
    # Initialised: from here on, the caller's clock runs per invocation.
    protocol.write(json.dumps({"ready": True}) + "\n")
    protocol.flush()

    first = True
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        error_type = None
        if init_error is not None:
            response: Any = init_error
            error_type = init_error["errorType"]
        else:
            context = _Context(config, request)
            try:
                assert handler is not None
                response = handler(request["event"], context)
                json.dumps(response)
            except Exception as error:
                error_type = type(error).__name__
                response = {
                    "errorMessage": str(error),
                    "errorType": error_type,
                    "requestId": request["request_id"],
                    "stackTrace": traceback.format_tb(error.__traceback__),
                }
        duration_ms = (time.perf_counter() - started) * 1000
        logs = (init_logs if first else "") + capture.take()
        reply = {
            "response": response,
            "error_type": error_type,
            "logs": logs,
            "duration_ms": duration_ms,
            "init_ms": init_ms if first else 0.0,
            "cold_start": first,
            "max_memory_mb": _max_rss_mb(),
        }
        first = False
        protocol.write(json.dumps(reply, default=str) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
