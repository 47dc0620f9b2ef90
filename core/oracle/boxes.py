"""Random box and straight-extrusion scenes (seeded): boxes, hexagonal prisms, L-shapes and rounded rectangles standing upright, seen from 5-60 degrees above."""

from __future__ import annotations

import math

import numpy as np

from ..geometry.camera import DEFAULT_FOV_DEG, intrinsics_from_fov
from ..geometry.mesh import Mesh
from .scenes import Scene, place_mesh, render, rotation_matrix
from .shapes import in_view

#: The cross-sections :func:`make_box_scene` draws from.
BOX_KINDS = ("box", "hexagon", "l_shape", "rounded")


#: The elevations the targets are measured over (degrees).
ELEVATION_RANGE = (5.0, 60.0)


def make_box_scene(
    seed: int,
    *,
    kind: str | None = None,
    elevation: float | None = None,
    width: int = 320,
    height: int = 240,
    fov_deg: float = DEFAULT_FOV_DEG,
) -> Scene:
    """A random upright straight extrusion (``kind``: one of :data:`BOX_KINDS`, else drawn),
    turned by a random yaw and seen from ``elevation`` degrees above (else drawn from
    :data:`ELEVATION_RANGE`); sizes and aspect are random too. Same seed, same scene."""
    rng = np.random.default_rng(seed)
    if kind is None:
        # boxes are the common case: half of the draws
        kind = str(rng.choice(BOX_KINDS, p=[0.5, 0.5 / 3, 0.5 / 3, 0.5 / 3]))
    if kind not in BOX_KINDS:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(BOX_KINDS)}")
    e = float(rng.uniform(*ELEVATION_RANGE)) if elevation is None else float(elevation)
    a, b = rng.uniform(0.08, 0.25, size=2)
    tall = float(rng.uniform(0.05, 0.3))
    section = {
        "box": lambda: _rectangle(a, b),
        "hexagon": lambda: _regular(6, 0.5 * max(a, b)),
        "l_shape": lambda: _l_shape(a, b, rng.uniform(0.35, 0.6), rng.uniform(0.35, 0.6)),
        "rounded": lambda: _rounded(a, b, 0.25 * min(a, b)),
    }[kind]()
    mesh = extrusion_mesh(section, tall, seed)
    yaw = float(rng.uniform(0, 360))
    mesh = place_mesh(mesh, rotation_matrix(0, yaw, 0), (0, 0, 0))
    name = f"{kind}_{seed}_e{e:.0f}"
    return render(name, in_view(mesh, e), intrinsics_from_fov(width, height, fov_deg))


def extrusion_mesh(section: np.ndarray, tall: float, seed: int = 0) -> Mesh:
    """``section`` ((K, 2) counter-clockwise polygon, star-shaped from its first vertex)
    extruded along -y (up in the camera frame) from 0 to ``tall``: a closed mesh, one
    colour per face."""
    rng = np.random.default_rng(seed + 1)
    k = len(section)
    verts, faces, colors = [], [], []

    def add(points, tris, color):
        base = len(verts)
        verts.extend(points)
        faces.extend([[base + i for i in t] for t in tris])
        colors.extend([color] * len(points))

    def palette():
        return tuple(rng.uniform(0.2, 0.95, size=3))

    # caps: a fan from the first vertex (each section below is star-shaped from it)
    fan = [[0, i, i + 1] for i in range(1, k - 1)]
    top = [(x, -tall, z) for x, z in section]
    bottom = [(x, 0.0, z) for x, z in section]
    add(top, fan, palette())
    add(bottom, [t[::-1] for t in fan], palette())
    side = palette()
    for i in range(k):
        j = (i + 1) % k
        (x0, z0), (x1, z1) = section[i], section[j]
        quad = [(x0, 0.0, z0), (x1, 0.0, z1), (x1, -tall, z1), (x0, -tall, z0)]
        # a new colour at each sharp corner, so faces are told apart in the photo
        turn = _turn(section, i)
        if turn > 20:
            side = palette()
        add(quad, [[0, 1, 2], [0, 2, 3]], side)
    v = np.asarray(verts, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    # Outward winding: positive signed volume.
    p, q, r = (v[f[:, i]] for i in range(3))
    if np.einsum("ij,ij->i", p, np.cross(q, r)).sum() < 0:
        f = f[:, ::-1].copy()
    return Mesh(v, f, np.asarray(colors, dtype=np.float64))


def _turn(section: np.ndarray, i: int) -> float:
    """The polygon's turn at vertex ``i`` in degrees."""
    a = section[i] - section[i - 1]
    b = section[(i + 1) % len(section)] - section[i]
    cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    return math.degrees(math.acos(float(np.clip(cos, -1, 1))))


def _rectangle(a: float, b: float) -> np.ndarray:
    return np.array([[-a, -b], [a, -b], [a, b], [-a, b]]) / 2


def _regular(n: int, r: float) -> np.ndarray:
    t = np.arange(n) * 2 * math.pi / n
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _l_shape(a: float, b: float, fa: float, fb: float) -> np.ndarray:
    """An L: an a x b rectangle with its corner (fa a, fb b) cut away; the first vertex
    is the inner corner, which sees the whole L."""
    ca, cb = fa * a, fb * b
    outline = [(0, 0), (a, 0), (a, cb), (ca, cb), (ca, b), (0, b)]
    start = outline.index((ca, cb))
    pts = outline[start:] + outline[:start]
    return np.asarray(pts, dtype=np.float64) - np.array([a / 2, b / 2])


def _rounded(a: float, b: float, r: float, steps: int = 8) -> np.ndarray:
    """A rectangle a x b with corners rounded by radius r (convex: any vertex sees all)."""
    pts = []
    for cx, cy, t0 in (
        (a / 2 - r, b / 2 - r, 0),
        (-a / 2 + r, b / 2 - r, 90),
        (-a / 2 + r, -b / 2 + r, 180),
        (a / 2 - r, -b / 2 + r, 270),
    ):
        for t in np.radians(t0 + np.linspace(0, 90, steps)):
            pts.append((cx + r * math.cos(t), cy + r * math.sin(t)))
    return np.asarray(pts, dtype=np.float64)
