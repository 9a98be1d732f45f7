"""The local demo's report: one self-contained HTML page about a run of uploads.

The page is meant to be mailed or opened anywhere, so it references nothing outside
itself: CSS is inline (read from the package's `report.css`), there is no JavaScript,
and every picture is a base64 `data:` URI (a Content-Security-Policy forbids anything
else, so a slip shows up as a broken image rather than a silent network request).

Per upload it shows the original next to its renditions, the status and reason, and
the execution's path through the state machine with the time spent in each state,
all read from what `LocalCloud` recorded: the execution output, the execution history
and the objects in the output bucket. Nothing here talks to AWS. The history is read
through the same model as `imgpipe trace` (`imgpipe.ops.history`: state visits, their
attempts, the state an execution broke in, the error it stopped with), and durations
are spelled the way the CLI spells them.

Originals are previewed through the pipeline's own imaging core (`imaging.render`),
so a TIFF, a CMYK or 16-bit image or a sideways camera JPEG appears as the pipeline
understood it: upright, in sRGB, small. Its pixel budget also keeps a decompression
bomb that was rightly rejected from being decoded here.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image

from imgpipe.imaging import render
from imgpipe.ops.history import (
    ErrorInfo,
    StateVisit,
    duration,
    execution_bounds,
    execution_error,
    failing_visit,
    parse_visits,
    rejecting_visit,
    seconds_between,
)
from imgpipe.specs import OUTPUT_FORMATS, ImageFacts, RenderSettings, RenditionSpec

__all__ = ["ReportEntry", "write_report"]

# Originals can be 24 MP; a 480 px preview is enough to recognise the picture.
ORIGINAL_PREVIEW_EDGE = 480
# Renditions are embedded byte for byte (that is the point of looking at them) unless
# they are big enough to make the page unwieldy; then a downscaled copy stands in.
EMBED_LIMIT_BYTES = 400 * 1024
RENDITION_PREVIEW_EDGE = 960
HEX_PREVIEW_BYTES = 64
# Display boxes (CSS pixels): pictures are shown at their natural size up to these, so a
# thumbnail looks small next to a large rendition; tiny images are enlarged, pixelated.
RENDITION_BOX = (440, 300)
ORIGINAL_BOX = (300, 300)
TINY_EDGE = 48

_SAFE_MIME = re.compile(r"image/[a-z0-9.+-]+")
# What a missing duration or value shows as.
_MISSING = "&ndash;"

_STATUS_LABELS = {
    "processed": "processed",
    "rejected": "rejected",
    "skipped": "skipped",
    "deleted": "deleted",
    "failed": "FAILED",
}


@dataclass(frozen=True)
class ReportEntry:
    """One upload as the local run saw it."""

    key: str
    description: str
    source: bytes
    execution_arn: str
    execution_status: str
    output: dict[str, Any] | None
    history: list[dict[str, Any]]
    renditions: dict[str, bytes]
    error: str | None = None
    cause: str | None = None

    @property
    def status(self) -> str:
        """`processed`/`rejected`/`skipped`/`deleted`, or `failed` when the pipeline broke."""
        if self.execution_status != "SUCCEEDED":
            return "failed"
        status = (self.output or {}).get("status")
        return str(status) if status else "unknown"


def write_report(
    path: Path,
    entries: Sequence[ReportEntry],
    *,
    title: str = "imgpipe local run",
    metrics: Mapping[str, float | tuple[float, str]] | None = None,
) -> Path:
    """Write the HTML report for `entries` to `path` (parent folders are created).

    `metrics` maps a metric name to a value or to `(value, unit)`; they are listed
    sorted by name, and the section is left out when there are none.
    """
    uploads = [_Upload.of(entry) for entry in entries]
    page = _page(title, uploads, metrics or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


# ------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class _Picture:
    data: bytes
    mime: str
    width: int
    height: int

    @property
    def uri(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class _Original:
    size: int
    head: bytes
    facts: ImageFacts | None
    preview: _Picture | None
    problem: str | None


@dataclass(frozen=True)
class _Rendition:
    name: str
    format: str
    key: str
    width: int
    height: int
    bytes: int
    content_type: str
    picture: _Picture | None
    # Why `picture` is not the rendition itself (a downscaled stand-in, or missing), as
    # HTML-safe text.
    note: str | None


@dataclass(frozen=True)
class _Upload:
    entry: ReportEntry
    status: str
    original: _Original
    renditions: list[_Rendition]
    # The execution's path through the states, in the order they were entered.
    visits: list[StateVisit]
    # From the execution's start to its end (None while it runs).
    seconds: float | None
    # What a failed execution stopped with (None for any other status).
    error: ErrorInfo | None

    @classmethod
    def of(cls, entry: ReportEntry) -> _Upload:
        listed = (entry.output or {}).get("renditions") or []
        started, ended = execution_bounds(entry.history)
        visits = parse_visits(
            entry.history, execution_status=entry.execution_status, execution_ended=ended
        )
        if started is None and visits:
            started = visits[0].entered_at
        error = None
        if entry.status == "failed":
            error = execution_error({"error": entry.error, "cause": entry.cause}, entry.history)
        return cls(
            entry=entry,
            status=entry.status,
            original=_original(entry.source),
            renditions=[_rendition(r, entry.renditions.get(str(r.get("key")))) for r in listed],
            visits=visits,
            seconds=seconds_between(started, ended),
            error=error,
        )

    @property
    def outcome(self) -> StateVisit | None:
        """The state where a rejection, skip or failure happened."""
        if self.status == "processed" or not self.visits:
            return None
        if self.status == "failed":
            return failing_visit(self.visits)
        caught = rejecting_visit(self.visits)
        if caught is None and self.status in ("skipped", "deleted"):
            # A skip is an answer of a task (the object was gone), not an error event.
            tasks = [visit for visit in self.visits if visit.state_type == "Task"]
            return tasks[-1] if tasks else None
        return caught

    @property
    def reason(self) -> tuple[str, str] | None:
        """(code, message) of a rejection or skip, or error and cause of a failure."""
        if self.status == "failed":
            error = self.error
            if error is None:
                return None
            code = self.entry.execution_status if error.error == ErrorInfo.UNNAMED else error.error
            # A Lambda cause's message, else the cause as recorded.
            message = error.message if error.message is not None else error.cause or ""
            return code, message
        reason = (self.entry.output or {}).get("reason")
        if isinstance(reason, Mapping) and (reason.get("code") or reason.get("message")):
            return str(reason.get("code") or ""), str(reason.get("message") or "")
        return None

    @property
    def manifest_key(self) -> str | None:
        manifest = (self.entry.output or {}).get("manifest")
        if isinstance(manifest, Mapping) and manifest.get("key"):
            return str(manifest["key"])
        return None

    @property
    def output_bytes(self) -> int:
        return sum(r.bytes for r in self.renditions)


def _original(source: bytes) -> _Original:
    specs = (
        RenditionSpec("preview", ORIGINAL_PREVIEW_EDGE, "JPEG", 85),
        RenditionSpec("preview", ORIGINAL_PREVIEW_EDGE, "PNG", 0),
    )
    head = source[:HEX_PREVIEW_BYTES]
    try:
        # One decode gives both encodings; which one is shown depends on alpha, which
        # is only known once the image is open.
        facts, (jpeg, png) = render(source, RenderSettings(renditions=specs))
    except Exception as exc:
        # The report must cover every upload, and an original that cannot be decoded
        # is exactly the kind of upload it exists to explain.
        return _Original(len(source), head, None, None, f"{type(exc).__name__}: {exc}")
    chosen = png if facts.has_alpha else jpeg
    picture = _Picture(chosen.data, chosen.spec.content_type, chosen.width, chosen.height)
    return _Original(len(source), head, facts, picture, None)


def _rendition(listed: Mapping[str, Any], data: bytes | None) -> _Rendition:
    fmt = str(listed.get("format", ""))
    content_type = str(listed.get("content_type", ""))
    width, height = int(listed.get("width", 0)), int(listed.get("height", 0))
    picture: _Picture | None = None
    note: str | None = None
    if data is None:
        note = "not found in the output bucket"
    elif len(data) <= EMBED_LIMIT_BYTES:
        # The type goes into the data: URI, so only a well-formed image type is trusted.
        fallback = OUTPUT_FORMATS.get(fmt.upper(), ("", "application/octet-stream"))[1]
        mime = content_type if _SAFE_MIME.fullmatch(content_type) else fallback
        picture = _Picture(data, mime, width, height)
    else:
        try:
            picture = _downscaled(data)
        except Exception as exc:
            # Stay a report: a rendition that will not decode is a finding, not a crash.
            note = _e(f"cannot be previewed ({type(exc).__name__}: {exc})")
        else:
            note = (
                f"{_size(len(data))} is over the {_size(EMBED_LIMIT_BYTES)} embedding limit: "
                f"shown as a {picture.width}&times;{picture.height} preview"
            )
    return _Rendition(
        name=str(listed.get("name", "")),
        format=fmt,
        key=str(listed.get("key", "")),
        width=width,
        height=height,
        bytes=int(listed.get("bytes", len(data) if data is not None else 0)),
        content_type=content_type,
        picture=picture,
        note=note,
    )


def _downscaled(data: bytes) -> _Picture:
    with Image.open(BytesIO(data)) as image:
        image.thumbnail((RENDITION_PREVIEW_EDGE, RENDITION_PREVIEW_EDGE))
        alpha = image.has_transparency_data
        small = image.convert("RGBA" if alpha else "RGB")
    out = BytesIO()
    if alpha:
        small.save(out, "PNG")
    else:
        small.save(out, "JPEG", quality=80)
    return _Picture(out.getvalue(), "image/png" if alpha else "image/jpeg", *small.size)


# ------------------------------------------------------------------------ writing


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError  # pragma: no cover - the loop always returns


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _img(picture: _Picture, width: int, height: int, box: tuple[int, int], alt: str) -> str:
    """An <img> of `picture`, sized as a `width` x `height` image fitted into `box`."""
    width, height = max(width, 1), max(height, 1)
    scale = min(1.0, box[0] / width, box[1] / height)
    pixelated = max(width, height) < TINY_EDGE
    if pixelated:
        # Whole multiples keep each source pixel a crisp square.
        scale = float(-(-TINY_EDGE // max(width, height)))
    shown_w, shown_h = max(1, round(width * scale)), max(1, round(height * scale))
    css = ' class="pixelated"' if pixelated else ""
    return f'<img{css} src="{picture.uri}" width="{shown_w}" height="{shown_h}" alt="{_e(alt)}">'


def _bytes_attr(count: int) -> str:
    return f'data-bytes="{count}" title="{count:,} bytes"'


def _page(title: str, uploads: list[_Upload], metrics: Mapping[str, Any]) -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Self-contained by construction: the browser refuses anything but inline CSS
        # and data: images.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{_e(title)}</title>",
        f"<style>{_css()}</style>",
        "</head>",
        "<body>",
        '<main class="page">',
        '<header class="page-head">',
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{len(uploads)} upload{"" if len(uploads) == 1 else "s"}'
        f" &middot; generated {generated}</p>",
        "</header>",
        _totals(uploads),
        _metrics(metrics),
        _overview(uploads),
        *(_card(index, upload) for index, upload in enumerate(uploads, 1)),
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _tile(name: str, label: str, value: str, raw: float | int, tone: str = "") -> str:
    tone_class = f" tone-{tone}" if tone else ""
    return (
        f'<div class="tile{tone_class}" data-total="{name}" data-value="{raw}">'
        f"<dt>{label}</dt><dd>{value}</dd></div>"
    )


def _totals(uploads: list[_Upload]) -> str:
    counts = dict.fromkeys(("processed", "rejected", "skipped", "failed"), 0)
    for upload in uploads:
        bucket = "skipped" if upload.status == "deleted" else upload.status
        counts[bucket] = counts.get(bucket, 0) + 1
    source_bytes = sum(u.original.size for u in uploads)
    processed_source = sum(u.original.size for u in uploads if u.status == "processed")
    output_bytes = sum(u.output_bytes for u in uploads)
    seconds = sum(u.seconds or 0.0 for u in uploads)
    tiles = [
        _tile("uploads", "Uploads", str(len(uploads)), len(uploads)),
        *(
            _tile(status, _STATUS_LABELS[status].capitalize(), str(n), n, status if n else "")
            for status, n in counts.items()
            if status in _STATUS_LABELS
        ),
        _tile("source-bytes", "Source bytes", _size(source_bytes), source_bytes),
        _tile("output-bytes", "Output bytes", _size(output_bytes), output_bytes),
        _tile("seconds", "Execution time", duration(seconds), round(seconds, 3)),
    ]
    by_format: dict[str, list[int]] = {}
    for upload in uploads:
        for rendition in upload.renditions:
            files_bytes = by_format.setdefault(rendition.format, [0, 0])
            files_bytes[0] += 1
            files_bytes[1] += rendition.bytes
    rows = [
        f'<tr data-format="source"><th>originals</th><td>{len(uploads)}</td>'
        f"<td {_bytes_attr(source_bytes)}>{_size(source_bytes)}</td><td></td></tr>"
    ]
    for fmt, (files, count) in sorted(by_format.items()):
        share = f"{100 * count / processed_source:.1f}%" if processed_source else _MISSING
        rows.append(
            f'<tr data-format="{_e(fmt)}" data-files="{files}"><th>{_e(fmt)}</th>'
            f"<td>{files}</td><td {_bytes_attr(count)}>{_size(count)}</td>"
            f"<td>{share}</td></tr>"
        )
    table = (
        '<table class="formats"><thead><tr><th>format</th><th>files</th><th>bytes</th>'
        '<th title="output bytes as a share of the processed originals">of source</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return (
        '<section class="totals" aria-label="totals">'
        f'<dl class="tiles">{"".join(tiles)}</dl>{table}</section>'
    )


def _metrics(metrics: Mapping[str, Any]) -> str:
    if not metrics:
        return ""
    rows = []
    for name in sorted(metrics):
        given = metrics[name]
        value, unit = (given[0], str(given[1])) if isinstance(given, tuple) else (given, "")
        shown = _number(value)
        if unit.lower() == "bytes" and value >= 1024:
            shown += f' <span class="muted">({_size(int(value))})</span>'
        rows.append(
            f'<tr data-metric="{_e(name)}" data-value="{_e(value)}" data-unit="{_e(unit)}">'
            f'<th>{_e(name)}</th><td class="num">{shown}</td>'
            f'<td class="muted">{_e(unit)}</td></tr>'
        )
    return (
        '<section class="metrics"><h2>Metrics</h2>'
        f"<table><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _badge(status: str, execution_status: str) -> str:
    label = _STATUS_LABELS.get(status, status)
    if status == "failed" and execution_status not in ("FAILED", ""):
        label = execution_status
    return f'<span class="badge tone-{_e(status)}">{_e(label)}</span>'


def _overview(uploads: list[_Upload]) -> str:
    if not uploads:
        return '<p class="empty">No uploads.</p>'
    rows = []
    for index, upload in enumerate(uploads, 1):
        reason = upload.reason
        if reason is not None:
            outcome = f"<code>{_e(reason[0])}</code>"
        else:
            names = list(dict.fromkeys(r.name for r in upload.renditions))
            outcome = _e(", ".join(names)) or _MISSING
        rows.append(
            f'<tr><td class="num">{index}</td>'
            f'<td><a class="key" href="#u{index}">{_e(upload.entry.key)}</a></td>'
            f"<td>{_badge(upload.status, upload.entry.execution_status)}</td>"
            f"<td>{outcome}</td>"
            f'<td class="num">{len(upload.renditions)}</td>'
            f'<td class="num">{_size(upload.original.size)}</td>'
            f'<td class="num">{_size(upload.output_bytes) if upload.renditions else _MISSING}</td>'
            f'<td class="num">{duration(upload.seconds, _MISSING)}</td></tr>'
        )
    return (
        '<section class="overview"><table><thead><tr><th class="num">#</th><th>source key</th>'
        '<th>status</th><th>outcome</th><th class="num">renditions</th>'
        '<th class="num">source</th><th class="num">output</th><th class="num">time</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _card(index: int, upload: _Upload) -> str:
    entry = upload.entry
    description = f'<p class="desc">{_e(entry.description)}</p>' if entry.description else ""
    return "\n".join(
        part
        for part in (
            f'<section class="upload tone-{_e(upload.status)}" id="u{index}" '
            f'data-key="{_e(entry.key)}" data-status="{_e(upload.status)}">',
            '<header class="card-head"><div>'
            f'<h2 class="key"><span class="index">{index}</span>{_e(entry.key)}</h2>'
            f"{description}</div>{_badge(upload.status, entry.execution_status)}</header>",
            _reason(upload),
            _strip(upload),
            '<div class="media">',
            _original_figure(upload),
            _renditions(upload),
            "</div>",
            _facts(upload),
            "</section>",
        )
        if part
    )


def _reason(upload: _Upload) -> str:
    reason = upload.reason
    if reason is None:
        return ""
    code, message = reason
    trace = upload.error.stack_trace if upload.error is not None else None
    details = (
        f"<details><summary>stack trace</summary><pre>{_e(trace)}</pre></details>" if trace else ""
    )
    return (
        f'<div class="reason tone-{_e(upload.status)}">'
        f'<code class="code">{_e(code)}</code> <span class="message">{_e(message)}</span>'
        f"{details}</div>"
    )


def _strip(upload: _Upload) -> str:
    if not upload.visits:
        return '<p class="muted">No execution history recorded.</p>'
    outcome = upload.outcome
    items = []
    for visit in upload.visits:
        classes = ["state", f"kind-{visit.state_type.lower()}"]
        if visit is outcome:
            classes += ["outcome", f"tone-{upload.status}"]
        seconds = visit.duration_s
        ms = "" if seconds is None else f' data-ms="{round(seconds * 1000)}"'
        retry = ""
        if visit.retries:
            errors = ", ".join(dict.fromkeys(a.error.error for a in visit.attempts if a.error))
            plural = "retry" if visit.retries == 1 else "retries"
            retry = f'<span class="retries" title="{_e(errors)}">{visit.retries} {plural}</span>'
        failed = ""
        if visit.error is not None:
            failed = f'<span class="error">{_e(visit.error.error)}</span>'
        items.append(
            f'<li class="{" ".join(classes)}" data-state="{_e(visit.name)}" '
            f'data-kind="{_e(visit.state_type)}" data-retries="{visit.retries}"{ms}>'
            f'<span class="name">{_e(visit.name)}</span>'
            f'<span class="time">{duration(seconds, _MISSING)}</span>{retry}{failed}</li>'
        )
    return f'<ol class="path" aria-label="states">{"".join(items)}</ol>{_timeline(upload)}'


def _timeline(upload: _Upload) -> str:
    """A bar of the execution's wall time, split by state, so the slow step stands out."""
    visits = [v for v in upload.visits if v.duration_s]
    total = sum(v.duration_s or 0.0 for v in visits)
    if not total:
        return ""
    segments = "".join(
        f'<span class="seg kind-{_e(v.state_type.lower())}" '
        f'style="flex-grow:{(v.duration_s or 0) / total:.4f}" '
        f'title="{_e(v.name)} {duration(v.duration_s)}"></span>'
        for v in visits
    )
    return f'<div class="timeline" aria-hidden="true">{segments}</div>'


