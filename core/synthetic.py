"""Oracle scenes: known coloured meshes ray-cast into a photo, an exact depth map and a mask."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import DEFAULT_FOV_DEG, Intrinsics, intrinsics_from_fov
from .errors import OptionError
from .mesh import Mesh

#: The scenes :func:`make_scene` knows, simplest first.
SCENE_NAMES = ("sphere", "box", "torus", "toy")

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

#: Colour of the pixels no object covers (sRGB, 0-255).
BACKGROUND_RGB = (205, 208, 212)


@dataclass
class Scene:
    """One rendered oracle scene; everything is in the OpenCV camera frame, metres.

    rgb: (H, W, 3) uint8 photo (object colours with headlight shading, flat background).
    depth: (H, W) float32 z along the optical axis, 0 where no object is hit.
    mask: (H, W) bool, the pixels that see an object.
    mesh: the ground-truth mesh with its own (unshaded) vertex colours.
    visible_points: (N, 3) float32 ray hits of the masked pixels, row-major order.
    visible_pixels: (N, 2) int32 (row, col) of each visible point.
    """

    name: str
    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    intrinsics: Intrinsics
    mesh: Mesh
    visible_points: np.ndarray
    visible_pixels: np.ndarray

    @property
    def diagonal(self) -> float:
        """Diagonal of the ground-truth mesh's bounding box (the scale scores are relative to)."""
        v = self.mesh.vertices.astype(np.float64)
        return float(np.linalg.norm(v.max(axis=0) - v.min(axis=0)))


def make_scene(
    name: str,
    intrinsics: Intrinsics | None = None,
    *,
    width: int = 640,
    height: int = 480,
    fov_deg: float = DEFAULT_FOV_DEG,
) -> Scene:
    """Render the oracle scene ``name`` (one of :data:`SCENE_NAMES`).

    The camera is ``intrinsics`` when given, else ``fov_deg`` across the longer
    side of a ``width`` x ``height`` image.
    """
    builders = {
        "sphere": _sphere_scene,
        "box": _box_scene,
        "torus": _torus_scene,
        "toy": _toy_scene,
    }
    if name not in builders:
        raise OptionError(f"Unknown scene '{name}': choose one of {', '.join(SCENE_NAMES)}.")
    if intrinsics is None:
        intrinsics = intrinsics_from_fov(width, height, fov_deg)
    return render(name, builders[name](), intrinsics)


def render(name: str, mesh: Mesh, intrinsics: Intrinsics) -> Scene:
    """Ray-cast ``mesh`` (camera frame) through every pixel centre of ``intrinsics``."""
    import open3d as o3d

    h, w = intrinsics.height, intrinsics.width
    rows, cols = np.mgrid[0:h, 0:w]
    # Unnormalised directions with unit z: the hit distance is then the depth itself.
    dirs = np.stack(
        [
            (cols - intrinsics.cx) / intrinsics.fx,
            (rows - intrinsics.cy) / intrinsics.fy,
            np.ones((h, w)),
        ],
        axis=-1,
    ).astype(np.float32)
    rays = np.concatenate([np.zeros_like(dirs), dirs], axis=-1)

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(mesh.vertices), o3d.core.Tensor(mesh.faces.astype(np.uint32))
    )
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    t = hit["t_hit"].numpy()
    mask = np.isfinite(t)
    depth = np.where(mask, t, 0.0).astype(np.float32)

    tri = hit["primitive_ids"].numpy()[mask].astype(np.int64)
    uv = hit["primitive_uvs"].numpy()[mask]
    corners = mesh.faces[tri]
    bary = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)
    albedo = np.einsum("nk,nkc->nc", bary, mesh.colors[corners])
    # A headlight: surfaces facing the camera are brightest, grazing ones darker,
    # so shading exists but colours stay recognisable.
    normals = hit["primitive_normals"].numpy()[mask]
    view = dirs[mask] / np.linalg.norm(dirs[mask], axis=1, keepdims=True)
    lambert = np.abs(np.sum(normals * view, axis=1))
    shaded = albedo * (0.55 + 0.45 * lambert)[:, None]

    rgb = np.empty((h, w, 3), dtype=np.uint8)
    rgb[:] = BACKGROUND_RGB
    rgb[mask] = np.clip(np.round(shaded * 255.0), 0, 255).astype(np.uint8)

    visible = (dirs[mask] * t[mask][:, None]).astype(np.float32)
    pixels = np.argwhere(mask).astype(np.int32)
    return Scene(name, rgb, depth, mask, intrinsics, mesh, visible, pixels)


