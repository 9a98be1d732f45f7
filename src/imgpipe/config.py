"""Configuration from the environment, parsed once at cold start.

Every function reads only the variables it needs; a missing or malformed variable raises
`ConfigError` naming it, so a bad deployment fails on its first invocation with a message
that says what to fix instead of rendering with a silent default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from imgpipe.errors import ConfigError
from imgpipe.specs import OUTPUT_FORMATS, SOURCE_FORMATS, RenderSettings, RenditionSpec

_RENDITION = re.compile(r"([a-z0-9][a-z0-9-]{0,31}):([0-9]+)(?:x([0-9]+))?(?::(cover))?")
_MAX_SIDE = 16384
_HEX_COLOUR = re.compile(r"#?([0-9a-fA-F]{6})")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class _Env:
    """Typed accessors over an environment mapping; errors name the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str, default: str | None = None) -> str:
        value = self._environ.get(name, default)
        if value is None:
            msg = f"environment variable {name} is required"
            raise ConfigError(msg)
        return value

    def integer(self, name: str, default: int | None = None, *, minimum: int = 0) -> int:
        raw = self._environ.get(name)
        if raw is None or raw == "":
            if default is None:
                msg = f"environment variable {name} is required"
                raise ConfigError(msg)
            return default
        try:
            value = int(raw)
        except ValueError:
            msg = f"environment variable {name}={raw!r} is not an integer"
            raise ConfigError(msg) from None
        if value < minimum:
            msg = f"environment variable {name}={value} is below the minimum {minimum}"
            raise ConfigError(msg)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._environ.get(name)
        if raw is None or raw == "":
            return default
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        msg = f"environment variable {name}={raw!r} is not a boolean (true/false)"
        raise ConfigError(msg)

    def bucket(self, name: str) -> str:
        value = self.text(name)
        if not _BUCKET_NAME.fullmatch(value):
            msg = f"environment variable {name}={value!r} is not a valid S3 bucket name"
            raise ConfigError(msg)
        return value

    def prefix(self, name: str) -> str:
        value = self.text(name, "")
        # Prefixes are joined verbatim to escaped keys; a prefix made of "." or ".."
        # segments would break the no-dot-segments promise of the output keys.
        if value and not value.endswith("/"):
            value += "/"
        if any(seg in ("", ".", "..") for seg in value.split("/")[:-1]):
            msg = f"environment variable {name}={value!r} has empty, '.' or '..' segments"
            raise ConfigError(msg)
        return value


@dataclass(frozen=True)
class Limits:
    """Budgets enforced from the header, before anything is decoded (docs/limits.md)."""

    max_bytes: int
    max_pixels: int
    max_frames: int
    allowed_formats: tuple[str, ...]
    # frames x width x height: reading an animation's frame count decodes every frame.
    max_animation_pixels: int = 1_000_000_000
    # Memory of the function that decodes (resize), and the largest rendition box,
    # which decides how far a JPEG can be decoded at reduced scale.
    decode_memory_mb: int = 1024
    largest_rendition: int = 2048
    # The animated-rendition cap, for the memory estimate: 0 when no rendition can move
    # (no WebP output, or the cap is 0).
    max_animated_pixels: int = 0
    # The boxes (width, height) of the cover renditions: a crop is cut from a window of
    # the image, so the decode it needs depends on the source's shape (budget.py).
    cover_boxes: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class OutputLocation:
    bucket: str
    prefix: str


@dataclass(frozen=True)
class ValidateConfig:
    limits: Limits
    state_table: str
    # Events naming any other bucket are refused: the pipeline owns one input bucket.
    input_bucket: str
    # A rejected upload clears the outputs of the versions before it.
    output: OutputLocation
    # What resize would make now (`RenderSettings.fingerprint`): a backfill leaves a
    # key alone when its manifest was made with the same.
    render_fingerprint: str = ""


@dataclass(frozen=True)
class ResizeConfig:
    limits: Limits
    output: OutputLocation
    render: RenderSettings
    cache_control: str
    state_table: str
    input_bucket: str
    # The rule's key prefix on the input bucket; with it, resize can tell whether its
    # outputs could trigger the pipeline again.
    input_prefix: str = ""


