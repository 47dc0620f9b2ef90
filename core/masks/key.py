"""The weight-free mask: key out a plain background's colour, refine with GrabCut."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def key_mask(rgb: np.ndarray) -> np.ndarray:
    """Weight-free mask for a photo on a plain background: key out the border colour, refine with GrabCut."""
    import cv2

    h, w = rgb.shape[:2]
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    b = max(2, min(h, w) // 50)
    border = np.concatenate(
        [
            lab[:b].reshape(-1, 3),
            lab[-b:].reshape(-1, 3),
            lab[:, :b].reshape(-1, 3),
            lab[:, -b:].reshape(-1, 3),
        ]
    )
    bg = np.median(border, axis=0)
    # lightness counts half: soft shadows on the backdrop change it more than the hue
    weight = np.array([0.5, 1.0, 1.0], np.float32)
    dist = np.linalg.norm((lab - bg) * weight, axis=2)
    border_dist = np.linalg.norm((border - bg) * weight, axis=1)
    # threshold from how much the background itself varies (gradients, noise, shadows)
    thr = max(12.0, float(np.percentile(border_dist, 99)) * 1.5)
    sure_fg = dist > thr * 2.0
    probable_fg = dist > thr
    if sure_fg.sum() < 16:
        sure_fg = probable_fg
    if probable_fg.sum() < 16:
        raise InputError(
            "No object stands out from the background colour: --segment key needs an object on a plain background.",
            code="key_found_nothing",
            field="segment",
        )
    gc = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    gc[probable_fg] = cv2.GC_PR_FGD
    gc[sure_fg] = cv2.GC_FGD
    gc[:b] = gc[-b:] = cv2.GC_BGD
    gc[:, :b] = gc[:, -b:] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(
            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, 4, cv2.GC_INIT_WITH_MASK
        )
        mask = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    except cv2.error:
        mask = (
            probable_fg  # GrabCut refuses degenerate colour models; the key alone is still a mask
        )
    return mask
