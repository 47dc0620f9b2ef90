"""Stage 5: point cloud -> triangle mesh (screened Poisson or the depth grid), closed or open, coloured from the photo."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import numpy as np

from .camera import Intrinsics
from .errors import InputError, OptionError
from .mesh import Mesh
from .pointcloud import MIN_POINTS, PointCloud, default_edge_threshold, grid_normals
from .solid import crossing_pairs, repair_limit, untangle, volume_report

METHODS = ("poisson", "grid")

#: Back-surface depth behind the front, in pixels, is ``INFLATION * sqrt(h)`` where h solves
#: laplacian(h) = -1 inside the silhouette (h = 0 on it). A disc then becomes an
#: ellipsoid three quarters as deep as wide (4 would be a sphere) and a long strip a
#: cylinder (2.83): most photographed objects are not deeper than they are wide.
INFLATION = 3.0

#: Connected pieces of a Poisson surface smaller than this share of its area are dropped.
MIN_PIECE_SHARE = 0.01

Progress = Callable[[float, str], None]


def reconstruct_surface(
    cloud: PointCloud,
    depth: np.ndarray,
    rgb: np.ndarray,
    mask: np.ndarray,
    intrinsics: Intrinsics,
    *,
    method: str = "poisson",
    closed: bool = True,
    poisson_depth: int | None = None,
    thickness: float | None = None,
    target_faces: int | None = None,
    smooth: int = 0,
    threads: int | None = None,
    progress: Progress | None = None,
    solids: dict | None = None,
    shape: str = "auto",
) -> tuple[Mesh, dict]:
    """Build the object's surface from ``cloud``; returns the mesh (camera frame) and facts about it.

    method "poisson": screened Poisson. ``closed=True`` gives a watertight solid: the
    visible surface plus a back surface pushed away from the camera along each pixel's
    ray, as deep as an inflation of the silhouette and meeting the front at the
    silhouette, so the solid never leaves the silhouette and Poisson has no unsupported
    region to balloon into. Another ``thickness`` (x the object's width) stretches that
    solid along each ray (see :func:`closed_poisson`): one Poisson solve serves every
    thickness. ``solids``, a dict the caller keeps per point cloud, holds the Poisson
    surfaces (closed and open, per depth) for the next call with the same ``cloud``.
    ``closed=False`` keeps only the visible surface (Poisson on the front points,
    trimmed to where points support it and to the silhouette).
    method "grid": two triangles per 2x2 block of valid pixels, split at depth jumps;
    closed adds the same back surface and walls along every border.

    ``depth``, ``rgb`` and ``mask`` are the maps ``cloud`` was made from (same size).
    Vertex colours come from the photo at the pixel each vertex projects to. The info
    dict holds ``method``, ``closed``, ``poisson_depth``, ``poisson_scale``,
    ``points_used``, ``vertices``, ``faces``, ``watertight``, ``seconds`` and ``warnings``
    (sentences for the user); Poisson adds ``poisson_reused`` (taken from ``solids``).
    """
    _check_options(method, poisson_depth, thickness, target_faces, smooth)
    mask = np.asarray(mask).astype(bool)
    rgb = np.asarray(rgb)
    expected = cloud.valid.shape
    for name, got in (
        ("mask", mask.shape),
        ("photo", rgb.shape[:2]),
        ("depth map", np.shape(depth)),
    ):
        if tuple(got) != expected:
            raise InputError(
                f"The {name} is {_size(got)} but the point cloud comes from a "
                f"{expected[1]}x{expected[0]} image."
            )
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise InputError(f"The photo must be an RGB image, not an array of shape {rgb.shape}.")
    rgb = rgb[..., :3]
    if len(cloud) < MIN_POINTS:
        raise InputError(
            f"Only {len(cloud)} points are left; at least {MIN_POINTS} are needed to build a surface."
        )
    report = progress or (lambda fraction, message: None)
    start = time.perf_counter()
    info: dict = {"method": method, "closed": bool(closed), "warnings": []}
    # The silhouette that bounds the result: the mask where it holds the points, else the points.
    silhouette = mask | cloud.valid
    anchor = None
    anchor_crossings = None  # crossing pairs left in the anchor; None: not counted
    solid = None
    # The closed surface crosses itself beyond repair (core.solid.repair_limit): no step
    # tries to repair it again, it is counted once and reported as not a valid volume.
    # (the crossing pairs found, at least; 0: repairable)
    tangled = 0

    if method == "grid":
        report(0.1, "Triangulating the depth grid")
        mesh = _grid_mesh(cloud, silhouette, intrinsics, closed, thickness)
        info["poisson_depth"] = None
        info["poisson_scale"] = None
        info["points_used"] = len(cloud)
    else:
        level = poisson_depth if poisson_depth is not None else choose_poisson_depth(len(cloud))
        if closed:
            back = None
            if shape != "inflate" and (thickness is None or shape == "revolve"):
                from .shape_prior import choose_back

                report(0.05, "Looking for a surface of revolution")
                fit, why = choose_back(shape, cloud, silhouette, intrinsics)
                info["shape"] = (
                    "revolve" if fit is not None and why.startswith("revolve") else "inflate"
                )
                info["shape_note"] = why
                if fit is not None:
                    info["shape_fit"] = dict(fit.quality)
                if info["shape"] == "revolve":
                    back = _revolved_back(fit, cloud, intrinsics)
                    if thickness is not None:
                        info["warnings"].append(
                            "The thickness is ignored: the hidden side was made by turning "
                            "the visible surface about its axis (--shape revolve)."
                        )
                        thickness = None
            else:
                info["shape"] = "inflate"
                info["shape_note"] = (
                    "inflate (asked)" if shape == "inflate" else ("inflate (a thickness was given)")
                )
            solid, scale, used, reused = closed_poisson(
                cloud, silhouette, intrinsics, level, threads, report, solids, back=back
            )
            if back is not None and (solid is None or _tangled(solid)):
                # The turned surface gave Poisson no closed solid (or one crossing itself
                # beyond repair): inflate as before.
                info["shape"] = "inflate"
                info["shape_note"] = "inflate (the turned surface gave no closed solid)"
                solid, scale, used, reused = closed_poisson(
                    cloud, silhouette, intrinsics, level, threads, report, solids
                )
            info["poisson_reused"] = reused
            if solid is not None and _tangled(solid):
                # Far too many crossings to repair (noise, not a fold): the depth grid is
                # tried once instead; when it is no valid volume either, the Poisson solid stays and
                # is reported as not a valid volume.
                # (valid by construction: see _close_with_back)
                grid = _grid_mesh(cloud, silhouette, intrinsics, True, thickness)
                info["warnings"].append(
                    "Poisson's closed surface crossed itself too often to repair, so the "
                    "solid was built from the depth grid instead."
                )
                solid, thickness = None, None
                mesh = grid
                anchor, anchor_crossings, tangled = _f32(grid.vertices), 0, 0
            if solid is None and anchor is None:
                info["warnings"].append(
                    "Poisson gave no closed surface for these points, so the solid was built "
                    "from the depth grid instead."
                )
                mesh = _grid_mesh(cloud, silhouette, intrinsics, True, thickness)
            elif solid is None:
                pass  # the depth grid, made above
            elif thickness is None:
                mesh = solid
                tangled = _tangled(solid)
            else:
                report(0.75, "Setting the thickness")
                mesh = _stretched(solid, cloud, silhouette, intrinsics, thickness)
                # Folds the stretch makes are relaxed where they are: going back to the
                # solid before stretching would undo the thickness asked for there (the
                # deepest point of a sphere came back 8% too deep). Only where relaxing
                # leaves crossings is the unstretched solid the anchor.
                stretched, left = _cleaned(mesh.vertices, mesh.faces)
                if left == 0:
                    # each vertex back onto its own ray (it keeps its pixel), then counted
                    ray = _f32(mesh.vertices)
                    along = np.einsum("ij,ij->i", stretched, ray) / np.einsum("ij,ij->i", ray, ray)
                    stretched = _f32(ray * along[:, None])
                    moved = np.any(stretched != ray, axis=1)[mesh.faces].any(axis=1)
                    left = _count(stretched, mesh.faces, moved)
                if left == 0:
                    mesh = Mesh(stretched, mesh.faces, mesh.colors)
                    anchor, anchor_crossings = stretched, 0
                else:
                    anchor = solid.vertices
                    anchor_crossings = getattr(solid, "crossings", None)
                    tangled = _tangled(solid)
        else:
            scale = poisson_scale(level)
            known = solids.get(("open", level)) if solids is not None else None
            info["poisson_reused"] = known is not None
            if known is not None:
                mesh, used = known
            else:
                mesh, used = _poisson_mesh(
                    cloud, None, silhouette, intrinsics, level, scale, threads, report
                )
                if solids is not None:
                    solids[("open", level)] = (_frozen(mesh), used)
        info["poisson_depth"] = level
        info["poisson_scale"] = scale
        info["points_used"] = used

    # The surface as meshed, before any step that moves its vertices, and the crossing
    # pairs it has (counted once, or none by construction). Each later step counts only
    # the faces whose vertices it moved and sends those back toward the surface before it
    # where they cross (core.solid.untangle, bounded): no step searches the whole mesh
    # again, except decimation, whose faces are new.
    counted = True
    by_construction = closed and (method == "grid" or solid is None) and not smooth
    fresh = anchor is None  # (else the anchor is the surface before stretching it)
    if fresh:
        anchor = mesh.vertices
        if closed and (method == "grid" or solid is None):
            # The depth grid's solid crosses nowhere by construction (_close_with_back).
            anchor_crossings = 0
        elif solid is not None:
            anchor_crossings = getattr(solid, "crossings", None)
    if closed:
        anchor = _f32(anchor)
        if tangled:
            anchor_crossings, counted = tangled, False
        elif anchor_crossings is None:  # not counted yet
            anchor_crossings, counted = _count_all(anchor, mesh.faces)
        if fresh:
            mesh = Mesh(anchor, mesh.faces, mesh.colors)
    if smooth > 0:
        report(0.8, "Smoothing")
        mesh = _taubin(mesh, smooth)
        if closed and counted:
            vertices, anchor_crossings, counted = _settle(
                mesh.vertices, mesh.faces, anchor, anchor_crossings, "smoothing", info["warnings"]
            )
            mesh = Mesh(vertices, mesh.faces, mesh.colors)
            anchor = vertices
    if target_faces is not None and mesh.n_faces > target_faces:
        report(0.85, "Simplifying")
        mesh = _decimate(mesh, target_faces)
        by_construction = False
        if closed:
            # New faces: counted once, and relaxed apart where decimation folded them.
            relaxed, anchor_crossings = untangle(_f32(mesh.vertices), mesh.faces, float32=True)
            counted = anchor_crossings <= repair_limit(len(mesh.faces))
            mesh = Mesh(relaxed, mesh.faces, mesh.colors)
            anchor = relaxed
        if closed and not is_closed(mesh.faces):
            info["warnings"].append(
                "Simplifying opened small holes in the closed surface; ask for more faces to keep it watertight."
            )
    if mesh.n_faces == 0:
        raise InputError("No surface could be built from these points (the result had no faces).")

    report(0.95, "Colouring")
    faces = np.array(mesh.faces)  # a copy: the surface may be one kept in `solids`
    vertices = _keep_inside(mesh.vertices, silhouette, intrinsics)
    volume = {"valid": False, "self_intersections": None}
    if closed:
        # Checked as written: the mesh keeps float32 coordinates.
        if counted:
            # (the last step: a new thickness's stretch if any, and the fit inside the outline)
            step = "fit inside the photo's outline" if fresh else "thickness"
            vertices, anchor_crossings, counted = _settle(
                vertices, faces, anchor, anchor_crossings, step, info["warnings"]
            )
        vertices = _f32(vertices)
        # (one fan of faces around each vertex: by construction on the untouched grid)
        fans = True if by_construction else None
        volume = volume_report(vertices, faces, pairs=anchor_crossings, counted=counted, fans=fans)
        if is_closed(faces) and not volume["valid"]:
            info["warnings"].append(_invalid_volume_warning(volume))
    colors = _sample_colors(vertices, rgb, silhouette, intrinsics)
    mesh = Mesh(vertices, faces, colors, _vertex_normals(vertices, faces))
    info.update(
        vertices=mesh.n_vertices,
        faces=mesh.n_faces,
        watertight=bool(volume["valid"]),
        # None: not counted to the end (beyond repair, see core.solid.repair_limit)
        self_intersections=(
            volume["self_intersections"] if volume.get("self_intersections_counted", True) else None
        ),
        seconds=round(time.perf_counter() - start, 3),
    )
    report(1.0, "Surface done")
    return mesh, info


def _cleaned(vertices: np.ndarray, faces: np.ndarray, keep=None) -> tuple[np.ndarray, int]:
    """A freshly meshed closed surface with its touching and crossing faces relaxed apart.

    Returns float32-exact vertices and the crossing pairs left, counted on those values
    (where the relaxation moved vertices; the rest was counted before).
    """
    return untangle(_f32(vertices), faces, rounds=20, keep=keep, float32=True)


def _count(vertices: np.ndarray, faces: np.ndarray, active=None) -> int:
    """Crossing pairs (among ``active`` faces), or more than repair_limit when beyond it."""
    limit = repair_limit(len(faces))
    pairs, complete = crossing_pairs(vertices, faces, active, limit=limit + 1)
    return len(pairs) if complete else max(len(pairs), limit + 1)


def _count_all(vertices: np.ndarray, faces: np.ndarray) -> tuple[int, bool]:
    """Crossing pairs of the whole surface, and whether that is all of them (bounded search)."""
    left = _count(vertices, faces)
    return left, left <= repair_limit(len(faces))


def _settle(
    vertices, faces, anchor, anchor_crossings: int, step: str, warnings: list[str]
) -> tuple[np.ndarray, int, bool]:
    """``vertices`` after a step that moved them from ``anchor`` (``anchor_crossings`` pairs).

    Only the faces with a moved vertex are searched (bounded); where they cross, their
    vertices go back toward the anchor (:func:`core.solid.untangle`). Returns the
    float32-exact vertices, the crossing pairs left and whether that count is complete.
    When the anchor itself crossed (the count is then not local), the whole surface is
    counted once more: the report stays true on a surface that is no valid volume anyway.
    When the repair leaves crossings that the anchor did not have (rare: a very thick
    solid folded by its stretch), the step is undone: the anchor is returned, and
    ``warnings`` says so, naming the ``step``.
    """
    v, anchor = _f32(vertices), _f32(anchor)
    moved = np.any(v != anchor, axis=1)
    if not moved.any():
        return v, anchor_crossings, True
    out, left = untangle(v, faces, anchor, rounds=20, float32=True)
    if 0 < left <= repair_limit(len(faces)):
        # Faces that touch even where the anchor is (the anchor was checked at its own
        # size, smaller than a thickened solid's): relaxed apart where they are.
        out, left = untangle(out, faces, rounds=20, float32=True)
    complete = left <= repair_limit(len(faces))
    if complete and (anchor_crossings or left):
        left, complete = _count_all(out, faces)
    if left and anchor_crossings == 0:
        warnings.append(
            f"The {step} made faces cross that could not be repaired, so it was not applied "
            "to the solid."
        )
        return anchor, 0, True
    return out, left, complete


def _tangled(solid: Mesh) -> int:
    """The crossing pairs a closed Poisson solid was left with when beyond repair, else 0."""
    return _beyond(getattr(solid, "crossings", 0), len(solid.faces))


def _beyond(crossings: int, n_faces: int) -> int:
    return crossings if crossings > repair_limit(n_faces) else 0


def _f32(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).astype(np.float64)


def _invalid_volume_warning(volume: dict) -> str:
    if not volume.get("self_intersections_counted", True):
        why = "its faces cross each other in too many places to count or repair"
    elif volume["self_intersections"]:
        why = f"{volume['self_intersections']} pairs of its faces cross each other"
    elif not volume["vertex_manifold"]:
        why = "some of its vertices join surfaces that only touch there"
    elif not volume["oriented"] or volume["volume"] <= 0:
        why = "its faces are not all wound outward"
    else:
        why = "it is not closed"
    return (
        f"The closed surface is not a valid volume ({why}); Booleans and 3D printing may "
        "fail on it."
    )


# --- options ----------------------------------------------------------------------------------


def _size(shape) -> str:
    return (
        f"{shape[1]}x{shape[0]} pixels" if len(shape) >= 2 else f"an array of shape {tuple(shape)}"
    )


def _check_options(method, poisson_depth, thickness, target_faces, smooth) -> None:
    if method not in METHODS:
        raise OptionError(f"Unknown mesh method '{method}': choose one of {', '.join(METHODS)}.")
    if poisson_depth is not None and not (4 <= int(poisson_depth) <= 12):
        raise OptionError(f"The Poisson depth must be between 4 and 12, not {poisson_depth}.")
    if thickness is not None and not (0 < thickness <= 10 and math.isfinite(thickness)):
        raise OptionError(
            f"The thickness must be a positive share of the object's width, not {thickness:g}."
        )
    if target_faces is not None and target_faces < 4:
        raise OptionError(f"The target face count must be at least 4, not {target_faces}.")
    if smooth < 0:
        raise OptionError(f"Smoothing iterations cannot be negative ({smooth}).")


# --- the back surface -------------------------------------------------------------------------


def thickness_map(
    mask: np.ndarray, *, share: float | None = None, max_side: int = 128
) -> np.ndarray:
    """(H, W) float32 depth of the solid behind the front surface, in pixels; 0 off the mask.

    The silhouette is inflated: h solves laplacian(h) = -1 inside with h = 0 on the
    outline, and the depth is :data:`INFLATION` x sqrt(h), which falls to zero at the
    outline like the rim of a round object. The solve runs on a copy at most
    ``max_side`` pixels across (it is smooth, so that loses nothing) and a floor from
    the exact distance transform keeps parts too thin for that copy. ``share`` rescales
    the result so its deepest point is that share of the object's width.
    """
    import cv2

    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.shape, dtype=np.float32)
    if not mask.any():
        return out
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height = rows[-1] - rows[0] + 1
    width = cols[-1] - cols[0] + 1
    step = max(1, math.ceil(max(height, width) / max_side))
    # A background border around the crop, and a size divisible by the step.
    ph = math.ceil((height + 2) / step) * step
    pw = math.ceil((width + 2) / step) * step
    crop = np.zeros((ph, pw), dtype=np.uint8)
    crop[1 : height + 1, 1 : width + 1] = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    dist = cv2.distanceTransform(crop, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    h = dist * dist / 4.0  # the centre of a disc of radius d has h = d^2 / 4
    if step > 1:
        small = cv2.resize(
            crop.astype(np.float32), (pw // step, ph // step), interpolation=cv2.INTER_AREA
        )
        coarse = _inflate(small > 0.5) * float(step * step)
        h = np.maximum(h, cv2.resize(coarse, (pw, ph), interpolation=cv2.INTER_LINEAR))
    else:
        h = np.maximum(h, _inflate(crop > 0))
    t = INFLATION * np.sqrt(np.maximum(h, 0.0)) * (crop > 0)
    if share is not None and t.max() > 0:
        t *= share * width / t.max()
    out[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = t[1 : height + 1, 1 : width + 1]
    return out


def _inflate(inside: np.ndarray) -> np.ndarray:
    """Solve laplacian(h) = -1 on the pixels ``inside`` with h = 0 outside (5-point stencil)."""
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    out = np.zeros(inside.shape, dtype=np.float32)
    n = int(inside.sum())
    if n == 0:
        return out
    index = np.full(inside.shape, -1, dtype=np.int64)
    index[inside] = np.arange(n)
    padded = np.pad(index, 1, constant_values=-1)
    centre = padded[1:-1, 1:-1][inside]
    rows, cols = [centre], [centre]
    data = [np.full(n, 4.0)]
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nb = padded[1 + dr : padded.shape[0] - 1 + dr, 1 + dc : padded.shape[1] - 1 + dc][inside]
        keep = nb >= 0
        rows.append(centre[keep])
        cols.append(nb[keep])
        data.append(np.full(int(keep.sum()), -1.0))
    a = sparse.csc_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    out[inside] = spsolve(a, np.ones(n))
    return out


def _back_cloud(cloud: PointCloud, silhouette: np.ndarray, intrinsics: Intrinsics):
    """Samples closing the visible surface into a solid: the back surface and the rim wall.

    Each front point is pushed along its own ray by the thickness at its pixel (so it
    still projects there). Where the silhouette's outermost pixels have points, the
    gap between front and back is sampled too, with normals across the ray pointing
    out of the silhouette: at a rim the true surface runs along the viewing rays,
    and without these samples Poisson bulges the unsupported gap out of the
    silhouette (8-11% of the area on the oracle scenes).
    """
    t = thickness_map(silhouette)
    focal = math.sqrt(intrinsics.fx * intrinsics.fy)
    r, c = cloud.pixels[:, 0], cloud.pixels[:, 1]
    # z grows by t pixels' worth of lateral size at that depth (t z / f), so the point
    # scales along its own ray by 1 + t / f and keeps projecting to its pixel.
    scale = 1.0 + t[r, c] / focal
    grid = np.zeros(cloud.valid.shape + (3,), dtype=np.float64)
    grid[r, c] = cloud.points * scale[:, None]
    normals = grid_normals(grid, cloud.valid, toward_camera=False)
    wall, wall_normals = _rim_wall(cloud, silhouette, t, intrinsics)
    return (
        np.concatenate([grid[r, c], wall]),
        np.concatenate([normals[r, c].astype(np.float64), wall_normals]),
    )


def _rim_wall(cloud: PointCloud, silhouette: np.ndarray, t: np.ndarray, intrinsics: Intrinsics):
    """Points between front and back along the rays of the silhouette's outermost pixels."""
    import cv2

    inside = silhouette.astype(np.uint8)
    core_ = cv2.erode(
        inside, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0
    )
    rim = cloud.valid[cloud.pixels[:, 0], cloud.pixels[:, 1]] & ~(
        core_[cloud.pixels[:, 0], cloud.pixels[:, 1]] > 0
    )
    if not rim.any():
        return np.zeros((0, 3)), np.zeros((0, 3))
    r, c = cloud.pixels[rim, 0], cloud.pixels[rim, 1]
    front = cloud.points[rim].astype(np.float64)
    depth_px = t[r, c].astype(np.float64)
    # About one sample per pixel of wall height, at most 64 per rim pixel.
    counts = np.clip(np.ceil(depth_px), 1, 64).astype(np.int64)
    owner = np.repeat(np.arange(len(r)), counts)
    starts = np.cumsum(counts) - counts
    step = (np.arange(owner.size) - starts[owner] + 0.5) / counts[owner]
    focal = math.sqrt(intrinsics.fx * intrinsics.fy)
    points = front[owner] * (1.0 + step * depth_px[owner] / focal)[:, None]

    # Outward in the image: down the gradient of the blurred silhouette.
    blurred = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 1.5)
    gu = -cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)[r, c].astype(np.float64)
    gv = -cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)[r, c].astype(np.float64)
    z = front[:, 2]
    lateral = np.stack([gu * z / intrinsics.fx, gv * z / intrinsics.fy, np.zeros_like(z)], axis=1)
    ray = front / np.linalg.norm(front, axis=1, keepdims=True)
    # Across the ray: the wall itself runs along it.
    lateral -= np.sum(lateral * ray, axis=1, keepdims=True) * ray
    length = np.linalg.norm(lateral, axis=1, keepdims=True)
    good = (length[:, 0] > 0) & np.isfinite(length[:, 0])
    lateral = np.where(good[:, None], lateral / np.where(good[:, None], length, 1.0), 0.0)
    keep = good[owner]
    return points[keep], lateral[owner][keep]


