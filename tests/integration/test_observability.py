"""What operators will see: the metrics and logs real uploads produce, against the deployed
dashboard, the deployed alarms and docs/observability.md.

Uploads run through the template deployed into the local cloud (which uses the template's
parameter defaults, so the metrics namespace is `Imgpipe`): a processed photo, a PNG with
alpha, an HTML file named .jpg (rejected), one event delivered twice (processed, then
skipped as a duplicate), the deletion of a processed upload and the deletion of a key that
never had renditions. Every EMF blob the functions printed is collected, then:

* every metric in the functions' namespace that the deployed dashboard or an alarm reads
  (SEARCH expressions included) is emitted, with that namespace, that name and exactly
  that set of dimension names, and with the dimension values the dashboard spells out;
* every metric emitted is documented in docs/observability.md with its unit and
  dimensions;
* each path emits its outcome metric, and the numbers agree with the execution outputs;
* every log line that is not a metric carries the correlation keys.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from helpers import jpeg
from imgpipe.local.cloud import ExecutionRecord, LocalCloud

pytestmark = pytest.mark.xdist_group("observability")

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "observability.md"
CORRELATION_KEYS = ("execution", "state", "source_bucket", "source_key", "correlation_id")
# Lines the Lambda runtime writes itself (not JSON); the worker runner adds them.
RUNTIME_LINE = re.compile(r"^(START|END|REPORT|INIT_START|INIT_REPORT) ")
STAGES = ("Download", "Decode", "Resize", "Encode", "Upload")


# -- the uploads -------------------------------------------------------------------------


def transparent_png() -> bytes:
    image = Image.new("RGBA", (500, 300), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((50, 20, 450, 280), fill=(0, 160, 220, 180))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


HTML = b"<!DOCTYPE html><html><body>not a photo</body></html>"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    # Powertools keeps "is this a cold start" in one flag per process. In Lambda each
    # function has its own process; here an earlier test in this worker may have used the
    # flag up, so start this module with a cold start to observe.
    from aws_lambda_powertools.metrics.provider import cold_start

    cold_start.reset_cold_start_flag()
    with LocalCloud.running(retry_sleep=lambda seconds: None) as deployed:
        yield deployed


@pytest.fixture(scope="module")
def runs(cloud: LocalCloud) -> dict[str, ExecutionRecord]:
    prefix = f"observability/{uuid.uuid4().hex[:8]}"
    done = {
        "photo": cloud.upload(f"{prefix}/photo.jpg", jpeg(1200, 800)),
        "png": cloud.upload(f"{prefix}/badge.png", transparent_png()),
        "html": cloud.upload(f"{prefix}/page.jpg", HTML),
    }
    # One event delivered twice: the second execution is a duplicate.
    key = f"{prefix}/twice.jpg"
    with cloud.bridge.paused():
        cloud.s3.put_object(Bucket=cloud.input_bucket, Key=key, Body=jpeg(640, 480))
    event = cloud.object_created_event(key)
    done["first"] = cloud.wait(cloud.start(event), key)
    done["duplicate"] = cloud.wait(cloud.start(event), key)
    # A deletion that removes renditions, and one with nothing to remove.
    done["deleted"] = cloud.delete(f"{prefix}/photo.jpg")
    done["nothing"] = cloud.delete(f"{prefix}/page.jpg")
    return done


# -- what the functions printed ----------------------------------------------------------


@dataclass(frozen=True)
class Emitted:
    """One metric of one EMF blob."""

    function: str
    execution: str
    namespace: str
    name: str
    unit: str
    dimensions: tuple[tuple[str, str], ...]
    value: float

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.dimensions)


@dataclass(frozen=True)
class Line:
    function: str
    execution: str
    state: str
    record: dict[str, Any]


def _total(value: Any) -> float:
    return float(sum(value)) if isinstance(value, list) else float(value)


@pytest.fixture(scope="module")
def printed(
    cloud: LocalCloud, runs: dict[str, ExecutionRecord]
) -> tuple[list[Emitted], list[Line]]:
    """Every metric and every log record the functions printed for these executions."""
    arns = {run.arn for run in runs.values()}
    metrics: list[Emitted] = []
    lines: list[Line] = []
    for invocation in cloud.functions.invocations:
        event = invocation.event if isinstance(invocation.event, dict) else {}
        if event.get("execution") not in arns:
            continue
        for text in invocation.logs.splitlines():
            if not text.strip() or RUNTIME_LINE.match(text):
                continue
            record = json.loads(text)  # every line a function prints is JSON
            if "_aws" not in record:
                lines.append(Line(invocation.function, event["execution"], event["state"], record))
                continue
            for directive in record["_aws"]["CloudWatchMetrics"]:
                for dimension_set in directive["Dimensions"]:
                    dims = tuple(sorted((d, str(record[d])) for d in dimension_set))
                    for metric in directive["Metrics"]:
                        metrics.append(
                            Emitted(
                                invocation.function,
                                event["execution"],
                                directive["Namespace"],
                                metric["Name"],
                                metric.get("Unit", "None"),
                                dims,
                                _total(record[metric["Name"]]),
                            )
                        )
    return metrics, lines


@pytest.fixture(scope="module")
def emitted(printed: tuple[list[Emitted], list[Line]]) -> list[Emitted]:
    return printed[0]


# -- what the dashboard and the alarms read ----------------------------------------------


@dataclass(frozen=True)
class Reference:
    where: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]  # (name, value); no values from a SEARCH
    search: bool

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.dimensions)


_SEARCH = re.compile(r"SEARCH\(\s*'((?:[^'\\]|\\.)*)'")


def _searched(where: str, expression: str) -> Iterator[Reference]:
    for query in _SEARCH.findall(expression):
        schema = re.search(r"\{([^}]*)\}", query)
        metric = re.search(r'MetricName\s*=\s*"([^"]+)"', query)
        assert schema, (where, "a SEARCH without a {namespace,dimensions} schema")
        assert metric, (where, "a SEARCH without MetricName")
        tokens = [t.strip().strip('"') for t in schema.group(1).split(",")]
        dims = tuple((name, "") for name in sorted(tokens[1:]))
        yield Reference(where, tokens[0], metric.group(1), dims, search=True)


def dashboard_references(body: dict[str, Any]) -> list[Reference]:
    found: list[Reference] = []
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        where = f"dashboard widget {widget['properties'].get('title', '')!r}"
        for metric in widget["properties"]["metrics"]:
            if isinstance(metric[0], dict):
                found.extend(_searched(where, metric[0].get("expression", "")))
                continue
            names = [m for m in metric if isinstance(m, str)]
            pairs = tuple(sorted(zip(names[2::2], names[3::2], strict=True)))
            found.append(Reference(where, names[0], names[1], pairs, search=False))
    return found


def alarm_references(alarms: list[dict[str, Any]]) -> list[Reference]:
    found: list[Reference] = []
    for alarm in alarms:
        where = f"alarm {alarm['AlarmName']}"
        metrics = [q["MetricStat"]["Metric"] for q in alarm.get("Metrics", []) if "MetricStat" in q]
        if alarm.get("MetricName"):
            metrics.append(alarm)
        for metric in metrics:
            dims = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", [])))
            found.append(Reference(where, metric["Namespace"], metric["MetricName"], dims, False))
        for query in alarm.get("Metrics", []):
            found.extend(_searched(where, query.get("Expression", "")))
    return found


@pytest.fixture(scope="module")
def namespace(cloud: LocalCloud) -> str:
    return cloud.template.parameters["MetricsNamespace"]


@pytest.fixture(scope="module")
def referenced(cloud: LocalCloud, namespace: str) -> list[Reference]:
    """Custom-namespace metrics the deployed dashboard and the deployed alarms read."""
    cloudwatch = cloud.client("cloudwatch")
    dashboard = cloudwatch.get_dashboard(DashboardName=f"{cloud.stack_name}-imgpipe")
    references = dashboard_references(json.loads(dashboard["DashboardBody"]))
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=f"{cloud.stack_name}-")["MetricAlarms"]
    in_template = [
        r
        for r in cloud.template.data["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert len(alarms) == len(in_template) > 0
    references += alarm_references(alarms)
    custom = [r for r in references if not r.namespace.startswith("AWS/")]
    assert custom, "the dashboard shows none of the functions' metrics"
    return custom


# -- docs --------------------------------------------------------------------------------


def documented_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """docs/observability.md's metric table: `name` | unit | `dim`, `dim` | ..."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`\w+`", cells[0]):
            rows[cells[0].strip("`")] = (
                cells[1].strip("`"),
                frozenset(re.findall(r"`(\w+)`", cells[2])),
            )
    return rows


