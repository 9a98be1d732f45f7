"""The local demo's HTML report, written from real executions of the deployed ASL.

Uploads go through `LocalCloud` (template.yaml on moto, the real state machine); the
report is then parsed back with the standard library's `html.parser` and checked for
what a reader relies on: every upload with its status, renditions that are really the
bucket's bytes, previews of originals a browser could not show, the path through the
states with timings, totals, and nothing that escapes the page or reaches the network.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from helpers import s3_slows_down
from imgpipe.local.cloud import LocalCloud
from imgpipe.local.report import (
    EMBED_LIMIT_BYTES,
    ORIGINAL_PREVIEW_EDGE,
    RENDITION_PREVIEW_EDGE,
    ReportEntry,
    write_report,
)

pytestmark = pytest.mark.xdist_group("report")

SIDEWAYS = "camera/sideways.jpg"
BADGE = "logos/badge.png"
CMYK = "print/poster-cmyk.jpg"
NOT_A_PHOTO = "camera/not-a-photo.jpg"
NASTY = 'odd/<script>alert("boo")</script> it\'s \u00e9t\u00e9 & <b>.png'
HTML_BODY = b"<!DOCTYPE html><html><body>not a photo</body></html>"
METRICS: dict[str, float | tuple[float, str]] = {
    "SourceBytes": (1234567, "Bytes"),
    "ImagesProcessed": (4, "Count"),
    "ColdStart": 3,
    "AverageResizeMs": 12.25,
}

# -------------------------------------------------------------------------- parsing


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        """Descendants matching a tag, a class and `data_*` attributes, in document order."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        found: list[Node] = []
        for child in self.children:
            if isinstance(child, str):
                continue
            if (
                (tag is None or child.tag == tag)
                and (cls is None or cls in child.classes)
                and all(child.attrs.get(k) == v for k, v in wanted.items())
            ):
                found.append(child)
            found.extend(child.all(tag, cls, **attrs))
        return found

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, (tag, cls, attrs, len(found))
        return found[0]