# --- Poisson ----------------------------------------------------------------------------------


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


def _revolved_back(fit, cloud: PointCloud, intrinsics: Intrinsics):
    """Closing samples with the shape prior: the turned body, and each part inflated alone.

    Front points off the lathe body (a handle, a spout) keep the usual back surface,
    made from their own outline, so the part is a solid of its own; the closed Poisson
    surface of everything is then the union of body and parts.
    """
    import cv2

    points, normals = [fit.back_points], [fit.back_normals]
    part = ~fit.body
    if part.sum() >= max(MIN_POINTS, 0.01 * len(cloud)):
        mask = np.zeros(cloud.valid.shape, dtype=np.uint8)
        mask[cloud.pixels[part, 0], cloud.pixels[part, 1]] = 1
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= max(MIN_POINTS, 0.005 * len(cloud)))
        keep_mask = np.isin(labels, big[big > 0])
        sel = keep_mask[cloud.pixels[:, 0], cloud.pixels[:, 1]] & part
        if sel.sum() >= MIN_POINTS:
            sub = PointCloud(
                cloud.points[sel],
                cloud.colors[sel],
                None if cloud.normals is None else cloud.normals[sel],
                cloud.pixels[sel],
                keep_mask & cloud.valid,
            )
            back, back_normals = _back_cloud(sub, keep_mask, intrinsics)
            points.append(back)
            normals.append(back_normals)
    return np.concatenate(points), np.concatenate(normals)


