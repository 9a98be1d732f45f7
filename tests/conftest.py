"""Shared fixtures: moto-backed AWS clients, clean Powertools state, the `imgpipe` CLI."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from helpers import CliRun, Imgpipe

if TYPE_CHECKING:
    from imgpipe.local.cloud import LocalCloud

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def _aws_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    # No test may reach a real account, whatever the developer's shell has set.
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ImgpipeTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "imgpipe")


@pytest.fixture(autouse=True)
def _reset_powertools_metrics() -> Iterator[None]:
    # Powertools keeps metrics in class-level state shared by every Metrics instance.
    from aws_lambda_powertools import Metrics

    yield
    Metrics().clear_metrics()
    Metrics().clear_default_dimensions()


@pytest.fixture
def s3() -> Iterator[object]:
    with mock_aws():
        yield boto3.client("s3", region_name=REGION)


@pytest.fixture
def imgpipe(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Imgpipe:
    """Runs `imgpipe <argv>` through `add_commands` and the chosen handler."""
    # Fixed width so rich wraps the same way everywhere (it reads COLUMNS when piped).
    monkeypatch.setenv("COLUMNS", "200")
    parser = argparse.ArgumentParser(prog="imgpipe")
    from imgpipe.ops.cli import add_commands

    add_commands(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> CliRun:
        args = parser.parse_args(list(argv))
        code = args.handler(args)
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    """template.yaml deployed on the local cloud, one per test module, with the state
    machine's retry waits skipped. A module that needs another deployment (parameters,
    a sleep recorder) defines its own `cloud`."""
    from imgpipe.local.cloud import LocalCloud

    with LocalCloud.running(retry_sleep=lambda seconds: None) as deployed:
        yield deployed
