"""The importer in a real Blender binary (blender -b), and its .blend read back by bpy."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.blender

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SCRIPT = HERE / "run_in_blender.py"
BLENDER = shutil.which("blender")
INTRINSICS = {"fx": 600.0, "fy": 600.0, "cx": 330.0, "cy": 231.5, "width": 640, "height": 480}


def write_png(path: Path, width: int = 4, height: int = 3) -> None:
    """A tiny 8-bit RGB PNG, written without any imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 60, y * 80, 128)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def write_result(path: Path) -> dict:
    """A small coloured grid result, laid out as docs/result-format.md says."""
    nx, ny = 6, 5
    zs, xs = np.mgrid[0:ny, 0:nx].astype(np.float32)
    vertices = np.stack([xs.ravel() * 0.2, 0.05 * np.cos(xs.ravel()), zs.ravel() * 0.2], 1)
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    colors = np.random.default_rng(3).integers(0, 256, (nx * ny, 3)) / 255.0
    arrays = {
        "vertices": vertices.astype(np.float32),
        "faces": faces.astype(np.int32),
        "colors": colors.astype(np.float32),
        "intrinsics": json.dumps(INTRINSICS),
        "camera_location": np.array([0.5, -3.0, 0.4]),
        "camera_rotation": np.array([np.pi / 2, 0.0, 0.0]),
        "image_path": str(path.with_name("photo.png")),
        "format_version": np.int32(1),
    }
    write_png(path.with_name("photo.png"))
    np.savez(path, **arrays)
    return arrays


def check_facts(facts: dict, arrays: dict) -> None:
    assert facts["vertices"] == len(arrays["vertices"])
    assert facts["faces"] == len(arrays["faces"])
    assert facts["attribute"] == ["Color", "BYTE_COLOR", "POINT"]
    assert facts["active_color"] == "Color"
    np.testing.assert_allclose(facts["srgb"], arrays["colors"], atol=1e-6)
    assert facts["smooth"]
    assert facts["base_color_from"] == ["VERTEX_COLOR", "Color"]
    assert facts["material"].startswith("Img2Mesh Vertex Colour")
    assert facts["camera"] == "Photo mesh Camera"
    assert facts["lens"] == pytest.approx(600.0 * 36.0 / 640.0, rel=1e-5)
    assert facts["resolution"] == [640, 480]
    assert facts["valid"]
    assert facts["background"] == [arrays["image_path"], [4, 3], "STRETCH"]


@pytest.fixture(scope="module")
def blender_run(tmp_path_factory):
    """Run the script once in the real Blender; gives the arrays written, the .blend and the facts."""
    if BLENDER is None:
        pytest.skip("no `blender` binary on PATH")
    tmp_path = tmp_path_factory.mktemp("real_blender")
    arrays = write_result(tmp_path / "result.npz")
    blend = tmp_path / "imported.blend"
    report = tmp_path / "report.json"
    command = [
        BLENDER, "-b", "--factory-startup", "--python-exit-code", "1",
        "--python", str(SCRIPT), "--",
        "--addon-parent", str(REPO_ROOT),
        "--result", str(tmp_path / "result.npz"),
        "--blend", str(blend),
        "--report", str(report),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONNOUSERSITE": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    output = run.stdout + run.stderr
    if run.returncode == 3 and "no usable numpy" in output:
        pytest.skip(
            f"{BLENDER}'s Python cannot import numpy (apt-get install python3-numpy): "
            f"{output.strip().splitlines()[-1]}"
        )
    assert run.returncode == 0, output
    return arrays, blend, json.loads(report.read_text())


def test_import_save_and_reopen_in_real_blender(blender_run):
    arrays, blend, facts = blender_run
    assert blend.is_file()
    print(f"checked in Blender {facts['reopened']['blender']}")
    check_facts(facts["imported"], arrays)
    check_facts(facts["reopened"], arrays)


def test_blend_from_real_blender_opens_in_bpy(blender_run):
    bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not importable")
    arrays, blend, _ = blender_run
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    mesh = bpy.data.objects["Photo mesh"].data
    attribute = mesh.color_attributes["Color"]
    rgba = np.zeros(len(attribute.data) * 4, dtype=np.float32)
    attribute.data.foreach_get("color_srgb", rgba)
    np.testing.assert_allclose(rgba.reshape(-1, 4)[:, :3], arrays["colors"], atol=1e-6)
    assert len(mesh.polygons) == len(arrays["faces"])
    assert bpy.context.scene.camera.data.lens == pytest.approx(600.0 * 36.0 / 640.0, rel=1e-5)
