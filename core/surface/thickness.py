"""How deep the hidden side is: the silhouette inflated into a thickness map, and a solved solid stretched to another thickness."""

from __future__ import annotations

import math

import numpy as np

from ..geometry.camera import Intrinsics
from ..geometry.mesh import Mesh
from ..geometry.pointcloud import PointCloud
from ..geometry.sampling import bilinear, nearest_inside

#: Back-surface depth behind the front, in pixels, is ``INFLATION * sqrt(h)`` where h solves
#: laplacian(h) = -1 inside the silhouette (h = 0 on it). A disc then becomes an
#: ellipsoid three quarters as deep as wide (4 would be a sphere) and a long strip a
#: cylinder (2.83): most photographed objects are not deeper than they are wide.
INFLATION = 3.0


def thickness_map(
    mask: np.ndarray, *, share: float | None = None, max_side: int = 128
) -> np.ndarray:
    """(H, W) float32 depth of the solid behind the front surface, in pixels; 0 off the mask.

    The silhouette is inflated: h solves laplacian(h) = -1 inside with h = 0 on the
    outline, and the depth is :data:`INFLATION` x sqrt(h), which falls to zero at the
    outline like the rim of a round object. The solve runs on a copy at most
    ``max_side`` pixels across (it is smooth, so that loses nothing) and a floor from
    the exact distance transform keeps parts too thin for that copy. ``share`` rescales
    the result so its deepest point is that share of the object's width.
    """
    import cv2

    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.shape, dtype=np.float32)
    if not mask.any():
        return out
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height = rows[-1] - rows[0] + 1
    width = cols[-1] - cols[0] + 1
    step = max(1, math.ceil(max(height, width) / max_side))
    # A background border around the crop, and a size divisible by the step.
    ph = math.ceil((height + 2) / step) * step
    pw = math.ceil((width + 2) / step) * step
    crop = np.zeros((ph, pw), dtype=np.uint8)
    crop[1 : height + 1, 1 : width + 1] = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    dist = cv2.distanceTransform(crop, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    h = dist * dist / 4.0  # the centre of a disc of radius d has h = d^2 / 4
    if step > 1:
        small = cv2.resize(
            crop.astype(np.float32), (pw // step, ph // step), interpolation=cv2.INTER_AREA
        )
        coarse = _inflate(small > 0.5) * float(step * step)
        h = np.maximum(h, cv2.resize(coarse, (pw, ph), interpolation=cv2.INTER_LINEAR))
    else:
        h = np.maximum(h, _inflate(crop > 0))
    t = INFLATION * np.sqrt(np.maximum(h, 0.0)) * (crop > 0)
    if share is not None and t.max() > 0:
        t *= share * width / t.max()
    out[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = t[1 : height + 1, 1 : width + 1]
    return out


def _inflate(inside: np.ndarray) -> np.ndarray:
    """Solve laplacian(h) = -1 on the pixels ``inside`` with h = 0 outside (5-point stencil)."""
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    out = np.zeros(inside.shape, dtype=np.float32)
    n = int(inside.sum())
    if n == 0:
        return out
    index = np.full(inside.shape, -1, dtype=np.int64)
    index[inside] = np.arange(n)
    padded = np.pad(index, 1, constant_values=-1)
    centre = padded[1:-1, 1:-1][inside]
    rows, cols = [centre], [centre]
    data = [np.full(n, 4.0)]
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nb = padded[1 + dr : padded.shape[0] - 1 + dr, 1 + dc : padded.shape[1] - 1 + dc][inside]
        keep = nb >= 0
        rows.append(centre[keep])
        cols.append(nb[keep])
        data.append(np.full(int(keep.sum()), -1.0))
    a = sparse.csc_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    out[inside] = spsolve(a, np.ones(n))
    return out


def stretched_solid(solid: Mesh, cloud: PointCloud, silhouette, intrinsics: Intrinsics, thickness):
    """``solid`` (made at the inflation's depth) with its back at ``thickness`` x the width.

    Each vertex moves along its own ray, so it keeps its pixel (and the solid its
    silhouette and topology). Its offset behind the front surface at that pixel, d, is
    stretched by the ratio k of the two depths within the solid (0 <= d <= t, the
    inflation's depth there): the front stays, the back lands k x as deep, the rim
    between is stretched evenly, and what lies beyond t (Poisson's rounding of the
    back) moves with the back. On the oracle scenes this is as close to the intended
    solid as solving Poisson again on a back at that depth, and closer for thin ones.
    """
    t = thickness_map(silhouette)
    k = float(thickness_map(silhouette, share=thickness).max() / t.max())
    vertices = solid.vertices
    # The front depth at each pixel: the points' depth, else the nearest point's.
    front = np.zeros(cloud.valid.shape, dtype=np.float64)
    front[cloud.pixels[:, 0], cloud.pixels[:, 1]] = cloud.points[:, 2]
    rows, cols = nearest_inside(cloud.valid)
    front, t = front[rows, cols], t[rows, cols]
    u, v = intrinsics.project(vertices)
    # Read both between pixel centres: a map that jumps from pixel to pixel would
    # fold the faces that run along the rays at the rim through each other.
    front_at, t_at = bilinear(front, u, v), bilinear(t, u, v)
    # A point scaled by (1 + d / f) along its ray lies d pixels' worth of width behind.
    focal = math.sqrt(intrinsics.fx * intrinsics.fy)
    ratio = vertices[:, 2] / front_at
    d = (ratio - 1.0) * focal
    d = d + (k - 1.0) * np.clip(d, 0.0, t_at)
    moved = vertices * ((1.0 + d / focal) / ratio)[:, None]
    return Mesh(moved, solid.faces, solid.colors, None)


def pushed_back(vertices, cloud, silhouette, intrinsics, thickness):
    """Back copies of ``vertices`` (front points, possibly duplicated at pinches)."""
    t = thickness_map(silhouette, share=thickness)
    focal = math.sqrt(intrinsics.fx * intrinsics.fy)
    u, v = intrinsics.project(vertices)
    r = np.clip(np.rint(v).astype(np.int64), 0, t.shape[0] - 1)
    c = np.clip(np.rint(u).astype(np.int64), 0, t.shape[1] - 1)
    scale = 1.0 + t[r, c] / focal
    return vertices * scale[:, None], scale
