"""The surface-of-revolution prior: fitted to the visible surface, turned into the hidden side, or refused.

Bottles, cans, cups and vases are surfaces of revolution, and for them one view fixes
the whole shape. Every normal line of such a surface meets its axis, so the axis is
the line that the front points' normal lines meet best (core.shape_prior.axis). A front
point belongs to the lathe body when its normal line meets the axis and the points at
its height and radius are seen over a wide arc around the axis (a handle or spout spans
a narrow one). The hidden side is the body's front points turned about the axis
(core.shape_prior.profile): copies that would land where the camera measured the
surface are dropped (the front stays exactly as seen), copies in front of the measured
surface or outside the silhouette count against the fit (core.shape_prior.hidden). The
fit is refused when too few points fit or too many copies contradict the photo, and the
object is meshed as before. Depth too rough for its normals (a depth sensor's steps) is
fitted by the points' positions instead: the axis about which each point lies at its
height's median radius. The outline may move the axis along its line of sight
(core.shape_prior.outline).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry.camera import Intrinsics
from ..geometry.pointcloud import PointCloud
from .axis import about, position_axis, robust_axis
from .box import Box, fit_box
from .front import Axis, Front, smoothed_front
from .hidden import hidden_copies
from .outline import inside_outline, outline_shift, ring_seen
from .profile import profile_residual, turned_body

#: Least share of the front points the lathe body must explain.
MIN_BODY_SHARE = 0.6


#: The same, where the body is judged by the points' radii (rough depth): a band of radii
#: catches more points by chance than normal lines meeting an axis do (a whole room of a
#: depth sensor's frame: 68%; the TUM globe 86%, stepped oracle lathe objects 72-97%).
MIN_BODY_SHARE_BY_RADII = 0.75


#: Most share of turned copies that may contradict the photo (in front of the measured
#: surface, or outside the silhouette).
MAX_CONTRADICTION = 0.10


#: A normal line "meets" the axis when it passes within this share of the object's size.
AXIS_TOLERANCE = 0.03


#: Points at one (height, radius) seen over less than this arc (degrees) are a part.
MIN_ARC_DEG = 50.0


#: Turned copies per front point kept (angles around the axis).
TURNS = 72


@dataclass
class Revolution:
    """A fitted surface of revolution and the hidden surface it gives."""

    axis_point: np.ndarray
    axis_direction: np.ndarray
    body: np.ndarray  # (N,) bool: front points on the lathe body
    back_points: np.ndarray
    back_normals: np.ndarray
    quality: dict = field(default_factory=dict)
    accepted: bool = False
    reason: str = ""
    #: (N,) bool: front points off the body that reach out of it (a handle, a spout): the
    #: rest of the points off it (at the outline, where normals are unreliable) lie within
    #: the turned body already
    part: np.ndarray | None = None


def fit_revolution(
    cloud: PointCloud, silhouette: np.ndarray, intrinsics: Intrinsics, *, seed: int = 0
) -> Revolution | None:
    """Fit a surface of revolution to the front of ``cloud``; None when there is no fit at all."""
    if len(cloud.points) < 200:
        return None
    points, normals = smoothed_front(cloud, intrinsics)
    centre = points.mean(axis=0)
    size = float(np.max(points.max(axis=0) - points.min(axis=0)))
    if not (size > 0):
        return None
    front = Front((points - centre) / size, normals, centre, size)
    p, cell, tol = front.p, front.cell, AXIS_TOLERANCE

    # Normals at depth edges and the outline are unreliable: the axis is fitted away
    # from them, robustly (Cauchy weights), so a handle or spout does not pull it.
    import cv2

    interior = cv2.erode(cloud.valid.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    use = interior[cloud.pixels[:, 0], cloud.pixels[:, 1]]
    if use.sum() < 100:
        use[:] = True
    sight = front.camera  # from the camera (at -camera) to the object's centre
    a, c = robust_axis(p[use], normals[use], tol, sight)
    if a is None:
        return None
    frame = about(front, Axis(a, c))
    if frame is None:
        return None  # looking straight down the axis: one view does not show a profile
    residual = frame["residual"]
    body = (residual <= tol) & (frame["arc"] >= MIN_ARC_DEG)
    rough = False
    if body.mean() < MIN_BODY_SHARE and _rough(cloud, normals):
        # Depth in steps (a depth sensor's, about a centimetre at 2 m) turns the normals
        # by 15 degrees and more, and their lines miss the axis: the points' positions
        # still show it (each point at its height's radius), and tell a body from a
        # part off it. The axis they fit best replaces the normals' if it explains more.
        rough = True
        residual = profile_residual(frame["h"], frame["r"], cell)
        # (every point: those near the outline are placed by their pixel, not the depth)
        a2, c2 = position_axis(p, normals, tol, cell, sight)
        other = None if a2 is None else about(front, Axis(a2, c2))
        if other is not None:
            residual2 = profile_residual(other["h"], other["r"], cell)
            if np.mean(residual2 <= tol) > np.mean(residual <= tol):
                a, c, frame, residual = a2, c2, other, residual2
        body = (residual <= tol) & (frame["arc"] >= MIN_ARC_DEG)
    faceted = False
    if body.mean() < MIN_BODY_SHARE and not rough:
        # Flat facets (a primitive subdivided into few faces, a low-poly model): a facet's
        # normal lines are parallel and miss the axis by up to half its width, though the
        # normals found the axis; its points still sit at their height's radius. Where
        # the normal lines alone fall short, a point whose radius fits its height's is on
        # the body too, and the body must then explain as much as rough depth's. (Not
        # always: with a network's depth the radii of points whose normals miss the axis
        # scatter, and taken in they made the hidden side of the benchmark's bottle worse.)
        by_radii = profile_residual(frame["h"], frame["r"], cell)
        on = body | ((by_radii <= tol) & (frame["arc"] >= MIN_ARC_DEG))
        if on.mean() >= MIN_BODY_SHARE_BY_RADII:
            residual, body, faceted = np.minimum(residual, by_radii), on, True

    quality = {
        "axis_residual": round(float(np.median(residual[body])) if body.any() else 1.0, 4),
        "body_share": round(float(body.mean()), 3),
    }
    if rough:
        quality["normals"] = "rough: body and axis from the points' radii"
    if faceted:
        quality["normals"] = "facets: body from the points' radii"
    fit = Revolution(
        axis_point=c * size + centre,
        axis_direction=a,
        body=body,
        back_points=np.zeros((0, 3)),
        back_normals=np.zeros((0, 3)),
        quality=quality,
    )
    if body.mean() < (MIN_BODY_SHARE_BY_RADII if rough else MIN_BODY_SHARE):
        fit.reason = f"only {body.mean():.0%} of the front fits a surface of revolution"
        return fit

    # Turn a subset of the body's points about the axis.
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(body)
    take = min(len(idx), max(500, int(1.5 * len(points) / (TURNS / 2))))
    idx = rng.choice(idx, size=take, replace=False)
    angles = np.radians(np.arange(1, TURNS) * (360.0 / TURNS))

    # A ring (a torus, a bangle) shows its hole about the axis; else the ends are closed.
    ring = ring_seen(front, Axis(a, c), silhouette, intrinsics)
    within = inside_outline(front, silhouette, intrinsics)

    def turned(c, frame):
        return turned_body(front, Axis(a, c), frame, body, idx, angles, rough, ring, within)

    # The depth along the line of sight is what a network gets most wrong, and the axis
    # fitted to its front can sit too near or too far; the outline is the photo's own. The
    # axis is moved along its line of sight to where the turned body's outline matches
    # the silhouette best (within two pixels), if that is clearly better than where the
    # front put it and the turned surface does not then contradict the photo. Not for
    # rough depth: its profile's radius scatters by a step, and so would the outline
    # (a bottle in 2 cm steps lost 0.04 of its score by it).
    candidates = [(c, frame, False)]
    moved = None
    if not rough:
        moved = outline_shift(front, Axis(a, c), body, silhouette, intrinsics)
    if moved is not None:
        other = about(front, Axis(a, moved))
        if other is not None:
            candidates.insert(0, (moved, other, True))

    # How far a copy may lie in front of the measured surface and still be the same
    # surface: 1.5% of the object, or, for rough depth, three times the points' median
    # scatter about their profile (a copy of a point a step too far lands a step ahead).
    margin = 0.015 * size
    if rough:
        margin = max(margin, 3.0 * float(np.median(residual[body])) * size)
    for candidate in candidates:
        c, frame, shifted = candidate
        q, qn, round_ring = turned(c, frame)
        q = (q + c) * size + centre
        keep, contradiction = hidden_copies(q, cloud, silhouette, intrinsics, margin)
        if contradiction <= MAX_CONTRADICTION:
            break
    fit.axis_point = c * size + centre
    fit.part = _reaching_out(frame, body, cell)
    if shifted:
        fit.quality["axis"] = "moved along the line of sight to the outline"
    if round_ring:
        fit.quality["ring_profile"] = "round"
    fit.back_points, fit.back_normals = q[keep], qn[keep]
    fit.quality["contradiction"] = round(float(contradiction), 3)
    if contradiction > MAX_CONTRADICTION:
        fit.reason = (
            f"{contradiction:.0%} of the turned surface contradicts the photo "
            "(in front of what the camera saw, or outside the outline)"
        )
        return fit
    fit.accepted = True
    return fit


#: The normals are rough when they are this far (median, degrees) from their own average
#: over a few pixels (Gaussian, sigma 4): 0-3 on the oracle scenes, exact or network-like
#: (5 on the chair's thin parts), 7-10 for their depth in steps of 1 cm, 10.6 on the
#: globe of a depth sensor's frame (TUM RGB-D); 0 on the benchmark's noisy random depth.
ROUGH_NORMALS_DEG = 6.0


def _rough(cloud: PointCloud, normals: np.ndarray) -> bool:
    """Are ``normals`` (one per point of ``cloud``) too rough to fit an axis to?"""
    import cv2

    r, c = cloud.pixels[:, 0], cloud.pixels[:, 1]
    grid = np.zeros(cloud.valid.shape + (3,), dtype=np.float32)
    grid[r, c] = normals
    average = cv2.GaussianBlur(grid, (0, 0), 4.0)[r, c]
    cos = np.abs(np.einsum("ij,ij->i", normals, average)) / np.maximum(
        np.linalg.norm(normals, axis=1) * np.linalg.norm(average, axis=1), 1e-12
    )
    return float(np.degrees(np.arccos(np.clip(np.median(cos), 0.0, 1.0)))) > ROUGH_NORMALS_DEG


#: A point off the body is a part when it lies this much farther from the axis than the
#: body does at its height (relative to the body's radius there).
PART_REACH = 1.1


def _reaching_out(frame: dict, body: np.ndarray, cell: float) -> np.ndarray:
    """The front points off ``body`` that reach out of it: farther from the axis than
    :data:`PART_REACH` x the body's largest radius at their height (or beyond its heights)."""
    h, r = frame["h"], frame["r"]
    level = np.floor(h / cell).astype(np.int64)
    out = ~body
    if not body.any():
        return out
    levels = np.unique(level[body])
    reach = np.full(len(levels), 0.0)
    np.maximum.at(reach, np.searchsorted(levels, level[body]), r[body])
    at = np.searchsorted(levels, level)
    inside = (at < len(levels)) & (levels[np.minimum(at, len(levels) - 1)] == level)
    within = inside & (r <= PART_REACH * reach[np.minimum(at, len(levels) - 1)])
    return out & ~within


