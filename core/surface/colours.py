"""The finished surface fitted to the photo: vertices slid inside the silhouette, colours read from the photo at each vertex."""

from __future__ import annotations

import numpy as np

from ..geometry.camera import Intrinsics
from ..geometry.sampling import nearest_inside, projects_into


def keep_inside(vertices: np.ndarray, silhouette: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Slide vertices that project outside the silhouette sideways onto its nearest pixel.

    Poisson and smoothing round the rim by up to a voxel; moving those vertices at
    their own depth onto the nearest silhouette pixel's ray removes the overhang
    without touching the topology (the solid stays watertight).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    outside = ~projects_into(vertices, silhouette, intrinsics) & (vertices[:, 2] > 0)
    if not outside.any():
        return vertices
    rows, cols = nearest_inside(silhouette)
    u, v = intrinsics.project(vertices[outside])
    h, w = silhouette.shape
    r = np.clip(np.rint(v), 0, h - 1).astype(np.int64)
    c = np.clip(np.rint(u), 0, w - 1).astype(np.int64)
    nr, nc = rows[r, c], cols[r, c]
    # Onto the edge of that pixel's square, not its centre: a vertex moved to the
    # centre would jump over the inside vertices between the centre and the outline
    # and fold the surface through itself.
    half = 0.499
    u = np.clip(u, nc - half, nc + half)
    v = np.clip(v, nr - half, nr + half)
    z = vertices[outside, 2]
    moved = vertices.copy()
    moved[outside, 0] = (u - intrinsics.cx) * z / intrinsics.fx
    moved[outside, 1] = (v - intrinsics.cy) * z / intrinsics.fy
    return moved


def sample_colors(vertices, rgb, silhouette, intrinsics) -> np.ndarray:
    """sRGB [0, 1] of the photo at each vertex's pixel (the nearest silhouette pixel if outside)."""
    u, v = intrinsics.project(vertices)
    h, w = silhouette.shape
    r = np.clip(np.nan_to_num(np.rint(v)), 0, h - 1).astype(np.int64)
    c = np.clip(np.nan_to_num(np.rint(u)), 0, w - 1).astype(np.int64)
    off = ~silhouette[r, c]
    if off.any():
        rows, cols = nearest_inside(silhouette)
        r[off], c[off] = rows[r[off], c[off]], cols[r[off], c[off]]
    pixels = rgb[r, c]
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255.0)
    return np.clip(np.nan_to_num(pixels.astype(np.float32)), 0.0, 1.0)