def closed_poisson(
    cloud, silhouette, intrinsics, level, threads=None, report=None, solids=None, back=None
):
    """The closed Poisson solid of ``cloud`` at the inflation's depth (:func:`thickness_map`).

    Returns (mesh or None, cube scale, points used, taken from ``solids``). None: Poisson
    gave no closed surface, even in the wide cube. ``solids`` (a dict kept per point
    cloud) remembers the outcome per octree depth, so a re-mesh with another thickness,
    smoothing or face count reuses it; the mesh in it is never modified.
    """
    key = ("closed", level, back is not None)
    if solids is not None and key in solids:
        return (*solids[key], True)
    report = report or (lambda fraction, message: None)
    report(0.1, "Building the back surface")
    if back is None:
        back = _back_cloud(cloud, silhouette, intrinsics)
    scale = poisson_scale(level)
    mesh, used = _poisson_mesh(cloud, back, silhouette, intrinsics, level, scale, threads, report)
    if not is_closed(mesh.faces) and scale < WIDE_SCALE:
        # Sheets touching along an edge are separated already (_separate_sheets).
        # What is left open is where the solid ran into the side of Poisson's
        # bounding cube (seen with noisy depth, whose inside can reach far out);
        # the same depth in a cube with a wide margin closes it, and runs faster.
        scale = WIDE_SCALE
        mesh, used = _poisson_mesh(
            cloud, back, silhouette, intrinsics, level, scale, threads, report
        )
    if is_closed(mesh.faces):
        # Poisson leaves slivers that touch or cross their neighbours here and there:
        # relaxed once here, the solid is the clean anchor of every later step (its rim
        # is slid into the silhouette at the end: sliding a noisy rim first folds it).
        clean, left = _cleaned(mesh.vertices, mesh.faces)
        mesh = Mesh(clean, mesh.faces, mesh.colors)
        mesh.crossings = left
    outcome = (_frozen(mesh) if is_closed(mesh.faces) else None, scale, used)
    if solids is not None:
        solids[key] = outcome
    return (*outcome, False)


