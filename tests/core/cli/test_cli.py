"""The command line end to end: files written and readable, colours present, report right, errors readable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli.main import main
from core.files.meshes import read_mesh

REPO = Path(__file__).resolve().parents[3]
TOY = REPO / "examples" / "toy.jpg"
TOY_DEPTH = REPO / "examples" / "toy_depth.png"
WEIGHT_FREE = ["--segment", "key", "--depth", "inflate"]


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """The real console entry point in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "core", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ.copy(),
        timeout=600,
    )


def open3d_mesh(path: Path):
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(str(path))
    assert len(mesh.triangles) > 0 and mesh.has_vertex_colors()
    return mesh


def photo_colour_agreement(mesh_path: Path, report: dict, photo: np.ndarray) -> float:
    """Mean |vertex colour - photo colour| over front vertices projected back into the photo."""
    from core.geometry.camera import Camera, Intrinsics, to_camera_frame

    cam = report["camera"]
    K = Intrinsics(**cam["intrinsics"])
    mesh = to_camera_frame(read_mesh(mesh_path), Camera(K, tuple(cam["location"])))
    v = mesh.vertices.astype(np.float64)
    u = np.round(v[:, 0] / v[:, 2] * K.fx + K.cx).astype(int)
    r = np.round(v[:, 1] / v[:, 2] * K.fy + K.cy).astype(int)
    ok = (u >= 0) & (u < K.width) & (r >= 0) & (r < K.height)
    # front-facing vertices only: the back of a closed solid shows no photo pixels
    if mesh.normals is not None:
        ok &= (mesh.normals * v).sum(axis=1) < 0
    img = np.asarray(Image.fromarray(photo).resize((K.width, K.height)))
    diff = np.abs(mesh.colors[ok] - img[r[ok], u[ok]] / 255.0)
    return float(np.median(diff))


def test_help_is_fast_and_lists_the_options():
    out = run_cli("--help")
    assert out.returncode == 0
    for flag in (
        "--segment",
        "--depth-map",
        "--fov",
        "--mesh",
        "--open",
        "--target-faces",
        "--report",
        "--overwrite",
    ):
        assert flag in out.stdout


@pytest.mark.parametrize(
    ("flags", "kind"),
    [(["--mesh", "grid"], "closed solid"), (["--mesh", "grid", "--open"], "open surface")],
)
def test_the_summary_names_what_was_built(tmp_path, flags, kind):
    """The grid is a closed solid too unless --open: the summary says what the file holds."""
    out = run_cli(TOY, "-o", tmp_path / "toy.ply", *WEIGHT_FREE, *flags, "--no-preview")
    assert out.returncode == 0, out.stderr
    assert f" vertices, {kind}, " in out.stdout.strip().splitlines()[-1]
    mesh = open3d_mesh(tmp_path / "toy.ply")
    assert mesh.is_edge_manifold(allow_boundary_edges=False) == (kind == "closed solid")


