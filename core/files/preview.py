"""A quick PNG picture of a mesh, seen from the photo's camera and from the side."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..geometry.camera import Camera
from ..geometry.mesh import Mesh
from .atomic import atomic_write, check_target

#: Field of view used when no camera is given, degrees.
_DEFAULT_FOV_DEG = 40.0
_BACKGROUND = (0.96, 0.96, 0.96)


def write_preview(
    mesh: Mesh,
    path: str | os.PathLike,
    *,
    camera: Camera | None = None,
    max_faces: int = 8000,
    overwrite: bool = False,
    size: tuple[int, int] = (800, 600),
    side_view: bool = True,
) -> Path:
    """Draw ``mesh`` into a PNG of ``size`` pixels and write it atomically to ``path``.

    See :func:`preview_png` for the picture. Raises :class:`OutputError` for an
    extension other than .png, an empty mesh, or a target that cannot be written.
    """
    path = _checked_path(mesh, path)
    check_target(path, overwrite=overwrite)
    png = preview_png(mesh, camera=camera, max_faces=max_faces, size=size, side_view=side_view)
    return atomic_write(path, lambda f: f.write(png), overwrite=overwrite)


def preview_file(mesh: Mesh, path: str | os.PathLike, *, camera: Camera | None = None):
    """(path, writer) of ``mesh``'s preview, for :func:`core.files.atomic.atomic_write_all`:
    the picture is drawn now, so writing it cannot fail half-way through a run's files."""
    path = _checked_path(mesh, path)
    png = preview_png(mesh, camera=camera)
    return path, lambda f: f.write(png)


def preview_png(
    mesh: Mesh,
    *,
    camera: Camera | None = None,
    max_faces: int = 8000,
    size: tuple[int, int] = (800, 600),
    side_view: bool = True,
) -> bytes:
    """The preview of ``mesh`` as PNG bytes.

    The main view looks along +Y like the photo's camera, turned a little to the
    left and seen from above so that depth shows; ``side_view`` adds a view from
    the right. ``camera`` (the photo's, in the output frame) sets the distance and
    field of view; without it a 40 degree view is used. Meshes with more than
    ``max_faces`` faces are simplified first.
    """
    small = simplify_for_preview(mesh, max_faces)
    return _render_png(small, camera, size, side_view)


