"""How close two outputs of a network are: depth maps relative to what they mean, masks by IoU."""

from __future__ import annotations

import math

import numpy as np


def relative_error(candidate: np.ndarray, reference: np.ndarray, kind: str = "metric") -> float:
    """Largest difference between two network outputs, relative to what the output means.

    ``metric`` depth (metres): per pixel, the difference over the reference depth.
    ``disparity`` (relative inverse depth, known only up to scale and shift, which
    core.depth.maps normalises away): the difference over the reference's range, since a
    per-pixel ratio would compare noise with the arbitrary offset near zero.
    """
    ratio = relative_differences(candidate, reference, kind)
    if ratio is None:
        return math.inf
    return float(np.max(ratio)) if ratio.size else 0.0


def relative_differences(
    candidate: np.ndarray, reference: np.ndarray, kind: str = "metric"
) -> np.ndarray | None:
    """Each pixel's difference, relative as in :func:`relative_error` (0 where equal, inf
    where the reference leaves nothing to divide by); None when the outputs differ in shape
    or either holds a non-finite value."""
    c = np.asarray(candidate, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if c.shape != r.shape or not (np.isfinite(c).all() and np.isfinite(r).all()):
        return None
    diff = np.abs(c - r)
    if kind == "disparity":
        spread = float(r.max() - r.min()) if r.size else 0.0
        return diff / spread if spread > 0 else np.where(diff == 0, 0.0, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diff == 0, 0.0, diff / np.abs(r))


#: A quantised segmentation mask must overlap the full-precision one at least this much (IoU).
MIN_MASK_IOU = 0.98


#: 99% of a quantised depth map's pixels must be within this relative difference.
MAX_DEPTH_ERROR = 0.02


def scaled(prediction: np.ndarray) -> np.ndarray:
    """A segmentation output min-max scaled to [0, 1], as core.masks.sessions.U2netSession does."""
    p = np.asarray(prediction, dtype=np.float64)
    lo, hi = float(p.min()), float(p.max())
    return (p - lo) / (hi - lo) if hi > lo else np.zeros_like(p)


def mask_iou(candidate: np.ndarray, reference: np.ndarray) -> float:
    """IoU of two segmentation outputs cut at 0.5 after min-max scaling (1.0 when both are empty)."""
    if candidate.shape != reference.shape or not np.isfinite(candidate).all():
        return 0.0
    a, b = scaled(candidate) >= 0.5, scaled(reference) >= 0.5
    union = int((a | b).sum())
    return 1.0 if union == 0 else float((a & b).sum() / union)


def depth_error(candidate: np.ndarray, reference: np.ndarray, kind: str = "metric") -> float:
    """The 99th percentile of the per-pixel relative difference of two depth outputs.

    ``metric``: relative to each pixel's depth; ``disparity``: to the reference's range.
    """
    rel = relative_differences(candidate, reference, kind)
    if rel is None:
        return math.inf
    return float(np.percentile(rel, 99)) if rel.size else 0.0


def compare_masks(output: np.ndarray, reference: np.ndarray):
    iou = mask_iou(np.asarray(output)[0, 0], np.asarray(reference)[0, 0])
    reason = f"its mask overlaps full precision's by IoU {iou:.3f}, less than {MIN_MASK_IOU:g}"
    return iou >= MIN_MASK_IOU, iou, reason
