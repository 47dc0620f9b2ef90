"""The extension zip: the add-on with its logic/ package, and the core as a wheel built by its backend."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_zip_holds_every_add_on_module_and_a_wheel_with_every_core_module(tmp_path):
    before = sorted(REPO.iterdir())
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_extension.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(REPO.iterdir()) == before  # the build leaves nothing in the checkout
    with zipfile.ZipFile(Path(run.stdout.strip())) as zf:
        names = set(zf.namelist())
        addon = {
            "img2mesh/" + p.relative_to(REPO / "img2mesh_addon").as_posix()
            for p in (REPO / "img2mesh_addon").rglob("*.py")
            if "__pycache__" not in p.parts
        }
        assert "img2mesh/logic/protocol.py" in addon and addon <= names
        assert zf.read("img2mesh/logic/protocol.py") == (REPO / "core" / "protocol.py").read_bytes()
        (wheel_name,) = [n for n in names if n.endswith(".whl")]
        wheel = zipfile.ZipFile(io.BytesIO(zf.read(wheel_name)))
    in_wheel = {n for n in wheel.namelist() if n.endswith(".py")}
    core = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "core").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert core == in_wheel, core ^ in_wheel
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    text = wheel.read(metadata).decode()
    assert "Name: img2mesh" in text and "Requires-Dist: numpy" in text


def test_a_protocol_copy_that_differs_stops_the_build(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import build_extension
    finally:
        sys.path.remove(str(REPO / "scripts"))
    fake = tmp_path / "addon"
    (fake / "logic").mkdir(parents=True)
    (fake / "logic" / "protocol.py").write_text("PROTOCOL = 0\n")
    monkeypatch.setattr(build_extension, "ADDON", fake)
    try:
        build_extension.check_protocol()
    except SystemExit as stop:
        assert "differs from core/protocol.py" in str(stop)
    else:
        raise AssertionError("a differing protocol copy was accepted")
