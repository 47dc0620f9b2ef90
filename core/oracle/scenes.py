"""Oracle scenes: known coloured meshes ray-cast into a photo, an exact depth map and a mask."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OptionError
from ..geometry.camera import DEFAULT_FOV_DEG, Intrinsics, intrinsics_from_fov
from ..geometry.mesh import Mesh

#: The scenes :func:`make_scene` knows, simplest first.
SCENE_NAMES = ("sphere", "box", "torus", "toy")


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


def cast(mesh: Mesh, intrinsics: Intrinsics):
    """``mesh`` (camera frame) ray-cast through every pixel centre of ``intrinsics``: the
    rays' directions (H, W, 3), unnormalised with unit z (so a hit's distance is its depth),
    and Open3D's hits (t_hit, primitive_ids, primitive_uvs, primitive_normals)."""
    import open3d as o3d

    h, w = intrinsics.height, intrinsics.width
    rows, cols = np.mgrid[0:h, 0:w]
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
        o3d.core.Tensor(np.ascontiguousarray(mesh.vertices, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(mesh.faces, dtype=np.uint32)),
    )
    return dirs, scene.cast_rays(o3d.core.Tensor(rays))


def surface_colours(mesh: Mesh, hit, mask: np.ndarray) -> np.ndarray:
    """The mesh's vertex colours, interpolated, where the rays of :func:`cast` hit it."""
    tri = hit["primitive_ids"].numpy()[mask].astype(np.int64)
    uv = hit["primitive_uvs"].numpy()[mask]
    bary = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)
    return np.einsum("nk,nkc->nc", bary, mesh.colors[mesh.faces[tri]])


def render(name: str, mesh: Mesh, intrinsics: Intrinsics) -> Scene:
    """Ray-cast ``mesh`` (camera frame) through every pixel centre of ``intrinsics``."""
    h, w = intrinsics.height, intrinsics.width
    dirs, hit = cast(mesh, intrinsics)
    t = hit["t_hit"].numpy()
    mask = np.isfinite(t)
    depth = np.where(mask, t, 0.0).astype(np.float32)
    albedo = surface_colours(mesh, hit, mask)
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


def rotation_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
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


def place_mesh(mesh: Mesh, rotation: np.ndarray, centre: tuple[float, float, float]) -> Mesh:
    return mesh.transformed(rotation, np.asarray(centre, dtype=np.float64))


def merge_meshes(parts: list[Mesh]) -> Mesh:
    offsets = np.cumsum([0] + [p.n_vertices for p in parts[:-1]])
    return Mesh(
        np.concatenate([p.vertices for p in parts]),
        np.concatenate([p.faces + o for p, o in zip(parts, offsets, strict=True)]),
        np.concatenate([p.colors for p in parts]),
    )


def _from_o3d(mesh, colors: np.ndarray) -> Mesh:
    v = np.asarray(mesh.vertices)
    return Mesh(v, np.asarray(mesh.triangles), np.broadcast_to(colors, v.shape))


def sphere_mesh(radius: float, color, resolution: int = 64) -> Mesh:
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_sphere(radius=radius, resolution=resolution)
    v = np.asarray(m.vertices)
    # A vertical gradient, so colour tests notice colours taken from the wrong place.
    shade = 0.75 + 0.25 * (v[:, 1:2] / radius)
    return _from_o3d(m, np.clip(np.asarray(color) * shade, 0, 1))


def box_mesh(size: tuple[float, float, float], face_colors) -> Mesh:
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


def torus_mesh(radius: float, tube: float, color_a, color_b) -> Mesh:
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


def cylinder_mesh(radius: float, height: float, color) -> Mesh:
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_cylinder(radius=radius, height=height, resolution=48)
    return _from_o3d(m, np.asarray(color, dtype=np.float64))


def cone_mesh(radius: float, height: float, color) -> Mesh:
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_cone(radius=radius, height=height, resolution=48)
    return _from_o3d(m, np.asarray(color, dtype=np.float64))


def _sphere_scene() -> Mesh:
    return place_mesh(
        sphere_mesh(0.25, (0.85, 0.25, 0.2)), rotation_matrix(0, 0, 0), (0.02, -0.01, 0.95)
    )


def _box_scene() -> Mesh:
    faces = [
        (0.9, 0.3, 0.2),
        (0.2, 0.6, 0.9),
        (0.3, 0.8, 0.3),
        (0.95, 0.85, 0.2),
        (0.6, 0.3, 0.8),
        (0.2, 0.8, 0.8),
    ]
    box = box_mesh((0.42, 0.3, 0.34), faces)
    return place_mesh(box, rotation_matrix(28, 35, 12), (0.0, 0.02, 1.1))


def _torus_scene() -> Mesh:
    torus = torus_mesh(0.2, 0.075, (0.9, 0.55, 0.1), (0.2, 0.4, 0.9))
    # Tilted so the hole shows as a hole and the far side of the ring is partly hidden.
    return place_mesh(torus, rotation_matrix(-55, 10, 0), (0.0, 0.0, 1.15))


def _toy_scene() -> Mesh:
    """A little figure: box body, sphere head, cylinder arms, cone hat; each its own colour."""
    body = place_mesh(box_mesh((0.26, 0.3, 0.18), [(0.85, 0.2, 0.2)] * 6), np.eye(3), (0, 0.08, 0))
    head = place_mesh(sphere_mesh(0.1, (0.95, 0.8, 0.3)), np.eye(3), (0, -0.16, 0))
    # Open3D's cylinder and cone stand along +z; turn them to lie along x (arms) and -y (hat).
    along_x = rotation_matrix(0, 90, 0)
    arm_l = place_mesh(cylinder_mesh(0.04, 0.2, (0.2, 0.35, 0.85)), along_x, (-0.2, 0.02, 0))
    arm_r = place_mesh(cylinder_mesh(0.04, 0.2, (0.2, 0.35, 0.85)), along_x, (0.2, 0.02, 0))
    hat = place_mesh(
        cone_mesh(0.08, 0.12, (0.25, 0.7, 0.3)), rotation_matrix(90, 0, 0), (0, -0.24, 0)
    )
    toy = merge_meshes([body, head, arm_l, arm_r, hat])
    return place_mesh(toy, rotation_matrix(-15, 30, 5), (0.02, 0.03, 1.25))
