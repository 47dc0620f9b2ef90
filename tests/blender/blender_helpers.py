"""What the Blender tests share: running the operator, driving its timer, reading what a user sees."""

from __future__ import annotations

import time

import bpy
import numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

WEIGHT_FREE = {"segment": "KEY", "depth": "INFLATE", "mesh": "GRID", "max_size": 96}


# ------------------------------------------------------------------------------ helpers


def reconstruct(**options):
    """Run the operator as a button does (with its undo step); returns its result set."""
    return bpy.ops.img2mesh.reconstruct("EXEC_DEFAULT", True, **options)


def drive(timeout: float = 120.0) -> list[float]:
    """Call the add-on's timer until it says it is done, as Blender's event loop would."""
    from img2mesh_addon import operators

    seen, deadline = [], time.monotonic() + timeout
    while operators.tick() is not None:
        job = operators.running_job()
        if job is not None:
            seen.append(job.overall)
        assert time.monotonic() < deadline, "the background run did not finish"
        time.sleep(0.02)
    # Blender drops a timer that returns None; bpy never calls it, so do that here.
    if bpy.app.timers.is_registered(operators.tick):
        bpy.app.timers.unregister(operators.tick)
    return seen


def drive_until(predicate, timeout: float = 60.0) -> None:
    """Drive the timer until ``predicate(job)`` holds for the running job."""
    from img2mesh_addon import operators

    deadline = time.monotonic() + timeout
    while True:
        job = operators.running_job()
        assert job is not None, "the run ended early"
        if predicate(job):
            return
        assert operators.tick() is not None
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.02)


def loading(job) -> bool:
    """Whether the worker has begun loading a depth model during this job."""
    return any(stage == "depth" and m.startswith("Loading ") for stage, m in job.messages)


def undo() -> None:
    window = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=window, screen=window.screen):
        bpy.ops.ed.undo()


def datablocks() -> dict[str, set[str]]:
    return {
        kind: {block.name for block in getattr(bpy.data, kind)}
        for kind in ("objects", "meshes", "materials", "cameras", "images")
    }


def colors(mesh) -> np.ndarray:
    attribute = mesh.color_attributes["Color"]
    rgba = np.zeros(len(attribute.data) * 4, dtype=np.float32)
    attribute.data.foreach_get("color_srgb", rgba)
    return rgba.reshape(-1, 4)[:, :3]


def positions(mesh) -> np.ndarray:
    co = np.zeros(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def pixels_seen_by_camera(obj, cam, samples: np.ndarray) -> np.ndarray:
    """(row, col) of the photo that the camera sees at the given vertices (fractional)."""
    scene = bpy.context.scene
    w, h = scene.render.resolution_x, scene.render.resolution_y
    out = []
    for v in positions(obj.data)[samples]:
        ndc = world_to_camera_view(scene, cam, obj.matrix_world @ Vector(v.tolist()))
        out.append(((1.0 - ndc.y) * h - 0.5, ndc.x * w - 0.5))
    return np.array(out)


def seen_by_camera(obj, cam, samples: np.ndarray) -> np.ndarray:
    """Which of the sampled vertices the camera sees: the ray from the camera to each first
    meets the mesh there (the hidden side's colours are filled, not the photo's)."""
    inverse = obj.matrix_world.inverted()
    eye = inverse @ cam.matrix_world.translation
    out = []
    for v in positions(obj.data)[samples]:
        target = Vector(v.tolist())
        ray = target - eye
        hit, location, *_ = obj.ray_cast(eye, ray.normalized(), distance=ray.length + 1.0)
        out.append(bool(hit) and (location - target).length <= 1e-4 * ray.length)
    return np.array(out)


def worker_module():
    from img2mesh_addon import worker_client

    return worker_client


def wait_gone(proc, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


class RecordingLayout:
    """Stands in for UILayout, which only exists while Blender draws a window.

    It runs the add-on's draw code for real and checks what it names: every property
    drawn exists on the (real) data it is drawn from, every button's operator exists.
    """

    def __init__(self, log: list) -> None:
        self.log = log

    def _sub(self, *args, **kwargs):
        return RecordingLayout(self.log)

    row = column = box = split = _sub

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, name
        self.log.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties and hasattr(search_data, search_name)
        self.log.append(("prop", name))

    def label(self, *, text="", icon="NONE"):
        assert icon in bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items
        self.log.append(("label", text))

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name), idname
        self.log.append(("operator", idname))
        return type("Properties", (), {})()

    def progress(self, *, factor, type, text):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", text))
