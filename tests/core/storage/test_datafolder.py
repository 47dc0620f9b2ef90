"""Files we write under the data folder never lock a user out: damaged ones are rebuilt, a read-only or full folder is used without saving."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.storage import datafolder

from ..conftest import toy_photo

ROOT = Path(__file__).resolve().parents[3]


def depth_graphs(home: Path) -> list[Path]:
    return sorted(
        p for p in (home / "onnx").glob("*/[!.]*.onnx") if p.parent.name != "segmentation"
    )


def seg_graphs(home: Path) -> list[Path]:
    return sorted((home / "onnx" / "segmentation").glob("[!.]*.onnx"))


def leftovers(home: Path) -> list[Path]:
    """Temporary files a write left behind (the lock files are meant to stay)."""
    return [p for p in home.rglob(".*") if p.is_file() and p.name != ".lock"]


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "toy.png"
    Image.fromarray(toy_photo(160, 120)[0]).save(path)
    return path


def cli(
    photo: Path, out: Path, glpn: Path, seg: Path, capsys, *extra: str
) -> tuple[int, list, dict]:
    """One command-line run in this process (its once-per-process warnings reset, as a new process)."""
    from core.cli.main import main

    datafolder._said.clear()
    datafolder._pending.clear()
    report = out.with_suffix(".json")
    args = [str(photo), "--model-dir", str(glpn), "--rembg-model", str(seg), "--mesh", "grid"]
    args += ["--no-preview", "-q", "-o", str(out), "--report", str(report), *extra]
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    warnings = [line for line in err.splitlines() if line.startswith("img2mesh: warning:")]
    data = json.loads(report.read_text()) if report.exists() else {}
    return code, warnings, data


def runner(photo: Path, folder: Path, glpn: Path, seg: Path, capsys, *fixed: str):
    """``run(n, *extra)``: run number n, writing n.ply in ``folder``."""

    def run(n: int, *extra: str):
        return cli(photo, folder / f"{n}.ply", glpn, seg, capsys, *fixed, *extra)

    return run


# --- each damage, done between two command-line runs ------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))  # same size, wrong bytes


DAMAGES = {"truncated": _truncate, "zero-byte": _empty, "garbage": _garbage}


@pytest.mark.parametrize("damage", [*DAMAGES, "foreign"])
def test_a_damaged_depth_graph_is_rebuilt(
    damage, photo, tmp_path, tiny_glpn, tiny_segmenter, isolated_home, capsys
):
    run = runner(photo, tmp_path, tiny_glpn, tiny_segmenter, capsys, "--no-cache")
    assert run(1)[0] == 0
    (graph,) = depth_graphs(isolated_home)
    if damage == "foreign":
        shutil.copy(seg_graphs(isolated_home)[0], graph)  # a valid graph, of another model
    else:
        DAMAGES[damage](graph)
    code, warnings, report = run(2)
    assert code == 0 and (tmp_path / "2.ply").stat().st_size > 0
    assert report["depth"]["backend"] == "pytorch"  # the fallback, which also exports again
    assert warnings == [
        f"img2mesh: warning: The saved ONNX Runtime depth graph {graph} was damaged; "
        "it is rebuilt (nothing to do on your side)."
    ]
    code, warnings, report = run(3)
    assert (code, warnings, report["depth"]["backend"]) == (0, [], "onnxruntime")
    assert leftovers(isolated_home) == []


@pytest.mark.parametrize("damage", [*DAMAGES, "foreign", "no-sum"])
def test_a_damaged_segmentation_copy_is_rebuilt_and_the_users_model_not_blamed(
    damage, photo, tmp_path, tiny_glpn, tiny_segmenter, isolated_home, capsys
):
    # full precision: with INT8 verified on the first photo, the second would not open this
    # copy at all (a damaged INT8 copy is tested in test_quantize)
    fixed = ("--no-cache", "--quantize", "off")
    run = runner(photo, tmp_path, tiny_glpn, tiny_segmenter, capsys, *fixed)
    code, _, first = run(1)
    assert code == 0
    (copy,) = seg_graphs(isolated_home)
    if damage == "foreign":
        shutil.copy(depth_graphs(isolated_home)[0], copy)
    elif damage == "no-sum":
        copy.with_suffix(".sum").unlink()
    else:
        DAMAGES[damage](copy)
    code, warnings, report = run(2)
    assert code == 0
    assert warnings == [
        f"img2mesh: warning: The optimised copy of the segmentation model {copy} was damaged; "
        "it is rebuilt (nothing to do on your side)."
    ]
    # the same mask as from the undamaged copy
    assert report["counts"]["foreground_pixels"] == first["counts"]["foreground_pixels"]
    assert run(3)[:2] == (0, [])
    assert leftovers(isolated_home) == []


@pytest.mark.parametrize("damage", ["meta-garbage", "meta-empty", "meta-list", "meta-shapes"])
def test_damaged_graph_metadata_is_rebuilt(
    damage, photo, tmp_path, tiny_glpn, tiny_segmenter, isolated_home, capsys
):
    run = runner(photo, tmp_path, tiny_glpn, tiny_segmenter, capsys, "--no-cache")
    assert run(1)[0] == 0
    meta = depth_graphs(isolated_home)[0].parent / "meta.json"
    text = {"meta-garbage": "{not json", "meta-empty": "", "meta-list": "[1, 2]"}
    meta.write_text(text.get(damage, json.dumps({"shapes": "nonsense"})))
    code, warnings, report = run(2)
    assert (code, warnings, report["depth"]["backend"]) == (0, [], "pytorch")  # exported again
    assert run(3)[2]["depth"]["backend"] == "onnxruntime"


@pytest.mark.parametrize("damage", [*DAMAGES, "swapped"])
def test_a_damaged_mask_or_depth_cache_entry_is_computed_again(
    damage, photo, tmp_path, tiny_glpn, tiny_segmenter, isolated_home, capsys
):
    run = runner(photo, tmp_path, tiny_glpn, tiny_segmenter, capsys)
    code, _, first = run(1)
    assert code == 0
    mask = next((isolated_home / "cache").glob("mask-*.npz"))
    depth = next((isolated_home / "cache").glob("depth-*.npz"))
    if damage == "swapped":  # each file holds the other's arrays: both foreign
        a, b = mask.read_bytes(), depth.read_bytes()
        mask.write_bytes(b)
        depth.write_bytes(a)
    else:
        DAMAGES[damage](mask)
        DAMAGES[damage](depth)
    code, warnings, report = run(2)
    assert (code, warnings) == (0, [])
    assert report["cache"]["mask"] is False and report["cache"]["depth"] is False
    assert report["counts"]["foreground_pixels"] == first["counts"]["foreground_pixels"]
    code, warnings, report = run(3)
    assert report["cache"]["mask"] is True and report["cache"]["depth"] is True


# --- a folder that cannot be written -------------------------------------------------------


def _snapshot(folder: Path) -> dict:
    return {str(p): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


@pytest.fixture
def read_only(tmp_path):
    """Make a folder read-only for real: a read-only bind mount as root, else permissions."""
    mounted: list[Path] = []

    def make(folder: Path) -> None:
        if os.geteuid() == 0:
            ok = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
            if ok.returncode != 0:
                pytest.skip("a read-only folder cannot be made here (no bind mount as root)")
            mounted.append(folder)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        else:
            for p in [folder, *folder.rglob("*")]:
                p.chmod(0o555 if p.is_dir() else 0o444)

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_read_only_data_folder_runs_with_one_warning_and_writes_nothing(
    photo, tmp_path, tiny_glpn, tiny_segmenter, isolated_home, capsys, read_only
):
    run = runner(photo, tmp_path, tiny_glpn, tiny_segmenter, capsys)
    # an empty folder first (nothing can be saved at all), then one a run has filled
    read_only(isolated_home)
    before = _snapshot(isolated_home)
    code, warnings, report = run(1)
    assert code == 0 and report["depth"]["backend"] == "pytorch"
    assert len(warnings) == 1
    assert warnings[0].startswith(
        f"img2mesh: warning: The data folder {isolated_home} cannot be written ("
    )
    assert _snapshot(isolated_home) == before


def test_a_filled_read_only_data_folder_is_used_without_a_warning(
    photo, tmp_path, tiny_glpn, tiny_segmenter, isolated_home, capsys, read_only
):
    run = runner(photo, tmp_path, tiny_glpn, tiny_segmenter, capsys)
    assert run(1)[0] == 0
    read_only(isolated_home)
    before = _snapshot(isolated_home)
    code, warnings, report = run(2, "--no-cache")
    assert (code, warnings, report["depth"]["backend"]) == (0, [], "onnxruntime")
    # a new input size, whose graph cannot be saved: PyTorch, one warning, nothing written
    code, warnings, report = run(3, "--no-cache", "--depth-resolution", "64")
    assert code == 0 and len(warnings) <= 1
    assert _snapshot(isolated_home) == before


# --- a full disk ---------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 256 KiB file system (tmpfs), so that writing a graph runs out of space."""
    folder = tmp_path / "full"
    folder.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a small file system can only be mounted as root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"tmpfs cannot be mounted here ({made.stderr.decode().strip()})")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_while_exporting_leaves_nothing_partial(
    photo, tmp_path, tiny_glpn, tiny_segmenter, capsys, monkeypatch, tiny_disk
):
    # the tiny GLPN graph (about 300 KB) cannot fit in 256 KiB; the segmenter's copy can
    monkeypatch.setenv("IMG2MESH_HOME", str(tiny_disk))
    run = runner(photo, tmp_path, tiny_glpn, tiny_segmenter, capsys, "--no-cache")
    for n in (1, 2):
        code, warnings, report = run(n)
        assert code == 0 and report["depth"]["backend"] == "pytorch"
        assert len(warnings) == 1
        assert "cannot be written (" in warnings[0] and "No space left" in warnings[0]
        assert depth_graphs(tiny_disk) == [] and leftovers(tiny_disk) == []
        meta = list((tiny_disk / "onnx").glob("*/meta.json"))
        # a full disk is not the graph's fault: nothing recorded that would stop a later try
        assert all("refused" not in m.read_text() for m in meta)


