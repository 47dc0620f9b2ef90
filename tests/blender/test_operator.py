"""Reconstruct from Image in bpy 4.5: the operator, blocking and in the background, with a real worker.

The worker runs in the core's environment (.venv) exactly as in real use; the
models are the tiny random ones of tests/tiny_models.py, or none (colour key and
silhouette inflation).
"""

from __future__ import annotations

import math
import os
import signal
import time
from types import SimpleNamespace

import numpy as np
import pytest

bpy = pytest.importorskip(
    "bpy",
    reason="bpy (Blender as a Python module) is not importable: run .venv-blender/bin/pytest tests/blender",
)
from blender_helpers import (  # noqa: E402
    WEIGHT_FREE,
    RecordingLayout,
    colors,
    datablocks,
    drive,
    drive_until,
    loading,
    pixels_seen_by_camera,
    positions,
    reconstruct,
    seen_by_camera,
    undo,
    wait_gone,
    worker_module,
)
from conftest import configure, worker_pids  # noqa: E402

pytestmark = pytest.mark.blender

# ------------------------------------------------------------------- runs that land


def test_reconstruct_gives_the_photo_coloured_mesh_and_its_camera(
    addon, photo, tiny_models, temp_root
):
    png, rgb = photo
    bpy.ops.ed.undo_push(message="Before")
    result = reconstruct(
        filepath=str(png),
        segment="REMBG",
        rembg_model=str(tiny_models / "tiny_seg.onnx"),
        depth="MODEL",
        depth_model=str(tiny_models / "tiny-glpn"),
        mesh="GRID",
        max_size=160,
        auto_fov=False,
        fov=math.radians(50.0),
    )
    assert result == {"FINISHED"}
    done = worker_module().last_job.done

    obj = bpy.data.objects["toy"]
    assert obj.type == "MESH"
    assert bpy.context.view_layer.objects.active == obj and obj.select_get()
    assert [o.name for o in bpy.context.selected_objects] == ["toy"]
    mesh = obj.data
    assert len(mesh.polygons) == done["faces"] > 1000
    assert len(mesh.vertices) == done["vertices"]
    assert not mesh.validate()

    # Colours: a byte sRGB attribute on the points, the active and render one.
    attribute = mesh.color_attributes["Color"]
    assert (attribute.data_type, attribute.domain) == ("BYTE_COLOR", "POINT")
    assert mesh.color_attributes.active_color_name == "Color"
    assert mesh.color_attributes.render_color_index == mesh.color_attributes.active_color_index
    # ... equal to the photo's pixels where the photo's camera sees each vertex.
    cam = bpy.data.objects["toy Camera"]
    samples = np.random.default_rng(0).choice(len(mesh.vertices), 300, replace=False)
    samples = samples[seen_by_camera(obj, cam, samples)]
    assert len(samples) >= 90  # the grid's front: about half its vertices
    rows_cols = pixels_seen_by_camera(obj, cam, samples)
    # Grid vertices sit on pixel centres; only the back copies of border vertices lean
    # out, by at most 0.2 pixel (core.surface.grid._outward_lean), and keep their pixel's colour.
    off = np.abs(rows_cols - np.rint(rows_cols)).max(axis=1)
    assert off.max() < 0.201 and (off < 0.01).mean() >= 0.8, (off.max(), (off < 0.01).mean())
    r, c = np.rint(rows_cols).astype(int).T
    np.testing.assert_array_equal(
        np.rint(colors(mesh)[samples] * 255).astype(int), rgb[r, c].astype(int)
    )

    # The material shows the photo texture (tests/blender/test_texture.py), the colour
    # attribute's node still in its tree; faces are smooth.
    nodes = obj.active_material.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    assert bsdf.inputs["Base Color"].links[0].from_node.type == "TEX_IMAGE"
    assert [n.layer_name for n in nodes if n.type == "VERTEX_COLOR"] == ["Color"]
    smooth = np.zeros(len(mesh.polygons), dtype=bool)
    mesh.polygons.foreach_get("use_smooth", smooth)
    assert smooth.all()

    # The camera: the photo's field of view, resolution and the photo behind the mesh.
    scene = bpy.context.scene
    assert scene.camera == cam
    assert (scene.render.resolution_x, scene.render.resolution_y) == (160, 120)
    assert cam.data.sensor_fit == "HORIZONTAL"
    assert math.degrees(cam.data.angle_x) == pytest.approx(50.0, abs=1e-4)
    background = cam.data.background_images[0].image
    assert os.path.samefile(bpy.path.abspath(background.filepath), png)

    # Nothing left behind, and one undo takes it all away.
    assert list(temp_root.iterdir()) == []
    undo()
    assert "toy" not in bpy.data.objects and "toy Camera" not in bpy.data.objects
    assert len(bpy.data.meshes) == 0


