"""What an upload is, from its first bytes: a supported format, or what it looks like."""

from __future__ import annotations

from typing import Final

from imgpipe.sniff.bmff import ftyp_brands

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_AVIF_MAJOR_BRANDS: Final = frozenset({b"avif", b"avis", b"mif1", b"msf1"})
# pi_heif.as_plugin._is_supported_heif: the major brands pi-heif opens.
_HEIF_MAJOR_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_HEIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1",
     b"mif2", b"avci"}
)  # fmt: skip
_MP4_BRANDS: Final = frozenset(
    {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"M4A ",
     b"3gp4", b"3gp5", b"3g2a", b"dash", b"f4v "}
)  # fmt: skip
_BMP_DIB_SIZES: Final = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_BINARY_KINDS: Final = (
    (b"%PDF-", "PDF"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"PK\x05\x06", "ZIP archive"),
    (b"PK\x07\x08", "ZIP archive"),
    (b"\x1f\x8b", "GZIP archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"BZh", "BZIP2 archive"),
    (b"\xfd7zXZ\x00", "XZ archive"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"qoif", "QOI"),
    (b"v/1\x01", "OpenEXR"),
    (b"gimp xcf", "XCF"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"OggS", "Ogg media"),
    (b"ID3", "MP3 audio"),
    (b"\x1a\x45\xdf\xa3", "Matroska/WebM video"),
)
_TEXT_BYTES: Final = (
    frozenset(b"\t\n\r\x0b\x0c\x1b") | frozenset(range(0x20, 0x7F)) | frozenset(range(0x80, 0x100))
)


def identify(head: bytes) -> tuple[str | None, str]:
    """(Pillow format name, "") for a supported format, else (None, what it looks like)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG", ""
    if head.startswith(_PNG_SIGNATURE):
        return "PNG", ""
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF", ""
    if head.startswith(b"RIFF"):
        kinds = {b"WEBP": "WEBP", b"AVI ": "AVI video", b"WAVE": "WAV audio"}
        kind = kinds.get(head[8:12], "RIFF file")
        return ("WEBP", "") if kind == "WEBP" else (None, kind)
    if head.startswith((b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")):
        return "TIFF", ""
    if head[4:8] == b"ftyp":
        return _identify_bmff(head)
    # "BM" alone is too weak (text can start with it): require a known DIB header size.
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return None, "BMP"
    # ICO/CUR: reserved 0, type 1 (icon) or 2 (cursor), then an image count of at least
    # one. The count matters: an uncompressed true-colour TGA without a colour map also
    # starts 00 00 02 00, but with a zero where the count would be.
    if head[:2] == b"\0\0" and head[2:4] in (b"\1\0", b"\2\0") and head[4:6] != b"\0\0":
        return None, "ICO" if head[2] == 1 else "CUR"
    for magic, kind in _BINARY_KINDS:
        if head.startswith(magic):
            return None, kind
    return None, _identify_text(head)


def _identify_bmff(head: bytes) -> tuple[str | None, str]:
    major, brands = ftyp_brands(head)
    # Pillow's AVIF plugin only looks at files with these major brands, and libavif then
    # wants avif or avis among the brands; Pillow hands any file it declines to the
    # next plugin, pi-heif's, which looks at the major brand alone.
    if major in _AVIF_MAJOR_BRANDS and brands & {b"avif", b"avis"}:
        return "AVIF", ""
    if major in _HEIF_MAJOR_BRANDS:
        return "HEIF", ""
    brand = major.decode("ascii", "backslashreplace")
    if brands & {b"avif", b"avis"}:
        return None, f"AVIF with major brand '{brand}', which Pillow does not open"
    if brands & _HEIF_BRANDS:
        return None, f"HEIF with major brand '{brand}', which pi-heif does not open"
    if b"crx " in brands:
        return None, "Canon CR3 raw"
    if major == b"qt  ":
        return None, "QuickTime video"
    if brands & _MP4_BRANDS:
        return None, "MP4 video"
    return None, "ISO media file"


def _identify_text(head: bytes) -> str:
    sample = head[:4096]
    text = sample.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if b"%pdf-" in sample[:1024].lower():
        return "PDF"
    if text.startswith(b"<"):
        if text.startswith((b"<svg", b"<!doctype svg")):
            return "SVG"
        if b"<svg" in text and b"<html" not in text:
            return "SVG"
        html_starts = (b"<!doctype html", b"<html", b"<head", b"<body", b"<meta", b"<script")
        if text.startswith(html_starts) or b"<html" in text:
            return "HTML document"
        if text.startswith(b"<?xml"):
            return "XML document"
    if not sample or not set(sample) <= _TEXT_BYTES:
        return "unknown"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the sample is still text.
        if exc.start < len(sample) - 3:
            return "unknown"
    if text.startswith((b"{", b"[")):
        return "JSON document"
    return "plain text"
