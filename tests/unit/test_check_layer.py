"""layers/check_layer.py on small synthetic layers: HEIF decoding must be in the Pillow
layer, the GPL x265 encoder in no layer, and every bundled library's licence beside it.

The layers are folders written here: ELF files reduced to a header, the program headers
and a dynamic section (what the check reads), and dist-info folders with METADATA and
RECORD as pip installs them. tests/integration/test_layer_build.py runs the same check
on layers built from the real wheels.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import load_check_layer

ROOT = Path(__file__).resolve().parents[2]
AARCH64 = 183
X86_64 = 62
TAG = "cpython-313-aarch64-linux-gnu"
# What auditwheel names pi-heif 1.4.0's libraries in its aarch64 wheel.
LIBHEIF = "pi_heif.libs/libheif-9cc4da60.so.1.23.0"
LIBDE265 = "pi_heif.libs/libde265-784fb6f3.so.0.2.0"
LIBX265 = "libx265-f7a03873.so.217"


check_layer = load_check_layer()
TARGET = check_layer.Target("python3.13", "arm64")


def elf(machine: int = AARCH64, needed: tuple[str, ...] = (), payload: bytes = b"") -> bytes:
    """A 64-bit little-endian shared object: ELF header, a PT_LOAD over the whole file,
    a PT_DYNAMIC with one DT_NEEDED per name, the string table, then `payload`."""
    header_size, phdr_size = 64, 56
    strtab_offset = header_size + 2 * phdr_size
    strtab = b"\0"
    name_offsets = []
    for name in needed:
        name_offsets.append(len(strtab))
        strtab += name.encode() + b"\0"
    dynamic_offset = (strtab_offset + len(strtab) + 7) // 8 * 8
    entries = [(1, offset) for offset in name_offsets]  # DT_NEEDED
    entries += [(5, strtab_offset), (10, len(strtab)), (0, 0)]  # DT_STRTAB, DT_STRSZ, DT_NULL
    dynamic = b"".join(struct.pack("<qQ", tag, value) for tag, value in entries)
    size = dynamic_offset + len(dynamic) + len(payload)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, SYSV
    header = struct.pack(
        "<16sHHIQQQIHHHHHH",
        ident, 3, machine, 1, 0, header_size, 0, 0, header_size, phdr_size, 2, 64, 0, 0,
    )  # fmt: skip
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, size, size, 0x1000)
    dyn = struct.pack(
        "<IIQQQQQQ", 2, 6, dynamic_offset, dynamic_offset, dynamic_offset,
        len(dynamic), len(dynamic), 8,
    )  # fmt: skip
    body = header + load + dyn + strtab
    return body + bytes(dynamic_offset - len(body)) + dynamic + payload


def install(
    python_dir: Path,
    name: str,
    version: str,
    files: dict[str, bytes],
    licences: dict[str, str],
    requires: tuple[str, ...] = (),
) -> Path:
    """Writes a distribution as pip installs a wheel: its files, then a dist-info whose
    METADATA declares each licence (License-File, under licenses/) and whose RECORD
    lists every file."""
    for rel, data in files.items():
        (python_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (python_dir / rel).write_bytes(data)
    dist_info = python_dir / f"{name.replace('-', '_')}-{version}.dist-info"
    (dist_info / "licenses").mkdir(parents=True)
    for licence, text in licences.items():
        (dist_info / "licenses" / licence).write_text(text, encoding="utf-8")
    metadata = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}"]
    metadata += [f"License-File: {licence}" for licence in licences]
    metadata += [f"Requires-Dist: {req}" for req in requires]
    (dist_info / "METADATA").write_text("\n".join(metadata) + "\n\n", encoding="utf-8")
    record = [*files, *(f"{dist_info.name}/licenses/{lic}" for lic in licences)]
    record += [f"{dist_info.name}/METADATA", f"{dist_info.name}/RECORD"]
    (dist_info / "RECORD").write_text("".join(f"{rel},,\n" for rel in record), encoding="utf-8")
    return dist_info


def pi_heif_files(
    libheif: bytes | None = None, extension: str = f"_pi_heif.{TAG}.so"
) -> dict[str, bytes]:
    return {
        extension: elf(needed=(Path(LIBHEIF).name, "libc.so.6")),
        "pi_heif/__init__.py": b"",
        LIBHEIF: libheif or elf(needed=(Path(LIBDE265).name, "libstdc++.so.6")),
        LIBDE265: elf(needed=("libstdc++.so.6",)),
    }


PI_HEIF_LICENCES = {"LICENSE.txt": "BSD-3-Clause", "LICENSES_bundled.txt": "libheif: LGPLv3"}


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    """A Pillow layer as the arm64 build makes it, small: Pillow's codecs linking the
    libraries its wheel bundles, pi-heif with libheif and libde265."""
    python_dir = tmp_path / "PillowLayer" / "python"
    jpeg = "pillow.libs/libjpeg-80045241.so.62.4.0"
    webp = "pillow.libs/libwebp-bac0fc6b.so.7.2.0"
    install(
        python_dir, "pillow", "13.0.0",
        {
            f"PIL/_imaging.{TAG}.so": elf(needed=(Path(jpeg).name, "libc.so.6")),
            f"PIL/_webp.{TAG}.so": elf(needed=(Path(webp).name,)),
            f"PIL/_avif.{TAG}.so": elf(),
            f"PIL/_imagingcms.{TAG}.so": elf(),
            "PIL/Image.py": b"",
            jpeg: elf(),
            webp: elf(),
        },
        {"LICENSE": "MIT-CMU; libjpeg-turbo: IJG/BSD; libwebp: BSD"},
    )  # fmt: skip
    install(
        python_dir, "pi_heif", "1.4.0", pi_heif_files(), PI_HEIF_LICENCES,
        requires=("pillow>=11.1.0",),
    )  # fmt: skip
    return python_dir


def check(python_dir: Path) -> Any:
    """check_layer_dir's report (a check_layer.Report) on one Pillow layer."""
    report = check_layer.Report()
    check_layer.check_layer_dir("PillowLayer", python_dir, None, TARGET, report)
    return report


