"""What a user sees after the add-on imports a result: object, colours, material, camera."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

bpy = pytest.importorskip(
    "bpy",
    reason="bpy (Blender as a Python module) is not importable: run .venv-blender/bin/pytest tests/blender",
)
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402

from img2mesh_addon import importer  # noqa: E402

pytestmark = pytest.mark.blender

#: core/geometry/camera.py's convention: OpenCV camera point (x, y, z) -> output frame (x, z, -y).
CAMERA_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
CAMERA_ROTATION = (math.pi / 2.0, 0.0, 0.0)


def coloured_grid(nx: int = 5, ny: int = 4):
    """A bumpy grid in the XZ plane (facing a camera on -Y) with distinct colours per vertex."""
    zs, xs = np.mgrid[0:ny, 0:nx].astype(np.float32)
    vertices = np.stack([xs.ravel(), 0.1 * np.sin(xs.ravel() + zs.ravel()), zs.ravel()], axis=1)
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)]).astype(np.int32)
    rng = np.random.default_rng(7)
    colors = rng.random((nx * ny, 3)).astype(np.float32)  # not multiples of 1/255 on purpose
    colors[0] = (0.0, 0.0, 0.0)
    colors[1] = (1.0, 1.0, 1.0)
    colors[2] = (0.5, 0.04045, 0.003)  # around the sRGB curve's linear segment
    return vertices.astype(np.float32), faces, colors


def back_projected(intr: dict, pixels, depths, location):
    """World points that the photo's camera sees at ``pixels`` (u, v) at ``depths``."""
    u, v = np.asarray(pixels, dtype=np.float64).T
    z = np.asarray(depths, dtype=np.float64)
    cam = np.stack([(u - intr["cx"]) * z / intr["fx"], (v - intr["cy"]) * z / intr["fy"], z], 1)
    return cam @ CAMERA_TO_WORLD.T + np.asarray(location)


def make_result(intr: dict, location=(0.1, -4.0, 0.7), image_path: str = "") -> dict:
    w, h = intr["width"], intr["height"]
    pixels = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), ((w - 1) / 2, (h - 1) / 2)]
    pixels += [(0.3 * w, 0.7 * h), (0.8 * w, 0.1 * h), (0.5 * w, 0.9 * h), (17.25, h / 3)]
    depths = np.linspace(2.0, 5.0, len(pixels))
    vertices = back_projected(intr, pixels, depths, location).astype(np.float32)
    faces = np.array([[0, 1, 4], [1, 3, 4], [3, 2, 4], [2, 0, 4], [5, 6, 7], [6, 7, 8]], np.int32)
    colors = np.linspace(0.0, 1.0, len(pixels) * 3, dtype=np.float32).reshape(-1, 3)
    return {
        "vertices": vertices,
        "faces": faces,
        "colors": colors,
        "intrinsics": np.array(json.dumps(intr)),
        "camera_location": np.array(location, dtype=np.float64),
        "camera_rotation": np.array(CAMERA_ROTATION, dtype=np.float64),
        "image_path": np.array(image_path),
        "format_version": np.array(1),
        "pixels": np.array(pixels, dtype=np.float64),
    }


def datablocks() -> dict[str, set[str]]:
    return {
        kind: {block.name for block in getattr(bpy.data, kind)}
        for kind in ("objects", "meshes", "materials", "cameras", "images")
    }


def srgb_colors(mesh) -> np.ndarray:
    attribute = mesh.color_attributes[importer.COLOR_ATTRIBUTE]
    rgba = np.zeros(len(attribute.data) * 4, dtype=np.float32)
    attribute.data.foreach_get("color_srgb", rgba)
    return rgba.reshape(-1, 4)


def save_png(path, width: int = 8, height: int = 6) -> None:
    image = bpy.data.images.new("photo", width, height)
    image.pixels.foreach_set(np.linspace(0, 1, width * height * 4, dtype=np.float32))
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)


