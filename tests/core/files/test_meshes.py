"""Tests for writing meshes and previews, and for the committed example files."""

from __future__ import annotations

import errno
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import InputError, OutputError
from core.files import atomic, meshes
from core.files.glb import linear_to_srgb
from core.files.meshes import read_mesh, write_mesh
from core.files.preview import simplify_for_preview, write_preview
from core.geometry.camera import Camera, fov_from_35mm, intrinsics_from_fov
from core.geometry.mesh import Mesh
from core.protocol import srgb_to_linear

FORMATS = (".ply", ".obj", ".glb")
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def uv_sphere(rings: int = 12, segments: int = 24, radius: float = 1.0, centre=(0, 0, 0)) -> Mesh:
    """A closed sphere with outward winding, unit normals and colours that vary per vertex."""
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    unit = np.vstack([[0, 0, 1], ring, [0, 0, -1]])
    faces = []
    s = segments
    for j in range(s):
        faces.append((0, 1 + j, 1 + (j + 1) % s))
        last = 1 + (rings - 2) * s
        faces.append((len(unit) - 1, last + (j + 1) % s, last + j))
    for i in range(rings - 2):
        for j in range(s):
            a, b = 1 + i * s + j, 1 + i * s + (j + 1) % s
            faces += [(a, a + s, b), (b, a + s, b + s)]
    colors = (unit + 1) / 2
    colors[0] = (1.0, 0.0, 0.0)  # exact 0 and 1 survive every format
    return Mesh(unit * radius + np.asarray(centre), faces, colors, unit)


@pytest.fixture
def mesh() -> Mesh:
    return uv_sphere()


@pytest.fixture
def mesh_no_normals() -> Mesh:
    m = uv_sphere(8, 16)
    return Mesh(m.vertices, m.faces, m.colors)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip(tmp_path, mesh, ext):
    path = write_mesh(mesh, tmp_path / f"m{ext}")
    assert path == tmp_path / f"m{ext}"
    back = read_mesh(path)
    assert back.n_vertices == mesh.n_vertices
    assert back.n_faces == mesh.n_faces
    np.testing.assert_array_equal(back.faces, mesh.faces)
    np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-5)
    np.testing.assert_allclose(back.colors, mesh.colors, atol=1 / 255 + 1e-6)
    assert back.normals is not None
    np.testing.assert_allclose(back.normals, mesh.normals, atol=1e-4)


@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip_without_normals(tmp_path, mesh_no_normals, ext):
    back = read_mesh(write_mesh(mesh_no_normals, tmp_path / f"m{ext}"))
    assert back.normals is None
    assert (back.n_vertices, back.n_faces) == (mesh_no_normals.n_vertices, mesh_no_normals.n_faces)
    np.testing.assert_allclose(back.vertices, mesh_no_normals.vertices, atol=1e-5)
    np.testing.assert_allclose(back.colors, mesh_no_normals.colors, atol=1 / 255 + 1e-6)


def test_ply_is_binary_little_endian_with_uchar_colours(tmp_path, mesh):
    data = write_mesh(mesh, tmp_path / "m.ply").read_bytes()
    header = data[: data.index(b"end_header\n")].decode("ascii").splitlines()
    assert header[1] == "format binary_little_endian 1.0"
    assert f"element vertex {mesh.n_vertices}" in header
    assert f"element face {mesh.n_faces}" in header
    assert [h for h in header if h.startswith("property")] == [
        *(f"property float {a}" for a in ("x", "y", "z", "nx", "ny", "nz")),
        *(f"property uchar {c}" for c in ("red", "green", "blue")),
        "property list uchar int vertex_indices",
    ]
    body = len(data) - data.index(b"end_header\n") - len(b"end_header\n")
    assert body == mesh.n_vertices * (6 * 4 + 3) + mesh.n_faces * (1 + 3 * 4)


def test_obj_has_vertex_colours(tmp_path, mesh):
    lines = write_mesh(mesh, tmp_path / "m.obj").read_text().splitlines()
    first_v = next(line for line in lines if line.startswith("v "))
    assert len(first_v.split()) == 7  # v x y z r g b
    assert sum(line.startswith("f ") for line in lines) == mesh.n_faces


