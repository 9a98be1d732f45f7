"""`imgpipe audit s3://bucket/prefix`: did every upload get its renditions?

A read-only look at the input bucket, the output bucket and the deployed configuration
(`imgpipe.ops.deployment`). Each source (current object under the prefix) is

* **up to date**: its manifest describes the current object, was made with the
  deployed rendition settings, and every rendition it lists is there with its size;
* **missing**: no manifest;
* **stale**: the manifest describes another version of the source;
* **outdated**: the manifest was made with other rendition settings (another
  `settings.fingerprint`, or none);
* **incomplete**: a rendition the manifest lists is absent or has another size;
* **rejected**: no manifest, and validate's header checks, with the deployed limits,
  refuse the object: nothing is owed for it.

The first that applies wins, in that order (a stale manifest's renditions are not
checked: the current object needs rendering whatever they are). Output folders under
the prefix are **orphans** when their source key no longer exists, or when they hold
renditions but no manifest.

The buckets are listed once each (paginated); HEADs, manifest reads and header checks
run a few at a time. An audit is a snapshot: uploads processed while it runs may be
reported as they were when it looked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard, TypeVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from imgpipe.config import OutputLocation
from imgpipe.errors import ImageRejected, ObjectGone
from imgpipe.keys import MANIFEST_NAME, escape_key, unescape_key
from imgpipe.messages import SourceRef
from imgpipe.ops.deployment import Deployment
from imgpipe.ops.errors import OpsError
from imgpipe.stages.folder import describes, listed, manifest_of, read_manifest
from imgpipe.stages.validate import inspect_header
from imgpipe.storage import ObjectHead, ObjectStore

Status = Literal["up_to_date", "missing", "stale", "outdated", "incomplete", "rejected"]
UP_TO_DATE: Status = "up_to_date"
MISSING: Status = "missing"
STALE: Status = "stale"
OUTDATED: Status = "outdated"
INCOMPLETE: Status = "incomplete"
REJECTED: Status = "rejected"
STATUSES: tuple[Status, ...] = (UP_TO_DATE, MISSING, STALE, OUTDATED, INCOMPLETE, REJECTED)
# What a render (an upload's execution, a backfill) would change.
NEEDS_RENDER: tuple[Status, ...] = (MISSING, STALE, OUTDATED, INCOMPLETE)

OrphanReason = Literal["source_gone", "no_manifest"]
SOURCE_GONE: OrphanReason = "source_gone"
NO_MANIFEST: OrphanReason = "no_manifest"

# Each source costs a HEAD plus a manifest GET or a ranged header GET: a few in flight
# make a bucket of thousands take seconds, well inside S3's per-prefix request rates.
WORKERS = 8
# Sources are handed to the pool in slices, so a million keys are not a million
# futures at once and findings come out in listing order as they are made.
BATCH = 256

Progress = Callable[[int], None]
T = TypeVar("T")
R = TypeVar("R")


# -- where to look (pure) ----------------------------------------------------------


def parse_s3_prefix(uri: str) -> tuple[str, str]:
    """`s3://bucket/prefix` (or `s3://bucket` for the whole bucket) -> (bucket, prefix).

    The prefix is kept exactly as typed: S3 prefixes are plain text, not paths.
    """
    if not uri.startswith("s3://"):
        msg = f"expected s3://bucket/prefix, got {uri!r}"
        raise OpsError(msg)
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        msg = f"expected s3://bucket/prefix, got {uri!r} (no bucket)"
        raise OpsError(msg)
    return bucket, prefix


def scope_prefix(requested: str, input_prefix: str) -> str:
    """The source prefix to audit: `requested`, narrowed to the rule's input prefix.

    Keys outside the input prefix never start an execution, so they owe nothing; a
    requested prefix wholly outside it is a mistake worth saying out loud.
    """
    if requested.startswith(input_prefix):
        return requested
    if input_prefix.startswith(requested):
        return input_prefix
    msg = (
        f"the pipeline only renders keys under the prefix {input_prefix!r} "
        f"(its rule's InputKeyPrefix); {requested!r} is outside it"
    )
    raise OpsError(msg)


def output_listing_prefix(output_prefix: str, source_prefix: str) -> str:
    """An output-bucket prefix under which lies the folder of every source key that
    starts with `source_prefix`.

    Whole segments are escaped as `imgpipe.keys` escapes them. The last, partial
    segment can be kept (with `%` escaped) unless it could still become a segment the
    rule spells differently (`.`, `..`, or empty): then the listing stops at the last
    `/` and the caller filters by source key.
    """
    head, slash, partial = source_prefix.rpartition("/")
    folder = output_prefix + (escape_key(head) + "/" if slash else "")
    if partial in ("", ".", ".."):
        return folder
    return folder + partial.replace("%", "%25")


def folder_source(output_prefix: str, folder: str) -> str | None:
    """The source key whose output folder is `folder` (`<prefix><escaped key>/`), or
    None when no source key maps to it (not something the pipeline writes)."""
    if not folder.startswith(output_prefix) or not folder.endswith("/"):
        return None
    escaped = folder[len(output_prefix) : -1]
    key = unescape_key(escaped)
    return key if escape_key(key) == escaped else None


def is_manifest(document: Any) -> TypeGuard[dict[str, Any]]:
    """Whether a `manifest.json` is one of ours: a Map Run's result manifest, in the
    backfill's results folder of the same bucket, is not."""
    return isinstance(document, dict) and isinstance(document.get("source"), dict)


