"""Open3D's own triangle-triangle test, vectorised over pairs (for agreeing with it).

Open3D's ``is_self_intersecting()`` normalises each pair of triangles by the mean and
per-axis spread of their six corners, then runs Moller's no-division test with an
epsilon of 1e-6 on the planes' side distances (``IntersectionTest::TriangleTriangle3d``
and ``NoDivTriTriIsect``). On two nearly coplanar faces a few micrometres apart (a flat
or ruled stretch of a mesh stored in float32) that test can answer "intersecting" where
the faces only lie side by side; :func:`open3d_flags` gives the same answer, so those
pairs can be separated before a user's tool sees them.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-6  # Moller's coplanarity threshold, as Open3D compiles it
_EDGES = ((0, 1), (1, 2), (2, 0))


def open3d_flags(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(N,) bool: Open3D's answer for the triangles ``p[i]`` and ``q[i]`` (each (N, 3, 3))."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if len(p) == 0:
        return np.zeros(0, dtype=bool)
    both = np.concatenate([p, q], axis=1)
    mu = both.sum(axis=1) / 6
    sigma = np.sqrt(((both - mu[:, None, :]) ** 2).sum(axis=1) / 5) + 1e-12
    v = (p - mu[:, None, :]) / sigma[:, None, :]
    u = (q - mu[:, None, :]) / sigma[:, None, :]
    du, n1 = _side_distances(v, u)
    dv, n2 = _side_distances(u, v)
    apart = _one_side(du) | _one_side(dv)
    index = np.argmax(np.abs(np.cross(n1, n2)), axis=1)
    a, b, c, x0, x1, flat1 = _interval(_take(v, index), dv)
    d, e, f, y0, y1, flat2 = _interval(_take(u, index), du)
    xx, yy = x0 * x1, y0 * y1
    xxyy = xx * yy
    s1 = np.sort(np.stack([a * xxyy + b * x1 * yy, a * xxyy + c * x0 * yy], axis=1), axis=1)
    s2 = np.sort(np.stack([d * xxyy + e * xx * y1, d * xxyy + f * xx * y0], axis=1), axis=1)
    out = ~((s1[:, 1] < s2[:, 0]) | (s2[:, 1] < s1[:, 0]))
    coplanar = (flat1 | flat2) & ~apart
    if coplanar.any():
        sel = np.flatnonzero(coplanar)
        out[sel] = _coplanar(n1[sel], v[sel], u[sel])
    return out & ~apart


def _side_distances(v: np.ndarray, u: np.ndarray):
    """Side distances of ``u``'s corners from ``v``'s plane (zero below EPSILON), and its normal."""
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    d = -np.einsum("ij,ij->i", n, v[:, 0])
    du = np.einsum("ij,ikj->ik", n, u) + d[:, None]
    return np.where(np.abs(du) < EPSILON, 0.0, du), n


def _one_side(dd: np.ndarray) -> np.ndarray:
    return (dd[:, 0] * dd[:, 1] > 0) & (dd[:, 0] * dd[:, 2] > 0)


def _take(t: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """(N, 3): each triangle's corners' coordinate on its own ``axis``."""
    return np.take_along_axis(t, axis[:, None, None].repeat(3, axis=1), axis=2)[..., 0]


def _interval(vv: np.ndarray, dd: np.ndarray):
    """Moller's NEWCOMPUTE_INTERVALS; the last value marks coplanar pairs."""
    d0, d1, d2 = dd.T
    v0, v1, v2 = vv.T
    c1 = d0 * d1 > 0
    c2 = ~c1 & (d0 * d2 > 0)
    c3 = ~(c1 | c2) & ((d1 * d2 > 0) | (d0 != 0))
    c4 = ~(c1 | c2 | c3) & (d1 != 0)
    c5 = ~(c1 | c2 | c3 | c4) & (d2 != 0)
    on2, on1 = c1 | c5, c2 | c4  # the corner alone on its side; corner 0 otherwise
    a = np.where(on2, v2, np.where(on1, v1, v0))
    b = np.where(on2, (v0 - v2) * d2, np.where(on1, (v0 - v1) * d1, (v1 - v0) * d0))
    c = np.where(on2, (v1 - v2) * d2, np.where(on1, (v2 - v1) * d1, (v2 - v0) * d0))
    x0 = np.where(on2, d2 - d0, np.where(on1, d1 - d0, d0 - d1))
    x1 = np.where(on2, d2 - d1, np.where(on1, d1 - d2, d0 - d2))
    return a, b, c, x0, x1, ~(c1 | c2 | c3 | c4 | c5)


def _coplanar(n: np.ndarray, v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Moller's coplanar_tri_tri: edge-edge tests and corner-in-triangle, projected."""
    an = np.abs(n)
    x_big = an[:, 0] > an[:, 1]
    i0 = np.where(x_big & (an[:, 0] > an[:, 2]), 1, 0)
    i1 = np.where(x_big, np.where(an[:, 0] > an[:, 2], 2, 1), np.where(an[:, 2] > an[:, 1], 1, 2))
    vx, vy, ux, uy = _take(v, i0), _take(v, i1), _take(u, i0), _take(u, i1)
    hit = np.zeros(len(v), dtype=bool)
    for i, j in _EDGES:
        ax, ay = vx[:, j] - vx[:, i], vy[:, j] - vy[:, i]
        for k, m in _EDGES:
            bx, by = ux[:, k] - ux[:, m], uy[:, k] - uy[:, m]
            cx, cy = vx[:, i] - ux[:, k], vy[:, i] - uy[:, k]
            f = ay * bx - ax * by
            d = by * cx - bx * cy
            e = ax * cy - ay * cx
            across = ((f > 0) & (d >= 0) & (d <= f)) | ((f < 0) & (d <= 0) & (d >= f))
            hit |= across & np.where(f > 0, (e >= 0) & (e <= f), (e <= 0) & (e >= f))
    return hit | _corner_in(vx[:, 0], vy[:, 0], ux, uy) | _corner_in(ux[:, 0], uy[:, 0], vx, vy)


def _corner_in(px, py, tx, ty) -> np.ndarray:
    side = []
    for k, m in _EDGES:
        a = ty[:, m] - ty[:, k]
        b = -(tx[:, m] - tx[:, k])
        c = -a * tx[:, k] - b * ty[:, k]
        side.append(a * px + b * py + c)
    d0, d1, d2 = side
    return (d0 * d1 > 0) & (d0 * d2 > 0)
