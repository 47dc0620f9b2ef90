"""The box prior: boxes and straight extrusions completed from their flat faces, other objects refused."""

from __future__ import annotations

import json
from functools import cache

import pytest

from core.cli.main import main
from core.oracle.boxes import make_box_scene
from core.oracle.scenes import make_scene, save_scene
from core.oracle.scores import whole_object_score
from core.oracle.shapes import make_shape_scene
from core.shape_prior.box import fit_box
from core.surface.build import reconstruct_surface
from core.surface.cloud import point_cloud


@cache
def scene_of(key: tuple):
    """A scene by its key: ("box", seed, kind, elevation), ("shape", name) or ("ball",)."""
    if key[0] == "box":
        return make_box_scene(key[1], kind=key[2], elevation=key[3])
    if key[0] == "shape":
        return make_shape_scene(key[1], width=320, height=240)
    return make_scene("sphere", width=320, height=240)


@cache
def solid(key: tuple, shape: str):
    scene = scene_of(key)
    cloud = point_cloud(scene.depth, scene.rgb, scene.mask, scene.intrinsics)
    mesh, info = reconstruct_surface(
        cloud, scene.depth, scene.rgb, scene.mask, scene.intrinsics, shape=shape
    )
    return mesh, info, whole_object_score(mesh, scene)


@pytest.mark.parametrize(
    "seed, kind, elevation",
    [(0, "box", 12), (1, "box", 35), (2, "box", 55), (3, "l_shape", 40)],
)
def test_boxes_and_extrusions_are_completed_from_their_faces(seed, kind, elevation):
    mesh, info, after = solid(("box", seed, kind, elevation), "auto")
    assert info["shape"] == "box", info["shape_note"]
    assert info["watertight"]
    assert after["f_score"] >= 0.90
    fit = info["shape_fit"]
    assert fit["explained"] >= 0.8 and fit["contradiction"] <= 0.1


def test_a_box_gains_over_inflation():
    before = solid(("box", 1, "box", 35), "inflate")[2]
    after = solid(("box", 1, "box", 35), "auto")[2]
    assert after["f_score"] > before["f_score"] + 0.15


@pytest.mark.parametrize("name", ["bottle", "blob"])
def test_a_lathe_object_and_a_blob_do_not_become_boxes(name):
    _, info, _ = solid(("shape", name), "auto")
    assert info["shape"] != "box"


def test_a_ball_asked_to_be_a_box_is_refused_with_a_reason():
    s = scene_of(("ball",))
    cloud = point_cloud(s.depth, s.rgb, s.mask, s.intrinsics)
    fit = fit_box(cloud, s.mask | cloud.valid, s.intrinsics)
    assert fit is None or not fit.accepted
    _, info, _ = solid(("ball",), "box")
    assert info["shape"] == "inflate"
    note = info["shape_note"]
    assert note.startswith("inflate (asked for a box, but ") and len(note) < 200


def test_box_can_be_forced_from_the_cli(tmp_path):
    paths = save_scene(scene_of(("box", 1, "box", 35)), tmp_path)
    report = tmp_path / "box.json"
    code = main(
        [
            str(paths["rgba"]),
            "-o",
            str(tmp_path / "box.ply"),
            "--segment",
            "none",
            "--depth-map",
            str(paths["depth_npy"]),
            "--shape",
            "box",
            "--report",
            str(report),
            "-q",
            "--no-preview",
        ]
    )
    assert code == 0
    assert '"mesh_shape": "box"' in json.dumps(json.loads(report.read_text()))


def test_the_product_photo_box_gets_the_box_prior():
    """bench/shape.py's box_tilted: inflated before (F 0.59 with exact depth)."""
    mesh, info, after = solid(("shape", "box_tilted"), "auto")
    assert info["shape"] == "box" and info["watertight"]
    assert after["f_score"] >= 0.95


def test_a_remesh_reuses_the_box_solid_and_never_serves_it_for_another_prior():
    """The Poisson solids kept per point cloud are kept per prior: a second run with the box
    reuses the box's solid (the same mesh), and one with --shape inflate makes its own."""
    import numpy as np

    scene = scene_of(("box", 1, "box", 35))
    cloud = point_cloud(scene.depth, scene.rgb, scene.mask, scene.intrinsics)
    args = (cloud, scene.depth, scene.rgb, scene.mask, scene.intrinsics)
    solids: dict = {}
    first, first_info = reconstruct_surface(*args, shape="box", solids=solids)
    again, again_info = reconstruct_surface(*args, shape="box", solids=solids)
    inflated, inflated_info = reconstruct_surface(*args, shape="inflate", solids=solids)
    assert first_info["shape"] == again_info["shape"] == "box"
    assert first_info["poisson_reused"] is False and again_info["poisson_reused"] is True
    assert np.array_equal(first.vertices, again.vertices)
    assert np.array_equal(first.faces, again.faces)
    assert inflated_info["shape"] == "inflate" and inflated_info["poisson_reused"] is False
    assert len(inflated.faces) != len(first.faces) or not np.array_equal(
        inflated.vertices, first.vertices
    )