def replace_pi_heif(python_dir: Path, files: dict[str, bytes]) -> None:
    for rel in pi_heif_files():
        (python_dir / rel).unlink()
    shutil.rmtree(python_dir / "pi_heif-1.4.0.dist-info")
    install(python_dir, "pi_heif", "1.4.0", files, PI_HEIF_LICENCES, requires=("pillow>=11.1.0",))


def test_synthetic_elf_is_read_like_a_real_one(tmp_path: Path) -> None:
    # Given the test's ELF builder, Then the check reads back its machine and DT_NEEDED
    path = tmp_path / "libdemo.so"
    path.write_bytes(elf(X86_64, needed=("libheif.so.1", "libc.so.6")))
    assert check_layer.elf_machine(path) == X86_64
    assert check_layer.elf_needed(path) == ["libheif.so.1", "libc.so.6"]


# ---------------------------------------------------------------- HEIF decoding


def test_layer_with_libheif_for_the_target_passes(layer: Path) -> None:
    report = check(layer)
    assert report.problems == []
    assert "PillowLayer: licence notices of the bundled libraries: pi_heif (2), pillow (2)" in (
        report.notes
    )


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        (LIBHEIF, "missing pi_heif.libs/libheif-*.so*, so HEIF uploads cannot be decoded"),
        (LIBDE265, "missing pi_heif.libs/libde265-*.so*, so HEIF uploads cannot be decoded"),
        (f"_pi_heif.{TAG}.so", f"missing _pi_heif.{TAG}.so, so HEIF uploads cannot be decoded"),
    ],
)
def test_layer_without_part_of_pi_heif_fails(layer: Path, missing: str, message: str) -> None:
    # Given a Pillow layer that lost one of pi-heif's binaries
    (layer / missing).unlink()
    # When checked, Then it fails naming the file and saying to pin pi-heif
    problems = check(layer).problems
    assert [p for p in problems if message in p] == [
        f"PillowLayer: {message}: pin pi-heif (built for {TAG}) in the layer's requirements.txt"
    ]


