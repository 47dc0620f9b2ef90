"""Reading images at projected points: bilinear samples, which points land in a region, the nearest pixel of one."""

from __future__ import annotations

import numpy as np

from .camera import Intrinsics


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``image`` (H, W) or (H, W, C) read at (column x, row y), linearly between pixel centres
    (pixel centres at integers), clamped at its sides; float64."""
    h, w = image.shape[:2]
    x = np.clip(np.nan_to_num(x), 0, w - 1)
    y = np.clip(np.nan_to_num(y), 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(y).astype(np.int64), max(h - 2, 0))
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    if image.ndim == 3:
        fx, fy = fx[:, None], fy[:, None]

    def tap(r, c):  # gather first: converting the whole image to float would cost more
        return image[r, c].astype(np.float64)

    top = tap(y0, x0) * (1 - fx) + tap(y0, x1) * fx
    bottom = tap(y1, x0) * (1 - fx) + tap(y1, x1) * fx
    return top * (1 - fy) + bottom * fy


def projects_into(vertices: np.ndarray, region: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Which vertices project inside the image onto a pixel of ``region`` (in front of the camera)."""
    u, v = intrinsics.project(vertices)
    h, w = region.shape
    with np.errstate(invalid="ignore"):
        inside = (vertices[:, 2] > 0) & (u > -0.5) & (u < w - 0.5) & (v > -0.5) & (v < h - 0.5)
    r = np.clip(np.nan_to_num(np.rint(v)), 0, h - 1).astype(np.int64)
    c = np.clip(np.nan_to_num(np.rint(u)), 0, w - 1).astype(np.int64)
    return inside & region[r, c]


def nearest_inside(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel, the (row, col) of the nearest pixel of ``region``."""
    from scipy.ndimage import distance_transform_edt

    _, (rows, cols) = distance_transform_edt(~region, return_distances=True, return_indices=True)
    return rows, cols