@dataclass(frozen=True)
class FolderConfig:
    """What store and forget need: where the outputs are, which bucket is the input."""

    output: OutputLocation
    state_table: str
    input_bucket: str


def _limits(env: _Env) -> Limits:
    raw_formats = env.text("ALLOWED_FORMATS", ",".join(SOURCE_FORMATS))
    formats = tuple(f.strip().upper() for f in raw_formats.split(",") if f.strip())
    unknown = [f for f in formats if f not in SOURCE_FORMATS]
    if unknown or not formats:
        msg = (
            f"environment variable ALLOWED_FORMATS={raw_formats!r}: "
            f"choose from {', '.join(SOURCE_FORMATS)}"
        )
        raise ConfigError(msg)
    renditions = env.text("RENDITIONS", "thumb:320,medium:1024,large:2048")
    largest = _largest_side(renditions)
    webp_output = "webp" in env.text("OUTPUT_FORMATS", "webp,jpeg").lower()
    return Limits(
        max_bytes=env.integer("MAX_SOURCE_BYTES", 50 * 1024 * 1024, minimum=1),
        max_pixels=env.integer("MAX_SOURCE_PIXELS", 80_000_000, minimum=1),
        max_frames=env.integer("MAX_FRAMES", 500, minimum=1),
        max_animation_pixels=env.integer("MAX_ANIMATION_PIXELS", 1_000_000_000, minimum=1),
        decode_memory_mb=env.integer("DECODE_MEMORY_MB", 1024, minimum=128),
        largest_rendition=largest,
        allowed_formats=formats,
        max_animated_pixels=_max_animated_pixels(env) if webp_output else 0,
        cover_boxes=_cover_boxes(renditions),
    )


def _max_animated_pixels(env: _Env) -> int:
    return env.integer("MAX_ANIMATED_RENDITION_PIXELS", 200_000_000, minimum=0)


def parse_renditions(
    sizes: str, formats: str, qualities: Mapping[str, int]
) -> tuple[RenditionSpec, ...]:
    """`thumb:320,medium:1024` x `webp,jpeg` -> one spec per (size, format) pair."""
    parsed_formats: list[str] = []
    for raw in formats.split(","):
        fmt = raw.strip().upper()
        if fmt == "JPG":
            fmt = "JPEG"
        if fmt not in OUTPUT_FORMATS:
            msg = (
                f"environment variable OUTPUT_FORMATS={formats!r}: {raw.strip()!r} is not "
                f"one of {', '.join(f.lower() for f in OUTPUT_FORMATS)}"
            )
            raise ConfigError(msg)
        if fmt not in parsed_formats:
            parsed_formats.append(fmt)
    if not parsed_formats:
        msg = "environment variable OUTPUT_FORMATS is empty"
        raise ConfigError(msg)

    specs: list[RenditionSpec] = []
    seen: set[str] = set()
    for item in sizes.split(","):
        name, size, height, cover = _rendition(item.strip(), sizes)
        if name in seen or name == "manifest":
            msg = (
                f"environment variable RENDITIONS={sizes!r}: "
                f"name {name!r} is used twice or reserved"
            )
            raise ConfigError(msg)
        seen.add(name)
        specs.extend(
            RenditionSpec(name, size, fmt, qualities[fmt], cover=cover, height=height)
            for fmt in parsed_formats
        )
    return tuple(specs)


def _rendition(item: str, sizes: str) -> tuple[str, int, int, bool]:
    """`name:size`, `name:size:cover` or `name:WxH:cover` -> name, size, height, cover
    (height 0 for a square or a fit)."""
    match = _RENDITION.fullmatch(item)
    if match is None:
        msg = (
            f"environment variable RENDITIONS={sizes!r}: {item!r} is not name:size, "
            "name:size:cover or name:WxH:cover (name: lowercase letters, digits, '-')"
        )
        raise ConfigError(msg)
    name, width_text, height_text, cover = match.groups()
    if height_text is not None and cover is None:
        msg = (
            f"environment variable RENDITIONS={sizes!r}: {item!r} has a WxH box, which "
            "only a cover rendition takes (name:WxH:cover)"
        )
        raise ConfigError(msg)
    sides = [int(width_text)] + ([int(height_text)] if height_text is not None else [])
    for side in sides:
        if not 1 <= side <= _MAX_SIDE:
            msg = f"environment variable RENDITIONS={sizes!r}: size {side} is not in 1..{_MAX_SIDE}"
            raise ConfigError(msg)
    height = sides[1] if len(sides) == 2 and sides[1] != sides[0] else 0
    return name, sides[0], height, cover is not None


