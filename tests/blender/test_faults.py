"""Faults around a reconstruction in bpy 4.5: Blender keeps working, nothing is left behind, the next run works.

(The killed worker, the hung worker, a second run while one goes, the offline missing
model and cancelling while the depth model loads are in test_operator.py; cancelling
a prompt's generation and a full picture folder in test_prompt.py.)
"""

from __future__ import annotations

import os
import re
import runpy
import stat
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

bpy = pytest.importorskip(
    "bpy",
    reason="bpy (Blender as a Python module) is not importable: run .venv-blender/bin/pytest tests/blender",
)
from blender_helpers import (  # noqa: E402
    WEIGHT_FREE,
    RecordingLayout,
    datablocks,
    drive,
    drive_until,
    reconstruct,
    wait_gone,
    worker_module,
)
from conftest import (  # noqa: E402
    ADDON,
    REPO_ROOT,
    configure,
    process_environment,
    read_only,
    tmpfs,
    worker_pids,
)

pytestmark = pytest.mark.blender

DELAY = "IMG2MESH_TEST_PROGRESS_DELAY"  # core/worker/serve.py: a pause after each progress event


def nothing(temp_root: Path) -> list[str]:
    return sorted(os.listdir(temp_root))


@pytest.fixture
def slow_worker(addon, monkeypatch):
    """A fresh worker that pauses 0.3 s after each progress event, so a test can act in a stage."""
    worker_module().discard_worker()
    monkeypatch.setenv(DELAY, "0.3")
    yield
    monkeypatch.delenv(DELAY, raising=False)
    worker_module().discard_worker()


@pytest.mark.parametrize("stage", ["segment", "depth", "pointcloud", "mesh"])
def test_cancel_at_each_stage_leaves_nothing_and_the_next_run_works(
    slow_worker, photo, temp_root, data_dir, monkeypatch, stage
):
    from img2mesh_addon import operators

    bpy.data.meshes.new("Existing")
    before = datablocks()
    reconstruct(background=True, filepath=str(photo[0]), **WEIGHT_FREE)
    drive_until(lambda job: job.stage == stage)  # the first progress event of that stage
    job = operators.running_job()
    # The run's temp folder: made by mkdtemp, so only this user may enter it.
    folder = Path(job.folder)
    assert folder.parent == temp_root and stat.S_IMODE(folder.stat().st_mode) == 0o700
    process = job.worker.process
    assert bpy.ops.img2mesh.cancel() == {"FINISHED"}
    assert operators.running_job() is job and job.cancelling  # stops at its next step
    drive(timeout=30)

    # The worker stopped the run and stays, warm, for the next one.
    assert job.state == "cancelled" and process.poll() is None
    assert worker_pids(data_dir) == [process.pid]
    assert operators.runner.last_outcome.text == "Reconstruction cancelled."
    assert datablocks() == before
    assert nothing(temp_root) == []
    assert not bpy.ops.img2mesh.cancel.poll()

    monkeypatch.delenv(DELAY)
    assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}
    assert worker_module().last_job.worker.process is process
    assert nothing(temp_root) == []


def test_a_run_that_does_not_stop_in_time_is_stopped_with_its_worker(
    addon, photo, temp_root, data_dir, monkeypatch
):
    """A cancel the worker cannot honour within the grace period (a hang, a long model load)."""
    from img2mesh_addon import operators

    worker_client = worker_module()
    worker_client.discard_worker()
    monkeypatch.setenv(DELAY, "30")  # the worker sleeps after its first progress event
    monkeypatch.setattr(worker_client, "CANCEL_GRACE_SECONDS", 0.5)
    before = datablocks()
    reconstruct(background=True, filepath=str(photo[0]), **WEIGHT_FREE)
    drive_until(lambda job: job.messages)
    process = operators.running_job().worker.process
    assert bpy.ops.img2mesh.cancel() == {"FINISHED"}
    drive(timeout=10)
    wait_gone(process)
    assert process.poll() is not None and worker_pids(data_dir) == []
    assert operators.runner.last_outcome.text == "Reconstruction cancelled."
    assert datablocks() == before and nothing(temp_root) == []
    monkeypatch.delenv(DELAY)
    assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}


