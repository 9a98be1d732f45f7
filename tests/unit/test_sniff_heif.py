"""`imgpipe.sniff.heif`: HEIF (HEIC) facts from the boxes, as pi-heif will decode them.

Fixtures are encoded with pillow-heif (libheif's encoder, dev-only), or built box by box
for what it cannot write. pi-heif, registered as the resize Lambda registers it, is the
oracle: the decoded size, mode, depth, profile and image count must be what validate
read from the header, and the decoded pixels must be the picture the sniffed EXIF
orientation stands for.
"""

from __future__ import annotations

import io
import struct

import pi_heif
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pi_heif.as_plugin import _is_supported_heif
from PIL import Image, ImageChops, ImageOps, ImageStat

from imgpipe.errors import CorruptImage, UnsupportedFormat
from imgpipe.sniff import sniff
from imgpipe.sniff.identify import identify
from imgpipe.specs import ImageFacts
from sniff_cases import (
    HEIF_CASES,
    CountingSource,
    Damaged,
    assert_corrupt,
    assert_truncated_copies_corrupt_or_the_same,
    encode,
    fixture,
    heic,
    needs_avif,
    sniff_bytes,
    srgb_icc,
)

# As imgpipe.imaging registers it: thumbnails, depth and auxiliary images are never
# rendered, so they are not decoded either.
pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

ALPHA_URN = b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha"
HEVC_ALPHA_URN = b"urn:mpeg:hevc:2015:auxid:1"
DEPTH_URN = b"urn:mpeg:hevc:2015:auxid:2"


def pi_heif_view(data: bytes) -> dict[str, object]:
    """What pi-heif reports right after `Image.open`, in sniff's terms."""
    with Image.open(io.BytesIO(data), formats=["HEIF"]) as im:
        return {
            "format": im.format,
            "size": im.size,  # upright: libheif applies clap, irot and imir
            "mode": im.mode,
            "has_alpha": im.has_transparency_data,
            "bit_depth": im.info["bit_depth"],
            "icc_profile": bool(im.info.get("icc_profile")),
            "images": getattr(im, "n_frames", 1),  # top-level images; the primary shows
        }


def sniff_view(facts: ImageFacts) -> dict[str, object]:
    return {
        "format": facts.format,
        "size": facts.oriented_size,
        "mode": facts.mode,
        "has_alpha": facts.has_alpha,
        "bit_depth": facts.bit_depth,
        "icc_profile": facts.icc_profile,
        "images": facts.images,
    }


