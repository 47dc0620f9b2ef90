"""Which faces of a surface the photo's camera sees: facing it, inside the image, not hidden behind another part."""

from __future__ import annotations

import math

import numpy as np

from ..geometry.camera import Intrinsics

#: Faces whose normal is more than this far from the line of sight are treated as hidden:
#: the photo stretches into streaks across them.
GRAZING_DEG = 75.0


def visible_faces(
    v: np.ndarray, faces: np.ndarray, intrinsics: Intrinsics, grazing_deg: float = GRAZING_DEG
) -> np.ndarray:
    """Faces the camera (at the origin, looking along +z) sees head-on enough to texture from the photo.

    A face is seen when its normal is within ``grazing_deg`` of the line of sight
    (either side: open surfaces have no inside), all its corners project into the image,
    and the ray to its centre reaches it unblocked.
    """
    import open3d as o3d

    m = len(faces)
    if m == 0:
        return np.zeros(0, bool)
    tri = v[faces]  # (M, 3, 3)
    centre = tri.mean(axis=1)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n_len = np.linalg.norm(normal, axis=1)
    c_len = np.linalg.norm(centre, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.abs((normal * centre).sum(axis=1)) / (n_len * c_len)
    seen = np.nan_to_num(cos) > math.cos(math.radians(grazing_deg))
    z = tri[:, :, 2]
    seen &= (z > 1e-9).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intrinsics.fx * tri[:, :, 0] / z + intrinsics.cx
        w = intrinsics.fy * tri[:, :, 1] / z + intrinsics.cy
    inside = (
        (u >= -0.5) & (u <= intrinsics.width - 0.5) & (w >= -0.5) & (w <= intrinsics.height - 0.5)
    )
    seen &= inside.all(axis=1)
    idx = np.nonzero(seen)[0]
    if len(idx) == 0:
        return seen
    # One ray per face, to its centre: a face half hidden at an occluding edge is at most
    # a pixel or two wide, and a ray per corner would triple the cost (~1.5 us a ray).
    probes = centre[idx]
    dist = c_len[idx]
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(v, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)),
    )
    rays = np.zeros((len(probes), 6), np.float32)
    rays[:, 3:] = probes / dist[:, None]
    hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().astype(np.float64)
    diag = float(np.linalg.norm(v.max(axis=0) - v.min(axis=0))) or 1.0
    tolerance = 1e-3 * diag + 1e-5 * dist
    clear = hit >= dist - tolerance
    seen[idx] = clear
    return seen
