"""Requests built from the panel's options, without Blender."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from img2mesh_addon.logic import requests
from img2mesh_addon.logic.errors import ResultError, UserError, WorkerError

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFS = SimpleNamespace(device="AUTO", use_cache=True, rembg_model="u2net", depth_model="d/m")
OPTIONS = {
    "max_size": 640,
    "segment": "REMBG",
    "depth": "MODEL",
    "mesh": "POISSON",
    "trim": False,
    "smooth": 0,
    "depth_model": "",
    "auto_fov": True,
    "fov": math.radians(55),
    "poisson_depth": 0,
    "target_faces": 0,
    "thickness": 0.0,
    "create_camera": True,
    "filepath": "",
    "image": "",
    "prompt": "",
    "seed": 0,
    "steps": 0,
    "t2i_model": "",
    "raw_prompt": False,
    "vertex_colors_only": False,
}


def test_automatic_values_are_left_to_the_core():
    s = requests.settings_dict(OPTIONS, PREFS)
    assert s == {
        "max_size": 640,
        "segment": "rembg",
        "depth": "model",
        "device": "auto",
        "mesh": "poisson",
        "open": False,
        "smooth": 0,
        "cache": True,
        "texture": True,
        "quantize": "auto",
        "rembg_model": "u2net",
        "depth_model": "d/m",
    }
    assert (
        requests.settings_dict({**OPTIONS, "vertex_colors_only": True}, PREFS)["texture"] is False
    )
    assert requests.settings_dict({**OPTIONS, "quantize": False}, PREFS)["quantize"] == "off"
    chosen = {
        **OPTIONS,
        "auto_fov": False,
        "poisson_depth": 9,
        "target_faces": 5000,
        "thickness": 0.4,
    }
    s = requests.settings_dict(chosen, PREFS)
    assert s["fov"] == pytest.approx(55) and s["poisson_depth"] == 9
    assert s["target_faces"] == 5000 and s["thickness"] == 0.4
    # Thickness is for closed solids: a trimmed (open) surface has none.
    assert "thickness" not in requests.settings_dict({**chosen, "trim": True}, PREFS)


def test_a_model_folder_becomes_model_dir_and_blender_paths_are_resolved(tmp_path):
    folder = tmp_path / "glpn"
    folder.mkdir()
    abspath = lambda p: str(tmp_path / p[2:]) if p.startswith("//") else p  # noqa: E731
    assert requests.model_source("//glpn", "depth_model", abspath) == {"model_dir": str(folder)}
    assert requests.model_source("org/name", "model", abspath) == {"model": "org/name"}
    assert requests.model_source("  ", "model") == {}
    assert requests.path_or_name("//m.onnx", abspath) == str(tmp_path / "m.onnx")
    assert requests.path_or_name("isnet-general-use") == "isnet-general-use"


def test_interactive_runs_take_the_panels_options_except_a_dropped_photo():
    op = {"filepath": "/drop.jpg", "mesh": "GRID", "image": "", "prompt": ""}
    panel = {"filepath": "/panel.jpg", "mesh": "POISSON", "image": "", "prompt": "a cup"}
    names = ("filepath", "mesh", "image", "prompt")
    values = requests.resolve_options(
        {"filepath", "mesh"}, names, op.get, panel.get, "PROMPT", interactive=True
    )
    assert values["filepath"] == "/drop.jpg" and values["mesh"] == "POISSON"
    assert values["source"] == "FILE" and values["prompt"] == ""
    values = requests.resolve_options(set(), names, op.get, panel.get, "PROMPT")
    assert values["source"] == "PROMPT" and values["filepath"] == ""
    script = requests.resolve_options({"mesh"}, names, op.get, panel.get, None)
    assert script["source"] == "FILE" and script["filepath"] == "/drop.jpg"


def test_prompt_requests(tmp_path):
    options = {**OPTIONS, "prompt": "  A red toy car! ", "seed": 3, "steps": 2}
    request = requests.prompt_request(options, {}, str(tmp_path / "generated"))
    assert request.name == "a-red-toy-car" and request.image == ""
    assert request.prompt == {"text": "A red toy car!", "seed": 3, "raw": False, "steps": 2}
    with pytest.raises(WorkerError, match="The prompt is empty"):
        requests.prompt_request({**OPTIONS, "prompt": "  "}, {}, str(tmp_path))
    with pytest.raises(WorkerError, match="Give one thing to reconstruct"):
        requests.check_one_source({**OPTIONS, "prompt": "x", "filepath": "/a.jpg"})
    assert requests.picture_folder("/p/scene.blend", "/data") == "/p/generated"
    assert requests.picture_folder("", "/data") == os.path.join("/data", "generated")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_an_unwritable_picture_folder_is_refused_before_generating(tmp_path):
    """As an ordinary user meets it: root may write anywhere, so as root the check runs as
    'nobody' (setpriv) on a folder 'nobody' can reach."""
    base = Path(tempfile.mkdtemp(prefix="img2mesh-perm-"))  # not under pytest's 0700 folder
    try:
        base.chmod(0o755)
        locked, open_ = base / "locked", base / "open"
        locked.mkdir()
        open_.mkdir()
        locked.chmod(0o555)  # mkdir's mode goes through the umask
        open_.chmod(0o777)
        prefix: list[str] = []
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv to drop privileges")
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        code = (
            "import sys; from img2mesh_addon.logic import requests\n"
            "try:\n    requests.check_writable(sys.argv[1])\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
            "else:\n    print('writable')\n"
        )

        def check(folder: Path) -> str:
            run = subprocess.run(
                [*prefix, sys.executable, "-c", code, str(folder)],
                capture_output=True,
                text=True,
                cwd=REPO_ROOT,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            )
            assert run.returncode == 0, run.stderr
            return run.stdout.strip()

        assert check(open_ / "generated") == "writable"
        assert check(locked / "generated") == (
            f"WorkerError The generated picture cannot be saved in '{locked / 'generated'}': "
            "the folder is not writable."
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_placing_a_picture_never_overwrites(tmp_path):
    source = tmp_path / "made.png"
    source.write_bytes(b"new")
    folder = tmp_path / "generated"
    folder.mkdir()
    (folder / "cup.png").write_bytes(b"old")
    placed = requests.place_picture(str(source), str(folder), "cup")
    assert placed == str(folder / "cup-2.png") and (folder / "cup.png").read_bytes() == b"old"
    assert (folder / "cup-2.png").read_bytes() == b"new"
    with pytest.raises(ResultError, match="cannot be saved in"):
        requests.place_picture(str(tmp_path / "absent.png"), str(folder), "gone")
    assert not (folder / "gone.png").exists()


def test_the_add_ons_user_errors_share_one_base():
    from img2mesh_addon.logic.errors import SetupError

    assert all(issubclass(c, UserError) for c in (WorkerError, ResultError, SetupError))


@pytest.mark.parametrize("shape", ["AUTO", "REVOLVE", "BOX", "INFLATE"])
def test_each_hidden_side_choice_of_the_panel_is_one_the_core_takes(shape):
    from core.settings import Settings

    s = requests.settings_dict({**OPTIONS, "shape": shape}, PREFS)
    assert s.get("shape", "auto") == shape.lower()
    Settings(**s)  # raises OptionError for a shape the core does not know
