"""An undo or a file load while a background run goes on: no traceback, and the result
lands in the scene the user has then, or the panel says in one sentence why not."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip(
    "bpy",
    reason="bpy (Blender as a Python module) is not importable: run .venv-blender/bin/pytest tests/blender",
)
from blender_helpers import (  # noqa: E402
    WEIGHT_FREE,
    datablocks,
    drive,
    reconstruct,
    undo,
    worker_module,
)

pytestmark = pytest.mark.blender


def start(**options) -> object:
    """A button-style (background) run, started and not yet landed; its job."""
    from img2mesh_addon import runner

    assert reconstruct(background=True, **WEIGHT_FREE, **options) == {"CANCELLED"}
    job = runner.running_job()
    assert job is not None and "toy" not in bpy.data.objects
    return job


def test_undo_mid_run_frees_the_source_image_and_the_result_still_lands(addon, photo, temp_root):
    """The image the run reads is undone away before the result lands: the mesh and its
    camera still arrive (the camera shows the copy the run loaded), with no traceback."""
    from img2mesh_addon import runner

    png, _rgb = photo
    bpy.ops.ed.undo_push(message="Empty")
    image = bpy.data.images.load(str(png))
    image.pack()  # the run reads a temporary copy: a packed image has no file of its own
    image.filepath = "//gone/elsewhere.png"
    bpy.ops.ed.undo_push(message="Image loaded")
    start(image=image.name)
    undo()  # back before the image was loaded: the Image the request saw is freed
    assert len(bpy.data.images) == 0
    with pytest.raises(ReferenceError):
        image.name  # noqa: B018 (what a held reference would have met)

    drive()  # the timer lands the result: an exception here would fail the test
    assert runner.last_outcome.ok, runner.last_outcome.text
    assert runner.last_outcome.text.startswith("toy")
    obj = bpy.data.objects["toy"]
    assert obj.type == "MESH" and len(obj.data.polygons) > 100
    assert bpy.context.scene.objects.get("toy") == obj  # in the scene the user has now
    # The copy it loaded is packed: the temporary file it came from is gone.
    background = bpy.data.objects["toy Camera"].data.background_images[0].image
    assert background.packed_file is not None and background.name == "toy.png"
    assert tuple(background.size) == (160, 120)
    assert list(temp_root.iterdir()) == []


def test_undo_mid_run_then_the_result_lands_as_one_undo_step(addon, photo):
    bpy.ops.ed.undo_push(message="Before")
    bpy.data.meshes.new("Existing")
    bpy.ops.ed.undo_push(message="Mesh added")
    start(filepath=str(photo[0]))
    undo()  # the user undoes something else while the run goes on
    assert "Existing" not in bpy.data.meshes
    drive()
    assert "toy" in bpy.context.scene.objects
    undo()  # the import is its own step: undoing it leaves what the user had undone to
    assert "toy" not in bpy.data.objects and "Existing" not in bpy.data.meshes


@pytest.mark.parametrize("load", ["read_homefile", "open_mainfile"])
def test_a_file_opened_mid_run_cancels_it_with_one_sentence(addon, photo, tmp_path, load):
    """The result must not land in another file: the run stops, the worker stays, and the
    panel says why."""
    from img2mesh_addon import runner

    saved = tmp_path / "other.blend"
    bpy.data.meshes.new("In the other file").use_fake_user = True  # saved without a user
    bpy.ops.wm.save_as_mainfile(filepath=str(saved))
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    reconstruct(filepath=str(photo[0]), **WEIGHT_FREE)  # a warm worker
    worker = worker_module().current_worker()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)

    job = start(filepath=str(photo[0]))
    if load == "read_homefile":
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        expected = {k: set() for k in datablocks()}
    else:
        bpy.ops.wm.open_mainfile(filepath=str(saved))
        expected = {**{k: set() for k in datablocks()}, "meshes": {"In the other file"}}
    drive()
    assert job.state == "cancelled" and runner.running_job() is None
    assert runner.last_outcome.text == "Reconstruction cancelled: another file was opened."
    assert datablocks() == expected  # nothing landed in the file now open
    assert worker_module().current_worker() is worker and worker.alive()
    # and the next run lands in it
    assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}
    assert "toy" in bpy.context.scene.objects
