"""The triangle mesh every stage passes on: vertices, faces, sRGB vertex colours, optional normals and texture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..surface.texture import Texture


@dataclass
class Mesh:
    """Triangle mesh with per-vertex colours.

    vertices: (N, 3) float32; faces: (M, 3) int32 indices into vertices;
    colors: (N, 3) float32 sRGB in [0, 1] (the photo's own values, not linear).
    normals: optional (N, 3) float32 unit vertex normals.
    texture: optional :class:`core.surface.texture.Texture` (UVs per face corner and an image);
    the vertex colours stay either way.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    normals: np.ndarray | None = None
    texture: Texture | None = None

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32).reshape(-1, 3)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int32).reshape(-1, 3)
        self.colors = np.ascontiguousarray(self.colors, dtype=np.float32).reshape(-1, 3)
        if self.normals is not None:
            self.normals = np.ascontiguousarray(self.normals, dtype=np.float32).reshape(-1, 3)

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    @property
    def n_faces(self) -> int:
        return len(self.faces)

    def transformed(self, rotation: np.ndarray, offset: np.ndarray) -> Mesh:
        """``rotation @ v + offset`` for every vertex (normals rotated)."""
        r = np.asarray(rotation, dtype=np.float64)
        v = (self.vertices.astype(np.float64) @ r.T + offset).astype(np.float32)
        n = None if self.normals is None else (self.normals @ r.T.astype(np.float32))
        # UVs belong to face corners: moving the mesh leaves them as they are
        return Mesh(v, self.faces, self.colors, n, self.texture)
