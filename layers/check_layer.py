"""Check `sam build` output: do the layers fit the Lambda runtime the template targets?

pip cross-installs the layers with `--platform`/`--python-version` (layers/pip.mk), so
nothing on the build machine ever imports them; a wrong wheel would only show up as an
ImportError in the cloud. This script looks at the built files instead:

* every ELF file (extension modules and the libraries Pillow bundles) is a 64-bit
  little-endian ELF for the template's architecture (e_machine 183 = AArch64,
  62 = x86-64), and every extension module's tag is the runtime's CPython version;
* the files the functions rely on are there (Pillow's JPEG/WebP/AVIF codecs, imgpipe,
  Powertools, the X-Ray SDK and wrapt's C extension) and boto3/botocore are not;
* the Pillow layer decodes HEIF: pi-heif's extension module for the target and the
  libheif and libde265 it links (imported lazily, so the import check below cannot see it);
* no layer carries the x265 HEVC encoder (GPL): no file named after it, no binary that
  links it or has it built in, no pillow-heif (whose wheels bundle it);
* every distribution that bundles shared libraries ships its licence notices in its
  dist-info (the licences of the bundled libraries travel with their binaries);
* every installed distribution's requirements (evaluated for the target Python and
  platform) are met by the layer or by the Lambda runtime -- the layers install with
  `--no-deps`, so this is what catches an incomplete pin list;
* every module each built function imports at load time (following imgpipe's own
  imports) is found in the layers attached to that function, the runtime or the
  standard library -- e.g. a validate that imports Pillow, which only resize gets.

The expected runtime and architecture are the template's parameter defaults, unless
given on the command line. The targets `.aws-sam/build.toml` records and the parameter
overrides samconfig.toml gives `sam deploy` must agree with it (catches
`sam build --parameter-overrides Architecture=...` or a guided deploy that chose another
architecture while the layers were built for the default).

Usage: python layers/check_layer.py [--build-dir .aws-sam/build] [--template template.yaml]
                                    [--runtime python3.13] [--architecture arm64]
Runs on Python 3.11+ with PyYAML and packaging (both in .venv-sam and .venv).
"""

from __future__ import annotations

import argparse
import ast
import csv
import re
import shlex
import struct
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.parser import Parser as EmailParser
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent

ELF_MACHINES = {"arm64": 183, "x86_64": 62}
TRIPLETS = {"arm64": "aarch64-linux-gnu", "x86_64": "x86_64-linux-gnu"}

# Shipped by every Lambda Python runtime: boto3 and its dependency closure. Layers must
# not carry their own copy (it would shadow the runtime's and bloat every function).
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "jmespath", "s3transfer", "urllib3", "python-dateutil", "six"}
)
RUNTIME_MODULES = frozenset(
    {"boto3", "botocore", "jmespath", "s3transfer", "urllib3", "dateutil", "six", "awslambdaric"}
)
# Standard-library modules removed by PEP 594 (3.13) and by 3.12, which the build
# machine's older Python still lists in sys.stdlib_module_names.
REMOVED_IN = {
    (3, 12): {"asynchat", "asyncore", "distutils", "imp", "smtpd"},
    (3, 13): {
        "aifc",
        "audioop",
        "cgi",
        "cgitb",
        "chunk",
        "crypt",
        "imghdr",
        "mailcap",
        "msilib",
        "nis",
        "nntplib",
        "ossaudiodev",
        "pipes",
        "sndhdr",
        "spwd",
        "sunau",
        "telnetlib",
        "uu",
        "xdrlib",
        "lib2to3",
    },
}

# What each layer must contain, as globs under python/ ({tag} = cpython-313-aarch64-linux-gnu).
REQUIRED_FILES = {
    "PillowLayer": [
        "PIL/_imaging.{tag}.so",
        "PIL/_webp.{tag}.so",
        "PIL/_avif.{tag}.so",
        "PIL/_imagingcms.{tag}.so",
        "PIL/Image.py",
    ],
    "CoreLayer": [
        "imgpipe/__init__.py",
        "aws_lambda_powertools/__init__.py",
        "aws_xray_sdk/__init__.py",
        "wrapt/_wrappers.{tag}.so",
    ],
}
FORBIDDEN_TOP_LEVEL = ("boto3", "botocore")