def save_scene(scene: Scene, folder: str | Path) -> dict[str, Path]:
    """Write the scene as a user would give it to the CLI; returns the paths by kind.

    ``rgb`` (PNG), ``depth_png`` (16-bit PNG, millimetres, 0 = no reading),
    ``depth_npy`` (float32 metres), ``mask`` (8-bit PNG, 255 = object) and
    ``rgba`` (PNG whose alpha is the mask).
    """
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "rgb": folder / f"{scene.name}.png",
        "rgba": folder / f"{scene.name}_rgba.png",
        "depth_png": folder / f"{scene.name}_depth.png",
        "depth_npy": folder / f"{scene.name}_depth.npy",
        "mask": folder / f"{scene.name}_mask.png",
    }
    Image.fromarray(scene.rgb, "RGB").save(paths["rgb"])
    alpha = np.where(scene.mask, 255, 0).astype(np.uint8)
    Image.fromarray(np.dstack([scene.rgb, alpha]), "RGBA").save(paths["rgba"])
    millimetres = np.clip(np.round(scene.depth * 1000.0), 0, 65535).astype(np.uint16)
    Image.fromarray(millimetres).save(paths["depth_png"])
    np.save(paths["depth_npy"], scene.depth.astype(np.float32))
    Image.fromarray(alpha, "L").save(paths["mask"])
    return paths


