"""Exact triangle tests in rational arithmetic on float coordinates: the referee of the float tests (Open3D's, ours), for tests and benchmarks."""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def _orient3(a, b, c, d) -> int:
    ax, ay, az = a[0] - d[0], a[1] - d[1], a[2] - d[2]
    bx, by, bz = b[0] - d[0], b[1] - d[1], b[2] - d[2]
    cx, cy, cz = c[0] - d[0], c[1] - d[1], c[2] - d[2]
    det = ax * (by * cz - bz * cy) - ay * (bx * cz - bz * cx) + az * (bx * cy - by * cx)
    return (det > 0) - (det < 0)


def _orient2(a, b, c) -> int:
    det = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (det > 0) - (det < 0)


def _segment_meets_2d(p, q, tri) -> bool:
    s = [_orient2(tri[k], tri[(k + 1) % 3], p) for k in range(3)]
    if all(x >= 0 for x in s) or all(x <= 0 for x in s):
        return True
    for k in range(3):
        a, b = tri[k], tri[(k + 1) % 3]
        d1, d2 = _orient2(p, q, a), _orient2(p, q, b)
        d3, d4 = _orient2(a, b, p), _orient2(a, b, q)
        if d1 * d2 <= 0 and d3 * d4 <= 0:
            if d1 == d2 == d3 == d4 == 0:  # collinear: do the intervals overlap?
                axis = 0 if a[0] != b[0] or p[0] != q[0] else 1
                lo1, hi1 = sorted((p[axis], q[axis]))
                lo2, hi2 = sorted((a[axis], b[axis]))
                if hi1 >= lo2 and hi2 >= lo1:
                    return True
                continue
            return True
    return False


def _segment_meets(p, q, tri) -> bool:
    a, b, c = tri
    op, oq = _orient3(a, b, c, p), _orient3(a, b, c, q)
    if op * oq > 0:
        return False
    if op == 0 and oq == 0:
        n = [
            (b[1] - a[1]) * (c[2] - a[2]) - (b[2] - a[2]) * (c[1] - a[1]),
            (b[2] - a[2]) * (c[0] - a[0]) - (b[0] - a[0]) * (c[2] - a[2]),
            (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]),
        ]
        drop = max(range(3), key=lambda k: abs(n[k]))
        keep = [k for k in range(3) if k != drop]
        flat = [tuple(x[k] for k in keep) for x in (p, q, a, b, c)]
        return _segment_meets_2d(flat[0], flat[1], flat[2:])
    s = [_orient3(p, q, tri[k], tri[(k + 1) % 3]) for k in range(3)]
    return all(x >= 0 for x in s) or all(x <= 0 for x in s)


def exactly_meet(t1: np.ndarray, t2: np.ndarray) -> bool:
    """Whether closed triangles t1, t2 ((3, 3) each) have a point in common, in exact
    rational arithmetic on their float coordinates (degenerate triangles not handled)."""
    p = [tuple(Fraction(float(x)) for x in row) for row in t1]
    q = [tuple(Fraction(float(x)) for x in row) for row in t2]
    for a, b in ((p, q), (q, p)):
        for k in range(3):
            if _segment_meets(a[k], a[(k + 1) % 3], b):
                return True
    return False
