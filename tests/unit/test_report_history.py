"""The demo report's states strip and reasons, read through the ops history model.

Hand-written histories (no cloud) in the situations the integration run does not
produce: events out of order, an evaluation failure, long states, a skip. The report
must tell the same story `imgpipe trace` tells about them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from helpers import jpeg
from history_events import ARN, LAMBDA_CAUSE, History, lambda_params, retried_then_caught
from imgpipe.local.report import ReportEntry, write_report
from imgpipe.ops import history, render


@dataclass
class State:
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)
    spans: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class Page(HTMLParser):
    """The strip's `<li class="state">` items, the reason and the facts of one report."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.states: list[State] = []
        self.reason: list[str] = []
        self.facts: list[str] = []
        self._open: list[tuple[str, list[str] | None]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        classes = values.get("class", "").split()
        sink: list[str] | None = self._open[-1][1] if self._open else None
        if tag == "li" and "state" in classes:
            self.states.append(State(values))
            sink = self.states[-1].text
        elif tag == "div" and "reason" in classes:
            sink = self.reason
        elif tag == "dl" and "facts" in classes:
            sink = self.facts
        elif tag == "span" and self.states and sink is self.states[-1].text:
            self.states[-1].spans[classes[0] if classes else ""] = values
        if tag not in ("meta", "img"):
            self._open.append((tag, sink))

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1][1] is not None:
            self._open[-1][1].append(data)

    def state(self, name: str) -> State:
        (found,) = [s for s in self.states if s.attrs["data-state"] == name]
        return found


def report(
    tmp_path: Path,
    events: list[dict[str, Any]],
    status: str,
    output: dict[str, Any] | None = None,
    error: str | None = None,
    cause: str | None = None,
) -> Page:
    entry = ReportEntry(
        key="photos/cat.jpg",
        description="",
        source=jpeg(),
        execution_arn=ARN,
        execution_status=status,
        output=output,
        history=events,
        renditions={},
        error=error,
        cause=cause,
    )
    return Page(write_report(tmp_path / "report.html", [entry]).read_text("utf-8"))


def test_strip_follows_event_ids_not_list_order(tmp_path: Path) -> None:
    # Given Resize retried twice, caught, then PipelineFailed, with the events reversed
    events = list(reversed(retried_then_caught().events))
    # When the report is written
    page = report(tmp_path, events, "FAILED", error="TransientError", cause=LAMBDA_CAUSE)
    # Then the strip is the path in order, Resize blamed with its retries and wait
    assert [s.attrs["data-state"] for s in page.states] == ["Resize", "PipelineFailed"]
    resize = page.state("Resize")
    assert resize.attrs["data-retries"] == "2"
    assert resize.attrs["data-ms"] == "6600"
    assert {"outcome", "tone-failed"} <= resize.classes
    assert resize.spans["retries"]["title"] == "TransientError"
    assert "2 retries" in "".join(resize.text)
    assert "TransientError" in "".join(resize.text)
    assert "outcome" not in page.state("PipelineFailed").classes
    # And the reason is the Lambda message, with its whole stack trace one click away
    reason = "".join(page.reason)
    assert "TransientError" in reason
    assert "S3 PutObject failed transiently: SlowDown" in reason
    assert "errorMessage" not in reason
    assert "imgpipe/storage.py" in reason
    assert "raise _translate(error) from error" in reason


def test_evaluation_failure_marks_the_state_it_happened_in(tmp_path: Path) -> None:
    # Given a Pass state whose path did not evaluate: no task event, an EvaluationFailed
    events = (
        History()
        .add("ExecutionStarted", 0)
        .add("PassStateEntered", 0, name="ReadRejection")
        .add(
            "EvaluationFailed", 0.1, error="States.Runtime", cause="bad path", state="ReadRejection"
        )
        .add("ExecutionFailed", 0.1, error="States.Runtime", cause="bad path")
        .events
    )
    # When the report is written from an execution that kept no error of its own
    page = report(tmp_path, events, "FAILED")
    # Then that state is where it broke, with the error the history recorded
    state = page.state("ReadRejection")
    assert {"outcome", "tone-failed"} <= state.classes
    assert "States.Runtime" in "".join(state.text)
    assert "States.Runtime" in "".join(page.reason)
    assert "bad path" in "".join(page.reason)