def _original_figure(upload: _Upload) -> str:
    original = upload.original
    facts = original.facts
    if facts is None or original.preview is None:
        return _unreadable(upload)
    preview = original.preview
    shown_w, shown_h = facts.oriented_size
    details = [
        f"{_e(facts.format)} &middot; {facts.width}&times;{facts.height}",
        _e(facts.mode) if facts.mode else "",
        f"{facts.bit_depth}-bit" if facts.bit_depth != 8 else "",
        f"{facts.frames} frames" if facts.frames > 1 else "",
        "ICC profile" if facts.icc_profile else "",
        "alpha" if facts.has_alpha else "",
    ]
    rotation = ""
    if facts.orientation != 1:
        rotation = (
            f'<span class="line">EXIF orientation {facts.orientation}: '
            f"displayed {shown_w}&times;{shown_h}</span>"
        )
    return (
        f'<figure class="original" data-preview="yes" data-format="{_e(facts.format)}" '
        f'data-width="{facts.width}" data-height="{facts.height}" {_bytes_attr(original.size)}>'
        f'<div class="frame checker">'
        f"{_img(preview, shown_w, shown_h, ORIGINAL_BOX, 'preview of the original')}</div>"
        f'<figcaption><span class="label">original <span class="pill">preview</span></span>'
        f'<span class="line">{" &middot; ".join(d for d in details if d)}</span>'
        f"{rotation}"
        f'<span class="line">{_size(original.size)}</span></figcaption></figure>'
    )


