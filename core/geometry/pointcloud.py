"""The coloured point cloud of a depth map (camera frame), back-projection and normals from the pixel grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .camera import Intrinsics


@dataclass
class PointCloud:
    """Points back-projected from the masked depth map (OpenCV camera frame, x right, y down, z forward).

    points: (N, 3) float32; colors: (N, 3) float32 sRGB in [0, 1]; normals: (N, 3)
    float32 unit vectors facing the camera, or None; pixels: (N, 2) int32 (row, col)
    of each point's source pixel; valid: (H, W) bool, the pixels that became points.
    """

    points: np.ndarray
    colors: np.ndarray
    normals: np.ndarray | None
    pixels: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


def backproject(
    depth: np.ndarray, intrinsics: Intrinsics, origin: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """(H, W, 3) float32 camera-frame points of every pixel (NaN where the depth is NaN).

    ``origin`` is the (row, col) of ``depth[0, 0]`` when it is a crop of the full image.
    """
    h, w = depth.shape
    z = depth.astype(np.float64)
    cols = np.arange(origin[1], origin[1] + w, dtype=np.float64)[None, :]
    rows = np.arange(origin[0], origin[0] + h, dtype=np.float64)[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        return np.stack(
            [
                (cols - intrinsics.cx) * z / intrinsics.fx,
                (rows - intrinsics.cy) * z / intrinsics.fy,
                z,
            ],
            axis=-1,
        ).astype(np.float32)


def grid_normals(grid: np.ndarray, valid: np.ndarray, *, toward_camera: bool = True) -> np.ndarray:
    """Unit normals of a (H, W, 3) point grid from neighbour differences, smoothed over 3x3.

    Central differences where both neighbours are valid, one-sided where only one is;
    a pixel with no neighbour along a direction faces the camera straight on. Normals
    point towards the camera (origin) or, with ``toward_camera=False``, away from it.
    """
    valid = np.asarray(valid, dtype=bool)
    # Pixels without a point get no neighbours and face along their (zero) ray, +z,
    # so only the valid pixels' bounding box (and a one-pixel frame) needs the work.
    out = np.zeros(valid.shape + (3,), dtype=np.float32)
    out[..., 2] = -1.0 if toward_camera else 1.0
    rows = np.flatnonzero(valid.any(axis=1))
    cols = np.flatnonzero(valid.any(axis=0))
    if len(rows) == 0:
        return out
    r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, valid.shape[0])
    c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, valid.shape[1])
    out[r0:r1, c0:c1] = _grid_normals(grid[r0:r1, c0:c1], valid[r0:r1, c0:c1], toward_camera)
    return out


def _grid_normals(grid: np.ndarray, valid: np.ndarray, toward_camera: bool) -> np.ndarray:
    import cv2

    p = np.where(valid[..., None], grid, 0.0).astype(np.float64)
    # Normals do not change under uniform scaling; working at unit scale keeps the
    # cross products of depths like 1e30 or 1e-30 out of overflow and underflow.
    extent = float(np.max(np.abs(p))) if p.size else 0.0
    if extent > 0 and math.isfinite(extent):
        p /= extent
    du = _difference(p, valid, axis=1)
    dv = _difference(p, valid, axis=0)
    n = np.empty_like(p)
    n[..., 0] = du[..., 1] * dv[..., 2] - du[..., 2] * dv[..., 1]
    n[..., 1] = du[..., 2] * dv[..., 0] - du[..., 0] * dv[..., 2]
    n[..., 2] = du[..., 0] * dv[..., 1] - du[..., 1] * dv[..., 0]
    # Orient before averaging so neighbours add up instead of cancelling.
    flip = np.sum(n * p, axis=-1) > 0
    if not toward_camera:
        flip = ~flip
    n[flip] *= -1.0
    # Averaging over 3x3 tames depth noise (a predicted depth map is never smooth) and
    # costs a fraction of a k-nearest-neighbour fit.
    n = cv2.blur(n, (3, 3), borderType=cv2.BORDER_CONSTANT)
    length = np.sqrt(np.sum(n * n, axis=-1))
    flat = ~(length > 1e-150)
    if flat.any():
        # No usable neighbours: face along the viewing ray (straight at the camera).
        ray = p[flat]
        norm = np.linalg.norm(ray, axis=-1, keepdims=True)
        ray = np.where(norm > 1e-150, ray / np.where(norm > 1e-150, norm, 1.0), [0.0, 0.0, 1.0])
        n[flat] = -ray if toward_camera else ray
        length[flat] = 1.0
    n /= length[..., None]
    return n.astype(np.float32)


def _difference(p: np.ndarray, valid: np.ndarray, axis: int) -> np.ndarray:
    """Derivative of the point grid along columns (axis 1) or rows (axis 0), per pixel step.

    Zero where neither neighbour along the axis is valid.
    """
    if axis == 0:
        return _difference(p.transpose(1, 0, 2), valid.T, axis=1).transpose(1, 0, 2)
    step = p[:, 1:] - p[:, :-1]
    ok = (valid[:, 1:] & valid[:, :-1])[..., None]
    step = np.where(ok, step, 0.0)
    okf = ok.astype(np.float32)
    total = np.zeros_like(p)
    count = np.zeros(p.shape[:2] + (1,), dtype=np.float32)
    total[:, :-1] += step  # forward difference
    total[:, 1:] += step  # backward difference
    count[:, :-1] += okf
    count[:, 1:] += okf
    return total / np.maximum(count, 1.0)
