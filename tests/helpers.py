"""Small image builders shared by the tests (fixtures are generated, never copied in)."""

from __future__ import annotations

import io

from PIL import Image


def jpeg(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG")
    return out.getvalue()