def _frozen(mesh: Mesh) -> Mesh:
    """``mesh`` with read-only arrays: kept for later calls, it must never change."""
    for array in (mesh.vertices, mesh.faces, mesh.colors):
        array.flags.writeable = False
    return mesh


def _stretched(solid: Mesh, cloud: PointCloud, silhouette, intrinsics: Intrinsics, thickness):
    """``solid`` (made at the inflation's depth) with its back at ``thickness`` x the width.

    Each vertex moves along its own ray, so it keeps its pixel (and the solid its
    silhouette and topology). Its offset behind the front surface at that pixel, d, is
    stretched by the ratio k of the two depths within the solid (0 <= d <= t, the
    inflation's depth there): the front stays, the back lands k x as deep, the rim
    between is stretched evenly, and what lies beyond t (Poisson's rounding of the
    back) moves with the back. On the oracle scenes this is as close to the intended
    solid as solving Poisson again on a back at that depth, and closer for thin ones.
    """
    t = thickness_map(silhouette)
    k = float(thickness_map(silhouette, share=thickness).max() / t.max())
    vertices = solid.vertices
    # The front depth at each pixel: the points' depth, else the nearest point's.
    front = np.zeros(cloud.valid.shape, dtype=np.float64)
    front[cloud.pixels[:, 0], cloud.pixels[:, 1]] = cloud.points[:, 2]
    rows, cols = _nearest_inside(cloud.valid)
    front, t = front[rows, cols], t[rows, cols]
    u, v = intrinsics.project(vertices)
    # Read both between pixel centres: a map that jumps from pixel to pixel would
    # fold the faces that run along the rays at the rim through each other.
    front_at, t_at = _bilinear(front, u, v), _bilinear(t, u, v)
    # A point scaled by (1 + d / f) along its ray lies d pixels' worth of width behind.
    focal = math.sqrt(intrinsics.fx * intrinsics.fy)
    ratio = vertices[:, 2] / front_at
    d = (ratio - 1.0) * focal
    d = d + (k - 1.0) * np.clip(d, 0.0, t_at)
    moved = vertices * ((1.0 + d / focal) / ratio)[:, None]
    return Mesh(moved, solid.faces, solid.colors, None)


