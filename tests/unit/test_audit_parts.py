"""The pure parts of `imgpipe audit`: where to look, what counts as ours, the ASL
lookup of the deployed functions, and the report's counts, JSON and terminal view.

Classification against real buckets and real pipeline outputs is tested in
tests/integration/test_audit.py.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws
from rich.console import Console

from imgpipe.config import OutputLocation, validate_config
from imgpipe.keys import output_folder
from imgpipe.ops import audit
from imgpipe.ops.audit import AuditReport, OrphanFolder, RenditionProblem, SourceFinding
from imgpipe.ops.deployment import (
    Deployment,
    function_environment,
    split_qualifier,
    task_function,
)
from imgpipe.ops.errors import OpsError

ROOT = Path(__file__).resolve().parents[2]

tricky_segments = st.one_of(
    st.sampled_from(["", ".", "..", "...", "%", "%2E", "%2F", "%25", "+", " ", "ü"]),
    st.text(alphabet=st.sampled_from("ab.%+ /2EF5é"), max_size=6),
)
tricky_keys = st.lists(tricky_segments, min_size=1, max_size=5).map("/".join)
output_prefixes = st.sampled_from(["", "renditions/", "a/b/"])


# -- where to look ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/photos/", ("bucket", "photos/")),
        ("s3://bucket/photos/cat", ("bucket", "photos/cat")),
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://bucket/a b+c/%2E", ("bucket", "a b+c/%2E")),
    ],
)
def test_s3_prefix_is_kept_as_typed(uri: str, expected: tuple[str, str]) -> None:
    assert audit.parse_s3_prefix(uri) == expected


@pytest.mark.parametrize("uri", ["bucket/photos", "s3://", "s3:///photos", "https://x/y"])
def test_not_an_s3_prefix_is_an_ops_error(uri: str) -> None:
    with pytest.raises(OpsError, match="expected s3://bucket/prefix"):
        audit.parse_s3_prefix(uri)


def test_requested_prefix_is_narrowed_to_the_rules_input_prefix() -> None:
    # Given a rule watching uploads/
    assert audit.scope_prefix("uploads/cats/", "uploads/") == "uploads/cats/"
    assert audit.scope_prefix("", "uploads/") == "uploads/"
    assert audit.scope_prefix("up", "uploads/") == "uploads/"
    assert audit.scope_prefix("photos/", "") == "photos/"
    # Then a prefix wholly outside it is refused, naming the rule's prefix
    with pytest.raises(OpsError, match="'uploads/'"):
        audit.scope_prefix("photos/", "uploads/")


@pytest.mark.parametrize(
    ("output_prefix", "source_prefix", "expected"),
    [
        ("", "photos/", "photos/"),
        ("", "photos/ca", "photos/ca"),
        ("r/", "photos/ca", "r/photos/ca"),
        ("", "", ""),
        ("", "100%", "100%25"),
        # The last segment may still become `.`, `..` or empty, which escape
        # differently: list at the last slash.
        ("", "a/.", "a/"),
        ("", "a/..", "a/"),
        ("", ".", ""),
        ("", "a//", "a/%2F/"),
        ("", "./b", "%2E/b"),
    ],
)
def test_output_listing_prefix_examples(
    output_prefix: str, source_prefix: str, expected: str
) -> None:
    assert audit.output_listing_prefix(output_prefix, source_prefix) == expected


@given(output_prefixes, tricky_keys, st.integers(min_value=0, max_value=40))
def test_every_folder_of_a_key_under_the_prefix_is_under_the_listing_prefix(
    output_prefix: str, key: str, cut: int
) -> None:
    # Given any source key and any prefix of it
    source_prefix = key[: min(cut, len(key))]
    # Then the key's output folder starts with the output listing prefix
    listing = audit.output_listing_prefix(output_prefix, source_prefix)
    assert output_folder(output_prefix, key).startswith(listing)


@given(output_prefixes, tricky_keys)
def test_folder_source_inverts_output_folder(output_prefix: str, key: str) -> None:
    assert audit.folder_source(output_prefix, output_folder(output_prefix, key)) == key


@pytest.mark.parametrize(
    "folder",
    [
        "/",  # a key at the bucket's top level has no folder
        "a/%41/",  # no source key escapes to a bare %41
        "a/./",  # nor to a `.` segment
        "other/x.jpg/",  # outside the output prefix "r/"
    ],
)
def test_folders_no_source_key_maps_to_are_not_ours(folder: str) -> None:
    prefix = "r/" if folder.startswith("other/") else ""
    assert audit.folder_source(prefix, folder) is None


@pytest.mark.parametrize(
    ("document", "ours"),
    [
        ({"schema": "imgpipe.manifest/1", "source": {"key": "a.jpg"}, "renditions": []}, True),
        ({"DestinationBucket": "b", "MapRunArn": "arn:x", "ResultFiles": {}}, False),
        ({"source": "a.jpg"}, False),
        ([{"source": {}}], False),
        (None, False),
    ],
)
def test_only_documents_with_a_source_object_are_manifests(document: Any, ours: bool) -> None:
    assert audit.is_manifest(document) is ours


def test_fingerprint_of_a_manifest() -> None:
    assert audit.fingerprint_of({"settings": {"fingerprint": "sha256:ab"}}) == "sha256:ab"
    assert audit.fingerprint_of({"settings": {"fingerprint": ""}}) is None
    assert audit.fingerprint_of({"settings": "sha256:ab"}) is None
    assert audit.fingerprint_of({}) is None


# -- the deployed functions, from the ASL -----------------------------------------------


def _asl(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ROOT / "statemachine" / name).read_text())
    return document


@pytest.mark.parametrize("name", ["pipeline.asl.json", "backfill.asl.json"])
def test_resize_and_validate_functions_are_found_in_both_machines(name: str) -> None:
    # Given the deployed definitions (before SAM substitutes the ARNs)
    definition = _asl(name)
    # Then the Resize and Validate tasks name their functions, nested in a Map or not
    assert task_function(definition, "Resize") == "${ResizeFunctionArn}"
    assert task_function(definition, "Validate") == "${ValidateFunctionArn}"


def test_function_is_found_in_parallel_branches_and_plain_resource_form() -> None:
    lam = "arn:aws:lambda:eu-west-1:123456789012:function:resize:live"
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Noop", "States": {"Noop": {"Type": "Pass", "End": True}}},
                    {"StartAt": "Resize", "States": {"Resize": {"Type": "Task", "Resource": lam}}},
                ],
                "End": True,
            }
        },
    }
    assert task_function(definition, "Resize") == lam


def test_machine_without_the_task_is_an_error_that_says_which_machines_fit() -> None:
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    with pytest.raises(OpsError, match="has no Resize task: pass the imgpipe pipeline"):
        task_function(definition, "Resize", "arn:aws:states:::stateMachine:other")
    passing = {"StartAt": "Resize", "States": {"Resize": {"Type": "Task", "Resource": "x"}}}
    with pytest.raises(OpsError, match="names no Lambda function"):
        task_function(passing, "Resize")


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (
            "arn:aws:lambda:us-east-1:123456789012:function:resize:live",
            ("arn:aws:lambda:us-east-1:123456789012:function:resize", "live"),
        ),
        (
            "arn:aws:lambda:us-east-1:123456789012:function:resize",
            ("arn:aws:lambda:us-east-1:123456789012:function:resize", None),
        ),
        ("resize", ("resize", None)),
    ],
)
def test_split_qualifier(arn: str, expected: tuple[str, str | None]) -> None:
    assert split_qualifier(arn) == expected


# -- the report ------------------------------------------------------------------------


def _deployment() -> Deployment:
    return Deployment(
        state_machine="arn:aws:states:us-east-1:123456789012:stateMachine:imagepipeline",
        input_bucket="in-bucket",
        input_prefix="",
        output=OutputLocation("out-bucket", ""),
        fingerprint="sha256:1111222233334444",
        validate=validate_config(
            {"STATE_TABLE": "t", "INPUT_BUCKET": "in-bucket", "OUTPUT_BUCKET": "out-bucket"}
        ),
        resize_function="arn:aws:lambda:us-east-1:123456789012:function:resize:live",
        validate_function="arn:aws:lambda:us-east-1:123456789012:function:validate:live",
    )


def _finding(key: str, status: audit.Status, **extra: Any) -> SourceFinding:
    return SourceFinding(key, status, 10, "etag", "v1", **extra)


def _report(sources: list[SourceFinding], orphans: list[OrphanFolder] | None = None) -> AuditReport:
    return AuditReport("in-bucket", "photos/", "photos/", _deployment(), sources, orphans or [])


def test_rejected_and_up_to_date_need_no_attention() -> None:
    report = _report(
        [
            _finding("photos/a.jpg", "up_to_date"),
            _finding("photos/b.jpg", "rejected", reason={"code": "CorruptImage", "message": "x"}),
        ]
    )
    assert report.needs_attention is False
    assert report.counts() == {
        "sources": 2,
        "up_to_date": 1,
        "missing": 0,
        "stale": 0,
        "outdated": 0,
        "incomplete": 0,
        "rejected": 1,
        "orphans": 0,
    }


@pytest.mark.parametrize("status", ["missing", "stale", "outdated", "incomplete"])
def test_each_finding_needs_attention(status: audit.Status) -> None:
    finding = _finding("photos/a.jpg", status)
    assert finding.needs_render
    assert _report([finding]).needs_attention


def test_an_orphan_alone_needs_attention() -> None:
    orphan = OrphanFolder("photos/gone.jpg/", "photos/gone.jpg", "source_gone", ("k",))
    report = _report([_finding("photos/a.jpg", "up_to_date")], [orphan])
    assert report.needs_attention
    assert report.counts()["orphans"] == 1


def test_json_of_a_finding_and_an_orphan() -> None:
    finding = _finding(
        "photos/a.jpg",
        "incomplete",
        manifest="photos/a.jpg/manifest.json",
        renditions=(RenditionProblem("photos/a.jpg/thumb.webp", 120, None),),
        made_from={"version_id": "v1", "etag": "etag"},
        made_with="sha256:1111222233334444",
    )
    orphan = OrphanFolder("photos/gone.jpg/", "photos/gone.jpg", "source_gone", ("a", "b"))
    document = json.loads(json.dumps(_report([finding], [orphan]).to_dict()))
    assert document["sources"] == [
        {
            "key": "photos/a.jpg",
            "status": "incomplete",
            "size": 10,
            "etag": "etag",
            "version_id": "v1",
            "manifest": "photos/a.jpg/manifest.json",
            "detail": "",
            "reason": None,
            "renditions": [
                {"key": "photos/a.jpg/thumb.webp", "expected_bytes": 120, "found_bytes": None}
            ],
            "made_from": {"version_id": "v1", "etag": "etag"},
            "made_with": "sha256:1111222233334444",
        }
    ]
    assert document["orphans"] == [
        {
            "folder": "photos/gone.jpg/",
            "source_key": "photos/gone.jpg",
            "reason": "source_gone",
            "keys": ["a", "b"],
        }
    ]
    assert document["deployment"]["fingerprint"] == "sha256:1111222233334444"
    assert document["needs_attention"] is True


def _render(report: AuditReport, width: int = 80, shown: int = 2) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(audit.report_view(report, shown=shown))
    return console.export_text()


def test_view_lists_the_first_keys_and_counts_the_rest_within_80_columns() -> None:
    # Given 5 missing sources, one with a long key, and 2 orphans
    long_key = "photos/" + "very-long-folder-name/" * 6 + "cat.jpg"
    sources = [_finding(f"photos/{n}.jpg", "missing", detail="no manifest") for n in range(4)]
    sources.append(_finding(long_key, "missing", detail="no manifest"))
    orphans = [
        OrphanFolder(f"photos/gone{n}.jpg/", f"photos/gone{n}.jpg", "source_gone", ("k",))
        for n in range(2)
    ]
    text = _render(_report(sources, orphans), shown=2)
    lines = text.splitlines()
    # Then it fits 80 columns, shows 2 keys and says how many more
    assert max(len(line) for line in lines) <= 80
    assert "photos/0.jpg" in text
    assert "photos/1.jpg" in text
    assert "photos/2.jpg" not in text
    assert "… and 3 more (--json lists them all)" in text
    assert "missing (5)" in text
    assert "orphan folders (2)" in text
    assert "photos/gone1.jpg/" in text
    assert "needs attention: 5 sources to render, 2 orphan folders to remove" in text


def test_view_of_a_clean_prefix_says_so() -> None:
    report = _report(
        [
            _finding("photos/a.jpg", "up_to_date"),
            _finding(
                "photos/b.jpg",
                "rejected",
                detail="UnsupportedFormat: not an image",
                reason={"code": "UnsupportedFormat", "message": "not an image"},
            ),
        ]
    )
    text = _render(report)
    assert "nothing needs attention" in text
    assert "UnsupportedFormat: not an image" in text
    assert "photos/a.jpg" not in text  # up-to-date keys are counted, not listed


def test_view_says_when_the_rules_prefix_narrowed_the_audit() -> None:
    report = AuditReport("in-bucket", "uploads/", "", _deployment(), [], [])
    assert "the rule only watches keys under 'uploads/'" in _render(report)


def test_function_environment_falls_back_to_the_function_when_the_alias_is_not_published() -> None:
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return event\n")
        lam = boto3.client("lambda", region_name="us-east-1")
        arn = lam.create_function(
            FunctionName="resize",
            Runtime="python3.13",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": code.getvalue()},
            Environment={"Variables": {"RENDITIONS": "thumb:320"}},
        )["FunctionArn"]
        # A deployer that substituted `ResizeFunction.Alias` without publishing it
        assert function_environment(lam, f"{arn}:live") == {"RENDITIONS": "thumb:320"}
        with pytest.raises(OpsError, match="no such Lambda function"):
            function_environment(lam, arn.replace(":resize", ":missing") + ":live")
