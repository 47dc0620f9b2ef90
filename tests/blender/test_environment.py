"""The reconstruction environment as the preferences see it: which Python, is it complete, Set up's guards."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

bpy = pytest.importorskip(
    "bpy",
    reason="bpy (Blender as a Python module) is not importable: run .venv-blender/bin/pytest tests/blender",
)

pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]


def test_the_core_environment_is_ready(addon, core_python):
    from img2mesh_addon import environment

    status = environment.check(str(core_python))
    assert status.ready, status.line
    assert re.fullmatch(
        r"Ready: img2mesh \d+\.\d+\.\d+, Python 3\.1[0-3]\.\d+(, text prompts)?\.", status.line
    )
    assert environment.cached_status(str(core_python)) is status
    assert status.missing == []


def test_check_operator_reports_the_status_line(addon, core_python):
    from img2mesh_addon import environment

    environment.forget_status()
    assert bpy.ops.img2mesh.check_environment() == {"FINISHED"}
    assert environment.cached_status(str(core_python)).ready


def test_status_lines_say_what_is_wrong(addon, tmp_path):
    from img2mesh_addon import environment

    assert environment.check("").line == (
        "No reconstruction environment yet: press Set up, or choose an existing one."
    )
    missing = tmp_path / "bin" / "python"
    assert environment.check(str(missing)).line == f"There is no Python at {missing}."
    # bpy's own Python runs, but img2mesh is not installed there.
    status = environment.check(sys.executable)
    assert not status.ready
    assert status.line == f"img2mesh is not installed in {sys.executable}: press Set up."


def test_which_python_runs_the_worker(addon, core_python, monkeypatch):
    """The preference, else the environment made by Set up, else $IMG2MESH_PYTHON."""
    from img2mesh_addon import environment

    assert environment.find_python("") == environment.PythonChoice(
        str(core_python), "environment variable"
    )
    made = environment.venv_python(environment.setup_dir())
    made.parent.mkdir(parents=True)
    try:
        made.symlink_to(core_python)
        assert environment.find_python("") == environment.PythonChoice(str(made), "setup")
        # An existing environment given as its folder (or as its python) wins.
        venv = core_python.parents[1]
        assert environment.find_python(str(venv)).path == str(core_python)
        assert environment.find_python(str(venv)).source == "preferences"
        assert environment.find_python(str(core_python)).path == str(core_python)
    finally:
        shutil.rmtree(environment.setup_dir())
    monkeypatch.delenv("IMG2MESH_PYTHON")
    assert environment.find_python("") == environment.PythonChoice("", "none")


def test_setup_builds_from_a_compatible_python(addon):
    from img2mesh_addon import environment

    base, line = environment.setup_base()
    assert os.path.isfile(base)
    # bpy's Python is 3.11 (Blender 4.2-5.0) or 3.13 (Blender 5.1-5.3): both supported, so
    # Blender's own is the one used, and the preferences say so.
    assert base == environment.base_python() == environment.blender_python() == sys.executable
    assert environment.blender_python_problem() is None
    assert line == "Set up builds from Blender's own Python {}.{}.".format(*sys.version_info[:2])


def test_setup_falls_back_to_a_system_python_and_says_why(addon, monkeypatch, tmp_path):
    """Blender's Python cannot make a venv (here: it is not a Python at all): a system one."""
    from img2mesh_addon import environment

    monkeypatch.setattr(sys, "executable", str(tmp_path / "blender"))
    system = environment.system_python()
    if system is None:
        with pytest.raises(environment.SetupError) as error:
            environment.setup_base()
        assert str(error.value) == (
            "Blender does not say where its Python is, and no other Python "
            f"{environment.python_span()} was found: install one, or choose it under "
            "'Python for Set up' in the add-on's preferences."
        )
        return
    base, line = environment.setup_base()
    assert base == system
    assert line == f"Set up builds from {system} (Blender does not say where its Python is)."


def test_the_supported_pythons_are_the_ones_pyproject_declares(addon):
    """One bound: pyproject's requires-python; the add-on's fallback constants must agree."""
    import tomllib

    from img2mesh_addon import environment

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert environment.parse_requires_python(declared) == environment.python_range()
    assert environment.python_range() == (environment.PYTHON_MIN, environment.PYTHON_MAX)
    assert environment.PYTHON_MAX >= (3, 13)  # Blender 5.1-5.3 bundle Python 3.13
    assert environment.parse_requires_python(">=3.9,<=3.12") == ((3, 9), (3, 12))