def test_read_obj_polygons_and_negative_indices(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf -4 -3 -2 -1\n")
    back = read_mesh(path)
    np.testing.assert_array_equal(back.faces, [[0, 1, 2], [0, 2, 3]])
    np.testing.assert_allclose(back.colors, 0.5)


# --------------------------------------------------------------------------- GLB


def glb_parts(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<III", data)
    assert magic == 0x46546C67 and version == 2 and length == len(data)
    json_len, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_len % 4 == 0
    bin_len, bin_type = struct.unpack_from("<II", data, 20 + json_len)
    assert bin_type == 0x004E4942 and bin_len % 4 == 0
    assert 28 + json_len + bin_len == length
    doc = json.loads(data[20 : 20 + json_len])
    return doc, data[28 + json_len :]


def test_glb_structure(tmp_path, mesh):
    doc, binary = glb_parts(write_mesh(mesh, tmp_path / "m.glb"))
    assert doc["asset"]["version"] == "2.0"
    assert len(doc["meshes"]) == 1 and len(doc["nodes"]) == 1
    assert doc["buffers"][0]["byteLength"] <= len(binary)
    assert all(v["byteOffset"] % 4 == 0 for v in doc["bufferViews"])
    prim = doc["meshes"][0]["primitives"][0]
    assert set(prim["attributes"]) == {"POSITION", "NORMAL", "COLOR_0"}
    acc = doc["accessors"]

    pos = acc[prim["attributes"]["POSITION"]]
    assert (pos["type"], pos["componentType"], pos["count"]) == ("VEC3", 5126, mesh.n_vertices)
    np.testing.assert_allclose(pos["min"], mesh.vertices.min(axis=0))
    np.testing.assert_allclose(pos["max"], mesh.vertices.max(axis=0))

    idx = acc[prim["indices"]]
    assert (idx["componentType"], idx["type"], idx["count"]) == (5125, "SCALAR", 3 * mesh.n_faces)
    assert doc["bufferViews"][idx["bufferView"]]["target"] == 34963

    col = acc[prim["attributes"]["COLOR_0"]]
    assert (col["type"], col["componentType"]) == ("VEC3", 5126)
    view = doc["bufferViews"][col["bufferView"]]
    stored = np.frombuffer(binary, "<f4", 3 * mesh.n_vertices, view["byteOffset"]).reshape(-1, 3)
    # glTF colours are linear: sRGB 0.5 is stored as about 0.214.
    np.testing.assert_allclose(stored, srgb_to_linear(mesh.colors), atol=1e-6)

    material = doc["materials"][prim["material"]]
    assert "baseColorTexture" not in material["pbrMetallicRoughness"]
    assert material["pbrMetallicRoughness"]["baseColorFactor"] == [1.0, 1.0, 1.0, 1.0]


def test_srgb_linear_conversions():
    assert srgb_to_linear(np.array([0.5]))[0] == pytest.approx(0.21404, abs=1e-5)
    c = np.linspace(0, 1, 256, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(c)), c, atol=1e-5)


# --------------------------------------------------------------------------- Open3D


@pytest.mark.parametrize("ext", [".ply", ".obj", ".glb"])
def test_open3d_reads_it(tmp_path, mesh, ext):
    o3d = pytest.importorskip("open3d")
    path = write_mesh(mesh, tmp_path / f"m{ext}")
    got = o3d.io.read_triangle_mesh(str(path))
    assert len(got.vertices) == mesh.n_vertices
    assert len(got.triangles) == mesh.n_faces
    assert got.has_vertex_colors()
    vertices = np.asarray(got.vertices)
    colors, expected_colors = np.asarray(got.vertex_colors), mesh.colors
    if ext == ".glb":
        # Open3D applies the node's Z-up -> glTF Y-up turn, (x, y, z) -> (x, z, -y),
        # and hands back COLOR_0 as stored: linear.
        vertices = vertices @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]])
        expected_colors = srgb_to_linear(mesh.colors)
    # Open3D's OBJ reader reorders vertices, so compare rows sorted by position.
    order_got = np.lexsort(np.round(vertices, 4).T)
    order_ref = np.lexsort(np.round(mesh.vertices, 4).T)
    np.testing.assert_allclose(vertices[order_got], mesh.vertices[order_ref], atol=1e-5)
    np.testing.assert_allclose(colors[order_got], expected_colors[order_ref], atol=1 / 255 + 1e-6)


