"""The shape prior: surfaces of revolution completed from one view, others refused honestly."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest

from core.cli.main import main
from core.oracle.scenes import save_scene
from core.oracle.scores import network_like_depth, stepped_depth, whole_object_score
from core.oracle.shapes import SHAPE_ELEVATIONS, make_shape_scene
from core.shape_prior.axis import angle_between
from core.shape_prior.front import smoothed_front
from core.shape_prior.revolution import fit_revolution
from core.surface.build import reconstruct_surface
from core.surface.cloud import point_cloud


@cache
def scene(name: str):
    return make_shape_scene(name, width=240, height=180)


@cache
def solid(name: str, shape: str, corrupted: bool = False):
    s = scene(name)
    depth = network_like_depth(s.depth, s.mask) if corrupted else s.depth
    cloud = point_cloud(depth, s.rgb, s.mask, s.intrinsics)
    mesh, info = reconstruct_surface(cloud, depth, s.rgb, s.mask, s.intrinsics, shape=shape)
    return mesh, info, whole_object_score(mesh, s)


def true_axis(name: str) -> np.ndarray:
    e = np.radians(SHAPE_ELEVATIONS[name])
    return np.array([0.0, -np.cos(e), -np.sin(e)])  # upright, camera looking down by e


@pytest.mark.parametrize("name", ["bottle", "vase", "torus_tilted", "cup"])
def test_the_axis_is_found_though_the_camera_looks_down(name):
    s = scene(name)
    cloud = point_cloud(s.depth, s.rgb, s.mask, s.intrinsics)
    fit = fit_revolution(cloud, s.mask | cloud.valid, s.intrinsics)
    assert fit is not None and fit.accepted, fit and fit.reason
    # not vertical in the image: the elevation tilts it out of the image plane
    assert angle_between(fit.axis_direction, true_axis(name)) < 2.0
    assert angle_between(true_axis(name), np.array([0.0, -1.0, 0.0])) >= 10


@pytest.mark.parametrize("name", ["bottle", "vase", "can"])
def test_lathe_objects_are_completed_whole(name):
    before = solid(name, "inflate")[2]
    mesh, info, after = solid(name, "auto")
    assert info["shape"] == "revolve" and info["watertight"]
    # at this small size (the benchmark's 640 x 480 gives 1.0 on all three)
    assert after["f_score"] >= 0.85 and after["f_score"] > before["f_score"] + 0.1
    assert after["hidden_recall"] >= 0.75


def test_a_ring_seen_from_above_gets_its_round_underside():
    """A torus's underside is never seen from above: the circle its seen profile fits
    supplies it, and the solid is the whole ring (the inflated one is flat below)."""
    s = scene("torus_tilted")
    cloud = point_cloud(s.depth, s.rgb, s.mask, s.intrinsics)
    fit = fit_revolution(cloud, s.mask | cloud.valid, s.intrinsics)
    assert fit.accepted and fit.quality.get("ring_profile") == "round"
    # the added copies lie below the seen profile: along the axis, under the front's lowest
    rel = fit.back_points - fit.axis_point
    front = cloud.points[fit.body] - fit.axis_point
    assert (rel @ fit.axis_direction).min() < (front @ fit.axis_direction).min() - 0.01
    before = solid("torus_tilted", "inflate")[2]
    mesh, info, after = solid("torus_tilted", "auto")
    assert info["shape"] == "revolve" and info["watertight"]
    assert after["f_score"] >= 0.95 and after["hidden_recall"] > before["hidden_recall"] + 0.2


def test_a_cup_keeps_its_handle_and_is_rounder_than_inflated():
    before = solid("cup", "inflate")[2]
    mesh, info, after = solid("cup", "auto")
    assert info["shape"] == "revolve" and info["shape_fit"]["body_share"] < 0.95  # the handle
    assert after["f_score"] >= 0.85 and after["f_score"] > before["f_score"]
    s = scene("cup")
    # the handle stays where the photo shows it: the visible handle points are on the mesh
    from core.oracle.scores import completeness

    assert completeness(mesh, s.visible_points, 0.01 * s.diagonal) > 0.97


# (box_tilted now gets the box prior: tests/core/shape_prior/test_box.py)
@pytest.mark.parametrize("name", ["chair"])
def test_other_objects_are_refused_and_meshed_as_before(name):
    mesh, info, after = solid(name, "auto")
    _, inflate_info, before = solid(name, "inflate")
    assert info["shape"] == "inflate" and info["shape_note"].startswith("inflate (")
    # the same solid as asked for inflation (Poisson's threads make tiny differences)
    assert after["f_score"] == pytest.approx(before["f_score"], abs=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vase", "bottle"])
def test_a_lathe_object_with_network_like_depth_still_gains(name):
    """Depth smeared and unevenly stretched like a network's (at the benchmark's size). The
    bottle's turned front alone made its hidden side too thin (0.82); its outline's radius
    gives 0.89."""
    s = make_shape_scene(name)
    depth = network_like_depth(s.depth, s.mask)
    cloud = point_cloud(depth, s.rgb, s.mask, s.intrinsics)
    scores = {}
    for shape in ("inflate", "auto"):
        mesh, info = reconstruct_surface(cloud, depth, s.rgb, s.mask, s.intrinsics, shape=shape)
        scores[shape] = whole_object_score(mesh, s)["f_score"]
    assert info["shape"] == "revolve" and info["watertight"]
    assert scores["auto"] >= 0.85 and scores["auto"] > scores["inflate"]


@pytest.mark.slow
def test_a_torus_with_network_like_depth_is_placed_by_its_outline(monkeypatch):
    """The network-like front of the tilted torus is consistent with an axis 12 mm too
    near the camera (its hidden side then scored 0.79). The turned ring's outline drawn
    from its profile shows where the axis lies along the line of sight: moved there, the
    axis is nearer the exact-depth fit's and the whole ring scores at least 0.85."""
    from core.shape_prior import outline

    s = make_shape_scene("torus_tilted")
    exact = point_cloud(s.depth, s.rgb, s.mask, s.intrinsics)
    truth = fit_revolution(exact, s.mask | exact.valid, s.intrinsics)
    assert "axis" not in truth.quality  # exact depth: the front's axis is kept
    depth = network_like_depth(s.depth, s.mask)
    cloud = point_cloud(depth, s.rgb, s.mask, s.intrinsics)
    fit = fit_revolution(cloud, s.mask | cloud.valid, s.intrinsics)
    assert fit.accepted and fit.quality["axis"].startswith("moved along the line of sight")
    with monkeypatch.context() as m:
        m.setattr(outline, "OUTLINE_REACH", 0.0)
        unmoved = fit_revolution(cloud, s.mask | cloud.valid, s.intrinsics)
    assert "axis" not in unmoved.quality

    def off(f):
        d = f.axis_point - truth.axis_point
        return np.linalg.norm(d - (d @ truth.axis_direction) * truth.axis_direction)

    assert off(fit) < off(unmoved) - 0.004
    mesh, info = reconstruct_surface(cloud, depth, s.rgb, s.mask, s.intrinsics, shape="auto")
    assert info["shape"] == "revolve" and info["watertight"]
    assert whole_object_score(mesh, s)["f_score"] >= 0.85


