"""The profile of a surface of revolution: radius per height, the rim, closed ends and a ring's round underside, turned about the axis."""

from __future__ import annotations

import math

import numpy as np

from .front import Axis, Front


def turned_body(
    front: Front,
    axis: Axis,
    frame: dict,
    body,
    idx,
    angles,
    rough: bool,
    ring: bool = False,
    within=None,
):
    """The ``body``'s points ``idx`` turned about ``axis`` by ``angles``, with the closed
    ends and a ring's round underside, relative to the axis point; and whether the
    underside was added. ``frame`` is :func:`core.shape_prior.axis.about` for that axis;
    ``rough``: the depth is too rough for its normals (radii from the points' positions);
    ``ring``: the photo shows a hole about the axis (no ends are closed); ``within``:
    points of the front's frame -> whether each projects inside the photo's outline."""
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
    under, under_normals = round_underside(h[body], r[body], a, e1, e2, cell)
    ends, end_normals = np.zeros((0, 3)), np.zeros((0, 3))
    if not ring and not len(under):
        inside = None
        if within is not None:

            def inside(q):
                return within(q + axis.point)

            inside.covered = lambda near, far: within.covered(near + axis.point, far + axis.point)
        ends, end_normals = _closed_ends(h, r, body, a, e1, e2, cell, inside)
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


#: The slices (each ``cell`` high) at a profile's end that say how it goes on beyond it.
END_CELLS = 6


#: A cap closing an end reaches at most this many times the end's radius beyond it (a
#: prolate egg's tip).
END_REACH = 2.0


#: An end is round, by its profile alone, where the profile there turns toward the axis by
#: more than this (degrees from the axis's perpendicular) or curves in (an ellipse about
#: the axis); else the outline says how far the object goes on.
END_TURN_DEG = 25.0


#: A wall's end goes on where the silhouette covers this share of where a cylinder going on
#: beyond it would be drawn (a can's flat base: nothing but pixels rounded at its edge).
END_GOES_ON = 0.1


#: ... and bends off the curve of the slices before it (a corner) where its last slice lies
#: this many slice heights off that curve (a ball's or an egg's, exact: below 0.05).
END_CORNER = 0.25


def _end_profile(h, r, end: float, sign: float, cell: float):
    """How the seen profile goes on beyond its ``end`` (``sign``: -1 the lower, +1 the
    upper): (the height and radius of its last slice, the slope there (dr per unit of
    height outward, 0 where it widens), how far beyond it the profile reaches the axis or
    None, and whether it clearly turns in there), or None with too few slices.

    r^2 as a quadratic in h, fitted to the median radii of the last :data:`END_CELLS`
    slices, is an ellipse centred on the axis: exact for a ball or a spheroid, close for a
    dome's end; where the profile turns in without curving so (an egg's or a cone's end),
    the sphere centred on the axis tangent to it there.
    """
    level = np.floor(sign * (end - h) / cell).astype(np.int64)  # 0 at the end, inward
    heights, radii = [], []
    for k in range(END_CELLS):
        at = level == k
        if at.sum() >= 5:
            heights.append(float(np.median(h[at])))
            radii.append(float(np.median(r[at])))
    if len(heights) < 4 or radii[0] <= 0:
        return None
    start, radius = heights[0], radii[0]
    if len(heights) == END_CELLS:
        # A corner: the end bends off the wall the slices before it follow (the chamfer or
        # fillet at a can's or a bottle's flat base), where a ball's or an egg's end goes
        # on along its curve. That end is a wall's, however fast it turns.
        inner = np.polyfit(heights[2:], np.square(radii[2:]), 2)
        expected = math.sqrt(max(float(np.polyval(inner, start)), 0.0))
        wall = abs(np.polyfit(heights[2:], radii[2:], 1)[0]) < math.tan(math.radians(END_TURN_DEG))
        if wall and abs(expected - radius) > END_CORNER * cell:
            return start, radius, 0.0, None, False
    poly = np.polyfit(heights, np.square(radii), 2)
    slope = sign * float(np.polyval(np.polyder(poly), start)) / (2 * radius)
    if poly[0] >= 0 or np.polyval(poly, start) <= 0:
        slope = sign * float(np.polyfit(heights, radii, 1)[0])
        if -slope < math.tan(math.radians(END_TURN_DEG)):
            return start, radius, min(slope, 0.0), None, False
        centre = start + sign * radius * slope  # the tangent sphere's, on the axis
        poly = np.array([-1.0, 2 * centre, radius**2 * (1 + slope**2) - centre**2])
    beyond = [
        sign * (float(x.real) - start)
        for x in np.roots(poly)
        if abs(x.imag) < 1e-9 and sign * (x.real - start) > 0
    ]
    reach = min(beyond) if beyond else None
    # round where it turns in, or curves in (a ball seen down to about its equator), but
    # not where it still widens (a vase flaring to its base)
    turning = -slope >= math.tan(math.radians(END_TURN_DEG)) or (
        slope <= 0 and reach is not None and reach <= END_REACH * radius
    )
    return start, radius, min(slope, 0.0), reach, turning


