"""The box and straight-extrusion prior: a cap plane and faces parallel to one direction, completed by their parallel copies, or refused.

A box, a prism or any straight extrusion (an L-shaped block, a rounded tray) is one
cross-section swept along one direction ``d``. Its visible front is then a cap (one
plane whose normal is ``d``) and side faces whose normals are all across ``d``. For a
box any of its faces is such a cap: the one seen most is taken. The direction comes
from the front's normals (clustered, then refined so that the cap's normals lie along
it and the sides' across it); the cross-section is the cap's outline in the image cast
onto the cap's plane (no gaps, however obliquely the cap is seen), joined with the side
faces' points seen along ``d``; the length of the sweep is how far the side faces reach
behind the cap. The hidden side is the far cap (the cap's parallel copy) and the walls
around the cross-section; copies where the camera measured the surface are dropped, and
copies in front of the measured surface or outside the silhouette count against the fit
(core.shape_prior.hidden). Refused when the cap and the sides explain too little of the
front, when points rise above the cap, when only one face is seen (its depth is then
unknown), or when the completed solid contradicts the photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..geometry.camera import Intrinsics
from ..geometry.pointcloud import PointCloud
from .front import smoothed_front
from .hidden import hidden_copies

#: Least share of the front (away from the outline) that the cap and the sides must explain.
MIN_EXPLAINED = 0.8


#: Most share of the completed surface's samples that may contradict the photo.
MAX_CONTRADICTION = 0.10


#: A normal lies along (or across) the sweep's direction within this angle (degrees).
ANGLE_DEG = 15.0


#: Cap points lie within this share of the object's size of the cap's plane.
CAP_TOLERANCE = 0.02


#: Most share of the front that may lie above the cap (the cap ends the solid).
MAX_ABOVE = 0.03


#: Directions explaining this much less of the front than the best are still candidates.
NEAR_TIE = 0.1


#: The side faces' points within this share of the object's size of the cap's plane join
#: the cross-section.
SIDE_BAND = 0.05


#: A cap is seen at a grazing angle when its normal is farther than this (cosine) from the
#: line of sight: its outline cast onto its plane errs by a pixel over this cosine.
GRAZING_COS = 0.5


#: Least share of the front on the cap, and on the sides (one face alone has no depth).
MIN_FACE_SHARE = 0.03


@dataclass
class Box:
    """A fitted straight extrusion (a box is one) and the hidden surface it gives."""

    direction: np.ndarray  # the sweep's unit direction: the cap's outward normal
    cap_offset: float  # the cap's plane: direction . x = cap_offset
    length: float  # how far the solid reaches behind the cap along -direction
    back_points: np.ndarray
    back_normals: np.ndarray
    quality: dict = field(default_factory=dict)
    accepted: bool = False
    reason: str = ""


def fit_box(cloud: PointCloud, silhouette: np.ndarray, intrinsics: Intrinsics) -> Box | None:
    """Fit a straight extrusion to the front of ``cloud``; None when there is no fit at all."""
    import cv2

    if len(cloud.points) < 200:
        return None
    points, normals = smoothed_front(cloud, intrinsics)
    size = float(np.max(points.max(axis=0) - points.min(axis=0)))
    if not (size > 0):
        return None
    interior = cv2.erode(cloud.valid.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    use = interior[cloud.pixels[:, 0], cloud.pixels[:, 1]]
    if use.sum() < 100:
        use[:] = True
    candidates = [_labels(points, normals, use, d, size) for d in _directions(normals[use])]
    candidates = [c for c in candidates if c is not None]
    if not candidates:
        return None
    # Among the directions that explain the front about as well as the best (a box: every
    # face is a cap; a network's warped face explains less as a cap than as a side), the
    # one whose cap is seen most: its outline, cast onto its plane, is seen most head-on.
    top = max(c["explained"] for c in candidates)
    good = [c for c in candidates if c["explained"] >= max(top - NEAR_TIE, min(top, MIN_EXPLAINED))]
    best = max(good, key=lambda c: c["cap_n"])
    # The cap's own plane, fitted to its measured points away from the edges, is truer
    # than the normals' average (the smoothed normals lean at the edges): a tilt of half a
    # degree moves the far cap by 1% of the object.
    plane = _cap_normal(cloud.points[best["cap"] & use], best["d"], size)
    if plane is not None:
        again = _labels(points, normals, use, plane, size, refine=False)
        if again is not None and again["explained"] >= best["explained"] - 0.02:
            best = again
    d, offset, cap, sides = best["d"], best["offset"], best["cap"], best["sides"]
    quality = {
        "explained": round(float(best["explained"]), 3),
        "cap_share": round(float(cap.mean()), 3),
        "side_share": round(float(sides.mean()), 3),
    }
    fit = Box(d, offset, 0.0, np.zeros((0, 3)), np.zeros((0, 3)), quality)
    if best["explained"] < MIN_EXPLAINED:
        fit.reason = (
            f"only {best['explained']:.0%} of the front lies on one flat face and faces "
            "parallel to one direction (a box or straight extrusion)"
        )
        return fit
    if best["above"] > MAX_ABOVE:
        fit.reason = f"{best['above']:.0%} of the front rises above the flat face that would end it"
        return fit
    if cap.mean() < MIN_FACE_SHARE or sides.mean() < MIN_FACE_SHARE:
        fit.reason = "only one face of the box is seen, so its depth is unknown"
        return fit
    # Positions from the measured points: the smoothed ones bulge at the edges.
    raw = cloud.points.astype(np.float64)
    h = raw @ d
    fit.length = length = float(offset - np.percentile(h[sides], 0.5))
    if not (length > CAP_TOLERANCE * size):
        fit.reason = "the side faces reach no depth behind the flat face"
        return fit
    quality["length"] = round(length, 4)

    section = _section(cloud, raw, d, offset, cap, sides, intrinsics, size)
    if section is None:
        fit.reason = "the flat face's outline could not be traced"
        return fit
    # The depth is what a network gets most wrong, the outline is the photo's own: the
    # length whose solid's outline matches the silhouette best, near the sides' own.
    fit.length = length = _outline_length(section, d, offset, length, silhouette, intrinsics)
    quality["length"] = round(length, 4)
    q, qn = _surface(section, d, offset, length)
    margin = 0.015 * size
    keep, contradiction = hidden_copies(q, cloud, silhouette, intrinsics, margin)
    quality["contradiction"] = round(float(contradiction), 3)
    fit.back_points, fit.back_normals = q[keep], qn[keep]
    if contradiction > MAX_CONTRADICTION:
        fit.reason = (
            f"{contradiction:.0%} of the completed box contradicts the photo "
            "(in front of what the camera saw, or outside the outline)"
        )
        return fit
    fit.accepted = True
    return fit


def _directions(normals: np.ndarray, most: int = 6, seed: int = 0) -> list[np.ndarray]:
    """The front's dominant normal directions: greedy clusters within :data:`ANGLE_DEG`."""
    rng = np.random.default_rng(seed)
    cos = math.cos(math.radians(ANGLE_DEG))
    left = np.ones(len(normals), dtype=bool)
    found = []
    for _ in range(most):
        idx = np.flatnonzero(left)
        if len(idx) < MIN_FACE_SHARE * len(normals):
            break
        trial = normals[rng.choice(idx, size=min(200, len(idx)), replace=False)]
        counts = ((normals[idx] @ trial.T) > cos).sum(axis=0)
        d = trial[int(np.argmax(counts))]
        for _ in range(3):  # the cluster's mean, twice more
            members = normals[idx][(normals[idx] @ d) > cos]
            d = members.mean(axis=0)
            d /= np.linalg.norm(d)
        member = left & ((normals @ d) > cos)
        if member.sum() < MIN_FACE_SHARE * len(normals):
            break
        found.append(d)
        left &= ~member
    return found


