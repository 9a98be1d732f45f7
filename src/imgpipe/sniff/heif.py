"""HEIF (HEIC): the primary image of the `meta` box, as libheif under pi-heif shows it.

The resize Lambda decodes HEIF with pi-heif (libheif with libde265, so HEVC only), which
renders the primary item (pitm) with its transforms applied. The facts follow libheif's
reading of the file:

* A file without a primary item is `UnsupportedFormat` when it holds an image sequence
  (a track in `moov`; pi-heif cannot decode one) and `CorruptImage` otherwise. So is a
  primary image that is not HEVC-coded (AV1 without the avif brand, AVC, JPEG, ...),
  looking through derived images (grid, iden, iovl) to their first input.
* Width and height are the primary's `ispe` (a grid's is its whole output size), cut
  by a clean aperture (`clap`) as libheif cuts it, before any turn or mirror: the size
  the decoder produces, with `ImageFacts.oriented_size` the size pi-heif reports.
* The orientation is the EXIF value equivalent to the primary's `irot`/`imir`, applied
  in the order ipma lists them, as libheif applies them (libavif's fixed order, which
  the AVIF parser follows, gives another picture when a file lists imir first).
* `bit_depth` is the primary's `pixi`, else its `hvcC` luma depth, else (a derived
  image) its first input's. Mode and alpha are pi-heif's: "RGBA" with an `auxl` alpha
  image (auxC alpha URN) of the primary, else "L" for 8-bit and "I;16" for deeper
  monochrome HEVC, else "RGB".
* `icc_profile` is a `prof`/`rICC` colr of the primary (or, for a grid without one, of
  its first tile, which libheif lends the grid); an `nclx` colr is not a profile.
* `frames` is 1: a HEIF is never an animation, only its primary image is rendered.
  `images` counts the top-level images: image items that are not hidden, not a
  thumbnail (thmb), auxiliary image (auxl: alpha, depth, gain map) or metadata (cdsc),
  and not an input of a derived image (dimg: grid tiles, which writers hide; libheif
  would count a tile left unhidden).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from imgpipe.errors import CorruptImage, UnsupportedFormat
from imgpipe.sniff._reader import Cursor, Reader, fourcc_name, make_facts
from imgpipe.sniff.bmff import (
    Item,
    Meta,
    Property,
    auxc_is_alpha,
    boxes,
    colr_is_icc,
    ispe_size,
    orientation,
    pixi_depth,
    property_cursor,
)
from imgpipe.specs import ImageFacts

_REFERENCES: Final = frozenset({b"auxl", b"cdsc", b"dimg", b"thmb"})
_NOT_TOP_LEVEL: Final = frozenset({b"auxl", b"cdsc", b"thmb"})
# The item types libheif treats as images (a 'mime' item too, when it holds a JPEG).
_IMAGE_TYPES: Final = frozenset(
    {b"hvc1", b"av01", b"grid", b"tili", b"iden", b"iovl", b"avc1", b"unci", b"vvc1", b"jpeg",
     b"j2k1", b"mski"}
)  # fmt: skip
_DERIVED: Final = frozenset({b"grid", b"iden", b"iovl"})
_CODINGS: Final = {
    b"av01": "AV1",
    b"avc1": "AVC (H.264)",
    b"vvc1": "VVC (H.266)",
    b"jpeg": "JPEG",
    b"mime": "JPEG",
    b"j2k1": "JPEG 2000",
    b"unci": "uncompressed",
    b"mski": "a mask",
    b"tili": "tiles",
}
_READ: Final = frozenset({b"ispe", b"pixi", b"hvcC", b"colr", b"auxC", b"clap", b"irot", b"imir"})
# Derived images of derived images (an iden of a grid) are legal; chains are short.
_MAX_DERIVATION: Final = 8
# Auxiliary images of the primary looked at for alpha: real files have a few (alpha,
# depth, an HDR gain map).
_MAX_AUXILIARY: Final = 64


@dataclass
class _Image:
    """One item's properties, in the order they apply."""

    size: tuple[int, int] | None = None
    depth: int | None = None
    hevc: tuple[int, int] | None = None  # chroma_format_idc, luma bit depth
    icc: bool = False
    alpha: bool = False
    transforms: list[tuple[bytes, int, int]] = field(default_factory=list)

    @property
    def bit_depth(self) -> int | None:
        return self.depth or (self.hevc[1] if self.hevc else None)


def sniff_heif(r: Reader, frame_cap: int) -> ImageFacts:
    meta: Meta | None = None
    for typ, s, e in boxes(r, 0, r.size, "HEIF file"):
        if typ == b"meta":
            meta = Meta(r, s, e, "HEIF")
            break
    primary = meta.primary if meta is not None else None
    if meta is None or primary is None:
        if any(typ == b"moov" for typ, _, _ in boxes(r, 0, r.size, "HEIF file")):
            msg = (
                "unsupported format: HEIF image sequence without a still image; "
                "only still images are supported"
            )
            raise UnsupportedFormat(msg)
        msg = "HEIF has no primary image (no meta box with a pitm)"
        raise CorruptImage(msg)
    references = meta.references(_REFERENCES)
    coded = _coded_item(primary, meta.items, references)
    image = _read(r, meta.item_properties(primary))
    if image.size is None:
        msg = "HEIF primary image has no size (ispe) property"
        raise CorruptImage(msg)
    source = image if coded == primary else _read(r, meta.item_properties(coded))
    if source.hevc is None:
        msg = "HEIF HEVC image has no decoder configuration (hvcC)"
        raise CorruptImage(msg)
    bit_depth = image.bit_depth or source.bit_depth or 8
    icc = image.icc or (meta.items[primary].type == b"grid" and source.icc)
    alpha = _has_alpha(r, meta, primary, references)
    turned = orientation((typ, value) for typ, value, _ in image.transforms)
    width, height = _decoded_size(image.size, image.transforms)
    if turned > 4:
        width, height = height, width
    if alpha:
        mode = "RGBA"
    elif source.hevc[0] == 0:  # chroma_format_idc 0: monochrome
        mode = "L" if bit_depth <= 8 else "I;16"
    else:
        mode = "RGB"
    return make_facts(
        "HEIF",
        width,
        height,
        mode=mode,
        orientation=turned,
        has_alpha=alpha,
        bit_depth=bit_depth,
        icc_profile=icc,
        images=_top_level_images(meta.items, references),
    )


