"""Every option of a reconstruction in one dataclass, checked once, shared by CLI, library and add-on."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from .errors import OptionError
from .protocol import (  # shared with the add-on, which shows them as its defaults
    DEFAULT_DEPTH_MODEL,
    DEFAULT_MAX_SIZE,
    DEFAULT_REMBG_MODEL,
    DEFAULT_SMOOTH,
    MAX_THICKNESS,
    MIN_MAX_SIZE,
    MIN_TARGET_FACES,
    POISSON_DEPTH_RANGE,
)

SEGMENT_METHODS = ("rembg", "key", "none")
DEPTH_METHODS = ("model", "inflate", "map")
DEPTH_KINDS = ("auto", "metric", "disparity")
MESH_METHODS = ("poisson", "grid")
# the hidden side of a closed solid (core/shape_prior/)
SHAPES = ("auto", "revolve", "box", "inflate")
DEVICES = ("auto", "cpu", "cuda", "mps")
DEPTH_BACKENDS = ("auto", "torch", "onnx")
#: INT8 networks: auto = where verified on a first photo (core.networks.int8), off = full precision
QUANTIZE_MODES = ("auto", "off")
REMBG_NORMALIZATIONS = ("auto", "imagenet", "half")


@dataclass(frozen=True)
class Settings:
    """Options of one reconstruction. Defaults are what ``img2mesh photo.jpg`` uses."""

    # load
    max_size: int = DEFAULT_MAX_SIZE  # longest side of the working image, pixels
    # background removal
    segment: str = "rembg"  # rembg | key | none
    rembg_model: str = DEFAULT_REMBG_MODEL  # a rembg model name or a path to a .onnx file
    # a custom .onnx file's input normalisation: auto | imagenet | half (core.masks)
    rembg_normalize: str = "auto"
    # depth
    depth: str = "model"  # model | inflate | map
    depth_model: str = DEFAULT_DEPTH_MODEL  # Hugging Face id or local folder
    depth_kind: str = "auto"  # auto | metric | disparity: how to read the model's output
    depth_map: str | None = (
        None  # file with depth (16-bit PNG, .npy, float TIFF) when depth == "map"
    )
    depth_scale: float | None = (
        None  # metres per stored unit; None: 0.001 for integer maps, 1 for float
    )
    depth_resolution: int | None = (
        None  # network input height; None: the model's own (480 for GLPN)
    )
    device: str = "auto"  # auto | cpu | cuda | mps
    # how the depth network runs: auto = ONNX Runtime where verified against PyTorch, else PyTorch
    depth_backend: str = "auto"  # auto | torch | onnx
    # INT8 copies of the ONNX Runtime networks where their first photo shows them close (core.networks.int8)
    quantize: str = "auto"  # auto | off
    model_dir: str | None = None  # local folder holding the depth model (offline use)
    # camera
    fov: float | None = None  # degrees across the longer side
    focal_px: float | None = None
    # point cloud
    outlier_neighbors: int = 20
    outlier_std: float = 2.0
    # mesh
    mesh: str = "poisson"  # poisson | grid
    open: bool = False  # keep only the visible surface instead of a closed solid
    poisson_depth: int | None = None  # octree depth; None: chosen from the point count
    thickness: float | None = (
        None  # back-surface depth as a share of the object's width; None: from the silhouette
    )
    target_faces: int | None = None
    smooth: int = DEFAULT_SMOOTH  # Taubin smoothing iterations
    # texture (see core.surface.texture): UVs and an image from the full-size photo
    texture: bool = True
    texture_size: int = 2048  # longest side of the texture, pixels (core.surface.texture)
    # hidden side of a closed Poisson solid: auto = turned about its axis when the photo
    # shows a surface of revolution, completed from its flat faces when it shows a box or a
    # straight extrusion, else inflated; revolve | box | inflate force one
    shape: str = "auto"
    # caching
    cache: bool = True

    def __post_init__(self) -> None:
        _choice("segment", self.segment, SEGMENT_METHODS)
        _choice("depth", self.depth, DEPTH_METHODS)
        _choice("depth kind", self.depth_kind, DEPTH_KINDS)
        _choice("mesh", self.mesh, MESH_METHODS)
        _choice("shape", self.shape, SHAPES)
        _choice("device", self.device, DEVICES)
        _choice("depth backend", self.depth_backend, DEPTH_BACKENDS)
        _choice("quantize", self.quantize, QUANTIZE_MODES)
        _choice("segmentation normalisation", self.rembg_normalize, REMBG_NORMALIZATIONS)
        if not isinstance(self.max_size, int) or self.max_size < MIN_MAX_SIZE:
            raise OptionError(
                f"The working size must be at least {MIN_MAX_SIZE} pixels, not {self.max_size}."
            )
        if self.fov is not None and not (0.0 < self.fov < 180.0 and math.isfinite(self.fov)):
            raise OptionError(
                f"The field of view must be between 0 and 180 degrees, not {self.fov:g}."
            )
        if self.focal_px is not None and not (self.focal_px > 0 and math.isfinite(self.focal_px)):
            raise OptionError(
                f"The focal length must be a positive number of pixels, not {self.focal_px:g}."
            )
        low, high = POISSON_DEPTH_RANGE
        if self.poisson_depth is not None and not (low <= self.poisson_depth <= high):
            raise OptionError(
                f"The Poisson depth must be between {low} and {high}, not {self.poisson_depth}."
            )
        if self.target_faces is not None and self.target_faces < MIN_TARGET_FACES:
            raise OptionError(
                f"The target face count must be at least {MIN_TARGET_FACES}, not {self.target_faces}."
            )
        if not isinstance(self.texture_size, int) or not (64 <= self.texture_size <= 16384):
            raise OptionError(
                f"The texture size must be between 64 and 16384 pixels, not {self.texture_size}."
            )
        if self.smooth < 0:
            raise OptionError(f"Smoothing iterations cannot be negative ({self.smooth}).")
        if self.thickness is not None and not (
            0 < self.thickness <= MAX_THICKNESS and math.isfinite(self.thickness)
        ):
            raise OptionError(
                f"The thickness must be a positive share of the object's width, not {self.thickness:g}."
            )
        if self.depth_scale is not None and not (
            self.depth_scale > 0 and math.isfinite(self.depth_scale)
        ):
            raise OptionError(
                f"The depth scale must be a positive number, not {self.depth_scale:g}."
            )
        if self.depth_resolution is not None and self.depth_resolution < 32:
            raise OptionError(
                f"The depth resolution must be at least 32 pixels, not {self.depth_resolution}."
            )
        if self.outlier_neighbors < 1 or not (self.outlier_std > 0):
            raise OptionError("Outlier removal needs at least one neighbour and a positive ratio.")
        if self.depth == "map" and not self.depth_map:
            raise OptionError(
                "A depth map file is needed when depth comes from a map (--depth-map FILE)."
            )
        if self.depth_map and self.depth != "map":
            object.__setattr__(self, "depth", "map")

    def replace(self, **changes) -> Settings:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        """Build from a plain dict (the worker's JSON); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OptionError(f"Unknown option: {', '.join(unknown)}.")
        return cls(**data)

    # what each stage's cached result depends on
    def mask_key(self) -> dict:
        key = {"max_size": self.max_size, "segment": self.segment, "rembg_model": self.rembg_model}
        if self.rembg_normalize != "auto":
            key["rembg_normalize"] = self.rembg_normalize
        if self.quantize == "off":  # full precision asked for: not a mask an INT8 copy made
            key["quantize"] = "off"
        return key

    def depth_key(self) -> dict:
        key = {
            "max_size": self.max_size,
            "depth": self.depth,
            "depth_model": self.model_dir or self.depth_model,
            "depth_kind": self.depth_kind,
            "depth_resolution": self.depth_resolution,
        }
        if self.quantize == "off":
            key["quantize"] = "off"
        return key


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise OptionError(f"Unknown {name} '{value}': choose one of {', '.join(allowed)}.")
