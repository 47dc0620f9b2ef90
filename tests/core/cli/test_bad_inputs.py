"""Every bad input a user can give the CLI: one exact sentence, non-zero exit, no traceback, nothing written.

And the unusual-but-valid inputs (grayscale, CMYK, 16-bit, palette, EXIF-rotated,
odd path names) come out as meshes.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli.main import main
from core.files.meshes import read_mesh

from ..conftest import toy_photo

REPO = Path(__file__).resolve().parents[3]
TOY = REPO / "examples" / "toy.jpg"
WEIGHT_FREE = ["--segment", "key", "--depth", "inflate", "--mesh", "grid", "-q"]


def _png_bomb(path: Path) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def _truncated(path: Path) -> Path:
    Image.open(TOY).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _constant_segmenter(path: Path) -> Path:
    """A 'segmentation model' that sees nothing: its mask is the same everywhere."""
    import torch

    class Nothing(torch.nn.Module):
        def forward(self, x):
            return x[:, :1] * 0.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Nothing(), torch.zeros(1, 3, 320, 320), str(path), dynamo=False)
    return path


def _gray_input_segmenter(path: Path) -> Path:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            torch.nn.Conv2d(1, 1, 1), torch.zeros(1, 1, 320, 320), str(path), dynamo=False
        )
    return path


def _depth(path: Path, array) -> Path:
    np.save(path, array)
    return path


# (id, make inputs -> CLI arguments, exact message after "img2mesh: error: ", exit code)
CASES = [
    (
        "missing path",
        lambda p: [p / "missing.jpg"],
        "The image '{p}/missing.jpg' does not exist.",
        1,
    ),
    (
        "folder without images",
        lambda p: [(p / "empty").mkdir() or p / "empty"],
        "The folder '{p}/empty' holds no images (.bmp, .gif, .jpeg, .jpg, .png, .tif, .tiff, .webp).",
        1,
    ),
    (
        "0-byte file",
        lambda p: [_write(p / "zero.jpg", b"")],
        "The image 'zero.jpg' is an empty file (0 bytes).",
        1,
    ),
    ("truncated JPEG", lambda p: [_truncated(p / "cut.jpg")], None, 1),
    (
        "text named .jpg",
        lambda p: [_write(p / "notes.jpg", b"hello\n")],
        "'notes.jpg' is not an image file Pillow can read.",
        1,
    ),
    (
        "decompression bomb",
        lambda p: [_png_bomb(p / "bomb.png")],
        "The image 'bomb.png' is too large (40000x40000 pixels); the limit is 80 megapixels.",
        1,
    ),
    (
        "1x1 image",
        lambda p: [_save(Image.new("RGB", (1, 1), "red"), p / "dot.png")],
        "The image 'dot.png' is too small (1x1 pixels); it needs at least 16 pixels on each side.",
        1,
    ),
    (
        "fully transparent RGBA",
        lambda p: [_save(Image.new("RGBA", (64, 64), (255, 0, 0, 0)), p / "clear.png")],
        "The image 'clear.png' is fully transparent: there is nothing to reconstruct.",
        1,
    ),
    (
        "nothing stands out (colour key)",
        lambda p: [_save(Image.new("RGB", (64, 48), (200, 200, 200)), p / "plain.png")],
        "No object stands out from the background colour: --segment key needs an object on a plain background.",
        1,
    ),
    (
        "mask removes everything (rembg)",
        lambda p: [
            TOY,
            "--segment",
            "rembg",
            "--rembg-model",
            _constant_segmenter(p / "nothing.onnx"),
        ],
        "The mask removes everything: no foreground is left to reconstruct.",
        1,
    ),
    (
        "depth map all zero",
        lambda p: [TOY, "--depth-map", _depth(p / "z.npy", np.zeros((480, 640), np.float32))],
        "The depth map 'z.npy' holds no valid depth (all zero, negative, NaN or inf).",
        1,
    ),
    (
        "depth map NaN and inf",
        lambda p: [
            TOY,
            "--depth-map",
            _depth(p / "n.npy", np.where(np.eye(480, 640) > 0, np.inf, np.nan)),
        ],
        "The depth map 'n.npy' holds no valid depth (all zero, negative, NaN or inf).",
        1,
    ),
    (
        "depth map of another size",
        lambda p: [TOY, "--depth-map", _depth(p / "w.npy", np.ones((300, 300), np.float32))],
        "The depth map 'w.npy' is 300x300 but the image is 640x480: they must show the same view (same aspect ratio).",
        1,
    ),
    (
        "depth map of the wrong type",
        lambda p: [TOY, "--depth-map", _save(Image.new("RGB", (640, 480)), p / "rgb.png")],
        "The depth map 'rgb.png' is an RGB image; depth must be single-channel 16-bit (PNG), 32-bit float (TIFF) "
        "or a .npy array, never 8-bit colour.",
        1,
    ),
    (
        "zero field of view",
        lambda p: [TOY, "--fov", "0"],
        "The field of view must be between 0 and 180 degrees, not 0.",
        1,
    ),
    (
        "negative field of view",
        lambda p: [TOY, "--fov", "-10"],
        "The field of view must be between 0 and 180 degrees, not -10.",
        1,
    ),
    (
        "Poisson depth 0",
        lambda p: [TOY, "--poisson-depth", "0"],
        "The Poisson depth must be between 4 and 12, not 0.",
        1,
    ),
    (
        "Poisson depth 20",
        lambda p: [TOY, "--poisson-depth", "20"],
        "The Poisson depth must be between 4 and 12, not 20.",
        1,
    ),
    (
        "target faces 0",
        lambda p: [TOY, "--target-faces", "0"],
        "The target face count must be at least 4, not 0.",
        1,
    ),
    (
        "unknown rembg model",
        lambda p: [TOY, "--segment", "rembg", "--rembg-model", "u3net"],
        None,  # lists the choices; checked below
        1,
    ),
    (
        "custom ONNX with the wrong input",
        lambda p: [
            TOY,
            "--segment",
            "rembg",
            "--rembg-model",
            _gray_input_segmenter(p / "gray.onnx"),
        ],
        "The custom ONNX model 'gray.onnx' has input shape [1, 1, 320, 320]; a segmentation model must take one "
        "1x3xHxW image.",
        1,
    ),
    (
        "unknown depth model",
        lambda p: [TOY, "--depth", "model", "--depth-model", "img2mesh-test/absent"],
        None,  # a paragraph; checked below
        3,
    ),
    (
        "output folder missing",
        lambda p: [TOY, "-o", p / "nope" / "t.ply"],
        "Cannot write {p}/nope/t.ply: the folder {p}/nope does not exist.",
        1,
    ),
    (
        "unsupported output extension",
        lambda p: [TOY, "-o", p / "t.stl"],
        "Cannot write 't.stl': the output must end in .ply, .obj, .glb.",
        1,
    ),
]


@pytest.mark.parametrize("name,make,message,code", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, capsys, monkeypatch, name, make, message, code):
    work = tmp_path / "in"
    work.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    args = [str(a) for a in make(work)]
    before = set(os.listdir(work))
    # the option under test comes last, so it wins over the weight-free defaults
    rc = main(
        [*WEIGHT_FREE, *args]
        if "-o" in args
        else [*WEIGHT_FREE, *args, "-o", str(out / "result.ply")]
    )
    err = capsys.readouterr().err
    assert rc == code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("img2mesh: error: "), err
    text = lines[0][len("img2mesh: error: ") :]
    if message is not None:
        assert text == message.format(p=work)
    elif name == "truncated JPEG":
        assert text.startswith("The image 'cut.jpg' is damaged or truncated (")
    elif name == "unknown rembg model":
        assert (
            text.startswith("Unknown background-removal model 'u3net': use one of ")
            and "u2net" in text
        )
    elif name == "unknown depth model":
        assert text.startswith("The depth model 'img2mesh-test/absent' could not be loaded")
        assert "--model-dir" in text
    assert "Traceback" not in err
    # nothing written: no mesh, no preview, no stray temp file, inputs untouched
    assert os.listdir(out) == []
    assert set(os.listdir(work)) == before


@pytest.fixture
def as_user():
    """(command prefix, env, a folder 'nobody' can reach): root may write anywhere, so as root the
    CLI runs as 'nobody' (setpriv), the way an ordinary user meets permissions."""
    import tempfile

    if not hasattr(os, "geteuid"):
        pytest.skip("POSIX permissions")
    base = Path(tempfile.mkdtemp(prefix="img2mesh-perm-"))  # not under pytest's private 0700 folder
    base.chmod(0o755)
    env = dict(os.environ)
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv to drop privileges")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        home = base / "home"
        home.mkdir()
        home.chmod(0o777)
        env["IMG2MESH_HOME"] = str(home)
        probe = subprocess.run(
            [*prefix, sys.executable, "-c", "import core"], capture_output=True, text=True, env=env
        )
        if probe.returncode != 0:
            pytest.skip(
                f"'nobody' cannot run this checkout's Python ({probe.stderr.strip()[-120:]})"
            )
    yield prefix, env, base
    for d in base.rglob("*"):
        if d.is_dir():
            d.chmod(0o755)
    shutil.rmtree(base, ignore_errors=True)


def _cli_as(as_user, output: Path) -> subprocess.CompletedProcess:
    prefix, env, _ = as_user
    cmd = [*prefix, sys.executable, "-m", "core", str(TOY), "-o", str(output), *WEIGHT_FREE]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_read_only_output_folder(as_user):
    locked = as_user[2] / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    out = _cli_as(as_user, locked / "t.ply")
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == 1
    assert (
        out.stderr.strip()
        == f"img2mesh: error: Cannot write {locked}/t.ply: the folder {locked} is not writable."
    )
    assert os.listdir(locked) == []


def test_output_behind_a_folder_the_user_cannot_enter(as_user):
    closed = as_user[2] / "closed"
    (closed / "inner").mkdir(parents=True)
    closed.chmod(
        0o700 if os.geteuid() == 0 else 0
    )  # as root, 'nobody' runs the CLI: 0700 shuts it out
    out = _cli_as(as_user, closed / "inner" / "t.ply")
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"img2mesh: error: Cannot write {closed}/inner/t.ply: the folder {closed}/inner is not writable."
    )


def _upright_extent(path: Path, tmp_path: Path, *extra: str) -> np.ndarray:
    target = tmp_path / (path.stem + ".glb")
    assert main([str(path), "-o", str(target), *WEIGHT_FREE, "--no-preview", *extra]) == 0
    mesh = read_mesh(target)
    assert mesh.n_faces > 100
    return mesh.vertices.max(axis=0) - mesh.vertices.min(axis=0)


def test_exif_rotated_photo_comes_out_upright(tmp_path):
    """A phone stores the toy sideways and says 'rotate 90 degrees' in EXIF: the mesh must stand up."""
    upright = _upright_extent(TOY, tmp_path)
    sideways = Image.open(TOY).rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = _save(sideways, tmp_path / "phone photo é.jpg", exif=exif.tobytes(), quality=95)
    extent = _upright_extent(rotated, tmp_path, "--fov", "39.6")
    assert extent[2] > extent[0] * 1.3  # taller (Z) than wide (X), like the bear
    assert extent[2] / extent[0] == pytest.approx(upright[2] / upright[0], rel=0.05)


@pytest.mark.parametrize("kind", ["grayscale", "cmyk", "sixteen_bit", "palette_transparency"])
def test_unusual_images_still_make_meshes(tmp_path, kind):
    img, mask = toy_photo(160, 120)
    if kind == "grayscale":
        path = _save(Image.fromarray(img).convert("L"), tmp_path / "gray.jpg")
        extra = ["--segment", "none"]  # a grey object on grey paper has no colour to key
    elif kind == "cmyk":
        path = _save(Image.fromarray(img).convert("CMYK"), tmp_path / "cmyk.jpg")
        extra = []
    elif kind == "sixteen_bit":
        lum = np.asarray(Image.fromarray(img).convert("L")).astype(np.uint16) * 257
        path = _save(Image.fromarray(lum), tmp_path / "g16.png")
        extra = ["--segment", "none"]
    else:
        pal = Image.fromarray(img).quantize(colors=16)
        index = int(np.asarray(pal)[0, 0])
        path = _save(pal, tmp_path / "pal.png", transparency=index)
        extra = []
    extent = _upright_extent(path, tmp_path, *extra)
    assert (extent > 0).all()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KB file system: too small for a mesh. Needs root and permission to mount tmpfs."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tiny tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_leaves_no_partial_file(tiny_disk, capsys):
    target = tiny_disk / "toy.ply"
    assert main([str(TOY), "-o", str(target), "--segment", "key", "--depth", "inflate", "-q"]) == 1
    assert capsys.readouterr().err == f"img2mesh: error: Cannot write {target}: the disk is full.\n"
    assert os.listdir(tiny_disk) == []  # no mesh, no temp file, no preview


def test_failed_preview_removes_the_mesh_too(tmp_path, capsys, monkeypatch):
    """All or nothing per image: if the preview cannot be written (disk full), the mesh goes too."""
    import errno

    from core.files import preview

    real = preview.preview_file

    def full_for_png(mesh, path, **kw):
        path, _ = real(mesh, path, **kw)

        def write(f):
            raise OSError(errno.ENOSPC, "No space left on device")

        return path, write

    monkeypatch.setattr(preview, "preview_file", full_for_png)
    target = tmp_path / "toy.ply"
    assert main([str(TOY), "-o", str(target), *WEIGHT_FREE]) == 1
    assert (
        capsys.readouterr().err
        == f"img2mesh: error: Cannot write {tmp_path}/toy.preview.png: the disk is full.\n"
    )
    assert os.listdir(tmp_path) == []
