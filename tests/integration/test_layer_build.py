"""The layer Makefiles, run the way `sam build` runs them, produce layers for the
template's Lambda target (arm64 / CPython 3.13) on this x86_64 / Python 3.11 machine.

Needs the package index (pip downloads the wheels); skips with the reason when pip
cannot reach it. Wheels come from pip's cache after the first run, so this takes a few
seconds.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pillow_heif
import pytest
from PIL import Image

from helpers import load_check_layer

# One xdist worker builds the layers once for the whole module.
pytestmark = [pytest.mark.network, pytest.mark.xdist_group(name="layer-build")]

ROOT = Path(__file__).resolve().parents[2]
AARCH64 = 183
TAG = "cpython-313-aarch64-linux-gnu"
# Which layers each function gets: Pillow only where images are decoded.
ATTACHED = {
    "ValidateFunction": ["CoreLayer"],
    "ResizeFunction": ["CoreLayer", "PillowLayer"],
    "StoreFunction": ["CoreLayer"],
    "ForgetFunction": ["CoreLayer"],
}


check_layer = load_check_layer()


def _python_with_pip() -> str:
    """The interpreter whose pip builds the layers (what SAM finds as `python3`)."""
    for candidate in (sys.executable, shutil.which("python3")):
        if (
            candidate
            and subprocess.run(
                [candidate, "-m", "pip", "--version"], capture_output=True, check=False
            ).returncode
            == 0
        ):
            return candidate
    pytest.skip("no Python with pip to build the layers")


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> str:
    # Given an index pip can reach: the target's Pillow wheel must download (from pip's
    # cache after the first run); the builds below then fail for real reasons only.
    python = _python_with_pip()
    probe = subprocess.run(
        [python, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
         "--retries", "1", "--timeout", "15",
         "--only-binary=:all:", "--platform", "manylinux_2_28_aarch64",
         "--python-version", "3.13", "--implementation", "cp",
         "--dest", str(tmp_path_factory.mktemp("probe")), "pillow==13.0.0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines() or ["no output"]
        reason = next((ln for ln in lines if "Connection" in ln or "Errno" in ln), lines[-1])
        pytest.skip(f"pip cannot reach the package index: {reason}")
    return python


def make(*args: str, cwd: Path, python: str, **variables: str) -> None:
    assignments = [f"{k}={v}" for k, v in {"PYTHON": python, **variables}.items()]
    result = subprocess.run(
        ["make", "--no-print-directory", *args, *assignments],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def build_layers(tmp: Path, python: str, **target: str) -> dict[str, Path]:
    """Both layers into tmp/<LogicalId>, each as SAM's makefile builder does it."""
    out = {"PillowLayer": tmp / "PillowLayer", "CoreLayer": tmp / "CoreLayer"}
    # SAM copies the layer's ContentUri to a scratch folder and runs make there with
    # --makefile pointing at the original Makefile.
    pillow_scratch = shutil.copytree(ROOT / "layers" / "pillow", tmp / "scratch-pillow")
    make(
        "--makefile",
        str(ROOT / "layers" / "pillow" / "Makefile"),
        "build-PillowLayer",
        cwd=pillow_scratch,
        python=python,
        ARTIFACTS_DIR=str(out["PillowLayer"]),
        **target,
    )
    core_scratch = shutil.copytree(
        ROOT / "src", tmp / "scratch-core", ignore=shutil.ignore_patterns("__pycache__")
    )
    make(
        "--makefile",
        str(ROOT / "layers" / "core" / "Makefile"),
        "build-CoreLayer",
        cwd=core_scratch,
        python=python,
        ARTIFACTS_DIR=str(out["CoreLayer"]),
        **target,
    )
    return out


