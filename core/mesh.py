"""The mesh the pipeline produces, and the one coordinate convention every output uses.

Convention (all formats, the add-on, the report): right-handed, **Z up**, the camera
looks along **+Y**; X is the photo's left-to-right. Units are metres when the depth
is metric, else arbitrary but consistent ("relative"). The mesh is centred on the
object: the middle of its bounding box in X and Y at the origin, its lowest point at
Z = 0. The photo's camera then sits at ``Camera.location`` with Blender rotation
(90 deg, 0, 0) (looking along +Y, up along +Z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .camera import Intrinsics

if TYPE_CHECKING:
    from .texture import Texture


@dataclass
class Mesh:
    """Triangle mesh with per-vertex colours.

    vertices: (N, 3) float32; faces: (M, 3) int32 indices into vertices;
    colors: (N, 3) float32 sRGB in [0, 1] (the photo's own values, not linear).
    normals: optional (N, 3) float32 unit vertex normals.
    texture: optional :class:`core.texture.Texture` (UVs per face corner and an image);
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


#: OpenCV camera frame (x right, y down, z forward) -> output frame (X right, Y forward, Z up).
CAMERA_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

#: Blender Euler XYZ rotation of a camera looking along +Y with +Z up.
CAMERA_ROTATION_EULER = (math.pi / 2.0, 0.0, 0.0)


@dataclass
class Camera:
    """The photo's camera in the output frame: intrinsics plus where it stands."""

    intrinsics: Intrinsics
    location: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation_euler: tuple[float, float, float] = CAMERA_ROTATION_EULER
    source: str = "default"  # where the field of view came from

    def to_dict(self) -> dict:
        return {
            "intrinsics": self.intrinsics.to_dict(),
            "fov_deg": self.intrinsics.fov_deg,
            "location": list(self.location),
            "rotation_euler": list(self.rotation_euler),
            "source": self.source,
        }


def to_output_frame(mesh_cam: Mesh, intrinsics: Intrinsics, source: str) -> tuple[Mesh, Camera]:
    """Move a mesh from the OpenCV camera frame into the documented output frame."""
    rotated = mesh_cam.transformed(CAMERA_TO_WORLD, np.zeros(3))
    if rotated.n_vertices:
        lo = rotated.vertices.min(axis=0).astype(np.float64)
        hi = rotated.vertices.max(axis=0).astype(np.float64)
        offset = -np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    else:
        offset = np.zeros(3)
    out = rotated.transformed(np.eye(3), offset)
    camera = Camera(intrinsics, tuple(float(x) for x in offset), CAMERA_ROTATION_EULER, source)
    return out, camera


def to_camera_frame(mesh_out: Mesh, camera: Camera) -> Mesh:
    """Inverse of :func:`to_output_frame`: back into the OpenCV camera frame."""
    moved = mesh_out.transformed(np.eye(3), -np.asarray(camera.location, dtype=np.float64))
    return moved.transformed(CAMERA_TO_WORLD.T, np.zeros(3))
