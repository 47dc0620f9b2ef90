"""`img2mesh FOLDER --ray`: a real local Ray instance, started by the command as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli.main import main
from core.files.meshes import read_mesh
from tests.core.conftest import toy_photo

REPO = Path(__file__).resolve().parents[3]
TOY = REPO / "examples" / "toy.jpg"
WEIGHT_FREE = ["--segment", "key", "--depth", "inflate"]

needs_ray = pytest.mark.skipif(
    __import__("importlib").util.find_spec("ray") is None,
    reason="Ray is not installed (pip install 'img2mesh[cluster]')",
)

# One local Ray instance at a time: with pytest-xdist these tests share one worker.
pytestmark = pytest.mark.xdist_group("ray")


def ray_env() -> dict:
    """The test's isolated home, without the dead proxy: Ray's own gRPC must reach 127.0.0.1."""
    env = os.environ.copy()
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env.pop(var, None)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def photo_folder(folder: Path, bad: bool = True) -> Path:
    """The bundled toy, two small synthetic photos, and (optionally) a file that is no image."""
    folder.mkdir()
    Image.open(TOY).save(folder / "toy.jpg", quality=95)
    img, _ = toy_photo(200, 150)
    Image.fromarray(img).save(folder / "ellipse.png")
    Image.fromarray(img[:, ::-1].copy()).save(folder / "mirrored.jpg", quality=95)
    if bad:
        (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    return folder


@needs_ray
@pytest.mark.slow
def test_ray_batch_equals_a_local_batch_and_a_bad_photo_fails_alone(tmp_path, capsys):
    photos = photo_folder(tmp_path / "photos")
    assert main([str(photos), "-o", str(tmp_path / "local"), *WEIGHT_FREE, "-q"]) == 1
    local_out = capsys.readouterr()

    out = subprocess.run(
        [sys.executable, "-m", "core", str(photos), "-o", str(tmp_path / "ray"), *WEIGHT_FREE,
         "--report", str(tmp_path / "ray.json"), "--ray", "--ray-cpus", "1"],
        capture_output=True, text=True, env=ray_env(), timeout=600,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    # the same closing count and the same one-line error as the local batch
    assert "4 photos: 3 done, 0 skipped (outputs already there), 1 failed." in out.stdout
    assert "4 photos: 3 done, 0 skipped (outputs already there), 1 failed." in local_out.out
    error = "img2mesh: error: broken.jpg: 'broken.jpg' is not an image file Pillow can read."
    assert error in out.stderr.splitlines() and error in local_out.err.splitlines()
    assert "Traceback" not in out.stderr

    local_files = sorted(p.name for p in (tmp_path / "local").iterdir())
    ray_files = sorted(p.name for p in (tmp_path / "ray").iterdir())
    assert ray_files == local_files == [
        "ellipse.ply", "ellipse.preview.png", "mirrored.ply", "mirrored.preview.png",
        "toy.ply", "toy.preview.png",
    ]  # fmt: skip
    for stem in ("ellipse", "mirrored", "toy"):
        # the same file, byte for byte (the Poisson solve is deterministic at these depths)
        local_ply, ray_ply = tmp_path / "local" / f"{stem}.ply", tmp_path / "ray" / f"{stem}.ply"
        assert local_ply.read_bytes() == ray_ply.read_bytes(), stem
        with (
            Image.open(tmp_path / "local" / f"{stem}.preview.png") as a,
            Image.open(tmp_path / "ray" / f"{stem}.preview.png") as b,
        ):
            diff = np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int))
            assert diff.mean() < 1.0  # the same picture, up to the painter's order of ties

    # the report: one entry per photo in input order, the failure named, the outputs where written
    runs = json.loads((tmp_path / "ray.json").read_text())["runs"]
    assert [Path(r["input"]).name for r in runs] == [
        "broken.jpg", "ellipse.png", "mirrored.jpg", "toy.jpg"
    ]  # fmt: skip
    assert "error" in runs[0] and all(r["counts"]["faces"] > 0 for r in runs[1:])
    assert runs[3]["outputs"] == [
        str(tmp_path / "ray" / "toy.ply"), str(tmp_path / "ray" / "toy.preview.png")
    ]  # fmt: skip


@needs_ray
@pytest.mark.slow
def test_ray_ctrl_c_leaves_no_partial_files(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    img, _ = toy_photo(200, 150)
    for i in range(12):
        Image.fromarray(np.roll(img, 3 * i, axis=1)).save(photos / f"p{i:02d}.png")
    out_dir = tmp_path / "meshes"
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", str(photos), "-o", str(out_dir), *WEIGHT_FREE,
         "--ray", "--ray-cpus", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ray_env(),
    )  # fmt: skip
    try:
        first = proc.stdout.readline()  # the first photo is written: others are in flight
        assert first.startswith("p"), first + proc.stderr.read()
        proc.send_signal(signal.SIGINT)  # the driver's handler is in place: it printed the line
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "img2mesh: error: Interrupted; nothing was written for the unfinished image." in stderr
    assert "Traceback" not in stderr
    names = sorted(p.name for p in out_dir.iterdir())
    meshes = [n for n in names if n.endswith(".ply")]
    previews = [n for n in names if n.endswith(".preview.png")]
    # only whole results: every mesh has its preview, no temporary files, not all photos done
    assert 1 <= len(meshes) < 12
    assert names == sorted(meshes + previews)
    assert [m[: -len(".ply")] for m in meshes] == [p[: -len(".preview.png")] for p in previews]
    for m in meshes:
        assert read_mesh(out_dir / m).n_faces > 0


def test_ray_missing_says_how_to_install(tmp_path):
    """Without Ray installed, --ray is one sentence naming the extra, before any work."""
    code = (
        "import sys; sys.modules['ray'] = None\n"  # what an environment without Ray looks like
        "from core.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(TOY), "-o", str(tmp_path / "toy.ply"), "--ray"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr == (
        "img2mesh: error: --ray needs Ray: pip install 'img2mesh[cluster]' (or pip install ray).\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_ray_options_are_checked(tmp_path, capsys):
    photos = photo_folder(tmp_path / "photos", bad=False)
    with pytest.raises(SystemExit):
        main(["--ray", str(photos), "-o", str(tmp_path / "out")])
    assert "put --ray after the photos" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(photos), "-o", str(tmp_path / "out"), "--ray-cpus", "4"])
    assert "--ray-cpus and --ray-gpus need --ray" in capsys.readouterr().err
