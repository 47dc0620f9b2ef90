"""scripts/reconstruct.py without a UI: in the real Blender binary (Debian's 3.4) and with the bpy module."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "reconstruct.py"
BLENDER = shutil.which("blender")


def clean_environment() -> dict:
    """This process's environment without what an imported bpy sets for itself.

    bpy 5.x points OCIO (at the C level, so only a child that inherits the real environment
    sees it) and MaterialX at its own 5.x data files, which Blender 3.4 cannot read (its
    OpenColorIO 2.1 aborts on a 2.5 config). ``os.environ`` holds neither C-level change.
    """
    return {
        key: value
        for key, value in os.environ.items()
        if key not in ("OCIO", "MATERIALX_SEARCH_PATH", "PXR_MTLX_STDLIB_SEARCH_PATHS")
    }


def blender_env(tmp_path: Path) -> dict:
    """Blender's user folders in a throwaway place (3.4 reads these; 4.2+ BLENDER_USER_RESOURCES)."""
    env = {**clean_environment(), "PYTHONNOUSERSITE": "1"}
    for var in ("BLENDER_USER_SCRIPTS", "BLENDER_USER_CONFIG", "BLENDER_USER_DATAFILES"):
        env[var] = str(tmp_path / "blender-user" / var.rsplit("_", 1)[1].lower())
    env.pop("IMG2MESH_PYTHON", None)  # the script is told where the core is
    return env


