"""Screened Poisson surfaces: the octree depth, the open surface trimmed to its points, the closed solid kept per point cloud."""

from __future__ import annotations

import math
import os
import sys
import tempfile
from contextlib import contextmanager

import numpy as np

from ..errors import InputError
from ..geometry.mesh import Mesh
from ..geometry.pointcloud import grid_normals
from ..geometry.sampling import projects_into
from ..geometry.topology import compact, drop_small_pieces, is_closed, separate_sheets
from .back import back_cloud
from .crossings import cleaned

#: Connected pieces of a Poisson surface smaller than this share of its area are dropped.
MIN_PIECE_SHARE = 0.01


#: The octree depth chosen automatically never exceeds this: depth 7 takes about two
#: seconds on two cores for a 640 x 480 photo, depth 8 about three times as long.
MAX_AUTO_DEPTH = 7


def choose_poisson_depth(n_front: int) -> int:
    """Octree depth for a cloud of ``n_front`` visible points.

    The points cover about sqrt(n) pixels across; 2^depth cells across keeps a cell
    near a pixel for small images and caps the cost (see :data:`MAX_AUTO_DEPTH`) for
    large ones, where a cell spans two to four pixels.
    """
    return int(np.clip(math.ceil(math.log2(max(math.sqrt(max(n_front, 1)), 2))), 5, MAX_AUTO_DEPTH))


def poisson_scale(level: int) -> float:
    """Poisson's bounding cube over the points' extent: a margin of about ten finest cells.

    With Poisson's default 5% a coarse octree lets the solid touch the cube's side,
    where the surface is cut open.
    """
    return max(1.1, 1.0 + 10.0 / 2**level)


#: The cube for a second try when a closed solid came out cut open (see reconstruct_surface).
WIDE_SCALE = 1.5


#: Poisson solves up to this octree depth run on one thread: Open3D's threaded solve
#: numbers and splits its output differently from run to run, and after it the crossing
#: repair then moves different vertices, so the same photo would not always give the same
#: mesh. One thread costs about 0.1 s at the automatic depth (at most 7) on two cores;
#: deeper solves, asked for with --poisson-depth, use every core.
DETERMINISTIC_DEPTH = 8


def _poisson_threads(level: int) -> int:
    return 1 if level <= DETERMINISTIC_DEPTH else (os.cpu_count() or -1)


def closed_poisson(
    cloud,
    silhouette,
    intrinsics,
    level,
    threads=None,
    report=None,
    solids=None,
    back=None,
    prior=None,
):
    """The closed Poisson solid of ``cloud`` at the inflation's depth (:func:`thickness_map`),
    or with ``back``, the closing samples of the shape prior named ``prior``.

    Returns (mesh or None, cube scale, points used, taken from ``solids``). None: Poisson
    gave no closed surface, even in the wide cube. ``solids`` (a dict kept per point
    cloud) remembers the outcome per octree depth and prior, so a re-mesh with another
    thickness, smoothing or face count reuses it; the mesh in it is never modified.
    """
    if back is not None and prior is None:
        raise ValueError("closed_poisson: a back without the prior that made it")
    key = ("closed", level, prior)
    if solids is not None and key in solids:
        return (*solids[key], True)
    report = report or (lambda fraction, message: None)
    report(0.1, "Building the back surface")
    if back is None:
        back = back_cloud(cloud, silhouette, intrinsics)
    scale = poisson_scale(level)
    mesh, used = poisson_mesh(cloud, back, silhouette, intrinsics, level, scale, threads, report)
    if not is_closed(mesh.faces) and scale < WIDE_SCALE:
        # Sheets touching along an edge are separated already (separate_sheets).
        # What is left open is where the solid ran into the side of Poisson's
        # bounding cube (seen with noisy depth, whose inside can reach far out);
        # the same depth in a cube with a wide margin closes it, and runs faster.
        scale = WIDE_SCALE
        mesh, used = poisson_mesh(
            cloud, back, silhouette, intrinsics, level, scale, threads, report
        )
    if is_closed(mesh.faces):
        # Poisson leaves slivers that touch or cross their neighbours here and there:
        # relaxed once here, the solid is the clean anchor of every later step (its rim
        # is slid into the silhouette at the end: sliding a noisy rim first folds it).
        clean, left = cleaned(mesh.vertices, mesh.faces)
        mesh = Mesh(clean, mesh.faces, mesh.colors)
        mesh.crossings = left
    outcome = (frozen(mesh) if is_closed(mesh.faces) else None, scale, used)
    if solids is not None:
        solids[key] = outcome
    return (*outcome, False)