def _bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``image`` read at (column u, row v), linearly between pixel centres, clamped at its sides."""
    h, w = image.shape
    u = np.clip(np.nan_to_num(u), 0, w - 1)
    v = np.clip(np.nan_to_num(v), 0, h - 1)
    c0 = np.minimum(np.floor(u).astype(np.int64), w - 2) if w > 1 else np.zeros(len(u), int)
    r0 = np.minimum(np.floor(v).astype(np.int64), h - 2) if h > 1 else np.zeros(len(v), int)
    c1, r1 = np.minimum(c0 + 1, w - 1), np.minimum(r0 + 1, h - 1)
    fu, fv = u - c0, v - r0
    top = image[r0, c0] * (1 - fu) + image[r0, c1] * fu
    bottom = image[r1, c0] * (1 - fu) + image[r1, c1] * fu
    return top * (1 - fv) + bottom * fv


#: Poisson solves up to this octree depth run on one thread: Open3D's threaded solve
#: numbers and splits its output differently from run to run, and after it the crossing
#: repair then moves different vertices, so the same photo would not always give the same
#: mesh. One thread costs about 0.1 s at the automatic depth (at most 7) on two cores;
#: deeper solves, asked for with --poisson-depth, use every core.
DETERMINISTIC_DEPTH = 8


def _poisson_threads(level: int) -> int:
    return 1 if level <= DETERMINISTIC_DEPTH else (os.cpu_count() or -1)


def _poisson_mesh(cloud, back, silhouette, intrinsics, level, scale, threads, report):
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
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
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
        vertices, faces = _separate_sheets(vertices, faces)
    else:
        keep = _supported(
            vertices, densities, cloud, silhouette, intrinsics, scale * size / 2**level
        )
        faces = faces[keep[faces].all(axis=1)]
    faces = _drop_small_pieces(vertices, faces, MIN_PIECE_SHARE)
    vertices, faces = _compact(vertices, faces)
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
    keep &= _projects_into(vertices, grown, intrinsics)
    return keep


def _drop_small_pieces(vertices: np.ndarray, faces: np.ndarray, share: float) -> np.ndarray:
    """Faces of the connected pieces whose area is at least ``share`` of the whole."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(faces) == 0:
        return faces
    n = len(vertices)
    graph = coo_matrix(
        (
            np.ones(2 * len(faces)),
            (np.r_[faces[:, 0], faces[:, 1]], np.r_[faces[:, 1], faces[:, 2]]),
        ),
        shape=(n, n),
    )
    count, labels = connected_components(graph, directed=False)
    if count == 1:
        return faces
    area = _face_areas(vertices, faces)
    piece = labels[faces[:, 0]]
    piece_area = np.bincount(piece, weights=area, minlength=count)
    keep = piece_area >= share * piece_area.sum()
    return faces[keep[piece]]


# --- the depth grid ---------------------------------------------------------------------------


def _grid_mesh(cloud: PointCloud, silhouette, intrinsics: Intrinsics, closed: bool, thickness):
    h, w = cloud.valid.shape
    index = np.full((h, w), -1, dtype=np.int64)
    index[cloud.pixels[:, 0], cloud.pixels[:, 1]] = np.arange(len(cloud))
    z = np.full((h, w), np.nan, dtype=np.float64)
    z[cloud.pixels[:, 0], cloud.pixels[:, 1]] = cloud.points[:, 2]
    faces = grid_faces(index, z, default_edge_threshold(intrinsics))
    if len(faces) == 0:
        raise InputError(
            "No 2x2 block of neighbouring pixels has depth on one surface; the grid has no faces."
        )
    vertices = cloud.points.astype(np.float64)
    if closed:
        n_points = len(vertices)
        vertices, faces, border = _split_pinches(vertices, faces)
        back, _ = _pushed_back(vertices, cloud, silhouette, intrinsics, thickness)
        n_front = len(vertices)
        u, v = intrinsics.project(vertices)
        pixel = np.stack([np.rint(v), np.rint(u)], axis=1).astype(np.int64)
        lean = _outward_lean(faces, border, pixel, np.arange(len(vertices)) >= n_points)
        back = back * (1.0 + _lean_depth(faces, pixel, back, lean) / back[:, 2])[:, None]
        z = back[:, 2]
        back[:, 0] += lean[:, 1] * z / intrinsics.fx
        back[:, 1] += lean[:, 0] * z / intrinsics.fy
        vertices, faces = _close_with_back(vertices, faces, back, border, pixel)
    front = np.arange(len(vertices)) < (n_front if closed else len(vertices))
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.reshape(-1)] = True
    vertices, faces = _compact(vertices, faces)
    mesh = Mesh(vertices, faces, np.zeros_like(vertices))
    mesh.front = front[used]  # the measured points (and their pinch copies): kept in place
    return mesh


