"""The photo's outline places the axis: the turned body's outline drawn and matched to the silhouette along the line of sight."""

from __future__ import annotations

import math

import numpy as np

from .axis import about
from .front import Axis, Front
from .profile import round_underside

#: The axis may be moved along its line of sight by up to this share of the object's size
#: (searched in steps of OUTLINE_STEP) to match the outline, when that closes more than
#: OUTLINE_GAIN of the silhouette's area that the turned surface missed or overshot (more
#: than the drawing's own noise: with exact depth the fitted axis leaves 0-0.3%).
OUTLINE_REACH = 0.024
OUTLINE_STEP = 0.006
OUTLINE_GAIN = 0.002


#: ... and only where the turned body then explains the whole outline but this share of
#: its area (a cup's handle or a blob's bumps leave 16-46% unexplained: their outline
#: says nothing about where a lathe body's axis lies).
OUTLINE_FIT = 0.02


def _ring_hole(silhouette: np.ndarray, u: np.ndarray, v: np.ndarray) -> bool:
    """Whether the silhouette has a hole (background it encloses) that the axis's image
    crosses at pixels (u, v): a ring seen from above (a cup's handle encloses one off the
    axis)."""
    import cv2

    _, labels = cv2.connectedComponents((~silhouette).astype(np.uint8), connectivity=4)
    border = np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    h, w = silhouette.shape
    u, v = (
        np.rint(np.nan_to_num(x, nan=-1.0, posinf=-1.0, neginf=-1.0)).astype(np.int64)
        for x in (u, v)
    )
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    crossed = labels[v[inside], u[inside]]
    crossed = crossed[~silhouette[v[inside], u[inside]]]
    return bool(np.any(~np.isin(crossed, border)))


def ring_seen(front: Front, axis: Axis, silhouette, intrinsics) -> bool:
    """Whether the photo shows a ring about ``axis``: a hole in the silhouette that the
    axis's image crosses (see :func:`_ring_hole`)."""
    cw = front.world(axis.point)
    along = cw + np.outer(np.linspace(-0.5, 0.5, 41) * front.size, axis.direction)
    return _ring_hole(np.asarray(silhouette, dtype=bool), *intrinsics.project(along))