def test_second_reconstruction_skips_the_model_load(addon, photo, tiny_models):
    bpy.context.preferences.addons["img2mesh_addon"].preferences.use_cache = False
    try:
        options = {
            "filepath": str(photo[0]),
            "segment": "KEY",
            "depth": "MODEL",
            "depth_model": str(tiny_models / "tiny-depth-anything"),
            "mesh": "GRID",
        }
        assert reconstruct(max_size=96, **options) == {"FINISHED"}
        first = worker_module().last_job
        assert reconstruct(max_size=128, **options) == {"FINISHED"}
        second = worker_module().last_job
    finally:
        bpy.context.preferences.addons["img2mesh_addon"].preferences.use_cache = True
    assert first.worker is second.worker and first.worker.alive()
    assert ("depth", f"Loading {tiny_models / 'tiny-depth-anything'}") in first.messages
    assert not loading(second), second.messages
    assert second.done["report"]["cache"]["depth"] is False  # it did run the network
    assert len(bpy.data.objects["toy.001"].data.polygons) == second.done["faces"]


def test_thickness_deepens_the_solid_and_reuses_the_last_solve(addon, photo):
    """Thickness: the closed solid reaches that share of the object's width behind it;
    changing only it in a warm worker stretches the last Poisson solid (no new solve)."""
    options = {**WEIGHT_FREE, "mesh": "POISSON", "filepath": str(photo[0])}
    assert reconstruct(**options) == {"FINISHED"}
    first = worker_module().last_job
    assert reconstruct(thickness=2.0, **options) == {"FINISHED"}
    second = worker_module().last_job
    assert first.worker is second.worker
    assert first.done["report"]["settings"]["thickness"] is None  # 0: from the outline
    assert second.done["report"]["settings"]["thickness"] == 2.0
    assert first.done["report"]["cache"]["surface"] is False
    assert second.done["report"]["cache"]["surface"] is True
    a, b = bpy.data.objects["toy"].data, bpy.data.objects["toy.001"].data
    assert len(a.polygons) == len(b.polygons) and not b.validate()
    # the camera looks along +Y: the solid's depth is its Y extent, about twice its width
    width, depth = np.ptp(positions(b)[:, 0]), np.ptp(positions(b)[:, 1])
    assert depth == pytest.approx(2.0 * width, rel=0.25)
    assert np.ptp(positions(a)[:, 1]) < 0.6 * depth


def test_offline_missing_model_says_why(addon, photo):
    before = datablocks()
    with pytest.raises(RuntimeError) as error:
        reconstruct(
            filepath=str(photo[0]), segment="KEY", depth_model="img2mesh-tests/no-such-model"
        )
    message = str(error.value)
    assert "could not be loaded" in message
    assert "Blender's online access is off (Preferences > System > Network)" in message
    assert datablocks() == before


