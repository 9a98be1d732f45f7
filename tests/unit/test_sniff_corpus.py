"""`imgpipe.sniff` on real files from other projects' test suites.

Skipped where the shared corpus folder is absent (users' machines do not have it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imgpipe.sniff import BytesSource, sniff
from sniff_cases import CountingSource, pillow_view, sniff_view


def corpus_dir() -> Path:
    override = os.environ.get("IMGPIPE_CORPUS")
    return Path(override) if override else Path(__file__).resolve().parents[3] / "shared" / "corpus"


CORPUS = corpus_dir()
CORPUS_FILES = (
    sorted(p for p in CORPUS.iterdir() if p.is_file() and p.suffix.lower() != ".tsv")
    if CORPUS.is_dir()
    else []
)
NO_CORPUS = pytest.param(
    None, marks=pytest.mark.skip(reason=f"no image corpus at {CORPUS}"), id="no-corpus"
)


def manifest_rows() -> list[dict[str, str]]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    header, *rows = manifest.read_text(encoding="utf-8").splitlines()
    names = header.split("\t")
    return [dict(zip(names, row.split("\t"), strict=False)) for row in rows if row.strip()]


@pytest.mark.corpus
@pytest.mark.parametrize(
    "path", [pytest.param(p, id=p.name) for p in CORPUS_FILES] or [NO_CORPUS]
)  # fmt: skip
def test_given_corpus_image_when_sniffed_then_facts_match_pillow(path: Path) -> None:
    # Given a real-world file from another project's test suite
    data = path.read_bytes()
    # When
    facts = sniff(CountingSource(data))
    # Then sniff agrees with Pillow (p05, catalogued as corrupt, is damaged in its pixel
    # data, not its header: both read the same facts)
    assert sniff_view(facts) == pillow_view(data)


@pytest.mark.corpus
@pytest.mark.parametrize(
    "row", [pytest.param(r, id=r["file"]) for r in manifest_rows()] or [NO_CORPUS]
)  # fmt: skip
def test_given_corpus_manifest_when_sniffed_then_facts_match_the_catalogue(
    row: dict[str, str],
) -> None:
    # Given the catalogue's description of a corpus file
    notes = dict(n.split("=", 1) for n in row.get("notes", "").split(";") if "=" in n)
    # When
    facts = sniff(BytesSource((CORPUS / row["file"]).read_bytes()))
    # Then format, size, mode, frames and orientation are as catalogued
    assert (facts.format, facts.mode, facts.width, facts.height) == (
        row["format"], row["mode"], int(row["width"]), int(row["height"]),
    )  # fmt: skip
    assert facts.frames == int(notes.get("frames", "1"))
    assert facts.orientation == int(notes.get("exif_orientation", facts.orientation))
    if "icc" in notes:
        assert facts.icc_profile