def _lean_depth(faces, pixel, back, lean) -> np.ndarray:
    """How much deeper (along its ray) each back copy goes so that its lean cannot bring
    the back in front of the front: twice its lean (pixels) times the back's steepest
    depth change per pixel along the front edges at it.

    On their rays the back lies behind the front at every pixel. Moving one back copy
    sideways by d pixels changes the back's depth near it by at most its slope times d
    (the back is linear over each triangle); going that much deeper makes up for it. It
    matters only where the front is steep at the outline (a rod seen end on: a fifth of
    a pixel there is several centimetres of depth).
    """
    src, dst = _half_edges(faces)
    step = np.linalg.norm((pixel[dst] - pixel[src]).astype(np.float64), axis=1)
    slope = np.abs(back[dst, 2] - back[src, 2]) / np.maximum(step, 1.0)
    steepest = np.zeros(len(back))
    np.maximum.at(steepest, src, slope)
    np.maximum.at(steepest, dst, slope)
    return 2.0 * steepest * np.linalg.norm(lean, axis=1)


#: The back copy of a grid border vertex leans out of the silhouette by this many
#: pixels (times 1 to 2, varying from pixel to pixel): see :func:`_outward_lean`.
LEAN = 0.1


def _outward_lean(faces, border, pixel, pinch) -> np.ndarray:
    """(N, 2) image offset, (rows, columns), for the back copy of each grid vertex.

    The walls of a closed grid stand on its border edges, each in the plane through
    the camera centre of its edge's two pixel rays: along a straight stretch of
    outline all of them lie in one plane, and faces a hair apart in one plane are
    what float intersection tests (Open3D's too) get wrong. Each border vertex's back
    copy therefore leans outward (away from the faces, along the mean of its two
    border edges' outward normals) by :data:`LEAN` x (1 to 2) pixels, the factor
    varying without a period along any line of pixels, so no two walls share a plane.
    The front stays on its pixel rays; a leaned copy stays inside its own pixel
    (at most 0.2 of a pixel out), and the walls of border edges with no pixel in
    common stay apart in the image (they are at least 0.7 pixel apart there). Pinch
    copies (:func:`_split_pinches`) are not leaned: their walls meet other walls at
    that pixel.
    """
    src, dst = _half_edges(faces)
    third = np.concatenate([faces[:, 2], faces[:, 0], faces[:, 1]])
    out = np.zeros((len(pixel), 2), dtype=np.float64)
    a, b, c = src[border], dst[border], third[border]
    if len(a) == 0:
        return out
    e = (pixel[b] - pixel[a]).astype(np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    normal = np.stack([e[:, 1], -e[:, 0]], axis=1)
    inward = (pixel[c] - pixel[a]).astype(np.float64)
    normal *= np.where(np.einsum("ij,ij->i", normal, inward) > 0, -1.0, 1.0)[:, None]
    total = np.zeros_like(out)
    np.add.at(total, a, normal)
    np.add.at(total, b, normal)
    # At the tip of a spike the two normals cancel: the tip leans along the spike.
    along = np.zeros_like(out)
    np.add.at(along, b, e)
    np.add.at(along, a, -e)
    length = np.linalg.norm(total, axis=1, keepdims=True)
    spike = length[:, 0] < 0.5
    total[spike] = along[spike]
    length = np.linalg.norm(total, axis=1, keepdims=True)
    on_border = (length[:, 0] > 0) & ~pinch
    r, col = pixel[:, 0].astype(np.float64), pixel[:, 1].astype(np.float64)
    factor = 1.0 + np.mod(0.6180339887 * r + 0.7548776662 * col, 1.0)
    out[on_border] = (LEAN * factor[on_border, None] * total[on_border]) / length[on_border]
    return out


def _pushed_back(vertices, cloud, silhouette, intrinsics, thickness):
    """Back copies of ``vertices`` (front points, possibly duplicated at pinches)."""
    t = thickness_map(silhouette, share=thickness)
    focal = math.sqrt(intrinsics.fx * intrinsics.fy)
    u, v = intrinsics.project(vertices)
    r = np.clip(np.rint(v).astype(np.int64), 0, t.shape[0] - 1)
    c = np.clip(np.rint(u).astype(np.int64), 0, t.shape[1] - 1)
    scale = 1.0 + t[r, c] / focal
    return vertices * scale[:, None], scale


def grid_faces(index: np.ndarray, z: np.ndarray, threshold: float) -> np.ndarray:
    """Triangles over a pixel grid: (M, 3) indices from ``index`` (-1 = no vertex).

    Each 2x2 block with four vertices gives two triangles split along the diagonal of
    smaller depth change, with three vertices one triangle; a triangle whose depths
    differ by more than ``threshold`` x 1.5 (a diagonal is 1.4 pixels) of its nearest
    depth spans a discontinuity and is left out (the block then keeps whichever single
    triangle is on one surface). Winding faces the camera (OpenCV frame).
    """
    tl, tr, bl, br = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    ztl, ztr, zbl, zbr = z[:-1, :-1], z[:-1, 1:], z[1:, :-1], z[1:, 1:]
    candidates = [  # the four triangles a block can hold, all wound towards the camera
        ((tl, bl, br), (ztl, zbl, zbr)),
        ((tl, br, tr), (ztl, zbr, ztr)),
        ((tl, bl, tr), (ztl, zbl, ztr)),
        ((tr, bl, br), (ztr, zbl, zbr)),
    ]
    limit = 1.5 * threshold
    ok = []
    for (a, b, c), (za, zb, zc) in candidates:
        present = (a >= 0) & (b >= 0) & (c >= 0)
        with np.errstate(invalid="ignore"):
            zmin = np.fmin(np.fmin(za, zb), zc)
            zmax = np.fmax(np.fmax(za, zb), zc)
            smooth = (zmax - zmin) <= limit * zmin
        ok.append(present & smooth)
    ok1, ok2, ok3, ok4 = ok
    with np.errstate(invalid="ignore"):
        prefer_a = np.abs(ztl - zbr) <= np.abs(ztr - zbl)
    pair_a = ok1 & ok2
    pair_b = ok3 & ok4
    use_a = pair_a & (prefer_a | ~pair_b)
    use_b = pair_b & ~use_a
    single = ~(use_a | use_b)
    # Blocks without a whole pair keep at most one triangle, so triangles never overlap.
    s1 = single & ok1
    s2 = single & ok2 & ~s1
    s3 = single & ok3 & ~(s1 | s2)
    s4 = single & ok4 & ~(s1 | s2 | s3)
    chosen = [use_a | s1, use_a | s2, use_b | s3, use_b | s4]
    parts = [
        np.stack([a[sel], b[sel], c[sel]], axis=1)
        for ((a, b, c), _), sel in zip(candidates, chosen, strict=True)
    ]
    return np.concatenate(parts).astype(np.int64)


def _split_pinches(vertices: np.ndarray, faces: np.ndarray):
    """Give each fan of triangles around a vertex its own copy of the vertex.

    Where two triangles of the grid touch only at a corner, walls built along the
    border would share that corner's vertical edge four times (not a manifold).
    Only pinched vertices (two or more outgoing border half-edges) are split.
    Returns the vertices, the faces and the border mask of their half-edges (see
    :func:`_half_edges`), which splitting does not change: it only separates vertices.
    """
    src, dst = _half_edges(faces)
    border = _border_mask(src, dst)
    pinched = np.bincount(src[border], minlength=len(vertices)) > 1
    if not pinched.any():
        return vertices, faces, border
    vertices, faces = _split_fans(vertices, faces, pinched)
    return vertices, faces, border


def _separate_sheets(vertices: np.ndarray, faces: np.ndarray):
    """Split the vertices of edges that more than two faces share (sheets that touch).

    Poisson's surface extraction can let two sheets of a closed surface meet along an
    edge (four faces on it). Each sheet's fan around the edge's ends gets its own
    vertices, so every edge is shared by two faces again; the shape is unchanged.
    """
    faces = np.asarray(faces, dtype=np.int64)
    n = len(vertices)
    a = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    b = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    key = np.minimum(a, b) * n + np.maximum(a, b)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    crowded = counts[inverse] > 2
    if not crowded.any():
        return vertices, faces
    ends = np.zeros(n, dtype=bool)
    ends[a[crowded]] = True
    ends[b[crowded]] = True
    return _split_fans(vertices, faces, ends)


def _split_fans(vertices: np.ndarray, faces: np.ndarray, selected: np.ndarray):
    """Give each fan of faces around a ``selected`` vertex its own copy of that vertex.

    Corners of one vertex stay together when their faces share an edge at it that no
    other face has (one half-edge each way). The copies are appended and the
    originals left unused (see :func:`_compact`).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m, n = len(faces), len(vertices)
    src, dst = _half_edges(faces)
    # The twins (the same edge the other way round) of the half-edges at selected vertices.
    near = np.flatnonzero(selected[src] | selected[dst])
    key = src[near] * n + dst[near]
    order = np.argsort(key)
    sorted_key = key[order]
    twin_key = dst[near] * n + src[near]
    pos = np.clip(np.searchsorted(sorted_key, twin_key), 0, len(key) - 1)
    twins = np.searchsorted(sorted_key, twin_key, side="right") - np.searchsorted(
        sorted_key, twin_key
    )
    alike = np.searchsorted(sorted_key, key, side="right") - np.searchsorted(sorted_key, key)
    has_twin = (twins == 1) & (alike == 1)
    # Corner id = face * 3 + position; half-edge e = k * m + f goes from corner (f, k)
    # to corner (f, k+1), and its twin (g, j) from (g, j) to (g, j+1): (f, k) and
    # (g, j+1) sit at one vertex, so do (f, k+1) and (g, j).
    he = near[has_twin]
    twin = near[order[pos[has_twin]]]
    f, k = he % m, he // m
    g, j = twin % m, twin // m
    a = np.r_[f * 3 + k, f * 3 + (k + 1) % 3]
    b = np.r_[g * 3 + (j + 1) % 3, g * 3 + j]
    corner_vertex = faces.reshape(-1)
    at_selected = selected[corner_vertex[a]]
    a, b = a[at_selected], b[at_selected]
    corners = np.flatnonzero(selected[corner_vertex])
    local = np.full(3 * m, -1, dtype=np.int64)
    local[corners] = np.arange(len(corners))
    graph = coo_matrix((np.ones(len(a)), (local[a], local[b])), shape=(len(corners), len(corners)))
    count, labels = connected_components(graph, directed=False)
    source_vertex = np.zeros(count, dtype=np.int64)
    source_vertex[labels] = corner_vertex[corners]
    new_faces = corner_vertex.astype(np.int64)  # a copy
    new_faces[corners] = n + labels
    new_faces = new_faces.reshape(m, 3)
    copies = np.array(vertices[source_vertex], dtype=np.float64)
    # Each copy moves a twentieth of the way to the middle of its own fan, so the
    # separated surfaces no longer touch (a touching pair of faces is no valid volume).
    at = new_faces.reshape(-1) >= n
    owner = new_faces.reshape(-1)[at] - n
    face_of = np.flatnonzero(at) // 3
    centre = vertices[corner_vertex.reshape(m, 3)[face_of]].mean(axis=1)
    total = np.zeros_like(copies)
    np.add.at(total, owner, centre)
    mean = total / np.maximum(np.bincount(owner, minlength=count), 1)[:, None]
    copies += 0.05 * (mean - copies)
    return np.concatenate([vertices, copies]), new_faces


def _close_with_back(
    vertices: np.ndarray, faces: np.ndarray, back: np.ndarray, border=None, pixel=None
):
    """Front faces, reversed back faces, and a wall of two triangles along each border edge.

    ``border``: the faces' border half-edges when already known (:func:`_split_pinches`).
    ``pixel``: each vertex's (row, column), which picks each wall's diagonal (below).

    Every wall lies in the plane through the camera centre spanned by its edge's two
    pixel rays, so the walls of consecutive border edges along one image line (a
    straight stretch of outline) lie in one plane. Their diagonals alternate along the
    line (by the parity of the edge's first row, or column on a row) so that the two
    wall quads of consecutive edges have all their triangles meet at one shared
    vertex: neighbours, never a pair of vertex-disjoint triangles a hair apart in one
    plane (which float tests, Open3D's among them, may call crossing).
    """
    n = len(vertices)
    src, dst = _half_edges(faces)
    if border is None:
        border = _border_mask(src, dst)
    a, b = src[border], dst[border]
    # The wall takes b->a against the front's a->b and a'->b' against the reversed back's
    # b'->a', so the closed surface is consistently wound (outward). Its quad b, a, a',
    # b' is split along b-a' or along a-b'.
    if pixel is None:
        other = np.zeros(len(a), dtype=bool)
    else:
        pa, pb = pixel[a], pixel[b]
        along = np.where(
            pa[:, 0] != pb[:, 0], np.minimum(pa[:, 0], pb[:, 0]), np.minimum(pa[:, 1], pb[:, 1])
        )
        other = (along % 2) == 1
    x, y = ~other, other
    walls = np.concatenate(
        [
            np.stack([b[x], a[x], a[x] + n], axis=1),
            np.stack([b[x], a[x] + n, b[x] + n], axis=1),
            np.stack([b[y], a[y], b[y] + n], axis=1),
            np.stack([a[y], a[y] + n, b[y] + n], axis=1),
        ]
    )
    back_faces = faces[:, ::-1] + n
    return np.concatenate([vertices, back]), np.concatenate([faces, back_faces, walls])


def _half_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sources and destinations of every face's half-edges, half-edge k * M + f."""
    src = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    dst = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    return src.astype(np.int64), dst.astype(np.int64)


def _border_mask(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Half-edges whose opposite half-edge no face has."""
    n = int(max(src.max(initial=0), dst.max(initial=0))) + 1
    key = np.sort(src * n + dst)
    twin = dst * n + src
    pos = np.clip(np.searchsorted(key, twin), 0, len(key) - 1)
    return key[pos] != twin


# --- shared helpers ---------------------------------------------------------------------------


def is_closed(faces: np.ndarray) -> bool:
    """Every edge is shared by exactly two faces (no border, no fin)."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return False
    a = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    b = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    key = np.sort(np.minimum(a, b) * (int(faces.max()) + 1) + np.maximum(a, b))
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1], True])
    return bool(np.all(np.diff(starts) == 2))


def _projects_into(vertices: np.ndarray, region: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    u, v = intrinsics.project(vertices)
    h, w = region.shape
    with np.errstate(invalid="ignore"):
        inside = (vertices[:, 2] > 0) & (u > -0.5) & (u < w - 0.5) & (v > -0.5) & (v < h - 0.5)
    r = np.clip(np.nan_to_num(np.rint(v)), 0, h - 1).astype(np.int64)
    c = np.clip(np.nan_to_num(np.rint(u)), 0, w - 1).astype(np.int64)
    return inside & region[r, c]


def _nearest_inside(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel, the (row, col) of the nearest pixel of ``region``."""
    from scipy.ndimage import distance_transform_edt

    _, (rows, cols) = distance_transform_edt(~region, return_distances=True, return_indices=True)
    return rows, cols


def _keep_inside(
    vertices: np.ndarray, silhouette: np.ndarray, intrinsics: Intrinsics
) -> np.ndarray:
    """Slide vertices that project outside the silhouette sideways onto its nearest pixel.

    Poisson and smoothing round the rim by up to a voxel; moving those vertices at
    their own depth onto the nearest silhouette pixel's ray removes the overhang
    without touching the topology (the solid stays watertight).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    outside = ~_projects_into(vertices, silhouette, intrinsics) & (vertices[:, 2] > 0)
    if not outside.any():
        return vertices
    rows, cols = _nearest_inside(silhouette)
    u, v = intrinsics.project(vertices[outside])
    h, w = silhouette.shape
    r = np.clip(np.rint(v), 0, h - 1).astype(np.int64)
    c = np.clip(np.rint(u), 0, w - 1).astype(np.int64)
    nr, nc = rows[r, c], cols[r, c]
    # Onto the edge of that pixel's square, not its centre: a vertex moved to the
    # centre would jump over the inside vertices between the centre and the outline
    # and fold the surface through itself.
    half = 0.499
    u = np.clip(u, nc - half, nc + half)
    v = np.clip(v, nr - half, nr + half)
    z = vertices[outside, 2]
    moved = vertices.copy()
    moved[outside, 0] = (u - intrinsics.cx) * z / intrinsics.fx
    moved[outside, 1] = (v - intrinsics.cy) * z / intrinsics.fy
    return moved


def _sample_colors(vertices, rgb, silhouette, intrinsics) -> np.ndarray:
    """sRGB [0, 1] of the photo at each vertex's pixel (the nearest silhouette pixel if outside)."""
    u, v = intrinsics.project(vertices)
    h, w = silhouette.shape
    r = np.clip(np.nan_to_num(np.rint(v)), 0, h - 1).astype(np.int64)
    c = np.clip(np.nan_to_num(np.rint(u)), 0, w - 1).astype(np.int64)
    off = ~silhouette[r, c]
    if off.any():
        rows, cols = _nearest_inside(silhouette)
        r[off], c[off] = rows[r[off], c[off]], cols[r[off], c[off]]
    pixels = rgb[r, c]
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255.0)
    return np.clip(np.nan_to_num(pixels.astype(np.float32)), 0.0, 1.0)


def _face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    a = v[faces[:, 0]]
    e1 = v[faces[:, 1]] - a
    e2 = v[faces[:, 2]] - a
    face_n = np.empty_like(e1)  # area-weighted
    face_n[:, 0] = e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1]
    face_n[:, 1] = e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2]
    face_n[:, 2] = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    corners = faces.reshape(-1)
    n = np.stack(
        [
            np.bincount(corners, weights=np.repeat(face_n[:, k], 3), minlength=len(vertices))
            for k in range(3)
        ],
        axis=1,
    )
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.where(length > 0, length, 1.0)).astype(np.float32)


def _compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop vertices no face uses and renumber."""
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    return vertices[used], remap[faces]


def _to_o3d(mesh: Mesh):
    import open3d as o3d

    out = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(mesh.vertices.astype(np.float64)),
        o3d.utility.Vector3iVector(mesh.faces.astype(np.int32)),
    )
    out.vertex_colors = o3d.utility.Vector3dVector(mesh.colors.astype(np.float64))
    return out


def _from_o3d(mesh) -> Mesh:
    return Mesh(
        np.asarray(mesh.vertices), np.asarray(mesh.triangles), np.asarray(mesh.vertex_colors)
    )


def _taubin(mesh: Mesh, iterations: int) -> Mesh:
    smoothed = _to_o3d(mesh).filter_smooth_taubin(number_of_iterations=int(iterations))
    return _from_o3d(smoothed)


def _decimate(mesh: Mesh, target_faces: int) -> Mesh:
    import open3d as o3d

    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        simple = _to_o3d(mesh).simplify_quadric_decimation(int(target_faces))
        simple.remove_unreferenced_vertices()
    return _from_o3d(simple)
