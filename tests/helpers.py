"""Builders and runners shared by the tests (fixtures are generated, never copied in)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from PIL import Image

if TYPE_CHECKING:
    from imgpipe.local.cloud import LocalCloud


ROOT = Path(__file__).resolve().parents[1]


def load_check_layer() -> ModuleType:
    """layers/check_layer.py, which runs standalone in the SAM virtualenv (not a package
    module), loaded once per process."""
    loaded = sys.modules.get("check_layer")
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location("check_layer", ROOT / "layers" / "check_layer.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_layer"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def jpeg(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG")
    return out.getvalue()


def handler_s3_client(cloud: LocalCloud, function: str) -> Any:
    """The S3 client `function`'s invocations use; made now, as they would, if not yet."""
    with cloud.functions.inside(function) as app:
        return app.STORE.client


@contextmanager
def s3_slows_down(
    cloud: LocalCloud, function: str = "ResizeFunction", operation: str = "PutObject"
) -> Iterator[list[str]]:
    """While active, every `operation` of `function`'s S3 client answers SlowDown (503).

    Yields the operations attempted, one entry per refused call.
    """
    client = handler_s3_client(cloud, function)
    event = f"before-call.s3.{operation}"
    attempts: list[str] = []

    def slow_down(**kwargs: Any) -> None:
        attempts.append(kwargs["model"].name)
        raise ClientError(
            {
                "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                "ResponseMetadata": {"HTTPStatusCode": 503},
            },
            operation,
        )

    client.meta.events.register(event, slow_down)
    try:
        yield attempts
    finally:
        client.meta.events.unregister(event, slow_down)


@dataclass(frozen=True)
class CliRun:
    """What one `imgpipe` command printed and returned (the `imgpipe` fixture)."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Imgpipe = Callable[..., CliRun]


@dataclass
class LocalUp:
    """A running `imgpipe local up`: what its ready file announced, the deadline the
    test's waits share, and (once stopped) everything it printed."""

    facts: dict[str, Any]
    deadline: float
    output: str = ""


@contextmanager
def local_up(folder: Path, *options: str, timeout_s: float = 90) -> Iterator[LocalUp]:
    """`imgpipe local up --port 0` in a subprocess, ready; stopped with SIGTERM after,
    and it must then exit 0."""
    ready = folder / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    command = [sys.executable, "-m", "imgpipe.cli", "local", "up", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--ready-file", str(ready), *options],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = LocalUp({}, time.monotonic() + timeout_s)
    try:
        while not ready.exists():
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < served.deadline, "local up did not become ready"
            time.sleep(0.1)
        served.facts = json.loads(ready.read_text())
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        served.output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, served.output
