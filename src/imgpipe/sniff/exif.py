"""The EXIF orientation, read from the IFD0 of an EXIF block that a format carries.

JPEG (APP1), PNG (eXIf) and WebP (EXIF) embed the same TIFF-structured block; TIFF
itself shares its field types.
"""

from __future__ import annotations

import struct
from typing import Final

# Only the start of an EXIF block is needed: IFD0 comes first in every writer we know.
MAX_EXIF: Final = 64 * 1024
_MAX_EXIF_ENTRIES: Final = 1024

# Sizes of the TIFF field types that hold integers, and which of them are signed.
TIFF_INT_SIZES: Final = {1: 1, 3: 2, 4: 4, 6: 1, 8: 2, 9: 4, 13: 4, 16: 8, 17: 8, 18: 8}
TIFF_SIGNED: Final = frozenset({6, 8, 9, 17})


def exif_orientation(exif: bytes) -> int:
    """Orientation (tag 0x0112) from IFD0 of an EXIF block; 1 when absent or unreadable.

    A damaged EXIF block is common in camera files and does not make the image corrupt,
    so this never raises: Pillow also just reports no orientation then.
    """
    if exif.startswith(b"Exif\0\0"):
        exif = exif[6:]
    if exif[:4] == b"II*\0":
        order = "<"
    elif exif[:4] == b"MM\0*":
        order = ">"
    else:
        return 1
    if len(exif) < 8:
        return 1
    (ifd,) = struct.unpack_from(order + "I", exif, 4)
    if ifd + 2 > len(exif):
        return 1
    (count,) = struct.unpack_from(order + "H", exif, ifd)
    for i in range(min(count, _MAX_EXIF_ENTRIES)):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(exif):
            break
        tag, typ = struct.unpack_from(order + "HH", exif, entry)
        if tag != 0x0112:
            continue
        size = TIFF_INT_SIZES.get(typ, 0)
        if size not in (1, 2, 4):
            return 1
        value = int.from_bytes(
            exif[entry + 8 : entry + 8 + size], "little" if order == "<" else "big"
        )
        return value if 1 <= value <= 8 else 1
    return 1