# --- two processes making the same graph at once -------------------------------------------


def test_two_processes_exporting_the_same_graph_both_finish_with_one_valid_graph(
    photo, tmp_path, tiny_glpn, tiny_segmenter, isolated_home
):
    env = {**os.environ, "IMG2MESH_HOME": str(isolated_home)}
    procs = []
    for n in range(2):
        args = [sys.executable, "-m", "core", str(photo), "--model-dir", str(tiny_glpn)]
        args += ["--rembg-model", str(tiny_segmenter), "--mesh", "grid", "--no-preview", "-q"]
        args += ["--no-cache", "-o", str(tmp_path / f"p{n}.ply")]
        procs.append(subprocess.Popen(args, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True))
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert not any("warning" in e or "Traceback" in e for e in errors), errors
    (graph,) = depth_graphs(isolated_home)
    meta = json.loads((graph.parent / "meta.json").read_text())
    (entry,) = meta["shapes"].values()
    assert entry["status"] == "verified" and datafolder.matches(graph, entry["graph"])
    (copy,) = seg_graphs(isolated_home)
    assert datafolder.matches(copy, copy.with_suffix(".sum").read_text())
    assert leftovers(isolated_home) == []
    # and a later run uses what they left
    from core.depth.estimator import DepthEstimator

    est = DepthEstimator("x", model_dir=str(tiny_glpn), device="cpu")
    est.predict(np.asarray(Image.open(photo).convert("RGB")))
    assert est.backend == "onnxruntime"


