"""`imgpipe.sniff.identify`: what an upload is, from its first bytes."""

from __future__ import annotations

import gzip
import io
import zipfile

import pytest
from PIL import Image

from imgpipe.errors import CorruptImage, UnsupportedFormat
from sniff_cases import encode, fixture, ftyp, sniff_bytes


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.jpg", b"not really")
    return out.getvalue()


NOT_IMAGES = [
    ("html", b"<!DOCTYPE html><html><head><title>x</title></head><body>hi</body></html>",
     "HTML document"),
    ("html-bom-whitespace", b"\xef\xbb\xbf\n   <html lang='en'><p>hello</p></html>",
     "HTML document"),
    ("svg", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="9"/>',
     "SVG"),
    ("svg-bare", b'<svg viewBox="0 0 10 10"><circle r="4"/></svg>', "SVG"),
    ("xml", b"<?xml version='1.0'?><root><item/></root>", "XML document"),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< >>\nendobj\n", "PDF"),
    ("zip", zip_bytes(), "ZIP archive"),
    ("gzip", gzip.compress(b"hello world"), "GZIP archive"),
    ("text", b"just some words\nand a second line\n", "plain text"),
    ("utf8-text", "héllo wörld, ça va?\n".encode(), "plain text"),
    ("json", b'{"photo": "cat.jpg"}', "JSON document"),
    ("bmp", encode(Image.new("RGB", (4, 4)), "BMP"), "BMP"),
    ("ico", encode(Image.new("RGB", (16, 16)), "ICO"), "ICO"),
    ("psd", b"8BPS\x00\x01" + bytes(40), "PSD"),
    # HEIF-family files whose major brand neither Pillow's AVIF plugin nor pi-heif opens
    ("heif-mif2", ftyp(b"mif2", b"mif2", b"heic"), "HEIF with major brand 'mif2'"),
    ("avif-isom", ftyp(b"isom", b"isom", b"avif", b"mif1"), "AVIF with major brand 'isom'"),
    ("mp4", ftyp(b"isom", b"isom", b"mp41"), "MP4 video"),
    ("binary-noise", bytes(range(256)) * 4, "unknown"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "kind"), [pytest.param(d, k, id=i) for i, d, k in NOT_IMAGES]
)  # fmt: skip
def test_given_non_image_when_sniffed_then_unsupported_format_names_what_it_is(
    data: bytes, kind: str
) -> None:
    # Given bytes that are not an image we read
    # When / Then the rejection says what they look like
    with pytest.raises(UnsupportedFormat, match=kind):
        sniff_bytes(data)


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 11])
@pytest.mark.parametrize("name", ["jpeg-RGB", "png-RGB", "gif-P", "webp-lossy", "tiff-RGB"])
def test_given_image_cut_inside_its_magic_when_sniffed_then_rejected(name: str, cut: int) -> None:
    with pytest.raises((CorruptImage, UnsupportedFormat)):
        sniff_bytes(fixture(name)[:cut])