def inside_outline(front: Front, silhouette, intrinsics):
    """points of ``front``'s frame -> whether each projects inside the silhouette grown by
    a pixel (a point on the object's outline projects within half a pixel of it); its
    ``covered(near, far)``: how much of the image of the hull of points ``far`` beyond the
    hull of ``near`` the silhouette covers."""
    import cv2

    silhouette = np.asarray(silhouette, dtype=bool)
    grown = cv2.dilate(silhouette.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    h, w = grown.shape

    def pixels(q: np.ndarray):
        u, v = intrinsics.project(front.world(q))
        return (np.nan_to_num(x, nan=-1e6, posinf=-1e6, neginf=-1e6) for x in (u, v))

    def within(q: np.ndarray) -> np.ndarray:
        u, v = pixels(q)
        c, r = np.rint(u).astype(np.int64), np.rint(v).astype(np.int64)
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        return ok & grown[np.clip(r, 0, h - 1), np.clip(c, 0, w - 1)]

    def covered(near: np.ndarray, far: np.ndarray) -> float:
        """The share of the image of the hull of ``far`` beyond that of ``near`` (and two
        pixels) that the silhouette covers."""
        hulls = []
        for q in (near, far):
            u, v = pixels(q)
            poly = np.clip(np.stack([u, v], axis=1), -4 * w, 4 * w).astype(np.float32)
            drawn = np.zeros((h, w), np.uint8)
            cv2.fillConvexPoly(drawn, cv2.convexHull(np.rint(poly).astype(np.int32)), 1)
            hulls.append(drawn)
        region = (hulls[1] > 0) & ~(cv2.dilate(hulls[0], np.ones((5, 5), np.uint8)) > 0)
        return float(silhouette[region].mean()) if region.any() else 0.0

    within.covered = covered
    return within


def _outline(front: Front, axis: Axis, frame: dict, body, ring: bool, silhouette, intrinsics):
    """The turned body's outline drawn from its profile: (H, W) bool.

    A solid of revolution is the union of its slices across the axis: at each height a
    disc of the profile's outer radius (an annulus from the inner radius, for a ring).
    Each slice projects to a filled polygon, so the outline costs a few milliseconds and
    has none of the holes that a sample of turned points leaves. ``ring``: the slices are
    annuli (see :func:`_ring_hole`). ``frame`` is :func:`core.shape_prior.axis.about` for
    ``axis``.
    """
    import cv2

    a, c, cell, world = axis.direction, axis.point, front.cell, front.world

    h, r = frame["h"][body], frame["r"][body]
    out = np.zeros(silhouette.shape, np.uint8)
    if len(h) < 20:
        return out > 0
    # A ring's round underside (see round_underside) is part of its profile.
    under, _ = round_underside(h, r, a, frame["e1"], frame["e2"], cell)
    if len(under):
        hu = under @ a
        h = np.r_[h, hu]
        r = np.r_[r, np.linalg.norm(under - np.outer(hu, a), axis=1)]
    level = np.floor(h / cell).astype(np.int64)
    levels, inverse, counts = np.unique(level, return_inverse=True, return_counts=True)
    order = np.lexsort((r, inverse))
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    # Points of the outer (and, for a ring, inner) profile: each level's 98th (2nd)
    # percentile of radius, at the height of the points that reach it.
    outer, inner = [], []
    for b in range(len(levels)):
        if counts[b] < 5:
            continue
        at = order[starts[b] : starts[b] + counts[b]]  # by radius
        rs = r[at]
        top = max(1, int(0.02 * len(rs)))
        outer.append((float(np.median(h[at[-top:]])), float(rs[-top])))
        if ring:
            inner.append((float(np.median(h[at[:top]])), float(rs[top - 1])))
    if len(outer) < 2:
        return out > 0
    outer.sort()
    ho, ro_ = np.array(outer).T
    fine = np.arange(ho[0], ho[-1] + 1e-12, cell / 3)
    ro = np.interp(fine, ho, ro_)
    ri = np.zeros_like(fine)
    if len(inner) >= 2:
        inner.sort()
        hi_, ri_ = np.array(inner).T
        ri = np.minimum(np.interp(fine, hi_, ri_), ro)
    t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    circle = np.outer(np.cos(t), frame["e1"]) + np.outer(np.sin(t), frame["e2"])

    def polygons(radii):
        q = world(c + fine[:, None, None] * a + radii[:, None, None] * circle)
        return np.rint(np.stack(intrinsics.project(q), axis=-1) * 16).astype(np.int32)  # 1/16 px

    outers = polygons(ro)
    if not ring:
        for poly in outers:
            cv2.fillPoly(out, [poly], 1, lineType=cv2.LINE_8, shift=4)
        return out > 0
    inners = polygons(ri)
    slice_ = np.zeros_like(out)
    for poly, hole in zip(outers, inners, strict=True):
        slice_[:] = 0
        cv2.fillPoly(slice_, [poly], 1, lineType=cv2.LINE_8, shift=4)
        cv2.fillPoly(slice_, [hole], 0, lineType=cv2.LINE_8, shift=4)
        out |= slice_
    return out > 0


def _outline_gap(drawn: np.ndarray, silhouette: np.ndarray) -> float:
    """The share of the silhouette's area that the outline ``drawn`` misses or overshoots
    by more than two pixels."""
    import cv2

    kernel = np.ones((5, 5), np.uint8)
    sil = silhouette.astype(np.uint8)
    over = drawn & ~(cv2.dilate(sil, kernel) > 0)
    under = (cv2.erode(sil, kernel) > 0) & ~drawn
    return float(over.sum() + under.sum()) / max(int(silhouette.sum()), 1)


def outline_shift(front: Front, axis: Axis, body, silhouette, intrinsics) -> np.ndarray | None:
    """The axis point moved along its line of sight to where the turned ``body``'s outline
    matches the silhouette best; None to keep it.

    Steps of OUTLINE_STEP of the object's size up to OUTLINE_REACH each way, walking
    downhill from the axis point; the best step refined between its neighbours (the vertex
    of a parabola through the three); kept only if it closes more than OUTLINE_GAIN of the
    silhouette's area. The profile is read from a sample of the points (a few
    milliseconds a step)."""
    silhouette = np.asarray(silhouette, dtype=bool)
    rng = np.random.default_rng(1)
    sample = np.sort(rng.choice(len(front.p), min(len(front.p), 8000), replace=False))
    front, body = front.subset(sample), body[sample]
    a, size, centre = axis.direction, front.size, front.centre
    cw = front.world(axis.point)
    ray = cw / np.linalg.norm(cw)
    steps = int(round(OUTLINE_REACH / OUTLINE_STEP))
    gaps: dict[float, float] = {}
    ring = ring_seen(front, axis, silhouette, intrinsics)

    def point(k: float) -> np.ndarray:
        c2 = (cw + k * OUTLINE_STEP * size * ray - centre) / size
        return c2 - (c2 @ a) * a

    def gap(k: float) -> float:
        if k not in gaps:
            moved = Axis(a, point(k))
            frame = about(front, moved)
            if frame is None:
                gaps[k] = np.inf
            else:
                drawn = _outline(front, moved, frame, body, ring, silhouette, intrinsics)
                gaps[k] = _outline_gap(drawn, silhouette)
        return gaps[k]

    base = gap(0)
    if base <= OUTLINE_GAIN:
        return None
    direction = 1 if gap(1) < gap(-1) else -1
    k = 0
    while abs(k + direction) <= steps and gap(k + direction) < gap(k):
        k += direction
    if k == 0 or base - gap(k) <= OUTLINE_GAIN or gap(k) > OUTLINE_FIT:
        return None
    best = float(k)
    if abs(k) < steps:
        lo, mid, hi = gap(k - 1), gap(k), gap(k + 1)
        curve = lo - 2 * mid + hi
        if np.isfinite(curve) and curve > 0:
            best = k + float(np.clip(0.5 * (lo - hi) / curve, -0.5, 0.5))
    return point(best)
