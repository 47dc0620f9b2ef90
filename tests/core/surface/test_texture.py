"""The photo texture: seen faces carry the full-size photo, hidden ones a filled atlas; GLB/OBJ carry it."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.files.meshes import write_mesh
from core.geometry.camera import to_camera_frame
from core.oracle.scenes import make_scene
from core.runs.pipeline import Pipeline
from core.settings import Settings
from core.surface.texture import sample_texture
from core.surface.visibility import GRAZING_DEG

BARY = np.full((1, 3), 1.0 / 3.0)


@pytest.fixture(scope="module")
def big_toy():
    """The toy oracle scene photographed at 1280x960, with its true mask as alpha."""
    scene = make_scene("toy", width=1280, height=960)
    rgba = np.dstack([scene.rgb, scene.mask.astype(np.uint8) * 255])
    return scene, rgba


@pytest.fixture(scope="module")
def textured(big_toy):
    _, rgba = big_toy
    settings = Settings(depth="inflate", segment="none", cache=False, max_size=320)
    pipeline = Pipeline()
    return pipeline, pipeline.run(rgba, settings), settings


def _bilinear(image, x, y):
    from core.geometry.sampling import bilinear

    return bilinear(image, x, y)


def _project(result, points_out):
    """Output-frame points -> pixel coordinates in the full-size photo."""
    cam = to_camera_frame(
        type(result.mesh)(points_out, np.zeros((0, 3)), np.zeros_like(points_out)), result.camera
    ).vertices.astype(np.float64)
    K = result.camera.intrinsics.scaled(*result.photo.original_size)
    return K.fx * cam[:, 0] / cam[:, 2] + K.cx, K.fy * cam[:, 1] / cam[:, 2] + K.cy


def _inner_seen_faces(result, scene):
    """Seen faces whose centre projects well inside the object (away from the rim)."""
    from scipy import ndimage

    tex = result.texture
    mesh = result.mesh
    centres = mesh.vertices[mesh.faces].mean(axis=1)
    u, v = _project(result, centres)
    inner = ndimage.binary_erosion(scene.mask, iterations=6)
    ui = np.clip(np.rint(u).astype(int), 0, scene.mask.shape[1] - 1)
    vi = np.clip(np.rint(v).astype(int), 0, scene.mask.shape[0] - 1)
    return np.nonzero(tex.seen & inner[vi, ui])[0], u, v


def test_seen_texels_are_the_full_size_photo(textured, big_toy):
    scene, _ = big_toy
    _, result, _ = textured
    tex = result.texture
    assert result.photo.size == (320, 240)
    assert tex.info["source_size"] == [1280, 960]
    assert tex.info["sampled_texels_filled"] == 1.0
    assert tex.info["photo_scale"] == 1.0  # the object's crop of a 1280-px photo fits in 2048
    faces, u, v = _inner_seen_faces(result, scene)
    assert len(faces) > 1000
    got = sample_texture(tex, faces, np.repeat(BARY, len(faces), axis=0))
    want = _bilinear(scene.rgb, u[faces], v[faces])
    diff = np.abs(got - want).max(axis=1)
    assert np.median(diff) < 0.5
    assert np.percentile(diff, 99) < 2.0
    # and it is sharper than the working copy could be: the texture holds 4x the pixels
    crop = tex.info["crop"]
    assert crop[2] * crop[3] > 10 * result.mask.sum()


def test_hidden_faces_take_the_surface_colour_without_gaps(textured):
    _, result, _ = textured
    tex, mesh = result.texture, result.mesh
    hidden = np.nonzero(~tex.seen)[0]
    assert len(hidden) > 0.3 * mesh.n_faces  # a closed solid: the back is hidden
    rng = np.random.default_rng(0)
    bary = rng.dirichlet(np.ones(3), size=len(hidden))
    got = sample_texture(tex, hidden, bary)
    # faces away from any seen face carry the interpolated vertex colours: exactly,
    # except near the corner of a 2x2 cell whose extrapolated texel left 0-255 and was
    # clamped (a face across a sharp colour edge)
    on_seen = np.zeros(mesh.n_vertices, bool)
    on_seen[mesh.faces[tex.seen].ravel()] = True
    far = ~on_seen[mesh.faces[hidden]].any(axis=1)
    assert far.sum() > 100
    corners = mesh.colors[mesh.faces[hidden]] * 255.0
    want = (corners * bary[:, :, None]).sum(axis=1)
    err = np.abs(got[far] - want[far]).max(axis=1)
    assert np.mean(err) < 0.3 and np.percentile(err, 98) < 2.0, np.percentile(err, [50, 99])
    # where hidden meets seen, the hidden corner takes the photo's colour there: no seam
    seam = np.nonzero(~far)[0]
    seen_uv_at = {}
    for f in np.nonzero(tex.seen)[0]:
        for k in range(3):
            seen_uv_at[int(mesh.faces[f, k])] = (f, k)
    for i in seam[:200]:
        face = hidden[i]
        for k in range(3):
            vert = int(mesh.faces[face, k])
            if vert in seen_uv_at:
                f, kk = seen_uv_at[vert]
                b_hidden = np.zeros((1, 3))
                b_hidden[0, k] = 1.0
                b_seen = np.zeros((1, 3))
                b_seen[0, kk] = 1.0
                a = sample_texture(tex, np.array([face]), b_hidden)
                b = sample_texture(tex, np.array([f]), b_seen)
                assert np.abs(a - b).max() < 2.0


def test_grazing_and_back_faces_are_not_taken_from_the_photo(textured):
    _, result, _ = textured
    mesh = to_camera_frame(result.mesh, result.camera)
    tri = mesh.vertices[mesh.faces].astype(np.float64)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = tri.mean(axis=1)
    cos = np.abs((normal * centre).sum(1)) / (
        np.linalg.norm(normal, axis=1) * np.linalg.norm(centre, axis=1) + 1e-30
    )
    seen = result.texture.seen
    assert not (seen & (cos < math.cos(math.radians(GRAZING_DEG)))).any()
    # a closed solid's back faces point away and lie behind the front: none is seen
    facing_away = (normal * centre).sum(1) > 0
    assert 0 < seen.sum() < mesh.n_faces
    assert (seen & facing_away).sum() < 0.01 * seen.sum()


def test_remesh_bakes_the_texture_again_without_the_networks(textured, big_toy):
    pipeline, first, settings = textured
    _, rgba = big_toy
    thicker = pipeline.run(rgba, settings.replace(thickness=1.5, target_faces=3000))
    assert thicker.info["cache"]["pointcloud"] is True
    assert thicker.mesh.n_faces <= 3000 < first.mesh.n_faces
    assert thicker.texture.uv.shape == (thicker.mesh.n_faces, 3, 2)
    assert thicker.texture.info["source_size"] == [1280, 960]
    assert "texture" in thicker.timings
    for change in ({"open": True}, {"mesh": "grid"}):
        other = pipeline.run(rgba, settings.replace(**change))
        assert other.info["cache"]["pointcloud"] is True
        tex = other.texture
        assert tex.uv.shape == (other.mesh.n_faces, 3, 2), change
        assert tex.info["sampled_texels_filled"] == 1.0, change
        assert tex.info["seen_area_share"] > 0.3, change
    plain = pipeline.run(rgba, settings.replace(texture=False))
    assert plain.texture is None and plain.report()["texture"] is None


def test_small_texture_size_scales_the_photo_down(big_toy):
    _, rgba = big_toy
    result = Pipeline().run(
        rgba, Settings(depth="inflate", segment="none", cache=False, max_size=320, texture_size=256)
    )
    tex = result.texture
    assert max(tex.size) <= 256
    assert tex.info["sampled_texels_filled"] == 1.0
    assert tex.info["photo_scale"] < 1.0
    assert (tex.uv >= 0).all() and (tex.uv <= 1).all()


# --------------------------------------------------------------------------- files


def test_glb_and_obj_textures_load_back(tmp_path, textured, big_toy):
    trimesh = pytest.importorskip("trimesh")
    scene, _ = big_toy
    _, result, _ = textured
    faces, u, v = _inner_seen_faces(result, scene)
    want = _bilinear(scene.rgb, u[faces], v[faces])
    for ext in ("glb", "obj"):
        path = write_mesh(result.mesh, tmp_path / f"toy.{ext}")
        loaded = trimesh.load(path, force="mesh", process=False)
        image = loaded.visual.material.baseColorTexture if ext == "glb" else None
        if image is None:
            image = loaded.visual.material.image
        image = np.asarray(image.convert("RGB"))
        assert image.shape[:2] == result.texture.image.shape[:2]
        uv = np.asarray(loaded.visual.uv, dtype=np.float64)  # trimesh: v up, as OBJ
        # faces keep their order (GLB: its vertices are shown Y-up by a node rotation)
        lf = np.asarray(loaded.faces)
        assert len(lf) == result.mesh.n_faces
        edges = np.linalg.norm(np.diff(np.asarray(loaded.vertices)[lf[faces]], axis=1), axis=2)
        ours = result.mesh.vertices[result.mesh.faces[faces]]
        assert np.allclose(edges, np.linalg.norm(np.diff(ours, axis=1), axis=2), atol=1e-5)
        uvc = uv[lf[faces]].mean(axis=1)
        h, w = image.shape[:2]
        got = _bilinear(image, uvc[:, 0] * w - 0.5, (1 - uvc[:, 1]) * h - 0.5)
        assert np.median(np.abs(got - want).max(axis=1)) < 1.0, ext


def test_glb_layout(tmp_path, textured):
    _, result, _ = textured
    path = write_mesh(result.mesh, tmp_path / "toy.glb")
    data = path.read_bytes()
    (length,) = np.frombuffer(data[12:16], "<u4")
    doc = json.loads(data[20 : 20 + length])
    prim = doc["meshes"][0]["primitives"][0]
    assert {"POSITION", "NORMAL", "TEXCOORD_0", "_COLOR_0"} <= set(prim["attributes"])
    assert "COLOR_0" not in prim["attributes"]  # it would multiply (darken) the texture
    material = doc["materials"][prim["material"]]
    assert material["pbrMetallicRoughness"]["baseColorTexture"] == {"index": 0, "texCoord": 0}
    assert doc["images"][0]["mimeType"] == "image/png"
    # the vertex colours still come back
    from core.files.meshes import read_mesh

    back = read_mesh(path)
    assert back.n_faces == result.mesh.n_faces
    assert np.abs(back.colors.mean(0) - result.mesh.colors.mean(0)).max() < 0.05


def test_obj_writes_three_files_or_none(tmp_path, textured):
    _, result, _ = textured
    target = tmp_path / "toy.obj"
    (tmp_path / "toy.texture.png").write_bytes(b"old")
    from core.errors import OutputError

    with pytest.raises(OutputError, match="toy.texture.png exists"):
        write_mesh(result.mesh, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.texture.png"]
    write_mesh(result.mesh, target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.mtl", "toy.obj", "toy.texture.png"]
    assert "map_Kd toy.texture.png" in (tmp_path / "toy.mtl").read_text()
    assert (tmp_path / "toy.obj").read_text().splitlines()[1] == "mtllib toy.mtl"


def test_obj_failure_mid_write_leaves_nothing(tmp_path, textured, monkeypatch):
    _, result, _ = textured
    from core.surface import texture

    def broken(image):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(texture, "encode_png", broken)
    result.mesh.texture._png = None
    from core.errors import OutputError

    with pytest.raises((OutputError, OSError)):
        write_mesh(result.mesh, tmp_path / "toy.obj")
    assert list(tmp_path.iterdir()) == []


def _validator() -> list[str] | None:
    node = shutil.which("node")
    if node is None:
        return None
    probe = subprocess.run(
        [node, "-e", "require('gltf-validator')"], capture_output=True, text=True
    )
    return [node] if probe.returncode == 0 else None


def test_glb_passes_the_khronos_validator(tmp_path, textured):
    node = _validator()
    if node is None:
        pytest.skip("node with the gltf-validator package (NODE_PATH) is not available")
    _, result, _ = textured
    path = write_mesh(result.mesh, tmp_path / "toy.glb")
    script = (
        "const v=require('gltf-validator');const fs=require('fs');"
        "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[1])))"
        ".then(r=>{console.log(JSON.stringify(r.issues));})"
    )
    out = subprocess.run([*node, "-e", script, str(path)], capture_output=True, text=True)
    issues = json.loads(out.stdout)
    assert issues["numErrors"] == 0, issues["messages"][:5]
    assert issues["numWarnings"] == 0, issues["messages"][:5]


# --------------------------------------------------------------------------- CLI


def test_cli_texture_flags(tmp_path, big_toy):
    from PIL import Image

    from core.cli.main import main

    _, rgba = big_toy
    photo = tmp_path / "toy.png"
    Image.fromarray(rgba).save(photo)
    common = ["--depth", "inflate", "--max-size", "256", "-q", "--no-preview"]
    assert (
        main(
            [
                str(photo),
                "-o",
                str(tmp_path / "a.obj"),
                "--report",
                str(tmp_path / "a.json"),
                *common,
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["texture"]["source_size"] == [1280, 960]
    assert 0 < report["texture"]["photo_share"] <= 1
    assert sorted(report["outputs"]) == sorted(
        str(tmp_path / n) for n in ("a.obj", "a.mtl", "a.texture.png")
    )
    assert main([str(photo), "-o", str(tmp_path / "b.obj"), "--no-texture", *common]) == 0
    assert not (tmp_path / "b.mtl").exists() and not (tmp_path / "b.texture.png").exists()
    assert main([str(photo), "-o", str(tmp_path / "c.glb"), "--texture-size", "128", *common]) == 0
    # an existing texture image blocks the run before any work, unless --overwrite
    assert main([str(photo), "-o", str(tmp_path / "a.obj"), *common]) == 1
    assert main([str(photo), "-o", str(tmp_path / "a.obj"), "--overwrite", *common]) == 0


def test_cli_texture_size_message(tmp_path, capsys):
    from core.cli.main import main

    assert main(["missing.png", "--texture-size", "10"]) == 1
    assert "texture size must be between 64 and 16384" in capsys.readouterr().err


def test_a_large_jpeg_is_decoded_only_as_far_as_the_texture_needs(tmp_path, big_toy):
    """A JPEG much larger than the texture is decoded at a reduced size (draft), and
    the texture looks the same as one baked from the whole decoded photo."""
    from PIL import Image

    from core.files.photos import load_original
    from core.surface.texture import bake_texture

    scene, _ = big_toy
    path = tmp_path / "toy.jpg"
    Image.fromarray(scene.rgb).save(path, quality=95)
    settings = Settings(depth="inflate", segment="key", cache=False, max_size=320, texture_size=256)
    result = Pipeline().run(path, settings)
    tex = result.texture
    assert result.photo.original_size == (1280, 960)
    # the object's crop is over 700 px tall: a texture of 256 needs under half of it
    w, h = tex.info["source_size"]
    assert (w, h) in ((640, 480), (320, 240)), tex.info
    assert max(tex.size) <= 256 and tex.info["sampled_texels_filled"] == 1.0

    whole = load_original(result.photo)
    assert whole.size == (1280, 960)
    mesh_cam = to_camera_frame(result.mesh, result.camera)
    ref = bake_texture(
        mesh_cam, result.photo.rgb, result.mask, result.camera.intrinsics, whole, size=256
    )
    assert ref.info["source_size"] == [1280, 960]
    faces = np.nonzero(tex.seen & ref.seen)[0]
    assert len(faces) > 500
    bary = np.repeat(BARY, len(faces), axis=0)
    diff = np.abs(sample_texture(tex, faces, bary) - sample_texture(ref, faces, bary)).max(axis=1)
    assert np.median(diff) < 2.0 and np.percentile(diff, 95) < 8.0, np.percentile(diff, [50, 95])


def test_load_original_takes_the_smallest_draft_that_is_large_enough(tmp_path):
    from PIL import Image

    from core.files.photos import load_image, load_original

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (1500, 2000, 3), dtype=np.uint8)
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise
    Image.fromarray(img).save(path, quality=90, exif=exif.tobytes())
    photo = load_image(path, max_size=200)
    assert photo.original_size == (1500, 2000)
    assert load_original(photo).size == (1500, 2000)
    assert load_original(photo, 0.6).size == (1500, 2000)  # half would be too small
    assert load_original(photo, 0.3).size == (750, 1000)
    assert load_original(photo, 0.2).size == (375, 500)
    assert load_original(photo, 0.01).size == (188, 250)  # never below an eighth
    # a PNG has no draft: always whole
    png = tmp_path / "flat.png"
    Image.fromarray(img).save(png)
    assert load_original(load_image(png, max_size=200), 0.2).size == (2000, 1500)


@settings(max_examples=200, deadline=None)
@given(
    crop_w=st.integers(1, 3000),
    crop_h=st.integers(1, 3000),
    n_hidden=st.integers(0, 200_000),
    size=st.integers(64, 4096),
)
def test_the_atlas_always_holds_the_photo_and_its_cells(crop_w, crop_h, n_hidden, size):
    """A wide crop of odd width (77 x 24 texels with a few hidden faces) once got an atlas one
    texel narrower than the photo, and baking its texture failed: the photo region and every
    hidden face's cell must fit whatever the sizes."""
    import math

    from core.surface.texture import _cells_top, _layout

    scale, cell, width, height = _layout(crop_w, crop_h, n_hidden, size)
    pw, ph = max(1, round(crop_w * scale)), max(1, round(crop_h * scale))
    assert width >= pw and height >= ph
    if n_hidden:
        assert width % 2 == 0 or cell == 1
        rows = math.ceil(n_hidden / (width // cell))
        assert height >= _cells_top(ph) + rows * cell


def test_a_wide_small_crop_with_an_odd_width_is_baked():
    from core.surface.texture import _layout

    scale, cell, width, height = _layout(77, 24, 10, 2048)
    assert round(77 * scale) <= width and width % 2 == 0
