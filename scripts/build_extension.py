"""Build the installable Blender extension zip: the add-on, its manifest and the core as a wheel.

    python scripts/build_extension.py [--out dist]

The zip holds one folder, ``img2mesh/``, with ``blender_manifest.toml`` and
``__init__.py`` in it, so it installs both as an extension (Blender 4.2+: Get
Extensions > Install from Disk) and as a legacy add-on (older Blender: Add-ons >
Install). ``img2mesh/core_wheel/`` holds the core (``python -m core.worker``) as a
wheel, which the add-on's "Set up" installs with its dependencies into the
reconstruction environment. Needs Python 3.11+ (tomllib) and nothing else.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import sys
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


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def core_files() -> list[Path]:
    """The core package's modules (setuptools: packages = ["core"], no subpackages)."""
    return sorted(p for p in (REPO / "core").glob("*.py"))


def build_wheel() -> tuple[str, bytes]:
    """The core as a pure-Python wheel (file name, bytes), from pyproject.toml's metadata."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name, version = project["name"], project["version"]
    dist_info = f"{name}-{version}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project['requires-python']}",
    ]
    license_field = project.get("license")  # an SPDX expression (PEP 639)
    if isinstance(license_field, str):
        metadata[0] = "Metadata-Version: 2.4"
        metadata.append(f"License-Expression: {license_field}")
    metadata += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    for extra, deps in project.get("optional-dependencies", {}).items():
        metadata.append(f"Provides-Extra: {extra}")
        metadata += [f'Requires-Dist: {dep}; extra == "{extra}"' for dep in deps]
    scripts = project.get("scripts", {})
    files: list[tuple[str, bytes]] = [(f"core/{p.name}", p.read_bytes()) for p in core_files()]
    files += [
        (f"{dist_info}/METADATA", ("\n".join(metadata) + "\n").encode()),
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: img2mesh build_extension.py\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        (f"{dist_info}/top_level.txt", b"core\n"),
    ]
    if scripts:
        entry = "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
        files.append((f"{dist_info}/entry_points.txt", entry.encode()))
    record = [_record_line(n, d) for n, d in files] + [f"{dist_info}/RECORD,,"]
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for n, d in files:
            _add(zf, n, d)
    return f"{name}-{version}-py3-none-any.whl", buffer.getvalue()


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
    return sorted(p for p in ADDON.iterdir() if p.is_file() and p.suffix == ".py") + [MANIFEST]


def build(out_dir: Path) -> Path:
    version = check_versions()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"img2mesh-{version}.zip"
    wheel_name, wheel = build_wheel()
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w") as zf:
        for path in addon_files():
            _add(zf, f"{PACKAGE_FOLDER}/{path.name}", path.read_bytes())
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