def test_layer_with_pi_heif_for_another_python_fails(layer: Path) -> None:
    # Given pi-heif's extension module built for CPython 3.11 instead of 3.13
    replace_pi_heif(layer, pi_heif_files(extension="_pi_heif.cpython-311-aarch64-linux-gnu.so"))
    problems = check(layer).problems
    assert f"PillowLayer: missing _pi_heif.{TAG}.so" in "\n".join(problems)
    assert (
        "PillowLayer: _pi_heif.cpython-311-aarch64-linux-gnu.so is built for "
        f"cpython-311-aarch64-linux-gnu, expected {TAG}"
    ) in problems


def test_layer_with_libheif_for_another_architecture_fails(layer: Path) -> None:
    # Given an x86-64 libheif in the arm64 layer
    (layer / LIBHEIF).write_bytes(elf(X86_64, needed=(Path(LIBDE265).name,)))
    assert check(layer).problems == [
        f"PillowLayer: {LIBHEIF} is ELF machine 62, expected 183 (arm64)"
    ]


def test_other_layers_need_no_heif_decoder(tmp_path: Path) -> None:
    python_dir = tmp_path / "python"
    install(python_dir, "wrapt", "1.17.3", {f"wrapt/_wrappers.{TAG}.so": elf()}, {})
    report = check_layer.Report()
    check_layer.check_heif_decoder(python_dir, TARGET, report, "CoreLayer")
    check_layer.check_notices(python_dir, report, "CoreLayer")
    # an extension module bundles no library, so no licence file is demanded of it
    assert report.problems == []


# ---------------------------------------------------------------- x265 (GPL)

GPL = (
    "the x265 HEVC encoder is GPL and may not ship in a layer; decode HEIF with pi-heif "
    "(libheif + libde265, no encoder) and remove what brought it from the layer's "
    "requirements.txt"
)


def test_layer_with_a_libx265_file_fails(layer: Path) -> None:
    # Given a libx265 beside libheif, even one nothing links
    replace_pi_heif(layer, {**pi_heif_files(), f"pi_heif.libs/{LIBX265}": elf()})
    assert check(layer).problems == [
        f"PillowLayer: pi_heif.libs/{LIBX265} is named after x265: {GPL}"
    ]


def test_layer_with_a_library_that_needs_libx265_fails(layer: Path) -> None:
    # Given a libheif built with its x265 encoder plugin, as pillow-heif's is
    libheif = elf(needed=(LIBX265, Path(LIBDE265).name, "libstdc++.so.6"))
    replace_pi_heif(layer, pi_heif_files(libheif=libheif))
    problems = check(layer).problems
    assert f"PillowLayer: {LIBHEIF} needs {LIBX265}: {GPL}" in problems
    # and the library it needs is missing too, which the link check says on its own
    assert f"PillowLayer: {LIBHEIF} needs {LIBX265}, which is neither in the layer nor the OS" in (
        problems
    )
    assert len(problems) == 2


def test_layer_with_x265_linked_statically_fails(layer: Path) -> None:
    # Given a libheif carrying x265's own code (the banner it writes into every stream)
    banner = b"x265 (build %d) - %s:%s - H.265/HEVC codec - Copyright 2013-2018 (c) Multicoreware"
    replace_pi_heif(
        layer, pi_heif_files(libheif=elf(needed=(Path(LIBDE265).name,), payload=banner))
    )
    assert check(layer).problems == [
        f"PillowLayer: {LIBHEIF} has x265 built in (its encoder banner): {GPL}"
    ]


def test_layer_with_pillow_heif_fails(layer: Path) -> None:
    # Given pillow-heif's Python package and dist-info next to pi-heif (its libraries are
    # left out here: the package alone is enough to refuse the layer)
    install(
        layer, "pillow_heif", "1.8.1",
        {"pillow_heif/__init__.py": b"", "pillow_heif/as_plugin.py": b""},
        {"LICENSE.txt": "BSD-3-Clause"},
    )  # fmt: skip
    assert check(layer).problems == [
        "PillowLayer: pillow-heif is in the layer (pillow_heif/, pillow_heif-1.8.1.dist-info/): "
        "its wheels bundle the GPL x265 encoder; pin pi-heif, the same decoder without it, "
        "instead"
    ]


