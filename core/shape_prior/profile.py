"""The profile of a surface of revolution: radius per height, the rim, flat ends and a ring's round underside, turned about the axis."""

from __future__ import annotations

import math

import numpy as np

from .front import Axis, Front


def turned_body(front: Front, axis: Axis, frame: dict, body, idx, angles, rough: bool):
    """The ``body``'s points ``idx`` turned about ``axis`` by ``angles``, with the flat ends
    and a ring's round underside, relative to the axis point; and whether the underside
    was added. ``frame`` is :func:`core.shape_prior.axis.about` for that axis; ``rough``:
    the depth is too rough for its normals (radii from the points' positions)."""
    normals, cell, a = front.normals, front.cell, axis.direction
    rel, h, radial, r = frame["rel"], frame["h"], frame["radial"], frame["r"]
    e1, e2 = frame["e1"], frame["e2"]
    # Each copy at the radius its height's outward side reaches (see _rim_radii); for
    # rough depth, whose radii scatter by a step or more, at its height's median radius.
    if rough:
        grow = (profile_radius(h, r, cell) - r)[idx]
    else:
        grow = (_rim_radii(h, r, normals, radial, a, body, cell) - r)[idx]
    src = rel[idx] + radial[idx] / np.maximum(r[idx], 1e-12)[:, None] * grow[:, None]
    q = _turn(src, a, angles).reshape(-1, 3)
    qn = _turn(normals[idx], a, angles).reshape(-1, 3)
    ends, end_normals = _flat_ends(h[body], r[body], a, e1, e2, cell)
    under, under_normals = round_underside(h[body], r[body], a, e1, e2, cell)
    q = np.concatenate([q, ends, under])
    qn = np.concatenate([qn, end_normals, under_normals])
    return q, qn, len(under) > 0


def profile_radius(h: np.ndarray, r: np.ndarray, cell: float) -> np.ndarray:
    """R(h) at each point: the median radius of its height (``cell`` high slices, read
    linearly between the slices' centres)."""
    level = np.floor((h - h.min()) / cell).astype(np.int64)
    order = np.lexsort((r, level))
    counts = np.bincount(level)
    filled = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    median = r[order][starts[filled] + (counts[filled] - 1) // 2]
    return np.interp(h, h.min() + (filled + 0.5) * cell, median)


def profile_residual(h: np.ndarray, r: np.ndarray, cell: float) -> np.ndarray:
    """|r - R(h)|: each point's distance from its height's median radius."""
    return np.abs(r - profile_radius(h, r, cell))


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


def round_underside(h, r, a, e1, e2, cell):
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


def _turn(v: np.ndarray, axis: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(K, 3) vectors turned about unit ``axis`` by each angle: (K, T, 3) (Rodrigues)."""
    cos = np.cos(angles)[None, :, None]
    sin = np.sin(angles)[None, :, None]
    cross = np.cross(axis, v)[:, None, :]
    along = (v @ axis)[:, None, None] * axis[None, None, :]
    return v[:, None, :] * cos + cross * sin + along * (1 - cos)
