"""Finding the axis of revolution: the line the normal lines meet best (or the points sit about best), robustly."""

from __future__ import annotations

import math

import numpy as np

from .front import Axis, Front
from .profile import profile_radius

#: Where several axes fit the front alike, the one most across the line of sight wins by
#: a preference of at most this share of the tolerance (see :func:`_multistart_axis`). It
#: only breaks ties: at half the tolerance it outweighed the fit itself where a body seen
#: from high above (45-60 degrees) shows mostly a round top, which fits any axis through
#: its centre, and a little of its side, which fits only the true one (a dome seen from
#: 57 degrees was turned about the image's vertical, 54 degrees off).
ACROSS_SIGHT = 0.1

#: An axis within this many degrees of the line of sight is no candidate: looking nearly
#: down it, one view shows almost none of the profile, and the front turned about it only
#: covers the front again (a ball, which fits every axis through its centre, came out a
#: lens). Product photos look down on an object by 60 degrees at most.
MIN_SIGHT_DEG = 25.0


def robust_axis(p: np.ndarray, n: np.ndarray, tol: float, view=None, samples: int = 2000):
    """Direction and a point of the axis the normal lines (p, n) meet best, or (None, None).

    A robust least-squares fit (Cauchy loss) of the distances between each normal line
    and the axis, started from several directions (the points' principal axes, the
    linear Pluecker solution and tilts of the image's vertical): a normal nearly along
    the axis says nothing about it, so such points are left out, and an axis that
    leaves most points out is no fit (that is how an axis along the mean normal would
    otherwise explain everything). ``view``: the line of sight (see :func:`_multistart_axis`).
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

    return _multistart_axis(p, n, tol, samples, normal_lines, view)


def position_axis(
    p: np.ndarray, n: np.ndarray, tol: float, cell: float, view=None, samples: int = 2000
):
    """The axis about which the points (p) sit best at one radius per height, or (None, None).

    For depth too rough for its normals: the same starts as :func:`robust_axis` (each
    with its axis point from the normal lines, which are right on average), the three
    most promising refined by a robust fit of each point's distance from its height's
    median radius.
    """

    def radii(p, n):
        def signed(a, c):
            rel = p - c
            h = rel @ a
            r = np.linalg.norm(rel - np.outer(h, a), axis=1)
            return r - profile_radius(h, r, cell)

        return signed, lambda a, c: float(np.mean(np.minimum(np.abs(signed(a, c)), 3 * tol)))

    # (the preference across the line of sight is for normal lines, which a ball fits
    # about every axis; the radii's measure is on another scale, and only the cone stays)
    return _multistart_axis(p, n, tol, samples, radii, view, prefer_across=False)


def _multistart_axis(p, n, tol: float, samples: int, measures, view=None, prefer_across=True):
    """The axis (direction, point) that ``measures(p, n)`` = (residuals(a, c), score(a, c))
    finds best, or (None, None), on at most ``samples`` of the points.

    Each start (:func:`_starts`) takes its best axis point for the normal lines (linear
    given the direction); only the three most promising are refined by a robust fit
    (:func:`_cauchy_fit` of the residuals), since the refinement is what costs.

    ``view``: the line of sight. Where the front fits several axes alike (a ball fits every
    axis through its centre), the one most across the line of sight is taken: turned about
    it, the front covers the back; turned about the line of sight itself it only covers the
    front again, and the solid came out a lens. A true lathe body's axis fits far better
    than any other, and the preference (:data:`ACROSS_SIGHT` x the tolerance at most) does
    not move it.
    """
    rng = np.random.default_rng(0)
    if len(p) > samples:
        pick = rng.choice(len(p), samples, replace=False)
        p, n = p[pick], n[pick]
    residuals, score = measures(p, n)
    sight = None if view is None else np.asarray(view, dtype=np.float64) / np.linalg.norm(view)

    def along(a: np.ndarray) -> float:
        if sight is None:
            return 0.0
        cos = abs(float(a @ sight))
        if cos > math.cos(math.radians(MIN_SIGHT_DEG)):
            return np.inf
        return ACROSS_SIGHT * tol * cos if prefer_across else 0.0

    def unit(angles):
        th, ph = angles
        return np.array([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)])

    ranked = []
    for a0 in _starts(p, n):
        a0 = a0 / np.linalg.norm(a0)
        na = np.cross(n, a0)
        c0, *_ = np.linalg.lstsq(na, np.einsum("ij,ij->i", p, na), rcond=None)
        ranked.append((score(a0, c0) + along(a0), a0, c0))
    ranked.sort(key=lambda item: item[0])

    best = (np.inf, None, None)
    for cost0, a0, c0 in ranked[:3]:
        # the start itself stands where its refinement runs off into the line of sight
        if cost0 < best[0]:
            best = (cost0, a0, c0 - (c0 @ a0) * a0)
        x0 = np.r_[np.arccos(np.clip(a0[2], -1, 1)), np.arctan2(a0[1], a0[0]), c0]
        x = _cauchy_fit(lambda x: residuals(unit(x[:2]), x[2:]), x0, tol)
        if x is None:
            continue
        a = unit(x[:2])
        c = x[2:]
        cost = score(a, c) + along(a)
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


def about(front: Front, axis: Axis) -> dict | None:
    """The front seen about ``axis``: each point's height, radius, angle (0 faces the
    camera), the distance of its normal line from the axis, and the arc seen at its
    (height, radius) cell. None when the camera looks straight down the axis."""
    p, normals, camera, cell = front.p, front.normals, front.camera, front.cell
    a, c = axis
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


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two axes (direction sign ignored)."""
    cos = abs(float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))))
    return math.degrees(math.acos(min(1.0, cos)))