def test_background_run_matches_the_blocking_one_and_is_one_undo_step(addon, photo, temp_root):
    from img2mesh_addon import operators

    # The grid is deterministic (Poisson runs on several threads and is not, quite).
    options = {"filepath": str(photo[0]), **WEIGHT_FREE, "max_size": 160}
    assert reconstruct(**options) == {"FINISHED"}
    blocking = bpy.data.objects["toy"].data
    expected = positions(blocking), colors(blocking), len(blocking.polygons)
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    # A fresh worker: the warm one would re-mesh this photo from its kept point cloud
    # between two timer ticks, and the progress the panel shows would not be seen.
    worker_module().shutdown()

    bpy.ops.ed.undo_push(message="Before")
    assert bpy.ops.img2mesh.reconstruct("EXEC_DEFAULT", True, background=True, **options) == {
        "CANCELLED"  # started: nothing changed yet, so no undo step of its own
    }
    assert operators.running_job() is not None
    assert "toy" not in bpy.data.objects  # only the timer imports, on the main thread
    progress = drive()
    assert progress == sorted(progress) and progress[-1] > 0.5
    obj = bpy.data.objects["toy"]
    np.testing.assert_array_equal(positions(obj.data), expected[0])
    np.testing.assert_array_equal(colors(obj.data), expected[1])
    assert len(obj.data.polygons) == expected[2]
    assert bpy.context.view_layer.objects.active == obj
    assert operators.runner.last_outcome.ok and operators.runner.last_outcome.text.startswith(
        "toy.png: "
    )
    assert list(temp_root.iterdir()) == []

    undo()
    assert "toy" not in bpy.data.objects and "toy Camera" not in bpy.data.objects


def test_a_second_reconstruction_is_refused_while_one_runs(addon, photo):
    options = {"filepath": str(photo[0]), **WEIGHT_FREE}
    reconstruct(background=True, **options)
    with pytest.raises(RuntimeError, match="A reconstruction is already running"):
        reconstruct(**options)
    with pytest.raises(RuntimeError, match="A reconstruction is already running"):
        reconstruct(background=True, **options)
    drive()
    assert [o.name for o in bpy.data.objects if o.type == "MESH"] == ["toy"]


def test_panel_options_are_used_when_the_operator_is_given_none(addon, photo):
    settings = bpy.context.scene.img2mesh
    settings.source = "FILE"
    settings.filepath = str(photo[0])
    settings.segment, settings.depth, settings.mesh = "KEY", "INFLATE", "GRID"
    settings.max_size, settings.trim, settings.create_camera = 64, True, False
    settings.auto_fov, settings.fov = False, math.radians(40.0)
    assert reconstruct() == {"FINISHED"}
    used = worker_module().last_job.done["report"]["settings"]
    assert (used["segment"], used["depth"], used["mesh"]) == ("key", "inflate", "grid")
    assert (used["max_size"], used["open"], used["fov"]) == (64, True, pytest.approx(40.0))
    assert "toy" in bpy.data.objects and len(bpy.data.cameras) == 0


def test_an_image_open_in_blender_packed_or_not(addon, photo, temp_root):
    png, rgb = photo
    image = bpy.data.images.load(str(png))
    assert reconstruct(image=image.name, **WEIGHT_FREE) == {"FINISHED"}
    cam = bpy.data.objects["toy Camera"]
    assert cam.data.background_images[0].image == image
    # the photo is not loaded twice (the other image is the mesh's texture)
    assert [i for i in bpy.data.images if i != image] == [bpy.data.images["toy Texture"]]

    image.pack()
    image.filepath = "//gone/elsewhere.png"  # only the packed pixels are left
    assert reconstruct(image=image.name, **WEIGHT_FREE) == {"FINISHED"}
    assert bpy.data.objects["toy.001"].type == "MESH"
    assert bpy.data.objects["toy.001 Camera"].data.background_images[0].image == image
    assert sorted(i.name for i in bpy.data.images if i != image) == [
        "toy Texture",
        "toy.001 Texture",
    ]
    assert list(temp_root.iterdir()) == []


# ---------------------------------------------------------------- runs that do not land