def frozen(mesh: Mesh) -> Mesh:
    """``mesh`` with read-only arrays: kept for later calls, it must never change."""
    for array in (mesh.vertices, mesh.faces, mesh.colors):
        array.flags.writeable = False
    return mesh


@contextmanager
def _without_poisson_warnings():
    """PoissonRecon (inside Open3D) prints its own warnings ("bad average roots: 3") straight
    to the process's stderr, past Open3D's verbosity: a user can do nothing with them. Its
    output is caught for the call, and all but those warnings is written on to stderr."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host): nothing to catch
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = _drop_poisson_warnings(sink.read().decode("utf-8", "replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def _drop_poisson_warnings(text: str) -> str:
    """``text`` without PoissonRecon's warning blocks: a "[WARNING] .../PoissonRecon/..."
    line and the indented lines after it."""
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("[WARNING]") and "PoissonRecon" in line:
            dropping = True
            continue
        if dropping and line[:1] in (" ", "\t"):
            continue
        dropping = False
        kept.append(line)
    return "".join(kept)


def poisson_mesh(cloud, back, silhouette, intrinsics, level, scale, threads, report):
    """Poisson on the front points (and ``back``, the closing samples, for a solid)."""
    import open3d as o3d

    closed = back is not None

    points = cloud.points.astype(np.float64)
    if cloud.normals is not None:
        normals = cloud.normals.astype(np.float64)
    else:
        grid = np.zeros(cloud.valid.shape + (3,), dtype=np.float64)
        grid[cloud.pixels[:, 0], cloud.pixels[:, 1]] = points
        normals = grid_normals(grid, cloud.valid)[cloud.pixels[:, 0], cloud.pixels[:, 1]]
    if closed:
        back, back_normals = back
        points = np.concatenate([points, back.astype(np.float64)])
        normals = np.concatenate([normals, back_normals.astype(np.float64)])

    # Poisson works in its own unit cube; centring and scaling first keeps extreme
    # depth units (millimetres, 1e6 "relative" units) from reaching it.
    centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
    size = float(np.max(points.max(axis=0) - points.min(axis=0)))
    if not (size > 0 and math.isfinite(size)):
        raise InputError("All points lie at one spot; there is no surface to build.")
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector((points - centre) / size))
    pcd.normals = o3d.utility.Vector3dVector(normals)

    report(0.2, f"Poisson surface (depth {level})")
    n_threads = threads if threads else _poisson_threads(level)
    with (
        o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error),
        _without_poisson_warnings(),
    ):
        surface, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
            pcd,
            depth=int(level),
            scale=scale,
            # A complete octree only a few levels deep: far from the samples nothing is
            # extracted, and small clouds run two to three times faster.
            full_depth=int(min(4, max(2, level - 3))),
            n_threads=int(n_threads),
        )
    vertices = np.asarray(surface.vertices) * size + centre
    faces = np.asarray(surface.triangles).astype(np.int64)
    densities = np.asarray(densities)
    if len(faces) == 0:
        raise InputError("Poisson reconstruction found no surface in these points.")

    report(0.7, "Cleaning the surface")
    if closed:
        vertices, faces = separate_sheets(vertices, faces)
    else:
        keep = _supported(
            vertices, densities, cloud, silhouette, intrinsics, scale * size / 2**level
        )
        faces = faces[keep[faces].all(axis=1)]
    faces = drop_small_pieces(vertices, faces, MIN_PIECE_SHARE)
    vertices, faces = compact(vertices, faces)
    if len(faces) == 0:
        raise InputError("The points support no surface once unsupported parts are trimmed.")
    return Mesh(vertices, faces, np.zeros_like(vertices)), len(points)


def _supported(vertices, densities, cloud, silhouette, intrinsics, cell) -> np.ndarray:
    """Vertices of an open surface that the points vouch for.

    Poisson closes every surface, so a front-only cloud comes back as a balloon whose
    far side no point supports. A vertex stays if it is within two octree cells of a
    point, inside the points' bounding box (grown by two cells), above the lowest
    Poisson sample density, and projects inside the silhouette (one pixel of slack).
    """
    import cv2
    from scipy.spatial import cKDTree

    reach = 2.0 * cell
    lo = cloud.points.min(axis=0) - reach
    hi = cloud.points.max(axis=0) + reach
    keep = np.all((vertices >= lo) & (vertices <= hi), axis=1)
    # Density trimming: the thinnest-supported 2% are where Poisson extrapolated.
    keep &= densities >= np.quantile(densities, 0.02)
    dist, _ = cKDTree(cloud.points.astype(np.float64)).query(vertices, k=1, workers=-1)
    keep &= dist <= reach
    grown = cv2.dilate(silhouette.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    keep &= projects_into(vertices, grown, intrinsics)
    return keep
