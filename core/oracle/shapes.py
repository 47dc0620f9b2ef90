"""Whole-object oracle scenes: lathe objects and others standing upright, seen from above as in a product photo."""

from __future__ import annotations

import math

import numpy as np

from ..errors import OptionError
from ..geometry.camera import DEFAULT_FOV_DEG, intrinsics_from_fov
from ..geometry.mesh import Mesh
from .scenes import (
    Scene,
    box_mesh,
    merge_meshes,
    place_mesh,
    render,
    rotation_matrix,
    sphere_mesh,
    torus_mesh,
)

#: Whole-object scenes (see :func:`make_shape_scene`): lathe objects first, then others.
LATHE_SCENES = ("bottle", "vase", "can", "torus_tilted")


LATHE_PART_SCENES = ("cup",)


OTHER_SCENES = ("box_tilted", "blob", "chair")


SHAPE_SCENES = LATHE_SCENES + LATHE_PART_SCENES + OTHER_SCENES


#: How far a product photographer's camera looks down on the object, in degrees.
SHAPE_ELEVATIONS = {
    "bottle": 15,
    "vase": 25,
    "can": 30,
    "torus_tilted": 35,
    "cup": 20,
    "box_tilted": 25,
    "blob": 10,
    "chair": 20,
}


def make_shape_scene(
    name: str,
    *,
    width: int = 640,
    height: int = 480,
    fov_deg: float = DEFAULT_FOV_DEG,
    elevation: float | None = None,
) -> Scene:
    """Render the whole-object scene ``name`` (one of :data:`SHAPE_SCENES`).

    The object stands upright (its axis along the world's vertical) and the camera
    looks down on it by ``elevation`` degrees (default :data:`SHAPE_ELEVATIONS`), as
    in a product photo. ``Scene.mesh`` is the object's full surface, hidden side too.
    """
    builders = {
        "bottle": _bottle,
        "vase": _vase,
        "can": _can,
        "torus_tilted": _upright_torus,
        "cup": _cup,
        "box_tilted": _upright_box,
        "blob": _blob,
        "chair": _chair,
    }
    if name not in builders:
        raise OptionError(f"Unknown scene '{name}': choose one of {', '.join(SHAPE_SCENES)}.")
    e = SHAPE_ELEVATIONS[name] if elevation is None else float(elevation)
    placed = in_view(builders[name](), e)
    return render(name, placed, intrinsics_from_fov(width, height, fov_deg))


def in_view(mesh: Mesh, elevation: float) -> Mesh:
    """``mesh`` (standing upright along -y) centred in front of the camera at 2.4 x its
    size, turned so that the camera looks down on it by ``elevation`` degrees."""
    # Upright in the camera frame means along -y (y points down); a turn about x by
    # +e shows the top to a camera looking down by e degrees.
    v = mesh.vertices
    centre = 0.5 * (v.min(axis=0) + v.max(axis=0))
    mesh = Mesh(v - centre, mesh.faces, mesh.colors)
    size = float(np.max(v.max(axis=0) - v.min(axis=0)))
    return place_mesh(mesh, rotation_matrix(elevation, 0, 0), (0.0, 0.0, 2.4 * size))


def lathe(profile, color, *, segments: int = 96, color_b=None) -> Mesh:
    """A closed surface of revolution about the -y axis (up in the camera frame).

    ``profile``: (radius, height) pairs from the bottom to the top; a radius of 0 at
    either end closes it with a point, else a flat cap is added. Colours run from
    ``color`` to ``color_b`` around the axis (so a wrong turn shows).
    """
    prof = np.asarray(profile, dtype=np.float64)
    angles = np.linspace(0.0, 2 * math.pi, segments, endpoint=False)
    rings = []
    for r, h in prof:
        rings.append(
            np.stack([r * np.cos(angles), -h * np.ones_like(angles), r * np.sin(angles)], 1)
        )
    verts = np.concatenate(rings)
    faces = []
    n = segments
    for i in range(len(prof) - 1):
        for j in range(n):
            a, b = i * n + j, i * n + (j + 1) % n
            c, d = a + n, b + n
            faces += [[a, c, b], [b, c, d]]
    # caps: a centre vertex at each end
    bottom = len(verts)
    top = bottom + 1
    verts = np.concatenate([verts, [[0, -prof[0, 1], 0], [0, -prof[-1, 1], 0]]])
    last = (len(prof) - 1) * n
    for j in range(n):
        faces.append([bottom, j, (j + 1) % n])
        faces.append([top, last + (j + 1) % n, last + j])
    faces = np.asarray(faces, dtype=np.int64)
    # Outward winding: positive signed volume.
    a, b, c = (verts[faces[:, k]] for k in range(3))
    if np.einsum("ij,ij->i", a, np.cross(b, c)).sum() < 0:
        faces = faces[:, ::-1].copy()
    angle = np.arctan2(verts[:, 2], verts[:, 0])
    s = (0.5 + 0.5 * np.cos(angle))[:, None]
    cb = np.asarray(color if color_b is None else color_b, dtype=np.float64)
    colors = s * np.asarray(color, dtype=np.float64) + (1 - s) * cb
    return Mesh(verts, faces, colors)