@pytest.mark.parametrize("name", ["bottle", "torus_tilted"])
def test_the_outline_drawn_from_an_exact_fit_is_the_photos(name):
    """The turned body's outline, drawn slice by slice from its profile (a ring's with its
    hole), covers the silhouette to within two pixels: no reason to move the axis."""
    from core.shape_prior import axis, outline
    from core.shape_prior.front import Axis, Front

    s = scene(name)
    cloud = point_cloud(s.depth, s.rgb, s.mask, s.intrinsics)
    fit = fit_revolution(cloud, s.mask | cloud.valid, s.intrinsics)
    assert fit.accepted and "axis" not in fit.quality
    points, normals = smoothed_front(cloud, s.intrinsics)
    cell = 0.02 * float(np.ptp(points, axis=0).max())  # the fit's
    a, c = fit.axis_direction, fit.axis_point
    front = Front(points - c, normals, c, 1.0, cell)
    frame = axis.about(front, Axis(a, np.zeros(3)))
    line = s.intrinsics.project(c + np.outer(np.linspace(-0.2, 0.2, 41), a))
    ring = outline._ring_hole(s.mask, *line)
    assert ring == (name == "torus_tilted")
    drawn = outline._outline(
        front, Axis(a, np.zeros(3)), frame, fit.body, ring, s.mask, s.intrinsics
    )
    assert outline._outline_gap(drawn, s.mask) < 0.01
    assert (drawn & s.mask).sum() > 0.98 * s.mask.sum()
    if name == "torus_tilted":  # the ring's hole stays open: not drawn over
        import cv2

        _, labels = cv2.connectedComponents((~s.mask).astype(np.uint8), connectivity=4)
        border = np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        hole = ~s.mask & ~np.isin(labels, border)
        assert hole.sum() > 100
        assert drawn[hole].mean() < 0.2


