"""Run the template's Lambda handlers locally, the way the Lambda runtime calls them.

Each function's module is loaded once from its `CodeUri`/`Handler` with its template
environment in place (so module-level configuration is parsed as at a cold start) and
reused warm afterwards. A handler exception comes back in the Python runtime's error
shape (`errorType`, `errorMessage`, `stackTrace`) so Step Functions' Retry and Catch
see the same error names they see in AWS.

This runner executes in the emulator's process, one invocation at a time, overlaying
the function's environment for the duration of the call.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TextIO

from imgpipe.local.template import FunctionSpec


def function_name(function: str) -> str:
    """The function name in what an Invoke call names: a name, `name:qualifier`, or a
    function ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`)."""
    if function.startswith("arn:"):
        return function.split(":")[6]
    return function.split(":", 1)[0]


def lambda_environment(
    spec: FunctionSpec, name: str, region: str, version: str = "$LATEST"
) -> dict[str, str]:
    """The variables the Lambda service sets for every function."""
    return {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": version,
        "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group or f"/aws/lambda/{name}",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
    }


@dataclass
class LocalContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_s: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_s - elapsed) * 1000))


class _StdoutRouter(io.TextIOBase):
    """Stands in for sys.stdout so each invocation's output lands in its own buffer.

    Powertools' Logger binds its stream handler to sys.stdout when the module is
    imported, so the router must already be in place at import time.
    """

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self._local = threading.local()

    @contextmanager
    def capture(self) -> Iterator[io.StringIO]:
        buffer = io.StringIO()
        previous = getattr(self._local, "buffer", None)
        self._local.buffer = buffer
        try:
            yield buffer
        finally:
            self._local.buffer = previous

    def write(self, text: str) -> int:
        target = getattr(self._local, "buffer", None) or self.fallback
        return target.write(text)

    def flush(self) -> None:
        target = getattr(self._local, "buffer", None) or self.fallback
        target.flush()


@dataclass
class Invocation:
    function: str
    request_id: str
    event: Any
    response: Any
    error_type: str | None
    logs: str
    duration_ms: float
    cold_start: bool
    init_ms: float


class LocalFunctions:
    """Loads and invokes the handlers described by `FunctionSpec`s."""

    def __init__(
        self,
        specs: dict[str, FunctionSpec],
        *,
        names: dict[str, str],
        base_environment: dict[str, str] | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
    ) -> None:
        self._specs = specs
        self._by_name = {names[logical]: logical for logical in specs}
        self._names = names
        self._base_env = base_environment or {}
        self._region = region
        self._account = account
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.RLock()
        self.invocations: list[Invocation] = []

    def logical_id(self, function: str) -> str:
        """The template's logical id for a function name, `name:qualifier` or ARN."""
        return self._by_name[function_name(function)]

    def module(self, logical: str) -> ModuleType:
        """The loaded handler module (loads it cold if needed)."""
        with self.inside(logical) as module:
            return module

    @contextmanager
    def inside(self, logical: str) -> Iterator[ModuleType]:
        """The loaded handler module, with the function's environment in place.

        What the module makes on first use (its boto3 clients) is made here as in one
        of the function's invocations: with its region, endpoint and credentials.
        """
        with self._lock, self._environment(logical):
            yield self._load(logical)[0]

    def _function_environment(self, logical: str, version: str = "$LATEST") -> dict[str, str]:
        spec = self._specs[logical]
        env = lambda_environment(spec, self._names[logical], self._region, version)
        env.update(self._base_env)
        env.update(spec.environment)
        return env

    @contextmanager
    def _environment(self, logical: str, version: str = "$LATEST") -> Iterator[None]:
        overlay = self._function_environment(logical, version)
        saved = {name: os.environ.get(name) for name in overlay}
        os.environ.update(overlay)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def _load(self, logical: str) -> tuple[ModuleType, float]:
        module = self._modules.get(logical)
        if module is not None:
            return module, 0.0
        spec = self._specs[logical]
        module_name, _, _ = spec.handler.rpartition(".")
        path = spec.code_uri / (module_name.replace(".", "/") + ".py")
        started = time.perf_counter()
        import_spec = importlib.util.spec_from_file_location(f"_imgpipe_fn_{logical}", path)
        if import_spec is None or import_spec.loader is None:
            msg = f"cannot load {path} for {logical}"
            raise ImportError(msg)
        module = importlib.util.module_from_spec(import_spec)
        _install_router()
        if not self._modules:
            # Functions in this process then share one handler bound to the router; each
            # invocation clears and sets its own keys (invocations are serialised).
            reset_powertools_logger(os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined"))
        _reset_cold_start_flags()
        import_spec.loader.exec_module(module)
        self._modules[logical] = module
        return module, (time.perf_counter() - started) * 1000

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
        name = self._names[logical]
        arn = f"arn:aws:lambda:{self._region}:{self._account}:function:{name}"
        router = _install_router()
        with self._lock, self._environment(logical, version), router.capture() as output:
            # Made once the call has the function to itself: its clock starts now.
            context = LocalContext(
                function_name=name,
                memory_limit_in_mb=spec.memory_mb,
                invoked_function_arn=invoked_arn
                or (arn if version == "$LATEST" else f"{arn}:{version}"),
                timeout_s=spec.timeout_s,
                function_version=version,
                log_group_name=spec.log_group or f"/aws/lambda/{name}",
            )
            cold = logical not in self._modules
            started = time.perf_counter()
            error_type = None
            init_ms = 0.0
            try:
                module, init_ms = self._load(logical)
                handler = getattr(module, spec.handler.rpartition(".")[2])
                response = handler(event, context)
                json.dumps(response)  # Lambda fails non-serialisable results too
            except Exception as error:
                error_type = type(error).__name__
                response = {
                    "errorMessage": str(error),
                    "errorType": error_type,
                    "requestId": context.aws_request_id,
                    "stackTrace": traceback.format_tb(error.__traceback__),
                }
            duration = (time.perf_counter() - started) * 1000
        invocation = Invocation(
            function=logical,
            request_id=context.aws_request_id,
            event=event,
            response=response,
            error_type=error_type,
            logs=output.getvalue(),
            duration_ms=duration,
            cold_start=cold,
            init_ms=init_ms,
        )
        self.invocations.append(invocation)
        return invocation


def reset_powertools_logger(service: str) -> None:
    """Make the next `Logger()` for `service` attach a fresh handler to the router.

    Powertools configures one `logging` logger per service name once per process and
    keeps the stream it saw then. In Lambda every cold start is a new process; here the
    logger may have been configured earlier against another stream (a test's capture),
    and its lines would never reach the invocation's log.
    """
    shared = logging.getLogger(service)
    for handler in list(shared.handlers):
        shared.removeHandler(handler)
    for attribute in (
        "init",
        "powertools_handler",
        "powertools_buffer_config",
        "powertools_buffer_cache",
    ):
        if hasattr(shared, attribute):
            delattr(shared, attribute)


def _reset_cold_start_flags() -> None:
    """Each function loaded here is a cold start, as a new Lambda process would be.

    Powertools keeps "this is a cold start" in module globals, once per process; the
    functions of the in-process runner share the process.
    """
    from aws_lambda_powertools.logging import logger as powertools_logger
    from aws_lambda_powertools.metrics.provider import cold_start

    cold_start.reset_cold_start_flag()
    powertools_logger.is_cold_start = True


_ROUTER: _StdoutRouter | None = None


def _install_router() -> _StdoutRouter:
    """Put the one router in front of whatever sys.stdout is now.

    Loggers keep a reference to the router itself, so when something else (a test
    runner's capture) swaps sys.stdout later, the router is put back in front of it
    rather than replaced.
    """
    global _ROUTER
    if _ROUTER is None:
        _ROUTER = _StdoutRouter(sys.stdout)
    if sys.stdout is not _ROUTER:
        _ROUTER.fallback = sys.stdout
        sys.stdout = _ROUTER
    return _ROUTER