def test_a_user_error_is_one_sentence_and_leaves_nothing(addon, photo, temp_root):
    reconstruct(filepath=str(photo[0]), **WEIGHT_FREE)  # a warm worker
    worker = worker_module().current_worker()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    missing = temp_root.parent / "nope.jpg"
    with pytest.raises(RuntimeError) as error:
        reconstruct(filepath=str(missing), **WEIGHT_FREE)
    assert str(error.value).strip() == f"Error: The image '{missing}' does not exist."
    assert datablocks() == {k: set() for k in datablocks()}
    assert list(temp_root.iterdir()) == []
    assert worker_module().current_worker() is worker  # user errors keep the worker


def start_loading_run(photo, tiny_models, max_size: int):
    """A button-style (background) run with the tiny GLPN, driven until it loads the model; its job."""
    from img2mesh_addon import operators

    reconstruct(
        background=True,
        filepath=str(photo[0]),
        segment="KEY",
        depth="MODEL",
        depth_model=str(tiny_models / "tiny-glpn"),
        mesh="GRID",
        max_size=max_size,
    )
    drive_until(loading)
    return operators.running_job()


def test_cancel_keeps_the_warm_worker_and_leaves_the_scene_as_it_was(
    addon, photo, tiny_models, temp_root, monkeypatch
):
    """Cancel while the depth model loads: the run stops at its next step, the worker and its
    model stay, and the next run reports no model load."""
    from img2mesh_addon import operators

    worker_client = worker_module()
    worker_client.discard_worker()  # a fresh worker: its model load takes seconds
    monkeypatch.setattr(worker_client, "CANCEL_GRACE_SECONDS", 120.0)  # a slow machine's load
    bpy.context.preferences.addons["img2mesh_addon"].preferences.use_cache = False
    bpy.data.meshes.new("Existing")
    before = datablocks()
    try:
        job = start_loading_run(photo, tiny_models, 80)  # mid-run: loading the depth model
        process = job.worker.process
        assert bpy.ops.img2mesh.cancel() == {"FINISHED"}
        drive(timeout=150)
        assert job.state == "cancelled"
        assert process.poll() is None and worker_client.current_worker().process is process
        assert operators.running_job() is None and operators.tick() is None
        assert operators.runner.last_outcome.text == "Reconstruction cancelled."
        assert datablocks() == before
        assert list(temp_root.iterdir()) == []
        assert not bpy.ops.img2mesh.cancel.poll()  # Esc does its usual job again

        # The same worker serves the next run with the model it loaded.
        assert reconstruct(
            filepath=str(photo[0]),
            segment="KEY",
            depth="MODEL",
            depth_model=str(tiny_models / "tiny-glpn"),
            mesh="GRID",
            max_size=80,
        ) == {"FINISHED"}
    finally:
        bpy.context.preferences.addons["img2mesh_addon"].preferences.use_cache = True
    second = worker_client.last_job
    assert second.worker.process is process
    depth = [m for stage, m in second.messages if stage == "depth"]
    assert depth and not any(m.startswith("Loading ") for m in depth), depth


def test_a_killed_worker_is_reported_and_the_next_run_works(addon, photo, tiny_models, temp_root):
    from img2mesh_addon import operators

    worker_client = worker_module()
    worker_client.discard_worker()
    before = datablocks()
    job = start_loading_run(photo, tiny_models, 72)
    os.kill(job.worker.pid, signal.SIGKILL)
    drive()
    assert not operators.runner.last_outcome.ok
    assert operators.runner.last_outcome.text == (
        "The reconstruction worker stopped unexpectedly (killed by SIGKILL); "
        "the next run starts a new one."
    )
    assert datablocks() == before
    assert list(temp_root.iterdir()) == []

    assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}
    assert worker_client.current_worker().pid != job.worker.pid


def test_a_worker_that_died_while_idle_is_replaced_quietly(addon, photo):
    assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}
    worker = worker_module().current_worker()
    worker.process.kill()
    wait_gone(worker.process)
    assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}
    assert worker_module().current_worker().pid != worker.pid