# -- tests -------------------------------------------------------------------------------


def test_the_uploads_took_the_paths_under_test(runs: dict[str, ExecutionRecord]) -> None:
    outcomes = {
        name: (
            run.status,
            (run.output or {}).get("status"),
            ((run.output or {}).get("reason") or {}).get("code"),
        )
        for name, run in runs.items()
    }
    assert outcomes == {
        "photo": ("SUCCEEDED", "processed", None),
        "png": ("SUCCEEDED", "processed", None),
        "html": ("SUCCEEDED", "rejected", "UnsupportedFormat"),
        "first": ("SUCCEEDED", "processed", None),
        "duplicate": ("SUCCEEDED", "skipped", "Duplicate"),
        "deleted": ("SUCCEEDED", "deleted", None),
        "nothing": ("SUCCEEDED", "skipped", "NothingToDelete"),
    }


def test_every_metric_goes_to_the_templates_namespace(
    emitted: list[Emitted], namespace: str
) -> None:
    assert emitted
    assert {m.namespace for m in emitted} == {namespace}


def test_every_metric_the_dashboard_and_alarms_read_is_emitted_as_they_read_it(
    emitted: list[Emitted], referenced: list[Reference], namespace: str
) -> None:
    shapes = {(m.namespace, m.name, m.names) for m in emitted}
    missing = sorted(
        {
            (r.where, r.metric, tuple(sorted(r.names)))
            for r in referenced
            if (r.namespace, r.metric, r.names) not in shapes
        }
    )
    # Then nothing on the dashboard or in an alarm waits for a metric nobody sends
    # (CloudWatch matches namespace, name and the exact dimension set)
    assert missing == []
    assert {r.namespace for r in referenced} == {namespace}