@pytest.fixture(scope="module")
def blender_binary():
    if BLENDER is None:
        pytest.skip("no `blender` binary on PATH")
    probe = subprocess.run(
        [BLENDER, "-b", "--factory-startup", "--python-expr", "import numpy"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environment(),
    )
    if probe.returncode != 0 or "ModuleNotFoundError" in probe.stdout + probe.stderr:
        pytest.skip(f"{BLENDER}'s Python has no numpy (apt-get install python3-numpy)")
    return BLENDER


def run(command: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def blend_facts(path: Path, rgb: np.ndarray) -> dict:
    """Open the .blend with bpy 4.5 and read what a user would look at."""
    bpy = pytest.importorskip("bpy")
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    bpy.ops.wm.open_mainfile(filepath=str(path))
    obj = bpy.data.objects["toy"]
    mesh = obj.data
    attribute = mesh.color_attributes["Color"]
    rgba = np.zeros(len(attribute.data) * 4, dtype=np.float32)
    attribute.data.foreach_get("color_srgb", rgba)
    colors = rgba.reshape(-1, 4)[:, :3]
    co = np.zeros(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)

    scene, cam = bpy.context.scene, bpy.context.scene.camera
    h, w = rgb.shape[:2]
    from blender_helpers import seen_by_camera

    samples = np.random.default_rng(1).choice(len(co), 200, replace=False)
    samples = samples[seen_by_camera(obj, cam, samples)]  # the hidden side's colours are filled
    matches = 0
    for i in samples:
        ndc = world_to_camera_view(scene, cam, obj.matrix_world @ Vector(co[i].tolist()))
        r, c = round((1.0 - ndc.y) * h - 0.5), round(ndc.x * w - 0.5)
        matches += bool((np.rint(colors[i] * 255) == rgb[r, c]).all())
    bsdf = next(n for n in obj.active_material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    link = bsdf.inputs["Base Color"].links[0]
    return {
        "objects": sorted(o.name for o in scene.objects),
        "faces": len(mesh.polygons),
        "attribute": (attribute.data_type, attribute.domain),
        # the photo texture, packed into the saved .blend, on a UV map
        "base_color_from": (link.from_node.type, link.from_node.image.packed_file is not None),
        "uv_maps": [layer.name for layer in mesh.uv_layers],
        "matching_colours": matches / max(len(samples), 1),
        "seen_samples": len(samples),
        "fov_deg": math.degrees(cam.data.angle_x),
        "resolution": (scene.render.resolution_x, scene.render.resolution_y),
    }


def test_real_blender_binary_reconstructs_and_saves(
    blender_binary, photo, tiny_models, core_python, data_dir, tmp_path
):
    png, rgb = photo
    blend = tmp_path / "scene.blend"
    command = [
        blender_binary, "-b", "--factory-startup", "--python-exit-code", "1",
        "--python", str(SCRIPT), "--",
        str(png), "--out", str(blend),
        "--segment", "rembg", "--rembg-model", str(tiny_models / "tiny_seg.onnx"),
        "--model-dir", str(tiny_models / "tiny-glpn"),
        "--mesh", "grid", "--max-size", "160", "--fov", "50",
        "--python-env", str(core_python.parents[1]), "--data-dir", str(data_dir),
    ]  # fmt: skip
    done = run(command, blender_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    # The script's own line (Blender's start-up banner also says "Blender 3.").
    assert re.search(r"^reconstruct\.py: Blender 3\.\d+\S*, add-on ", done.stdout, re.M), (
        done.stdout
    )
    assert f"reconstruct.py: saved {blend}" in done.stdout

    facts = blend_facts(blend, rgb)
    assert facts["objects"] == ["toy", "toy Camera"]  # the startup cube, light, camera are gone
    assert facts["faces"] > 1000
    assert facts["attribute"] == ("BYTE_COLOR", "POINT")
    assert facts["base_color_from"] == ("TEX_IMAGE", True)
    assert facts["uv_maps"] == ["UVMap"]
    assert facts["matching_colours"] == 1.0 and facts["seen_samples"] >= 40
    assert facts["fov_deg"] == pytest.approx(50.0, abs=1e-3)
    assert facts["resolution"] == (160, 120)


def test_zip_installs_as_a_legacy_addon_in_blender_3(blender_binary, photo, core_python, tmp_path):
    build = run(
        [sys.executable, str(REPO / "scripts" / "build_extension.py"), "--out", str(tmp_path)],
        dict(os.environ),
    )
    assert build.returncode == 0, build.stderr
    zip_path = build.stdout.strip()
    install = (
        "import bpy, addon_utils; "
        f"bpy.ops.preferences.addon_install(filepath={zip_path!r}); "
        "assert addon_utils.enable('img2mesh', default_set=True) is not None"
    )
    blend = tmp_path / "legacy.blend"
    command = [
        blender_binary, "-b", "--factory-startup", "--python-exit-code", "1",
        "--python-expr", install,
        "--python", str(SCRIPT), "--",
        str(photo[0]), "--out", str(blend), "--installed",
        "--segment", "key", "--depth", "inflate", "--mesh", "grid", "--max-size", "96",
        "--python-env", str(core_python), "--data-dir", str(tmp_path / "data"),
    ]  # fmt: skip
    env = blender_env(tmp_path)
    done = run(command, env)
    assert done.returncode == 0, done.stdout + done.stderr
    # the installed legacy add-on ran, not the repository's img2mesh_addon
    assert re.search(r"^reconstruct\.py: Blender \S+, add-on img2mesh$", done.stdout, re.M), (
        done.stdout
    )
    installed = Path(env["BLENDER_USER_SCRIPTS"]) / "addons" / "img2mesh"
    assert (installed / "blender_manifest.toml").is_file()
    assert blend_facts(blend, photo[1])["faces"] > 100


def test_bpy_module_runs_the_same_script(photo, core_python, data_dir, tmp_path):
    pytest.importorskip("bpy")
    blend = tmp_path / "scene.blend"
    command = [
        sys.executable, str(SCRIPT), str(photo[0]), "--out", str(blend),
        "--segment", "key", "--depth", "inflate", "--mesh", "grid", "--max-size", "160",
        "--data-dir", str(data_dir),
    ]  # fmt: skip
    env = {**os.environ, "IMG2MESH_PYTHON": str(core_python)}
    done = run(command, env)
    assert done.returncode == 0, done.stdout + done.stderr
    facts = blend_facts(blend, photo[1])
    assert facts["objects"] == ["toy", "toy Camera"]
    assert facts["matching_colours"] == 1.0 and facts["seen_samples"] >= 40


def test_headless_errors_are_one_sentence_and_a_nonzero_status(photo, core_python, tmp_path):
    pytest.importorskip("bpy")
    env = {**os.environ, "IMG2MESH_PYTHON": str(core_python)}
    base = [sys.executable, str(SCRIPT), "--segment", "key", "--depth", "inflate"]
    missing = tmp_path / "nope.jpg"
    done = run([*base, str(missing), "--out", str(tmp_path / "a.blend")], env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"reconstruct.py: error: The image '{missing}' does not exist."
    )
    assert not (tmp_path / "a.blend").exists()

    (tmp_path / "b.blend").write_bytes(b"")
    done = run([*base, str(photo[0]), "--out", str(tmp_path / "b.blend")], env)
    assert done.returncode == 1
    assert "exists already; pass --overwrite to replace it." in done.stderr

    done = run([*base, str(photo[0]), "--out", str(tmp_path / "c.blend"), "--mesh", "cube"], env)
    assert done.returncode == 2  # argparse: a bad option
