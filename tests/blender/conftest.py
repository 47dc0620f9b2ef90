"""Fixtures for the tests that run against bpy (Blender 4.5 as a Python module)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The add-on is imported as a package from the repository root (tests only).
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

try:
    import bpy
except ImportError:  # the tests that need bpy skip themselves with a reason
    bpy = None


@pytest.fixture(autouse=True)
def factory_scene():
    """Every test starts from an empty factory scene, so tests do not leak into each other."""
    if bpy is not None:
        bpy.ops.wm.read_factory_settings(use_empty=True)
    yield