#: The cap's plane replaces the normals' direction only when the cap is this flat (RMS
#: distance from its plane, share of the object's size): a depth network's warped cap
#: tilts a plane fitted to it more than its normals' average.
FLAT_CAP = 0.0005


def _cap_normal(cap_points: np.ndarray, d: np.ndarray, size: float) -> np.ndarray | None:
    """The normal of the plane through ``cap_points`` (toward ``d``), or None when too few,
    not flat, or more than 5 degrees from ``d``."""
    if len(cap_points) < 100:
        return None
    centred = cap_points - cap_points.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    if sv[2] / math.sqrt(len(cap_points)) > FLAT_CAP * size:
        return None
    n = vt[2] * np.sign(vt[2] @ d)
    return n if n @ d > math.cos(math.radians(5.0)) else None


def _labels(points, normals, use, d, size, refine=True):
    """The cap and the sides for a sweep along ``d`` (refined once), and what they explain."""
    sin, cos = math.sin(math.radians(ANGLE_DEG)), math.cos(math.radians(ANGLE_DEG))
    tol = CAP_TOLERANCE * size
    for again in (True, False) if refine else (False,):
        along = normals @ d
        para = along > cos
        perp = np.abs(along) < sin
        if (para & use).sum() < 20:
            return None
        h = points @ d
        # the cap: the plane (offset along d) that most of the parallel points share
        hp = h[para & use]
        bins = np.arange(hp.min(), hp.max() + tol, tol)
        if len(bins) < 2:
            bins = np.array([hp.min() - tol, hp.max() + tol])
        counts, edges = np.histogram(hp, bins=bins)
        mode = 0.5 * (edges[np.argmax(counts)] + edges[np.argmax(counts) + 1])
        offset = float(np.median(hp[np.abs(hp - mode) < tol]))
        cap = para & (np.abs(h - offset) < tol)
        sides = perp & (h < offset + tol)
        if not again:
            break
        # refined: the cap's normals along it, the sides' across it
        nc, ns = normals[cap & use], normals[sides & use]
        m = ns.T @ ns / max(len(ns), 1) - nc.T @ nc / max(len(nc), 1)
        w, v = np.linalg.eigh(m)
        new = v[:, 0] * np.sign(v[:, 0] @ d)
        d = new / np.linalg.norm(new)
    explained = float(((cap | sides) & use).sum() / max(use.sum(), 1))
    above = float(np.mean(h > offset + 2 * tol))
    return {
        "d": d,
        "offset": offset,
        "cap": cap,
        "sides": sides,
        "explained": explained,
        "above": above,
        "cap_n": int((cap & use).sum()),
    }


