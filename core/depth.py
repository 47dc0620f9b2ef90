"""Stage 3: depth — a Hugging Face depth model, a depth map file, or weight-free silhouette inflation; always float32."""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import Intrinsics
from .errors import InputError, ModelUnavailableError, OptionError

#: What each architecture's output means. "disparity" outputs are affine-invariant
#: inverse depth (Depth Anything relative, MiDaS/DPT); the rest are metres.
OUTPUT_KIND = {
    "glpn": "metric",
    "zoedepth": "metric",
    "depth_pro": "metric",
    "prompt_depth_anything": "metric",
    "dpt": "disparity",
}

#: For relative depth: the object's front-to-back extent as a share of its width.
RELATIVE_DEPTH_RATIO = 0.5


@dataclass
class DepthPrediction:
    """A depth network's output at the image's size, before conversion to depth.

    values: (H, W) float32; kind: "metric" (metres along the optical axis) or
    "disparity" (relative inverse depth, larger is nearer).
    focal_px: the model's own estimate of the focal length in pixels of this image, if any.
    """

    values: np.ndarray
    kind: str
    focal_px: float | None = None


def pick_device(device: str = "auto") -> str:
    """``auto`` means CUDA, then Apple's MPS, then the CPU."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise OptionError(
            "CUDA was asked for (--device cuda) but no CUDA GPU is available to PyTorch."
        )
    if device == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise OptionError(
            "MPS was asked for (--device mps) but this PyTorch cannot use Apple's GPU."
        )
    return device


class DepthEstimator:
    """A loaded depth model: processor and network, kept in memory for the next images."""

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        model_dir: str | None = None,
        kind: str = "auto",
        resolution: int | None = None,
    ) -> None:
        self.model_id = model
        self.source = str(model_dir) if model_dir else model
        self.requested_device = device
        self.kind_override = kind
        self.resolution = resolution
        self.device: str | None = None
        self._model = None
        self._processor = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        from .paths import hf_cache_dir

        self.device = pick_device(self.requested_device)
        torch.set_num_threads(os.cpu_count() or 1)
        local = Path(self.source).expanduser()
        if self.source != self.model_id and not local.is_dir():
            raise ModelUnavailableError(f"The model folder '{self.source}' does not exist.")
        cache = hf_cache_dir()
        kwargs = {"cache_dir": str(cache)} if cache and not local.is_dir() else {}
        from .hub import from_pretrained

        try:
            processor = from_pretrained(AutoImageProcessor, str(self.source), **kwargs)
            # Only safetensors: never unpickle weights (no torch.load), never run repo code.
            model = from_pretrained(
                AutoModelForDepthEstimation,
                str(self.source),
                use_safetensors=True,
                trust_remote_code=False,
                **kwargs,
            )
        except ValueError as exc:
            if "Unrecognized" in str(exc) or "configuration class" in str(exc):
                raise OptionError(
                    f"'{self.source}' is not a depth-estimation model that transformers knows "
                    "(AutoModelForDepthEstimation cannot load it)."
                ) from None
            raise ModelUnavailableError(self._unavailable(exc)) from None
        except OSError as exc:
            raise ModelUnavailableError(self._unavailable(exc)) from None
        model.eval().to(self.device)
        self._processor, self._model = processor, model

    def _unavailable(self, exc: BaseException) -> str:
        from .paths import hf_cache_dir

        where = hf_cache_dir() or "your Hugging Face cache (HF_HOME / HF_HUB_CACHE)"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if Path(self.source).expanduser().is_dir():
            return (
                f"The depth model in '{self.source}' could not be loaded ({reason}). "
                "The folder must hold config.json, preprocessor_config.json and model.safetensors "
                "as saved by save_pretrained (or downloaded with `hf download MODEL --local-dir DIR`)."
            )
        return (
            f"The depth model '{self.model_id}' could not be loaded: its weights are not in {where} "
            f"and could not be downloaded from the Hugging Face hub ({reason}). "
            "Connect to the internet once so the weights are cached, or download them on another "
            f"machine (`hf download {self.model_id} --local-dir DIR`) and pass --model-dir DIR. "
            "Without weights, --depth inflate (or --depth-map FILE) still makes a mesh."
        )

    @property
    def output_kind(self) -> str:
        if self.kind_override != "auto":
            return self.kind_override
        cfg = self._model.config
        kind = OUTPUT_KIND.get(cfg.model_type)
        if kind is None and cfg.model_type == "depth_anything":
            kind = (
                "metric"
                if getattr(cfg, "depth_estimation_type", "relative") == "metric"
                else "disparity"
            )
        return kind or "disparity"

    def predict(self, rgb: np.ndarray) -> DepthPrediction:
        """Run the network on an (H, W, 3) uint8 image; the output is resized back to (H, W)."""
        import torch
        from PIL import Image

        self.load()
        h, w = rgb.shape[:2]
        image = Image.fromarray(rgb)
        kwargs = {}
        if self._model.config.model_type == "glpn":
            # GLPN takes any size (multiple of 32); cap the height as the original design did (480).
            image = _resize_for_glpn(image, self.resolution or 480)
        elif self.resolution:
            kwargs["size"] = {"height": self.resolution, "width": self.resolution}
        inputs = self._processor(images=image, return_tensors="pt", **kwargs)
        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        with torch.inference_mode():
            outputs = self._model(**inputs)
            post = self._processor.post_process_depth_estimation
            params = inspect.signature(post).parameters
            extra = {"source_sizes": [(h, w)]} if "source_sizes" in params else {}
            result = post(outputs, target_sizes=[(h, w)], **extra)[0]
        values = result["predicted_depth"].detach().float().cpu().numpy().astype(np.float32)
        focal = result.get("focal_length")
        focal_px = float(focal) if focal is not None else None
        return DepthPrediction(
            np.ascontiguousarray(values.reshape(h, w)), self.output_kind, focal_px
        )


def _resize_for_glpn(image, max_height: int):
    """Height at most ``max_height`` and both sides multiples of 32, keeping the aspect ratio."""
    from PIL import Image

    w, h = image.size
    nh = min(h, max_height)
    nh = max(32, nh - nh % 32)
    nw = max(32, int(round(w * nh / h / 32.0)) * 32)
    if (nw, nh) == (w, h):
        return image
    return image.resize((nw, nh), Image.Resampling.BICUBIC)


def depth_from_prediction(
    pred: DepthPrediction, mask: np.ndarray, intrinsics: Intrinsics
) -> tuple[np.ndarray, bool]:
    """Depth (H, W) float32 along the optical axis and whether it is metric.

    Metric predictions pass through. Disparity is affine-invariant inverse depth, so
    inverse depth is taken as linear in it: the foreground's nearest and farthest
    points are placed so that the object is about one unit across and its
    front-to-back extent is :data:`RELATIVE_DEPTH_RATIO` of its width.
    """
    values = np.where(np.isfinite(pred.values), pred.values, 0).astype(np.float32)
    if pred.kind == "metric":
        return np.where(values > 0, values, 0).astype(np.float32), True
    fg = mask & np.isfinite(pred.values)
    if not fg.any():
        return np.zeros_like(values), False
    d = values[fg]
    d_near, d_far = np.percentile(d, 99.0), np.percentile(d, 1.0)
    z_near = _unit_distance(mask, intrinsics)
    z_far = z_near * (1.0 + RELATIVE_DEPTH_RATIO)
    if d_near - d_far <= 1e-12:
        return np.where(mask, z_near, 0).astype(np.float32), False
    t = np.clip((values - d_far) / (d_near - d_far), -0.5, 1.5)
    inv = 1.0 / z_far + t * (1.0 / z_near - 1.0 / z_far)
    depth = np.where(inv > 0, 1.0 / np.maximum(inv, 1e-9), 0)
    return depth.astype(np.float32), False


def _unit_distance(mask: np.ndarray, intrinsics: Intrinsics) -> float:
    """Distance at which the masked object is one unit across (its larger extent)."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return 1.0
    extent_px = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    return float(max(intrinsics.fx, intrinsics.fy) / extent_px)