def test_a_disk_full_from_the_start_runs_with_one_warning_and_leaves_no_file(
    photo, tmp_path, tiny_glpn, tiny_segmenter, capsys, monkeypatch, tiny_disk
):
    home = tiny_disk / "home"
    home.mkdir()
    filler = tiny_disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # fill every block left
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    monkeypatch.setenv("IMG2MESH_HOME", str(home))
    code, warnings, report = runner(photo, tmp_path, tiny_glpn, tiny_segmenter, capsys)(1)
    assert code == 0 and report["depth"]["backend"] == "pytorch"
    assert len(warnings) == 1 and "No space left" in warnings[0]
    assert [p for p in home.rglob("*") if p.is_file() and p.name != ".lock"] == []


def test_a_damaged_graph_between_two_real_command_line_processes(
    photo, tmp_path, tiny_glpn, tiny_segmenter, isolated_home
):
    args = [sys.executable, "-m", "core", str(photo), "--model-dir", str(tiny_glpn)]
    args += ["--rembg-model", str(tiny_segmenter), "--mesh", "grid", "--no-preview", "-q"]
    args += ["--no-cache", "--overwrite", "-o", str(tmp_path / "m.ply")]
    env = {**os.environ, "IMG2MESH_HOME": str(isolated_home)}
    first = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    (graph,) = depth_graphs(isolated_home)
    _truncate(graph)  # as a crash or a sync tool would leave it
    second = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    assert second.returncode == 0 and "Traceback" not in second.stderr, second.stderr
    warnings = [x for x in second.stderr.splitlines() if x.startswith("img2mesh: warning:")]
    assert warnings == [
        f"img2mesh: warning: The saved ONNX Runtime depth graph {graph} was damaged; "
        "it is rebuilt (nothing to do on your side)."
    ]
    meta = json.loads((graph.parent / "meta.json").read_text())
    assert datafolder.matches(graph, meta["shapes"][graph.stem]["graph"])  # rebuilt, valid
