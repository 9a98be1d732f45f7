"""The output-key rule (a product contract; see docs/output-keys.md).

Every source key becomes a folder under the output prefix; its renditions and its
manifest are files in that folder:

    photos/cat.jpg  ->  <prefix>photos/cat.jpg/thumb.webp
                        <prefix>photos/cat.jpg/manifest.json

The folder name is the source key with each `/`-separated segment escaped:

* `%` becomes `%25` (so the escapes below cannot be forged by a source key);
* a segment that is exactly `.` or `..` becomes `%2E` or `%2E%2E`;
* an empty segment (from `a//b`, a leading `/` or a trailing `/`) becomes `%2F`.

Everything else (spaces, `+`, unicode) is kept as it is, so ordinary keys stay readable
and map one to one onto their CDN paths. The mapping is injective: `unescape_key` is
its inverse. Keeping the source extension in the folder name is what separates
`a/cat.jpg` from `a/cat.png`.
"""

from __future__ import annotations

from imgpipe.errors import KeyNotRenderable

MANIFEST_NAME = "manifest.json"
# S3 limits keys to 1024 bytes of UTF-8.
MAX_KEY_BYTES = 1024
_SPECIAL_SEGMENTS = {".": "%2E", "..": "%2E%2E", "": "%2F"}
_SPECIAL_ESCAPES = {escaped: raw for raw, escaped in _SPECIAL_SEGMENTS.items()}


def _escape_segment(segment: str) -> str:
    special = _SPECIAL_SEGMENTS.get(segment)
    if special is not None:
        return special
    return segment.replace("%", "%25")


def _unescape_segment(segment: str) -> str:
    special = _SPECIAL_ESCAPES.get(segment)
    if special is not None:
        return special
    return segment.replace("%25", "%")


def escape_key(source_key: str) -> str:
    """The folder name for a source key (no prefix, no trailing slash)."""
    return "/".join(_escape_segment(seg) for seg in source_key.split("/"))


def unescape_key(folder: str) -> str:
    """Inverse of `escape_key`."""
    return "/".join(_unescape_segment(seg) for seg in folder.split("/"))


def output_folder(prefix: str, source_key: str) -> str:
    """`<prefix><escaped key>/`, the folder holding everything made from the key."""
    return f"{prefix}{escape_key(source_key)}/"


def rendition_key(prefix: str, source_key: str, filename: str) -> str:
    return _checked(output_folder(prefix, source_key) + filename)


def manifest_key(prefix: str, source_key: str) -> str:
    return _checked(output_folder(prefix, source_key) + MANIFEST_NAME)


def _checked(key: str) -> str:
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        msg = f"output key would be {size} bytes; S3 allows {MAX_KEY_BYTES}"
        raise KeyNotRenderable(msg)
    return key
