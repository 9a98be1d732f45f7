"""The output-key contract: predictable, injective, no dot segments, within S3's limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgpipe.errors import KeyNotRenderable
from imgpipe.keys import (
    escape_key,
    manifest_key,
    output_folder,
    rendition_key,
    unescape_key,
)

# Keys built from the characters that make key handling hard.
tricky_segments = st.one_of(
    st.sampled_from(["", ".", "..", "...", "%", "%2E", "%2F", "%25", "+", " ", "a b", "ü"]),
    st.text(alphabet=st.sampled_from("ab.%+ /2EF5é😀"), max_size=8),
)
tricky_keys = st.lists(tricky_segments, min_size=1, max_size=6).map("/".join)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("photos/cat.jpg", "photos/cat.jpg/thumb.webp"),
        ("cat.jpg", "cat.jpg/thumb.webp"),
        ("my photos/été 2024+1.jpg", "my photos/été 2024+1.jpg/thumb.webp"),
        ("a/../b.jpg", "a/%2E%2E/b.jpg/thumb.webp"),
        ("./a.jpg", "%2E/a.jpg/thumb.webp"),
        ("a//b.jpg", "a/%2F/b.jpg/thumb.webp"),
        ("100%.jpg", "100%25.jpg/thumb.webp"),
        ("x/%2E%2E/y.jpg", "x/%252E%252E/y.jpg/thumb.webp"),
    ],
)
def test_documented_examples_map_as_the_readme_says(source: str, expected: str) -> None:
    assert rendition_key("", source, "thumb.webp") == expected


def test_prefix_and_manifest_sit_in_the_same_folder() -> None:
    # Given a prefix, When keys are made, Then renditions and manifest share one folder
    assert output_folder("out/", "a/cat.jpg") == "out/a/cat.jpg/"
    assert manifest_key("out/", "a/cat.jpg") == "out/a/cat.jpg/manifest.json"


def test_same_name_in_other_folder_or_format_never_collides() -> None:
    keys = {rendition_key("", k, "thumb.webp") for k in ("a/cat.jpg", "a/cat.png", "b/cat.jpg")}
    assert len(keys) == 3


@given(tricky_keys, tricky_keys)
def test_mapping_is_injective(first: str, second: str) -> None:
    if first != second:
        assert escape_key(first) != escape_key(second)


@given(tricky_keys)
def test_mapping_round_trips(key: str) -> None:
    assert unescape_key(escape_key(key)) == key


@given(tricky_keys)
def test_no_output_key_has_dot_or_empty_segments(key: str) -> None:
    out = rendition_key("renditions/", key, "thumb.webp")
    assert all(segment not in ("", ".", "..") for segment in out.split("/"))


def test_key_too_long_for_s3_is_rejected_with_a_reason() -> None:
    # Given a 1020-byte source key, When its manifest key is made, Then it cannot fit
    with pytest.raises(KeyNotRenderable, match="1024"):
        manifest_key("", "k" * 1020)