def _is_image(item: Item) -> bool:
    if item.type == b"mime":
        return item.content_type == b"image/jpeg"
    return item.type in _IMAGE_TYPES


def _coded_item(
    primary: int, items: dict[int, Item], references: list[tuple[bytes, int, list[int]]]
) -> int:
    """The coded item the primary image decodes from: itself, or a derived image's input."""
    item = items.get(primary)
    if item is None or not _is_image(item):
        msg = f"HEIF primary item {primary} is not an image"
        raise CorruptImage(msg)
    if item.hidden:
        msg = "HEIF primary image is marked hidden"
        raise CorruptImage(msg)
    inputs: dict[int, int] = {}
    for kind, source, targets in references:
        if kind == b"dimg" and targets:
            inputs.setdefault(source, targets[0])
    item_id = primary
    for _ in range(_MAX_DERIVATION):
        if item.type not in _DERIVED:
            break
        if item_id not in inputs:
            msg = f"HEIF '{fourcc_name(item.type)}' image has no input images (dimg)"
            raise CorruptImage(msg)
        item_id = inputs[item_id]
        next_item = items.get(item_id)
        if next_item is None or not _is_image(next_item):
            msg = f"HEIF '{fourcc_name(item.type)}' image refers to a missing input image"
            raise CorruptImage(msg)
        item = next_item
    else:
        msg = "HEIF derived images nest too deeply"
        raise CorruptImage(msg)
    if item.type != b"hvc1":
        coding = _CODINGS.get(item.type, f"'{fourcc_name(item.type)}'")
        msg = (
            f"unsupported format: HEIF image coded as {coding}; "
            "only HEVC-coded HEIF (HEIC) is supported"
        )
        raise UnsupportedFormat(msg)
    return item_id


def _read(r: Reader, props: list[Property] | None) -> _Image:
    image = _Image()
    for prop in props or ():
        typ = prop[0]
        if typ not in _READ:
            continue
        cursor = property_cursor(r, prop, "HEIF")
        if typ == b"ispe":
            image.size = ispe_size(cursor)
        elif typ == b"pixi":
            image.depth = image.depth or pixi_depth(cursor)
        elif typ == b"hvcC":
            cursor.take(16)
            image.hevc = (cursor.uint(1) & 3, 8 + (cursor.uint(1) & 7))
        elif typ == b"colr":
            image.icc = image.icc or colr_is_icc(cursor)
        elif typ == b"auxC":
            image.alpha = auxc_is_alpha(cursor)
        elif typ == b"clap":
            image.transforms.append((typ, *_clap_size(cursor)))
        else:  # irot: anticlockwise quarter turns; imir: the mirror axis
            image.transforms.append((typ, cursor.uint(1) & (3 if typ == b"irot" else 1), 0))
    return image


def _clap_size(cursor: Cursor) -> tuple[int, int]:
    """The clean aperture's width and height, rounded as libheif rounds them."""
    width_n, width_d, height_n, height_d = (cursor.uint(4) for _ in range(4))
    if width_d == 0 or height_d == 0:
        msg = "HEIF clean aperture (clap) has a zero denominator"
        raise CorruptImage(msg)
    return (width_n + width_d // 2) // width_d, (height_n + height_d // 2) // height_d


def _decoded_size(
    size: tuple[int, int], transforms: list[tuple[bytes, int, int]]
) -> tuple[int, int]:
    """The size libheif decodes to: ispe, cut by clap and turned by irot, in order.

    Encoders use clap to trim the padding of the coded size (x265 codes at least 64x64),
    a sliver of the picture. A clean aperture keeping less than half of the coded area
    is not that: the decoder still allocates the whole coded picture before cutting, so
    the coded size is reported and the pixel budget counts what is really decoded.
    """
    width, height = size
    coded = width * height
    quarter_turns = 0
    for typ, a, b in transforms:
        if typ == b"clap":
            width, height = a, b
        elif typ == b"irot" and a % 2:
            width, height = height, width
            quarter_turns += 1
    if 2 * width * height < coded:
        return size if quarter_turns % 2 == 0 else (size[1], size[0])
    return width, height


def _has_alpha(
    r: Reader, meta: Meta, primary: int, references: list[tuple[bytes, int, list[int]]]
) -> bool:
    auxiliary = {source for kind, source, targets in references
                 if kind == b"auxl" and primary in targets}  # fmt: skip
    return any(
        _read(r, meta.item_properties(source)).alpha
        for source in sorted(auxiliary)[:_MAX_AUXILIARY]
    )


def _top_level_images(
    items: dict[int, Item], references: list[tuple[bytes, int, list[int]]]
) -> int:
    parts = {source for kind, source, _ in references if kind in _NOT_TOP_LEVEL}
    parts.update(t for kind, _, targets in references if kind == b"dimg" for t in targets)
    return sum(
        1
        for item_id, item in items.items()
        if _is_image(item) and not item.hidden and item_id not in parts
    )
