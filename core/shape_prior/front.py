"""The visible surface as a shape prior fits it, and an axis in its frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


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
