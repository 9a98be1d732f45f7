"""What `imgpipe demo` and `imgpipe local up` write for people and scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imgpipe.cli import _summarise, write_ready_file


def test_given_animated_webp_beside_still_jpeg_when_summarised_then_frames_are_named() -> None:
    renditions = [
        {"name": "thumb", "width": 320, "height": 192, "format": "WEBP", "frames": 24},
        {"name": "thumb", "width": 320, "height": 192, "format": "JPEG", "frames": 1},
        # a record from before animated renditions has no frames key: a still
        {"name": "large", "width": 400, "height": 240, "format": "JPEG"},
    ]
    assert _summarise(renditions) == "thumb 320x192 webp (24 frames)+jpeg\nlarge 400x240 jpeg"


def test_the_ready_file_appears_only_complete(tmp_path: Path, monkeypatch: Any) -> None:
    # Given a waiter that looks at the ready file whenever anything is written
    ready = tmp_path / "ready.json"
    seen: list[str] = []
    write_text = Path.write_text

    def watched(self: Path, *args: Any, **kwargs: Any) -> int:
        seen.append(ready.read_text() if ready.exists() else "<absent>")
        written = write_text(self, *args, **kwargs)
        seen.append(ready.read_text() if ready.exists() else "<absent>")
        return written

    monkeypatch.setattr(Path, "write_text", watched)
    # When local up writes it
    write_ready_file(ready, {"endpoint": "http://127.0.0.1:4566"})
    # Then the waiter never saw it half-written: absent, then whole
    assert seen == ["<absent>", "<absent>"]
    assert json.loads(ready.read_text()) == {"endpoint": "http://127.0.0.1:4566"}
    assert list(tmp_path.iterdir()) == [ready]
