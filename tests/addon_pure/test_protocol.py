"""The worker and the add-on cannot disagree: one protocol file, the add-on's logic free of bpy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import core.protocol
from core.settings import Settings
from img2mesh_addon.logic import messages, protocol

REPO = Path(__file__).resolve().parents[2]


def test_the_add_on_ships_the_cores_protocol_file_byte_for_byte():
    core_copy = REPO / "core" / "protocol.py"
    addon_copy = REPO / "img2mesh_addon" / "logic" / "protocol.py"
    assert addon_copy.read_bytes() == core_copy.read_bytes(), (
        "img2mesh_addon/logic/protocol.py differs from core/protocol.py: copy the core's over"
    )
    assert protocol.PROTOCOL == core.protocol.PROTOCOL


def test_the_protocol_module_needs_only_the_standard_library():
    code = (
        "import sys, runpy\n"
        f"runpy.run_path({str(REPO / 'core' / 'protocol.py')!r})\n"
        "third = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - {'__main__'}\n"
        "assert not third, third\n"
    )
    # -S: no site-packages, so no .pth hooks (an editable install's finder) count as imports
    run = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_the_add_ons_logic_imports_without_blender():
    """Importing the package's __init__ must not pull in bpy (these tests would then skip)."""
    code = (
        "import sys\n"
        "import img2mesh_addon.logic.camera_math, img2mesh_addon.logic.messages\n"
        "import img2mesh_addon.logic.requests, img2mesh_addon.logic.results\n"
        "import img2mesh_addon.worker_client\n"
        "assert 'bpy' not in sys.modules\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr


def test_the_cores_settings_use_the_shared_defaults():
    s = Settings()
    assert s.max_size == protocol.DEFAULT_MAX_SIZE
    assert s.depth_model == protocol.DEFAULT_DEPTH_MODEL
    assert s.rembg_model == protocol.DEFAULT_REMBG_MODEL
    assert s.smooth == protocol.DEFAULT_SMOOTH


def test_every_error_code_has_the_add_ons_wording():
    assert set(messages.WORDING) == set(protocol.ERROR_CODES)


def test_overall_progress_runs_from_zero_to_one_through_the_stages():
    for stages in (protocol.PHOTO_STAGES, protocol.PROMPT_STAGES):
        points = [protocol.overall(s, f, stages) for s in stages for f in (0.0, 0.5, 1.0)]
        assert points == sorted(points) and points[0] == 0.0 and points[-1] == 1.0
    assert set(protocol.STAGE_LABELS) == set(protocol.PROMPT_STAGES)


def test_prompt_slug_and_srgb():
    assert protocol.prompt_slug("A red toy car!") == "a-red-toy-car"
    assert protocol.prompt_slug("?!") == "prompt"
    assert len(protocol.prompt_slug("a " * 40)) <= 40
    linear = protocol.srgb_to_linear([0.0, 0.04045, 0.5, 1.0])
    assert linear.dtype.name == "float32"
    assert abs(float(linear[2]) - 0.21404) < 1e-5 and float(linear[3]) == 1.0