def marker(width: int = 64, height: int = 48) -> Image.Image:
    """Grey with three coloured corners: each of the eight orientations looks different."""
    image = Image.new("RGB", (width, height), (128, 128, 128))
    image.paste((220, 20, 20), (0, 0, width // 4, height // 4))
    image.paste((20, 20, 220), (width - width // 4, 0, width, height // 4))
    image.paste((20, 220, 20), (0, height - height // 4, width // 4, height))
    return image


def with_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """`image` as an EXIF-aware viewer shows it when tagged with `orientation`."""
    tagged = image.copy()
    tagged.getexif()[0x0112] = orientation
    return ImageOps.exif_transpose(tagged)


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data), formats=["HEIF"]) as im:
        im.load()
        return im.copy()


def turned_heic(source: Image.Image, orientation: int) -> bytes:
    """A lossless HEIC of `source` whose encoder turned EXIF `orientation` into irot/imir."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return heic(source, quality=-1, chroma=444, exif=exif.tobytes())


def assert_shows_as(picture: Image.Image, source: Image.Image, orientation: int) -> None:
    """Of the eight EXIF orientations of `source`, `orientation` is the one `picture` is."""
    candidates = {n: with_orientation(source, n) for n in range(1, 9)}
    closest = min(
        (n for n, c in candidates.items() if c.size == picture.size),
        key=lambda n: mean_difference(picture, candidates[n]),
    )
    assert closest == orientation
    assert mean_difference(picture, candidates[orientation]) < 1


# --- Boxes built by hand, for what libheif's encoder does not write --------------------


def box(typ: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I", 8 + len(body)) + typ + body


def full_box(typ: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return box(typ, bytes([version]) + flags.to_bytes(3, "big"), *parts)


def ispe(width: int, height: int) -> bytes:
    return full_box(b"ispe", 0, 0, struct.pack(">II", width, height))


def pixi(*depths: int) -> bytes:
    return full_box(b"pixi", 0, 0, bytes([len(depths), *depths]))


def hvcc(depth: int = 8, chroma: int = 1) -> bytes:
    """An HEVC decoder configuration without parameter sets (enough for the header)."""
    depths = [0xF8 | (depth - 8)] * 2  # luma, chroma
    return box(b"hvcC", bytes([1, 1, *bytes(14), 0xFC | chroma, *depths, *bytes(4)]))


def colr_icc() -> bytes:
    return box(b"colr", b"prof", srgb_icc())


def colr_nclx() -> bytes:
    return box(b"colr", b"nclx", struct.pack(">HHHB", 1, 13, 6, 0x80))


def auxc(urn: bytes) -> bytes:
    return full_box(b"auxC", 0, 0, urn + b"\0")


def irot(angle: int) -> bytes:
    return box(b"irot", bytes([angle]))


def imir(axis: int) -> bytes:
    return box(b"imir", bytes([axis]))


def clap(width: int, height: int, denominator: int = 1) -> bytes:
    return box(b"clap", struct.pack(">8I", width, denominator, height, denominator, 0, 1, 0, 1))


def coded(width: int, height: int, depth: int = 8) -> list[bytes]:
    """The properties of an HEVC-coded item."""
    return [hvcc(depth), ispe(width, height), pixi(depth, depth, depth)]


Items = dict[int, tuple[bytes, list[bytes]]]  # item ID -> (item type, properties)


def heif_file(
    items: Items,
    *,
    primary: int | None = 1,
    references: tuple[tuple[bytes, int, tuple[int, ...]], ...] = (),
    hidden: frozenset[int] = frozenset(),
    major: bytes = b"heic",
    tail: bytes = b"",
) -> bytes:
    """ftyp + meta (pitm, iinf, iref, iprp) + `tail`; no item data (the header is all
    sniff reads)."""
    ipco: list[bytes] = []
    entries = b""
    for item_id, (_, props) in items.items():
        indexes = []
        for prop in props:
            if prop not in ipco:
                ipco.append(prop)
            indexes.append(ipco.index(prop) + 1)
        entries += struct.pack(">HB", item_id, len(indexes)) + bytes(indexes)
    infe = b"".join(
        full_box(b"infe", 2, int(i in hidden), struct.pack(">HH4s", i, 0, typ), b"\0")
        for i, (typ, _) in items.items()
    )
    iref = b"".join(
        box(
            kind, struct.pack(">HH", source, len(targets)), *(struct.pack(">H", t) for t in targets)
        )
        for kind, source, targets in references
    )
    ipma = full_box(b"ipma", 0, 0, struct.pack(">I", len(items)), entries)
    meta = full_box(
        b"meta", 0, 0,
        full_box(b"hdlr", 0, 0, bytes(4), b"pict", bytes(13)),
        full_box(b"pitm", 0, 0, struct.pack(">H", primary)) if primary is not None else b"",
        full_box(b"iinf", 0, 0, struct.pack(">H", len(items)), infe),
        full_box(b"iref", 0, 0, iref) if references else b"",
        box(b"iprp", box(b"ipco", *ipco), ipma),
    )  # fmt: skip
    return box(b"ftyp", major, bytes(4), b"mif1", major) + meta + tail


def still(*props: bytes, major: bytes = b"heic") -> bytes:
    return heif_file({1: (b"hvc1", [*coded(640, 480), *props])}, major=major)


def grid_file(*, tiles_hidden: bool = True, grid_props: tuple[bytes, ...] = ()) -> bytes:
    """A 4032x3024 grid of four 2016x1512 10-bit tiles with a profile, an Exif item and a
    thumbnail, laid out as a phone writes it."""
    tile = [hvcc(10), ispe(2016, 1512), pixi(10, 10, 10), colr_icc()]
    items: Items = {
        1: (b"grid", [ispe(4032, 3024), *grid_props]),
        **dict.fromkeys(range(2, 6), (b"hvc1", tile)),
        6: (b"Exif", []),
        7: (b"hvc1", coded(320, 240)),
    }
    return heif_file(
        items,
        references=((b"dimg", 1, (2, 3, 4, 5)), (b"cdsc", 6, (1,)), (b"thmb", 7, (1,))),
        hidden=frozenset(range(2, 6)) if tiles_hidden else frozenset(),
    )


def moov() -> bytes:
    """A movie box with one (empty) track: where an image sequence keeps its frames."""
    track = box(b"trak", full_box(b"tkhd", 0, 3, bytes(80)))
    return box(b"moov", full_box(b"mvhd", 0, 0, bytes(96)), track)


def sequence_file() -> bytes:
    """An image sequence only: a track in moov and no meta."""
    ftyp = box(b"ftyp", b"msf1", bytes(4), b"msf1", b"hevc", b"iso8")
    return ftyp + moov() + box(b"mdat", bytes(64))


def with_major_brand(data: bytes, major: bytes) -> bytes:
    return data[:8] + major + data[12:]


# --- Agreement with pi-heif ------------------------------------------------------------


@pytest.mark.parametrize("name", HEIF_CASES)
def test_given_libheif_written_heic_when_sniffed_then_facts_match_pi_heif(name: str) -> None:
    # Given a HEIC libheif's encoder wrote
    data = fixture(name)
    # When it is sniffed from its bytes alone
    facts = sniff_bytes(data)
    # Then every fact agrees with what pi-heif reports on open, and it is one frame
    assert sniff_view(facts) == pi_heif_view(data)
    assert facts.frames == 1


@pytest.mark.parametrize(
    ("name", "fact", "value"),
    [
        ("heic-RGB", "size", (64, 48)),  # coded 64x64, cut by a clean aperture
        ("heic-RGBA", "has_alpha", True),
        ("heic-LA", "mode", "RGBA"),
        ("heic-L", "mode", "L"),
        ("heic-L-10bit", "mode", "I;16"),
        ("heic-RGB-10bit", "bit_depth", 10),
        ("heic-RGB-12bit", "bit_depth", 12),
        ("heic-icc", "icc_profile", True),
        ("heic-nclx-p3", "icc_profile", False),
        ("heic-grid", "size", (200, 130)),
        ("heic-grid-o6-icc-thumbnail", "size", (130, 200)),
        ("heic-grid-o6-icc-thumbnail", "icc_profile", True),
        ("heic-thumbnail", "images", 1),
        ("heic-burst-3", "images", 3),
        ("heic-burst-3-thumbnails", "images", 3),
    ],
)
def test_given_heic_with_a_feature_when_sniffed_then_it_is_seen(
    name: str, fact: str, value: object
) -> None:
    # The pi-heif comparison alone could agree on a default.
    assert sniff_view(sniff_bytes(fixture(name)))[fact] == value


def test_given_nclx_fixture_then_its_colr_is_display_p3_code_points() -> None:
    # The nclx case is only a test of "no ICC profile" if the file describes P3 by nclx.
    data = fixture("heic-nclx-p3")
    assert b"colrnclx\x00\x0c\x00\x0d\x00\x06" in data
    assert b"colrprof" not in data


@pytest.mark.parametrize("orientation", range(1, 9))
def test_given_heic_turned_by_irot_imir_when_decoded_then_sniffed_orientation_is_what_shows(
    orientation: int,
) -> None:
    # Given a lossless HEIC whose encoder turned EXIF orientation N into irot/imir
    source = marker()
    data = turned_heic(source, orientation)
    assert b"irot" in data or b"imir" in data or orientation == 1
    # When sniffed, and decoded by libheif (which applies the transforms itself)
    facts = sniff_bytes(data)
    picture = decoded(data)
    # Then the sniffed orientation is N, and of the eight EXIF orientations it is the
    # one that shows the stored picture exactly as libheif shows it
    assert facts.orientation == orientation
    assert_shows_as(picture, source, facts.orientation)
    assert facts.oriented_size == picture.size


@pytest.mark.parametrize("orientation", [5, 7])
def test_given_imir_listed_before_irot_when_decoded_then_sniff_follows_libheifs_order(
    orientation: int,
) -> None:
    # Given a HEIC with irot and imir whose ipma order is swapped to mirror-then-turn
    # (swapping the two 9-byte properties in ipco keeps every offset)
    source = marker()
    data = turned_heic(source, orientation)
    at_irot, at_imir = data.index(b"irot") - 4, data.index(b"imir") - 4
    assert at_imir == at_irot + 9
    swapped = (
        data[:at_irot] + data[at_imir : at_imir + 9] + data[at_irot:at_imir] + data[at_imir + 9 :]
    )
    # When sniffed and decoded
    facts = sniff_bytes(swapped)
    picture = decoded(swapped)
    # Then libheif shows another picture (5 and 7 trade places), and sniff says which
    assert facts.orientation == 12 - orientation
    assert_shows_as(picture, source, facts.orientation)


# --- Identification: exactly the files pi-heif's opener takes --------------------------

PI_HEIF_MAJORS = [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs",
                  b"mif1", b"msf1"]  # fmt: skip
BRANDS = [*PI_HEIF_MAJORS, b"avif", b"avis", b"mif2", b"miaf", b"avci", b"isom", b"MiHE",
          b"MiPr", b"qt  ", b"mp42"]  # fmt: skip


@pytest.mark.parametrize("major", PI_HEIF_MAJORS, ids=lambda b: b.decode())
def test_given_each_major_brand_pi_heif_opens_when_sniffed_then_heif(major: bytes) -> None:
    # Given a valid HEIC relabelled with one of the major brands pi-heif's opener takes
    data = with_major_brand(fixture("heic-RGB"), major)
    # When / Then pi-heif opens it, and sniff calls it HEIF with the same facts
    assert _is_supported_heif(io.BytesIO(data))
    facts = sniff_bytes(data)
    assert facts.format == "HEIF"
    assert sniff_view(facts) == pi_heif_view(data)


@settings(max_examples=500, database=None)
@given(
    major=st.sampled_from(BRANDS),
    compatible=st.lists(st.sampled_from(BRANDS), max_size=5),
)
def test_given_any_brands_when_identified_then_heif_exactly_when_pi_heif_opens_it(
    major: bytes, compatible: list[bytes]
) -> None:
    # Given an ftyp box with any mix of image, video and HEIF-family brands
    head = box(b"ftyp", major, bytes(4), *compatible) + bytes(32)
    # When identified
    fmt, kind = identify(head)
    # Then AVIF keeps priority as Pillow's AVIF plugin takes it (major brand and an avif
    # brand); otherwise it is HEIF exactly when pi-heif's opener takes it
    brands = {major, *compatible}
    avif = major in {b"avif", b"avis", b"mif1", b"msf1"} and bool(brands & {b"avif", b"avis"})
    expected = "AVIF" if avif else ("HEIF" if _is_supported_heif(io.BytesIO(head)) else None)
    assert fmt == expected
    assert (kind == "") == (fmt is not None)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (box(b"ftyp", b"mif2", bytes(4), b"mif2", b"heic"), "HEIF with major brand 'mif2'"),
        (box(b"ftyp", b"avci", bytes(4), b"avci", b"mif1"), "HEIF with major brand 'avci'"),
        (box(b"ftyp", b"isom", bytes(4), b"isom", b"heic"), "HEIF with major brand 'isom'"),
        (box(b"ftyp", b"isom", bytes(4), b"isom", b"avif"), "AVIF with major brand 'isom'"),
    ],
    ids=["mif2", "avci", "isom-heic", "isom-avif"],
)
def test_given_heif_family_file_pi_heif_refuses_when_sniffed_then_says_what_it_looks_like(
    head: bytes, kind: str
) -> None:
    assert not _is_supported_heif(io.BytesIO(head))
    with pytest.raises(UnsupportedFormat, match=kind):
        sniff_bytes(head + bytes(64))


@needs_avif
def test_given_avif_with_mif1_major_when_sniffed_then_avif_keeps_priority() -> None:
    # Given an AVIF whose major brand pi-heif also takes (avif among its brands)
    data = with_major_brand(encode(marker(), "AVIF"), b"mif1")
    assert _is_supported_heif(io.BytesIO(data))
    # When / Then it is AVIF, as Pillow (its AVIF plugin first) opens it
    assert sniff_bytes(data).format == "AVIF"


@needs_avif
def test_given_av1_coded_file_without_avif_brand_when_sniffed_then_unsupported() -> None:
    # Given an AVIF relabelled as plain HEIF (mif1, no avif brand), which pi-heif opens
    avif = encode(marker(), "AVIF")
    ftyp_size = int.from_bytes(avif[:4], "big")
    data = avif[:ftyp_size].replace(b"avif", b"mif1") + avif[ftyp_size:]
    # but cannot decode: it has no AV1 decoder
    with Image.open(io.BytesIO(data), formats=["HEIF"]) as im, pytest.raises(RuntimeError):
        im.load()
    # When / Then sniff refuses it up front instead of passing it to the resize step
    with pytest.raises(UnsupportedFormat, match="coded as AV1"):
        sniff_bytes(data)


# --- Hand-built files ------------------------------------------------------------------


def test_given_grid_primary_when_sniffed_then_full_size_and_tile_depth_and_profile() -> None:
    # Given a 4032x3024 grid of hidden 10-bit tiles, the grid without pixi or colr
    data = grid_file()
    # When
    facts = sniff_bytes(data)
    # Then the grid's ispe is the size, depth and profile come from the first tile (as
    # libheif lends them), and tiles, thumbnail and Exif are not images of their own
    assert (facts.width, facts.height, facts.bit_depth, facts.icc_profile) == (4032, 3024, 10, True)
    assert (facts.mode, facts.images, facts.frames) == ("RGB", 1, 1)


def test_given_turned_grid_when_sniffed_then_the_grids_transforms_count() -> None:
    facts = sniff_bytes(grid_file(grid_props=(irot(1),)))
    assert (facts.width, facts.height, facts.orientation) == (4032, 3024, 8)
    assert facts.oriented_size == (3024, 4032)


@pytest.mark.parametrize(
    ("data", "icc"),
    [
        (still(colr_nclx()), False),
        (still(colr_nclx(), colr_icc()), True),
        # libheif lends a grid without a profile its first tile's, nclx or not.
        (grid_file(grid_props=(colr_nclx(),)), True),
    ],
    ids=["nclx", "nclx-and-icc", "grid-nclx-tile-icc"],
)
def test_given_colour_descriptions_when_sniffed_then_only_a_profile_counts(
    data: bytes, icc: bool
) -> None:
    assert sniff_bytes(data).icc_profile is icc


def test_given_grid_with_unhidden_tiles_when_sniffed_then_tiles_are_not_images() -> None:
    # Given tiles a writer forgot to hide (libheif would list them as top-level images)
    # When / Then a dimg input is part of its grid, not a picture of its own
    assert sniff_bytes(grid_file(tiles_hidden=False)).images == 1


@pytest.mark.parametrize("urn", [ALPHA_URN, HEVC_ALPHA_URN])
def test_given_auxl_alpha_item_when_sniffed_then_rgba(urn: bytes) -> None:
    # Given a primary image and an alpha plane referring to it by auxl
    items: Items = {1: (b"hvc1", coded(640, 480)), 2: (b"hvc1", [*coded(640, 480), auxc(urn)])}
    data = heif_file(items, references=((b"auxl", 2, (1,)),))
    # When
    facts = sniff_bytes(data)
    # Then the image has alpha and the alpha plane is not an image of its own
    assert (facts.has_alpha, facts.mode, facts.images) == (True, "RGBA", 1)


def test_given_depth_map_when_sniffed_then_no_alpha_and_one_image() -> None:
    items: Items = {
        1: (b"hvc1", coded(640, 480)),
        2: (b"hvc1", [*coded(320, 240), auxc(DEPTH_URN)]),
    }
    facts = sniff_bytes(heif_file(items, references=((b"auxl", 2, (1,)),)))
    assert (facts.has_alpha, facts.mode, facts.images) == (False, "RGB", 1)


def test_given_monochrome_hevc_without_pixi_when_sniffed_then_depth_from_hvcc() -> None:
    data = heif_file({1: (b"hvc1", [hvcc(12, chroma=0), ispe(64, 64)])})
    facts = sniff_bytes(data)
    assert (facts.mode, facts.bit_depth) == ("I;16", 12)


@pytest.mark.parametrize(
    ("transforms", "size", "orientation"),
    [
        ((clap(600, 400),), (600, 400), 1),
        ((clap(600, 400), irot(3)), (600, 400), 6),
        # A crop listed after a turn is in the turned picture's frame.
        ((irot(1), clap(400, 600)), (600, 400), 8),
        ((imir(1),), (640, 480), 2),
        ((imir(0), irot(1)), (640, 480), 7),
        ((irot(2), irot(2)), (640, 480), 1),
        ((clap(1201, 801, denominator=2),), (601, 401), 1),  # 600.5 rounds up, as libheif
    ],
    ids=["clap", "clap-irot3", "irot1-clap", "imir1", "imir0-irot1", "irot2-irot2", "clap-half"],
)
def test_given_transforms_when_sniffed_then_they_apply_in_ipma_order(
    transforms: tuple[bytes, ...], size: tuple[int, int], orientation: int
) -> None:
    facts = sniff_bytes(still(*transforms))
    assert ((facts.width, facts.height), facts.orientation) == (size, orientation)


@pytest.mark.parametrize(
    ("transforms", "size", "orientation"),
    [((clap(64, 48),), (640, 480), 1), ((irot(1), clap(48, 64)), (640, 480), 8)],
    ids=["clap", "irot1-clap"],
)
def test_given_clap_hiding_most_of_the_coded_picture_when_sniffed_then_coded_size_counts(
    transforms: tuple[bytes, ...], size: tuple[int, int], orientation: int
) -> None:
    # Given a clean aperture keeping 1 % of the coded picture (libheif decodes it all)
    facts = sniff_bytes(still(*transforms))
    # Then the facts carry the coded size, so the pixel budget counts the real decode
    assert ((facts.width, facts.height), facts.orientation) == (size, orientation)


def test_given_huge_declared_size_when_sniffed_then_reported_from_the_first_block() -> None:
    # Given a 100000x100000 HEIC header in front of 4 MB of (fake) image data
    data = heif_file({1: (b"hvc1", coded(100_000, 100_000))}, tail=box(b"mdat", bytes(4 << 20)))
    source = CountingSource(data)
    # When
    facts = sniff(source)
    # Then the size is reported as declared (the pixel budget rejects it from these
    # facts), read in one request of the first block, not from the image data
    assert (facts.width, facts.height, facts.pixels) == (100_000, 100_000, 10**10)
    assert len(source.reads) == 1
    assert source.bytes_read <= 64 * 1024 < source.size


def test_given_heif_image_sequence_only_when_sniffed_then_unsupported() -> None:
    # Given a HEIF with only a track in moov and no meta (pi-heif cannot decode it)
    data = sequence_file()
    # When / Then
    with pytest.raises(UnsupportedFormat, match="HEIF image sequence without a still image"):
        sniff_bytes(data)


def test_given_meta_without_primary_and_a_track_when_sniffed_then_unsupported() -> None:
    data = heif_file({1: (b"hvc1", coded(64, 64))}, primary=None, major=b"msf1", tail=moov())
    with pytest.raises(UnsupportedFormat, match="image sequence"):
        sniff_bytes(data)


@pytest.mark.parametrize(
    ("data", "coding"),
    [
        (heif_file({1: (b"av01", [ispe(64, 64)])}, major=b"mif1"), "AV1"),
        (heif_file({1: (b"avc1", [ispe(64, 64)])}), "AVC"),
        (heif_file({1: (b"jpeg", [ispe(64, 64)])}), "JPEG"),
        (heif_file({1: (b"grid", [ispe(64, 64)]), 2: (b"av01", [ispe(64, 64)])},
                   references=((b"dimg", 1, (2,)),), hidden=frozenset({2})), "AV1"),
    ],
    ids=["av01", "avc1", "jpeg", "grid-of-av01"],
)  # fmt: skip
def test_given_heif_not_coded_with_hevc_when_sniffed_then_unsupported(
    data: bytes, coding: str
) -> None:
    # pi-heif opens these but has only an HEVC decoder (libde265).
    with pytest.raises(UnsupportedFormat, match=f"coded as {coding}"):
        sniff_bytes(data)


CORRUPT: list[tuple[str, Damaged, str]] = [
    ("no-meta-no-moov", box(b"ftyp", b"heic", bytes(4), b"mif1") + box(b"mdat", bytes(32)),
     "no primary image"),
    ("no-pitm", heif_file({1: (b"hvc1", coded(64, 64))}, primary=None), "no primary image"),
    ("primary-not-an-item", heif_file({1: (b"hvc1", coded(64, 64))}, primary=9), "not an image"),
    ("primary-is-exif", heif_file({1: (b"Exif", [])}), "not an image"),
    ("primary-hidden", heif_file({1: (b"hvc1", coded(64, 64))}, hidden=frozenset({1})), "hidden"),
    ("no-ispe", heif_file({1: (b"hvc1", [hvcc(), pixi(8)])}), "ispe"),
    ("no-hvcc", heif_file({1: (b"hvc1", [ispe(64, 64), pixi(8)])}), "hvcC"),
    ("zero-ispe", heif_file({1: (b"hvc1", coded(0, 480))}), "0x480"),
    ("grid-without-tiles", heif_file({1: (b"grid", [ispe(64, 64)])}), "no input images"),
    ("grid-of-itself", heif_file({1: (b"grid", [ispe(64, 64)])}, references=((b"dimg", 1, (1,)),)),
     "nest too deeply"),
    ("clap-zero-denominator", lambda: still(clap(600, 400, denominator=0)), "zero denominator"),
    ("truncated-meta", lambda: still()[:120], "overruns|past the end|truncated"),
    ("lying-property-size",
     lambda: still().replace(b"\x00\x00\x00\x14ispe", b"\x00\x00\x40\x14ispe"), "overruns"),
    ("lying-top-level-box", box(b"ftyp", b"heic", bytes(4), b"mif1") + b"\xff\xff\xff\xfffree",
     "overruns"),
    ("truncated-hvcc", heif_file({1: (b"hvc1", [box(b"hvcC", bytes(10)), ispe(64, 64)])}),
     "truncated"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "message"), [pytest.param(m, s, id=i) for i, m, s in CORRUPT])
def test_given_damaged_header_when_sniffed_then_corrupt_image(make: Damaged, message: str) -> None:
    assert_corrupt(make, message)


@pytest.mark.parametrize("name", HEIF_CASES)
def test_given_truncated_image_when_sniffed_then_corrupt_or_the_same_facts(name: str) -> None:
    assert_truncated_copies_corrupt_or_the_same(name)


def test_given_reference_flood_when_sniffed_then_walk_is_bounded() -> None:
    # Given 1.2 million item references (2.4 MB of item IDs)
    flood = tuple(range(2, 60_002))
    data = heif_file({1: (b"hvc1", coded(64, 64))},
                     references=tuple((b"thmb", 2, flood) for _ in range(20)))  # fmt: skip
    # When / Then the parse gives up instead of running on
    with pytest.raises(CorruptImage, match="too many"):
        sniff_bytes(data)