def fingerprint_of(manifest: dict[str, Any]) -> str | None:
    settings = manifest.get("settings")
    value = settings.get("fingerprint") if isinstance(settings, dict) else None
    return value if isinstance(value, str) and value else None


# -- what was found ------------------------------------------------------------------


@dataclass(frozen=True)
class RenditionProblem:
    """A rendition a manifest lists that is absent (`found_bytes` None) or differs."""

    key: str
    expected_bytes: int
    found_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "expected_bytes": self.expected_bytes,
            "found_bytes": self.found_bytes,
        }


@dataclass(frozen=True)
class SourceFinding:
    """One source object and what its outputs are."""

    key: str
    status: Status
    size: int
    etag: str | None
    version_id: str | None
    # The manifest's key when there is one of ours.
    manifest: str | None = None
    # For people: why the status (which version, which settings, which files).
    detail: str = ""
    # `rejected`: the rejection code (an `imgpipe.errors` class name) and message.
    reason: dict[str, str] | None = None
    # `incomplete`: the renditions that are not as the manifest lists them.
    renditions: tuple[RenditionProblem, ...] = ()
    # What the manifest records, when there is one: its source and settings.
    made_from: dict[str, Any] | None = None
    made_with: str | None = None

    @property
    def needs_render(self) -> bool:
        return self.status in NEEDS_RENDER

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "size": self.size,
            "etag": self.etag,
            "version_id": self.version_id,
            "manifest": self.manifest,
            "detail": self.detail,
            "reason": self.reason,
            "renditions": [problem.to_dict() for problem in self.renditions],
            "made_from": self.made_from,
            "made_with": self.made_with,
        }


@dataclass(frozen=True)
class OrphanFolder:
    """Outputs that no current source accounts for."""

    folder: str
    # The key the folder was made for.
    source_key: str
    reason: OrphanReason
    keys: tuple[str, ...]

    @property
    def detail(self) -> str:
        files = f"{len(self.keys)} file{'' if len(self.keys) == 1 else 's'}"
        if self.reason == SOURCE_GONE:
            return f"the source no longer exists ({files} left)"
        return f"renditions without a manifest ({files})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "source_key": self.source_key,
            "reason": self.reason,
            "keys": list(self.keys),
        }


@dataclass(frozen=True)
class AuditReport:
    bucket: str
    # The prefix audited, and the one asked for (they differ when the rule's input
    # prefix narrowed it).
    prefix: str
    requested_prefix: str
    deployment: Deployment
    sources: list[SourceFinding]
    orphans: list[OrphanFolder]

    def by_status(self, status: Status) -> list[SourceFinding]:
        return [finding for finding in self.sources if finding.status == status]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for finding in self.sources:
            counts[finding.status] += 1
        return {"sources": len(self.sources), **counts, "orphans": len(self.orphans)}

    @property
    def needs_attention(self) -> bool:
        """Whether anything is owed: a source to render or an orphan to remove
        (rejections are the pipeline working as meant)."""
        return bool(self.orphans) or any(finding.needs_render for finding in self.sources)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "requested_prefix": self.requested_prefix,
            "deployment": self.deployment.to_dict(),
            "counts": self.counts(),
            "needs_attention": self.needs_attention,
            "sources": [finding.to_dict() for finding in self.sources],
            "orphans": [orphan.to_dict() for orphan in self.orphans],
        }