def _checked_path(mesh: Mesh, path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise OutputError(f"Cannot write {path}: a preview must be a .png file.")
    if mesh.n_vertices == 0 or mesh.n_faces == 0:
        raise OutputError(f"Cannot write {path}: the mesh is empty.")
    return path


def simplify_for_preview(mesh: Mesh, max_faces: int) -> Mesh:
    """A copy with at most about ``max_faces`` faces, by vertex clustering.

    Clustering keeps the surface closed and the colours (averaged per cell),
    unlike random face sampling, and costs a fraction of quadric decimation
    (which takes seconds at 200k faces).
    """
    if mesh.n_faces <= max_faces:
        return mesh
    v = mesh.vertices.astype(np.float64)
    tri = v[mesh.faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    # A grid of cell size s cuts a surface of area A into about 2 A / s^2 triangles.
    cell = math.sqrt(2.0 * max(area.sum(), 1e-20) / max_faces)
    lo = v.min(axis=0)
    for _ in range(8):
        cells = np.floor((v - lo) / cell).astype(np.int64)
        dims = cells.max(axis=0) + 1
        # One integer per cell: 1-D unique is several times faster than unique(axis=0).
        keys = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
        _, cluster, counts = np.unique(keys, return_inverse=True, return_counts=True)
        faces = cluster[mesh.faces]
        keep = (
            (faces[:, 0] != faces[:, 1])
            & (faces[:, 1] != faces[:, 2])
            & (faces[:, 0] != faces[:, 2])
        )
        faces = faces[keep]
        n = len(counts)
        ordered = np.sort(faces, axis=1)
        # Drop faces that collapsed onto the same three cells, keeping the first's winding.
        _, first = np.unique(
            (ordered[:, 0] * n + ordered[:, 1]) * n + ordered[:, 2], return_index=True
        )
        faces = faces[np.sort(first)]
        if len(faces) <= max_faces * 1.1:
            break
        cell *= math.sqrt(len(faces) / max_faces)
    verts = np.stack([np.bincount(cluster, v[:, k], n) for k in range(3)], axis=1)
    cols = np.stack([np.bincount(cluster, mesh.colors[:, k], n) for k in range(3)], axis=1)
    return Mesh(verts / counts[:, None], faces, cols / counts[:, None])


def _view_basis(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Rows: right, up, forward of a view looking along +Y turned by azimuth, tilted down."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    forward = np.array([math.sin(a) * math.cos(e), math.cos(a) * math.cos(e), -math.sin(e)])
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.stack([right, up, forward])


def _render_png(mesh: Mesh, camera: Camera | None, size: tuple[int, int], side_view: bool) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    v = mesh.vertices.astype(np.float64)
    lo, hi = v.min(axis=0), v.max(axis=0)
    centre = (lo + hi) / 2.0
    radius = max(float(np.linalg.norm(hi - lo)) / 2.0, 1e-9)
    if camera is not None:
        fov = camera.intrinsics.fov_deg
        distance = float(np.linalg.norm(centre - np.asarray(camera.location, dtype=np.float64)))
    else:
        fov = _DEFAULT_FOV_DEG
        distance = 0.0
    # Far enough that the whole object fits the view whatever the turn.
    distance = max(distance, 1.15 * radius / math.sin(math.radians(fov) / 2.0))

    tri = v[mesh.faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)
    face_colors = np.clip(mesh.colors[mesh.faces].mean(axis=1), 0.0, 1.0)

    # (title, azimuth, elevation): the photo's view turned 25 deg to the left, then the right side.
    views = [("front", 25.0, 15.0)]
    if side_view:
        views.append(("right side", -90.0, 10.0))

    picture = np.empty((height, width, 3), np.uint8)
    picture[:] = np.round(np.asarray(_BACKGROUND) * 255).astype(np.uint8)
    title_h = max(1, round(0.06 * height))  # the rest of each panel is the drawing
    edges = np.linspace(0, width, len(views) + 1).round().astype(int)
    for i, (_, azimuth, elevation) in enumerate(views):
        basis = _view_basis(azimuth, elevation)
        eye = centre - distance * basis[2]
        cam = (tri - eye) @ basis.T  # (M, 3, 3): right, up, depth per corner
        depth = np.maximum(cam[..., 2], 1e-9)
        xy = cam[..., :2] / depth[..., None]
        # Light from over the viewer's left shoulder; |n.l| because windings may vary.
        light = basis.T @ np.array([-0.4, 0.6, -1.0])
        light /= np.linalg.norm(light)
        shade = 0.35 + 0.65 * np.abs(normals @ light)
        colors = face_colors * shade[:, None]
        # Frame the object tightly, the same scale in x and y.
        pw, ph = int(edges[i + 1] - edges[i]), height - title_h
        (x0, y0), (x1, y1) = xy.reshape(-1, 2).min(axis=0), xy.reshape(-1, 2).max(axis=0)
        scale = min(pw / (max(x1 - x0, 1e-12) * 1.1), ph / (max(y1 - y0, 1e-12) * 1.1))
        px = np.empty_like(xy)
        px[..., 0] = (xy[..., 0] - (x0 + x1) / 2) * scale + pw / 2
        px[..., 1] = ph / 2 - (xy[..., 1] - (y0 + y1) / 2) * scale
        panel = picture[title_h:, edges[i] : edges[i + 1]]
        panel[:] = _raster(px, depth, colors, pw, ph, picture[0, 0])
    drawing = Image.fromarray(picture)
    pen = ImageDraw.Draw(drawing)
    try:  # Pillow's own scalable font (Pillow >= 10.1 with FreeType), else its bitmap one
        font = ImageFont.load_default(size=max(9, round(0.022 * height)))
    except (TypeError, ImportError, OSError):
        font = ImageFont.load_default()
    for i, (title, _, _) in enumerate(views):
        middle = (edges[i] + edges[i + 1]) / 2
        pen.text((middle, title_h / 2), title, fill=(102, 102, 102), anchor="mm", font=font)
    buffer = io.BytesIO()
    # Fast zlib: a few per cent bigger than the default level, several times quicker.
    drawing.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


#: Sub-pixel bits of the corners given to OpenCV (1/16 pixel).
_SHIFT = 4


def _raster(px, depth, colors, width: int, height: int, background) -> np.ndarray:
    """Faces (corners ``px`` in pixels, (M, 3, 2); their ``depth``, (M, 3)) filled with
    ``colors`` over the ``background`` colour (RGB 0-255), far to near (the painter's
    order), without antialiasing: neighbouring faces leave no hairline gaps."""
    import cv2

    picture = np.empty((height, width, 3), np.uint8)
    picture[:] = np.asarray(background, np.uint8)
    corners = np.round(px * (1 << _SHIFT)).astype(np.int32)
    rgb = np.clip(np.round(colors * 255.0), 0, 255).astype(np.int64).tolist()
    for i in np.argsort(-depth.mean(axis=1), kind="stable").tolist():
        cv2.fillConvexPoly(picture, corners[i], rgb[i], cv2.LINE_8, _SHIFT)
    return picture