def test_a_hung_worker_times_out_with_a_clear_message(addon, photo, tiny_models, temp_root):
    from img2mesh_addon import operators

    prefs = bpy.context.preferences.addons["img2mesh_addon"].preferences
    worker_module().discard_worker()
    prefs.timeout = 2
    job = start_loading_run(photo, tiny_models, 88)
    os.kill(job.worker.pid, signal.SIGSTOP)  # alive, silent, going nowhere
    drive(timeout=30)
    assert operators.runner.last_outcome.text == (
        "The reconstruction worker gave no sign of life for 2 seconds and was stopped; "
        "try again, or raise the timeout in the add-on's preferences."
    )
    wait_gone(job.worker.process)
    assert job.worker.process.poll() is not None
    assert list(temp_root.iterdir()) == []


def test_without_an_environment_the_error_says_what_to_do(addon, photo, monkeypatch):
    import sys

    monkeypatch.delenv("IMG2MESH_PYTHON")
    with pytest.raises(
        RuntimeError, match="There is no reconstruction environment yet: press Set up"
    ):
        reconstruct(filepath=str(photo[0]), **WEIGHT_FREE)
    # A Python without img2mesh (bpy's own): the worker cannot start, and says why.
    prefs = bpy.context.preferences.addons["img2mesh_addon"].preferences
    prefs.python_path = sys.executable
    try:
        with pytest.raises(RuntimeError) as error:
            reconstruct(filepath=str(photo[0]), **WEIGHT_FREE)
    finally:
        prefs.python_path = ""
    assert "The reconstruction environment cannot run the worker" in str(error.value)
    assert "No module named 'core'" in str(error.value)  # the reason, from the worker's stderr


def test_disabling_the_addon_stops_its_worker(addon, photo, data_dir):
    """An idle worker; disable and enable again: no orphan process, and the next run works."""
    import addon_utils

    assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}
    process = worker_module().current_worker().process
    assert worker_pids(data_dir) == [process.pid]
    addon_utils.disable("img2mesh_addon")
    try:
        assert process.poll() is not None
        assert worker_pids(data_dir) == []
        assert not hasattr(bpy.ops.img2mesh, "reconstruct") or not hasattr(
            bpy.types, "IMG2MESH_OT_reconstruct"
        )
    finally:
        addon_utils.enable("img2mesh_addon", default_set=True)
        configure(bpy.context.preferences.addons["img2mesh_addon"].preferences, data_dir)
    assert reconstruct(filepath=str(photo[0]), **WEIGHT_FREE) == {"FINISHED"}
    assert worker_pids(data_dir) == [worker_module().current_worker().pid] != [process.pid]


def test_panel_and_drop_target_are_registered(addon):
    from img2mesh_addon import panel

    assert panel.IMG2MESH_PT_main.bl_category == "Img2Mesh"
    assert hasattr(bpy.types, "IMG2MESH_PT_main")
    assert set(bpy.types.IMG2MESH_OT_reconstruct.bl_options) >= {"REGISTER", "UNDO"}
    handler = bpy.types.FileHandler.bl_rna_get_subclass_py("IMG2MESH_FH_image")
    assert handler.bl_import_operator == "img2mesh.reconstruct"
    assert ".jpg" in handler.bl_file_extensions.split(";")
    window = bpy.context.window_manager.windows[0]
    areas = {area.type: area for area in window.screen.areas}
    if "VIEW_3D" in areas:
        with bpy.context.temp_override(window=window, area=areas["VIEW_3D"]):
            assert handler.poll_drop(bpy.context)