def test_weight_free_toy_end_to_end(tmp_path):
    """The quick start's fallback: colour key + inflation, no weights; all outputs written."""
    out = run_cli(TOY, "-o", tmp_path / "toy.ply", *WEIGHT_FREE, "--report", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    summary = out.stdout.strip().splitlines()[-1]
    assert (
        summary.startswith("toy.ply: ")
        and " faces, " in summary
        and " vertices, closed solid, " in summary
    )
    mesh = open3d_mesh(tmp_path / "toy.ply")
    # watertight as the issue defines it: no boundary edges, edge-manifold
    assert mesh.is_edge_manifold(allow_boundary_edges=False)
    preview = Image.open(tmp_path / "toy.preview.png")
    assert preview.size[0] > 100
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["counts"]["faces"] == len(mesh.triangles)
    assert report["depth"]["source"] == "inflate" and report["depth"]["metric"] is False
    assert report["mask_source"] == "colour key + GrabCut"
    # the example carries its lens in EXIF: 50 mm equivalent, about 39.6 degrees across
    assert report["camera"]["source"] == "EXIF focal length"
    assert report["camera"]["fov_deg"] == pytest.approx(39.6, abs=0.1)
    assert set(report["timings_s"]) >= {"load", "segment", "depth", "pointcloud", "mesh", "write"}
    assert report["outputs"] == [str(tmp_path / "toy.ply"), str(tmp_path / "toy.preview.png")]
    photo = np.asarray(Image.open(TOY).convert("RGB"))
    assert photo_colour_agreement(tmp_path / "toy.ply", report, photo) < 0.08


def test_the_same_photo_gives_the_same_file_byte_for_byte(tmp_path):
    """Run again, the same mesh: the closed solid with a smoothing and a face budget (every
    step that repairs crossings), twice, in two processes."""
    outs = []
    for name in ("a", "b"):
        target = tmp_path / f"{name}.ply"
        out = run_cli(
            TOY, "-o", target, *WEIGHT_FREE, "--smooth", "2", "--target-faces", "20000",
            "--no-preview", "-q",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        outs.append(target.read_bytes())
    assert len(outs[0]) > 100_000 and outs[0] == outs[1]


def test_depth_map_gives_metric_scale(tmp_path):
    """The example's exact depth (mm) through --depth-map: the bear is its true size in metres."""
    code = main(
        [
            str(TOY),
            "-o",
            str(tmp_path / "bear.glb"),
            "--segment",
            "key",
            "--depth-map",
            str(TOY_DEPTH),
            "--mesh",
            "grid",
            "--report",
            str(tmp_path / "r.json"),
            "-q",
            "--no-preview",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["depth"]["metric"] is True and report["depth"]["units"] == "metres"
    mesh = read_mesh(tmp_path / "bear.glb")
    info = json.loads((REPO / "examples" / "toy.json").read_text())
    spheres = info["spheres"]
    # Z is up, X across: the mesh's extents match the scene's spheres (pompom to feet, arm to arm)
    extent = mesh.vertices.max(axis=0) - mesh.vertices.min(axis=0)
    top = min(s["centre"][1] - s["radius"] for s in spheres)
    bottom = max(s["centre"][1] + s["radius"] for s in spheres)
    left = min(s["centre"][0] - s["radius"] for s in spheres)
    right = max(s["centre"][0] + s["radius"] for s in spheres)
    assert extent[2] == pytest.approx(bottom - top, abs=0.005)
    assert extent[0] == pytest.approx(right - left, abs=0.005)


def test_formats_by_extension(tmp_path):
    for ext in ("ply", "obj", "glb"):
        code = main(
            [
                str(TOY),
                "-o",
                str(tmp_path / f"t.{ext}"),
                *WEIGHT_FREE,
                "--mesh",
                "grid",
                "-q",
                "--no-preview",
            ]
        )
        assert code == 0
        assert read_mesh(tmp_path / f"t.{ext}").n_faces > 1000


def test_existing_output_is_kept_without_overwrite(tmp_path, capsys):
    target = tmp_path / "t.ply"
    target.write_text("precious")
    code = main([str(TOY), "-o", str(target), *WEIGHT_FREE, "-q"])
    assert code == 1
    assert target.read_text() == "precious"
    assert (
        capsys.readouterr().err.strip()
        == f"img2mesh: error: {target} exists; pass --overwrite to replace it."
    )
    assert (
        main([str(TOY), "-o", str(target), *WEIGHT_FREE, "-q", "--overwrite", "--mesh", "grid"])
        == 0
    )
    assert read_mesh(target).n_faces > 0


def test_batch_of_files_and_a_folder(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    img = Image.open(TOY)
    img.save(photos / "a.png")
    img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photos / "b.jpg")
    (photos / "notes.txt").write_text("not an image")
    out = run_cli(
        TOY,
        photos,
        "-o",
        tmp_path / "meshes",
        *WEIGHT_FREE,
        "--mesh",
        "grid",
        "--format",
        "glb",
        "--report",
        tmp_path / "all.json",
    )
    assert out.returncode == 0, out.stderr
    written = sorted(p.name for p in (tmp_path / "meshes").iterdir())
    assert written == [
        "a.glb",
        "a.preview.png",
        "b.glb",
        "b.preview.png",
        "toy.glb",
        "toy.preview.png",
    ]
    runs = json.loads((tmp_path / "all.json").read_text())["runs"]
    assert len(runs) == 3 and all(r["counts"]["faces"] > 0 for r in runs)
    assert "3 photos: 3 done, 0 skipped (outputs already there), 0 failed." in out.stdout


def test_default_pipeline_with_tiny_models_and_the_cache(tmp_path, tiny_glpn, tiny_segmenter):
    """rembg (custom ONNX) + GLPN (local folder) + Poisson; re-meshing reuses the cached depth and mask."""
    models = ["--model-dir", str(tiny_glpn), "--rembg-model", str(tiny_segmenter)]
    out = run_cli(TOY, "-o", tmp_path / "a.ply", *models, "--report", tmp_path / "a.json")
    assert out.returncode == 0, out.stderr
    a = json.loads((tmp_path / "a.json").read_text())
    assert a["depth"]["source"] == "model" and a["depth"]["metric"] is True
    assert a["depth"]["output"] == "metric" and a["depth"]["device"] == "cpu"
    assert a["cache"] == {"mask": False, "depth": False, "pointcloud": False, "surface": False}
    assert a["mask_source"] == "rembg tiny_seg.onnx"
    open3d_mesh(tmp_path / "a.ply")
    # same photo, other mesh settings: no network run, no segmentation run
    out = run_cli(
        TOY, "-o", tmp_path / "b.ply", *models, "--mesh", "grid", "--report", tmp_path / "b.json"
    )
    assert out.returncode == 0, out.stderr
    b = json.loads((tmp_path / "b.json").read_text())
    # a new process: no point cloud or solid kept from the first run
    assert b["cache"] == {"mask": True, "depth": True, "pointcloud": False, "surface": False}
    assert b["timings_s"]["depth"] < a["timings_s"]["depth"]


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["missing.jpg"], 1, "The image 'missing.jpg' does not exist."),
        (
            [str(TOY), "-o", "out.stl"],
            1,
            "Cannot write 'out.stl': the output must end in .ply, .obj, .glb.",
        ),
        (
            [str(TOY), "--fov", "0"],
            1,
            "The field of view must be between 0 and 180 degrees, not 0.",
        ),
        (
            [str(TOY), "--fov", "-5"],
            1,
            "The field of view must be between 0 and 180 degrees, not -5.",
        ),
        (
            [str(TOY), "--poisson-depth", "0"],
            1,
            "The Poisson depth must be between 4 and 12, not 0.",
        ),
        (
            [str(TOY), "--poisson-depth", "20"],
            1,
            "The Poisson depth must be between 4 and 12, not 20.",
        ),
        ([str(TOY), "--target-faces", "0"], 1, "The target face count must be at least 4, not 0."),
        (
            [str(TOY), "-o", "nowhere/x.ply"],
            1,
            "Cannot write nowhere/x.ply: the folder nowhere does not exist.",
        ),
    ],
)
def test_user_errors_are_one_sentence(tmp_path, capsys, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    assert main([*args, *WEIGHT_FREE, "-q"]) == code
    err = capsys.readouterr().err
    assert err == f"img2mesh: error: {message}\n"
    assert not any(p.suffix in (".ply", ".png", ".stl") for p in tmp_path.iterdir())


def test_missing_model_exits_3_with_a_paragraph(tmp_path):
    out = run_cli(
        TOY, "-o", tmp_path / "t.ply", "--segment", "key", "--depth-model", "img2mesh-test/absent"
    )
    assert out.returncode == 3
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "img2mesh: error: The depth model 'img2mesh-test/absent' could not be loaded"
    )
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "t.ply").exists()


def test_where_names_the_data_folders(isolated_home, capsys):
    assert main(["--where"]) == 0
    out = capsys.readouterr().out
    assert (
        f"data_home: {isolated_home}" in out and f"rembg_models: {isolated_home / 'rembg'}" in out
    )
