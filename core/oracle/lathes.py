"""Seeded random lathe objects (vases, bottles, eggs, domes, points, faceted primitives) and non-lathe ones, seen as product photos."""

from __future__ import annotations

import math

import numpy as np

from ..geometry.camera import DEFAULT_FOV_DEG, intrinsics_from_fov
from ..geometry.mesh import Mesh
from .scenes import Scene, _toy_scene, place_mesh, render, rotation_matrix
from .shapes import _blob, _chair, _upright_box, lathe

#: The profile families :func:`random_lathe` draws from.
FAMILIES = ("vase", "bottle", "egg", "dome", "pointed", "spheroid", "faceted")


#: The non-lathe objects :func:`random_other` draws from (the false-use rate).
OTHERS = ("box_tilted", "blob", "chair", "toy")


def random_lathe(
    seed: int, *, width: int = 640, height: int = 480, family: str | None = None, **view
) -> Scene:
    """A random lathe object (one of :data:`FAMILIES`, by ``seed``) in a random view.

    The view (see :func:`random_view`): elevation 0-60 degrees, 60 pixels tall to the full
    frame, its axis tilted up to 10 degrees; ``view`` overrides any of those. The scene's
    name says the family and the view (``egg-7 e=3 h=210px t=4``).
    """
    rng = np.random.default_rng(seed)
    family = family or FAMILIES[seed % len(FAMILIES)]
    segments = 96
    if family == "faceted":
        profile, segments = _faceted(rng)
    else:
        profile = _PROFILES[family](rng)
    colour = rng.uniform(0.15, 0.95, 3)
    colour_b = rng.uniform(0.15, 0.95, 3)
    mesh = lathe(profile, tuple(colour), segments=segments, color_b=tuple(colour_b))
    return _photograph(f"{family}-{seed}", mesh, rng, width, height, **view)


def random_other(seed: int, *, width: int = 640, height: int = 480, **view) -> Scene:
    """A random non-lathe object (one of :data:`OTHERS`, by ``seed``) in a random view."""
    rng = np.random.default_rng(10_000 + seed)
    name = OTHERS[seed % len(OTHERS)]
    builder = {"box_tilted": _upright_box, "blob": _blob, "chair": _chair, "toy": _toy}[name]
    mesh = builder()
    turn = rotation_matrix(0, float(rng.uniform(0, 360)), 0)
    mesh = place_mesh(mesh, turn, (0, 0, 0))
    return _photograph(f"{name}-{seed}", mesh, rng, width, height, **view)


def random_view(rng: np.random.Generator) -> dict:
    """Elevation (degrees), height in the frame (share of the image's height, 60 px to
    full at 480), axis tilt (degrees) and the tilt's direction (degrees)."""
    return {
        "elevation": float(rng.uniform(0.0, 60.0)),
        "fill": float(rng.uniform(60.0 / 480.0, 0.92)),
        "tilt": float(rng.uniform(0.0, 10.0)),
        "tilt_towards": float(rng.uniform(0.0, 360.0)),
    }


def _photograph(name, mesh: Mesh, rng, width, height, **view) -> Scene:
    """``mesh`` (upright along -y) tilted, seen from above by the view's elevation and
    placed so that it fills the view's share of the frame's height (and fits its width)."""
    drawn = random_view(rng)
    drawn.update(view)
    e, fill, tilt, towards = (drawn[k] for k in ("elevation", "fill", "tilt", "tilt_towards"))
    v = mesh.vertices
    mesh = Mesh(v - 0.5 * (v.min(axis=0) + v.max(axis=0)), mesh.faces, mesh.colors)
    # the axis tilted by `tilt` towards a direction about the vertical, then the elevation
    lean = rotation_matrix(
        tilt * math.cos(math.radians(towards)), 0, tilt * math.sin(math.radians(towards))
    )
    mesh = place_mesh(mesh, rotation_matrix(e, 0, 0) @ lean, (0.0, 0.0, 0.0))
    intrinsics = intrinsics_from_fov(width, height, DEFAULT_FOV_DEG)
    size = float(np.ptp(mesh.vertices, axis=0).max())
    distance = 3.0 * size
    for _ in range(4):  # the projected extent settles in a few steps
        u, w = intrinsics.project(mesh.vertices + [0.0, 0.0, distance])
        scale = max(np.ptp(w) / (fill * height), np.ptp(u) / (0.95 * width))
        distance = max(distance * scale, 0.6 * size + 1e-3)
    # a little off the centre, but within the frame
    u, w = intrinsics.project(mesh.vertices + [0.0, 0.0, distance])
    room_u = max(0.0, (width - np.ptp(u)) / 2 - 4)
    room_v = max(0.0, (height - np.ptp(w)) / 2 - 4)
    du = rng.uniform(-0.5, 0.5) * room_u - (u.min() + u.max() - width) / 2
    dv = rng.uniform(-0.5, 0.5) * room_v - (w.min() + w.max() - height) / 2
    shift = (du * distance / intrinsics.fx, dv * distance / intrinsics.fy, distance)
    mesh = place_mesh(mesh, np.eye(3), shift)
    label = f"{name} e={e:.0f} h={fill * height:.0f}px t={tilt:.0f}" if "e=" not in name else name
    return render(label, mesh, intrinsics)