def test_interactive_runs_take_the_panels_options_and_a_dropped_photo(addon, photo):
    """invoke (button, F3, drop) is not reachable without a window; its option rule is."""
    from img2mesh_addon import operators

    class Remembered:  # an operator whose properties Blender restored from an earlier run
        class properties:
            @staticmethod
            def is_property_set(name: str) -> bool:
                return name in ("filepath", "mesh", "max_size")

        filepath, mesh, max_size = "/dropped/photo.jpg", "POISSON", 2048

    settings = bpy.context.scene.img2mesh
    settings.filepath, settings.mesh, settings.max_size = str(photo[0]), "GRID", 64
    interactive = operators.resolve_options(Remembered(), bpy.context.scene, interactive=True)
    assert interactive["filepath"] == "/dropped/photo.jpg"  # the drop wins
    assert (interactive["mesh"], interactive["max_size"]) == ("GRID", 64)  # the panel wins
    scripted = operators.resolve_options(Remembered(), bpy.context.scene)
    assert (scripted["mesh"], scripted["max_size"]) == ("POISSON", 2048)  # what a script gave
    assert scripted["segment"] == settings.segment  # and the panel for the rest


def test_the_panel_and_preferences_draw_what_exists(addon, photo):
    from img2mesh_addon import environment, operators, panel, preferences

    def draw(cls) -> list:
        log: list = []
        cls.draw(SimpleNamespace(layout=RecordingLayout(log)), bpy.context)
        return log

    idle = draw(panel.IMG2MESH_PT_main)
    assert ("operator", "img2mesh.reconstruct") in idle
    assert {("prop", n) for n in ("source", "filepath", "mesh")} <= set(idle)
    options = draw(panel.IMG2MESH_PT_options)
    shown = ("segment", "depth", "trim", "auto_thickness", "simplify", "max_size")
    assert {("prop", n) for n in shown} <= set(options)

    reconstruct(background=True, filepath=str(photo[0]), **WEIGHT_FREE)
    running = draw(panel.IMG2MESH_PT_main)
    assert ("operator", "img2mesh.cancel") in running
    assert any(kind == "progress" for kind, _ in running)
    drive()
    after = draw(panel.IMG2MESH_PT_main)
    assert ("label", operators.runner.last_outcome.text) in after

    # AddonPreferences.layout cannot be replaced: draw a stand-in holding the real values.
    prefs = bpy.context.preferences.addons["img2mesh_addon"].preferences
    values = {p.identifier: getattr(prefs, p.identifier) for p in prefs.bl_rna.properties}
    log: list = []
    stand_in = SimpleNamespace(**values, bl_rna=prefs.bl_rna, layout=RecordingLayout(log))
    preferences.IMG2MESH_AddonPreferences.draw(stand_in, bpy.context)
    if ("label", "Checking…") in log:  # the check runs on a thread: draw again once done
        deadline = time.monotonic() + 60
        while environment.checking() and time.monotonic() < deadline:
            time.sleep(0.1)
        log.clear()
        preferences.IMG2MESH_AddonPreferences.draw(stand_in, bpy.context)
    assert ("operator", "img2mesh.setup_environment") in log
    assert any(kind == "label" and text.startswith("Ready: img2mesh") for kind, text in log)


# ------------------------------------------------------------------------ panel layout

#: Every state that decides which options the panels show.
LAYOUT_STATES = [
    {"source": source, "depth": depth, "mesh": mesh, "trim": trim}
    for source in ("FILE", "IMAGE", "PROMPT")
    for depth in ("MODEL", "INFLATE")
    for mesh in ("POISSON", "GRID")
    for trim in (False, True)
]


def drawn_props(cls, data, context) -> set[str]:
    """The properties ``cls.draw`` draws from ``data`` (which stands in for self when it is
    not a panel: an operator's properties)."""
    log: list = []
    if issubclass(cls, bpy.types.Panel):
        cls.draw(SimpleNamespace(layout=RecordingLayout(log)), context)
    else:
        cls.draw(SimpleNamespace(**data, layout=RecordingLayout(log)), context)
    return {name for kind, name in log if kind == "prop"}


