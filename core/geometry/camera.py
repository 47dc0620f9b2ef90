"""The camera: a pinhole lens (:class:`Intrinsics`) and that lens placed in the output frame (:class:`Camera`).

Intrinsics come from a field of view, EXIF, or a model's prediction. The output frame is
the one coordinate convention every output uses (all formats, the add-on, the report):
right-handed, **Z up**, the camera looks along **+Y**; X is the photo's left-to-right.
Units are metres when the depth is metric, else arbitrary but consistent ("relative").
The mesh is centred on the object: the middle of its bounding box in X and Y at the
origin, its lowest point at Z = 0. The photo's camera then sits at ``Camera.location``
with Blender rotation (90 deg, 0, 0) (looking along +Y, up along +Z).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import OptionError
from .mesh import Mesh

#: Horizontal field of view (degrees, across the longer image side) used when
#: neither EXIF nor the user nor the depth model says otherwise. 55 degrees is a
#: normal lens (about 35 mm full-frame equivalent); phones' main cameras are wider
#: (about 65-70 degrees) but product and object photos are usually zoomed in.
DEFAULT_FOV_DEG = 55.0


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels for an image of ``width`` x ``height``.

    Pixel (u, v) with depth z (along the optical axis) back-projects to the
    camera-frame point ((u - cx) z / fx, (v - cy) z / fy, z): x right, y down,
    z forward (the OpenCV convention). Pixel centres are at integer coordinates.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def fov_deg(self) -> float:
        """Field of view across the longer side, in degrees."""
        if self.width >= self.height:
            return math.degrees(2 * math.atan(self.width / (2 * self.fx)))
        return math.degrees(2 * math.atan(self.height / (2 * self.fy)))

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The same camera for the image resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
            width,
            height,
        )

    def project(self, points):
        """Pixel positions ``(u, v)`` of camera-frame points ``(..., 3)`` (z forward); points
        at or behind the camera give inf or nan."""
        import numpy as np

        with np.errstate(invalid="ignore", divide="ignore"):
            z = points[..., 2]
            return self.fx * points[..., 0] / z + self.cx, self.fy * points[..., 1] / z + self.cy

    def matrix(self):
        import numpy as np

        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def to_dict(self) -> dict:
        return asdict(self)


def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> Intrinsics:
    """Square pixels, principal point at the centre, ``fov_deg`` across the longer side."""
    if not (0.0 < fov_deg < 180.0) or not math.isfinite(fov_deg):
        raise OptionError(f"The field of view must be between 0 and 180 degrees, not {fov_deg:g}.")
    f = max(width, height) / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    return intrinsics_from_focal(width, height, f)


def intrinsics_from_focal(width: int, height: int, focal_px: float) -> Intrinsics:
    if not (focal_px > 0.0) or not math.isfinite(focal_px):
        raise OptionError(
            f"The focal length must be a positive number of pixels, not {focal_px:g}."
        )
    return Intrinsics(focal_px, focal_px, (width - 1) / 2.0, (height - 1) / 2.0, width, height)


def fov_from_35mm(focal_35mm: float) -> float:
    """Field of view across the longer side for a 35 mm-equivalent focal length (36 mm wide frame)."""
    return math.degrees(2 * math.atan(36.0 / (2.0 * focal_35mm)))


def choose_intrinsics(
    width: int,
    height: int,
    *,
    fov_deg: float | None = None,
    focal_px: float | None = None,
    exif_fov_deg: float | None = None,
    predicted_fov_deg: float | None = None,
) -> tuple[Intrinsics, str]:
    """Pick the camera, most trusted source first; returns it and where it came from.

    Order: ``focal_px`` given, ``fov_deg`` given, EXIF focal length, the depth
    model's prediction, then :data:`DEFAULT_FOV_DEG`.
    """
    if focal_px is not None:
        return intrinsics_from_focal(width, height, focal_px), "focal-px option"
    if fov_deg is not None:
        return intrinsics_from_fov(width, height, fov_deg), "fov option"
    if exif_fov_deg is not None:
        return intrinsics_from_fov(width, height, exif_fov_deg), "EXIF focal length"
    if predicted_fov_deg is not None:
        return intrinsics_from_fov(width, height, predicted_fov_deg), "depth model"
    return intrinsics_from_fov(width, height, DEFAULT_FOV_DEG), "default"


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