def inflate_depth(mask: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Weight-free depth: the silhouette inflated like a pillow (round cross-sections).

    Each pixel's bulge towards the camera is a circular profile of its distance to
    the silhouette's edge, so a disc becomes a hemisphere; units are relative (the
    object about one unit across).
    """
    import cv2

    m = np.asarray(mask, dtype=bool)
    if not m.any():
        raise InputError("The mask removes everything: no foreground is left to reconstruct.")
    dist = cv2.distanceTransform(np.pad(m, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    r = float(dist.max())
    bulge_px = np.sqrt(np.clip(dist * (2.0 * r - dist), 0, None))
    z0 = _unit_distance(m, intrinsics)
    # bulge in pixels -> world units at distance z0
    bulge = bulge_px * z0 / max(intrinsics.fx, intrinsics.fy)
    depth = (z0 + (bulge.max() if bulge.size else 0.0)) - bulge
    return np.where(m, depth, 0).astype(np.float32)


def load_depth_map(
    path: str | Path, size: tuple[int, int], scale: float | None = None
) -> tuple[np.ndarray, list[str]]:
    """Read a depth map (16-bit PNG, float TIFF, .npy) aligned with the photo; returns metres and warnings.

    ``size`` is the working image's (width, height): a map of another size but the
    same aspect ratio is resized (nearest neighbour, so edges are not blended).
    ``scale`` is metres per stored unit: by default 0.001 (millimetres) for integer
    maps and 1 for float maps. Zero, negative, NaN and inf mean "no reading".
    """
    path = Path(path)
    name = path.name
    if not path.exists():
        raise InputError(f"The depth map '{path}' does not exist.")
    if path.is_dir():
        raise InputError(f"The depth map '{path}' is a folder, not a file.")
    if path.stat().st_size == 0:
        raise InputError(f"The depth map '{name}' is an empty file (0 bytes).")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)  # never unpickle a user's file
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(
                f"The depth map '{name}' is not a readable .npy array ({exc})."
            ) from None
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim != 2 or arr.dtype.kind not in "uif":
            raise InputError(
                f"The depth map '{name}' must be a 2-D numeric array, not {arr.ndim}-D {arr.dtype}."
            )
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                img.load()
                mode = img.mode
                if mode not in ("I;16", "I;16B", "I;16L", "I", "F"):
                    raise InputError(
                        f"The depth map '{name}' is an {mode} image; depth must be single-channel "
                        "16-bit (PNG), 32-bit float (TIFF) or a .npy array, never 8-bit colour."
                    )
                arr = np.asarray(img)
        except InputError:
            raise
        except UnidentifiedImageError:
            raise InputError(f"The depth map '{name}' is not an image Pillow can read.") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"The depth map '{name}' is damaged or truncated ({exc}).") from None
    if scale is None:
        scale = 1.0 if arr.dtype.kind == "f" else 0.001
    depth = arr.astype(np.float64) * scale
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
    if not (depth > 0).any():
        raise InputError(
            f"The depth map '{name}' holds no valid depth (all zero, negative, NaN or inf)."
        )
    w, h = size
    dh, dw = depth.shape
    if (dw, dh) != (w, h):
        if abs(dw / dh - w / h) > 0.01 * (w / h):
            raise InputError(
                f"The depth map '{name}' is {dw}x{dh} but the image is {w}x{h}: "
                "they must show the same view (same aspect ratio)."
            )
        import cv2

        depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)
    warnings = []
    if math.isfinite(float(depth.max())) and depth.max() > 1000:
        warnings.append(
            f"The depth map reaches {depth.max():.0f} m; check --depth-scale (metres per stored unit)."
        )
    return depth, warnings