INTRINSICS = {
    "landscape, centred": {"fx": 500.0, "fy": 500.0, "cx": 319.5, "cy": 239.5, "width": 640, "height": 480},
    "landscape, off-centre, fx > fy": {"fx": 560.0, "fy": 500.0, "cx": 300.2, "cy": 250.7, "width": 640, "height": 480},
    "landscape, fy > fx": {"fx": 470.0, "fy": 520.0, "cx": 330.0, "cy": 220.0, "width": 640, "height": 480},
    "portrait, off-centre, fy > fx": {"fx": 450.0, "fy": 500.0, "cx": 250.0, "cy": 300.0, "width": 480, "height": 640},
    "portrait, fx > fy": {"fx": 900.0, "fy": 800.0, "cx": 200.0, "cy": 390.0, "width": 400, "height": 800},
    "landscape photo, taller view plane": {"fx": 400.0, "fy": 300.0, "cx": 320.0, "cy": 300.0, "width": 640, "height": 600},
}  # fmt: skip


# ------------------------------------------------------------------------ the mesh


def test_mesh_is_active_selected_and_alone_in_the_selection():
    other = bpy.data.objects.new("Other", None)
    bpy.context.collection.objects.link(other)
    other.select_set(True)
    bpy.context.view_layer.objects.active = other

    vertices, faces, colors = coloured_grid()
    obj = importer.import_mesh("Photo mesh", vertices, faces, colors)

    assert bpy.data.objects["Photo mesh"] == obj
    assert obj.name in bpy.context.collection.objects
    assert bpy.context.view_layer.objects.active == obj
    assert obj.select_get()
    assert not other.select_get()
    assert len(obj.data.vertices) == len(vertices)
    assert len(obj.data.polygons) == len(faces)
    assert all(len(p.vertices) == 3 for p in obj.data.polygons)
    co = np.zeros(len(vertices) * 3, dtype=np.float32)
    obj.data.vertices.foreach_get("co", co)
    np.testing.assert_array_equal(co.reshape(-1, 3), vertices)
    corners = np.zeros(len(faces) * 3, dtype=np.int32)
    obj.data.polygons.foreach_get("vertices", corners)
    np.testing.assert_array_equal(corners.reshape(-1, 3), faces)
    assert not obj.data.validate(verbose=True), "Blender had to correct the mesh"