def choose_back(shape, cloud, silhouette, intrinsics) -> tuple[Revolution | Box | None, str]:
    """The prior to use for ``shape`` ("auto", "revolve", "box" or "inflate") and a sentence why.

    In "auto" a surface of revolution the front accepts is kept (a can is a straight
    extrusion too, but a lathe object is turned about its axis as it always was), unless a
    box or straight extrusion explains clearly more of the front with no more
    contradiction; a box is tried where the surface of revolution is refused.
    """
    if shape == "inflate":
        return None, "inflate (asked)"
    if shape == "box":
        box = fit_box(cloud, silhouette, intrinsics)
        if box is None:
            return None, "inflate (asked for a box, but no flat faces could be fitted)"
        if box.accepted:
            return box, "box"
        return None, f"inflate (asked for a box, but {box.reason})"
    fit = fit_revolution(cloud, silhouette, intrinsics)
    if shape == "revolve":
        if fit is None:
            return None, "inflate (no surface of revolution could be fitted)"
        if fit.accepted:
            return fit, "revolve"
        if len(fit.back_points):
            return fit, f"revolve (asked; {fit.reason})"
        return None, f"inflate ({fit.reason})"
    box = fit_box(cloud, silhouette, intrinsics)
    if box is not None and box.accepted:
        if fit is None or not fit.accepted:
            return box, "box"
        if box.quality["explained"] >= fit.quality["body_share"] + BOX_MARGIN and box.quality[
            "contradiction"
        ] <= fit.quality.get("contradiction", 1.0):
            return box, "box (explains more of the front than a surface of revolution)"
    if fit is not None and fit.accepted:
        return fit, "revolve"
    why = "no surface of revolution could be fitted" if fit is None else fit.reason
    if box is not None:
        why += f"; not a box: {box.reason}"
    return None, f"inflate ({why})"


#: How much more of the front a box must explain than an accepted surface of revolution
#: to be taken instead of it.
BOX_MARGIN = 0.1