def _plane_basis(d: np.ndarray):
    e1 = np.cross(d, [1.0, 0.0, 0.0] if abs(d[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(d, e1)


def _section(cloud, points, d, offset, cap, sides, intrinsics, size):
    """The cross-section as a raster in the cap's plane: (inside (H, W) bool, origin,
    cell, e1, e2); None when the cap's outline cannot be traced."""
    import cv2
    from scipy.ndimage import binary_fill_holes, distance_transform_edt

    shape = cloud.valid.shape
    r, c = cloud.pixels[:, 0], cloud.pixels[:, 1]
    # Each unexplained pixel (the smoothed normals turn across an edge) goes to the
    # nearest labelled one, so the cap's outline runs along the edge itself.
    label = np.zeros(shape, dtype=np.uint8)
    label[r[sides], c[sides]] = 2
    label[r[cap], c[cap]] = 1
    _, (nr, nc) = distance_transform_edt(label == 0, return_indices=True)
    near = label[nr, nc]
    capmask = cloud.valid & (near == 1)
    # Cast onto a plane seen at a grazing angle, a pixel too far across the cap's edge
    # with a side face lands well in front of it: such a cap keeps off that edge by two
    # pixels, and the side faces' points next to the cap draw it instead.
    ray = np.median(cloud.points, axis=0)
    grazing = abs(float(ray @ d)) / float(np.linalg.norm(ray)) < GRAZING_COS
    if grazing:
        capmask &= ~(cv2.dilate((near == 2).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    capmask = capmask.astype(np.uint8)
    capmask = cv2.morphologyEx(capmask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    count, comp, stats, _ = cv2.connectedComponentsWithStats(capmask, connectivity=8)
    if count < 2:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    capmask = binary_fill_holes(comp == biggest).astype(np.uint8)
    contours, _ = cv2.findContours(capmask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = max(contours, key=len)[:, 0, :].astype(np.float64)  # (u, v) pixel centres
    # The outline's pixels cast onto the cap's plane (a ray meets the plane).
    rays = np.stack(
        [
            (outline[:, 0] - intrinsics.cx) / intrinsics.fx,
            (outline[:, 1] - intrinsics.cy) / intrinsics.fy,
            np.ones(len(outline)),
        ],
        axis=1,
    )
    denom = rays @ d
    if np.any(np.abs(denom) < 1e-6):
        return None
    polygon3 = rays * (offset / denom)[:, None]
    e1, e2 = _plane_basis(d)
    # The side faces' points next to the cap fill the band along the cap's edges where the
    # smoothed normals turn; farther ones would smear the section by the slightest tilt.
    near = sides & (points @ d > offset - SIDE_BAND * size)
    side_uv = points[near] @ np.stack([e1, e2], axis=1)
    poly_uv = polygon3 @ np.stack([e1, e2], axis=1)
    if not np.all(np.isfinite(poly_uv)) or np.any(polygon3[:, 2] <= 0):
        return None
    # A cell about one pixel of the front wide.
    z = float(np.median(cloud.points[:, 2]))
    cell = max(z / math.sqrt(intrinsics.fx * intrinsics.fy), size / 400)
    allpts = np.concatenate([poly_uv, side_uv])
    lo = np.percentile(allpts, 0.1, axis=0) - 4 * cell
    hi = np.percentile(allpts, 99.9, axis=0) + 4 * cell
    dims = np.ceil((hi - lo) / cell).astype(int) + 1
    if np.any(dims > 4000):
        return None
    inside = np.zeros((dims[1], dims[0]), dtype=np.uint8)
    ij = np.round((poly_uv - lo) / cell).astype(np.int32)
    cv2.fillPoly(inside, [ij.reshape(-1, 1, 2)], 1)
    si = np.round((side_uv - lo) / cell).astype(np.int64)
    ok = (si[:, 0] >= 0) & (si[:, 0] < dims[0]) & (si[:, 1] >= 0) & (si[:, 1] < dims[1])
    inside[si[ok, 1], si[ok, 0]] = 1
    gap = 9 if grazing else 5
    inside = cv2.morphologyEx(inside, cv2.MORPH_CLOSE, np.ones((gap, gap), np.uint8))
    inside = binary_fill_holes(inside > 0)
    if inside.sum() < 20:
        return None
    return inside, lo, cell, e1, e2


def _outline_length(section, d, offset, length, silhouette, intrinsics) -> float:
    """The length (between 0.5 and 1.6 x ``length``) whose swept solid, seen by the camera,
    matches ``silhouette`` best (intersection over union, a pixel's rounding forgiven)."""
    import cv2

    inside, lo, cell, e1, e2 = section
    rows, cols = np.nonzero(inside)
    uv = lo + cell * np.stack([cols, rows], axis=1)
    if len(uv) > 20000:
        uv = uv[np.random.default_rng(0).choice(len(uv), 20000, replace=False)]
    flat = uv[:, :1] * e1 + uv[:, 1:] * e2
    h, w = silhouette.shape
    sil = silhouette.astype(bool)
    # Points rounded to pixels cover half a pixel beyond the solid's outline: only what
    # lies beyond the silhouette grown by a pixel is the solid's own excess.
    grown = cv2.dilate(sil.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    seen = np.zeros((h, w), dtype=bool)
    steps = np.linspace(0.0, 1.6 * length, 97)
    scores = np.full(len(steps), -1.0)
    area = np.count_nonzero(sil)
    for k, t in enumerate(steps):
        q = flat + (offset - t) * d
        u, v = intrinsics.project(q)
        ok = (q[:, 2] > 0) & (u >= -0.5) & (u < w - 0.5) & (v >= -0.5) & (v < h - 0.5)
        seen[np.rint(v[ok]).astype(int), np.rint(u[ok]).astype(int)] = True
        if t >= 0.5 * length:
            union = area + np.count_nonzero(seen & ~grown)
            scores[k] = np.count_nonzero(seen & sil) / max(union, 1)
    # The rounding leaves a plateau of lengths that match alike (about a pixel's worth):
    # its middle.
    near = np.flatnonzero(scores >= scores.max() - 1.0 / max(area, 1))
    return float(np.median(steps[near]))


def _surface(section, d, offset, length):
    """Samples of the whole swept solid (both caps and the walls) with outward normals."""
    import cv2

    inside, lo, cell, e1, e2 = section
    rows, cols = np.nonzero(inside)
    uv = lo + cell * np.stack([cols, rows], axis=1)

    def world(uv, t):
        return uv[:, :1] * e1 + uv[:, 1:] * e2 + t[:, None] * d

    n = len(uv)
    caps = np.concatenate([world(uv, np.full(n, offset)), world(uv, np.full(n, offset - length))])
    cap_normals = np.concatenate([np.tile(d, (n, 1)), np.tile(-d, (n, 1))])
    contours, _ = cv2.findContours(
        inside.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    ring = np.concatenate([k[:, 0, :] for k in contours]).astype(np.float64)
    blurred = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 1.5)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
    ri, ci = ring[:, 1].astype(int), ring[:, 0].astype(int)
    out2 = -np.stack([gx[ri, ci], gy[ri, ci]], axis=1).astype(np.float64)
    norm = np.linalg.norm(out2, axis=1)
    good = norm > 1e-9
    ring_uv = lo + cell * ring[good]
    out2 = out2[good] / norm[good, None]
    steps = max(2, int(math.ceil(length / cell)) + 1)
    t = offset - length * (np.arange(steps) + 0.5) / steps
    wall = world(np.repeat(ring_uv, steps, axis=0), np.tile(t, len(ring_uv)))
    wall_normals = np.repeat(out2[:, :1] * e1 + out2[:, 1:] * e2, steps, axis=0)
    return np.concatenate([caps, wall]), np.concatenate([cap_normals, wall_normals])
