"""Exact tests of triangle pairs in float64: do they cross, touch or nearly touch (as Open3D's float test would call them)?"""

from __future__ import annotations

import numpy as np

#: Corners this near another face's plane count as on it, in the units of
#: triangles_cross (Moeller's test, as Open3D runs it, with a wider margin).
TOUCH = 1e-4


#: A point this near a face (share of the pair's spread) counts as on it: Open3D's
#: float test calls such near misses of thin faces crossings.
NEAR = 2e-3


#: Faces nearer each other than this share of the surface's size (and sharing no
#: vertex) touch, and count as crossing: Open3D's test flags such near misses (one
#: was 5e-6 of the object apart), and a valid volume should not hang on rounding.
GAP = 1e-5


def triangles_cross(t1: np.ndarray, t2: np.ndarray, span: float) -> np.ndarray:
    """Whether triangles t1[i] and t2[i] ((K, 3, 3) each) meet (:func:`meet`), or Open3D's
    float test says they cross: it calls some nearly coplanar faces lying side by side
    crossing, and a user's check must agree with the report (:mod:`core.tritri`)."""
    from .tritri import open3d_flags

    hit, separate = meet(t1, t2, span)
    # Where one face's corners all lie more than TOUCH to one side of the other's plane
    # (Open3D's normalisation), Open3D's test, whose margin is smaller, says "apart" too.
    rest = np.flatnonzero(~hit & ~separate)
    hit[rest] = open3d_flags(t1[rest], t2[rest])
    return hit


def meet(t1: np.ndarray, t2: np.ndarray, span: float) -> tuple[np.ndarray, np.ndarray]:
    """Whether closed triangles t1[i] and t2[i] ((K, 3, 3) each) have a point in common,
    and whether one lies wholly more than :data:`TOUCH` to one side of the other's plane
    (scaled as below).

    Each pair is scaled to unit spread per axis, as Open3D does, and faces nearer
    than :data:`TOUCH` and :data:`NEAR` count as touching, and so do faces within
    :data:`GAP` x ``span`` (the surface's size) of each other: Open3D's float test calls
    some such near misses crossings, and a valid volume should not hang on rounding.
    """
    gap = GAP * span
    apart_real = _apart(t1, t2, gap) | _apart(t2, t1, gap)
    both = np.concatenate([t1, t2], axis=1)
    mu = both.mean(axis=1, keepdims=True)
    sigma = np.sqrt(((both - mu) ** 2).sum(axis=1, keepdims=True) / 5.0) + 1e-12
    o1, o2 = t1, t2
    t1, t2 = (t1 - mu) / sigma, (t2 - mu) / sigma
    eps = TOUCH
    n1 = np.cross(t1[:, 1] - t1[:, 0], t1[:, 2] - t1[:, 0])
    n2 = np.cross(t2[:, 1] - t2[:, 0], t2[:, 2] - t2[:, 0])
    d2 = np.einsum("kij,kj->ki", t2 - t1[:, :1], n1)  # t2's corners above t1's plane
    d1 = np.einsum("kij,kj->ki", t1 - t2[:, :1], n2)
    separate = _one_side(d2, eps) | _one_side(d1, eps)
    out = np.zeros(len(t1), dtype=bool)
    # (faces separated here but nearer than the gap may still touch by the edge tests'
    # NEAR margin)
    todo = np.flatnonzero(~(separate & apart_real))
    if len(todo):
        t1, t2, n1, n2, d1, d2 = t1[todo], t2[todo], n1[todo], n2[todo], d1[todo], d2[todo]
        coplanar = np.all(np.abs(d2) <= eps, axis=1) | np.all(np.abs(d1) <= eps, axis=1)
        hit = np.zeros(len(todo), dtype=bool)
        for k in range(3):
            hit |= _edge_meets(
                t1[:, k], t1[:, (k + 1) % 3], d1[:, k], d1[:, (k + 1) % 3], t2, n2, eps
            )
            hit |= _edge_meets(
                t2[:, k], t2[:, (k + 1) % 3], d2[:, k], d2[:, (k + 1) % 3], t1, n1, eps
            )
        if coplanar.any():
            hit[coplanar] = _coplanar_overlap(t1[coplanar], t2[coplanar], n1[coplanar], eps)
        out[todo] = hit
    # Faces that do not cross but come within GAP of the surface's size touch. Not those
    # more than that to one side of the other's plane, nor those whose boxes are apart.
    near = ~out & ~apart_real
    near[near] = ~_boxes_apart(o1[near], o2[near], gap)
    near = np.flatnonzero(near)
    if len(near):
        out[near] = _triangle_distance(o1[near], o2[near]) <= gap
    return out, separate


def _one_side(d: np.ndarray, eps: float) -> np.ndarray:
    """Whether all three heights ``d[i]`` are above ``eps`` or all below ``-eps``."""
    a, b, c = d[:, 0], d[:, 1], d[:, 2]
    return ((a > eps) & (b > eps) & (c > eps)) | ((a < -eps) & (b < -eps) & (c < -eps))