@pytest.fixture(scope="module")
def arm64_layers(python: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # Under pytest-xdist every worker would build its own copy; the workers' temp
    # folders share a parent (one per session), so the first one builds there and the
    # others wait for it. Without xdist that parent outlives the session: use our own.
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    shared = base / "imgpipe-arm64-layers"
    shared.mkdir(exist_ok=True)
    with (shared / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / ".built"
        if not done.exists():
            build_layers(shared, python)
            done.touch()
    return {"PillowLayer": shared / "PillowLayer", "CoreLayer": shared / "CoreLayer"}


def elf_files(folder: Path) -> dict[str, int]:
    machines = {}
    for path in folder.rglob("*"):
        if path.is_file():
            machine = check_layer.elf_machine(path)
            if machine is not None:
                machines[str(path.relative_to(folder))] = machine
    return machines


def test_pillow_layer_holds_aarch64_cp313_codecs(arm64_layers: dict[str, Path]) -> None:
    python_dir = arm64_layers["PillowLayer"] / "python"
    for module in ("_imaging", "_webp", "_avif", "_imagingcms"):
        assert (python_dir / "PIL" / f"{module}.{TAG}.so").is_file(), module
    machines = elf_files(python_dir)
    assert len(machines) > 10  # the extension modules and the libraries Pillow bundles
    assert set(machines.values()) == {AARCH64}
    assert [name for name in machines if "x86" in name or "cpython-311" in name] == []
    # the font stack the Makefile prunes is gone, and nothing needs it
    assert not list(python_dir.glob("PIL/_imagingft.*"))
    assert not list(python_dir.glob("pillow.libs/libfreetype-*"))


def check_pillow_layer(python_dir: Path) -> Any:
    """What `make check-layer` reports on this Pillow layer (a check_layer.Report)."""
    template = check_layer.load_template(ROOT / "template.yaml")
    target = check_layer.expected_target(template, None, None)
    report = check_layer.Report()
    requirements = check_layer.layer_requirements(template, "PillowLayer", ROOT)
    check_layer.check_layer_dir("PillowLayer", python_dir, requirements, target, report)
    return report


def test_pillow_layer_decodes_heif_with_pi_heif_and_carries_no_x265(
    arm64_layers: dict[str, Path],
) -> None:
    python_dir = arm64_layers["PillowLayer"] / "python"
    machines = elf_files(python_dir)
    # pi-heif's extension module and the libheif/libde265 it bundles, all aarch64 cp313
    heif = {name: machine for name, machine in machines.items() if "heif" in name}
    libraries = sorted(Path(name).name.split("-")[0] for name in heif if "/" in name)
    assert (sorted(name for name in heif if "/" not in name), libraries) == (
        [f"_pi_heif.{TAG}.so"],
        ["libde265", "libheif"],
    )
    assert set(heif.values()) == {AARCH64}
    libheif = next(python_dir.glob("pi_heif.libs/libheif-*.so*"))
    libde265 = next(python_dir.glob("pi_heif.libs/libde265-*.so*"))
    assert libheif.name in check_layer.elf_needed(python_dir / f"_pi_heif.{TAG}.so")
    assert libde265.name in check_layer.elf_needed(libheif)
    # and nothing of the x265 encoder: no file, no library linking it, no pillow-heif
    assert [p for p in python_dir.rglob("*") if "x265" in p.name.lower()] == []
    assert [
        name
        for name in machines
        if any("x265" in needed for needed in check_layer.elf_needed(python_dir / name))
    ] == []
    assert not list(python_dir.glob("*pillow_heif*"))
    # the licences of what pi-heif and Pillow bundle ship beside them
    notices = python_dir / "pi_heif-1.4.0.dist-info" / "licenses"
    assert sorted(p.name for p in notices.iterdir()) == ["LICENSE.txt", "LICENSES_bundled.txt"]
    assert "libheif" in (notices / "LICENSES_bundled.txt").read_text(encoding="utf-8")
    # When check-layer looks at the Pillow layer, Then it finds nothing to refuse
    report = check_pillow_layer(python_dir)
    assert report.problems == []
    assert "PillowLayer: licence notices of the bundled libraries: pi_heif (2), pillow (13)" in (
        report.notes
    )


def test_check_refuses_the_pillow_layer_with_pillow_heif_wheel_in_it(
    python: str, arm64_layers: dict[str, Path], tmp_path: Path
) -> None:
    # Given the built Pillow layer with pillow-heif's real aarch64 wheel added to it
    python_dir = Path(shutil.copytree(arm64_layers["PillowLayer"] / "python", tmp_path / "python"))
    subprocess.run(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
         "--no-deps", "--no-compile", "--only-binary=:all:", "--python-version", "3.13",
         "--implementation", "cp", "--platform", "manylinux_2_28_aarch64",
         "--target", str(python_dir), "pillow-heif==1.8.1"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (libx265,) = [p.relative_to(python_dir) for p in python_dir.glob("pillow_heif.libs/*x265*")]
    # When checked
    report = check_pillow_layer(python_dir)
    # Then the encoder is refused as a file and as what pillow-heif's libheif links,
    # and pillow-heif is named as what brought it
    gpl = "the x265 HEVC encoder is GPL and may not ship in a layer"
    assert f"PillowLayer: {libx265} is named after x265: {gpl}" in "\n".join(report.problems)
    (needs,) = [p for p in report.problems if f"needs {libx265.name}: {gpl}" in p]
    assert needs.startswith("PillowLayer: pillow_heif.libs/libheif-")
    (named,) = [p for p in report.problems if "pillow-heif is in the layer" in p]
    assert "pillow_heif/, pillow_heif-1.8.1.dist-info/, pillow_heif.libs/" in named
    assert "pin pi-heif, the same decoder without it, instead" in named
    assert any("pillow_heif is installed but not pinned in" in p for p in report.problems)


def test_core_layer_holds_imgpipe_powertools_and_aarch64_wrapt(
    arm64_layers: dict[str, Path],
) -> None:
    python_dir = arm64_layers["CoreLayer"] / "python"
    shipped = {p.relative_to(python_dir).as_posix() for p in python_dir.rglob("*.py")}
    source = {
        f"imgpipe/{p.relative_to(ROOT / 'src' / 'imgpipe').as_posix()}"
        for p in (ROOT / "src" / "imgpipe").rglob("*.py")
        if "local" not in p.parts and p.name not in ("cli.py", "__main__.py")
    }
    assert source <= shipped
    assert not any(name.startswith(("imgpipe/local/", "imgpipe/cli.py")) for name in shipped)
    assert (python_dir / "aws_lambda_powertools" / "tracing" / "tracer.py").is_file()
    assert (python_dir / "aws_xray_sdk" / "core" / "recorder.py").is_file()
    assert elf_files(python_dir) == {f"wrapt/_wrappers.{TAG}.so": AARCH64}
    for runtime_provided in ("boto3", "botocore", "s3transfer", "jmespath"):
        assert not (python_dir / runtime_provided).exists()
    assert not list(python_dir.rglob("__pycache__"))


def template_attachments() -> dict[str, list[str]]:
    """Every function of the template and the layers it attaches, by logical id."""
    template = check_layer.load_template(ROOT / "template.yaml")
    return {
        logical: [layer["Ref"] for layer in resource["Properties"].get("Layers", [])]
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def test_every_function_of_the_template_is_checked_here() -> None:
    assert template_attachments() == ATTACHED


def test_layers_pass_the_check_that_make_check_layer_runs(arm64_layers: dict[str, Path]) -> None:
    # Given the layers as built, When checked against the template's target (closure,
    # linked libraries, pins, and every import the four handlers make at load time)
    template = check_layer.load_template(ROOT / "template.yaml")
    target = check_layer.expected_target(template, None, None)
    assert (target.runtime, target.architecture) == ("python3.13", "arm64")
    report = check_layer.Report()
    for logical, folder in arm64_layers.items():
        requirements = check_layer.layer_requirements(template, logical, ROOT)
        check_layer.check_layer_dir(logical, folder / "python", requirements, target, report)
    for function, layers in ATTACHED.items():
        code_dir = ROOT / "functions" / function.removesuffix("Function").lower()
        dirs = [arm64_layers[name] / "python" for name in layers]
        check_layer.check_function_imports(function, code_dir, dirs, target, report)
    # Then nothing is missing or built for the wrong machine
    assert report.problems == []
    # and the same check refuses them for x86_64
    wrong = check_layer.Report()
    x86 = check_layer.Target("python3.13", "x86_64")
    check_layer.check_layer_dir(
        "PillowLayer", arm64_layers["PillowLayer"] / "python", None, x86, wrong
    )
    assert any("expected 62" in problem for problem in wrong.problems)


def _python313() -> str | None:
    candidates = [shutil.which("python3.13")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in pyenv.glob("3.13*/bin/python3.13"))
    for candidate in candidates:
        if candidate and subprocess.run(
            [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 13)"],
            capture_output=True, check=False,
        ).returncode == 0:  # fmt: skip
            return candidate
    return None


STATE_TABLE = "imgpipe-SourceStateTable-SMOKE"


def function_environment(logical: str) -> dict[str, str]:
    """The function's template environment with every parameter at its default."""
    template = check_layer.load_template(ROOT / "template.yaml")
    defaults = {k: str(v["Default"]) for k, v in template["Parameters"].items()}
    refs = {
        **defaults,
        "InputBucket": "imgpipe-input-smoke",
        "OutputBucket": "imgpipe-output-smoke",
        "SourceStateTable": STATE_TABLE,
    }
    own = template["Resources"][logical]["Properties"].get("Environment", {})
    variables = {
        **template["Globals"]["Function"]["Environment"]["Variables"],
        **own.get("Variables", {}),
    }
    return {k: refs[v["Ref"]] if isinstance(v, dict) else str(v) for k, v in variables.items()}


SMOKE = textwrap.dedent(
    """
    import io, sys, importlib.util
    function, heic = sys.argv[1:3]
    sys.path[:0] = sys.argv[3:]
    if function == "ResizeFunction":
        from PIL import Image, ImageCms, features
        for feature in ("jpg", "webp", "avif", "zlib", "littlecms2"):
            assert features.check(feature), feature
        image = Image.new("RGBA", (64, 48), (255, 0, 0, 128))
        for fmt in ("WEBP", "AVIF", "PNG", "JPEG"):
            buffer = io.BytesIO()
            (image.convert("RGB") if fmt == "JPEG" else image).save(buffer, fmt)
            buffer.seek(0)
            with Image.open(buffer) as decoded:
                decoded.load()
                assert decoded.size == (64, 48), (fmt, decoded.size)
        ImageCms.createProfile("sRGB")
        # HEIF through pi-heif's libheif/libde265 from the layer; no pillow-heif there
        import pi_heif
        assert importlib.util.find_spec("pillow_heif") is None, "pillow-heif in a layer"
        pi_heif.register_heif_opener()
        with Image.open(heic, formats=["HEIF"]) as decoded:
            decoded.load()
            assert (decoded.format, decoded.size) == ("HEIF", (96, 64)), decoded
            red, green, blue = decoded.convert("RGB").getpixel((10, 10))
            assert red > 200 and green < 60 and 60 < blue < 140, (red, green, blue)
        print("heif", pi_heif.__file__)
    else:
        assert importlib.util.find_spec("PIL") is None, "Pillow leaked into this function"
    from wrapt import _wrappers  # the C extension, not the pure-Python fallback
    import app  # the cold start: imports, Powertools objects, config from the environment
    assert callable(app.handler)
    print("ok", app.__file__, sys.modules["imgpipe"].__file__)
    print("state table", app.CONFIG.state_table)
    """
)


def test_same_recipe_for_x86_64_cold_starts_every_handler_on_a_real_cpython_313(
    python: str, tmp_path: Path
) -> None:
    # The arm64 layers cannot run here; their x86_64 twins, from the same Makefiles with
    # ARCHITECTURE changed, show the pruned Pillow (with pi-heif decoding a HEIC) and the
    # core layer load on CPython 3.13 next to what the Lambda runtime provides (boto3 and
    # its closure).
    interpreter = _python313()
    if interpreter is None:
        pytest.skip("no CPython 3.13 on this machine to import the layers with")
    layers = build_layers(tmp_path, python, ARCHITECTURE="x86_64", RUNTIME="python3.13")
    # A real HEIC, encoded here by pillow-heif's x265 (never in a layer) for resize's
    # pi-heif to decode.
    heic = tmp_path / "crimson.heic"
    pillow_heif.from_pillow(Image.new("RGB", (96, 64), (220, 20, 100))).save(heic, quality=90)
    runtime = tmp_path / "runtime"
    subprocess.run(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
         "--no-compile", "--only-binary=:all:", "--python-version", "3.13",
         "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
         "--target", str(runtime), "boto3==1.44.8"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    started = []
    for function, names in ATTACHED.items():
        code_dir = ROOT / "functions" / function.removesuffix("Function").lower()
        # Lambda's order: function code, then layers (/opt/python), then the runtime.
        path = [str(code_dir), *(str(layers[n] / "python") for n in names), str(runtime)]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            **function_environment(function),
        }
        result = subprocess.run(
            [interpreter, "-I", "-B", "-c", SMOKE, function, str(heic), *path],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
        assert result.returncode == 0, f"{function}: {result.stderr[-3000:]}"
        assert str(layers["CoreLayer"]) in result.stdout, result.stdout
        assert str(code_dir / "app.py") in result.stdout, result.stdout
        # the claims table comes from the template's Globals, not a default
        assert f"state table {STATE_TABLE}" in result.stdout, result.stdout
        if function == "ResizeFunction":
            assert f"heif {layers['PillowLayer'] / 'python' / 'pi_heif'}" in result.stdout
        started.append(function)
    assert set(started) == set(template_attachments())