def test_the_check_says_when_a_python_is_too_old_or_too_new(addon):
    from img2mesh_addon import environment

    span = environment.python_span()
    assert environment.version_problem((3, 9), "3.9.18", "/x/python") == (
        f"Python 3.9.18 at /x/python is too old for img2mesh, which needs Python {span}."
    )
    high = environment.PYTHON_MAX
    newer = f"{high[0]}.{high[1] + 1}.0"
    assert environment.version_problem((high[0], high[1] + 1), newer, "/y/python") == (
        f"Python {newer} at /y/python is too new for img2mesh, which needs Python {span}."
    )
    assert environment.version_problem(environment.PYTHON_MIN, "3.10.0", "/z") is None
    assert environment.version_problem(environment.PYTHON_MAX, "3.13.0", "/z") is None


def test_a_real_old_python_is_refused_in_one_sentence(addon):
    from img2mesh_addon import environment

    found = subprocess.run(
        [str(REPO / "scripts" / "find_python.sh"), "3.9"], capture_output=True, text=True
    )
    if found.returncode != 0:
        pytest.skip("no Python 3.9 on this machine")
    old = found.stdout.strip()
    version = subprocess.run(
        [old, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert environment.check(old).line == (
        f"Python {version} at {old} is too old for img2mesh, which needs Python "
        f"{environment.python_span()}."
    )


def test_setup_respects_blenders_online_access(addon):
    from img2mesh_addon import environment, preferences

    if preferences.online_access():
        pytest.skip("online access is on in this Blender")
    prefs = bpy.context.preferences.addons["img2mesh_addon"].preferences
    prefs.pip_args = ""
    with pytest.raises(RuntimeError) as error:
        bpy.ops.img2mesh.setup_environment()
    assert "Online access is turned off (Preferences > System > Network)" in str(error.value)
    assert not environment.setup_dir().exists()


def test_the_preferences_never_wait_for_the_environment_check(addon, core_python, tmp_path):
    """draw() starts the check on a thread and says "Checking…"; the answer shows once done.

    The environment's Python here answers only once the test lets it (a file appears): had
    draw() waited for the check, it would not return before that, and "Checking…" would
    never be drawn while the check is still held."""
    import time
    from types import SimpleNamespace

    from blender_helpers import RecordingLayout

    from img2mesh_addon import environment, preferences

    release = tmp_path / "release"
    slow = tmp_path / "python"  # a Python that answers once `release` exists (at most 60 s)
    slow.write_text(
        f'#!/bin/sh\nfor i in $(seq 600); do [ -e "{release}" ] && break; sleep 0.1; done\n'
        f'exec "{core_python}" "$@"\n'
    )
    slow.chmod(0o755)
    prefs = bpy.context.preferences.addons["img2mesh_addon"].preferences

    def labels() -> list[str]:
        values = {p.identifier: getattr(prefs, p.identifier) for p in prefs.bl_rna.properties}
        log: list = []
        stand_in = SimpleNamespace(**values, bl_rna=prefs.bl_rna, layout=RecordingLayout(log))
        preferences.IMG2MESH_AddonPreferences.draw(stand_in, bpy.context)
        return [text for kind, text in log if kind == "label"]

    prefs.python_path = str(slow)
    try:
        environment.forget_status()
        first = labels()
        assert "Checking…" in first and environment.checking(str(slow))  # still held
        release.touch()
        assert bpy.app.timers.is_registered(preferences._redraw_when_checked)
        deadline = time.monotonic() + 60
        while environment.checking(str(slow)):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert preferences._redraw_when_checked() is None  # done: one redraw, then it stops
        after = labels()
        assert "Checking…" not in after
        assert any(text.startswith("Ready: img2mesh") for text in after), after
    finally:
        prefs.python_path = ""
        if bpy.app.timers.is_registered(preferences._redraw_when_checked):
            bpy.app.timers.unregister(preferences._redraw_when_checked)
        environment.forget_status()