def test_colour_attribute_holds_the_photo_colours():
    vertices, faces, colors = coloured_grid()
    mesh = importer.import_mesh("Colours", vertices, faces, colors).data

    attribute = mesh.color_attributes[importer.COLOR_ATTRIBUTE]
    assert attribute.domain == "POINT"
    assert attribute.data_type == "BYTE_COLOR"
    rgba = srgb_colors(mesh)
    np.testing.assert_allclose(rgba[:, :3], colors, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(rgba[:, 3], 1.0)
    # Exact for 8-bit values, which is what a photo holds.
    np.testing.assert_array_equal(rgba[:3, :3] * 255, np.round(colors[:3] * 255))
    group = mesh.color_attributes
    assert group.active_color.name == importer.COLOR_ATTRIBUTE
    assert group.render_color_index == group.active_color_index
    if hasattr(group, "default_color_name"):
        assert group.default_color_name == importer.COLOR_ATTRIBUTE


def test_linear_colour_read_back_is_the_srgb_decoding():
    vertices, faces, colors = coloured_grid()
    mesh = importer.import_mesh("Linear", vertices, faces, colors).data
    attribute = mesh.color_attributes[importer.COLOR_ATTRIBUTE]
    linear = np.zeros(len(attribute.data) * 4, dtype=np.float32)
    attribute.data.foreach_get("color", linear)
    stored_srgb = np.round(colors * 255) / 255
    np.testing.assert_allclose(
        linear.reshape(-1, 4)[:, :3], importer.srgb_to_linear(stored_srgb), atol=1e-4
    )


def test_uint8_colours_are_taken_as_0_to_255():
    vertices, faces, colors = coloured_grid()
    as_bytes = np.round(colors * 255).astype(np.uint8)
    mesh = importer.import_mesh("Bytes", vertices, faces, as_bytes).data
    np.testing.assert_array_equal(np.round(srgb_colors(mesh)[:, :3] * 255), as_bytes)


def test_material_base_color_reads_the_colour_attribute():
    vertices, faces, colors = coloured_grid()
    obj = importer.import_mesh("Material", vertices, faces, colors)

    assert len(obj.material_slots) == 1
    material = obj.active_material
    assert material.name.startswith(importer.MATERIAL_NAME)
    # API difference: 4.x materials draw with nodes only when use_nodes is set; 5.x materials
    # always have a node tree and deprecate use_nodes (removed in 6.0).
    if bpy.app.version < (5, 0, 0):
        assert material.use_nodes
    assert material.node_tree is not None
    bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    base = bsdf.inputs["Base Color"]
    assert base.is_linked
    source = base.links[0].from_node
    assert source.type == "VERTEX_COLOR"
    assert source.layer_name == importer.COLOR_ATTRIBUTE
    assert base.links[0].from_socket.name == "Color"
    output = next(n for n in material.node_tree.nodes if n.type == "OUTPUT_MATERIAL")
    assert output.inputs["Surface"].links[0].from_node == bsdf


def test_faces_are_smooth_shaded():
    vertices, faces, colors = coloured_grid()
    mesh = importer.import_mesh("Smooth", vertices, faces, colors).data
    smooth = np.zeros(len(mesh.polygons), dtype=bool)
    mesh.polygons.foreach_get("use_smooth", smooth)
    assert smooth.all()


def test_given_normals_become_the_shading_normals():
    vertices, faces, colors = coloured_grid()
    normals = np.tile(np.array([[0.0, -2.0, 0.0]], np.float32), (len(vertices), 1))
    normals[0] = (1.0, -1.0, 0.0)
    mesh = importer.import_mesh("Normals", vertices, faces, colors, normals=normals).data

    assert mesh.has_custom_normals
    expected = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    if hasattr(mesh, "corner_normals"):  # 4.1+
        got = np.zeros(len(mesh.loops) * 3, dtype=np.float32)
        mesh.corner_normals.foreach_get("vector", got)
    else:
        mesh.calc_normals_split()
        got = np.zeros(len(mesh.loops) * 3, dtype=np.float32)
        mesh.loops.foreach_get("normal", got)
    corner_vertex = np.zeros(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("vertex_index", corner_vertex)
    np.testing.assert_allclose(got.reshape(-1, 3), expected[corner_vertex], atol=1e-3)


def test_mesh_goes_into_the_given_collection():
    collection = bpy.data.collections.new("Results")
    bpy.context.scene.collection.children.link(collection)
    vertices, faces, colors = coloured_grid()
    obj = importer.import_mesh("In collection", vertices, faces, colors, collection=collection)
    assert obj.users_collection == (collection,)


def test_degenerate_triangles_are_dropped():
    vertices, faces, colors = coloured_grid()
    with_bad = np.concatenate([faces, [[0, 0, 1], [3, 4, 3]]]).astype(np.int32)
    mesh = importer.import_mesh("Degenerate", vertices, with_bad, colors).data
    assert len(mesh.polygons) == len(faces)
    assert not mesh.validate()


def test_validate_option_runs_blenders_validation():
    vertices, faces, colors = coloured_grid()
    mesh = importer.import_mesh("Validated", vertices, faces, colors, validate=True).data
    assert len(mesh.polygons) == len(faces)


# -------------------------------------------------------------------- the camera


@pytest.mark.parametrize("case", list(INTRINSICS))
def test_camera_field_of_view_matches_the_photo(case):
    intr = INTRINSICS[case]
    cam = importer.create_camera("Photo camera", intr, (0.0, -4.0, 0.5), CAMERA_ROTATION)
    scene = bpy.context.scene

    fov_x = math.degrees(2 * math.atan(intr["width"] / (2 * intr["fx"])))
    fov_y = math.degrees(2 * math.atan(intr["height"] / (2 * intr["fy"])))
    assert math.degrees(cam.data.angle_x) == pytest.approx(fov_x, abs=0.1)
    assert math.degrees(cam.data.angle_y) == pytest.approx(fov_y, abs=0.1)
    # What the camera really frames at the scene's render settings (lens shift included).
    frame = np.array([tuple(corner) for corner in cam.data.view_frame(scene=scene)])
    depth = -frame[0, 2]
    width, height = np.ptp(frame[:, 0]), np.ptp(frame[:, 1])
    assert math.degrees(2 * math.atan(width / (2 * depth))) == pytest.approx(fov_x, abs=0.1)
    assert math.degrees(2 * math.atan(height / (2 * depth))) == pytest.approx(fov_y, abs=0.1)
    assert scene.camera == cam
    assert (scene.render.resolution_x, scene.render.resolution_y) == (intr["width"], intr["height"])
    assert tuple(cam.location) == pytest.approx((0.0, -4.0, 0.5))
    assert tuple(cam.rotation_euler) == pytest.approx(CAMERA_ROTATION)


@pytest.mark.parametrize("case", list(INTRINSICS))
def test_vertices_project_to_their_pixels(case):
    intr = INTRINSICS[case]
    result = make_result(intr)
    obj, cam = importer.import_result(bpy.context, result, name="Projected")
    scene = bpy.context.scene
    bpy.context.view_layer.update()  # matrix_world follows location/rotation on evaluation

    w, h = intr["width"], intr["height"]
    for co, (u, v) in zip(obj.data.vertices, result["pixels"], strict=True):
        ndc = world_to_camera_view(scene, cam, obj.matrix_world @ co.co)
        # Normalised frame coordinates from the bottom-left corner -> OpenCV pixel centres.
        got_u = ndc.x * w - 0.5
        got_v = (1.0 - ndc.y) * h - 0.5
        assert (got_u, got_v) == pytest.approx((u, v), abs=0.01), (case, u, v)


def test_projection_through_cores_output_frame():
    core_camera = pytest.importorskip("core.geometry.camera", reason="core is not importable here")
    core_mesh = core_camera
    intr = core_camera.Intrinsics(530.0, 530.0, 301.0, 255.0, 640, 480)
    pixels = np.array([(10.0, 20.0), (600.0, 400.0), (320.0, 100.0), (50.0, 470.0)])
    depths = np.array([2.0, 3.0, 2.5, 4.0])
    points = back_projected(intr.to_dict(), pixels, depths, (0.0, 0.0, 0.0))
    cam_frame = points @ CAMERA_TO_WORLD  # back to the OpenCV frame
    mesh = core_mesh.Mesh(cam_frame, np.array([[0, 1, 2], [1, 2, 3]]), np.full((4, 3), 0.5))
    out, camera = core_mesh.to_output_frame(mesh, intr, "test")
    result = {
        "vertices": out.vertices,
        "faces": out.faces,
        "colors": out.colors,
        "intrinsics": np.array(json.dumps(intr.to_dict())),
        "camera_location": np.array(camera.location),
        "camera_rotation": np.array(camera.rotation_euler),
    }
    obj, cam = importer.import_result(bpy.context, result, name="Core")
    bpy.context.view_layer.update()
    for co, (u, v) in zip(obj.data.vertices, pixels, strict=True):
        ndc = world_to_camera_view(bpy.context.scene, cam, co.co)
        assert (ndc.x * 640 - 0.5, (1 - ndc.y) * 480 - 0.5) == pytest.approx((u, v), abs=0.01)


def test_photo_is_the_camera_background(tmp_path):
    photo = tmp_path / "photo.png"
    save_png(photo)
    intr = INTRINSICS["landscape, centred"]
    _, cam = importer.import_result(
        bpy.context, make_result(intr, image_path=str(photo)), name="Bg"
    )

    assert cam.data.show_background_images
    background = cam.data.background_images[0]
    assert background.image.filepath == str(photo)
    assert tuple(background.image.size) == (8, 6)
    assert background.frame_method == "STRETCH"


def test_a_missing_photo_only_loses_the_background(tmp_path):
    intr = INTRINSICS["landscape, centred"]
    result = make_result(intr, image_path=str(tmp_path / "gone.jpg"))
    obj, cam = importer.import_result(bpy.context, result, name="No photo")
    assert obj.name in bpy.data.objects
    assert len(cam.data.background_images) == 0
    assert len(bpy.data.images) == 0


def test_camera_clipping_covers_the_mesh():
    intr = INTRINSICS["landscape, centred"]
    result = make_result(intr, location=(0.0, -400.0, 0.0))
    result["vertices"] = result["vertices"] * 100  # far away and big
    _, cam = importer.import_result(bpy.context, result, name="Far")
    dist = np.linalg.norm(result["vertices"] - np.array([0.0, -400.0, 0.0]), axis=1)
    assert cam.data.clip_start <= dist.min()
    assert cam.data.clip_end >= dist.max()


def test_import_without_camera_leaves_the_scene_camera_alone():
    intr = INTRINSICS["landscape, centred"]
    result = make_result(intr)
    del result["intrinsics"], result["camera_location"]
    obj, cam = importer.import_result(bpy.context, result, name="Mesh only", create_camera=False)
    assert cam is None
    assert bpy.context.scene.camera is None
    assert len(bpy.data.cameras) == 0
    assert bpy.context.view_layer.objects.active == obj


def test_importing_twice_keeps_both():
    result = make_result(INTRINSICS["landscape, centred"])
    first, _ = importer.import_result(bpy.context, result, name="Twice")
    second, cam = importer.import_result(bpy.context, result, name="Twice")
    assert (first.name, second.name) == ("Twice", "Twice.001")
    assert cam.name == "Twice.001 Camera"
    assert bpy.context.scene.camera == cam
    assert first.active_material != second.active_material
    assert [o.name for o in bpy.context.selected_objects] == ["Twice.001"]


# --------------------------------------------------------------- the result file


def test_npz_file_round_trip(tmp_path):
    intr = INTRINSICS["portrait, off-centre, fy > fx"]
    result = make_result(intr)
    path = tmp_path / "result.npz"
    np.savez(path, **{k: v for k, v in result.items() if k != "pixels"})
    loaded = importer.load_result(str(path))
    obj, cam = importer.import_result(bpy.context, loaded, name="From file")
    assert len(obj.data.vertices) == len(result["vertices"])
    assert cam.data.lens == pytest.approx(intr["fy"] * importer.SENSOR_MM / intr["height"])


def test_intrinsics_as_six_numbers():
    intr = INTRINSICS["landscape, off-centre, fx > fy"]
    result = make_result(intr)
    result["intrinsics"] = np.array([intr[k] for k in ("fx", "fy", "cx", "cy", "width", "height")])
    _, cam = importer.import_result(bpy.context, result, name="Array intrinsics")
    assert cam.data.lens == pytest.approx(intr["fx"] * importer.SENSOR_MM / intr["width"])


def test_unreadable_result_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(importer.ResultError, match="cannot be read"):
        importer.load_result(str(bad))
    with pytest.raises(importer.ResultError, match="does not exist"):
        importer.load_result(str(tmp_path / "missing.npz"))


def test_newer_layout_is_refused():
    result = make_result(INTRINSICS["landscape, centred"])
    result["format_version"] = np.array(importer.RESULT_FORMAT_VERSION + 1)
    with pytest.raises(importer.ResultError, match="Update the add-on"):
        importer.import_result(bpy.context, result, name="Future")


# ------------------------------------------------------------------- all or nothing


def test_out_of_range_face_is_a_clear_error_and_leaves_nothing():
    before = datablocks()
    result = make_result(INTRINSICS["landscape, centred"])
    result["faces"] = result["faces"].copy()
    result["faces"][2, 1] = len(result["vertices"]) + 5
    with pytest.raises(importer.ResultError, match=r"refers to vertex 14, but the mesh has only 9"):
        importer.import_result(bpy.context, result, name="Broken")
    assert datablocks() == before

    vertices, faces, colors = coloured_grid()
    with pytest.raises(importer.ResultError, match="refers to vertex -1"):
        importer.import_mesh("Broken", vertices, np.array([[0, 1, -1]]), colors)
    assert datablocks() == before


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("colors", np.zeros((3, 3), np.float32), "one RGB row per vertex"),
        ("colors", np.full((9, 3), 128.0, np.float32), "look like 0-255 floats"),
        ("vertices", np.full((9, 3), np.nan, np.float32), "not finite"),
        ("faces", np.zeros((2, 4), np.int32), "triangles"),
        ("intrinsics", np.array('{"fx": 1}'), "lack fy, cx, cy, width, height"),
        ("camera_location", np.array([1.0, 2.0]), "three finite numbers"),
    ],
)
def test_bad_inputs_are_clear_errors_and_leave_nothing(key, value, message):
    before = datablocks()
    result = make_result(INTRINSICS["landscape, centred"])
    result[key] = value
    with pytest.raises(importer.ResultError, match=message):
        importer.import_result(bpy.context, result, name="Bad")
    assert datablocks() == before