@pytest.mark.parametrize("name", ["cup", "blob"])
def test_an_outline_a_lathe_body_cannot_explain_does_not_move_the_axis(name):
    """A cup's handle or a blob's bumps leave much of the outline unexplained by any
    turned body (16-40% of it): the outline then says nothing about the axis."""
    s = scene(name)
    for depth in (s.depth, network_like_depth(s.depth, s.mask)):
        cloud = point_cloud(depth, s.rgb, s.mask, s.intrinsics)
        fit = fit_revolution(cloud, s.mask | cloud.valid, s.intrinsics)
        assert fit is not None and "axis" not in fit.quality


@pytest.mark.slow
def test_a_lathe_object_in_a_sensors_depth_steps_is_fitted_by_its_radii():
    """Depth in 1 cm steps (a sensor's at about 2 m) turns the normals too far for their
    lines to meet the axis (2% of the front fitted them); each point's radius at its
    height still shows the axis, and the bottle is completed (inflated: 0.725)."""
    s = make_shape_scene("bottle")
    depth = stepped_depth(s.depth, s.mask, 0.01)
    cloud = point_cloud(depth, s.rgb, s.mask, s.intrinsics)
    fit = fit_revolution(cloud, s.mask | cloud.valid, s.intrinsics)
    assert fit.accepted and fit.quality["normals"].startswith("rough")
    assert angle_between(fit.axis_direction, true_axis("bottle")) < 2.0
    scores = {}
    for shape in ("inflate", "auto"):
        mesh, info = reconstruct_surface(cloud, depth, s.rgb, s.mask, s.intrinsics, shape=shape)
        scores[shape] = whole_object_score(mesh, s)["f_score"]
    assert info["shape"] == "revolve" and info["watertight"]
    assert scores["auto"] >= 0.95 and scores["inflate"] < 0.8


@pytest.mark.slow
def test_other_objects_in_a_sensors_depth_steps_are_still_refused():
    s = make_shape_scene("box_tilted")
    for step in (0.01, 0.02):
        depth = stepped_depth(s.depth, s.mask, step)
        cloud = point_cloud(depth, s.rgb, s.mask, s.intrinsics)
        fit = fit_revolution(cloud, s.mask | cloud.valid, s.intrinsics)
        assert not fit.accepted and "fits a surface of revolution" in fit.reason


