"""Fixtures for the tests that run against bpy (Blender 4.5 as a Python module)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings
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


def pytest_report_header(config):
    if bpy is not None:
        import numpy

        return (
            f"Blender {bpy.app.version_string} as a Python module (Python "
            f"{sys.version.split()[0]}, numpy {numpy.__version__})"
        )
    return None


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session, exitstatus):
    if bpy is not None and ADDON in bpy.context.preferences.addons:
        import addon_utils

        addon_utils.disable(ADDON)  # stops the worker
    shutil.rmtree(BLENDER_USER, ignore_errors=True)
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config):
    """Leave at once once pytest is done: bpy as a module sometimes hangs in its own shutdown
    (its background file-closing thread, seen with bpy 4.5 even without the add-on loaded),
    which would stall a test run after its summary was printed. Nothing of ours is left to
    clean up by then (the worker was stopped above)."""
    if bpy is not None and _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])


@pytest.fixture(autouse=True)
def no_deprecated_api():
    """A deprecation warning from the add-on fails the test, on every Blender track.

    Blender 5.x deprecates APIs that 4.2-4.5 still need (e.g. ``Material.use_nodes``, removed in
    6.0), so the add-on must choose per version. Blender's C code swallows an exception raised
    by a warning filter, so the warnings are recorded and checked here instead; the add-on
    counts both from the repository and installed as an extension (``bl_ext.*.img2mesh``).
    """
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", DeprecationWarning)
        yield
    ours = [
        w
        for w in seen
        if issubclass(w.category, DeprecationWarning)
        and re.search(r"[/\\](img2mesh_addon|img2mesh)[/\\][^/\\]+\.py$", w.filename or "")
    ]
    for w in seen:
        if w not in ours:  # everything else goes on to pytest's own warning summary
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if ours:
        pytest.fail(
            "the add-on used a deprecated Blender API: "
            + "; ".join(f"{w.filename}:{w.lineno}: {w.message}" for w in ours),
            pytrace=False,
        )


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
    configure(bpy.context.preferences.addons[ADDON].preferences, data_dir)
    import img2mesh_addon

    yield img2mesh_addon
    from img2mesh_addon import operators

    operators.cancel_running()


# ------------------------------------------------------------------ file-system faults


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "16k", *, read_only: bool = False):
    """A real tiny (or read-only) file system mounted on ``folder`` for the block; needs root."""
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` cannot be written for the block: a read-only mount as root (who may write
    anywhere else), else its permissions."""
    if os.name == "posix" and os.geteuid() == 0:
        with tmpfs(folder, "64k", read_only=True):
            yield folder
        return
    mode = folder.stat().st_mode
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(mode)


def worker_pids(data_dir: Path) -> list[int]:
    """Live processes running core.worker for this data folder, whoever their parent is now."""
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc")
    home = f"IMG2MESH_HOME={data_dir}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"core.worker" in cmdline and home in environ and state != "Z":
            found.append(int(entry))
    return found


def process_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def configure(prefs, data_dir: Path) -> None:
    """The preferences every test expects (also after the add-on is enabled again)."""
    prefs.python_path = ""
    prefs.data_dir = str(data_dir)
    prefs.timeout = 120
    prefs.device = "CPU"
