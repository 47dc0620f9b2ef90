"""Scoring the side a user turns to: a dark decal painted on the front only, and how much of it (and how true a colour) the hidden side of a reconstruction shows."""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from ..geometry.camera import DEFAULT_FOV_DEG, intrinsics_from_fov
from ..geometry.mesh import Mesh
from .scenes import (
    Scene,
    box_mesh,
    cylinder_mesh,
    merge_meshes,
    place_mesh,
    render,
    rotation_matrix,
    sphere_mesh,
)
from .scores import seen_from_camera
from .shapes import in_view, lathe

#: The decal's colour (sRGB, 0-1): dark, unlike every oracle object's own colours.
DECAL_RGB = (0.08, 0.08, 0.10)

#: A hidden sample "shows the decal" when its colour is this near the decal's (RGB distance).
DECAL_NEAR = 0.2

#: Objects whose hidden side's colour a photo of their front can tell (one colour, or
#: colours by height: a label's band goes round), each with a dark decal on the front
#: only: a face, eyes, print. The elevation the camera looks down from, degrees.
HIDDEN_SCENES = {
    "ball": 10,
    "head": 5,
    "egg": 20,
    "robot": 10,
    "package": 25,
    "bottle_label": 15,
    "can_label": 30,
    "vase_bands": 25,
    "mug": 20,
    "stool": 20,
}


def make_hidden_scene(
    name: str,
    *,
    width: int = 640,
    height: int = 480,
    fov_deg: float = DEFAULT_FOV_DEG,
    elevation: float | None = None,
    decal: bool = True,
) -> Scene:
    """Render the hidden-side scene ``name`` (one of :data:`HIDDEN_SCENES`) with its front decal.

    Like core.oracle.shapes.make_shape_scene: the object stands upright, the camera looks
    down on it by ``elevation`` degrees, ``Scene.mesh`` is its whole surface.
    """
    if name not in HIDDEN_SCENES:
        raise OptionError(f"Unknown scene '{name}': choose one of {', '.join(HIDDEN_SCENES)}.")
    e = HIDDEN_SCENES[name] if elevation is None else float(elevation)
    placed = in_view(_BUILDERS[name](), e)
    if decal:
        placed = paint_front_decal(placed)
    return render(name, placed, intrinsics_from_fov(width, height, fov_deg))


def _banded(profile, bands) -> Mesh:
    """A lathe body coloured by height: ``bands`` is [(height from which, colour), ...]."""
    # rings every 2 mm up the sides, so that each band's edge has vertices to sit on
    dense = [profile[0]]
    for (r0, h0), (r1, h1) in zip(profile[:-1], profile[1:], strict=True):
        steps = max(1, int(np.ceil(abs(h1 - h0) / 0.002)))
        dense += [
            (r0 + (r1 - r0) * k / steps, h0 + (h1 - h0) * k / steps) for k in range(1, steps + 1)
        ]
    body = lathe(dense, (0.5, 0.5, 0.5), segments=128)
    h = -body.vertices[:, 1]
    colors = np.empty((len(h), 3))
    for start, colour in bands:
        colors[h >= start - 1e-9] = colour
    return Mesh(body.vertices, body.faces, colors)


def _ball() -> Mesh:
    return _uniform(sphere_mesh(0.12, (0.5, 0.5, 0.5), resolution=64), (0.85, 0.3, 0.2))


def _head() -> Mesh:
    head = sphere_mesh(0.11, (0.5, 0.5, 0.5), resolution=64)
    head = Mesh(head.vertices * np.array([0.9, 1.15, 0.95]), head.faces, head.colors)
    ears = [
        place_mesh(sphere_mesh(0.035, (0.5, 0.5, 0.5), resolution=24), np.eye(3), (x, 0.0, 0.0))
        for x in (-0.1, 0.1)
    ]
    return _uniform(merge_meshes([head, *ears]), (0.9, 0.72, 0.55))


def _egg() -> Mesh:
    egg = sphere_mesh(0.1, (0.5, 0.5, 0.5), resolution=64)
    v = egg.vertices.astype(np.float64) * np.array([1.0, 1.35, 1.0])
    v[:, 0] *= 1.0 - 0.12 * v[:, 1] / 0.135  # narrower at the top (-y is up)
    v[:, 2] *= 1.0 - 0.12 * v[:, 1] / 0.135
    return _uniform(Mesh(v, egg.faces, egg.colors), (0.95, 0.9, 0.75))


