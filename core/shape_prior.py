"""The shape prior for closed solids: a surface of revolution found in the visible surface.

Bottles, cans, cups and vases are surfaces of revolution, and for them one view fixes
the whole shape. Every normal line of such a surface meets its axis, so the axis is
the line that the front points' normal lines meet best (linear in its Pluecker
coordinates; nothing assumes it upright in the image). A front point belongs to the
lathe body when its normal line meets the axis and the points at its height and
radius are seen over a wide arc around the axis (a handle or spout spans a narrow
one). The hidden side is the body's front points turned about the axis: copies that
would land where the camera measured the surface are dropped (the front stays
exactly as seen), copies in front of the measured surface or outside the silhouette
count against the fit. The fit is refused when too few points fit or too many copies
contradict the photo, and the object is meshed as before. Depth too rough for its
normals (a depth sensor's steps) is fitted by the points' positions instead: the axis
about which each point lies at its height's median radius.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .camera import Intrinsics
from .pointcloud import PointCloud

SHAPES = ("auto", "revolve", "inflate")

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


def fit_revolution(
    cloud: PointCloud, silhouette: np.ndarray, intrinsics: Intrinsics, *, seed: int = 0
) -> Revolution | None:
    """Fit a surface of revolution to the front of ``cloud``; None when there is no fit at all."""
    if len(cloud.points) < 200:
        return None
    points, normals = _smoothed(cloud, intrinsics)
    centre = points.mean(axis=0)
    size = float(np.max(points.max(axis=0) - points.min(axis=0)))
    if not (size > 0):
        return None
    p = (points - centre) / size
    tol = AXIS_TOLERANCE

    # Normals at depth edges and the outline are unreliable: the axis is fitted away
    # from them, robustly (Cauchy weights), so a handle or spout does not pull it.
    import cv2

    interior = cv2.erode(cloud.valid.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    use = interior[cloud.pixels[:, 0], cloud.pixels[:, 1]]
    if use.sum() < 100:
        use[:] = True
    a, c = _robust_axis(p[use], normals[use], tol)
    if a is None:
        return None
    cell = 0.02
    frame = _about(p, normals, a, c, centre / size, cell)
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
        residual = _profile_residual(frame["h"], frame["r"], cell)
        # (every point: those near the outline are placed by their pixel, not the depth)
        a2, c2 = _position_axis(p, normals, tol, cell)
        other = None if a2 is None else _about(p, normals, a2, c2, centre / size, cell)
        if other is not None:
            residual2 = _profile_residual(other["h"], other["r"], cell)
            if np.mean(residual2 <= tol) > np.mean(residual <= tol):
                a, c, frame, residual = a2, c2, other, residual2
        body = (residual <= tol) & (frame["arc"] >= MIN_ARC_DEG)

    quality = {
        "axis_residual": round(float(np.median(residual[body])) if body.any() else 1.0, 4),
        "body_share": round(float(body.mean()), 3),
    }
    if rough:
        quality["normals"] = "rough: body and axis from the points' radii"
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

    def turned(c, frame):
        return _turned(p, normals, a, c, frame, body, idx, angles, cell, rough)

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
        moved = _outline_shift(c, centre, size, silhouette, intrinsics, p, normals, a, body, cell)
    if moved is not None:
        other = _about(p, normals, a, moved, centre / size, cell)
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
        keep, contradiction = _hidden(q, cloud, silhouette, intrinsics, margin)
        if contradiction <= MAX_CONTRADICTION:
            break
    fit.axis_point = c * size + centre
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


def _turned(p, normals, a, c, frame, body, idx, angles, cell, rough):
    """The body's points ``idx`` turned about the axis (a, c) by ``angles``, with the flat
    ends and a ring's round underside, relative to ``c``; and whether the underside was
    added. ``frame`` is :func:`_about` for that axis."""
    rel, h, radial, r = frame["rel"], frame["h"], frame["radial"], frame["r"]
    e1, e2 = frame["e1"], frame["e2"]
    # Each copy at the radius its height's outward side reaches (see _rim_radii); for
    # rough depth, whose radii scatter by a step or more, at its height's median radius.
    if rough:
        grow = (_profile_radius(h, r, cell) - r)[idx]
    else:
        grow = (_rim_radii(h, r, normals, radial, a, body, cell) - r)[idx]
    src = rel[idx] + radial[idx] / np.maximum(r[idx], 1e-12)[:, None] * grow[:, None]
    q = _turn(src, a, angles).reshape(-1, 3)
    qn = _turn(normals[idx], a, angles).reshape(-1, 3)
    ends, end_normals = _flat_ends(h[body], r[body], a, e1, e2, cell)
    under, under_normals = _round_underside(h[body], r[body], a, e1, e2, cell)
    q = np.concatenate([q, ends, under])
    qn = np.concatenate([qn, end_normals, under_normals])
    return q, qn, len(under) > 0


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


def _outline(frame, a, c, body, cell: float, ring: bool, world, silhouette, intrinsics):
    """The turned body's outline drawn from its profile: (H, W) bool.

    A solid of revolution is the union of its slices across the axis: at each height a
    disc of the profile's outer radius (an annulus from the inner radius, for a ring).
    Each slice projects to a filled polygon, so the outline costs a few milliseconds and
    has none of the holes that a sample of turned points leaves. ``ring``: the slices are
    annuli (see :func:`_ring_hole`). ``world`` maps points relative to the fit's frame to
    the camera's.
    """
    import cv2

    h, r = frame["h"][body], frame["r"][body]
    out = np.zeros(silhouette.shape, np.uint8)
    if len(h) < 20:
        return out > 0
    # A ring's round underside (see _round_underside) is part of its profile.
    under, _ = _round_underside(h, r, a, frame["e1"], frame["e2"], cell)
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


def _outline_shift(c, centre, size, silhouette, intrinsics, p, normals, a, body, cell):
    """The axis point moved along its line of sight to where the turned body's outline
    matches the silhouette best; None to keep ``c``.

    Steps of OUTLINE_STEP of the object's size up to OUTLINE_REACH each way, walking
    downhill from ``c``; the best step refined between its neighbours (the vertex of a
    parabola through the three); kept only if it closes more than OUTLINE_GAIN of the
    silhouette's area. The profile is read from a sample of the points (a few
    milliseconds a step)."""
    silhouette = np.asarray(silhouette, dtype=bool)
    rng = np.random.default_rng(1)
    sample = np.sort(rng.choice(len(p), min(len(p), 8000), replace=False))
    p, normals, body = p[sample], normals[sample], body[sample]
    cw = c * size + centre
    ray = cw / np.linalg.norm(cw)
    steps = int(round(OUTLINE_REACH / OUTLINE_STEP))
    gaps: dict[float, float] = {}
    along = cw + np.outer(np.linspace(-0.5, 0.5, 41) * size, a)
    ring = _ring_hole(silhouette, *intrinsics.project(along))

    def point(k: float) -> np.ndarray:
        c2 = (cw + k * OUTLINE_STEP * size * ray - centre) / size
        return c2 - (c2 @ a) * a

    def gap(k: float) -> float:
        if k not in gaps:
            c2 = point(k)
            frame = _about(p, normals, a, c2, centre / size, cell)
            if frame is None:
                gaps[k] = np.inf
            else:
                drawn = _outline(
                    frame,
                    a,
                    c2,
                    body,
                    cell,
                    ring,
                    lambda q: q * size + centre,
                    silhouette,
                    intrinsics,
                )
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


def _robust_axis(p: np.ndarray, n: np.ndarray, tol: float, samples: int = 2000):
    """Direction and a point of the axis the normal lines (p, n) meet best, or (None, None).

    A robust least-squares fit (Cauchy loss) of the distances between each normal line
    and the axis, started from several directions (the points' principal axes, the
    linear Pluecker solution and tilts of the image's vertical): a normal nearly along
    the axis says nothing about it, so such points are left out, and an axis that
    leaves most points out is no fit (that is how an axis along the mean normal would
    otherwise explain everything).
    """

    def normal_lines(p, n):
        def residuals(a, c):
            na = np.cross(n, a)
            length = np.linalg.norm(na, axis=1)
            informative = length > 0.3
            r = np.einsum("ij,ij->i", p - c, na) / np.maximum(length, 0.3)
            return np.where(informative, r, 0.0)

        def score(a, c):
            na = np.cross(n, a)
            length = np.linalg.norm(na, axis=1)
            informative = length > 0.3
            if informative.mean() < 0.3:
                return np.inf
            dist = np.abs(np.einsum("ij,ij->i", p - c, na))[informative] / length[informative]
            return float(np.mean(np.minimum(dist, 3 * tol)))

        return residuals, score

    return _multistart_axis(p, n, tol, samples, normal_lines)


def _multistart_axis(p, n, tol: float, samples: int, measures):
    """The axis (direction, point) that ``measures(p, n)`` = (residuals(a, c), score(a, c))
    finds best, or (None, None), on at most ``samples`` of the points.

    Each start (:func:`_starts`) takes its best axis point for the normal lines (linear
    given the direction); only the three most promising are refined by a robust fit
    (:func:`_cauchy_fit` of the residuals), since the refinement is what costs.
    """
    rng = np.random.default_rng(0)
    if len(p) > samples:
        pick = rng.choice(len(p), samples, replace=False)
        p, n = p[pick], n[pick]
    residuals, score = measures(p, n)

    def unit(angles):
        th, ph = angles
        return np.array([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)])

    ranked = []
    for a0 in _starts(p, n):
        a0 = a0 / np.linalg.norm(a0)
        na = np.cross(n, a0)
        c0, *_ = np.linalg.lstsq(na, np.einsum("ij,ij->i", p, na), rcond=None)
        ranked.append((score(a0, c0), a0, c0))
    ranked.sort(key=lambda item: item[0])

    best = (np.inf, None, None)
    for _, a0, c0 in ranked[:3]:
        x0 = np.r_[np.arccos(np.clip(a0[2], -1, 1)), np.arctan2(a0[1], a0[0]), c0]
        x = _cauchy_fit(lambda x: residuals(unit(x[:2]), x[2:]), x0, tol)
        if x is None:
            continue
        a = unit(x[:2])
        c = x[2:]
        cost = score(a, c)
        if cost < best[0]:
            best = (cost, a, c - (c @ a) * a)
    a = best[1]
    if a is not None and (a[1], -a[2], -a[0]) > (0.0, 0.0, 0.0):
        a = -a  # one direction for the same axis: up in the image (-y), else toward the camera
    return a, best[2]


def _starts(p: np.ndarray, n: np.ndarray) -> list[np.ndarray]:
    """Axis directions to start a fit from: the points' principal axes, the normal lines'
    linear solution and tilts of the image's vertical (unit vectors)."""
    starts = list(np.linalg.svd(p - p.mean(axis=0), full_matrices=False)[2])
    linear, _ = _axis(p, n, np.ones(len(p)))
    if linear is not None:
        starts.append(linear)
    for tilt in (-60, -40, -20, 0, 20, 40, 60):
        t = np.radians(tilt)
        starts.append(np.array([0.0, -np.cos(t), -np.sin(t)]))
        starts.append(np.array([np.sin(t), -np.cos(t), 0.0]))
    return starts


def _cauchy_fit(residuals, x0: np.ndarray, scale: float, evaluations: int = 40):
    """``x`` minimising sum(log(1 + (r_i(x) / scale)^2)) near ``x0``, or None (no finite start).

    Levenberg-Marquardt on iteratively reweighted least squares (weights 1 / (1 +
    (r / scale)^2), the Cauchy loss's), a forward-difference Jacobian, at most
    ``evaluations`` evaluations of ``residuals``: the robust fit scipy's least_squares
    makes, in numpy (importing scipy.optimize alone took 0.6 s).
    """
    x = np.asarray(x0, dtype=np.float64).copy()

    def cost(r):
        return float(np.sum(np.log1p((r / scale) ** 2)))

    r = residuals(x)
    if not np.all(np.isfinite(r)):
        return None
    best = cost(r)
    damping = 1e-3
    used = 1
    while used < evaluations:
        step = 1e-7 * np.maximum(np.abs(x), 1.0)
        jac = np.empty((len(r), len(x)))
        for k in range(len(x)):
            shifted = x.copy()
            shifted[k] += step[k]
            jac[:, k] = (residuals(shifted) - r) / step[k]
        used += len(x)
        w = 1.0 / (1.0 + (r / scale) ** 2)
        a = jac.T @ (w[:, None] * jac)
        g = jac.T @ (w * r)
        diag = np.maximum(np.diag(a), 1e-12 * max(float(np.trace(a)), 1e-300))
        improved = False
        while used < evaluations:
            try:
                dx = -np.linalg.solve(a + damping * np.diag(diag), g)
            except np.linalg.LinAlgError:
                damping *= 10.0
                continue
            trial = x + dx
            r_trial = residuals(trial)
            used += 1
            c = cost(r_trial) if np.all(np.isfinite(r_trial)) else np.inf
            if c < best:
                x, r, improved = trial, r_trial, True
                small = best - c <= 1e-8 * best or np.linalg.norm(dx) <= 1e-8 * (
                    np.linalg.norm(x) + 1e-8
                )
                best = c
                damping = max(damping / 3.0, 1e-9)
                break
            damping *= 4.0
            if damping > 1e12:
                return x
        if not improved or small:
            break
    return x


def _smoothed(cloud: PointCloud, intrinsics: Intrinsics, sigma: float = 2.0):
    """The front points and normals from the depth smoothed within the object (a few pixels).

    A depth network's map is noisy from pixel to pixel; the normals the axis is fitted
    to should follow the shape, not that noise. Only the fit and the turned copies
    use these: the front surface itself stays the measured one.
    """
    import cv2

    from .pointcloud import grid_normals

    r, c = cloud.pixels[:, 0], cloud.pixels[:, 1]
    z = np.zeros(cloud.valid.shape, dtype=np.float64)
    z[r, c] = cloud.points[:, 2]
    weight = cloud.valid.astype(np.float64)
    zs = cv2.GaussianBlur(z, (0, 0), sigma) / np.maximum(
        cv2.GaussianBlur(weight, (0, 0), sigma), 1e-9
    )
    depth = zs[r, c]
    points = np.stack(
        [
            (c - intrinsics.cx) * depth / intrinsics.fx,
            (r - intrinsics.cy) * depth / intrinsics.fy,
            depth,
        ],
        axis=1,
    )
    grid = np.zeros(cloud.valid.shape + (3,), dtype=np.float64)
    grid[r, c] = points
    normals = grid_normals(grid, cloud.valid)[r, c].astype(np.float64)
    return points, normals


def _flat_ends(h, r, a, e1, e2, cell):
    """Discs closing the profile's ends where it ends away from the axis (relative to the axis).

    The camera rarely sees an object's base: a bottle or can stands on a flat one, so an
    end of the seen profile that is still wide is closed flat at that height (the
    copies the camera did see are dropped later, like any other), unless nothing was
    seen near the axis (a ring has a hole there).
    """
    out, normals = [np.zeros((0, 3))], [np.zeros((0, 3))]
    if not np.any(r < 0.15 * r.max()):
        # Nothing seen near the axis: a ring (a torus, a bangle) has a hole there.
        return np.concatenate(out), np.concatenate(normals)
    for end, sign in ((h.min(), -1.0), (h.max(), 1.0)):
        near = np.abs(h - end) <= 2 * cell
        radius = float(np.median(r[near])) if near.any() else 0.0
        if radius <= 2 * cell:
            continue
        step = cell / 2
        rings = np.arange(step / 2, radius, step)
        pts = []
        for ring in rings:
            k = max(6, int(2 * math.pi * ring / step))
            t = np.linspace(0, 2 * math.pi, k, endpoint=False)
            pts.append(ring * (np.outer(np.cos(t), e1) + np.outer(np.sin(t), e2)))
        disc = np.concatenate(pts) + end * a
        out.append(disc)
        normals.append(np.tile(sign * a, (len(disc), 1)))
    return np.concatenate(out), np.concatenate(normals)


#: A ring's seen profile is round when a circle fits it within this share of its radius
#: (median distance). Exact depth of a torus fits within 0.1%; depth corrupted like a
#: network's (relief stretched unevenly) within 2.5%, and its circle is then 10% too
#: small: completing that one scored lower than leaving the underside to Poisson.
ROUND_PROFILE = 0.01


def _round_underside(h, r, a, e1, e2, cell):
    """The unseen arc of a ring's round profile, turned about the axis (relative to it).

    A ring (a torus, a tyre, a bangle: nothing seen near the axis) seen from above never
    shows its underside, so no turned copy of the front can supply it. When the profile
    seen, in (height, radius), is an arc of one circle, the rest of that circle is the
    underside; otherwise nothing is added (the closing Poisson surface decides there).
    """
    none = (np.zeros((0, 3)), np.zeros((0, 3)))
    if len(r) < 50 or np.any(r < 0.15 * r.max()):
        return none
    # Kasa's algebraic circle fit: h^2 + r^2 + D h + E r + F = 0.
    m = np.stack([h, r, np.ones_like(h)], axis=1)
    rhs = -(h**2 + r**2)
    (d, e, f), *_ = np.linalg.lstsq(m, rhs, rcond=None)
    hc, rc = -d / 2, -e / 2
    radius2 = hc**2 + rc**2 - f
    if not (radius2 > 0):
        return none
    radius = math.sqrt(radius2)
    if radius <= 2 * cell or rc - radius <= 0:
        return none  # the circle would reach the axis: no ring
    dist = np.hypot(h - hc, r - rc)
    if np.median(np.abs(dist - radius)) > ROUND_PROFILE * radius:
        return none
    # The arc seen, as angles about the circle's centre; the largest gap is the unseen one.
    phi = np.sort(np.arctan2(h - hc, r - rc))
    gaps = np.diff(np.r_[phi, phi[0] + 2 * math.pi])
    k = int(np.argmax(gaps))
    if gaps[k] < math.radians(20):
        return none
    start, stop = phi[k], phi[k] + gaps[k]
    step = cell / 2
    margin = 2 * step / radius  # leave the ends of the arc to the turned front
    arc = np.arange(start + margin, stop - margin, step / radius)
    if len(arc) == 0:
        return none
    pts, normals = [], []
    for angle in arc:
        ph, pr = hc + radius * math.sin(angle), rc + radius * math.cos(angle)
        count = max(24, int(2 * math.pi * pr / step))
        t = np.linspace(0, 2 * math.pi, count, endpoint=False)
        around = np.outer(np.cos(t), e1) + np.outer(np.sin(t), e2)
        pts.append(pr * around + ph * a)
        normals.append(math.cos(angle) * around + math.sin(angle) * a)
    return np.concatenate(pts), np.concatenate(normals)


def _axis(p: np.ndarray, n: np.ndarray, w: np.ndarray):
    """Axis (unit direction a, moment m) that the normal lines (p, n) meet best.

    The lines meet when a . (p x n) + m . n = 0, linear in (a, m): the smallest
    eigenvector of the weighted normal matrix, with m eliminated and |a| = 1.
    """
    x = np.concatenate([np.cross(p, n), n], axis=1)
    big = (x * w[:, None]).T @ x
    a_blk, b_blk, c_blk = big[:3, :3], big[:3, 3:], big[3:, 3:]
    try:
        c_inv = np.linalg.inv(c_blk + 1e-12 * np.eye(3))
    except np.linalg.LinAlgError:
        return None, None
    s = a_blk - b_blk @ c_inv @ b_blk.T
    _, vecs = np.linalg.eigh(s)
    # The eigenproblem drops the constraint m . a = 0 that makes (a, m) a line, so its
    # best vector can be a non-line; of the three, keep the line the points fit best.
    best = None
    for k in range(3):
        a = vecs[:, k]
        m = -c_inv @ b_blk.T @ a
        m = m - (m @ a) * a
        cost = float(np.median(np.abs(np.cross(p, n) @ a + n @ m)))
        if best is None or cost < best[0]:
            best = (cost, a, m)
    return best[1], best[2]


def _about(p, normals, a, c, camera, cell: float) -> dict | None:
    """The front seen about the axis (a, c): each point's height, radius, angle (0 faces
    the camera, at ``-camera``), the distance of its normal line from the axis, and the arc
    seen at its (height, radius) cell. None when the camera looks straight down the axis."""
    na = np.cross(normals, a)
    length = np.linalg.norm(na, axis=1)
    # Distance between each normal line and the axis; a normal along the axis (a flat
    # top or bottom) meets it only at infinity but fits any axis it is parallel to.
    residual = np.where(
        length > 0.3, np.abs(np.einsum("ij,ij->i", p - c, na)) / np.maximum(length, 1e-9), 0.0
    )
    rel = p - c
    h = rel @ a
    radial = rel - np.outer(h, a)
    r = np.linalg.norm(radial, axis=1)
    toward = -(camera + c)  # from the axis point to the camera (at the origin)
    e1 = toward - (toward @ a) * a
    if np.linalg.norm(e1) < 1e-9:
        return None
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(a, e1)
    theta = np.degrees(np.arctan2(radial @ e2, radial @ e1))
    # Arc seen at each (height, radius) cell.
    hi = np.floor(h / cell).astype(np.int64)
    ri = np.floor(r / cell).astype(np.int64)
    key = (hi - hi.min()) * (ri.max() - ri.min() + 2) + (ri - ri.min())
    _, inverse = np.unique(key, return_inverse=True)
    lo_t = np.full(inverse.max() + 1, np.inf)
    hi_t = np.full(inverse.max() + 1, -np.inf)
    np.minimum.at(lo_t, inverse, theta)
    np.maximum.at(hi_t, inverse, theta)
    return {
        "residual": residual,
        "rel": rel,
        "h": h,
        "radial": radial,
        "r": r,
        "e1": e1,
        "e2": e2,
        "arc": (hi_t - lo_t)[inverse],
    }


def _position_axis(p: np.ndarray, n: np.ndarray, tol: float, cell: float, samples: int = 2000):
    """The axis about which the points (p) sit best at one radius per height, or (None, None).

    For depth too rough for its normals: the same starts as :func:`_robust_axis` (each
    with its axis point from the normal lines, which are right on average), the three
    most promising refined by a robust fit of each point's distance from its height's
    median radius.
    """

    def radii(p, n):
        def signed(a, c):
            rel = p - c
            h = rel @ a
            r = np.linalg.norm(rel - np.outer(h, a), axis=1)
            return r - _profile_radius(h, r, cell)

        return signed, lambda a, c: float(np.mean(np.minimum(np.abs(signed(a, c)), 3 * tol)))

    return _multistart_axis(p, n, tol, samples, radii)


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


def _profile_radius(h: np.ndarray, r: np.ndarray, cell: float) -> np.ndarray:
    """R(h) at each point: the median radius of its height (``cell`` high slices, read
    linearly between the slices' centres)."""
    level = np.floor((h - h.min()) / cell).astype(np.int64)
    order = np.lexsort((r, level))
    counts = np.bincount(level)
    filled = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    median = r[order][starts[filled] + (counts[filled] - 1) // 2]
    return np.interp(h, h.min() + (filled + 0.5) * cell, median)


def _profile_residual(h: np.ndarray, r: np.ndarray, cell: float) -> np.ndarray:
    """|r - R(h)|: each point's distance from its height's median radius."""
    return np.abs(r - _profile_radius(h, r, cell))


def _rim_radii(h, r, normals, radial, a, body, cell) -> np.ndarray:
    """Per front point: its radius, raised on the body's outward side to the radius that
    the outward side at its height reaches (the 90th percentile of a ``cell`` of height).

    A lathe body's outward side has one radius per height. A network's depth errs most in
    the relief, where the camera looks at the surface head on: those points sit too near
    the axis or too far from it, and turned they would make the hidden side too thin. The
    points seen near the outline, where the camera grazes the surface, are placed by
    their pixel (sideways) more than by their depth, and give the radius. With exact
    depth all points of a height agree and nothing moves.
    """
    unit = radial / np.maximum(r, 1e-12)[:, None]
    outward = body & (np.abs(normals @ a) < 0.6) & (np.einsum("ij,ij->i", normals, unit) > 0.5)
    level = np.floor(h / cell).astype(np.int64)
    out = r.copy()
    levels, counts = np.unique(level[outward], return_counts=True)
    for b in levels[counts >= 10]:
        sel = outward & (level == b)
        out[sel] = np.maximum(r[sel], np.percentile(r[sel], 90))
    return out


def _turn(v: np.ndarray, axis: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(K, 3) vectors turned about unit ``axis`` by each angle: (K, T, 3) (Rodrigues)."""
    cos = np.cos(angles)[None, :, None]
    sin = np.sin(angles)[None, :, None]
    cross = np.cross(axis, v)[:, None, :]
    along = (v @ axis)[:, None, None] * axis[None, None, :]
    return v[:, None, :] * cos + cross * sin + along * (1 - cos)


def _hidden(q, cloud, silhouette, intrinsics: Intrinsics, margin: float):
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


def choose_back(shape, cloud, silhouette, intrinsics) -> tuple[Revolution | None, str]:
    """The prior to use for ``shape`` ("auto", "revolve" or "inflate") and a sentence why."""
    if shape == "inflate":
        return None, "inflate (asked)"
    fit = fit_revolution(cloud, silhouette, intrinsics)
    if fit is None:
        return None, "inflate (no surface of revolution could be fitted)"
    if fit.accepted:
        return fit, "revolve"
    if shape == "revolve" and len(fit.back_points):
        return fit, f"revolve (asked; {fit.reason})"
    return None, f"inflate ({fit.reason})"


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two axes (direction sign ignored)."""
    cos = abs(float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))))
    return math.degrees(math.acos(min(1.0, cos)))