# HEIF decoding, by layer: pi-heif's extension module and the libraries it links
# (auditwheel names them <lib>-<hash>.so.<version>). imgpipe imports pi_heif only when a
# HEIF arrives, so without these the layer would deploy fine and reject every HEIC.
HEIF_DECODER = {
    "PillowLayer": (
        "_pi_heif.{tag}.so",
        "pi_heif/__init__.py",
        "pi_heif.libs/libheif-*.so*",
        "pi_heif.libs/libde265-*.so*",
    ),
}
# The x265 HEVC encoder is GPL: layers ship only permissive or LGPL binaries. pillow-heif
# is the usual way it arrives (its wheels bundle libx265 for saving HEIC); pi-heif is the
# same decoder without it.
GPL_ENCODER = "x265"
GPL_ENCODER_DISTS = frozenset({"pillow-heif"})
# x265 writes this banner into every stream it encodes, so a copy of x265 linked
# statically into another library still carries it.
X265_BANNER = b"H.265/HEVC codec - Copyright"


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (`!Ref X`) as their long form."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=_CfnLoader)  # a SafeLoader subclass
    if not isinstance(data, dict):
        msg = f"{path} is not a CloudFormation template"
        raise SystemExit(msg)
    return data


@dataclass(frozen=True)
class Target:
    runtime: str
    architecture: str

    @property
    def python(self) -> tuple[int, int]:
        major, minor = self.runtime.removeprefix("python").split(".")
        return int(major), int(minor)

    @property
    def extension_tag(self) -> str:
        major, minor = self.python
        return f"cpython-{major}{minor}-{TRIPLETS[self.architecture]}"

    @property
    def machine(self) -> str:
        return TRIPLETS[self.architecture].split("-")[0]


def expected_target(
    template: dict[str, Any], runtime: str | None, architecture: str | None
) -> Target:
    params = template.get("Parameters", {})
    target = Target(
        runtime=runtime or str(params["Runtime"]["Default"]),
        architecture=architecture or str(params["Architecture"]["Default"]),
    )
    if target.architecture not in ELF_MACHINES:
        msg = f"unknown architecture {target.architecture!r}"
        raise SystemExit(msg)
    if not re.fullmatch(r"python3\.\d+", target.runtime):
        msg = f"not a Python runtime: {target.runtime!r}"
        raise SystemExit(msg)
    return target


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.problems.append(message)


# ------------------------------------------------------------------ binaries