def _robot() -> Mesh:
    grey = [(0.6, 0.62, 0.66)] * 6
    body = place_mesh(box_mesh((0.2, 0.22, 0.14), grey), np.eye(3), (0, 0.06, 0))
    head = place_mesh(box_mesh((0.14, 0.11, 0.12), grey), np.eye(3), (0, -0.12, 0))
    along_x = rotation_matrix(0, 90, 0)
    arms = [
        place_mesh(cylinder_mesh(0.03, 0.08, (0.6, 0.62, 0.66)), along_x, (x, 0.02, 0))
        for x in (-0.14, 0.14)
    ]
    return _fine(merge_meshes([body, head, *arms]), 4)


def _package() -> Mesh:
    box = _fine(box_mesh((0.2, 0.26, 0.08), [(0.25, 0.55, 0.85)] * 6))
    return place_mesh(box, rotation_matrix(0, 35, 0), (0, 0, 0))


def _bottle_label() -> Mesh:
    prof = [(0.0, 0.0), (0.07, 0.0), (0.075, 0.01), (0.075, 0.17), (0.06, 0.21), (0.03, 0.24),
            (0.022, 0.25), (0.022, 0.30), (0.025, 0.305), (0.025, 0.32), (0.0, 0.32)]  # fmt: skip
    green, label, cap = (0.2, 0.55, 0.3), (0.92, 0.88, 0.7), (0.8, 0.2, 0.15)
    return _banded(prof, [(0.0, green), (0.05, label), (0.14, green), (0.295, cap)])


def _can_label() -> Mesh:
    prof = [(0.0, 0.0), (0.055, 0.0), (0.06, 0.01), (0.06, 0.155), (0.055, 0.165), (0.0, 0.165)]
    silver, red, white = (0.75, 0.76, 0.78), (0.85, 0.15, 0.15), (0.92, 0.92, 0.9)
    return _banded(prof, [(0.0, silver), (0.012, red), (0.07, white), (0.1, red), (0.152, silver)])


def _vase_bands() -> Mesh:
    h = np.linspace(0.0, 0.34, 24)
    r = 0.06 + 0.045 * np.sin(np.pi * h / 0.34 * 1.3) ** 2 + 0.02 * (h / 0.34) ** 3
    prof = [(0.0, 0.0)] + [(float(a), float(b)) for a, b in zip(r, h, strict=True)] + [(0.0, 0.34)]
    return _banded(
        prof, [(0.0, (0.75, 0.35, 0.3)), (0.12, (0.3, 0.45, 0.8)), (0.24, (0.75, 0.35, 0.3))]
    )


def _mug() -> Mesh:
    from .scenes import torus_mesh

    white = (0.93, 0.93, 0.88)
    body = _banded(
        [(0.0, 0.0), (0.045, 0.0), (0.05, 0.01), (0.058, 0.11), (0.0, 0.11)], [(0.0, white)]
    )
    handle = torus_mesh(0.035, 0.011, white, white)
    handle = place_mesh(handle, np.eye(3), (0.075, -0.055, 0.0))
    return merge_meshes([body, handle])


def _stool() -> Mesh:
    wood = [(0.65, 0.45, 0.28)] * 6
    seat = place_mesh(box_mesh((0.26, 0.035, 0.26), wood), np.eye(3), (0, 0.0, 0))
    legs = [
        place_mesh(box_mesh((0.03, 0.22, 0.03), wood), np.eye(3), (x, 0.125, z))
        for x in (-0.1, 0.1)
        for z in (-0.1, 0.1)
    ]
    stool = _fine(merge_meshes([seat, *legs]), 4)
    return place_mesh(stool, rotation_matrix(0, 35, 0), (0, 0, 0))


def _fine(mesh: Mesh, iterations: int = 5) -> Mesh:
    """``mesh`` with each triangle split in four ``iterations`` times: a decal painted on its
    vertices then has the vertices to show on (a box has only its corners)."""
    import open3d as o3d

    m = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(mesh.vertices.astype(np.float64)),
        o3d.utility.Vector3iVector(mesh.faces.astype(np.int32)),
    )
    m.vertex_colors = o3d.utility.Vector3dVector(mesh.colors.astype(np.float64))
    m = m.subdivide_midpoint(number_of_iterations=iterations)
    return Mesh(np.asarray(m.vertices), np.asarray(m.triangles), np.asarray(m.vertex_colors))


def _uniform(mesh: Mesh, colour) -> Mesh:
    return Mesh(
        mesh.vertices, mesh.faces, np.tile(np.asarray(colour, np.float64), (mesh.n_vertices, 1))
    )


_BUILDERS = {
    "ball": _ball,
    "head": _head,
    "egg": _egg,
    "robot": _robot,
    "package": _package,
    "bottle_label": _bottle_label,
    "can_label": _can_label,
    "vase_bands": _vase_bands,
    "mug": _mug,
    "stool": _stool,
}