# -- listing ---------------------------------------------------------------------------


def list_sources(store: ObjectStore, bucket: str, prefix: str) -> list[str]:
    """The keys of the current objects under `prefix` (every ListObjectsV2 page),
    without console folder markers (`photos/`), which are not uploads."""
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [
        str(item["Key"])
        for page in pages
        for item in page.get("Contents", [])
        if not str(item["Key"]).endswith("/")
    ]


@dataclass(frozen=True)
class Outputs:
    """The output bucket's objects under one prefix: sizes, and keys by folder."""

    sizes: dict[str, int] = field(default_factory=dict)
    folders: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, store: ObjectStore, bucket: str, prefix: str) -> Outputs:
        outputs = cls()
        pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                key = str(item["Key"])
                outputs.sizes[key] = int(item.get("Size", 0))
                folder = key.rpartition("/")[0] + "/"
                outputs.folders.setdefault(folder, []).append(key)
        return outputs


@dataclass(frozen=True)
class _Scope:
    bucket: str
    prefix: str
    requested_prefix: str
    sources: list[str]
    outputs: Outputs


def _scope(store: ObjectStore, deployment: Deployment, bucket: str, prefix: str) -> _Scope:
    if bucket != deployment.input_bucket:
        msg = (
            f"s3://{bucket} is not the input bucket of {deployment.state_machine}: "
            f"it renders uploads to s3://{deployment.input_bucket}"
        )
        raise OpsError(msg)
    scope = scope_prefix(prefix, deployment.input_prefix)
    # Sources first: a source uploaded and rendered between the two listings then
    # shows its outputs instead of an orphan-looking folder.
    sources = list_sources(store, bucket, scope)
    output = deployment.output
    outputs = Outputs.read(store, output.bucket, output_listing_prefix(output.prefix, scope))
    return _Scope(bucket, scope, prefix, sources, outputs)


def _pooled(function: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """`map(function, items)`, `workers` at a time, results in the order of `items`."""
    if workers <= 1 or len(items) <= 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(items), BATCH):
            yield from pool.map(function, items[start : start + BATCH])


# -- classification ------------------------------------------------------------------


def classify(
    store: ObjectStore, deployment: Deployment, bucket: str, key: str, outputs: Outputs
) -> SourceFinding | None:
    """What the outputs of the source `key` are; None when it no longer exists.

    `outputs` is a listing of the output bucket that covers the key's folder.
    """
    head = store.head(bucket, key)
    if head is None:
        return None
    output = deployment.output
    manifest_key = manifest_of(output, key)
    manifest = read_manifest(store, output, key) if manifest_key in outputs.sizes else None
    if not is_manifest(manifest):
        return _unrendered(store, deployment, bucket, head)
    found = _Found(head, manifest_key, manifest)
    if not describes(manifest, head):
        return found.finding(
            STALE,
            f"manifest of {_version(found.made_from)}; current: {_version(_source_facts(head))}",
        )
    made_with = fingerprint_of(manifest)
    if made_with != deployment.fingerprint:
        why = f"made with {made_with}" if made_with else "no settings fingerprint in the manifest"
        return found.finding(OUTDATED, f"{why}; deployed: {deployment.fingerprint}")
    problems = _problems(store, output, listed(manifest), outputs)
    if problems:
        return found.finding(INCOMPLETE, _problems_text(problems), problems)
    return found.finding(UP_TO_DATE, f"{len(listed(manifest))} renditions")


@dataclass(frozen=True)
class _Found:
    head: ObjectHead
    manifest_key: str
    manifest: dict[str, Any]

    @property
    def made_from(self) -> dict[str, Any]:
        source = self.manifest["source"]
        return {"version_id": source.get("version_id"), "etag": source.get("etag")}

    def finding(
        self, status: Status, detail: str, problems: Sequence[RenditionProblem] = ()
    ) -> SourceFinding:
        return SourceFinding(
            key=self.head.key,
            status=status,
            size=self.head.size,
            etag=self.head.etag,
            version_id=self.head.version_id,
            manifest=self.manifest_key,
            detail=detail,
            renditions=tuple(problems),
            made_from=self.made_from,
            made_with=fingerprint_of(self.manifest),
        )


def _source_facts(head: ObjectHead) -> dict[str, Any]:
    return {"version_id": head.version_id, "etag": head.etag}