def elf_machine(path: Path) -> int | None:
    """e_machine of an ELF file, or None when the file is not ELF. Raises on non-LE64."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    ei_class, ei_data = header[4], header[5]
    if ei_class != 2 or ei_data != 1:
        msg = f"{path}: not a 64-bit little-endian ELF (class {ei_class}, data {ei_data})"
        raise ValueError(msg)
    (machine,) = struct.unpack_from("<H", header, 18)
    return int(machine)


def _is_elf(path: Path) -> bool:
    """An ELF file the checks can read (check_binaries reports those they cannot)."""
    try:
        return elf_machine(path) is not None
    except ValueError:
        return False


# Libraries a manylinux wheel may expect from the OS (PEP 599/600 policy); Lambda's
# Amazon Linux 2023 base has them. Anything else must ship in the layer.
SYSTEM_LIBRARIES = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "librt.so.1",
        "libpthread.so.0",
        "libutil.so.1",
        "libnsl.so.1",
        "libresolv.so.2",
        "libgcc_s.so.1",
        "libstdc++.so.6",
        "libz.so.1",
        "libcrypt.so.1",
        "ld-linux-aarch64.so.1",
        "ld-linux-x86-64.so.2",
    }
)


def elf_needed(path: Path) -> list[str]:
    """DT_NEEDED entries of a 64-bit little-endian ELF file (its shared-library deps)."""
    data = path.read_bytes()
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for index in range(phnum):
        p_type, _flags, offset, vaddr, _paddr, filesz, _memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + index * phentsize
        )
        if p_type == 1:  # PT_LOAD
            loads.append((vaddr, offset, filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (offset, filesz)
    if dynamic is None:
        return []
    entries = []
    strtab_vaddr = None
    for pos in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", data, pos)
        if tag == 0:  # DT_NULL
            break
        if tag == 1:  # DT_NEEDED
            entries.append(value)
        elif tag == 5:  # DT_STRTAB
            strtab_vaddr = value
    if strtab_vaddr is None:
        return []
    strtab = next(
        (off + strtab_vaddr - va for va, off, size in loads if va <= strtab_vaddr < va + size),
        strtab_vaddr,
    )
    names = []
    for value in entries:
        start = strtab + value
        names.append(data[start : data.index(b"\0", start)].decode())
    return names


_EXT_TAG = re.compile(r"\.(cpython-\d+[a-z]*-[^.]+|abi3)\.so$")


def check_binaries(python_dir: Path, target: Target, report: Report, layer: str) -> int:
    """Every ELF file matches the target machine; every extension module the target tag."""
    want = ELF_MACHINES[target.architecture]
    count = 0
    shipped = {p.name for p in python_dir.rglob("*") if p.is_file()}
    for path in sorted(p for p in python_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(python_dir)
        if path.suffix in (".pyd", ".dylib", ".dll"):
            report.fail(f"{layer}: {rel} is not a Linux binary")
            continue
        try:
            machine = elf_machine(path)
        except ValueError as error:
            report.fail(f"{layer}: {error}")
            continue
        if machine is None:
            if path.name.endswith(".so") or ".so." in path.name:
                report.fail(f"{layer}: {rel} is named like a shared object but is not ELF")
            continue
        count += 1
        if machine != want:
            report.fail(
                f"{layer}: {rel} is ELF machine {machine}, expected {want} ({target.architecture})"
            )
        match = _EXT_TAG.search(path.name)
        if match and match.group(1) not in (target.extension_tag, "abi3"):
            report.fail(
                f"{layer}: {rel} is built for {match.group(1)}, expected {target.extension_tag}"
            )
        # The layer Makefiles prune libraries (e.g. Pillow's font stack): every library
        # a remaining binary links must still be in the layer or in the OS.
        for needed in elf_needed(path):
            if needed not in shipped and needed not in SYSTEM_LIBRARIES:
                report.fail(
                    f"{layer}: {rel} needs {needed}, which is neither in the layer nor the OS"
                )
    return count


def check_required(python_dir: Path, target: Target, report: Report, layer: str) -> None:
    for pattern in REQUIRED_FILES.get(layer, []):
        rel = pattern.format(tag=target.extension_tag)
        if not (python_dir / rel).is_file():
            report.fail(f"{layer}: missing {rel}")
    for name in FORBIDDEN_TOP_LEVEL:
        if (python_dir / name).exists():
            report.fail(f"{layer}: contains {name}/, which the Lambda runtime already provides")


# ------------------------------------------------------------------ HEIF and x265


def check_heif_decoder(python_dir: Path, target: Target, report: Report, layer: str) -> None:
    """The layer holds pi-heif for the target; check_binaries checks their ELF machine."""
    for pattern in HEIF_DECODER.get(layer, ()):
        rel = pattern.format(tag=target.extension_tag)
        if not any(path.is_file() for path in python_dir.glob(rel)):
            report.fail(
                f"{layer}: missing {rel}, so HEIF uploads cannot be decoded: pin pi-heif "
                f"(built for {target.extension_tag}) in the layer's requirements.txt"
            )


def _top_level_name(path: Path) -> str:
    """The distribution or module a top-level entry of python/ belongs to, normalised:
    pillow_heif/, _pillow_heif.<tag>.so, pillow_heif.libs/ and pillow_heif-1.8.1.dist-info
    all give "pillow-heif"."""
    name = path.name.split("-", 1)[0] if path.name.endswith(".dist-info") else path.name
    return _normalise(name.split(".", 1)[0]).strip("-")


def check_no_gpl_encoder(python_dir: Path, report: Report, layer: str) -> None:
    """Nothing of x265 in the layer: not as a file, a linked library, code built into
    another binary, or the pillow-heif distribution that bundles it."""
    fix = (
        "the x265 HEVC encoder is GPL and may not ship in a layer; decode HEIF with "
        "pi-heif (libheif + libde265, no encoder) and remove what brought it from the "
        "layer's requirements.txt"
    )
    for dist in GPL_ENCODER_DISTS:
        entries = sorted(p for p in python_dir.iterdir() if _top_level_name(p) == dist)
        if entries:
            names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in entries)
            report.fail(
                f"{layer}: {dist} is in the layer ({names}): its wheels bundle the GPL x265 "
                f"encoder; pin pi-heif, the same decoder without it, instead"
            )
    for path in sorted(python_dir.rglob("*")):
        rel = path.relative_to(python_dir)
        if GPL_ENCODER in path.name.lower():
            report.fail(f"{layer}: {rel} is named after x265: {fix}")
            continue
        if not path.is_file() or not _is_elf(path):
            continue
        linked = [n for n in elf_needed(path) if GPL_ENCODER in n.lower()]
        if linked:
            report.fail(f"{layer}: {rel} needs {', '.join(linked)}: {fix}")
        elif X265_BANNER in path.read_bytes():
            report.fail(f"{layer}: {rel} has x265 built in (its encoder banner): {fix}")


# ------------------------------------------------------------------ dependency closure


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Dist:
    name: str
    version: str
    requires: tuple[str, ...]


def installed_dists(python_dir: Path) -> dict[str, Dist]:
    dists = {}
    for meta in python_dir.glob("*.dist-info/METADATA"):
        message = EmailParser().parsestr(meta.read_text(encoding="utf-8"))
        dist = Dist(
            name=str(message["Name"]),
            version=str(message["Version"]),
            requires=tuple(message.get_all("Requires-Dist") or ()),
        )
        dists[_normalise(dist.name)] = dist
    return dists


def pinned_requirements(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """`name[extra]==version` lines -> {normalised name: (version, extras)}."""
    from packaging.requirements import Requirement

    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            msg = f"{path}: {line!r} is not pinned with =="
            raise SystemExit(msg)
        pins[_normalise(req.name)] = (specs[0].version, frozenset(req.extras))
    return pins


def marker_environment(target: Target) -> dict[str, str]:
    major, minor = target.python
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{major}.{minor}.0",
        "os_name": "posix",
        "platform_machine": target.machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": f"{major}.{minor}.0",
        "python_version": f"{major}.{minor}",
        "sys_platform": "linux",
    }


def check_closure(
    python_dir: Path, requirements: Path | None, target: Target, report: Report, layer: str
) -> None:
    from packaging.requirements import Requirement

    dists = installed_dists(python_dir)
    pins = pinned_requirements(requirements) if requirements else {}
    for name, (version, _extras) in pins.items():
        dist = dists.get(name)
        if dist is None:
            report.fail(f"{layer}: {name}=={version} is pinned but not installed")
        elif dist.version != version:
            report.fail(f"{layer}: {name} {dist.version} installed, {version} pinned")
    for name, dist in dists.items():
        if name in RUNTIME_PROVIDED:
            report.fail(f"{layer}: {dist.name} is installed but the Lambda runtime provides it")
        if pins and name not in pins:
            report.fail(f"{layer}: {dist.name} is installed but not pinned in {requirements}")
        extras = pins.get(name, ("", frozenset()))[1]
        for line in dist.requires:
            req = Requirement(line)
            env = marker_environment(target)
            wanted = req.marker is None or any(
                req.marker.evaluate({**env, "extra": extra}) for extra in ({""} | set(extras))
            )
            if not wanted:
                continue
            dep = _normalise(req.name)
            if dep in RUNTIME_PROVIDED:
                continue
            have = dists.get(dep)
            if have is None:
                report.fail(
                    f"{layer}: {dist.name} needs {line!r}, in neither the layer nor the runtime"
                )
            elif not req.specifier.contains(have.version, prereleases=True):
                report.fail(f"{layer}: {dist.name} needs {line!r}, the layer has {have.version}")


# ------------------------------------------------------------------ licence notices


def _record_paths(dist_info: Path) -> set[str]:
    """Files a distribution installed, relative to python/ (its RECORD)."""
    record = dist_info / "RECORD"
    if not record.is_file():
        return set()
    with record.open(encoding="utf-8", newline="") as handle:
        return {PurePosixPath(row[0]).as_posix() for row in csv.reader(handle) if row}


def _is_bundled_library(rel: Path) -> bool:
    """A shared library shipped beside a package (auditwheel's <name>.libs/ folder or a
    lib*.so*), as opposed to an extension module Python imports."""
    in_libs = any(part.endswith(".libs") for part in rel.parts[:-1])
    return in_libs or (rel.name.startswith("lib") and ".so" in rel.name)


def licence_files(dist_info: Path) -> tuple[list[Path], list[str]]:
    """(licence files present, License-File entries missing) of one distribution.
    Metadata 2.4 puts License-File paths under licenses/; older wheels beside METADATA."""
    message = EmailParser().parsestr((dist_info / "METADATA").read_text(encoding="utf-8"))
    declared = message.get_all("License-File") or []
    present, missing = [], []
    for entry in declared:
        found = [
            candidate
            for candidate in (dist_info / "licenses" / entry, dist_info / entry)
            if candidate.is_file() and candidate.stat().st_size > 0
        ]
        if found:
            present.append(found[0])
        else:
            missing.append(entry)
    if not declared:
        present = sorted(p for p in (dist_info / "licenses").rglob("*") if p.is_file())
        present += sorted(
            p
            for p in dist_info.iterdir()
            if p.is_file() and p.name.upper().startswith(("LICEN", "COPYING", "NOTICE"))
        )
    return present, missing


def check_notices(python_dir: Path, report: Report, layer: str) -> None:
    """Every distribution that bundles shared libraries carries its licence files (for
    pillow and pi-heif they list the bundled libraries' licences, e.g. LGPL for libheif),
    and no bundled library comes from outside a distribution."""
    fix = (
        "the licences of the libraries a layer bundles must ship with it: keep *.dist-info/ "
        "whole when pruning (layers/pip.mk prune_layer) and pin a wheel that includes them"
    )
    libraries = sorted(
        rel
        for rel in (p.relative_to(python_dir) for p in python_dir.rglob("*") if p.is_file())
        if _is_bundled_library(rel) and _is_elf(python_dir / rel)
    )
    owners: dict[str, Path] = {}
    for dist_info in sorted(python_dir.glob("*.dist-info")):
        for rel in _record_paths(dist_info):
            owners.setdefault(rel, dist_info)
    bundling: dict[Path, list[Path]] = {}
    for rel in libraries:
        owner = owners.get(rel.as_posix())
        if owner is None:
            report.fail(
                f"{layer}: {rel} is a bundled library that no installed distribution lists "
                f"(RECORD), so no licence notice covers it: install it with the wheel that "
                f"brings it, whose dist-info carries its licence"
            )
        else:
            bundling.setdefault(owner, []).append(rel)
    shipped = []
    for dist_info, libs in sorted(bundling.items()):
        listed = ", ".join(str(rel) for rel in libs[:3]) + (", ..." if len(libs) > 3 else "")
        what = f"{dist_info.name} bundles {listed}"
        if not (dist_info / "METADATA").is_file():
            report.fail(f"{layer}: {what} but has no METADATA: {fix}")
            continue
        present, missing = licence_files(dist_info)
        for entry in missing:
            report.fail(
                f"{layer}: {what} but its licence file {entry} (License-File in METADATA) "
                f"is missing or empty in {dist_info.name}/: {fix}"
            )
        if not present and not missing:
            report.fail(f"{layer}: {what} but ships no licence file in {dist_info.name}/: {fix}")
        if present and not missing:
            shipped.append(f"{dist_info.name.split('-', 1)[0]} ({len(libs)})")
    if shipped:
        report.notes.append(
            f"{layer}: licence notices of the bundled libraries: {', '.join(shipped)}"
        )


# ------------------------------------------------------------------ import closure


def stdlib_modules(target: Target) -> frozenset[str]:
    names = set(sys.stdlib_module_names)
    for version, removed in REMOVED_IN.items():
        if target.python >= version:
            names -= removed
    return frozenset(names)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _guards_import_error(handlers: list[ast.ExceptHandler]) -> bool:
    for handler in handlers:
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(
            isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
            for n in names
        ):
            return True
    return False


def load_time_imports(body: Iterable[ast.stmt], package: str) -> Iterator[tuple[str, bool]]:
    """(absolute module name, may be an attribute instead) for every import that runs
    when the module loads: not those in functions, `if TYPE_CHECKING:` blocks or
    `try/except ImportError` fallbacks."""
    for node in body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, False
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module, False
            for alias in node.names:
                # `from pkg import name`: name is a submodule or just an attribute.
                yield f"{module}.{alias.name}", True
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from load_time_imports(node.body, package)
            yield from load_time_imports(node.orelse, package)
        elif isinstance(node, ast.Try):
            if not _guards_import_error(node.handlers):
                yield from load_time_imports(node.body, package)
            yield from load_time_imports(node.finalbody, package)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from load_time_imports(node.body, package)


def _provides(python_dir: Path, top: str) -> bool:
    return (
        (python_dir / top).is_dir()
        or (python_dir / f"{top}.py").is_file()
        or any(python_dir.glob(f"{top}.*.so"))
    )


def check_function_imports(
    name: str, code_dir: Path, layer_dirs: list[Path], target: Target, report: Report
) -> None:
    stdlib = stdlib_modules(target)
    app = code_dir / "app.py"
    if not app.is_file():
        report.fail(f"{name}: {app} is missing")
        return
    seen: set[Path] = set()
    queue: list[tuple[Path, str, str]] = [(app, "", "app.py")]
    while queue:
        path, package, origin = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for module, maybe_attribute in load_time_imports(tree.body, package):
            top = module.split(".")[0]
            if not top or top in stdlib or top in RUNTIME_MODULES:
                continue
            if (code_dir / f"{top}.py").is_file():
                continue
            homes = [d for d in layer_dirs if _provides(d, top)]
            if not homes:
                if not maybe_attribute:
                    report.fail(f"{name}: {origin} imports {module}, found in no attached layer")
                continue
            if top != "imgpipe":
                # Third-party packages are trusted to be complete once their
                # distribution requirements are met (check_closure).
                continue
            found = _find_module(homes, module.split("."))
            if found is None:
                if not maybe_attribute:
                    report.fail(
                        f"{name}: {origin} imports {module}, which the layer does not contain"
                    )
                continue
            queue.extend(found)


def _find_module(homes: list[Path], parts: list[str]) -> list[tuple[Path, str, str]] | None:
    """The files importing `parts` executes (each package's __init__ and the module),
    as (path, package for relative imports, label); None if the module is not there."""
    for home in homes:
        files = []
        for depth in range(1, len(parts) + 1):
            rel = Path(*parts[:depth])
            if (home / rel / "__init__.py").is_file():
                init = home / rel / "__init__.py"
                files.append((init, ".".join(parts[:depth]), str(init.relative_to(home))))
            elif (home / rel).with_suffix(".py").is_file() and depth == len(parts):
                mod = (home / rel).with_suffix(".py")
                files.append((mod, ".".join(parts[: depth - 1]), str(mod.relative_to(home))))
            else:
                break
        else:
            return files
    return None


# ------------------------------------------------------------------ driver


def _ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def layer_requirements(template: dict[str, Any], logical_id: str, root: Path) -> Path | None:
    resource = template["Resources"][logical_id]
    folder = resource.get("Metadata", {}).get("ContextPath") or resource["Properties"]["ContentUri"]
    path = root / folder / "requirements.txt"
    return path if path.is_file() else None


def check_build_toml(build_toml: Path, target: Target, report: Report) -> None:
    data = tomllib.loads(build_toml.read_text(encoding="utf-8"))
    for kind in ("function_build_definitions", "layer_build_definitions"):
        for definition in data.get(kind, {}).values():
            label = definition.get("layer_name") or ",".join(definition.get("functions", []))
            arch = definition.get("architecture")
            if arch and arch != target.architecture:
                report.fail(
                    f"{build_toml}: {label} was built for {arch}, expected {target.architecture}"
                )
            runtimes = (
                [definition["runtime"]]
                if "runtime" in definition
                else definition.get("compatible_runtimes", [])
            )
            if runtimes and target.runtime not in runtimes:
                report.fail(
                    f"{build_toml}: {label} was built for {runtimes}, expected {target.runtime}"
                )


def samconfig_overrides(samconfig: Path) -> dict[str, str]:
    """Parameter overrides `sam deploy` will use from samconfig.toml's default env
    (what `sam deploy --guided` saved), e.g. {"Architecture": "x86_64"}."""
    if not samconfig.is_file():
        return {}
    data = tomllib.loads(samconfig.read_text(encoding="utf-8")).get("default", {})
    raw: Any = None
    for section in ("global", "deploy"):
        raw = data.get(section, {}).get("parameters", {}).get("parameter_overrides", raw)
    if raw is None:
        return {}
    items = raw if isinstance(raw, list) else shlex.split(str(raw))
    return dict(str(item).split("=", 1) for item in items if "=" in str(item))


def check_samconfig(samconfig: Path, target: Target, report: Report) -> None:
    overrides = samconfig_overrides(samconfig)
    for name, wanted in (("Architecture", target.architecture), ("Runtime", target.runtime)):
        deployed = overrides.get(name)
        if deployed and deployed != wanted:
            report.fail(
                f"{samconfig.name} deploys {name}={deployed} but the layers target {wanted}: "
                f"build and deploy with `make deploy {name.upper()}={deployed}`"
            )


def megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def check_layer_dir(
    logical_id: str, python_dir: Path, requirements: Path | None, target: Target, report: Report
) -> None:
    if not python_dir.is_dir():
        report.fail(f"{logical_id}: {python_dir} does not exist (run `sam build` first)")
        return
    elf_files = check_binaries(python_dir, target, report, logical_id)
    check_required(python_dir, target, report, logical_id)
    check_heif_decoder(python_dir, target, report, logical_id)
    check_no_gpl_encoder(python_dir, report, logical_id)
    check_closure(python_dir, requirements, target, report, logical_id)
    check_notices(python_dir, report, logical_id)
    report.notes.append(
        f"{logical_id}: {megabytes(python_dir):.1f} MB unzipped, {elf_files} ELF files"
    )


def run(
    build_dir: Path, template_path: Path, runtime: str | None, architecture: str | None
) -> Report:
    template = load_template(template_path)
    target = expected_target(template, runtime, architecture)
    report = Report(
        notes=[f"target: {target.runtime} on {target.architecture} ({target.extension_tag})"]
    )
    root = template_path.parent
    resources = template.get("Resources", {})
    layers = [
        lid for lid, r in resources.items() if r.get("Type") == "AWS::Serverless::LayerVersion"
    ]
    for logical_id in layers:
        check_layer_dir(
            logical_id,
            build_dir / logical_id / "python",
            layer_requirements(template, logical_id, root),
            target,
            report,
        )
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        attached = [_ref(v) for v in resource.get("Properties", {}).get("Layers", [])]
        layer_dirs = [
            build_dir / lid / "python" for lid in attached if lid is not None and lid in layers
        ]
        check_function_imports(logical_id, build_dir / logical_id, layer_dirs, target, report)
    build_toml = build_dir.parent / "build.toml"
    if build_toml.is_file():
        check_build_toml(build_toml, target, report)
    check_samconfig(root / "samconfig.toml", target, report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=REPO / ".aws-sam" / "build")
    parser.add_argument("--template", type=Path, default=REPO / "template.yaml")
    parser.add_argument("--runtime", help="default: the template's Runtime parameter default")
    parser.add_argument("--architecture", help="default: the template's Architecture default")
    args = parser.parse_args(argv)
    report = run(args.build_dir, args.template, args.runtime, args.architecture)
    for note in report.notes:
        print(note)
    for problem in report.problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if report.problems:
        print(f"{len(report.problems)} problem(s) in {args.build_dir}", file=sys.stderr)
        return 1
    print(f"OK: layers in {args.build_dir} match {report.notes[0].removeprefix('target: ')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