# --------------------------------------------------------------------------- safety


@pytest.mark.parametrize("ext", FORMATS)
def test_failure_mid_write_leaves_nothing(tmp_path, mesh, monkeypatch, ext):
    def broken(m, f):
        f.write(b"half a mesh")
        raise RuntimeError("boom")

    monkeypatch.setitem(meshes._WRITERS, ext, broken)
    with pytest.raises(RuntimeError, match="boom"):
        write_mesh(mesh, tmp_path / f"m{ext}")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_old_file(tmp_path, mesh, monkeypatch):
    path = tmp_path / "m.ply"
    path.write_bytes(b"old")

    def broken(m, f):
        f.write(b"new")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(meshes._WRITERS, ".ply", broken)
    with pytest.raises(OutputError):
        write_mesh(mesh, path, overwrite=True)
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]


def test_no_overwrite_without_the_flag(tmp_path, mesh, mesh_no_normals):
    path = write_mesh(mesh_no_normals, tmp_path / "m.glb")
    before = path.read_bytes()
    with pytest.raises(OutputError) as err:
        write_mesh(mesh, path)
    assert str(err.value) == f"{path} exists; pass --overwrite to replace it."
    assert path.read_bytes() == before
    write_mesh(mesh, path, overwrite=True)
    assert read_mesh(path).n_vertices == mesh.n_vertices


def test_written_file_has_normal_permissions(tmp_path, mesh):
    mask = os.umask(0o022)
    try:
        path = write_mesh(mesh, tmp_path / "m.ply")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------- messages


def test_message_unsupported_extension(tmp_path, mesh):
    path = tmp_path / "m.stl"
    with pytest.raises(OutputError) as err:
        write_mesh(mesh, path)
    assert str(err.value) == (
        f"Cannot write {path}: '.stl' is not a supported mesh format; use .ply, .obj or .glb."
    )


def test_message_missing_folder(tmp_path, mesh):
    path = tmp_path / "nowhere" / "m.ply"
    with pytest.raises(OutputError) as err:
        write_mesh(mesh, path)
    assert str(err.value) == f"Cannot write {path}: the folder {path.parent} does not exist."


def test_message_folder_not_writable(tmp_path, mesh, monkeypatch):
    # chmod does not stop root, so make the temporary file fail the way a read-only folder does.
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    path = tmp_path / "m.obj"
    with pytest.raises(OutputError) as err:
        write_mesh(mesh, path)
    assert str(err.value) == f"Cannot write {path}: the folder {tmp_path} is not writable."


def test_message_folder_not_writable_checked_first(tmp_path, mesh, monkeypatch):
    monkeypatch.setattr(atomic.os, "access", lambda *a, **k: False)
    path = tmp_path / "m.ply"
    with pytest.raises(OutputError) as err:
        write_mesh(mesh, path)
    assert str(err.value) == f"Cannot write {path}: the folder {tmp_path} is not writable."


def test_message_disk_full(tmp_path, mesh, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    path = tmp_path / "m.glb"
    with pytest.raises(OutputError) as err:
        write_mesh(mesh, path)
    assert str(err.value) == f"Cannot write {path}: the disk is full."
    assert list(tmp_path.iterdir()) == []


def test_message_empty_mesh(tmp_path):
    path = tmp_path / "m.ply"
    with pytest.raises(OutputError) as err:
        write_mesh(Mesh(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3))), path)
    assert str(err.value) == f"Cannot write {path}: the mesh is empty."


def test_read_missing_file(tmp_path):
    path = tmp_path / "m.ply"
    with pytest.raises(InputError) as err:
        read_mesh(path)
    assert str(err.value) == f"Cannot read {path}: the file does not exist."


@pytest.mark.parametrize("cut", [0, 40, 200, -8])
def test_read_broken_glb(tmp_path, mesh, cut):
    good = write_mesh(mesh, tmp_path / "good.glb").read_bytes()
    path = tmp_path / "m.glb"
    path.write_bytes(b"not a glb file at all" if cut == 0 else good[:cut])
    with pytest.raises(InputError) as err:
        read_mesh(path)
    assert str(err.value) == f"Cannot read {path}: it is not a valid GLB file."


