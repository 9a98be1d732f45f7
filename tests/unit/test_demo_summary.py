"""The demo table's rendition column (`imgpipe demo`)."""

from __future__ import annotations

from imgpipe.cli import _summarise


def test_given_animated_webp_beside_still_jpeg_when_summarised_then_frames_are_named() -> None:
    renditions = [
        {"name": "thumb", "width": 320, "height": 192, "format": "WEBP", "frames": 24},
        {"name": "thumb", "width": 320, "height": 192, "format": "JPEG", "frames": 1},
        # a record from before animated renditions has no frames key: a still
        {"name": "large", "width": 400, "height": 240, "format": "JPEG"},
    ]
    assert _summarise(renditions) == "thumb 320x192 webp (24 frames)+jpeg\nlarge 400x240 jpeg"
