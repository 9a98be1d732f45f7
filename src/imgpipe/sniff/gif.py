"""GIF: the logical screen, the first frame's palette and transparency, and the frames.

Frames can only be counted by walking every sub-block, so a GIF is read to its end (or
to the frame after `frame_limit`). Stray bytes between blocks are skipped as Pillow
does (up to a budget), and a missing trailer is accepted. `has_alpha` is the first
frame's transparency (later frames' transparent index only lets the previous frame
show through). `bit_depth` is 8 (the palette's sample depth).
"""

from __future__ import annotations

import struct
from typing import Final

from imgpipe.errors import CorruptImage
from imgpipe.sniff._reader import MAX_STEPS, Reader, make_facts
from imgpipe.specs import ImageFacts

# Top-level GIF blocks (extensions and image descriptors): ~3 per frame.
_MAX_GIF_BLOCKS: Final = 200_000
_MAX_GIF_JUNK: Final = 64 * 1024
_GREY_RAMP: Final = bytes(i for i in range(256) for _ in range(3))


def _palette_needed(palette: bytes) -> bool:
    # Pillow opens a GIF whose palette is the identity grey ramp as mode "L".
    return palette != _GREY_RAMP[: len(palette)]


def _skip_sub_blocks(r: Reader, pos: int) -> tuple[int, bytes]:
    """Skip a sub-block chain; return the offset after it and its first sub-block.

    Chains are scanned a window at a time: a GIF's image data is a chain of up to
    255-byte sub-blocks, and a call per sub-block would dominate the walk.
    """
    first: bytes | None = None
    for _ in range(MAX_STEPS):
        window = r.window(pos, "GIF sub-block")
        i = steps = 0
        while i < len(window):
            size = window[i]
            if size == 0:
                r.spend(steps, "GIF")
                return pos + i + 1, first or b""
            if first is None:
                first = r.take(pos + i + 1, size, "GIF sub-block")
            i += 1 + size
            steps += 1
        r.spend(steps, "GIF")
        pos += i
    msg = "GIF sub-block chain is too long"
    raise CorruptImage(msg)


def sniff_gif(r: Reader, frame_cap: int) -> ImageFacts:
    width, height, flags = struct.unpack("<HHB", r.take(6, 5, "GIF screen descriptor"))
    pos = 13
    global_palette = False
    if flags & 0x80:
        size = 3 << ((flags & 7) + 1)
        global_palette = _palette_needed(r.take(pos, size, "GIF global colour table"))
        pos += size
    frames = 0
    mode = "L"
    has_alpha = False
    junk = 0
    for _ in range(_MAX_GIF_BLOCKS):
        if pos >= r.size:  # no trailer: Pillow also just stops at the end of the file
            break
        intro = r.u8(pos, "GIF block")
        if intro == 0x3B:  # trailer
            break
        if intro == 0x21:  # extension
            label = r.u8(pos + 1, "GIF extension")
            pos, first = _skip_sub_blocks(r, pos + 2)
            # Only the first frame's transparency shows: later frames' transparent index
            # is how encoders leave the previous frame showing through (Pillow, too,
            # reports alpha from the first frame).
            if label == 0xF9 and frames == 0 and len(first) >= 4 and first[0] & 1:
                has_alpha = True
            continue
        if intro == 0x2C:  # image descriptor
            frames += 1
            if frames > frame_cap:
                break
            x, y, w, h, dflags = struct.unpack("<HHHHB", r.take(pos + 1, 9, "GIF image"))
            pos += 10
            local_palette: bool | None = None
            if dflags & 0x80:
                size = 3 << ((dflags & 7) + 1)
                if frames == 1:
                    local_palette = _palette_needed(r.take(pos, size, "GIF colour table"))
                pos += size
            if frames == 1:
                # Pillow grows the canvas to fit the first frame, and takes the mode from
                # the palette that frame uses.
                width, height = max(width, x + w), max(height, y + h)
                palette = local_palette if local_palette is not None else global_palette
                mode = "P" if palette else "L"
            r.u8(pos, "GIF LZW code size")
            pos, _ = _skip_sub_blocks(r, pos + 1)
            continue
        # Pillow skips stray bytes between blocks one at a time; so do we, within budget.
        junk += 1
        if junk > _MAX_GIF_JUNK:
            msg = "GIF block structure is damaged (too many stray bytes)"
            raise CorruptImage(msg)
        pos += 1
    else:
        msg = "GIF has too many blocks"
        raise CorruptImage(msg)
    if frames == 0:
        msg = "GIF contains no image (no image descriptor)"
        raise CorruptImage(msg)
    return make_facts(
        "GIF",
        width,
        height,
        mode=mode,
        frames=min(frames, frame_cap + 1),
        has_alpha=has_alpha,
    )