# --------------------------------------------------------------------------- preview


def red_toy() -> Mesh:
    """A saturated red ball on a blue one: colours a preview must show."""
    body, head = uv_sphere(40, 80), uv_sphere(30, 60, 0.6, (0.2, -0.1, 1.4))
    colors = np.vstack(
        [
            np.tile([0.1, 0.2, 0.9], (body.n_vertices, 1)),
            np.tile([0.9, 0.1, 0.1], (head.n_vertices, 1)),
        ]
    )
    return Mesh(
        np.vstack([body.vertices, head.vertices]),
        np.vstack([body.faces, head.faces + body.n_vertices]),
        colors,
    )


def test_preview_png(tmp_path):
    path = write_preview(red_toy(), tmp_path / "p.png")
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == (800, 600)
        rgb = np.asarray(im.convert("RGB")).astype(int)
    red = (rgb[..., 0] > 120) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)
    blue = (rgb[..., 2] > 120) & (rgb[..., 0] < 60)
    assert red.sum() > 2000 and blue.sum() > 5000
    assert list(tmp_path.iterdir()) == [path]


def test_preview_shows_both_views_in_colour(tmp_path):
    """The front view fills the left half and the side view the right half, both in colour."""
    path = write_preview(red_toy(), tmp_path / "p.png")
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    background = np.all(np.abs(rgb - rgb[0, 0]) <= 2, axis=2)
    left, right = ~background[:, :400], ~background[:, 400:]
    # each half shows its object (titles alone are a few hundred pixels)
    assert left.sum() > 20000 and right.sum() > 20000
    for half in (rgb[:, :400], rgb[:, 400:]):
        red = (half[..., 0] > 120) & (half[..., 1] < 60) & (half[..., 2] < 60)
        blue = (half[..., 2] > 120) & (half[..., 0] < 60)
        assert red.sum() > 500 and blue.sum() > 2000
    # no hairline gaps: inside the blue body almost no pixel is background
    rows, cols = np.nonzero(left)
    y0, y1 = np.percentile(rows, [40, 60]).astype(int)
    x0, x1 = np.percentile(cols, [40, 60]).astype(int)
    assert background[y0:y1, x0:x1].mean() < 0.01


def test_preview_draws_a_big_mesh_from_a_small_copy(tmp_path, monkeypatch):
    """A 150k-face mesh is drawn from about 8,000 faces, both views in its colour (how long
    it takes is the benchmark's: bench/run.py times the preview)."""
    from core.files import preview

    drawn = []
    real = preview._render_png

    def spy(mesh, *args):
        drawn.append(mesh.n_faces)
        return real(mesh, *args)

    monkeypatch.setattr(preview, "_render_png", spy)
    big = uv_sphere(250, 300)
    big = Mesh(big.vertices, big.faces, np.tile([0.2, 0.7, 0.3], (big.n_vertices, 1)))
    assert big.n_faces > 140_000
    path = write_preview(big, tmp_path / "p.png")
    assert len(drawn) == 1 and 4000 <= drawn[0] <= 10_000
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    green = (rgb[..., 1] > 100) & (rgb[..., 0] < 90) & (rgb[..., 2] < 90)
    assert green[:, :400].sum() > 20000 and green[:, 400:].sum() > 20000


def test_preview_with_camera_and_options(tmp_path):
    camera = Camera(intrinsics_from_fov(640, 480, 40.0), (0.0, -6.0, 1.0))
    path = write_preview(
        red_toy(), tmp_path / "p.png", camera=camera, size=(400, 300), side_view=False
    )
    with Image.open(path) as im:
        assert im.size == (400, 300)


def test_preview_errors(tmp_path):
    with pytest.raises(OutputError) as err:
        write_preview(red_toy(), tmp_path / "p.jpg")
    assert str(err.value) == f"Cannot write {tmp_path / 'p.jpg'}: a preview must be a .png file."
    path = write_preview(red_toy(), tmp_path / "p.png")
    with pytest.raises(OutputError) as err:
        write_preview(red_toy(), path)
    assert str(err.value) == f"{path} exists; pass --overwrite to replace it."
    write_preview(red_toy(), path, overwrite=True)