def paint_front_decal(mesh: Mesh, *, share: float = 0.4, color=DECAL_RGB) -> Mesh:
    """``mesh`` (camera frame) with a decal on the side the camera sees: the vertices it sees
    (nothing in front of them) facing it within 50 degrees, within the middle ``share`` of
    the object's extent in the image. Front detail, like a face or a print: it stays clear
    of the outline, where the surface turns away, and the hidden side keeps the object's
    own colours."""
    from ..geometry.topology import vertex_normals

    v = mesh.vertices.astype(np.float64)
    seen = seen_from_camera(mesh, v, 1e-4 * float(np.ptp(v, axis=0).max()))
    view = v / np.linalg.norm(v, axis=1, keepdims=True)
    facing = np.abs(np.einsum("ij,ij->i", vertex_normals(v, mesh.faces), view)) > np.cos(
        np.radians(50.0)
    )
    x, y = v[:, 0] / v[:, 2], v[:, 1] / v[:, 2]  # the image plane, up to the focal length
    cx, cy = 0.5 * (x.min() + x.max()), 0.5 * (y.min() + y.max())
    rx, ry = 0.5 * share * np.ptp(x), 0.5 * share * np.ptp(y)
    inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
    colors = mesh.colors.copy()
    colors[seen & facing & inside] = color
    return Mesh(mesh.vertices, mesh.faces, colors, mesh.normals)


def hidden_colour_score(
    mesh: Mesh, scene, *, decal=DECAL_RGB, samples: int = 20_000, seed: int = 0
) -> dict:
    """How the hidden side of ``mesh`` (camera frame) is coloured, against the scene's object.

    The mesh is sampled uniformly by area; the samples the camera does not see are the
    hidden side. Each takes the mesh's colour there (its vertex colours, interpolated) and
    is compared with the object's true colour at the nearest point of its hidden side (the
    faces the camera does not see: a thin object's back is not compared with its front).
    ``decal_leak``: the share of hidden samples that show the decal where the object has
    none; ``hidden_psnr``: the colours' PSNR (sRGB 0-1) over the hidden samples, dB.
    """
    points, colours = _samples(mesh, samples, seed)
    slack = 0.005 * scene.diagonal
    hidden = ~seen_from_camera(mesh, points, slack)
    if not hidden.any():
        return {"decal_leak": 0.0, "hidden_psnr": float("inf"), "hidden_share": 0.0}
    truth = _colour_at(_hidden_part(scene.mesh, slack), points[hidden])
    ours = colours[hidden]
    decal = np.asarray(decal, dtype=np.float64)
    shows = np.linalg.norm(ours - decal, axis=1) < DECAL_NEAR
    has = np.linalg.norm(truth - decal, axis=1) < DECAL_NEAR
    mse = float(np.mean((ours - truth) ** 2))
    return {
        "decal_leak": float(np.mean(shows & ~has)),
        "hidden_psnr": float(10 * np.log10(1.0 / max(mse, 1e-12))),
        "hidden_share": float(hidden.mean()),
    }


def _hidden_part(mesh: Mesh, slack: float) -> Mesh:
    """The faces of ``mesh`` (camera frame) whose centres the camera does not see."""
    f = mesh.faces.astype(np.int64)
    centres = mesh.vertices.astype(np.float64)[f].mean(axis=1)
    hidden = ~seen_from_camera(mesh, centres, slack)
    return Mesh(mesh.vertices, f[hidden] if hidden.any() else f, mesh.colors)


def _samples(mesh: Mesh, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 3) points spread uniformly over the mesh's area, and their colours."""
    rng = np.random.default_rng(seed)
    v = mesh.vertices.astype(np.float64)
    f = mesh.faces.astype(np.int64)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    face = rng.choice(len(f), size=count, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(count)), rng.random(count)
    w = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], axis=1)
    points = np.einsum("nk,nkc->nc", w, v[f[face]])
    colours = np.einsum("nk,nkc->nc", w, mesh.colors.astype(np.float64)[f[face]])
    return points, colours


def _colour_at(mesh: Mesh, points: np.ndarray) -> np.ndarray:
    """The mesh's colour at the point of its surface nearest each of ``points``."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(mesh.vertices, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(mesh.faces, dtype=np.uint32)),
    )
    near = scene.compute_closest_points(o3d.core.Tensor(points.astype(np.float32)))
    face = near["primitive_ids"].numpy().astype(np.int64)
    uv = near["primitive_uvs"].numpy().astype(np.float64)
    w = np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)
    corners = mesh.colors.astype(np.float64)[mesh.faces.astype(np.int64)[face]]
    return np.einsum("nk,nkc->nc", w, corners)
