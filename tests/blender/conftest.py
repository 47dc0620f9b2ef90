"""Fixtures for the tests that run against bpy (Blender 4.5 as a Python module)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

# The add-on is imported as a package from the repository root (tests only).
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Blender's user folders (preferences, extensions, the add-on's own data and Set up's
# environment) go to a throwaway folder, read by bpy when it is imported.
BLENDER_USER = Path(tempfile.mkdtemp(prefix="img2mesh-blender-user-"))
os.environ["BLENDER_USER_RESOURCES"] = str(BLENDER_USER)

try:
    import bpy
except ImportError:  # the tests that need bpy skip themselves with a reason
    bpy = None

#: The core's environment, as scripts/setup.sh makes it.
CORE_PYTHON = REPO_ROOT / ".venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
ADDON = "img2mesh_addon"


def pytest_sessionfinish(session, exitstatus):
    if bpy is not None and ADDON in bpy.context.preferences.addons:
        import addon_utils

        addon_utils.disable(ADDON)  # stops the worker
    shutil.rmtree(BLENDER_USER, ignore_errors=True)


@pytest.fixture(autouse=True)
def factory_scene():
    """Every test starts from an empty factory scene, so tests do not leak into each other.

    read_homefile keeps the preferences (and so the enabled add-on and its worker);
    read_factory_settings would disable every add-on.
    """
    if bpy is not None:
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    yield


# --------------------------------------------------------------- the reconstruction side


@pytest.fixture(scope="session")
def core_python() -> Path:
    """The core's Python (torch, open3d, ...), which runs the worker as in real use."""
    if not CORE_PYTHON.is_file():
        pytest.skip(f"no core environment at {CORE_PYTHON}: run scripts/setup.sh")
    return CORE_PYTHON


def run_core(core_python: Path, code: str, timeout: float = 600) -> None:
    """Run Python code in the core's environment (bpy's has no torch, no Pillow)."""
    run = subprocess.run(
        [str(core_python), "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture(scope="session")
def tiny_models(core_python, tmp_path_factory) -> Path:
    """tiny-glpn/, tiny-depth-anything/ and tiny_seg.onnx (tests/tiny_models.py), made once."""
    out = tmp_path_factory.mktemp("tiny-models")
    run = subprocess.run(
        [str(core_python), str(REPO_ROOT / "tests" / "tiny_models.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return out


@pytest.fixture(scope="session")
def photo(core_python, tmp_path_factory) -> tuple[Path, object]:
    """A small PNG of the example toy (exact pixels: no JPEG decoder differences) and its RGB array."""
    import numpy as np

    folder = tmp_path_factory.mktemp("photo")
    png, npy = folder / "toy.png", folder / "toy_rgb.npy"
    run_core(
        core_python,
        f"""
        import numpy as np
        from PIL import Image
        image = Image.open({str(REPO_ROOT / "examples" / "toy.jpg")!r}).convert("RGB")
        image = image.resize((160, 120), Image.LANCZOS)
        image.save({str(png)!r})
        np.save({str(npy)!r}, np.asarray(image))
        """,
    )
    return png, np.load(npy)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """The add-on's data folder (models, caches) for the whole session."""
    return tmp_path_factory.mktemp("img2mesh-data")


@pytest.fixture
def temp_root(tmp_path, monkeypatch) -> Path:
    """The temp folder the add-on's runs use (tempfile.mkdtemp), to check nothing is left there."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def addon(core_python, data_dir, temp_root, monkeypatch):
    """The add-on enabled from the repository, using the core's environment through $IMG2MESH_PYTHON.

    It stays enabled between tests (so a warm worker stays warm); preferences are reset
    to what the tests expect each time.
    """
    if bpy is None:
        pytest.skip("bpy (Blender as a Python module) is not importable")
    import addon_utils

    monkeypatch.setenv("IMG2MESH_PYTHON", str(core_python))
    if ADDON not in bpy.context.preferences.addons:
        assert addon_utils.enable(ADDON, default_set=True) is not None
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.python_path = ""
    prefs.data_dir = str(data_dir)
    prefs.timeout = 120
    prefs.device = "CPU"
    import img2mesh_addon

    yield img2mesh_addon
    from img2mesh_addon import operators

    operators.cancel_running()
