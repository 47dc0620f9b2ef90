"""Build the installable Blender extension zip: the add-on, its manifest and the core as a wheel.

    python scripts/build_extension.py [--out dist]

The zip holds one folder, ``img2mesh/``, with ``blender_manifest.toml`` and
``__init__.py`` in it, so it installs both as an extension (Blender 4.2+: Get
Extensions > Install from Disk) and as a legacy add-on (older Blender: Add-ons >
Install). ``img2mesh/core_wheel/`` holds the core (``python -m core.worker``) as a
wheel, which the add-on's "Set up" installs with its dependencies into the
reconstruction environment. Needs Python 3.11+ (tomllib) and pip; the wheel is built by
pyproject.toml's build backend (setuptools), offline where setuptools is installed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
ADDON = REPO / "img2mesh_addon"
#: The manifest lives at the top of the repository; in the zip it sits beside __init__.py.
MANIFEST = REPO / "blender_manifest.toml"
PACKAGE_FOLDER = "img2mesh"  # the folder inside the zip (the legacy add-on's module name)
WHEEL_FOLDER = "core_wheel"  # environment.WHEEL_FOLDER
#: A fixed timestamp keeps the zip identical from build to build.
ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def core_files() -> list[Path]:
    """Every module of the core package, sub-packages included (what the wheel must hold)."""
    return sorted(p for p in (REPO / "core").rglob("*.py") if "__pycache__" not in p.parts)


def build_wheel() -> tuple[str, bytes]:
    """The core as a wheel (file name, bytes), built by pyproject.toml's own build backend.

    The sources are copied to a temp folder first, so the build leaves nothing in the
    checkout. Where setuptools is installed the build runs without isolation, so no
    network is needed; otherwise pip fetches the backend as usual.
    """
    with tempfile.TemporaryDirectory(prefix="img2mesh-wheel-") as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, src / name)
        shutil.copytree(
            REPO / "core", src / "core", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out)]
        if _backend_installed():
            command.append("--no-build-isolation")
        done = subprocess.run(
            [*command, str(src)], capture_output=True, text=True, cwd=tmp, check=False
        )
        wheels = sorted(out.glob("*.whl")) if out.is_dir() else []
        if done.returncode != 0 or len(wheels) != 1:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise SystemExit(f"build_extension: the core's wheel could not be built ({last[0]}).")
        return wheels[0].name, wheels[0].read_bytes()


def _backend_installed() -> bool:
    """setuptools >= 77 (pyproject.toml's requirement: PEP 639 licence strings) that can write wheels is installed."""
    import importlib.metadata
    import importlib.util

    try:
        version = tuple(int(x) for x in importlib.metadata.version("setuptools").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    # setuptools writes wheels itself from 70.1; before, the "wheel" package does.
    return version >= (77, 0) and (
        version >= (70, 1) or importlib.util.find_spec("wheel") is not None
    )


def check_protocol() -> None:
    """The add-on's copy of the shared protocol must be the core's file, byte for byte."""
    addon_copy = (ADDON / "logic" / "protocol.py").read_bytes()
    if addon_copy != (REPO / "core" / "protocol.py").read_bytes():
        raise SystemExit(
            "build_extension: img2mesh_addon/logic/protocol.py differs from core/protocol.py; "
            "copy the core's file over."
        )


def check_versions() -> str:
    """The manifest, bl_info and the core must name the same version."""
    manifest = tomllib.loads((MANIFEST).read_text(encoding="utf-8"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    if manifest["version"] != project["version"]:
        raise SystemExit(
            f"build_extension: blender_manifest.toml says {manifest['version']} but "
            f"pyproject.toml says {project['version']}; make them the same."
        )
    return manifest["version"]


def addon_files() -> list[Path]:
    """The add-on's modules, sub-packages (logic/) included, and the manifest."""
    modules = [p for p in ADDON.rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(modules) + [MANIFEST]


def build(out_dir: Path) -> Path:
    version = check_versions()
    check_protocol()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"img2mesh-{version}.zip"
    wheel_name, wheel = build_wheel()
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w") as zf:
        for path in addon_files():
            name = path.name if path == MANIFEST else path.relative_to(ADDON).as_posix()
            _add(zf, f"{PACKAGE_FOLDER}/{name}", path.read_bytes())
        _add(zf, f"{PACKAGE_FOLDER}/{WHEEL_FOLDER}/{wheel_name}", wheel)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "dist"), help="output folder (default: dist)")
    args = parser.parse_args(argv)
    target = build(Path(args.out))
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