def test_a_full_temp_disk_while_the_worker_saves_its_result(addon, photo, temp_root):
    assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}  # warm
    worker = worker_module().current_worker()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    with tmpfs(temp_root, "16k"):  # room for the run's folder, not for its result
        with pytest.raises(RuntimeError) as error:
            reconstruct(filepath=str(photo[0]), **WEIGHT_FREE)
        pattern = (
            rf"Error: Cannot write {re.escape(str(temp_root))}/img2mesh-"
            r"[^/]+/result\.npz: the disk is full\."
        )
        assert re.fullmatch(pattern, str(error.value).strip()), str(error.value)
        assert nothing(temp_root) == []  # no result, no .partial, no folder
        assert datablocks() == {k: set() for k in datablocks()}
        assert worker_module().current_worker() is worker  # the worker carries on
    assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}


def test_a_temp_folder_that_cannot_be_made(addon, photo, temp_root):
    image = bpy.data.images.load(str(photo[0]))
    image.pack()
    expected = (
        f"Error: No temp folder can be made in {temp_root} (it is not writable); free some "
        "space there or set TMPDIR to another folder."
    )
    with read_only(temp_root):
        with pytest.raises(RuntimeError) as error:
            reconstruct(filepath=str(photo[0]), **WEIGHT_FREE)
        assert str(error.value).strip() == expected
        with pytest.raises(RuntimeError) as error:  # a packed image is written out first
            reconstruct(image=image.name, **WEIGHT_FREE)
        assert str(error.value).strip() == expected
    assert datablocks() == {**{k: set() for k in datablocks()}, "images": {image.name}}
    assert nothing(temp_root) == []


def test_blenders_online_access_reaches_the_worker(addon, photo):
    """Preferences > System > Network > Allow Online Access, switched at run time.

    bpy 4.5 starts with it off (no --online-mode on the command line of a module) and
    bpy.app.online_access follows preferences.system.use_online_access when it changes.
    """
    if sys.platform != "linux":
        pytest.skip("reads the worker's environment from /proc")
    from img2mesh_addon import preferences

    system = bpy.context.preferences.system
    if system.is_property_readonly("use_online_access"):
        pytest.skip("online access is fixed by the command line here")
    was = system.use_online_access
    try:
        system.use_online_access = False
        assert not bpy.app.online_access and not preferences.online_access()
        assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}
        offline = worker_module().current_worker().pid
        assert process_environment(offline).get("IMG2MESH_OFFLINE") == "1"
        assert "Online access is off" in preferences_labels()

        system.use_online_access = True
        assert bpy.app.online_access and preferences.online_access()
        assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}
        online = worker_module().current_worker().pid
        assert online != offline  # a different setting: a new worker
        assert "IMG2MESH_OFFLINE" not in process_environment(online)
        assert "Online access is off" not in preferences_labels()
    finally:
        system.use_online_access = was
        worker_module().discard_worker()


def preferences_labels() -> str:
    from img2mesh_addon import preferences

    prefs = bpy.context.preferences.addons[ADDON].preferences
    values = {p.identifier: getattr(prefs, p.identifier) for p in prefs.bl_rna.properties}
    log: list = []
    stand_in = SimpleNamespace(**values, bl_rna=prefs.bl_rna, layout=RecordingLayout(log))
    preferences.IMG2MESH_AddonPreferences.draw(stand_in, bpy.context)
    return " ".join(text for kind, text in log if kind == "label")