def _version(facts: dict[str, Any]) -> str:
    if facts.get("version_id"):
        return f"version {facts['version_id']}"
    return f"ETag {facts.get('etag') or '(none)'}"


def _problems(
    store: ObjectStore, output: OutputLocation, expected: dict[str, int], outputs: Outputs
) -> list[RenditionProblem]:
    problems = []
    for key, size in sorted(expected.items()):
        found: int | None = outputs.sizes.get(key)
        if found != size:
            # The listing is older than the manifest just read: a render that finished
            # in between wrote files the listing cannot show. Ask S3 about this one.
            head = store.head(output.bucket, key)
            found = head.size if head is not None else None
        if found != size:
            problems.append(RenditionProblem(key, size, found))
    return problems


def _problems_text(problems: Sequence[RenditionProblem], shown: int = 3) -> str:
    """`large.jpg absent; thumb.webp 17 bytes, not 222`, the first few."""
    parts = []
    for problem in problems[:shown]:
        name = problem.key.rpartition("/")[2]
        if problem.found_bytes is None:
            parts.append(f"{name} absent")
        else:
            parts.append(f"{name} {problem.found_bytes} bytes, not {problem.expected_bytes}")
    if len(problems) > shown:
        parts.append(f"{len(problems) - shown} more")
    return "; ".join(parts)


def _unrendered(
    store: ObjectStore, deployment: Deployment, bucket: str, head: ObjectHead
) -> SourceFinding | None:
    """A source without a manifest: rejected, when validate would refuse it, else missing."""
    try:
        # Validate's own header checks, so the audit and the pipeline cannot disagree
        # about what is a rejection.
        inspect_header(store, SourceRef.found(bucket, head, None), head, deployment.validate)
    except ObjectGone:
        return None
    except ImageRejected as rejection:
        return SourceFinding(
            head.key,
            REJECTED,
            head.size,
            head.etag,
            head.version_id,
            detail=f"{rejection.code}: {rejection}",
            reason={"code": rejection.code, "message": str(rejection)},
        )
    return SourceFinding(
        head.key, MISSING, head.size, head.etag, head.version_id, detail="no manifest"
    )


def _classified(
    store: ObjectStore,
    deployment: Deployment,
    scope: _Scope,
    progress: Progress | None,
    workers: int,
) -> Iterator[SourceFinding]:
    def one(key: str) -> SourceFinding | None:
        finding = classify(store, deployment, scope.bucket, key, scope.outputs)
        if progress is not None:
            progress(1)
        return finding

    for finding in _pooled(one, scope.sources, workers):
        if finding is not None:
            yield finding


def audit_sources(
    store: ObjectStore,
    deployment: Deployment,
    bucket: str,
    prefix: str,
    *,
    progress: Progress | None = None,
    workers: int = WORKERS,
) -> Iterator[SourceFinding]:
    """Every source under s3://`bucket`/`prefix` with what its outputs are, in key order.

    `bucket` must be the deployment's input bucket (else `OpsError`); the prefix is
    narrowed to the rule's input prefix. Sources deleted while the audit runs are
    left out. `progress(1)` is called once per source looked at. Nothing is written.
    """
    scope = _scope(store, deployment, bucket, prefix)
    yield from _classified(store, deployment, scope, progress, workers)


def find_orphans(
    store: ObjectStore,
    output: OutputLocation,
    source_prefix: str,
    sources: set[str],
    outputs: Outputs,
    *,
    workers: int = WORKERS,
) -> list[OrphanFolder]:
    """Folders in `outputs` of keys under `source_prefix` that are not in `sources`,
    and folders of `sources` with files but no manifest."""
    candidates: list[tuple[str, str, list[str]]] = []
    for folder, keys in sorted(outputs.folders.items()):
        key = folder_source(output.prefix, folder)
        if key is None or not key.startswith(source_prefix):
            continue
        candidates.append((folder, key, keys))

    def orphan(candidate: tuple[str, str, list[str]]) -> OrphanFolder | None:
        folder, key, keys = candidate
        has_manifest = folder + MANIFEST_NAME in keys
        if key in sources:
            return None if has_manifest else OrphanFolder(folder, key, NO_MANIFEST, tuple(keys))
        # Another tool's manifest.json (a backfill's Map Run results) makes the
        # folder someone else's.
        if has_manifest and not is_manifest(read_manifest(store, output, key)):
            return None
        return OrphanFolder(folder, key, SOURCE_GONE, tuple(keys))

    return [found for found in _pooled(orphan, candidates, workers) if found is not None]


