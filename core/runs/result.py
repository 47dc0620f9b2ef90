"""A finished reconstruction: the mesh in the output frame, its camera, and everything the report says."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from ..files.photos import Photo
from ..geometry.camera import Camera
from ..geometry.mesh import Mesh
from ..settings import Settings


@dataclass
class Result:
    """A finished reconstruction. ``mesh`` is in the output frame (see core.geometry.camera)."""

    mesh: Mesh
    camera: Camera
    photo: Photo
    mask: np.ndarray
    depth: np.ndarray
    metric: bool
    settings: Settings
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def texture(self):
        """The mesh's :class:`core.surface.texture.Texture`, or None (``--no-texture``)."""
        return self.mesh.texture

    @property
    def total_seconds(self) -> float:
        return float(sum(self.timings.values()))

    @property
    def kind(self) -> str:
        """ "closed solid" when the mesh is a valid volume (closed, manifold, wound outward,
        crossing nowhere: core.solid.volume_report), else what it is."""
        if self.info.get("mesh_watertight"):
            return "closed solid"
        if self.info.get("mesh_closed"):
            return "closed surface (not a valid volume)"
        return "open surface"

    def summary(self, name: str | None = None, seconds: float | None = None) -> str:
        label = name or (self.photo.path.name if self.photo.path else "image")
        total = self.total_seconds if seconds is None else seconds
        return (
            f"{label}: {self.mesh.n_faces:,} faces, {self.mesh.n_vertices:,} vertices, "
            f"{self.kind}, {total:.1f} s"
        )

    def report(self) -> dict:
        """Everything worth knowing about the run, JSON-ready."""
        return {
            "img2mesh_version": __version__,
            "input": str(self.photo.path) if self.photo.path else None,
            "image_size": list(self.photo.original_size),
            "working_size": list(self.photo.size),
            "settings": self.settings.to_dict(),
            "depth": {
                "source": self.info.get("depth_source"),
                "model": self.info.get("depth_model"),
                "device": self.info.get("device"),
                "output": self.info.get("depth_output"),
                "backend": self.info.get("depth_backend"),
                "backend_note": self.info.get("depth_backend_note"),
                "metric": self.metric,
                "units": "metres" if self.metric else "relative",
            },
            "mask_source": self.info.get("mask_source"),
            "mask_network": self.info.get("mask_network"),
            "camera": self.camera.to_dict(),
            "counts": {
                "foreground_pixels": int(self.mask.sum()),
                "points": self.info.get("points"),
                "vertices": self.mesh.n_vertices,
                "faces": self.mesh.n_faces,
            },
            "mesh": {k: v for k, v in self.info.items() if k.startswith("mesh_")},
            "texture": self.texture.report() if self.texture is not None else None,
            "cache": self.info.get("cache", {}),
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "total_s": round(self.total_seconds, 4),
            "warnings": list(self.warnings),
            **({"generated": self.info["generated"]} if "generated" in self.info else {}),
        }