def test_only_pillow_heif_itself_is_refused(tmp_path: Path) -> None:
    names = ["pillow_heif", "_pillow_heif.cpython-313-aarch64-linux-gnu.so", "pillow_heif.libs"]
    names += ["pillow_heif-1.8.1.dist-info", "pi_heif", "pillow-13.0.0.dist-info", "PIL"]
    found = {name: check_layer._top_level_name(tmp_path / name) for name in names}
    assert [name for name, top in found.items() if top == "pillow-heif"] == names[:4]


# ---------------------------------------------------------------- licence notices

NOTICE = (
    "the licences of the libraries a layer bundles must ship with it: keep *.dist-info/ "
    "whole when pruning (layers/pip.mk prune_layer) and pin a wheel that includes them"
)
BUNDLED = f"pi_heif-1.4.0.dist-info bundles {LIBDE265}, {LIBHEIF}"


def test_layer_bundling_libraries_without_their_licence_files_fails(layer: Path) -> None:
    # Given pi-heif's dist-info without the licence files its METADATA declares
    shutil.rmtree(layer / "pi_heif-1.4.0.dist-info" / "licenses")
    assert check(layer).problems == [
        f"PillowLayer: {BUNDLED} but its licence file {name} (License-File in METADATA) "
        f"is missing or empty in pi_heif-1.4.0.dist-info/: {NOTICE}"
        for name in ("LICENSE.txt", "LICENSES_bundled.txt")
    ]


def test_layer_bundling_libraries_with_no_licence_declared_fails(layer: Path) -> None:
    # Given a pi-heif wheel that declares and ships no licence at all
    replace_pi_heif(layer, pi_heif_files())
    dist_info = layer / "pi_heif-1.4.0.dist-info"
    shutil.rmtree(dist_info / "licenses")
    metadata = (dist_info / "METADATA").read_text(encoding="utf-8")
    (dist_info / "METADATA").write_text(
        "".join(ln for ln in metadata.splitlines(True) if not ln.startswith("License-File")),
        encoding="utf-8",
    )
    assert check(layer).problems == [
        f"PillowLayer: {BUNDLED} but ships no licence file in pi_heif-1.4.0.dist-info/: {NOTICE}"
    ]


def test_older_wheels_keep_licence_files_beside_metadata(layer: Path) -> None:
    # Given Metadata < 2.4, where License-File paths are relative to the dist-info
    dist_info = layer / "pi_heif-1.4.0.dist-info"
    for path in (dist_info / "licenses").iterdir():
        path.rename(dist_info / path.name)
    (dist_info / "licenses").rmdir()
    assert check(layer).problems == []


def test_library_outside_any_distribution_fails(layer: Path) -> None:
    # Given a library copied into the layer by hand: no RECORD lists it
    (layer / "pillow.libs" / "libextra-0123abcd.so.1").write_bytes(elf())
    assert check(layer).problems == [
        "PillowLayer: pillow.libs/libextra-0123abcd.so.1 is a bundled library that no installed "
        "distribution lists (RECORD), so no licence notice covers it: install it with the wheel "
        "that brings it, whose dist-info carries its licence"
    ]


def test_prune_step_keeps_licence_files(tmp_path: Path) -> None:
    # Given a built layer whose dist-info has folders named like the ones pruned
    python_dir = tmp_path / "python"
    kept = python_dir / "demo-1.0.dist-info" / "licenses" / "tests" / "LICENSE"
    pruned = [python_dir / "demo" / "tests" / "test_demo.py", python_dir / "demo" / "x.pyc"]
    for path in (kept, *pruned):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x", encoding="utf-8")
    makefile = tmp_path / "Makefile"
    makefile.write_text(f"include {ROOT / 'layers' / 'pip.mk'}\nprune:\n\t$(prune_layer)\n")
    # When the layers' prune step runs
    result = subprocess.run(
        ["make", "--no-print-directory", "-f", str(makefile), "prune", f"ARTIFACTS_DIR={tmp_path}"],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Then test suites and byte code are gone, licence files are not
    assert [path.exists() for path in pruned] == [False, False]
    assert kept.is_file()
