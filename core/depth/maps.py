"""Depth maps: a network's prediction as depth, a depth map file, or the silhouette inflated (no weights); float32."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry.camera import Intrinsics
from .estimator import DepthPrediction

#: For relative depth: the object's front-to-back extent as a share of its width.
RELATIVE_DEPTH_RATIO = 0.5


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