@pytest.mark.slow
def test_the_real_globe_of_a_depth_sensors_frame_is_completed_round():
    """The inflatable globe of the TUM RGB-D frame (../shared/data/rgbd/tum), about 90
    pixels across at 2.1 m: its mask from the real IS-Net, its depth the sensor's (steps of
    about a centimetre), its intrinsics the frame's. The hidden half of the solid is a
    ball's: its vertices lie within a few per cent of the sphere the seen points fit."""
    from bench.shape_images import tum_globe

    from ..conftest import shared_data

    # (the sensor's depth is not registered exactly to the colour: along the outline it
    # reads the wall behind the globe, so its mask is cut at 2.3 m as well)
    rgb, depth, mask, K = tum_globe(shared_data())
    cloud = point_cloud(depth, rgb, mask, K)
    p = cloud.points.astype(np.float64)
    # the sphere the seen points fit (least squares)
    x, *_ = np.linalg.lstsq(np.c_[2 * p, np.ones(len(p))], (p**2).sum(axis=1), rcond=None)
    centre, radius = x[:3], np.sqrt(x[3] + x[:3] @ x[:3])
    assert 0.15 < radius < 0.3
    off = {}
    for shape in ("inflate", "auto"):
        mesh, info = reconstruct_surface(cloud, depth, rgb, mask, K, shape=shape)
        assert info["watertight"]
        v = mesh.vertices.astype(np.float64)
        hidden = v[v[:, 2] > centre[2]]  # the far half
        off[shape] = float(np.median(np.abs(np.linalg.norm(hidden - centre, axis=1) - radius)))
    assert info["shape"] == "revolve" and info["shape_fit"]["normals"].startswith("rough")
    assert off["auto"] < 0.05 * radius and off["inflate"] > 0.1 * radius


def test_revolve_and_inflate_can_be_forced_from_the_cli(tmp_path):
    paths = save_scene(scene("can"), tmp_path)
    notes = {}
    for shape in ("auto", "inflate", "revolve"):
        report = tmp_path / f"{shape}.json"
        code = main(
            [
                str(paths["rgba"]),
                "-o",
                str(tmp_path / f"{shape}.ply"),
                "--segment",
                "none",
                "--depth-map",
                str(paths["depth_npy"]),
                "--shape",
                shape,
                "--report",
                str(report),
                "-q",
                "--no-preview",
            ]
        )
        assert code == 0
        notes[shape] = json.loads(report.read_text())
    flat = {k: json.dumps(v) for k, v in notes.items()}
    assert '"mesh_shape": "revolve"' in flat["auto"]
    assert '"mesh_shape": "inflate"' in flat["inflate"]
    assert '"mesh_shape": "revolve"' in flat["revolve"]


def test_an_unknown_shape_is_a_readable_error(capsys):
    with pytest.raises(SystemExit) as err:
        main(["x.png", "--shape", "cube"])
    assert err.value.code == 2
    assert "--shape" in capsys.readouterr().err


@pytest.mark.parametrize("size", [(240, 180), (640, 480)])
def test_a_ball_is_turned_about_an_axis_across_the_line_of_sight(size):
    """A ball fits every axis through its centre, and the one along the line of sight best
    (the front's smoothed normals are symmetric about it): turned about that one, the front
    covered only itself and the ball came out a lens (whole-object F 0.44). An axis across
    the line of sight turns the front onto the back: the whole ball."""
    from core.oracle.scenes import make_scene

    s = make_scene("sphere", width=size[0], height=size[1])
    cloud = point_cloud(s.depth, s.rgb, s.mask, s.intrinsics)
    fit = fit_revolution(cloud, s.mask | cloud.valid, s.intrinsics)
    sight = fit.axis_point / np.linalg.norm(fit.axis_point)
    assert fit.accepted and angle_between(fit.axis_direction, sight) >= 25.0
    mesh, info = reconstruct_surface(cloud, s.depth, s.rgb, s.mask, s.intrinsics)
    assert info["shape"] == "revolve" and info["watertight"]
    assert whole_object_score(mesh, s)["f_score"] >= 0.95
