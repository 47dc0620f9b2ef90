"""The contradiction test of a hidden side: turned copies behind the measured front are kept, those in front of it or outside the outline count against the fit."""

from __future__ import annotations

import math

import numpy as np

from ..geometry.camera import Intrinsics


def hidden_copies(q, cloud, silhouette, intrinsics: Intrinsics, margin: float):
    """Which turned copies lie on the hidden side; and the share that contradicts the photo."""
    import cv2

    h, w = silhouette.shape
    z = q[:, 2]
    u, v = intrinsics.project(q)
    r = np.rint(v)
    c = np.rint(u)
    inside = (z > 0) & (r >= 0) & (r < h) & (c >= 0) & (c < w)
    ri = np.where(inside, r, 0).astype(np.int64)
    ci = np.where(inside, c, 0).astype(np.int64)
    # A copy a little outside the outline is the fit's rounding, not a contradiction:
    # allow 2% of the object's extent in the image.
    rows, cols = np.nonzero(silhouette)
    reach = max(2, int(round(0.02 * math.hypot(np.ptp(rows), np.ptp(cols)))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    grown = cv2.dilate(silhouette.astype(np.uint8), kernel) > 0
    outside = ~(inside & grown[ri, ci])
    # The measured front depth at each copy's pixel (nearest measured pixel if none).
    front = np.zeros(silhouette.shape)
    front[cloud.pixels[:, 0], cloud.pixels[:, 1]] = cloud.points[:, 2]
    from scipy.ndimage import distance_transform_edt

    _, (nr, nc) = distance_transform_edt(~cloud.valid, return_indices=True)
    filled = front[nr, nc]
    zf = filled[ri, ci]
    # In front of every depth measured nearby: a copy rounded to a pixel across a depth
    # edge (where the camera sees past a rim) is not in front of the photo.
    nearest = cv2.erode(filled.astype(np.float32), np.ones((5, 5), np.uint8))[ri, ci]
    ahead = ~outside & (z < nearest - margin)
    behind = ~outside & (z > zf + margin)
    # Copies within the margin of the front are the front again: left to the photo.
    contradiction = float((outside | ahead).mean()) if len(q) else 1.0
    keep = behind & inside & silhouette[ri, ci]
    return keep, contradiction