def audit(
    store: ObjectStore,
    deployment: Deployment,
    bucket: str,
    prefix: str,
    *,
    progress: Progress | None = None,
    workers: int = WORKERS,
) -> AuditReport:
    """`audit_sources` for every source under the prefix, and the orphan folders."""
    scope = _scope(store, deployment, bucket, prefix)
    findings = list(_classified(store, deployment, scope, progress, workers))
    orphans = find_orphans(
        store, deployment.output, scope.prefix, set(scope.sources), scope.outputs, workers=workers
    )
    return AuditReport(
        bucket=bucket,
        prefix=scope.prefix,
        requested_prefix=prefix,
        deployment=deployment,
        sources=findings,
        orphans=orphans,
    )


# -- terminal view -------------------------------------------------------------------

LABELS: dict[str, str] = {
    UP_TO_DATE: "up to date",
    MISSING: "missing",
    STALE: "stale",
    OUTDATED: "outdated",
    INCOMPLETE: "incomplete",
    REJECTED: "rejected",
    "orphans": "orphans",
}
MEANINGS: dict[str, str] = {
    UP_TO_DATE: "renditions of the current object, current settings",
    MISSING: "no manifest",
    STALE: "the manifest describes another version",
    OUTDATED: "made with other rendition settings",
    INCOMPLETE: "a listed rendition is absent or differs",
    REJECTED: "refused by validate (fine: nothing owed)",
    "orphans": "outputs without a source or without a manifest",
}
_STYLE: dict[str, str] = {
    UP_TO_DATE: "green",
    MISSING: "yellow",
    STALE: "yellow",
    OUTDATED: "yellow",
    INCOMPLETE: "red",
    REJECTED: "cyan",
    "orphans": "magenta",
}
DEFAULT_SHOWN = 10


def counts_table(report: AuditReport) -> Table:
    location = f"s3://{report.bucket}/{report.prefix}"
    table = Table(title=f"audit of {location}", title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("meaning", overflow="fold", style="dim")
    counts = report.counts()
    for name, label in LABELS.items():
        count = counts[name]
        style = _STYLE[name] if count else "dim"
        table.add_row(Text(label, style=style), Text(str(count), style=style), MEANINGS[name])
    return table


def _findings_table(title: str, rows: list[tuple[str, str]], total: int, name: str) -> Table:
    table = Table(title=title, title_justify="left", title_style=_STYLE[name], expand=True)
    table.add_column("key", overflow="fold", ratio=1)
    table.add_column("why", overflow="fold", ratio=1)
    for key, why in rows:
        table.add_row(Text(key), Text(why, style="dim"))
    if total > len(rows):
        table.add_row(Text(f"… and {total - len(rows)} more (--json lists them all)", "dim"), "")
    return table


def report_view(report: AuditReport, *, shown: int = DEFAULT_SHOWN) -> RenderableType:
    """The counts, then the first `shown` keys of each kind of finding."""
    parts: list[RenderableType] = []
    if report.prefix != report.requested_prefix:
        parts.append(
            Text(
                f"the rule only watches keys under {report.prefix!r}: audited that prefix",
                style="dim",
            )
        )
    parts.append(counts_table(report))
    for status in (*NEEDS_RENDER, REJECTED):
        findings = report.by_status(status)
        if findings:
            rows = [(f.key, f.detail) for f in findings[:shown]]
            title = f"{LABELS[status]} ({len(findings)})"
            parts.append(_findings_table(title, rows, len(findings), status))
    if report.orphans:
        rows = [(o.folder, o.detail) for o in report.orphans[:shown]]
        title = f"orphan folders ({len(report.orphans)})"
        parts.append(_findings_table(title, rows, len(report.orphans), "orphans"))
    parts.append(verdict(report))
    return Group(*parts)


def verdict(report: AuditReport) -> Text:
    if not report.needs_attention:
        return Text("nothing needs attention", style="bold green")
    owed = sum(1 for finding in report.sources if finding.needs_render)
    parts = []
    if owed:
        parts.append(f"{owed} source{'' if owed == 1 else 's'} to render")
    if report.orphans:
        count = len(report.orphans)
        parts.append(f"{count} orphan folder{'' if count == 1 else 's'} to remove")
    return Text("needs attention: " + ", ".join(parts), style="bold yellow")
