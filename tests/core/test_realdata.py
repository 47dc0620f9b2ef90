"""Real photos and real RGB-D frames from ../shared/data (skipped when that folder is absent)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.errors import InputError
from core.geometry.camera import to_camera_frame
from core.oracle.scores import is_watertight
from core.runs.pipeline import Pipeline
from core.settings import Settings

from .conftest import shared_data


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline()


def projected_colour_error(result, rgb_full: np.ndarray) -> float:
    """Median |vertex colour - photo colour| of the vertices facing the camera, at the pixels they project to."""
    K = result.camera.intrinsics
    mesh = to_camera_frame(result.mesh, result.camera)
    v = mesh.vertices.astype(np.float64)
    u = np.round(v[:, 0] / v[:, 2] * K.fx + K.cx).astype(int)
    r = np.round(v[:, 1] / v[:, 2] * K.fy + K.cy).astype(int)
    ok = (u >= 0) & (u < K.width) & (r >= 0) & (r < K.height) & (v[:, 2] > 0)
    if mesh.normals is not None:
        ok &= (mesh.normals * v).sum(axis=1) < 0
    ok &= result.mask[np.clip(r, 0, K.height - 1), np.clip(u, 0, K.width - 1)]
    assert ok.sum() > 100
    photo = np.asarray(Image.fromarray(rgb_full).resize((K.width, K.height))) / 255.0
    return float(np.median(np.abs(mesh.colors[ok] - photo[r[ok], u[ok]])))


def valid_mesh(mesh) -> None:
    assert mesh.n_faces > 500
    assert np.isfinite(mesh.vertices).all()
    assert mesh.faces.min() >= 0 and mesh.faces.max() < mesh.n_vertices
    assert mesh.colors.min() >= 0 and mesh.colors.max() <= 1


@pytest.mark.parametrize(
    "folder,colour,scale",
    [("tum", "color.png", 1 / 5000), ("icl_synthetic", "color.jpg", 1 / 1000)],
)
@pytest.mark.parametrize("method", ["grid", "poisson"])
def test_rgbd_frame_through_depth_map(pipeline, folder, colour, scale, method):
    data = shared_data() / "rgbd" / folder
    settings = Settings(
        segment="none",
        depth_map=str(data / "depth.png"),
        depth_scale=scale,
        focal_px=525.0,
        mesh=method,
        open=True,
    )
    result = pipeline.run(data / colour, settings)
    valid_mesh(result.mesh)
    assert result.metric
    assert result.camera.intrinsics.fx == pytest.approx(525.0)
    rgb = np.asarray(Image.open(data / colour).convert("RGB"))
    assert projected_colour_error(result, rgb) < 0.06
    # scale: each vertex sits at the sensor's depth of the pixel it projects to (metres)
    depth = np.asarray(Image.open(data / "depth.png")).astype(np.float64) * scale
    v = to_camera_frame(result.mesh, result.camera).vertices.astype(np.float64)
    K = result.camera.intrinsics
    u = np.round(v[:, 0] / v[:, 2] * K.fx + K.cx).astype(int)
    r = np.round(v[:, 1] / v[:, 2] * K.fy + K.cy).astype(int)
    inside = (u >= 0) & (u < K.width) & (r >= 0) & (r < K.height)
    seen = depth[r[inside], u[inside]]
    rel = np.abs(v[inside, 2][seen > 0] - seen[seen > 0]) / seen[seen > 0]
    assert np.median(rel) < 0.02
    assert np.percentile(v[:, 2], 95) < depth.max() * 1.05


@pytest.mark.parametrize("name", ["skating_shoe.jpg", "fruit.jpg"])
def test_plain_background_photos_without_weights(pipeline, name):
    path = shared_data() / "photos" / name
    result = pipeline.run(path, Settings(segment="key", depth="inflate"))
    valid_mesh(result.mesh)
    assert is_watertight(result.mesh)
    assert 0.15 < result.mask.mean() < 0.8
    rgb = np.asarray(Image.open(path).convert("RGB"))
    assert projected_colour_error(result, rgb) < 0.08


def test_cut_out_render_uses_its_alpha(pipeline):
    path = shared_data() / "photos" / "chair_render.png"
    result = pipeline.run(path, Settings(segment="rembg", depth="inflate", mesh="grid"))
    assert result.info["mask_source"] == "alpha channel"  # rembg was never needed
    alpha = np.asarray(Image.open(path))[:, :, 3] >= 128
    assert (result.mask == alpha).mean() > 0.98
    valid_mesh(result.mesh)


def test_scene_photo_is_not_a_plain_background(pipeline):
    """The colour key refuses a street scene with a clear reason instead of making nonsense."""
    path = shared_data() / "photos" / "car-1.jpg"
    with pytest.raises(InputError, match="needs an object on a plain background"):
        pipeline.run(path, Settings(segment="key", depth="inflate"))
