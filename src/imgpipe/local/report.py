"""The local demo's report: one self-contained HTML page about a run of uploads.

The page is meant to be mailed or opened anywhere, so it references nothing outside
itself: CSS is inline, there is no JavaScript, and every picture is a base64 `data:`
URI (a Content-Security-Policy forbids anything else, so a slip shows up as a broken
image rather than a silent network request).

Per upload it shows the original next to its renditions, the status and reason, and
the execution's path through the state machine with the time spent in each state,
all read from what `LocalCloud` recorded: the execution output, the execution history
and the objects in the output bucket. Nothing here talks to AWS.

Originals are previewed through the pipeline's own imaging core (`imaging.render`),
so a TIFF, a CMYK or 16-bit image or a sideways camera JPEG appears as the pipeline
understood it: upright, in sRGB, small. Its pixel budget also keeps a decompression
bomb that was rightly rejected from being decoded here.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image

from imgpipe.imaging import render
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
_FAILED_EVENT = re.compile(r"^(Task|LambdaFunction|Activity)\w*(Failed|TimedOut)$")
_ATTEMPT_EVENT = re.compile(r"^(Task|LambdaFunction|Activity)Scheduled$")
_DONE_EVENT = re.compile(r"^(Task|LambdaFunction|Activity)Succeeded$")

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


@dataclass
class _Visit:
    """One pass through one state of the execution."""

    name: str
    kind: str
    entered: datetime | None
    exited: datetime | None = None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    # The last task attempt failed: this is where the execution left the happy path.
    failed: bool = False

    @property
    def seconds(self) -> float | None:
        if self.entered is None or self.exited is None:
            return None
        return max(0.0, (self.exited - self.entered).total_seconds())

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


@dataclass(frozen=True)
class _Path:
    visits: list[_Visit]
    seconds: float | None

    @classmethod
    def of(cls, history: Sequence[Mapping[str, Any]]) -> _Path:
        visits: list[_Visit] = []
        current: _Visit | None = None
        started: datetime | None = None
        ended: datetime | None = None
        for event in history:
            kind = str(event.get("type", ""))
            when = _when(event.get("timestamp"))
            if "stateEnteredEventDetails" in event:
                name = str(event["stateEnteredEventDetails"].get("name", "?"))
                current = _Visit(name, kind.removesuffix("StateEntered") or "State", when)
                visits.append(current)
            elif "stateExitedEventDetails" in event:
                name = str(event["stateExitedEventDetails"].get("name", "?"))
                for visit in reversed(visits):
                    if visit.name == name and visit.exited is None:
                        visit.exited = when
                        break
            elif kind == "ExecutionStarted":
                started = when
            elif kind.startswith("Execution"):
                ended = when
            elif current is not None and _ATTEMPT_EVENT.match(kind):
                current.attempts += 1
                current.failed = False
            elif current is not None and _FAILED_EVENT.match(kind):
                details: Mapping[str, Any] = next(
                    (v for k, v in event.items() if k.endswith("EventDetails")), {}
                )
                current.errors.append(str(details.get("error") or kind))
                current.failed = True
            elif current is not None and _DONE_EVENT.match(kind):
                current.failed = False
        # A Fail state has no exit event; it lasts until the execution ends.
        for visit in visits:
            if visit.exited is None and visit.entered is not None:
                visit.exited = ended
        if started is None and visits:
            started = visits[0].entered
        seconds = (ended - started).total_seconds() if started and ended else None
        return cls(visits, seconds)

    def outcome(self, status: str) -> int | None:
        """Index of the state where a rejection, skip or failure happened."""
        if status == "processed":
            return None
        for index in reversed(range(len(self.visits))):
            if self.visits[index].failed:
                return index
        if status == "failed":
            fails = [i for i, v in enumerate(self.visits) if v.kind == "Fail"]
            return fails[-1] if fails else None
        if status in ("skipped", "deleted"):
            # A skip is an answer of a task (the object was gone), not an error event.
            tasks = [i for i, v in enumerate(self.visits) if v.kind == "Task"]
            return tasks[-1] if tasks else None
        return None


@dataclass(frozen=True)
class _Upload:
    entry: ReportEntry
    status: str
    original: _Original
    renditions: list[_Rendition]
    path: _Path

    @classmethod
    def of(cls, entry: ReportEntry) -> _Upload:
        listed = (entry.output or {}).get("renditions") or []
        return cls(
            entry=entry,
            status=entry.status,
            original=_original(entry.source),
            renditions=[_rendition(r, entry.renditions.get(str(r.get("key")))) for r in listed],
            path=_Path.of(entry.history),
        )

    @property
    def reason(self) -> tuple[str, str] | None:
        """(code, message) of a rejection or skip, or error and cause of a failure."""
        if self.status == "failed":
            if self.entry.error is None and self.entry.cause is None:
                return None
            message, _ = _cause(self.entry.cause)
            return self.entry.error or self.entry.execution_status, message
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


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _cause(cause: str | None) -> tuple[str, str | None]:
    """The human message of a Lambda error cause and its stack trace, if it has one."""
    if not cause:
        return "", None
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause, None
    if not isinstance(parsed, dict) or "errorMessage" not in parsed:
        return cause, None
    trace = parsed.get("stackTrace")
    lines = "".join(str(line) for line in trace) if isinstance(trace, list) else None
    return str(parsed["errorMessage"]), lines or None


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


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "&ndash;"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes:.0f} min {rest:.0f} s"


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
        f"<style>{_CSS}</style>",
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
    seconds = sum(u.path.seconds or 0.0 for u in uploads)
    tiles = [
        _tile("uploads", "Uploads", str(len(uploads)), len(uploads)),
        *(
            _tile(status, _STATUS_LABELS[status].capitalize(), str(n), n, status if n else "")
            for status, n in counts.items()
            if status in _STATUS_LABELS
        ),
        _tile("source-bytes", "Source bytes", _size(source_bytes), source_bytes),
        _tile("output-bytes", "Output bytes", _size(output_bytes), output_bytes),
        _tile("seconds", "Execution time", _duration(seconds), round(seconds, 3)),
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
        share = f"{100 * count / processed_source:.1f}%" if processed_source else "&ndash;"
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
            outcome = _e(", ".join(names)) or "&ndash;"
        rows.append(
            f'<tr><td class="num">{index}</td>'
            f'<td><a class="key" href="#u{index}">{_e(upload.entry.key)}</a></td>'
            f"<td>{_badge(upload.status, upload.entry.execution_status)}</td>"
            f"<td>{outcome}</td>"
            f'<td class="num">{len(upload.renditions)}</td>'
            f'<td class="num">{_size(upload.original.size)}</td>'
            f'<td class="num">{_size(upload.output_bytes) if upload.renditions else "&ndash;"}</td>'
            f'<td class="num">{_duration(upload.path.seconds)}</td></tr>'
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
    _, trace = _cause(upload.entry.cause) if upload.status == "failed" else ("", None)
    details = (
        f"<details><summary>stack trace</summary><pre>{_e(trace)}</pre></details>" if trace else ""
    )
    return (
        f'<div class="reason tone-{_e(upload.status)}">'
        f'<code class="code">{_e(code)}</code> <span class="message">{_e(message)}</span>'
        f"{details}</div>"
    )


def _strip(upload: _Upload) -> str:
    path = upload.path
    if not path.visits:
        return '<p class="muted">No execution history recorded.</p>'
    outcome = path.outcome(upload.status)
    items = []
    for index, visit in enumerate(path.visits):
        classes = ["state", f"kind-{visit.kind.lower()}"]
        if index == outcome:
            classes += ["outcome", f"tone-{upload.status}"]
        seconds = visit.seconds
        ms = "" if seconds is None else f' data-ms="{round(seconds * 1000)}"'
        retry = ""
        if visit.retries:
            errors = ", ".join(dict.fromkeys(visit.errors))
            plural = "retry" if visit.retries == 1 else "retries"
            retry = f'<span class="retries" title="{_e(errors)}">{visit.retries} {plural}</span>'
        failed = ""
        if visit.failed and visit.errors:
            failed = f'<span class="error">{_e(visit.errors[-1])}</span>'
        items.append(
            f'<li class="{" ".join(classes)}" data-state="{_e(visit.name)}" '
            f'data-kind="{_e(visit.kind)}" data-retries="{visit.retries}"{ms}>'
            f'<span class="name">{_e(visit.name)}</span>'
            f'<span class="time">{_duration(seconds)}</span>{retry}{failed}</li>'
        )
    return f'<ol class="path" aria-label="states">{"".join(items)}</ol>{_timeline(upload)}'


def _timeline(upload: _Upload) -> str:
    """A bar of the execution's wall time, split by state, so the slow step stands out."""
    visits = [v for v in upload.path.visits if v.seconds]
    total = sum(v.seconds or 0.0 for v in visits)
    if not total:
        return ""
    segments = "".join(
        f'<span class="seg kind-{_e(v.kind.lower())}" '
        f'style="flex-grow:{(v.seconds or 0) / total:.4f}" '
        f'title="{_e(v.name)} {_duration(v.seconds)}"></span>'
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
        ("manifest", f"<code>{_e(manifest)}</code>" if manifest else "&ndash;"),
        (
            "execution",
            f'<code title="{_e(entry.execution_arn)}">{_e(execution)}</code> '
            f"{_e(entry.execution_status)} in {_duration(upload.path.seconds)}",
        ),
    ]
    cells = "".join(f"<div><dt>{name}</dt><dd>{value}</dd></div>" for name, value in rows)
    return f'<dl class="facts">{cells}</dl>'