def test_dimension_values_spelled_out_on_the_dashboard_are_the_emitted_ones(
    emitted: list[Emitted], referenced: list[Reference]
) -> None:
    # Given the metrics the dashboard names with every dimension value (not via SEARCH)
    spelled: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for ref in referenced:
        if not ref.search:
            spelled.setdefault(ref.metric, set()).add(ref.dimensions)
    searched = {r.metric for r in referenced if r.search}
    # Then every emitted data point of those metrics lands on one of the dashboard's lines
    # (e.g. the format is spelled "WEBP", function_name is the function's real name)
    strays = sorted(
        {
            (m.name, m.dimensions)
            for m in emitted
            if m.name in spelled and m.name not in searched and m.dimensions not in spelled[m.name]
        }
    )
    assert strays == []


def test_every_emitted_metric_is_documented_with_its_unit_and_dimensions(
    emitted: list[Emitted],
) -> None:
    documented = documented_metrics()
    shapes = {(m.name, m.unit, m.names) for m in emitted}
    undocumented = sorted(
        (name, unit, tuple(sorted(names)))
        for name, unit, names in shapes
        if documented.get(name) != (unit, names)
    )
    assert undocumented == []


def by_execution(emitted: list[Emitted], run: ExecutionRecord) -> list[Emitted]:
    return [m for m in emitted if m.execution == run.arn and m.name != "ColdStart"]


def outcome(metrics: list[Emitted]) -> list[tuple[str, str, dict[str, str], float]]:
    names = {"ImagesProcessed", "ImagesRejected", "ImagesSkipped", "ImagesDeleted"}
    return [(m.function, m.name, dict(m.dimensions), m.value) for m in metrics if m.name in names]


