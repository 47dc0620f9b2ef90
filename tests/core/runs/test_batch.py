"""Batches: --skip-existing resumes one, the report is written as each photo finishes, the closing line counts, the exit code says whether any photo failed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from core.cli.main import main

REPO = Path(__file__).resolve().parents[3]
TOY = REPO / "examples" / "toy.jpg"
FAST = ["--segment", "key", "--depth", "inflate", "--mesh", "grid", "--max-size", "96", "-q"]


def photos(folder: Path, n: int) -> Path:
    folder.mkdir()
    img = Image.open(TOY)
    for i in range(n):
        (img if i % 2 else img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)).save(
            folder / f"p{i}.png"
        )
    return folder


def test_skip_existing_makes_only_the_missing_ones(tmp_path, capsys):
    src = photos(tmp_path / "in", 4)
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), *FAST]) == 0
    first = capsys.readouterr().out
    assert "4 photos: 4 done, 0 skipped (outputs already there), 0 failed." in first
    # two results lost (a crash, a clean-up): the rest stay as they are
    kept = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "p1.ply").unlink()
    (out / "p3.ply").unlink()
    (out / "p3.preview.png").unlink()
    # without the option: refused before any work, with the ways on named
    assert main([str(src), "-o", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "pass --skip-existing to make only the missing ones, or --overwrite" in err
    # p1 still has its preview: only partly there, so it is not skipped, and its
    # preview is not replaced without --overwrite
    assert main([str(src), "-o", str(out), *FAST, "--skip-existing"]) == 1
    err = capsys.readouterr().err
    assert "p1.preview.png is there without the other outputs of its photo" in err
    (out / "p1.preview.png").unlink()
    code = main(
        [str(src), "-o", str(out), *FAST, "--skip-existing", "--report", str(tmp_path / "r.json")]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "Skipping 2 of 4 photos: their outputs are all there (--skip-existing)." in text
    assert "4 photos: 2 done, 2 skipped (outputs already there), 0 failed." in text
    for name in ("p0.ply", "p0.preview.png", "p2.ply", "p2.preview.png"):
        assert (out / name).stat().st_mtime_ns == kept[name]  # not made again
    assert all((out / n).stat().st_size > 0 for n in ("p1.ply", "p3.ply", "p3.preview.png"))
    runs = json.loads((tmp_path / "r.json").read_text())["runs"]
    assert [bool(r.get("skipped")) for r in runs] == [True, False, True, False]


def test_a_failed_photo_makes_the_exit_code_non_zero_and_is_counted(tmp_path, capsys):
    src = photos(tmp_path / "in", 3)
    (src / "p1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # damaged
    out = tmp_path / "out"
    report = tmp_path / "r.json"
    assert main([str(src), "-o", str(out), *FAST, "--report", str(report)]) == 1
    captured = capsys.readouterr()
    assert "3 photos: 2 done, 0 skipped (outputs already there), 1 failed." in captured.out
    assert "p1.png: " in captured.err
    runs = json.loads(report.read_text())["runs"]
    assert "error" in runs[1] and "outputs" in runs[0] and "outputs" in runs[2]
    # a second try with --skip-existing redoes only the failed one (and fails it again)
    assert main([str(src), "-o", str(out), *FAST, "--skip-existing"]) == 1
    assert (
        "3 photos: 0 done, 2 skipped (outputs already there), 1 failed." in capsys.readouterr().out
    )


def test_results_and_report_are_written_as_each_photo_finishes(tmp_path):
    """A batch stopped half way keeps what it finished: meshes and the report so far."""
    src = photos(tmp_path / "in", 12)
    out = tmp_path / "out"
    report = tmp_path / "r.json"
    args = [sys.executable, "-m", "core", str(src), "-o", str(out), *FAST, "--report", str(report)]
    proc = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (out / "p1.ply").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # as a crash, an out-of-memory kill or a power cut
    proc.wait()
    meshes = sorted(out.glob("*.ply"))
    assert meshes, "nothing was written before the kill"
    runs = json.loads(report.read_text())["runs"]  # complete JSON, never half a file
    assert len(runs) >= len(meshes) - 1 and all(r["outputs"] for r in runs)
    # resuming finishes the batch (--overwrite: the report, and a photo cut between its
    # mesh and its preview)
    code = subprocess.run(
        [*args, "--skip-existing", "--overwrite"], cwd=REPO, capture_output=True, text=True
    )
    assert code.returncode == 0, code.stderr
    assert len(list(out.glob("p*.ply"))) == 12
    assert "12 photos: " in code.stdout and " 0 failed." in code.stdout