# --- the meshes -----------------------------------------------------------------------------


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation matrix from XYZ Euler angles in degrees."""
    ax, ay, az = (math.radians(a) for a in (rx, ry, rz))
    cx, sx, cy, sy, cz, sz = (
        math.cos(ax),
        math.sin(ax),
        math.cos(ay),
        math.sin(ay),
        math.cos(az),
        math.sin(az),
    )
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


def _place(mesh: Mesh, rotation: np.ndarray, centre: tuple[float, float, float]) -> Mesh:
    return mesh.transformed(rotation, np.asarray(centre, dtype=np.float64))


def _merge(parts: list[Mesh]) -> Mesh:
    offsets = np.cumsum([0] + [p.n_vertices for p in parts[:-1]])
    return Mesh(
        np.concatenate([p.vertices for p in parts]),
        np.concatenate([p.faces + o for p, o in zip(parts, offsets, strict=True)]),
        np.concatenate([p.colors for p in parts]),
    )


def _from_o3d(mesh, colors: np.ndarray) -> Mesh:
    v = np.asarray(mesh.vertices)
    return Mesh(v, np.asarray(mesh.triangles), np.broadcast_to(colors, v.shape))


def _sphere(radius: float, color, resolution: int = 64) -> Mesh:
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_sphere(radius=radius, resolution=resolution)
    v = np.asarray(m.vertices)
    # A vertical gradient, so colour tests notice colours taken from the wrong place.
    shade = 0.75 + 0.25 * (v[:, 1:2] / radius)
    return _from_o3d(m, np.clip(np.asarray(color) * shade, 0, 1))


def _box(size: tuple[float, float, float], face_colors) -> Mesh:
    """A box with its own four vertices per face, so each face has one flat colour."""
    hx, hy, hz = (s / 2 for s in size)
    verts, faces, colors = [], [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u, w = [a for a in range(3) if a != axis]
            quad = []
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = [0.0, 0.0, 0.0]
                p[axis] = sign
                p[u], p[w] = a, b
                quad.append(p)
            base = len(verts)
            verts.extend(quad)
            # Outward winding: flip the quad on the faces whose normal would point inward.
            normal = np.cross(np.subtract(quad[1], quad[0]), np.subtract(quad[2], quad[0]))
            if normal[axis] * sign > 0:
                faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
            else:
                faces += [[base, base + 2, base + 1], [base, base + 3, base + 2]]
            colors.extend([face_colors[len(colors) // 4]] * 4)
    v = np.asarray(verts) * np.array([hx, hy, hz])
    return Mesh(v, np.asarray(faces), np.asarray(colors, dtype=np.float64))


def _torus(radius: float, tube: float, color_a, color_b) -> Mesh:
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_torus(
        torus_radius=radius, tube_radius=tube, radial_resolution=96, tubular_resolution=32
    )
    v = np.asarray(m.vertices)
    # Colour runs around the ring: half-way round it has turned from color_a to color_b.
    angle = np.arctan2(v[:, 1], v[:, 0])
    s = (0.5 + 0.5 * np.cos(angle))[:, None]
    colors = s * np.asarray(color_a) + (1 - s) * np.asarray(color_b)
    return _from_o3d(m, colors)


def _cylinder(radius: float, height: float, color) -> Mesh:
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_cylinder(radius=radius, height=height, resolution=48)
    return _from_o3d(m, np.asarray(color, dtype=np.float64))


def _cone(radius: float, height: float, color) -> Mesh:
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_cone(radius=radius, height=height, resolution=48)
    return _from_o3d(m, np.asarray(color, dtype=np.float64))


def _sphere_scene() -> Mesh:
    return _place(_sphere(0.25, (0.85, 0.25, 0.2)), _rotation(0, 0, 0), (0.02, -0.01, 0.95))


def _box_scene() -> Mesh:
    faces = [
        (0.9, 0.3, 0.2),
        (0.2, 0.6, 0.9),
        (0.3, 0.8, 0.3),
        (0.95, 0.85, 0.2),
        (0.6, 0.3, 0.8),
        (0.2, 0.8, 0.8),
    ]
    box = _box((0.42, 0.3, 0.34), faces)
    return _place(box, _rotation(28, 35, 12), (0.0, 0.02, 1.1))


def _torus_scene() -> Mesh:
    torus = _torus(0.2, 0.075, (0.9, 0.55, 0.1), (0.2, 0.4, 0.9))
    # Tilted so the hole shows as a hole and the far side of the ring is partly hidden.
    return _place(torus, _rotation(-55, 10, 0), (0.0, 0.0, 1.15))


def _toy_scene() -> Mesh:
    """A little figure: box body, sphere head, cylinder arms, cone hat; each its own colour."""
    body = _place(_box((0.26, 0.3, 0.18), [(0.85, 0.2, 0.2)] * 6), np.eye(3), (0, 0.08, 0))
    head = _place(_sphere(0.1, (0.95, 0.8, 0.3)), np.eye(3), (0, -0.16, 0))
    # Open3D's cylinder and cone stand along +z; turn them to lie along x (arms) and -y (hat).
    along_x = _rotation(0, 90, 0)
    arm_l = _place(_cylinder(0.04, 0.2, (0.2, 0.35, 0.85)), along_x, (-0.2, 0.02, 0))
    arm_r = _place(_cylinder(0.04, 0.2, (0.2, 0.35, 0.85)), along_x, (0.2, 0.02, 0))
    hat = _place(_cone(0.08, 0.12, (0.25, 0.7, 0.3)), _rotation(90, 0, 0), (0, -0.24, 0))
    toy = _merge([body, head, arm_l, arm_r, hat])
    return _place(toy, _rotation(-15, 30, 5), (0.02, 0.03, 1.25))


# --- whole-object scenes: lathe objects and others, seen from above ---------------------------


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
    mesh = builders[name]()
    # Upright in the camera frame means along -y (y points down); a turn about x by
    # +e shows the top to a camera looking down by e degrees.
    v = mesh.vertices
    centre = 0.5 * (v.min(axis=0) + v.max(axis=0))
    mesh = Mesh(v - centre, mesh.faces, mesh.colors)
    size = float(np.max(v.max(axis=0) - v.min(axis=0)))
    placed = _place(mesh, _rotation(e, 0, 0), (0.0, 0.0, 2.4 * size))
    return render(name, placed, intrinsics_from_fov(width, height, fov_deg))


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
    t = _torus(0.16, 0.06, (0.9, 0.55, 0.1), (0.2, 0.4, 0.9))
    return _place(t, _rotation(90, 0, 0), (0, 0, 0))


def _cup() -> Mesh:
    body = lathe(
        [(0.0, 0.0), (0.045, 0.0), (0.05, 0.01), (0.058, 0.11), (0.0, 0.11)],
        (0.95, 0.95, 0.9),
        color_b=(0.3, 0.5, 0.85),
    )
    handle = _torus(0.035, 0.011, (0.3, 0.3, 0.35), (0.3, 0.3, 0.35))
    # The handle's ring stands in the xy plane, its centre just outside the body's side.
    handle = _place(handle, np.eye(3), (0.075, -0.055, 0.0))
    return _merge([body, handle])


def _upright_box() -> Mesh:
    faces = [
        (0.9, 0.3, 0.2),
        (0.2, 0.6, 0.9),
        (0.3, 0.8, 0.3),
        (0.95, 0.85, 0.2),
        (0.6, 0.3, 0.8),
        (0.2, 0.8, 0.8),
    ]
    return _place(_box((0.2, 0.24, 0.14), faces), _rotation(0, 35, 0), (0, 0, 0))


def _blob() -> Mesh:
    """A monkey-head-like blob: a head, two ears and a snout (not a surface of revolution)."""
    head = _sphere(0.12, (0.55, 0.35, 0.2), resolution=48)
    ear_l = _place(_sphere(0.05, (0.7, 0.5, 0.35), resolution=24), np.eye(3), (-0.13, -0.03, 0.0))
    ear_r = _place(_sphere(0.05, (0.7, 0.5, 0.35), resolution=24), np.eye(3), (0.13, -0.03, 0.0))
    snout = _place(_sphere(0.065, (0.85, 0.7, 0.55), resolution=32), np.eye(3), (0, 0.04, -0.09))
    parts = _merge([head, ear_l, ear_r, snout])
    return _place(parts, _rotation(0, 30, 0), (0, 0, 0))


def _chair() -> Mesh:
    """A chair with thin legs: the thin parts that make solids cross themselves."""
    wood = [(0.6, 0.4, 0.25)] * 6
    seat = _place(_box((0.3, 0.03, 0.3), wood), np.eye(3), (0, 0.0, 0))
    back = _place(_box((0.3, 0.3, 0.025), wood), np.eye(3), (0, -0.165, 0.1375))
    legs = [
        _place(_box((0.022, 0.3, 0.022), [(0.35, 0.22, 0.12)] * 6), np.eye(3), (x, 0.165, z))
        for x in (-0.13, 0.13)
        for z in (-0.13, 0.13)
    ]
    return _place(_merge([seat, back, *legs]), _rotation(0, 35, 0), (0, 0, 0))
