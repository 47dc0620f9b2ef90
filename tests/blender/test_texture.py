"""The photo texture in Blender: UV map, packed image on the material's Base Color, colours kept."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip(
    "bpy",
    reason="bpy (Blender as a Python module) is not importable: run .venv-blender/bin/pytest tests/blender",
)
from blender_helpers import colors, pixels_seen_by_camera, reconstruct, worker_module  # noqa: E402
from conftest import run_core  # noqa: E402

from img2mesh_addon import importer  # noqa: E402

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def textured_result(core_python, tmp_path_factory):
    """A worker result of the toy oracle scene (photo 640x480, working size 320) and its photo."""
    folder = tmp_path_factory.mktemp("textured")
    npz, rgb, seen = folder / "toy.npz", folder / "rgb.npy", folder / "seen.npy"
    run_core(
        core_python,
        f"""
        import numpy as np
        from pathlib import Path
        from core.runs.pipeline import Pipeline
        from core.settings import Settings
        from core.oracle.scenes import make_scene
        from core.worker.results import write_result
        scene = make_scene("toy")
        rgba = np.dstack([scene.rgb, scene.mask.astype(np.uint8) * 255])
        result = Pipeline().run(
            rgba, Settings(depth="inflate", segment="none", cache=False, max_size=320)
        )
        write_result(result, Path({str(npz)!r}))
        np.save({str(rgb)!r}, scene.rgb)
        np.save({str(seen)!r}, result.texture.seen)
        """,
    )
    return importer.load_result(str(npz)), np.load(rgb), np.load(seen)


def _image_pixels(image) -> np.ndarray:
    """(H, W, 3) sRGB 0-255, row 0 at the top (Blender stores the bottom row first)."""
    w, h = image.size
    px = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(px)
    return px.reshape(h, w, 4)[::-1, :, :3] * 255.0


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    x0 = np.clip(np.floor(x).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, h - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def test_import_puts_the_photo_texture_on_the_material(textured_result, tmp_path):
    result, rgb, seen_faces = textured_result
    obj, cam = importer.import_result(bpy.context, result, name="toy")
    bpy.context.view_layer.update()  # the camera's matrix_world
    mesh = obj.data

    # a UV map and the colour attribute, both there
    assert importer.UV_MAP in mesh.uv_layers
    assert importer.COLOR_ATTRIBUTE in mesh.color_attributes
    # Base Color comes from an Image Texture node reading that UV map
    bsdf = next(n for n in obj.active_material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    node = bsdf.inputs["Base Color"].links[0].from_node
    assert node.type == "TEX_IMAGE"
    assert node.inputs["Vector"].links[0].from_node.uv_map == importer.UV_MAP
    image = node.image
    assert image.packed_file is not None
    assert image.colorspace_settings.name == "sRGB"

    # what the material samples, seen through the photo's camera, is the photo
    uv = np.empty(len(mesh.loops) * 2, np.float32)
    mesh.uv_layers[importer.UV_MAP].data.foreach_get("uv", uv)
    uv = uv.reshape(-1, 3, 2)
    seen = np.nonzero(seen_faces)[0]
    pixels = _image_pixels(image)
    h, w = pixels.shape[:2]
    rng = np.random.default_rng(1)
    faces = rng.choice(seen, 300, replace=False)
    # each face's first corner: the texel there against the photo pixel the camera sees there
    corners = np.array([mesh.polygons[int(f)].vertices[0] for f in faces])
    texel = _sample(pixels, uv[faces, 0, 0] * w - 0.5, (1 - uv[faces, 0, 1]) * h - 0.5)
    rows_cols = pixels_seen_by_camera(obj, cam, corners)
    # the camera is the working image's (320 px); the texture the full 640-px photo's
    scale = rgb.shape[1] / bpy.context.scene.render.resolution_x
    assert scale == 2.0 and (w > 320 or h > 240)
    full = (rows_cols + 0.5) * scale - 0.5
    photo = _sample(rgb.astype(np.float64), full[:, 1], full[:, 0])
    assert np.median(np.abs(texel - photo).max(axis=1)) < 2.0

    # the packed image travels with the .blend
    path = tmp_path / "toy.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    again = bpy.data.objects["toy"].active_material.node_tree.nodes
    image = next(n for n in again if n.type == "TEX_IMAGE").image
    assert image.packed_file is not None and tuple(image.size) == (w, h)


def test_without_texture_the_vertex_colours_stay_on_the_material(textured_result):
    result = textured_result[0]
    obj, _ = importer.import_result(bpy.context, result, name="toy", texture=False)
    assert len(obj.data.uv_layers) == 0
    bsdf = next(n for n in obj.active_material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    assert bsdf.inputs["Base Color"].links[0].from_node.type == "VERTEX_COLOR"
    assert len(bpy.data.images) == 0


def test_a_broken_texture_is_a_clear_error_and_leaves_nothing(textured_result):
    result = textured_result[0]
    bad = dict(result, texture_png=np.frombuffer(b"not a png at all", np.uint8))
    with pytest.raises(importer.ResultError, match="PNG"):
        importer.import_result(bpy.context, bad, name="toy")
    bad = dict(result, texture_uv=np.asarray(result["texture_uv"])[:5])
    with pytest.raises(importer.ResultError, match="texture_uv"):
        importer.import_result(bpy.context, bad, name="toy")
    assert len(bpy.data.objects) == len(bpy.data.meshes) == len(bpy.data.images) == 0


def test_vertex_colours_only_option(addon, photo):
    png, _ = photo
    common = dict(filepath=str(png), segment="KEY", depth="INFLATE", mesh="GRID", max_size=160)
    assert reconstruct(vertex_colors_only=True, **common) == {"FINISHED"}
    obj = bpy.data.objects["toy"]
    assert len(obj.data.uv_layers) == 0
    assert worker_module().last_job.done["report"]["texture"] is None
    bpy.data.objects.remove(obj)
    assert reconstruct(**common) == {"FINISHED"}
    obj = bpy.data.objects["toy"]
    assert importer.UV_MAP in obj.data.uv_layers
    assert worker_module().last_job.done["report"]["texture"]["source_size"] == [160, 120]
    assert colors(obj.data).shape == (len(obj.data.vertices), 3)
