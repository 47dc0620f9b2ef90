"""A mask made usable: its main component(s), small holes filled, the halo of soft edges eroded."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def clean_mask(
    mask: np.ndarray, *, erode_px: int = 1, min_share: float = 0.05, max_hole_share: float = 0.02
) -> np.ndarray:
    """Keep the main component(s), fill small holes and erode the halo left by soft edges.

    Components smaller than ``min_share`` of the largest are dropped; enclosed holes
    smaller than ``max_hole_share`` of the object are filled (larger ones, like the
    inside of a ring, are real).
    """
    import cv2

    m = np.asarray(mask, dtype=bool)
    if not m.any():
        raise InputError("The mask removes everything: no foreground is left to reconstruct.")
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= max(areas.max() * min_share, 1)) + 1
    m = np.isin(labels, keep)
    # fill holes: background pixels not connected to the image border
    inv = (~m).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    border_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < max_hole_share * m.sum())
    holes = np.isin(labels, small) & ~np.isin(labels, border_labels) & (labels > 0)
    m |= holes
    if erode_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1))
        eroded = cv2.erode(m.astype(np.uint8), k).astype(bool)
        if eroded.sum() >= 0.5 * m.sum():  # thin objects would vanish
            m = eroded
    if not m.any():
        raise InputError("The mask removes everything: no foreground is left to reconstruct.")
    return m