_CSS = """
:root {
  --ink: #1c2430; --muted: #64708a; --line: #e3e7ee; --paper: #ffffff; --bg: #f4f6f9;
  --ok: #137a3f; --ok-bg: #def7e7; --warn: #9a5a00; --warn-bg: #fff1d6;
  --skip: #475569; --skip-bg: #e8edf3; --bad: #b42318; --bad-bg: #fde4e1;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
.page { max-width: 1320px; margin: 0 auto; padding: 28px 24px 64px; }
h1 { font-size: 24px; margin: 0; letter-spacing: -0.01em; }
h2 { font-size: 15px; margin: 0; }
code, pre, .key { font-family: var(--mono); font-size: 12.5px; }
.sub, .muted { color: var(--muted); }
.page-head { margin-bottom: 18px; }
.page-head .sub { margin: 4px 0 0; }
section { background: var(--paper); border: 1px solid var(--line); border-radius: 12px;
  margin: 0 0 16px; padding: 16px 18px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line);
  vertical-align: middle; }
thead th { font-size: 11.5px; text-transform: uppercase; letter-spacing: .05em;
  color: var(--muted); font-weight: 600; }
tbody tr:last-child th, tbody tr:last-child td { border-bottom: 0; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.totals { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 18px;
  align-items: start; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(118px, 1fr)); gap: 10px;
  margin: 0; }
.tile { border: 1px solid var(--line); border-radius: 10px; padding: 10px 12px; }
.tile dt { font-size: 11.5px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .05em; }
.tile dd { margin: 2px 0 0; font-size: 22px; font-weight: 650;
  font-variant-numeric: tabular-nums; }
.tile.tone-processed { background: var(--ok-bg); border-color: transparent; }
.tile.tone-rejected { background: var(--warn-bg); border-color: transparent; }
.tile.tone-skipped { background: var(--skip-bg); border-color: transparent; }
.tile.tone-failed { background: var(--bad-bg); border-color: transparent; }
.formats td:nth-child(n+2), .formats th:nth-child(n+2) { text-align: right;
  font-variant-numeric: tabular-nums; }
.metrics h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .05em;
  color: var(--muted); margin-bottom: 6px; }
.metrics table { width: auto; min-width: 360px; }
.metrics th { font-weight: 500; }
.overview { overflow-x: auto; }
.overview a { color: inherit; text-decoration: none; }
.overview a:hover { text-decoration: underline; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px;
  font-weight: 650; white-space: nowrap; }
.badge.tone-processed { color: var(--ok); background: var(--ok-bg); }
.badge.tone-rejected { color: var(--warn); background: var(--warn-bg); }
.badge.tone-skipped, .badge.tone-deleted, .badge.tone-unknown {
  color: var(--skip); background: var(--skip-bg); }
.badge.tone-failed { color: #fff; background: var(--bad); letter-spacing: .04em; }
.upload { border-left: 5px solid var(--line); }
.upload.tone-processed { border-left-color: var(--ok); }
.upload.tone-rejected { border-left-color: #e59a1f; }
.upload.tone-failed { border-left-color: var(--bad); }
.card-head { display: flex; justify-content: space-between; align-items: flex-start;
  gap: 16px; }
.card-head .key { font-size: 14.5px; overflow-wrap: anywhere; }
.card-head .index { display: inline-block; min-width: 22px; margin-right: 8px;
  color: var(--muted); font-weight: 500; }
.desc { margin: 2px 0 0 30px; color: var(--muted); }
.reason { margin: 12px 0 0; padding: 8px 12px; border-radius: 8px; overflow-wrap: anywhere; }
.reason.tone-rejected { background: var(--warn-bg); }
.reason.tone-skipped, .reason.tone-deleted { background: var(--skip-bg); }
.reason.tone-failed { background: var(--bad-bg); }
.reason .code { font-weight: 700; }
.reason details { margin-top: 6px; }
.reason pre { white-space: pre-wrap; max-height: 280px; overflow: auto; margin: 6px 0 0; }
.path { list-style: none; display: flex; flex-wrap: wrap; align-items: stretch; gap: 4px 0;
  margin: 14px 0 6px; padding: 0; }
.state { display: flex; flex-direction: column; justify-content: center; padding: 5px 12px;
  border: 1px solid var(--line); border-radius: 8px; background: #fbfcfe; min-width: 74px; }
.state + .state { margin-left: 22px; position: relative; }
.state + .state::before { content: "\\2192"; position: absolute; left: -18px; top: 50%;
  transform: translateY(-50%); color: #a0a9ba; }
.state .name { font-weight: 600; font-size: 13px; }
.state .time { font-size: 12px; color: var(--muted); font-variant-numeric: tabular-nums; }
.state .retries { font-size: 11.5px; font-weight: 600; color: var(--warn); }
.state .error { font-size: 11.5px; font-family: var(--mono); }
.state.kind-task { border-color: #b9c3d3; background: #fff; }
.state.kind-choice, .state.kind-pass { border-style: dashed; background: transparent;
  min-width: 0; }
.state.kind-choice .name, .state.kind-pass .name { font-weight: 500; color: var(--muted); }
.state.kind-succeed { border-color: var(--ok); color: var(--ok); }
.state.kind-fail { border-color: var(--bad); color: var(--bad); }
.state.outcome { box-shadow: 0 0 0 2px currentColor; }
.state.outcome.tone-rejected { color: var(--warn); background: var(--warn-bg); }
.state.outcome.tone-failed { color: var(--bad); background: var(--bad-bg); }
.state.outcome.tone-skipped, .state.outcome.tone-deleted { color: var(--skip);
  background: var(--skip-bg); }
.state.outcome .time { color: inherit; }
.timeline { display: flex; height: 5px; border-radius: 3px; overflow: hidden; gap: 1px;
  margin-bottom: 14px; background: var(--line); }
.timeline .seg { background: #c8d0dc; min-width: 2px; }
.timeline .seg.kind-task { background: #3b6fd8; }
.timeline .seg.kind-fail { background: var(--bad); }
.media { display: grid; grid-template-columns: minmax(200px, 300px) minmax(0, 1fr); gap: 18px;
  align-items: start; }
.renditions { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-end; }
figure { margin: 0; max-width: 100%; }
.frame { display: inline-flex; border-radius: 6px; border: 1px solid var(--line);
  overflow: hidden; max-width: 100%; }
.frame img { display: block; max-width: 100%; height: auto; }
.frame img.pixelated { image-rendering: pixelated; }
.checker { background-color: #fff;
  background-image: repeating-conic-gradient(#e6e9ef 0% 25%, transparent 0% 50%);
  background-size: 16px 16px; }
.placeholder { display: flex; flex-direction: column; align-items: center; padding: 14px;
  background: #f7f8fa; min-height: 120px; min-width: 200px; }
.placeholder .glyph { font-size: 30px; font-weight: 700; color: #b6bfcd; }
.placeholder pre { margin: 8px 0 0; font-size: 10.5px; line-height: 1.35;
  white-space: pre; overflow-x: auto; max-width: 100%; color: #3d4757; }
figcaption { display: flex; flex-direction: column; margin-top: 6px; font-size: 12px; }
figcaption .label { font-weight: 650; font-size: 13px; }
figcaption .fmt { font-weight: 500; color: var(--muted); margin-left: 4px; }
figcaption .line { font-variant-numeric: tabular-nums; }
figcaption .note { color: var(--warn); max-width: 320px; }
.pill { display: inline-block; font-size: 10.5px; font-weight: 600; text-transform: uppercase;
  letter-spacing: .05em; padding: 0 6px; border-radius: 4px; background: var(--skip-bg);
  color: var(--skip); margin-left: 4px; vertical-align: 1px; }
.facts { display: flex; flex-wrap: wrap; gap: 6px 28px; margin: 14px 0 0; padding-top: 10px;
  border-top: 1px solid var(--line); font-size: 12.5px; }
.facts dt { display: inline; color: var(--muted); margin-right: 6px; }
.facts dd { display: inline; margin: 0; overflow-wrap: anywhere; }
@media (max-width: 860px) {
  .totals, .media { grid-template-columns: minmax(0, 1fr); }
}
""".strip()
