"""The CloudWatch dashboard in template.yaml: a body CloudWatch would accept, laid out on
its 24-column grid, showing only metrics somebody emits.

The body is a `!Sub` string. It is resolved here as CloudFormation would resolve it, with
the parameter defaults (and with unusual values) and AWS-shaped physical names, then:

* parsed as JSON and checked against the documented dashboard body structure (a JSON
  Schema for the widget objects plus the rules a schema cannot say: metric array shapes,
  expression ids, grid bounds, overlaps);
* every metric in the functions' namespace that a widget or an alarm reads, including
  through a SEARCH expression, is matched against the metric contract below, which is
  what the functions emit and what docs/observability.md documents (checked too).

Nothing here calls AWS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
DOC = ROOT / "docs" / "observability.md"

FUNCTIONS = ("ValidateFunction", "ResizeFunction", "StoreFunction", "ForgetFunction")
SERVICE_DIMENSION = "service"

# The metrics the functions emit (Powertools EMF; Powertools adds `service` to each):
# name -> (unit, dimension names). docs/observability.md carries the same table.
CONTRACT: dict[str, tuple[str, frozenset[str]]] = {
    "ImagesProcessed": ("Count", frozenset({"service"})),
    "ImagesRejected": ("Count", frozenset({"service", "reason"})),
    "ImagesSkipped": ("Count", frozenset({"service", "reason"})),
    "ImagesDeleted": ("Count", frozenset({"service"})),
    "RenditionsWritten": ("Count", frozenset({"service", "format"})),
    "SourceBytes": ("Bytes", frozenset({"service"})),
    "OutputBytes": ("Bytes", frozenset({"service"})),
    "SourceMegapixels": ("None", frozenset({"service"})),
    "HeaderBytesRead": ("Bytes", frozenset({"service"})),
    "DownloadDuration": ("Milliseconds", frozenset({"service"})),
    "DecodeDuration": ("Milliseconds", frozenset({"service"})),
    "ResizeDuration": ("Milliseconds", frozenset({"service"})),
    "EncodeDuration": ("Milliseconds", frozenset({"service"})),
    "UploadDuration": ("Milliseconds", frozenset({"service"})),
    "ColdStart": ("Count", frozenset({"service", "function_name"})),
}
STAGES = ("Download", "Decode", "Resize", "Encode", "Upload")
# What manifests call the formats (docs/contracts.md); the metric uses the same spelling.
FORMATS = {"WEBP", "JPEG", "AVIF", "PNG"}

# Physical names as CloudFormation would make them (for a stack "imgpipe-prod").
REGION = "eu-west-1"
ACCOUNT = "111122223333"
STACK = "imgpipe-prod"
MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:ImagePipeline-Ab12Cd34Ef56"
QUEUE_NAME = f"{STACK}-TriggerDeadLetterQueue-GhIjKl789012"


def function_name(logical: str) -> str:
    return f"{STACK}-{logical}-Q1w2E3r4T5y6"


# ---------------------------------------------------------------- the template, resolved


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    template, matches = decode(str(TEMPLATE))
    assert not matches, [m.message for m in matches]
    assert template is not None
    return json.loads(json.dumps(template))


def parameter_defaults(sam: dict[str, Any]) -> dict[str, str]:
    return {k: str(v["Default"]) for k, v in sam["Parameters"].items()}


_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class Names:
    """What `${Name}` and `${Logical.Attribute}` resolve to in a deployed stack."""

    def __init__(self, sam: dict[str, Any], parameters: dict[str, str]) -> None:
        self.sam = sam
        self.parameters = parameters

    def sub(self, text: str) -> str:
        return _VARIABLE.sub(lambda m: self.value(m.group(1)), text)

    def value(self, name: str) -> str:
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::StackName": STACK}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        logical, _, attribute = name.partition(".")
        resource = self.sam["Resources"].get(logical)
        if resource is None:
            raise KeyError(f"${{{name}}}: no such parameter or resource")
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::Serverless::Function" and not attribute:
            return function_name(logical)
        if kind == "AWS::Serverless::StateMachine" and not attribute:
            return MACHINE_ARN
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return QUEUE_NAME
        if kind == "AWS::Logs::LogGroup" and not attribute:
            return self.sub(props["LogGroupName"]["Fn::Sub"])
        if kind == "AWS::CloudWatch::Alarm" and attribute == "Arn":
            alarm = self.sub(props["AlarmName"]["Fn::Sub"])
            return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm}"
        raise KeyError(f"${{{name}}}: this test does not know what {kind} resolves to")


def dashboard_body(sam: dict[str, Any], **overrides: str) -> dict[str, Any]:
    """The DashboardBody CloudFormation would send to PutDashboard, parsed."""
    names = Names(sam, {**parameter_defaults(sam), **overrides})
    source = sam["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(source, str), "the body is one !Sub string"
    text = names.sub(source)
    assert "${" not in text
    body: dict[str, Any] = json.loads(text)
    return body


@pytest.fixture(scope="module")
def body(sam: dict[str, Any]) -> dict[str, Any]:
    return dashboard_body(sam)


# ---------------------------------------------------------------- body structure

# Values the dashboard body reference documents.
STAT = (
    r"^(SampleCount|Average|Sum|Minimum|Maximum|IQM"
    r"|p(100|\d{1,2}(\.\d{1,2})?)|(tm|wm|tc|ts)\d{1,2}(\.\d{1,2})?)$"
)
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d$"
RENDERING = {"accountId", "color", "id", "label", "period", "region", "stat", "visible", "yAxis"}
EXPRESSION_KEYS = {"expression", "id", "label", "visible", "yAxis", "color", "period", "region"}
ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")

_AXIS = {
    "type": "object",
    "properties": {
        "min": {"type": "number"},
        "max": {"type": "number"},
        "label": {"type": "string"},
        "showUnits": {"type": "boolean"},
    },
    "additionalProperties": False,
}
_ANNOTATION = {
    "type": "object",
    "required": ["value"],
    "properties": {
        "value": {"type": "number"},
        "label": {"type": "string"},
        "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
        "fill": {"enum": ["above", "below"]},
        "visible": {"type": "boolean"},
        "yAxis": {"enum": ["left", "right"]},
    },
    "additionalProperties": False,
}
_METRIC_PROPERTIES = {
    "type": "object",
    "required": ["metrics", "region"],
    "properties": {
        "metrics": {
            "type": "array",
            "minItems": 1,
            "maxItems": 500,
            "items": {"type": "array", "minItems": 1},
        },
        "region": {"type": "string", "pattern": REGION_PATTERN},
        "title": {"type": "string", "minLength": 1},
        "view": {"enum": ["timeSeries", "singleValue", "gauge", "bar", "pie", "table"]},
        "stacked": {"type": "boolean"},
        "stat": {"type": "string", "pattern": STAT},
        "period": {"type": "integer"},
        "liveData": {"type": "boolean"},
        "sparkline": {"type": "boolean"},
        "setPeriodToTimeRange": {"type": "boolean"},
        "legend": {
            "type": "object",
            "properties": {"position": {"enum": ["bottom", "right", "hidden"]}},
            "additionalProperties": False,
        },
        "annotations": {
            "type": "object",
            "properties": {
                "horizontal": {"type": "array", "items": _ANNOTATION},
                "vertical": {"type": "array"},
            },
            "additionalProperties": False,
        },
        "yAxis": {
            "type": "object",
            "properties": {"left": _AXIS, "right": _AXIS},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
_PROPERTIES_BY_TYPE = {
    "metric": _METRIC_PROPERTIES,
    "text": {
        "type": "object",
        "required": ["markdown"],
        "properties": {
            "markdown": {"type": "string", "minLength": 1},
            "background": {"enum": ["solid", "transparent"]},
        },
        "additionalProperties": False,
    },
    "log": {
        "type": "object",
        "required": ["query", "region"],
        "properties": {
            "query": {"type": "string", "pattern": "^SOURCE '"},
            "region": {"type": "string", "pattern": REGION_PATTERN},
            "title": {"type": "string", "minLength": 1},
            "view": {"enum": ["table", "timeSeries", "bar", "pie"]},
            "stacked": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
    "alarm": {
        "type": "object",
        "required": ["alarms"],
        "properties": {
            "alarms": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "uniqueItems": True,
                "items": {"type": "string", "pattern": r"^arn:aws[a-z-]*:cloudwatch:"},
            },
            "title": {"type": "string", "minLength": 1},
            "sortBy": {"enum": ["default", "stateUpdatedTimestamp", "timestamp"]},
            "states": {"type": "array", "items": {"enum": ["ALARM", "INSUFFICIENT_DATA", "OK"]}},
        },
        "additionalProperties": False,
    },
}
BODY_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["widgets"],
    "properties": {
        "start": {"type": "string", "pattern": r"^-P"},
        "periodOverride": {"enum": ["auto", "inherit"]},
        "widgets": {
            "type": "array",
            "maxItems": 500,
            "items": {
                "type": "object",
                "required": ["type", "x", "y", "width", "height", "properties"],
                "properties": {
                    "type": {"enum": sorted(_PROPERTIES_BY_TYPE)},
                    "x": {"type": "integer", "minimum": 0, "maximum": 23},
                    "y": {"type": "integer", "minimum": 0},
                    "width": {"type": "integer", "minimum": 1, "maximum": 24},
                    "height": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "properties": {"type": "object"},
                },
                "additionalProperties": False,
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": kind}}},
                        "then": {"properties": {"properties": schema}},
                    }
                    for kind, schema in _PROPERTIES_BY_TYPE.items()
                ],
            },
        },
    },
    "additionalProperties": False,
}
Draft202012Validator.check_schema(BODY_SCHEMA)

# Metric math functions the body may call (CloudWatch's list, the ones worth using here).
MATH_FUNCTIONS = {
    "ABS", "AVG", "CEIL", "DIFF", "DIFF_TIME", "FILL", "FIRST", "FLOOR", "IF", "LAST",
    "MAX", "METRICS", "MIN", "PERIOD", "RATE", "REMOVE_EMPTY", "RUNNING_SUM", "SEARCH",
    "SLICE", "SORT", "STDDEV", "SUM", "TIME_SERIES",
}  # fmt: skip


def valid_period(value: Any) -> bool:
    return isinstance(value, int) and (value in (1, 5, 10, 30) or (value > 0 and value % 60 == 0))


def widget_problems(index: int, widget: dict[str, Any]) -> list[str]:
    """What the JSON Schema cannot say about one widget."""
    where = f"widget {index} ({widget.get('properties', {}).get('title', widget['type'])})"
    problems = []
    if widget["x"] + widget["width"] > 24:
        problems.append(f"{where}: x + width = {widget['x'] + widget['width']} > 24")
    if widget["type"] != "metric":
        return problems
    props = widget["properties"]
    if "period" in props and not valid_period(props["period"]):
        problems.append(f"{where}: period {props['period']}")
    ids: list[str] = []
    expressions: list[str] = []
    for metric in props["metrics"]:
        options: dict[str, Any] = {}
        if len(metric) == 1 and isinstance(metric[0], dict):
            options = metric[0]
            if not isinstance(options.get("expression"), str) or "id" not in options:
                problems.append(f"{where}: an expression needs `expression` and `id`: {metric}")
            if set(options) - EXPRESSION_KEYS:
                problems.append(
                    f"{where}: unknown expression keys {set(options) - EXPRESSION_KEYS}"
                )
            expressions.append(str(options.get("expression", "")))
        else:
            names = metric[:-1] if isinstance(metric[-1], dict) else metric
            options = metric[-1] if isinstance(metric[-1], dict) else {}
            if not all(isinstance(n, str) and n for n in names):
                problems.append(
                    f"{where}: [namespace, name, dim, value, ..., {{options}}]: {metric}"
                )
            elif len(names) < 2 or len(names) % 2:
                problems.append(f"{where}: dimension names and values must pair up: {metric}")
            elif "." in names:
                problems.append(f"{where}: spell metrics out instead of '.': {metric}")
            if set(options) - RENDERING:
                problems.append(f"{where}: unknown rendering keys {set(options) - RENDERING}")
        if "stat" in options and not re.match(STAT, str(options["stat"])):
            problems.append(f"{where}: stat {options['stat']!r}")
        if "period" in options and not valid_period(options["period"]):
            problems.append(f"{where}: period {options['period']!r}")
        if options.get("yAxis", "left") not in ("left", "right"):
            problems.append(f"{where}: yAxis {options['yAxis']!r}")
        if "id" in options:
            if not ID.match(str(options["id"])):
                problems.append(f"{where}: id {options['id']!r} must start with a lowercase letter")
            ids.append(str(options["id"]))
    if len(ids) != len(set(ids)):
        problems.append(f"{where}: ids repeat: {sorted(ids)}")
    for expression in expressions:
        unquoted = re.sub(r"'(?:[^'\\]|\\.)*'", "''", expression)
        for function in re.findall(r"\b([A-Z_]+)\s*\(", unquoted):
            if function not in MATH_FUNCTIONS:
                problems.append(f"{where}: unknown metric math function {function}")
        for name in re.findall(r"\b([a-z][a-zA-Z0-9_]*)\b", unquoted):
            if name not in ids:
                problems.append(f"{where}: {expression!r} uses {name!r}, not an id here")
        for search in searches(expression):
            if not re.match(STAT, search.stat) or not valid_period(search.period):
                problems.append(f"{where}: SEARCH stat/period {search.stat}, {search.period}")
    return problems


def overlaps(widgets: list[dict[str, Any]]) -> list[tuple[int, int]]:
    found = []
    for i, a in enumerate(widgets):
        for j, b in enumerate(widgets[i + 1 :], i + 1):
            if (
                a["x"] < b["x"] + b["width"]
                and b["x"] < a["x"] + a["width"]
                and a["y"] < b["y"] + b["height"]
                and b["y"] < a["y"] + a["height"]
            ):
                found.append((i, j))
    return found


# ---------------------------------------------------------------- metric references


@dataclass(frozen=True)
class Search:
    namespace: str | None
    dimensions: frozenset[str] | None
    metric: str | None
    stat: str
    period: int


_SEARCH = re.compile(r"SEARCH\(\s*'((?:[^'\\]|\\.)*)'\s*,\s*'([^']*)'\s*,\s*(\d+)\s*\)")


def searches(expression: str) -> Iterator[Search]:
    """The SEARCH calls in an expression: `{Namespace,Dim,...} MetricName="X"`."""
    for query, stat, period in _SEARCH.findall(expression):
        schema = re.search(r"\{([^}]*)\}", query)
        namespace, dimensions = None, None
        if schema:
            tokens = [t.strip().strip('"') for t in schema.group(1).split(",")]
            namespace, dimensions = tokens[0], frozenset(tokens[1:])
        metric = re.search(r'MetricName\s*=\s*"([^"]+)"', query)
        yield Search(namespace, dimensions, metric.group(1) if metric else None, stat, int(period))


@dataclass(frozen=True)
class Reference:
    where: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]  # (name, value); values empty for SEARCH

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.dimensions)


def dashboard_references(body: dict[str, Any]) -> list[Reference]:
    found = []
    for index, widget in enumerate(body["widgets"]):
        if widget["type"] != "metric":
            continue
        where = f"widget {index} {widget['properties'].get('title', '')!r}"
        for metric in widget["properties"]["metrics"]:
            if isinstance(metric[0], dict):
                for search in searches(metric[0]["expression"]):
                    assert search.namespace, (where, "a SEARCH without a {schema}")
                    assert search.metric, (where, "a SEARCH without MetricName")
                    assert search.dimensions is not None
                    dims = tuple((name, "") for name in sorted(search.dimensions))
                    found.append(Reference(where, search.namespace, search.metric, dims))
                continue
            names = [m for m in metric if isinstance(m, str)]
            pairs = tuple(zip(names[2::2], names[3::2], strict=True))
            found.append(Reference(where, names[0], names[1], pairs))
    return found


def alarm_references(sam: dict[str, Any], namespace: str) -> list[Reference]:
    def text(value: Any) -> str:
        if value == {"Ref": "MetricsNamespace"}:
            return namespace
        return value if isinstance(value, str) else json.dumps(value)

    found = []
    for logical, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        metrics = [q["MetricStat"]["Metric"] for q in props.get("Metrics", []) if "MetricStat" in q]
        if "MetricName" in props:
            metrics.append(props)
        for metric in metrics:
            dims = tuple((d["Name"], text(d["Value"])) for d in metric.get("Dimensions", []))
            found.append(Reference(logical, text(metric["Namespace"]), metric["MetricName"], dims))
        for query in props.get("Metrics", []):
            expression = query.get("Expression", "")
            expression = expression if isinstance(expression, str) else json.dumps(expression)
            # CloudWatch cannot alarm on SEARCH; a custom metric must be named explicitly
            assert "SEARCH" not in expression, logical
    return found


def custom(references: list[Reference]) -> list[Reference]:
    """The references outside AWS's own namespaces (the functions' metrics)."""
    assert all(r.namespace for r in references)
    return [r for r in references if not r.namespace.startswith("AWS/")]


# ---------------------------------------------------------------- docs table


def documented_metrics(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """The metric table of docs/observability.md: `name` | unit | `dim`, `dim` | ..."""
    section = text.split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.fullmatch(r"`\w+`", cells[0]):
            continue
        name = cells[0].strip("`")
        assert name not in rows, f"{name} documented twice"
        dims = frozenset(re.findall(r"`(\w+)`", cells[2]))
        rows[name] = (cells[1].strip("`"), dims)
    return rows


# ---------------------------------------------------------------- tests: structure


def test_body_is_json_cloudwatch_accepts_at_schema_level(body: dict[str, Any]) -> None:
    errors = sorted(Draft202012Validator(BODY_SCHEMA).iter_errors(body), key=str)
    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []
    problems = [p for i, w in enumerate(body["widgets"]) for p in widget_problems(i, w)]
    assert problems == []


@pytest.mark.parametrize(
    "overrides",
    [
        # every character the namespace parameter allows, and other timeouts
        {"MetricsNamespace": "Team/Img-pipe#1:v2.x_y", "ResizeTimeout": "900"},
        {"MetricsNamespace": "a", "ValidateTimeout": "1", "StoreTimeout": "3"},
    ],
)
def test_body_stays_valid_for_any_allowed_parameter_value(
    sam: dict[str, Any], overrides: dict[str, str]
) -> None:
    for name, value in overrides.items():
        param = sam["Parameters"][name]
        if "AllowedPattern" in param:
            assert re.fullmatch(param["AllowedPattern"], value), name
    body = dashboard_body(sam, **overrides)
    assert not list(Draft202012Validator(BODY_SCHEMA).iter_errors(body))
    assert [p for i, w in enumerate(body["widgets"]) for p in widget_problems(i, w)] == []
    # the namespace reaches every custom metric, SEARCH schemas included
    namespaces = {r.namespace for r in dashboard_references(body)}
    assert namespaces == {"AWS/States", "AWS/Lambda", "AWS/SQS", overrides["MetricsNamespace"]}


def test_widgets_tile_the_grid_without_overlapping(body: dict[str, Any]) -> None:
    widgets = body["widgets"]
    assert overlaps(widgets) == []
    # no holes in the rows either: each row band is filled edge to edge
    rows: dict[int, int] = {}
    for widget in widgets:
        rows[widget["y"]] = rows.get(widget["y"], 0) + widget["width"]
    assert set(rows.values()) == {24}, rows


def test_the_validator_catches_what_cloudwatch_would_refuse() -> None:
    # Given widgets with mistakes PutDashboard reports, Then the checks above report them
    ok = {
        "type": "metric",
        "x": 0,
        "y": 0,
        "width": 12,
        "height": 6,
        "properties": {
            "region": REGION,
            "metrics": [["Ns", "M", "service", "imgpipe", {"id": "m1"}]],
        },
    }
    assert widget_problems(0, ok) == []
    assert not list(Draft202012Validator(BODY_SCHEMA).iter_errors({"widgets": [ok]}))

    def broken(**change: Any) -> dict[str, Any]:
        widget = json.loads(json.dumps(ok))
        widget["properties"].update(change.pop("properties", {}))
        widget.update(change)
        return widget

    schema_errors = [
        broken(x=24),
        broken(width=25),
        broken(properties={"view": "lines"}),
        broken(properties={"stat": "p999"}),
        broken(properties={"stat": "Avg"}),
        broken(properties={"colour": "red"}),
        broken(type="graph"),
    ]
    no_region = broken()
    del no_region["properties"]["region"]
    schema_errors.append(no_region)
    for widget in schema_errors:
        assert list(Draft202012Validator(BODY_SCHEMA).iter_errors({"widgets": [widget]})), widget
    rule_errors = [
        broken(x=20, width=6),
        broken(properties={"period": 90}),
        broken(properties={"metrics": [["Ns", "M", "service"]]}),
        broken(properties={"metrics": [["Ns", "M", "service", "imgpipe", {"id": "M1"}]]}),
        broken(properties={"metrics": [["Ns", "M", {"id": "a"}], ["Ns", "N", {"id": "a"}]]}),
        broken(properties={"metrics": [[{"expression": "m1 - m2", "id": "e1"}]]}),
        broken(properties={"metrics": [[{"expression": "SUMM(m1)", "id": "e1"}], ["N", "M"]]}),
        broken(properties={"metrics": [[{"expression": "m1"}]]}),
        broken(properties={"metrics": [["Ns", "M", {"stat": "median"}]]}),
        broken(properties={"metrics": [["Ns", "M", {"yAxis": "top"}]]}),
    ]
    for widget in rule_errors:
        assert widget_problems(0, widget), widget


# ---------------------------------------------------------------- tests: what it shows


def test_every_custom_metric_on_the_dashboard_and_in_the_alarms_is_emitted_as_referenced(
    sam: dict[str, Any], body: dict[str, Any]
) -> None:
    namespace = parameter_defaults(sam)["MetricsNamespace"]
    references = custom(dashboard_references(body)) + custom(alarm_references(sam, namespace))
    assert references
    for ref in references:
        # Then each reads the functions' namespace, a metric they emit, with exactly the
        # dimension names they emit it with (CloudWatch matches on the full set)
        assert ref.namespace == namespace, ref
        assert ref.metric in CONTRACT, (ref.where, ref.metric, "nobody emits it")
        assert ref.names == CONTRACT[ref.metric][1], (ref.where, ref.metric, sorted(ref.names))


def test_every_emitted_metric_has_a_place_on_the_dashboard(
    sam: dict[str, Any], body: dict[str, Any]
) -> None:
    shown = {r.metric for r in custom(dashboard_references(body))}
    assert shown == set(CONTRACT)


def test_explicit_dimension_values_are_the_ones_the_functions_use(
    sam: dict[str, Any], body: dict[str, Any]
) -> None:
    service = sam["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    values: dict[tuple[str, str], set[str]] = {}
    for ref in custom(dashboard_references(body)):
        for name, value in ref.dimensions:
            if value:
                values.setdefault((ref.metric, name), set()).add(value)
    # Powertools' service is the functions' POWERTOOLS_SERVICE_NAME
    assert {v for (_, name), vs in values.items() if name == "service" for v in vs} == {service}
    # cold starts by the functions' physical names, renditions by manifest format names
    assert values[("ColdStart", "function_name")] == {function_name(f) for f in FUNCTIONS}
    assert values[("RenditionsWritten", "format")] == FORMATS


def test_outcomes_rejections_and_skips_are_shown_by_reason(body: dict[str, Any]) -> None:
    expressions = [
        m[0]["expression"]
        for w in body["widgets"]
        if w["type"] == "metric"
        for m in w["properties"]["metrics"]
        if isinstance(m[0], dict)
    ]
    found = {(s.metric, s.dimensions) for e in expressions for s in searches(e)}
    by_reason = frozenset({"reason", "service"})
    assert found == {("ImagesRejected", by_reason), ("ImagesSkipped", by_reason)}
    # totals for the outcome graph, and one line per reason on their own graphs
    assert sum(e.startswith("SUM(SEARCH(") for e in expressions) == 2
    assert sum(e.startswith("SEARCH(") for e in expressions) == 2


def metric_widgets(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [w["properties"] for w in body["widgets"] if w["type"] == "metric"]


def test_stage_durations_are_shown_at_p50_p95_and_p99(body: dict[str, Any]) -> None:
    stats: dict[str, set[str]] = {f"{stage}Duration": set() for stage in STAGES}
    for props in metric_widgets(body):
        for metric in props["metrics"]:
            if isinstance(metric[0], dict) or metric[1] not in stats:
                continue
            options = metric[-1] if isinstance(metric[-1], dict) else {}
            stats[metric[1]].add(options.get("stat", props.get("stat", "Average")))
    assert stats == {name: {"p50", "p95", "p99"} for name in stats}


def aws_metrics(body: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {
        (r.namespace, r.metric, *r.dimensions[0])
        for r in dashboard_references(body)
        if r.namespace.startswith("AWS/")
    }


def test_aws_service_metrics_are_per_state_machine_function_and_queue(
    body: dict[str, Any],
) -> None:
    found = aws_metrics(body)
    states = {
        ("AWS/States", f"Executions{what}", "StateMachineArn", MACHINE_ARN)
        for what in ("Started", "Succeeded", "Failed", "TimedOut")
    }
    functions = {
        ("AWS/Lambda", metric, "FunctionName", function_name(f))
        for metric in ("Errors", "Throttles", "Duration", "ConcurrentExecutions")
        for f in FUNCTIONS
    }
    queue = {
        ("AWS/SQS", metric, "QueueName", QUEUE_NAME)
        for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage")
    }
    assert found == states | functions | queue
    assert all(
        len(r.dimensions) == 1 for r in dashboard_references(body) if r.namespace.startswith("AWS/")
    )


def test_duration_is_shown_as_a_share_of_each_functions_timeout(
    sam: dict[str, Any], body: dict[str, Any]
) -> None:
    (props,) = [p for p in metric_widgets(body) if "timeout" in p.get("title", "")]
    assert props["stat"] == "p99"
    ids = {
        m[-1]["id"]: m[3]
        for m in props["metrics"]
        if not isinstance(m[0], dict) and m[1] == "Duration"
    }
    timeouts = {
        "ValidateFunction": "ValidateTimeout",
        "ResizeFunction": "ResizeTimeout",
        "StoreFunction": "StoreTimeout",
        "ForgetFunction": "StoreTimeout",
    }
    defaults = parameter_defaults(sam)
    expressions = {m[0]["expression"] for m in props["metrics"] if isinstance(m[0], dict)}
    expected = {
        f"100 * {metric_id} / ({defaults[timeouts[f]]} * 1000)"
        for metric_id, name in ids.items()
        for f in FUNCTIONS
        if function_name(f) == name
    }
    assert len(expected) == 4
    assert expressions == expected
    # the alarm threshold (80 % of the timeout) is drawn on the graph
    assert {a["value"] for a in props["annotations"]["horizontal"]} == {80, 100}


def test_bytes_saved_is_source_minus_output(body: dict[str, Any]) -> None:
    (props,) = [
        p
        for p in metric_widgets(body)
        if any(not isinstance(m[0], dict) and m[1] == "SourceBytes" for m in p["metrics"])
    ]
    ids = {m[1]: m[-1]["id"] for m in props["metrics"] if not isinstance(m[0], dict)}
    expressions = {
        m[0]["label"]: m[0]["expression"] for m in props["metrics"] if isinstance(m[0], dict)
    }
    assert expressions["bytes saved"] == f"{ids['SourceBytes']} - {ids['OutputBytes']}"
    assert props["stat"] == "Sum"


def test_alarm_widget_lists_every_alarm_and_log_widgets_read_the_stacks_log_groups(
    sam: dict[str, Any], body: dict[str, Any]
) -> None:
    names = Names(sam, parameter_defaults(sam))
    alarms = [k for k, v in sam["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"]
    (widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert set(widget["properties"]["alarms"]) == {names.value(f"{a}.Arn") for a in alarms}
    groups = {
        names.value(k) for k, v in sam["Resources"].items() if v["Type"] == "AWS::Logs::LogGroup"
    }
    sources = {
        source
        for w in body["widgets"]
        if w["type"] == "log"
        for source in re.findall(r"SOURCE '([^']+)'", w["properties"]["query"])
    }
    assert sources == groups


def test_dashboard_is_named_for_the_stack(sam: dict[str, Any]) -> None:
    props = sam["Resources"]["Dashboard"]["Properties"]
    assert props["DashboardName"] == {"Fn::Sub": "${AWS::StackName}-imgpipe"}
    assert set(props) == {"DashboardName", "DashboardBody"}


# ---------------------------------------------------------------- tests: the docs


def test_docs_document_exactly_the_metric_contract() -> None:
    assert documented_metrics(DOC.read_text(encoding="utf-8")) == CONTRACT


def test_the_docs_table_parser_reads_names_units_and_dimensions() -> None:
    text = (
        "# x\n\n## Metrics\n\n"
        "| metric | unit | dimensions | emitted by | when |\n|---|---|---|---|---|\n"
        "| `A` | Count | `service`, `reason` | validate | always |\n"
        "| `B` | `Bytes` | `service` | resize | rendered |\n\n## Logs\n\n| `C` | Count | `x` |\n"
    )
    assert documented_metrics(text) == {
        "A": ("Count", frozenset({"service", "reason"})),
        "B": ("Bytes", frozenset({"service"})),
    }