def test_failure_half_way_removes_what_was_made(tmp_path, monkeypatch):
    photo = tmp_path / "photo.png"
    save_png(photo)
    before = datablocks()
    built = importer._build_camera

    def build_then_fail(*args):
        built(*args)  # mesh, material, image, camera data and object all exist now
        raise RuntimeError("injected failure")

    monkeypatch.setattr(importer, "_build_camera", build_then_fail)
    result = make_result(INTRINSICS["landscape, centred"], image_path=str(photo))
    with pytest.raises(RuntimeError, match="injected failure"):
        importer.import_result(bpy.context, result, name="Half")
    assert datablocks() == before
    assert bpy.context.scene.camera is None


def test_failure_keeps_a_photo_that_was_already_loaded(tmp_path, monkeypatch):
    photo = tmp_path / "photo.png"
    save_png(photo)
    bpy.data.images.load(str(photo))
    before = datablocks()
    monkeypatch.setattr(importer, "_clip_range", lambda *a: 1 / 0)
    result = make_result(INTRINSICS["landscape, centred"], image_path=str(photo))
    with pytest.raises(ZeroDivisionError):
        importer.import_result(bpy.context, result, name="Half")
    assert datablocks() == before


# ------------------------------------------------------------------------ undo


def test_import_is_undone_in_one_step():
    """What the operator (bl_options UNDO) gets: one undo step removes the whole import.

    bpy in background mode starts without an undo stack; the first ed.undo_push creates it.
    """
    bpy.ops.ed.undo_push(message="Before import")
    before = datablocks()
    render = bpy.context.scene.render
    size_before = (render.resolution_x, render.resolution_y)
    importer.import_result(bpy.context, make_result(INTRINSICS["portrait, fx > fy"]), name="Undo")
    bpy.ops.ed.undo_push(message="Import photo mesh")
    assert "Undo" in bpy.data.objects
    assert bpy.context.scene.camera is not None

    bpy.ops.ed.undo()
    assert datablocks() == before
    assert bpy.context.scene.camera is None
    render = bpy.context.scene.render
    assert (render.resolution_x, render.resolution_y) == size_before

    bpy.ops.ed.redo()
    assert "Undo" in bpy.data.objects
    assert bpy.context.scene.camera.name == "Undo Camera"
    mesh = bpy.data.objects["Undo"].data
    assert len(srgb_colors(mesh)) == len(mesh.vertices)