def test_durations_are_spelled_as_the_cli_spells_them(tmp_path: Path) -> None:
    # Given a task that took 90 s in an execution that took 150 s
    events = (
        History()
        .add("ExecutionStarted", 0)
        .add("TaskStateEntered", 0, name="Resize")
        .add("TaskScheduled", 0, parameters=lambda_params("resize"))
        .add("TaskSucceeded", 90, output="{}")
        .add("TaskStateExited", 90, name="Resize", output="{}")
        .add("WaitStateEntered", 90, name="Settle")
        .add("WaitStateExited", 150, name="Settle", output="{}")
        .add("SucceedStateEntered", 150, name="Processed")
        .add("SucceedStateExited", 150, name="Processed", output="{}")
        .add("ExecutionSucceeded", 150, output="{}")
        .events
    )
    page = report(tmp_path, events, "SUCCEEDED", output={"status": "processed", "renditions": []})
    # Then both use the one formatter: seconds up to two minutes, then minutes
    assert "90.00 s" in "".join(page.state("Resize").text)
    assert "60.00 s" in "".join(page.state("Settle").text)
    assert "2 min 30 s" in "".join(page.facts)
    assert render.duration is history.duration


def test_one_duration_format() -> None:
    assert history.duration(0.4123) == "412 ms"
    assert history.duration(1.5) == "1.50 s"
    assert history.duration(119.994) == "119.99 s"
    assert history.duration(125) == "2 min 5 s"
    assert history.duration(None) == "\u2014"
    assert history.duration(None, "&ndash;") == "&ndash;"


def test_rejection_is_marked_on_the_state_that_caught_it(tmp_path: Path) -> None:
    events = (
        History()
        .add("ExecutionStarted", 0)
        .add("TaskStateEntered", 0, name="Validate")
        .add("TaskScheduled", 0.1, parameters=lambda_params("validate"))
        .add("TaskFailed", 0.2, error="UnsupportedFormat", cause='{"errorMessage":"not an image"}')
        .add("TaskStateExited", 0.2, name="Validate")
        .add("PassStateEntered", 0.2, name="ReadRejection")
        .add("PassStateExited", 0.3, name="ReadRejection")
        .add("SucceedStateEntered", 0.3, name="Rejected")
        .add("SucceedStateExited", 0.3, name="Rejected")
        .add("ExecutionSucceeded", 0.3, output="{}")
        .events
    )
    output = {"status": "rejected", "reason": {"code": "UnsupportedFormat", "message": "no"}}
    page = report(tmp_path, events, "SUCCEEDED", output=output)
    outcome = [s.attrs["data-state"] for s in page.states if "outcome" in s.classes]
    assert outcome == ["Validate"]
    assert {"tone-rejected"} <= page.state("Validate").classes
    assert "UnsupportedFormat" in "".join(page.reason)


def test_skip_is_marked_on_the_last_task(tmp_path: Path) -> None:
    events = (
        History()
        .add("ExecutionStarted", 0)
        .add("TaskStateEntered", 0, name="Validate")
        .add("TaskScheduled", 0.1, parameters=lambda_params("validate"))
        .add("TaskSucceeded", 0.2, output=json.dumps({"status": "skipped"}))
        .add("TaskStateExited", 0.2, name="Validate")
        .add("SucceedStateEntered", 0.2, name="Skipped")
        .add("SucceedStateExited", 0.2, name="Skipped")
        .add("ExecutionSucceeded", 0.2, output="{}")
        .events
    )
    output = {"status": "skipped", "reason": {"code": "ObjectGone", "message": "gone"}}
    page = report(tmp_path, events, "SUCCEEDED", output=output)
    outcome = [s.attrs["data-state"] for s in page.states if "outcome" in s.classes]
    assert outcome == ["Validate"]
    assert {"tone-skipped"} <= page.state("Validate").classes