def test_simplify_for_preview_keeps_shape_and_colour():
    big = red_toy()
    small = simplify_for_preview(big, 3000)
    assert 500 < small.n_faces <= 3300
    np.testing.assert_allclose(small.vertices.min(axis=0), big.vertices.min(axis=0), atol=0.15)
    np.testing.assert_allclose(small.vertices.max(axis=0), big.vertices.max(axis=0), atol=0.15)
    # Clusters only average colours of one part except along the seam.
    red = np.all(np.abs(small.colors - [0.9, 0.1, 0.1]) < 1e-5, axis=1)
    assert red.mean() > 0.1
    assert simplify_for_preview(big, 10**9) is big


# --------------------------------------------------------------------------- examples


def test_example_files_are_consistent():
    info = json.loads((EXAMPLES / "toy.json").read_text())
    intr = info["intrinsics"]
    width, height = intr["width"], intr["height"]
    for name in ("toy.jpg", "toy_depth.png", "toy_mask.png", "toy.json"):
        assert (EXAMPLES / name).stat().st_size < 150_000, name

    with Image.open(EXAMPLES / info["image"]) as im:
        assert im.size == (width, height)
        exif = im.getexif().get_ifd(0x8769)
        rgb = np.asarray(im.convert("RGB")).astype(int)
    focal_35 = exif[0xA405]  # FocalLengthIn35mmFilm
    assert focal_35 == info["focal_length_35mm"]
    assert float(exif[0x920A]) == info["lens_mm"]  # FocalLength
    assert fov_from_35mm(focal_35) == pytest.approx(info["fov_deg"])

    expected = intrinsics_from_fov(width, height, fov_from_35mm(focal_35))
    for key, value in expected.to_dict().items():
        assert intr[key] == pytest.approx(value), key
    assert (intr["cx"], intr["cy"]) == ((width - 1) / 2, (height - 1) / 2)

    with Image.open(EXAMPLES / info["depth"]) as im:
        assert im.mode == "I;16"
        depth = np.asarray(im).astype(np.float64) * info["depth_scale"]
    with Image.open(EXAMPLES / info["mask"]) as im:
        assert im.mode == "L"
        mask = np.asarray(im)
    assert depth.shape == mask.shape == (height, width)
    assert set(np.unique(mask)) == {0, 255}
    np.testing.assert_array_equal(depth > 0, mask == 255)
    assert 0.05 < (mask > 0).mean() < 0.5

    # The background is plain light grey, the object clearly different (colour keying).
    background = rgb[mask == 0]
    assert np.abs(background - info["background_srgb"]).max(axis=1).mean() < 2
    far = np.abs(rgb[mask == 255] - info["background_srgb"]).max(axis=1) > 40
    assert far.mean() > 0.9

    # Back-projected with the intrinsics, object pixels land on the known spheres:
    # this fails if the depth were distance along the ray or the rows were flipped.
    v, u = np.nonzero(mask)
    z = depth[v, u]
    points = np.stack([(u - intr["cx"]) * z / intr["fx"], (v - intr["cy"]) * z / intr["fy"], z], 1)
    gaps = np.stack(
        [
            np.abs(np.linalg.norm(points - s["centre"], axis=1) - s["radius"])
            for s in info["spheres"]
        ]
    ).min(axis=0)
    on_sphere = gaps < 0.0015
    assert on_sphere.mean() > 0.9  # the rest is the cone of the hat
    assert np.median(gaps[on_sphere]) < 0.0005
    assert math.isclose(info["depth_scale"], 0.001)


def test_preview_needs_no_matplotlib(tmp_path):
    """matplotlib is not a dependency of the core: the preview is drawn with OpenCV and
    Pillow (a Python without matplotlib writes the same picture)."""
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from tests.core.files.test_meshes import red_toy\n"
        "from core.files.preview import write_preview\n"
        "write_preview(red_toy(), sys.argv[2])\n"
    )
    root = Path(__file__).resolve().parents[3]
    target = tmp_path / "p.png"
    done = subprocess.run(
        [sys.executable, "-c", code, str(root), str(target)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    with Image.open(target) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    red = (rgb[..., 0] > 120) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)
    assert red.sum() > 2000