def boxes(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least and greatest corner of each triangle ((K, 3, 3) -> two (K, 3)), corner by
    corner: numpy's reductions over an axis of three are slow."""
    lo = np.minimum(np.minimum(tri[:, 0], tri[:, 1]), tri[:, 2])
    hi = np.maximum(np.maximum(tri[:, 0], tri[:, 1]), tri[:, 2])
    return lo, hi


def _boxes_apart(t1: np.ndarray, t2: np.ndarray, gap: float) -> np.ndarray:
    """Whether the boxes of t1[i] and t2[i] are more than ``gap`` apart along some axis."""
    lo1, hi1 = boxes(t1)
    lo2, hi2 = boxes(t2)
    return ((lo1 - hi2 > gap) | (lo2 - hi1 > gap)).any(axis=1)


def _apart(t1: np.ndarray, t2: np.ndarray, gap: float) -> np.ndarray:
    """Whether all of t2[i]'s corners lie more than ``gap`` on one side of t1[i]'s plane."""
    n = np.cross(t1[:, 1] - t1[:, 0], t1[:, 2] - t1[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-300
    h = np.einsum("kij,kj->ki", t2 - t1[:, :1], n)
    return np.all(h > gap, axis=1) | np.all(h < -gap, axis=1)


def _triangle_distance(t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """Least distance between triangles t1[i] and t2[i] that do not cross ((K, 3, 3) each):
    the least of each corner's distance to the other triangle and each edge pair's."""
    best = np.full(len(t1), np.inf)
    for a, b in ((t1, t2), (t2, t1)):
        n, ok = _unit_normals(b)
        for k in range(3):
            best = np.minimum(best, _point_triangle(a[:, k], b, n, ok))
    # the nine edge pairs at once
    i, j = np.repeat(np.arange(3), 3), np.tile(np.arange(3), 3)
    k = len(t1)
    d = _segments(
        t1[:, i].reshape(-1, 3),
        t1[:, (i + 1) % 3].reshape(-1, 3),
        t2[:, j].reshape(-1, 3),
        t2[:, (j + 1) % 3].reshape(-1, 3),
    )
    return np.minimum(best, d.reshape(k, 9).min(axis=1))


def _unit_normals(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals of tri[i] (zero where degenerate), and where they are defined."""
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(n, axis=1)
    ok = length > 0
    return n / np.where(ok, length, 1.0)[:, None], ok


def _point_triangle(p: np.ndarray, tri: np.ndarray, n: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Distance from p[i] to the plane of tri[i] (unit normal ``n``, defined where ``ok``)
    where it projects inside, else infinity (the edges' distances are the segments' case)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    h = np.einsum("ij,ij->i", p - a, n)
    q = p - h[:, None] * n
    inside = ok.copy()
    for u, v in ((a, b), (b, c), (c, a)):
        inside &= np.einsum("ij,ij->i", np.cross(v - u, q - u), n) >= 0
    return np.where(inside, np.abs(h), np.inf)


def _segments(p1, q1, p2, q2) -> np.ndarray:
    """Least distance between segments p1[i]-q1[i] and p2[i]-q2[i] (Ericson, 5.1.9)."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a = np.einsum("ij,ij->i", d1, d1)
    e = np.einsum("ij,ij->i", d2, d2)
    f = np.einsum("ij,ij->i", d2, r)
    c = np.einsum("ij,ij->i", d1, r)
    b = np.einsum("ij,ij->i", d1, d2)
    denom = a * e - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(denom > 1e-300, np.clip((b * f - c * e) / denom, 0, 1), 0.0)
        t = np.where(e > 1e-300, (b * s + f) / e, 0.0)
        s = np.where(t < 0, np.where(a > 1e-300, np.clip(-c / a, 0, 1), 0.0), s)
        s = np.where(t > 1, np.where(a > 1e-300, np.clip((b - c) / a, 0, 1), 0.0), s)
        t = np.clip(t, 0, 1)
    return np.linalg.norm(p1 + d1 * s[:, None] - (p2 + d2 * t[:, None]), axis=1)


def _edge_meets(s, e, ds, de, tri, n, eps) -> np.ndarray:
    """Whether segment s-e (signed heights ds, de over ``tri``'s plane) meets ``tri``."""
    crosses = ((ds <= eps) & (de >= -eps)) | ((ds >= -eps) & (de <= eps))
    denom = ds - de
    flat = np.abs(denom) <= eps  # lies in the plane: the coplanar test handles it
    w = np.where(flat, 0.0, ds / np.where(flat, 1.0, denom))
    x = s + (e - s) * np.clip(w, 0.0, 1.0)[:, None]
    inside = np.ones(len(s), dtype=bool)
    scale = np.linalg.norm(n, axis=1)
    for k in range(3):
        a, b = tri[:, k], tri[:, (k + 1) % 3]
        side = np.einsum("ki,ki->k", np.cross(b - a, x - a), n)
        inside &= side >= -NEAR * np.linalg.norm(b - a, axis=1) * scale
    return crosses & ~flat & inside


def _coplanar_overlap(t1, t2, n, eps) -> np.ndarray:
    """Overlap of triangles in one plane: an edge pair crosses or a corner lies inside."""
    axis = np.argmax(np.abs(n), axis=1)
    keep = np.array([[1, 2], [0, 2], [0, 1]])[axis]
    rows = np.arange(len(t1))[:, None]
    p = np.stack([t1[rows, k, keep] for k in range(3)], axis=1)  # (K, 3, 2)
    q = np.stack([t2[rows, k, keep] for k in range(3)], axis=1)

    def cross2(o, a, b):
        return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (
            b[..., 0] - o[..., 0]
        )

    def inside(pts, tri):
        s = [cross2(tri[:, k], tri[:, (k + 1) % 3], pts) for k in range(3)]
        return (np.all([x >= -eps for x in s], axis=0)) | (np.all([x <= eps for x in s], axis=0))

    hit = np.zeros(len(t1), dtype=bool)
    for i in range(3):
        hit |= inside(p[:, i], q) | inside(q[:, i], p)
        for j in range(3):
            a, b = p[:, i], p[:, (i + 1) % 3]
            c, d = q[:, j], q[:, (j + 1) % 3]
            d1, d2 = cross2(a, b, c), cross2(a, b, d)
            d3, d4 = cross2(c, d, a), cross2(c, d, b)
            hit |= (d1 * d2 <= 0) & (d3 * d4 <= 0) & ~((d1 == 0) & (d2 == 0))
    return hit