def _cap(start, radius, slope, reach, sign, cell):
    """The rings of a cap from (``start``, ``radius``) with ``slope`` (dr per unit of height
    outward) to the axis ``reach`` beyond: r^2 the quadratic with those three values.
    (heights, radii, normals along the axis, normals away from it)."""
    c = -(radius**2 + 2 * radius * slope * reach) / reach**2
    x = np.linspace(0.0, reach, max(3, int(np.ceil(4 * reach / cell))) + 1)[1:]
    p = radius**2 + 2 * radius * slope * x + c * x**2
    rs = np.sqrt(np.maximum(p, 0.0))
    nh, nr = -sign * (2 * radius * slope + 2 * c * x), 2 * rs
    norm = np.maximum(np.hypot(nh, nr), 1e-12)
    return start + sign * x, rs, nh / norm, nr / norm


def _closed_ends(h, r, body, a, e1, e2, cell, within=None):
    """Caps closing the profile's ends where it ends away from the axis (relative to it).

    The camera rarely sees an object's base. Where the seen profile already turns toward
    the axis (a ball, an egg, a dome seen from above), it is closed round as it goes on
    (:func:`_end_profile`; for a ball, its own sphere), read from the profile's radii:
    the normals there, at the outline, are the least reliable of all. Where it ends on a
    wall, the profile cannot tell a can's flat base from an egg seen only down to its
    equator; the outline can: where a ring as wide just beyond the end still projects
    inside it (``within``: points relative to the axis point -> whether each projects
    inside the photo's outline), the object goes on, and its cap reaches as far as the
    outline lets it. No round cap may leave the outline either (a vase narrowing to its flat base seen from
    the side). A cap with no room left is a flat disc. The copies the camera did see are
    dropped later, like any other.
    """
    out, normals = [np.zeros((0, 3))], [np.zeros((0, 3))]
    hb, rb = h[body], r[body]
    step = cell / 2

    def rings(heights, radii):
        for ph, pr in zip(heights, radii, strict=True):
            t = np.linspace(0, 2 * math.pi, max(1, int(2 * math.pi * pr / step)), False)
            around = np.outer(np.cos(t), e1) + np.outer(np.sin(t), e2)
            yield pr * around + ph * a, around

    for sign in (-1.0, 1.0):
        end = float(hb.max() if sign > 0 else hb.min())
        near = np.abs(hb - end) <= 2 * cell
        radius = float(np.median(rb[near])) if near.any() else 0.0
        if radius <= 2 * cell:
            continue
        shape = _end_profile(hb, rb, end, sign, cell)
        if shape is not None:
            start, radius0, slope, reach, turning = shape
            if not turning:
                # a wall: does the outline show the object going on beyond its end? (a can
                # standing on its flat base shows nothing beyond it, an egg seen down to
                # its equator the rest of its outline)
                step_in = [end - sign * 2 * cell, end]
                near = np.concatenate([q for q, _ in rings(step_in, [radius0] * 2)])
                far = np.concatenate([near, next(rings([end + sign * 2 * radius0], [radius0]))[0]])
                if within is None or within.covered(near, far) < END_GOES_ON:
                    reach = 0.0
            reach = min(END_REACH * radius0 if reach is None else reach, END_REACH * radius0)
            while reach >= cell:
                hs, rs, nh, nr = _cap(start, radius0, slope, reach, sign, cell)
                made = list(rings(hs, rs))
                if within is None or all(np.mean(within(q)) >= 0.95 for q, _ in made):
                    break
                reach *= 0.85
            if reach >= cell:
                for (q, around), h_, r_ in zip(made, nh, nr, strict=True):
                    out.append(q)
                    normals.append(r_ * around + h_ * a)
                continue
        radii = np.arange(step / 2, radius, step)
        disc = np.concatenate([q for q, _ in rings(np.full(len(radii), end), radii)])
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
