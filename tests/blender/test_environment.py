"""The reconstruction environment as the preferences see it: which Python, is it complete, Set up's guards."""

from __future__ import annotations

import os
import re
import shutil
import sys

import pytest

bpy = pytest.importorskip(
    "bpy",
    reason="bpy (Blender as a Python module) is not importable: run .venv-blender/bin/pytest tests/blender",
)

pytestmark = pytest.mark.blender


def test_the_core_environment_is_ready(addon, core_python):
    from img2mesh_addon import environment

    status = environment.check(str(core_python))
    assert status.ready, status.line
    assert re.fullmatch(
        r"Ready: img2mesh \d+\.\d+\.\d+, Python 3\.1[0-2]\.\d+(, text prompts)?\.", status.line
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

    base = environment.base_python()
    assert os.path.isfile(base)
    # bpy's Python is 3.11 (Blender 4.5's own): compatible, so it is the one used.
    assert base == environment.blender_python() == sys.executable


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
    """draw() starts the check on a thread and says "Checking…"; the answer shows once done."""
    import time
    from types import SimpleNamespace

    from blender_helpers import RecordingLayout

    from img2mesh_addon import environment, preferences

    slow = tmp_path / "python"  # a Python that takes 3 s to answer
    slow.write_text(f'#!/bin/sh\nsleep 3\nexec "{core_python}" "$@"\n')
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
        started = time.monotonic()
        first = labels()
        assert time.monotonic() - started < 1.0  # the check itself takes 3 s
        assert "Checking…" in first and environment.checking(str(slow))
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