def test_disable_and_enable_while_a_run_is_in_flight(
    slow_worker, photo, temp_root, data_dir, monkeypatch
):
    import addon_utils

    from img2mesh_addon import operators

    reconstruct(background=True, filepath=str(photo[0]), **WEIGHT_FREE)
    drive_until(lambda job: job.stage == "segment")
    job = operators.running_job()
    pid, process = job.worker.pid, job.worker.process
    assert worker_pids(data_dir) == [pid]
    addon_utils.disable(ADDON)
    try:
        assert process.poll() is not None  # stopped, and reaped, by unregister
        assert not Path(f"/proc/{pid}").exists()
        assert worker_pids(data_dir) == []  # no orphan under any parent
        assert nothing(temp_root) == []
        assert not bpy.app.timers.is_registered(operators.tick)
        assert datablocks() == {k: set() for k in datablocks()}
    finally:
        monkeypatch.delenv(DELAY)
        addon_utils.enable(ADDON, default_set=True)
        configure(bpy.context.preferences.addons[ADDON].preferences, data_dir)
    assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}
    assert worker_pids(data_dir) == [worker_module().current_worker().pid] != [pid]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
    }


def test_a_run_writes_nothing_into_the_addons_own_folder(addon, photo, temp_root):
    folder = Path(addon.__file__).parent
    before = snapshot(folder)
    assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}
    reconstruct(background=True, filepath=str(photo[0]), **WEIGHT_FREE)
    drive()
    assert "toy.001" in bpy.data.objects
    assert snapshot(folder) == before
    assert nothing(temp_root) == []


# ---------------------------------------------------------------- scripts/reconstruct.py


def run_script(monkeypatch, capsys, *args) -> tuple[int, str]:
    """scripts/reconstruct.py in this process (the bpy module): exit status, stdout + stderr."""
    monkeypatch.setattr(sys, "argv", ["reconstruct.py", *map(str, args)])
    try:
        runpy.run_path(str(REPO_ROOT / "scripts" / "reconstruct.py"), run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("case", ["missing folder", "read-only folder", "not .blend", "exists"])
def test_the_headless_script_refuses_outputs_it_cannot_write(
    addon, photo, tmp_path, monkeypatch, capsys, case
):
    folder = tmp_path / "out ü"
    folder.mkdir()
    target = {
        "missing folder": folder / "nope" / "scene.blend",
        "read-only folder": folder / "scene.blend",
        "not .blend": folder / "scene.obj",
        "exists": folder / "scene.blend",
    }[case]
    if case == "exists":
        target.write_bytes(b"mine")
    expected = {
        "missing folder": f"The folder '{folder / 'nope'}' does not exist.",
        "read-only folder": f"The folder '{folder}' is not writable.",
        "not .blend": "The output must be a .blend file, not 'scene.obj'.",
        "exists": f"'{target}' exists already; pass --overwrite to replace it.",
    }[case]
    args = [photo[0], "--out", target, "--segment", "key", "--depth", "inflate"]
    if case == "read-only folder":
        with read_only(folder):
            code, err = run_script(monkeypatch, capsys, *args)
            assert os.listdir(folder) == []
    else:
        code, err = run_script(monkeypatch, capsys, *args)
    assert (code, err.strip()) == (1, f"reconstruct.py: error: {expected}")  # before any work
    assert sorted(os.listdir(folder)) == (["scene.blend"] if case == "exists" else [])
    if case == "exists":
        assert target.read_bytes() == b"mine"


def test_the_headless_script_on_a_full_disk_leaves_no_partial_blend(
    addon, photo, tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "small"
    folder.mkdir()
    with tmpfs(folder, "64k"):  # room for the checks, not for the .blend
        code, err = run_script(
            monkeypatch, capsys, photo[0], "--out", folder / "scene.blend",
            "--segment", "key", "--depth", "inflate", "--mesh", "grid", "--max-size", "96",
        )  # fmt: skip
        assert code == 1
        assert "Info: toy.png: " in err  # it did reconstruct; saving failed
        line = err.strip().splitlines()[-1]
        assert re.fullmatch(
            rf"reconstruct\.py: error: '{re.escape(str(folder))}/scene\.blend' cannot be "
            r"written: the disk is full \(\d+ KB free\)\.",
            line,
        ), err
        assert os.listdir(folder) == []  # neither scene.blend nor Blender's scene.blend@