def test_every_option_is_drawn_in_some_panel_and_the_rest_waits_closed(addon):
    """The main panel holds the everyday choices; everything else is in closed sub-panels,
    and across the states that show or hide options, every setting is drawn somewhere."""
    from img2mesh_addon import panel

    settings = bpy.context.scene.img2mesh
    panels = [c for c in panel.classes if issubclass(c, bpy.types.Panel)]
    assert panels[0] is panel.IMG2MESH_PT_main
    for sub in panels[1:]:
        assert sub.bl_parent_id == "IMG2MESH_PT_main" and "DEFAULT_CLOSED" in sub.bl_options
    everything = {p.identifier for p in settings.bl_rna.properties} - {"rna_type", "name"}

    drawn: set[str] = set()
    for state in LAYOUT_STATES:
        for name, value in state.items():
            setattr(settings, name, value)
        settings.poisson_depth, settings.thickness, settings.target_faces = 8, 1.0, 5000
        settings.steps, settings.auto_fov = 2, False
        for cls in panels:
            if not hasattr(cls, "poll") or cls.poll(bpy.context):
                drawn |= drawn_props(cls, None, bpy.context)
        main = drawn_props(panel.IMG2MESH_PT_main, None, bpy.context)
        assert main == {
            "source",
            {"FILE": "filepath", "IMAGE": "image", "PROMPT": "prompt"}[state["source"]],
            "mesh",
        }
        assert panel.IMG2MESH_PT_prompt.poll(bpy.context) == (state["source"] == "PROMPT")
    assert drawn == everything, everything - drawn

    # The redo panel (Adjust Last Operation) draws the operator's options the same way.
    op_rna = bpy.ops.img2mesh.reconstruct.get_rna_type()
    settings.depth, settings.mesh, settings.trim = "MODEL", "POISSON", False
    values = {name: getattr(settings, name) for name in everything - {"source"}}
    values.update(filepath="/a.jpg", image="a.jpg", prompt="a toy", bl_rna=op_rna)
    op_drawn = drawn_props(bpy.types.IMG2MESH_OT_reconstruct, values, bpy.context)
    hidden = {p.identifier for p in op_rna.properties if p.is_hidden} | {"rna_type"}
    assert hidden == {"rna_type", "rembg_model", "background"}
    assert op_drawn == {p.identifier for p in op_rna.properties} - hidden


def test_auto_shows_zero_as_auto_and_keeps_zero_for_the_request(addon, photo):
    """Auto switches on the options where 0 means automatic: the number is hidden while it
    is 0, and unticking Auto gives a number to edit; what the worker gets is unchanged."""
    from img2mesh_addon import panel

    settings = bpy.context.scene.img2mesh
    settings.mesh, settings.trim = "POISSON", False
    shown = lambda: drawn_props(panel.IMG2MESH_PT_options, None, bpy.context)  # noqa: E731
    assert settings.auto_poisson_depth and settings.auto_thickness and not settings.simplify
    assert not {"poisson_depth", "thickness", "target_faces"} & shown()
    assert {"auto_poisson_depth", "auto_thickness", "simplify"} <= shown()

    settings.auto_poisson_depth = False
    settings.auto_thickness = False
    settings.simplify = True
    assert (settings.poisson_depth, settings.thickness, settings.target_faces) == (8, 1.0, 50_000)
    assert {"poisson_depth", "thickness", "target_faces"} <= shown()
    settings.poisson_depth, settings.thickness = 6, 0.5
    settings.auto_poisson_depth = False  # unticking again keeps what was typed
    assert settings.poisson_depth == 6
    settings.thickness = 0.0  # typing 0 is Auto again
    assert settings.auto_thickness

    settings.filepath, settings.segment, settings.depth = str(photo[0]), "KEY", "INFLATE"
    settings.max_size, settings.target_faces = 96, 3000
    assert reconstruct() == {"FINISHED"}
    used = worker_module().last_job.done["report"]["settings"]
    assert (used["poisson_depth"], used["thickness"], used["target_faces"]) == (6, None, 3000)
    settings.auto_poisson_depth, settings.simplify = True, False
    assert (settings.poisson_depth, settings.target_faces) == (0, 0)
