"""The visible surface as a shape prior fits it, and an axis in its frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..geometry.camera import Intrinsics
from ..geometry.pointcloud import PointCloud, grid_normals


@dataclass
class Front:
    """The front points ``p`` (N, 3) relative to ``centre`` and in units of ``size`` (the
    object's extent), their unit ``normals``, and ``cell``: the height and radius step of a
    profile, in the same units. A fit works here, where its tolerances are shares of the
    object whatever the depth's unit."""

    p: np.ndarray
    normals: np.ndarray
    centre: np.ndarray
    size: float
    cell: float = 0.02

    @property
    def camera(self) -> np.ndarray:
        """The camera's position is ``-camera`` in this frame (it sits at the origin)."""
        return self.centre / self.size

    def world(self, q: np.ndarray) -> np.ndarray:
        """Points of this frame back in the camera's."""
        return q * self.size + self.centre

    def subset(self, index: np.ndarray) -> Front:
        return Front(self.p[index], self.normals[index], self.centre, self.size, self.cell)


class Axis(NamedTuple):
    """An axis of revolution: its unit ``direction`` and a ``point`` on it (a Front's frame)."""

    direction: np.ndarray
    point: np.ndarray


def smoothed_front(cloud: PointCloud, intrinsics: Intrinsics, sigma: float = 2.0):
    """The front points and normals from the depth smoothed within the object (a few pixels).

    A depth network's map is noisy from pixel to pixel; the normals the axis is fitted
    to should follow the shape, not that noise. Only the fit and the turned copies
    use these: the front surface itself stays the measured one.
    """
    import cv2

    r, c = cloud.pixels[:, 0], cloud.pixels[:, 1]
    z = np.zeros(cloud.valid.shape, dtype=np.float64)
    z[r, c] = cloud.points[:, 2]
    weight = cloud.valid.astype(np.float64)
    zs = cv2.GaussianBlur(z, (0, 0), sigma) / np.maximum(
        cv2.GaussianBlur(weight, (0, 0), sigma), 1e-9
    )
    depth = zs[r, c]
    points = np.stack(
        [
            (c - intrinsics.cx) * depth / intrinsics.fx,
            (r - intrinsics.cy) * depth / intrinsics.fy,
            depth,
        ],
        axis=1,
    )
    grid = np.zeros(cloud.valid.shape + (3,), dtype=np.float64)
    grid[r, c] = points
    normals = grid_normals(grid, cloud.valid)[r, c].astype(np.float64)
    return points, normals