class TreeBuilder(HTMLParser):
    """A strict little DOM: an end tag that does not close the open element fails."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input", "source"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(text: str) -> Node:
    builder = TreeBuilder()
    builder.feed(text)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


def embedded(img: Node) -> bytes:
    match = re.fullmatch(r"data:image/[a-z0-9.+-]+;base64,([A-Za-z0-9+/=]+)", img.attrs["src"])
    assert match, img.attrs["src"][:60]
    return base64.b64decode(match.group(1), validate=True)


def rgb(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def decoded(img: Node) -> Image.Image:
    image = Image.open(io.BytesIO(embedded(img)))
    image.load()
    return image


# ------------------------------------------------------------------------- the run


def noisy_sideways_photo() -> bytes:
    """A 2400x1600 photo, red top-left quarter, stored sideways with EXIF orientation 6.

    Noise keeps it from compressing to nothing, so its large renditions pass the
    report's embedding limit and have to be shown as previews.
    """
    width, height = 2400, 1600
    base = Image.linear_gradient("L").resize((width, height))
    channels = [Image.blend(base, Image.effect_noise((width, height), 40), 0.5) for _ in "RGB"]
    upright = Image.merge("RGB", channels)
    ImageDraw.Draw(upright).rectangle((0, 0, width // 2 - 1, height // 2 - 1), fill=(230, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def transparent_png(size: tuple[int, int] = (600, 400)) -> bytes:
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    inset = min(size) // 8
    box = (inset, inset, size[0] - inset, size[1] - inset)
    ImageDraw.Draw(image).ellipse(box, fill=(20, 110, 220, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def cmyk_jpeg() -> bytes:
    image = Image.new("RGB", (800, 600), (40, 90, 230))
    ImageDraw.Draw(image).rectangle((0, 0, 399, 299), fill=(230, 20, 20))
    out = io.BytesIO()
    image.convert("CMYK").save(out, "JPEG", quality=90)
    return out.getvalue()


UPLOADS: list[tuple[str, str, Callable[[], bytes]]] = [
    (SIDEWAYS, "2400x1600 photo stored sideways, EXIF orientation 6", noisy_sideways_photo),
    (BADGE, "PNG with transparency", transparent_png),
    (CMYK, "CMYK JPEG", cmyk_jpeg),
    (NOT_A_PHOTO, "HTML named .jpg", lambda: HTML_BODY),
    (NASTY, "", lambda: transparent_png((64, 48))),
]


def entry_for(cloud: LocalCloud, key: str, description: str, data: bytes) -> ReportEntry:
    record = cloud.upload(key, data)
    listed = (record.output or {}).get("renditions") or []
    renditions = {
        r["key"]: cloud.s3.get_object(Bucket=cloud.output_bucket, Key=r["key"])["Body"].read()
        for r in listed
    }
    return ReportEntry(
        key=key,
        description=description,
        source=data,
        execution_arn=record.arn,
        execution_status=record.status,
        output=record.output,
        history=record.history,
        renditions=renditions,
        error=record.error,
        cause=record.cause,
    )


def failing_entry(cloud: LocalCloud) -> ReportEntry:
    """A photo whose renditions cannot be written: the output bucket answers SlowDown."""
    with s3_slows_down(cloud):
        return entry_for(cloud, "faults/photo.jpg", "output bucket says SlowDown", cmyk_jpeg())


@dataclass(frozen=True)
class Report:
    path: Path
    text: str
    page: Node
    entries: list[ReportEntry]

    def section(self, key: str) -> Node:
        return self.page.one("section", "upload", data_key=key)

    def entry(self, key: str) -> ReportEntry:
        return next(e for e in self.entries if e.key == key)


@dataclass(frozen=True)
class Run:
    report: Report
    failed: Report


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("report")
    # Retries are recorded, not waited for, so the failing upload costs no backoff.
    with LocalCloud.running(retry_sleep=lambda _seconds: None) as cloud:
        entries = [entry_for(cloud, key, text, make()) for key, text, make in UPLOADS]
        failed = [failing_entry(cloud)]
    written = write_report(
        folder / "nested" / "run" / "report.html", entries, title="report test", metrics=METRICS
    )
    failed_path = write_report(folder / "failed.html", failed)
    main, failure = written.read_text("utf-8"), failed_path.read_text("utf-8")
    return Run(
        Report(written, main, parse(main), entries),
        Report(failed_path, failure, parse(failure), failed),
    )


# --------------------------------------------------------------------------- tests


def test_report_is_written_where_asked_with_its_folders(run: Run) -> None:
    assert run.report.path.name == "report.html"
    assert run.report.path.parent.name == "run"
    assert run.report.text.startswith("<!DOCTYPE html>")
    assert run.report.page.one("title").text() == "report test"
    # Originals are downscaled and big renditions replaced by previews, so five uploads
    # (one of them a 1.4 MB noisy photo) stay well under a couple of megabytes.
    assert run.report.path.stat().st_size < 2_000_000


def test_every_upload_appears_once_with_its_status(run: Run) -> None:
    sections = run.report.page.all("section", "upload")
    assert [s.attrs["data-key"] for s in sections] == [key for key, _, _ in UPLOADS]
    expected = {
        SIDEWAYS: "processed",
        BADGE: "processed",
        CMYK: "processed",
        NOT_A_PHOTO: "rejected",
        NASTY: "processed",
    }
    for section in sections:
        status = expected[section.attrs["data-key"]]
        assert section.attrs["data-status"] == status
        assert section.one("span", "badge").text() == status
        assert section.one("h2", "key").text().endswith(section.attrs["data-key"])
    for entry in run.report.entries:
        manifest = (entry.output or {}).get("manifest")
        facts = run.report.section(entry.key).one("dl", "facts").text()
        if manifest:
            assert manifest["key"] in facts
        assert entry.execution_arn.rsplit(":", 1)[-1] in facts


def test_every_rendition_is_embedded_and_decodes_to_its_reported_size(run: Run) -> None:
    previews = 0
    for entry in run.report.entries:
        listed = (entry.output or {}).get("renditions") or []
        figures = run.report.section(entry.key).all("figure", "rendition")
        assert [f.attrs["data-key"] for f in figures] == [r["key"] for r in listed]
        for rendition, figure in zip(listed, figures, strict=True):
            stored = entry.renditions[rendition["key"]]
            size = (rendition["width"], rendition["height"])
            assert (int(figure.attrs["data-width"]), int(figure.attrs["data-height"])) == size
            assert int(figure.attrs["data-bytes"]) == rendition["bytes"] == len(stored)
            assert figure.attrs["data-format"] == rendition["format"]
            assert figure.attrs["data-content-type"] == rendition["content_type"]
            caption = figure.one("figcaption").text()
            assert f"{size[0]}\u00d7{size[1]}" in caption
            assert rendition["content_type"] in caption
            img = figure.one("img")
            assert "checker" in figure.one("div", "frame").classes
            if len(stored) <= EMBED_LIMIT_BYTES:
                # Given a rendition small enough to embed, Then it is the bucket's bytes
                assert figure.attrs["data-embedded"] == "original"
                assert embedded(img) == stored
                image = decoded(img)
                assert image.size == size
                assert image.format == rendition["format"]
            else:
                # Given a big rendition, Then a downscaled preview stands in, with a note
                previews += 1
                assert figure.attrs["data-embedded"] == "preview"
                assert len(embedded(img)) < EMBED_LIMIT_BYTES
                image = decoded(img)
                assert max(image.size) == RENDITION_PREVIEW_EDGE
                assert abs(image.width / image.height - size[0] / size[1]) < 0.01
                assert "preview" in figure.one("span", "note").text()
            # Shown at natural size up to the display box, never enlarged (tiny ones aside)
            shown = int(img.attrs["width"]), int(img.attrs["height"])
            if max(size) >= 48:
                assert shown[0] <= size[0]
                assert shown[1] <= size[1]
            if rendition["name"] == "thumb":
                assert shown == size
    assert previews == 2, "the noisy photo's large WebP and JPEG are over the limit"


def test_sideways_photo_is_previewed_upright_with_its_real_facts(run: Run) -> None:
    figure = run.report.section(SIDEWAYS).one("figure", "original")
    # The original's real format, stored size and bytes are reported...
    assert figure.attrs["data-preview"] == "yes"
    assert figure.attrs["data-format"] == "JPEG"
    assert (figure.attrs["data-width"], figure.attrs["data-height"]) == ("1600", "2400")
    assert int(figure.attrs["data-bytes"]) == len(run.report.entry(SIDEWAYS).source)
    caption = figure.one("figcaption").text()
    assert "preview" in caption
    assert "orientation 6" in caption
    assert "displayed 2400\u00d71600" in caption
    # ...and the preview is small, upright (landscape) with the red marker top left
    preview = decoded(figure.one("img")).convert("RGB")
    assert preview.size == (ORIGINAL_PREVIEW_EDGE, ORIGINAL_PREVIEW_EDGE * 2 // 3)
    top_left = rgb(preview, (preview.width // 4, preview.height // 4))
    bottom_right = rgb(preview, (preview.width * 3 // 4, preview.height * 3 // 4))
    assert top_left[0] > 180
    assert top_left[2] < 90
    assert bottom_right[0] < 180


def test_cmyk_original_preview_decodes_as_rgb(run: Run) -> None:
    figure = run.report.section(CMYK).one("figure", "original")
    assert figure.attrs["data-format"] == "JPEG"
    assert "CMYK" in figure.one("figcaption").text()
    preview = decoded(figure.one("img"))
    assert preview.format == "JPEG"
    assert preview.mode == "RGB"
    assert preview.size == (ORIGINAL_PREVIEW_EDGE, 360)
    red = rgb(preview, (100, 75))
    assert red[0] > 180
    assert red[2] < 90


def test_transparent_original_keeps_alpha_on_a_checkerboard(run: Run) -> None:
    figure = run.report.section(BADGE).one("figure", "original")
    assert "checker" in figure.one("div", "frame").classes
    preview = decoded(figure.one("img"))
    assert preview.format == "PNG"
    assert preview.mode == "RGBA"
    assert rgb(preview, (2, 2))[3] == 0
    assert rgb(preview, (240, 160))[3] == 255
    webp = run.report.section(BADGE).one(
        "figure", "rendition", data_name="thumb", data_format="WEBP"
    )
    assert decoded(webp.one("img")).mode == "RGBA"


def test_rejected_upload_shows_first_bytes_and_the_reason(run: Run) -> None:
    section = run.report.section(NOT_A_PHOTO)
    # Then the reason code and message are shown...
    reason = section.one("div", "reason")
    assert reason.one("code", "code").text() == "UnsupportedFormat"
    output = run.report.entry(NOT_A_PHOTO).output
    assert output is not None
    assert output["reason"]["message"] in reason.text()
    # ...and instead of a picture, a placeholder with the first bytes as hex and text
    figure = section.one("figure", "original")
    assert "unreadable" in figure.classes
    assert figure.attrs["data-preview"] == "no"
    assert int(figure.attrs["data-bytes"]) == len(HTML_BODY)
    assert section.all("img") == []
    dump = figure.one("pre").text()
    assert "3c 21 44 4f 43 54 59 50" in dump  # "<!DOCTYP"
    assert "<!DOCTYP" in dump
    assert "UnsupportedFormat" in figure.one("figcaption").text()
    assert section.all("figure", "rendition") == []
    # And the state where it happened is highlighted
    outcome = section.one("li", "outcome")
    assert outcome.attrs["data-state"] == "Validate"
    assert "UnsupportedFormat" in outcome.text()
    assert [li.attrs["data-state"] for li in section.all("li", "state")][-1] == "Rejected"


def state_ms(history: list[dict[str, Any]], name: str) -> int:
    entered: datetime | None = None
    for event in history:
        if event.get("stateEnteredEventDetails", {}).get("name") == name:
            entered = event["timestamp"]
        if event.get("stateExitedEventDetails", {}).get("name") == name:
            assert entered is not None
            return round((event["timestamp"] - entered).total_seconds() * 1000)
    raise AssertionError(name)


def test_state_strip_lists_the_path_in_order_with_durations(run: Run) -> None:
    for key in (SIDEWAYS, BADGE, CMYK, NASTY):
        entry = run.report.entry(key)
        items = run.report.section(key).one("ol", "path").all("li", "state")
        entered = [
            e["stateEnteredEventDetails"]["name"]
            for e in entry.history
            if "stateEnteredEventDetails" in e
        ]
        assert [li.attrs["data-state"] for li in items] == entered
        # The function tasks; Processed is a task too, the one that publishes the event
        tasks = [li for li in items if li.attrs["data-kind"] == "Task"]
        assert [li.attrs["data-state"] for li in tasks][-1:] == ["Processed"]
        tasks = tasks[:-1]
        assert [li.attrs["data-state"] for li in tasks] == ["Validate", "Resize", "Store"]
        for li in tasks:
            assert int(li.attrs["data-ms"]) == state_ms(entry.history, li.attrs["data-state"])
            assert re.fullmatch(r"\d+ ms|\d+\.\d\d s", li.one("span", "time").text())
            assert li.attrs["data-retries"] == "0"
            assert "outcome" not in li.classes


def test_nasty_key_is_escaped_everywhere(run: Run) -> None:
    text = run.report.text
    assert "<script" not in text.lower()
    assert "<b>" not in text
    assert "&lt;script&gt;alert(&quot;boo&quot;)&lt;/script&gt;" in text
    section = run.report.section(NASTY)  # attribute round-trips to the exact key
    assert section.attrs["data-status"] == "processed"
    assert section.one("h2", "key").text().endswith(NASTY)
    overview = run.report.page.one("section", "overview")
    assert NASTY in [a.text() for a in overview.all("a")]
    assert {f.attrs["data-key"] for f in section.all("figure", "rendition")} == set(
        run.report.entry(NASTY).renditions
    )


def test_page_is_self_contained(run: Run) -> None:
    for report in (run.report, run.failed):
        assert "http://" not in report.text
        assert "https://" not in report.text
        assert report.page.all("script") == []
        assert report.page.all("link") == []
        assert report.page.all("iframe") == []
        style = "".join(s.text() for s in report.page.all("style"))
        assert "url(" not in style
        assert "@import" not in style
        for node in report.page.all():
            for name in ("src", "href", "srcset", "poster", "data"):
                if name in node.attrs:
                    assert node.attrs[name].startswith(("data:", "#")), (node.tag, name)
        csp = report.page.one("meta", http_equiv="Content-Security-Policy")
        assert "default-src 'none'" in csp.attrs["content"]


def test_totals_match_the_run(run: Run) -> None:
    entries = run.report.entries
    tiles = {t.attrs["data-total"]: t.attrs["data-value"] for t in run.report.page.all(cls="tile")}
    outputs = [data for e in entries for data in e.renditions.values()]
    assert tiles["uploads"] == "5"
    assert tiles["processed"] == "4"
    assert tiles["rejected"] == "1"
    assert tiles["skipped"] == "0"
    assert tiles["failed"] == "0"
    assert int(tiles["source-bytes"]) == sum(len(e.source) for e in entries)
    assert int(tiles["output-bytes"]) == sum(len(data) for data in outputs)
    seconds = 0.0
    for entry in entries:
        start, end = entry.history[0]["timestamp"], entry.history[-1]["timestamp"]
        seconds += (end - start).total_seconds()
    assert float(tiles["seconds"]) == pytest.approx(seconds, abs=0.002)
    # Per output format: how many files and how many bytes
    by_format: dict[str, tuple[int, int]] = {}
    for entry in entries:
        for rendition in (entry.output or {}).get("renditions") or []:
            files, size = by_format.get(rendition["format"], (0, 0))
            by_format[rendition["format"]] = (files + 1, size + rendition["bytes"])
    rows = run.report.page.one("table", "formats").all("tr")
    shown = {
        r.attrs["data-format"]: (
            int(r.attrs["data-files"]),
            int(next(td for td in r.all("td") if "data-bytes" in td.attrs).attrs["data-bytes"]),
        )
        for r in rows
        if r.attrs.get("data-format") not in (None, "source")
    }
    assert shown == by_format


def test_metrics_are_listed_sorted_with_units(run: Run) -> None:
    rows = run.report.page.one("section", "metrics").all("tr")
    assert [r.attrs["data-metric"] for r in rows] == sorted(METRICS)
    by_name = {r.attrs["data-metric"]: r for r in rows}
    assert by_name["SourceBytes"].attrs["data-unit"] == "Bytes"
    assert "1,234,567" in by_name["SourceBytes"].text()
    assert "Bytes" in by_name["SourceBytes"].text()
    assert by_name["ColdStart"].attrs["data-unit"] == ""
    assert "12.25" in by_name["AverageResizeMs"].text()


def test_failed_execution_shows_retries_and_where_it_broke(run: Run) -> None:
    # Given an upload whose renditions could not be written (S3 SlowDown, retries exhausted)
    entry = run.failed.entries[0]
    assert entry.execution_status == "FAILED"
    section = run.failed.section(entry.key)
    # Then it is FAILED with the error and the human message from the Lambda cause
    assert section.attrs["data-status"] == "failed"
    assert section.one("span", "badge").text() == "FAILED"
    reason = section.one("div", "reason")
    assert reason.one("code", "code").text() == "TransientError"
    assert "SlowDown" in reason.one("span", "message").text()
    assert "errorMessage" not in reason.one("span", "message").text()
    # And the strip shows Resize retried six times, highlighted, then PipelineFailed
    resize = section.one("li", "state", data_state="Resize")
    assert resize.attrs["data-retries"] == "6"
    assert "6 retries" in resize.text()
    assert {"outcome", "tone-failed"} <= resize.classes
    states = [li.attrs["data-state"] for li in section.all("li", "state")]
    assert states[-1] == "PipelineFailed"
    # And the totals count it, with no metrics section when none were given
    tiles = {t.attrs["data-total"]: t.attrs["data-value"] for t in run.failed.page.all(cls="tile")}
    assert (tiles["uploads"], tiles["failed"], tiles["processed"]) == ("1", "1", "0")
    assert run.failed.page.all("section", "metrics") == []


def test_empty_run_still_makes_a_page(tmp_path: Path) -> None:
    page = parse(write_report(tmp_path / "empty.html", []).read_text("utf-8"))
    assert page.all("section", "upload") == []
    tiles = {t.attrs["data-total"]: t.attrs["data-value"] for t in page.all(cls="tile")}
    assert tiles["uploads"] == "0"
    assert "No uploads" in page.text()