def _largest_side(sizes: str) -> int:
    """The longest side any rendition can have, before RENDITIONS is checked in full
    (validate's memory estimate; a bad entry fails where the renditions are parsed)."""
    sides = [
        int(side)
        for match in (_RENDITION.fullmatch(item.strip()) for item in sizes.split(","))
        if match is not None
        for side in match.group(2, 3)
        if side is not None
    ]
    return max(sides, default=2048)


def _cover_boxes(sizes: str) -> tuple[tuple[int, int], ...]:
    """The cover renditions' boxes, read as leniently as `_largest_side`."""
    boxes = []
    for item in sizes.split(","):
        match = _RENDITION.fullmatch(item.strip())
        if match is not None and match.group(4):
            width = int(match.group(2))
            boxes.append((width, int(match.group(3) or width)))
    return tuple(boxes)


def _background(env: _Env) -> tuple[int, int, int]:
    raw = env.text("BACKGROUND_COLOR", "#ffffff")
    match = _HEX_COLOUR.fullmatch(raw.strip())
    if not match:
        msg = f"environment variable BACKGROUND_COLOR={raw!r} is not a #rrggbb colour"
        raise ConfigError(msg)
    value = int(match.group(1), 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def _quality(env: _Env, name: str, default: int) -> int:
    value = env.integer(name, default, minimum=1)
    if value > 100:
        msg = f"environment variable {name}={value} is above 100"
        raise ConfigError(msg)
    return value


def _output(env: _Env) -> OutputLocation:
    return OutputLocation(env.bucket("OUTPUT_BUCKET"), env.prefix("OUTPUT_PREFIX"))


def validate_config(environ: Mapping[str, str] | None = None) -> ValidateConfig:
    env = _Env(os.environ if environ is None else environ)
    limits = _limits(env)
    return ValidateConfig(
        limits=limits,
        state_table=env.text("STATE_TABLE"),
        input_bucket=env.bucket("INPUT_BUCKET"),
        output=_output(env),
        render_fingerprint=_render_settings(env, limits).fingerprint,
    )


def _render_settings(env: _Env, limits: Limits) -> RenderSettings:
    """The rendition set, read the same way by resize (which makes it) and validate
    (which compares a manifest's fingerprint with it)."""
    qualities = {
        "JPEG": _quality(env, "JPEG_QUALITY", 82),
        "WEBP": _quality(env, "WEBP_QUALITY", 80),
        "AVIF": _quality(env, "AVIF_QUALITY", 60),
        "PNG": 100,
    }
    renditions = parse_renditions(
        env.text("RENDITIONS", "thumb:320,medium:1024,large:2048"),
        env.text("OUTPUT_FORMATS", "webp,jpeg"),
        qualities,
    )
    return RenderSettings(
        renditions=renditions,
        background=_background(env),
        allow_upscale=env.boolean("ALLOW_UPSCALE", default=False),
        max_pixels=limits.max_pixels,
        max_frames=limits.max_frames,
        max_animation_pixels=limits.max_animation_pixels,
        max_animated_pixels=_max_animated_pixels(env),
    )


def resize_config(environ: Mapping[str, str] | None = None) -> ResizeConfig:
    env = _Env(os.environ if environ is None else environ)
    limits = _limits(env)
    return ResizeConfig(
        limits=limits,
        output=_output(env),
        render=_render_settings(env, limits),
        cache_control=env.text("CACHE_CONTROL", "public, max-age=31536000"),
        state_table=env.text("STATE_TABLE"),
        input_bucket=env.bucket("INPUT_BUCKET"),
        input_prefix=env.text("INPUT_KEY_PREFIX", ""),
    )


def folder_config(environ: Mapping[str, str] | None = None) -> FolderConfig:
    """Store's and forget's configuration (they differ only in what they do with it)."""
    env = _Env(os.environ if environ is None else environ)
    return FolderConfig(
        output=_output(env),
        state_table=env.text("STATE_TABLE"),
        input_bucket=env.bucket("INPUT_BUCKET"),
    )