def _bottle() -> Mesh:
    prof = [
        (0.0, 0.0),
        (0.07, 0.0),
        (0.075, 0.01),
        (0.075, 0.17),
        (0.06, 0.21),
        (0.03, 0.24),
        (0.022, 0.25),
        (0.022, 0.30),
        (0.025, 0.305),
        (0.025, 0.32),
        (0.0, 0.32),
    ]
    return lathe(prof, (0.2, 0.55, 0.3), color_b=(0.85, 0.85, 0.3))


def _vase() -> Mesh:
    h = np.linspace(0.0, 0.34, 24)
    r = 0.06 + 0.045 * np.sin(np.pi * h / 0.34 * 1.3) ** 2 + 0.02 * (h / 0.34) ** 3
    prof = [(0.0, 0.0)] + list(zip(r, h, strict=True)) + [(0.0, 0.34)]
    return lathe(prof, (0.75, 0.35, 0.3), color_b=(0.3, 0.45, 0.8))


def _can() -> Mesh:
    prof = [(0.0, 0.0), (0.055, 0.0), (0.06, 0.01), (0.06, 0.155), (0.055, 0.165), (0.0, 0.165)]
    return lathe(prof, (0.85, 0.15, 0.15), color_b=(0.9, 0.9, 0.9))


def _upright_torus() -> Mesh:
    # Open3D's torus lies in the xy plane; stand its axis along -y, then tilt it a bit.
    t = torus_mesh(0.16, 0.06, (0.9, 0.55, 0.1), (0.2, 0.4, 0.9))
    return place_mesh(t, rotation_matrix(90, 0, 0), (0, 0, 0))


def _cup() -> Mesh:
    body = lathe(
        [(0.0, 0.0), (0.045, 0.0), (0.05, 0.01), (0.058, 0.11), (0.0, 0.11)],
        (0.95, 0.95, 0.9),
        color_b=(0.3, 0.5, 0.85),
    )
    handle = torus_mesh(0.035, 0.011, (0.3, 0.3, 0.35), (0.3, 0.3, 0.35))
    # The handle's ring stands in the xy plane, its centre just outside the body's side.
    handle = place_mesh(handle, np.eye(3), (0.075, -0.055, 0.0))
    return merge_meshes([body, handle])


def _upright_box() -> Mesh:
    faces = [
        (0.9, 0.3, 0.2),
        (0.2, 0.6, 0.9),
        (0.3, 0.8, 0.3),
        (0.95, 0.85, 0.2),
        (0.6, 0.3, 0.8),
        (0.2, 0.8, 0.8),
    ]
    return place_mesh(box_mesh((0.2, 0.24, 0.14), faces), rotation_matrix(0, 35, 0), (0, 0, 0))


def _blob() -> Mesh:
    """A monkey-head-like blob: a head, two ears and a snout (not a surface of revolution)."""
    head = sphere_mesh(0.12, (0.55, 0.35, 0.2), resolution=48)
    ear_l = place_mesh(
        sphere_mesh(0.05, (0.7, 0.5, 0.35), resolution=24), np.eye(3), (-0.13, -0.03, 0.0)
    )
    ear_r = place_mesh(
        sphere_mesh(0.05, (0.7, 0.5, 0.35), resolution=24), np.eye(3), (0.13, -0.03, 0.0)
    )
    snout = place_mesh(
        sphere_mesh(0.065, (0.85, 0.7, 0.55), resolution=32), np.eye(3), (0, 0.04, -0.09)
    )
    parts = merge_meshes([head, ear_l, ear_r, snout])
    return place_mesh(parts, rotation_matrix(0, 30, 0), (0, 0, 0))


def _chair() -> Mesh:
    """A chair with thin legs: the thin parts that make solids cross themselves."""
    wood = [(0.6, 0.4, 0.25)] * 6
    seat = place_mesh(box_mesh((0.3, 0.03, 0.3), wood), np.eye(3), (0, 0.0, 0))
    back = place_mesh(box_mesh((0.3, 0.3, 0.025), wood), np.eye(3), (0, -0.165, 0.1375))
    legs = [
        place_mesh(
            box_mesh((0.022, 0.3, 0.022), [(0.35, 0.22, 0.12)] * 6), np.eye(3), (x, 0.165, z)
        )
        for x in (-0.13, 0.13)
        for z in (-0.13, 0.13)
    ]
    return place_mesh(merge_meshes([seat, back, *legs]), rotation_matrix(0, 35, 0), (0, 0, 0))