def _unreadable(upload: _Upload) -> str:
    original = upload.original
    head = original.head
    rows = []
    # Eight bytes a row fit the original's column without scrolling.
    for offset in range(0, len(head), 8):
        chunk = head[offset : offset + 8]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        rows.append(f"{offset:04x}  {hexes:<23}  {text}")
    dump = "\n".join(rows) or "(no bytes)"
    reason = upload.reason
    why = (
        f'<span class="line"><code>{_e(reason[0])}</code> {_e(reason[1])}</span>'
        if reason and upload.status != "processed"
        else ""
    )
    return (
        f'<figure class="original unreadable" data-preview="no" {_bytes_attr(original.size)}>'
        f'<div class="frame placeholder"><span class="glyph">?</span>'
        f"<pre>{_e(dump)}</pre></div>"
        f'<figcaption><span class="label">original '
        f'<span class="pill">not an image we can show</span></span>'
        f'<span class="line">first {len(head)} of {original.size:,} bytes</span>'
        f"{why}"
        f'<span class="line muted">decoder: {_e(original.problem or "unknown")}</span>'
        f"</figcaption></figure>"
    )


def _renditions(upload: _Upload) -> str:
    if not upload.renditions:
        return '<div class="renditions none"><p class="muted">No renditions.</p></div>'
    figures = []
    for r in upload.renditions:
        kind = "preview" if r.picture is not None and r.note else "original"
        if r.picture is None:
            frame = '<div class="frame placeholder"><span class="glyph">!</span></div>'
            kind = "missing"
        else:
            image = _img(r.picture, r.width, r.height, RENDITION_BOX, f"{r.name} {r.format}")
            frame = f'<div class="frame checker">{image}</div>'
        note = f'<span class="line note">{r.note}</span>' if r.note else ""
        figures.append(
            f'<figure class="rendition" data-key="{_e(r.key)}" data-name="{_e(r.name)}" '
            f'data-format="{_e(r.format)}" data-width="{r.width}" data-height="{r.height}" '
            f'{_bytes_attr(r.bytes)} data-content-type="{_e(r.content_type)}" '
            f'data-embedded="{kind}">{frame}'
            f'<figcaption><span class="label">{_e(r.name)} '
            f'<span class="fmt">{_e(r.format)}</span></span>'
            f'<span class="line">{r.width}&times;{r.height} &middot; {_size(r.bytes)}</span>'
            f'<span class="line muted">{_e(r.content_type)}</span>{note}'
            f"</figcaption></figure>"
        )
    return f'<div class="renditions">{"".join(figures)}</div>'


def _facts(upload: _Upload) -> str:
    entry = upload.entry
    manifest = upload.manifest_key
    execution = entry.execution_arn.rsplit(":", 1)[-1] if entry.execution_arn else ""
    rows = [
        ("manifest", f"<code>{_e(manifest)}</code>" if manifest else _MISSING),
        (
            "execution",
            f'<code title="{_e(entry.execution_arn)}">{_e(execution)}</code> '
            f"{_e(entry.execution_status)} in {duration(upload.seconds, _MISSING)}",
        ),
    ]
    cells = "".join(f"<div><dt>{name}</dt><dd>{value}</dd></div>" for name, value in rows)
    return f'<dl class="facts">{cells}</dl>'


@cache
def _css() -> str:
    """The page's style sheet, shipped beside this module as package data."""
    sheet = resources.files("imgpipe.local").joinpath("report.css")
    return sheet.read_text(encoding="utf-8").strip()