def test_each_path_counts_its_outcome_once(
    emitted: list[Emitted], runs: dict[str, ExecutionRecord]
) -> None:
    service = {"service": "imgpipe"}
    for name in ("photo", "png", "first"):
        assert outcome(by_execution(emitted, runs[name])) == [
            ("StoreFunction", "ImagesProcessed", service, 1.0)
        ], name
    assert outcome(by_execution(emitted, runs["html"])) == [
        ("ValidateFunction", "ImagesRejected", {**service, "reason": "UnsupportedFormat"}, 1.0)
    ]
    assert outcome(by_execution(emitted, runs["duplicate"])) == [
        ("ValidateFunction", "ImagesSkipped", {**service, "reason": "Duplicate"}, 1.0)
    ]
    assert outcome(by_execution(emitted, runs["deleted"])) == [
        ("ForgetFunction", "ImagesDeleted", service, 1.0)
    ]
    assert outcome(by_execution(emitted, runs["nothing"])) == [
        ("ForgetFunction", "ImagesSkipped", {**service, "reason": "NothingToDelete"}, 1.0)
    ]


def test_resize_metrics_agree_with_what_was_rendered(
    emitted: list[Emitted], runs: dict[str, ExecutionRecord]
) -> None:
    for name in ("photo", "png", "first"):
        run = runs[name]
        assert run.output is not None
        metrics = [m for m in by_execution(emitted, run) if m.function == "ResizeFunction"]
        single = {m.name: m.value for m in metrics if m.names == {"service"}}
        # one decode, one data point per stage, none negative
        for stage in STAGES:
            assert [m.name for m in metrics].count(f"{stage}Duration") == 1, (name, stage)
            assert single[f"{stage}Duration"] >= 0, (name, stage)
        # bytes in and out are the source and the renditions the manifest lists
        renditions = run.output["renditions"]
        assert single["OutputBytes"] == sum(r["bytes"] for r in renditions), name
        assert single["SourceBytes"] == run.output["source"]["size"], name
        image = run.output["image"]
        assert single["SourceMegapixels"] == pytest.approx(
            image["width"] * image["height"] / 1e6, abs=0.05
        ), name
        # one data point per format, counting that format's renditions
        written = Counter[str]()
        for m in metrics:
            if m.name == "RenditionsWritten":
                written[dict(m.dimensions)["format"]] += int(m.value)
        assert written == Counter(r["format"] for r in renditions), name


def test_validate_reports_how_much_of_each_upload_it_read(
    emitted: list[Emitted], runs: dict[str, ExecutionRecord]
) -> None:
    for name in ("photo", "png", "first"):
        read = [
            m.value
            for m in by_execution(emitted, runs[name])
            if m.function == "ValidateFunction" and m.name == "HeaderBytesRead"
        ]
        assert len(read) == 1, name
        assert read[0] > 0, name


def test_a_cold_start_is_counted_with_the_functions_name(
    cloud: LocalCloud, emitted: list[Emitted]
) -> None:
    cold = [m for m in emitted if m.name == "ColdStart"]
    assert cold
    for metric in cold:
        assert dict(metric.dimensions) == {
            "function_name": cloud.names[metric.function],
            "service": "imgpipe",
        }


def test_every_log_line_carries_the_correlation_keys(
    cloud: LocalCloud,
    runs: dict[str, ExecutionRecord],
    printed: tuple[list[Emitted], list[Line]],
) -> None:
    _, lines = printed
    keys = {run.arn: run.key for run in runs.values()}
    assert {line.execution for line in lines} == set(keys)
    for line in lines:
        missing = [key for key in CORRELATION_KEYS if key not in line.record]
        assert not missing, (missing, line.record)
        assert line.record["execution"] == line.record["correlation_id"] == line.execution
        assert line.record["state"] == line.state
        assert line.record["source_bucket"] == cloud.input_bucket
        assert line.record["source_key"] == keys[line.execution]