def _toy() -> Mesh:
    """The oracle toy, upright at the origin."""
    m = _toy_scene()
    return Mesh(m.vertices - m.vertices.mean(axis=0), m.faces, m.colors)


# Profiles: (radius, height) from the bottom to the top, heights from 0, about a unit tall.


def _smooth(rng, n: int, lo: float, hi: float) -> np.ndarray:
    """A smooth random curve on [0, 1] (n samples) between ``lo`` and ``hi``."""
    t = np.linspace(0.0, 1.0, n)
    curve = np.zeros(n)
    for k in range(1, 4):
        curve += rng.normal(0, 1.0 / k) * np.sin(math.pi * (k * t + rng.uniform(0, 1)))
    curve = (curve - curve.min()) / max(float(np.ptp(curve)), 1e-9)
    return lo + (hi - lo) * curve


def _vase(rng) -> list:
    tall = rng.uniform(0.8, 1.4)
    base = rng.uniform(0.18, 0.4)
    h = np.linspace(0.0, tall, 32)
    r = base * _smooth(rng, len(h), rng.uniform(0.45, 0.8), 1.0)
    return [(0.0, 0.0), *zip(r, h, strict=True), (0.0, tall)]


def _bottle(rng) -> list:
    body_r = rng.uniform(0.15, 0.3)
    body_h = rng.uniform(0.45, 0.75)
    neck_r = body_r * rng.uniform(0.25, 0.5)
    shoulder = rng.uniform(0.08, 0.25)
    neck_h = rng.uniform(0.1, 0.3)
    prof = [(0.0, 0.0), (body_r * 0.93, 0.0), (body_r, 0.02), (body_r, body_h)]
    t = np.linspace(0.0, 1.0, 10)[1:]
    curve = neck_r + (body_r - neck_r) * 0.5 * (1 + np.cos(math.pi * t))
    prof += list(zip(curve, body_h + shoulder * t, strict=True))
    top = body_h + shoulder + neck_h
    prof += [(neck_r, top)]
    if rng.random() < 0.5:  # a lip
        prof += [(neck_r * 1.15, top + 0.005), (neck_r * 1.15, top + 0.03)]
        top += 0.03
    return prof + [(0.0, top)]


def _egg(rng) -> list:
    tall = rng.uniform(0.8, 1.4)
    wide = rng.uniform(0.25, 0.45)
    lean = rng.uniform(-0.35, 0.35)  # which end is the pointed one, and how much
    s = np.linspace(-1.0, 1.0, 40)
    r = wide * np.sqrt(np.clip(1 - s**2, 0, None)) * (1 + lean * s)
    return list(zip(r, (s + 1) / 2 * tall, strict=True))


def _dome(rng) -> list:
    wide = rng.uniform(0.2, 0.45)
    wall = rng.uniform(0.2, 0.8)
    cap = wide * rng.uniform(0.4, 1.2)  # a flattened, round or raised dome
    prof = [(0.0, 0.0), (wide, 0.0), (wide, wall)]
    a = np.linspace(0.0, math.pi / 2, 16)[1:]
    prof += list(zip(wide * np.cos(a), wall + cap * np.sin(a), strict=True))
    return prof


def _pointed(rng) -> list:
    wide = rng.uniform(0.15, 0.4)
    wall = rng.uniform(0.2, 0.8)
    tip = rng.uniform(0.2, 0.7)
    bulge = rng.uniform(0.0, 1.0)  # a cone (0) to an ogive (1)
    t = np.linspace(0.0, 1.0, 16)[1:]
    r = wide * ((1 - t) * (1 - bulge) + np.sqrt(np.clip(1 - t**2, 0, None)) * bulge)
    return [(0.0, 0.0), (wide, 0.0), (wide, wall), *zip(r, wall + tip * t, strict=True)]


def _spheroid(rng) -> list:
    wide = rng.uniform(0.3, 0.5)
    tall = wide * 2 * rng.uniform(0.7, 1.3)
    a = np.linspace(-math.pi / 2, math.pi / 2, 33)
    return list(zip(wide * np.cos(a), tall / 2 * (1 + np.sin(a)), strict=True))


def _faceted(rng) -> tuple[list, int]:
    """A subdivided primitive: an egg, a dome or a spheroid of few rings and segments."""
    family = ("egg", "dome", "spheroid", "pointed")[int(rng.integers(4))]
    prof = np.asarray(_PROFILES[family](rng))
    rings = int(rng.integers(5, 12))
    keep = np.unique(np.r_[0, np.linspace(0, len(prof) - 1, rings).round().astype(int)])
    return [tuple(x) for x in prof[keep]], int(rng.integers(8, 20))


_PROFILES = {
    "vase": _vase,
    "bottle": _bottle,
    "egg": _egg,
    "dome": _dome,
    "pointed": _pointed,
    "spheroid": _spheroid,
}
