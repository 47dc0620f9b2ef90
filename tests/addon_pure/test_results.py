"""A worker's result checked, and the photo's camera as Blender values, without Blender."""

from __future__ import annotations

import json

import numpy as np
import pytest

from img2mesh_addon.logic.camera_math import SENSOR_MM, camera_settings, clip_range
from img2mesh_addon.logic.errors import ResultError
from img2mesh_addon.logic.results import load_result, parse_result

INTR = {"fx": 500.0, "fy": 500.0, "cx": 319.5, "cy": 239.5, "width": 640, "height": 480}


def result(**changes):
    r = {
        "vertices": np.array([[0, 2, 0], [1, 2, 0], [0, 2, 1]], np.float32),
        "faces": np.array([[0, 1, 2]], np.int32),
        "colors": np.full((3, 3), 0.5, np.float32),
        "intrinsics": np.array(json.dumps(INTR)),
        "camera_location": np.zeros(3),
    }
    r.update(changes)
    return {k: v for k, v in r.items() if v is not None}


def test_a_good_result_parses():
    parsed = parse_result(result(), need_camera=True)
    assert parsed["faces"].dtype == np.int32 and parsed["intrinsics"] == INTR
    assert parsed["camera_rotation"] == pytest.approx((np.pi / 2, 0, 0))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"faces": np.array([[0, 1, 14]])}, "refers to vertex 14, but the mesh has only 3"),
        ({"colors": None}, "The result lacks colors"),
        ({"intrinsics": np.array("{")}, "not valid JSON"),
        ({"format_version": np.int32(99)}, "Update the add-on"),
        ({"vertices": np.full((3, 3), np.nan, np.float32)}, "not finite"),
    ],
)
def test_bad_results_are_refused_with_a_sentence(changes, message):
    with pytest.raises(ResultError, match=message):
        parse_result(result(**changes), need_camera=True)


def test_an_unreadable_file(tmp_path):
    with pytest.raises(ResultError, match="does not exist"):
        load_result(str(tmp_path / "none.npz"))
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ResultError, match="cannot be read"):
        load_result(str(tmp_path / "bad.npz"))


def test_camera_values_for_a_landscape_and_a_portrait_photo():
    c = camera_settings(INTR)
    assert c["sensor_fit"] == "HORIZONTAL" and c["lens"] == pytest.approx(500 * SENSOR_MM / 640)
    assert c["shift_x"] == pytest.approx(0) and c["shift_y"] == pytest.approx(0)
    tall = camera_settings({**INTR, "width": 480, "height": 640, "cx": 200.0})
    assert tall["sensor_fit"] == "VERTICAL" and tall["lens"] == pytest.approx(500 * 36 / 640)
    assert tall["shift_x"] == pytest.approx((239.5 - 200) / 640)


def test_clipping_shows_the_whole_mesh():
    near, far = clip_range(np.array([[0, 0.05, 0], [0, 500, 0]], np.float32), (0, 0, 0))
    assert near == pytest.approx(0.025) and far == pytest.approx(1000)
