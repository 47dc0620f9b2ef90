"""Stage 5: point cloud -> triangle mesh (screened Poisson or the depth grid), closed or open, coloured from the photo.

:func:`reconstruct_surface` runs its steps in order: the surface (:func:`grid_surface`,
:func:`closed_poisson_surface` with the shape prior and a thickness, or
:func:`open_poisson_surface`), then smoothing, simplifying and the finish (inside the
outline, a valid volume checked, colours). A :class:`Draft` carries the surface from step
to step with what is known of its crossings, so that no step searches the whole mesh again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, OptionError
from ..geometry.camera import Intrinsics
from ..geometry.mesh import Mesh
from ..geometry.pointcloud import PointCloud
from ..geometry.topology import is_closed, vertex_normals
from ..solid.repair import repair_limit, untangle
from ..solid.validity import volume_report
from .back import revolved_back
from .cloud import MIN_POINTS
from .colours import keep_inside, sample_colors
from .crossings import (
    beyond_repair,
    cleaned,
    count_all_crossings,
    count_crossings,
    f32,
    invalid_volume_warning,
    settle,
)
from .grid import grid_mesh
from .hidden_colours import fill_hidden, seen_vertices
from .poisson import choose_poisson_depth, closed_poisson, frozen, poisson_mesh, poisson_scale
from .refine import decimate, taubin
from .thickness import stretched_solid

METHODS = ("poisson", "grid")

#: progress(fraction of the mesh stage done, message)
Progress = Callable[[float, str], None]


@dataclass
class Draft:
    """A surface on its way to the result, and what is known of its crossings.

    ``mesh``: the surface (camera frame). ``anchor``: vertices the later steps fall back to
    where they make faces cross (None: the surface as meshed), crossing in
    ``anchor_crossings`` pairs (None: not counted yet). ``tangled``: the crossing pairs of a
    closed surface beyond repair (core.solid.repair.repair_limit; 0: repairable): it is
    counted once, never repaired, and reported as no valid volume. ``stretched``: made by
    a thickness's stretch of the solved solid (a repair that fails after it names it).
    ``grid_solid``: the depth grid's closed solid, one fan of faces around each vertex and
    no crossing by construction. ``axis``: (a point, the direction) of the axis the hidden
    side was turned about, when the shape prior made it.
    """

    mesh: Mesh
    anchor: np.ndarray | None = None
    anchor_crossings: int | None = None
    tangled: int = 0
    stretched: bool = False
    grid_solid: bool = False
    axis: tuple[np.ndarray, np.ndarray] | None = None


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
    rgb, mask = _checked_maps(cloud, depth, rgb, mask)
    report = progress or (lambda fraction, message: None)
    start = time.perf_counter()
    info: dict = {"method": method, "closed": bool(closed), "warnings": []}
    # The silhouette that bounds the result: the mask where it holds the points, else the points.
    silhouette = mask | cloud.valid

    if method == "grid":
        draft = grid_surface(cloud, silhouette, intrinsics, closed, thickness, info, report)
    elif closed:
        level = poisson_depth if poisson_depth is not None else choose_poisson_depth(len(cloud))
        draft = closed_poisson_surface(
            cloud, silhouette, intrinsics, level, thickness, shape, threads, solids, info, report
        )
    else:
        level = poisson_depth if poisson_depth is not None else choose_poisson_depth(len(cloud))
        draft = open_poisson_surface(
            cloud, silhouette, intrinsics, level, threads, solids, info, report
        )

    # The surface as meshed (or before its stretch), and the crossing pairs it has (counted
    # once, or none by construction). Each later step counts only the faces whose vertices
    # it moved and sends those back toward the surface before it where they cross
    # (core.solid.repair.untangle, bounded): no step searches the whole mesh again, except
    # decimation, whose faces are new.
    counted = _anchored(draft, closed)
    by_construction = draft.grid_solid and not smooth
    if smooth > 0:
        report(0.8, "Smoothing")
        counted = _smoothed(draft, smooth, closed, counted, info["warnings"])
    if target_faces is not None and draft.mesh.n_faces > target_faces:
        report(0.85, "Simplifying")
        counted = _simplified(draft, target_faces, closed, info["warnings"])
        by_construction = False
    if draft.mesh.n_faces == 0:
        raise InputError("No surface could be built from these points (the result had no faces).")

    report(0.95, "Colouring")
    mesh, volume, hidden = _finished(
        draft, rgb, silhouette, intrinsics, closed, counted, by_construction, info["warnings"]
    )
    if hidden is not None:
        info["hidden_colour"] = hidden
    info.update(
        vertices=mesh.n_vertices,
        faces=mesh.n_faces,
        watertight=bool(volume["valid"]),
        # None: not counted to the end (beyond repair, see core.solid.repair.repair_limit)
        self_intersections=(
            volume["self_intersections"] if volume.get("self_intersections_counted", True) else None
        ),
        seconds=round(time.perf_counter() - start, 3),
    )
    report(1.0, "Surface done")
    return mesh, info


# --- the surface, three ways -------------------------------------------------------------------


def grid_surface(cloud, silhouette, intrinsics, closed: bool, thickness, info, report) -> Draft:
    """The depth grid triangulated (closed: with a back surface and walls)."""
    report(0.1, "Triangulating the depth grid")
    mesh = grid_mesh(cloud, silhouette, intrinsics, closed, thickness)
    info.update(poisson_depth=None, poisson_scale=None, points_used=len(cloud))
    return Draft(mesh, anchor_crossings=0 if closed else None, grid_solid=closed)


def open_poisson_surface(
    cloud, silhouette, intrinsics, level, threads, solids, info, report
) -> Draft:
    """Poisson on the front points, trimmed to where points support it (kept in ``solids``)."""
    scale = poisson_scale(level)
    known = solids.get(("open", level)) if solids is not None else None
    info["poisson_reused"] = known is not None
    if known is not None:
        mesh, used = known
    else:
        mesh, used = poisson_mesh(
            cloud, None, silhouette, intrinsics, level, scale, threads, report
        )
        if solids is not None:
            solids[("open", level)] = (frozen(mesh), used)
    info.update(poisson_depth=level, poisson_scale=scale, points_used=used)
    return Draft(mesh)


def closed_poisson_surface(
    cloud, silhouette, intrinsics, level, thickness, shape, threads, solids, info, report
) -> Draft:
    """The closed Poisson solid: its hidden side from the shape prior or the inflated
    outline, at the asked thickness; the depth grid's solid where Poisson gives none."""
    back, thickness, axis = _hidden_side(
        cloud, silhouette, intrinsics, thickness, shape, info, report
    )
    prior = info["shape"] if back is not None else None
    solid, scale, used, reused = closed_poisson(
        cloud, silhouette, intrinsics, level, threads, report, solids, back=back, prior=prior
    )
    if back is not None and (solid is None or beyond_repair(solid)):
        # The prior's hidden side gave Poisson no closed solid (or one crossing itself
        # beyond repair): inflate as before.
        info["shape_note"] = (
            "inflate (the box gave no closed solid)"
            if info["shape"] == "box"
            else "inflate (the turned surface gave no closed solid)"
        )
        info["shape"] = "inflate"
        axis = None
        solid, scale, used, reused = closed_poisson(
            cloud, silhouette, intrinsics, level, threads, report, solids
        )
    info.update(poisson_reused=reused, poisson_depth=level, poisson_scale=scale, points_used=used)
    if solid is not None and beyond_repair(solid):
        # Far too many crossings to repair (noise, not a fold): the depth grid is tried
        # instead (valid by construction: see core.surface.grid); when it is no valid
        # volume either, the Poisson solid stays and is reported as not a valid volume.
        grid = grid_mesh(cloud, silhouette, intrinsics, True, thickness)
        info["warnings"].append(
            "Poisson's closed surface crossed itself too often to repair, so the "
            "solid was built from the depth grid instead."
        )
        return Draft(grid, f32(grid.vertices), 0, grid_solid=True)
    if solid is None:
        info["warnings"].append(
            "Poisson gave no closed surface for these points, so the solid was built "
            "from the depth grid instead."
        )
        grid = grid_mesh(cloud, silhouette, intrinsics, True, thickness)
        return Draft(grid, anchor_crossings=0, grid_solid=True)
    if thickness is None:
        crossings = getattr(solid, "crossings", None)
        return Draft(solid, anchor_crossings=crossings, tangled=beyond_repair(solid), axis=axis)
    report(0.75, "Setting the thickness")
    return _thickened(solid, cloud, silhouette, intrinsics, thickness)


def _hidden_side(cloud, silhouette, intrinsics, thickness, shape, info, report):
    """(the closing samples of the shape prior or None: inflate, the thickness still to
    apply, the prior's axis as (point, direction) or None)."""
    if shape == "inflate" or (thickness is not None and shape not in ("revolve", "box")):
        info["shape"] = "inflate"
        info["shape_note"] = (
            "inflate (asked)" if shape == "inflate" else ("inflate (a thickness was given)")
        )
        return None, thickness, None
    from ..shape_prior.revolution import choose_back

    report(0.05, "Looking for a surface of revolution or a box")
    fit, why = choose_back(shape, cloud, silhouette, intrinsics)
    info["shape"] = why.split(" ")[0] if fit is not None else "inflate"
    info["shape_note"] = why
    if fit is not None:
        info["shape_fit"] = dict(fit.quality)
    if info["shape"] not in ("revolve", "box"):
        return None, thickness, None
    if thickness is not None:
        info["warnings"].append(
            "The thickness is ignored: the hidden side was made by turning the visible "
            "surface about its axis (--shape revolve)."
            if info["shape"] == "revolve"
            else "The thickness is ignored: the hidden side was made from the box's "
            "visible faces (--shape box)."
        )
    if info["shape"] == "box":
        return (fit.back_points, fit.back_normals), None, None
    axis = (np.asarray(fit.axis_point, dtype=np.float64), np.asarray(fit.axis_direction))
    return revolved_back(fit, cloud, intrinsics), None, axis


def _thickened(solid: Mesh, cloud, silhouette, intrinsics, thickness) -> Draft:
    """``solid`` stretched along the camera's rays to ``thickness`` x the object's width.

    Folds the stretch makes are relaxed where they are: going back to the solid before
    stretching would undo the thickness asked for there (the deepest point of a sphere
    came back 8% too deep). Only where relaxing leaves crossings is the unstretched solid
    the anchor.
    """
    mesh = stretched_solid(solid, cloud, silhouette, intrinsics, thickness)
    stretched, left = cleaned(mesh.vertices, mesh.faces)
    if left == 0:
        # each vertex back onto its own ray (it keeps its pixel), then counted
        ray = f32(mesh.vertices)
        along = np.einsum("ij,ij->i", stretched, ray) / np.einsum("ij,ij->i", ray, ray)
        stretched = f32(ray * along[:, None])
        moved = np.any(stretched != ray, axis=1)[mesh.faces].any(axis=1)
        left = count_crossings(stretched, mesh.faces, moved)
    if left == 0:
        return Draft(Mesh(stretched, mesh.faces, mesh.colors), stretched, 0, stretched=True)
    crossings = getattr(solid, "crossings", None)
    return Draft(mesh, solid.vertices, crossings, beyond_repair(solid), stretched=True)


# --- the steps after it ------------------------------------------------------------------------


def _anchored(draft: Draft, closed: bool) -> bool:
    """Fix the draft's anchor (float32, as files keep it) and count its crossings if no one
    has; returns whether the count is complete."""
    fresh = draft.anchor is None
    if fresh:
        draft.anchor = draft.mesh.vertices
    if not closed:
        return True
    draft.anchor = f32(draft.anchor)
    counted = True
    if draft.tangled:
        draft.anchor_crossings, counted = draft.tangled, False
    elif draft.anchor_crossings is None:  # not counted yet
        draft.anchor_crossings, counted = count_all_crossings(draft.anchor, draft.mesh.faces)
    if fresh:
        draft.mesh = Mesh(draft.anchor, draft.mesh.faces, draft.mesh.colors)
    return counted


def _smoothed(draft: Draft, iterations: int, closed: bool, counted: bool, warnings) -> bool:
    """Taubin smoothing, with the crossings it makes sent back (closed surfaces)."""
    mesh = taubin(draft.mesh, iterations)
    if closed and counted:
        vertices, draft.anchor_crossings, counted = settle(
            mesh.vertices, mesh.faces, draft.anchor, draft.anchor_crossings, "smoothing", warnings
        )
        mesh = Mesh(vertices, mesh.faces, mesh.colors)
        draft.anchor = vertices
    draft.mesh = mesh
    return counted


def _simplified(draft: Draft, target_faces: int, closed: bool, warnings) -> bool:
    """Quadric decimation; a closed surface's new faces counted once and relaxed apart.

    Where relaxing leaves a crossing (a fold the collapses made that moving vertices does
    not undo), the surface is decimated again to a few faces fewer: another sequence of
    collapses, which rarely folds in the same place (tried twice more).
    """
    for share in (1.0, 0.98, 0.96):
        mesh = decimate(draft.mesh, max(4, int(target_faces * share)))
        if not closed:
            draft.mesh = mesh
            return True
        relaxed, left = untangle(f32(mesh.vertices), mesh.faces, float32=True)
        if left == 0:
            break
    draft.anchor_crossings = left
    counted = left <= repair_limit(len(mesh.faces))
    draft.mesh = Mesh(relaxed, mesh.faces, mesh.colors)
    draft.anchor = relaxed
    if not is_closed(mesh.faces):
        warnings.append(
            "Simplifying opened small holes in the closed surface; ask for more faces to keep it watertight."
        )
    return counted


def _finished(draft, rgb, silhouette, intrinsics, closed, counted, by_construction, warnings):
    """The result, its volume report and how its hidden side was coloured (None: open):
    vertices slid inside the outline (the crossings that makes sent back), a closed
    surface checked as written, colours from the photo where the camera sees the surface
    and from the seen rim elsewhere (core.surface.hidden_colours)."""
    faces = np.array(draft.mesh.faces)  # a copy: the surface may be one kept in `solids`
    vertices = keep_inside(draft.mesh.vertices, silhouette, intrinsics)
    volume = {"valid": False, "self_intersections": None}
    if closed:
        # Checked as written: the mesh keeps float32 coordinates.
        crossings = draft.anchor_crossings
        if counted:
            # (the last step: a thickness's stretch if any, and the fit inside the outline)
            step = "thickness" if draft.stretched else "fit inside the photo's outline"
            vertices, crossings, counted = settle(
                vertices, faces, draft.anchor, crossings, step, warnings
            )
        vertices = f32(vertices)
        # (one fan of faces around each vertex: by construction on the untouched grid)
        fans = True if by_construction else None
        volume = volume_report(vertices, faces, pairs=crossings, counted=counted, fans=fans)
        if is_closed(faces) and not volume["valid"]:
            warnings.append(invalid_volume_warning(volume))
    colors = sample_colors(vertices, rgb, silhouette, intrinsics)
    hidden = None
    if closed:
        seen = seen_vertices(vertices, faces, intrinsics)
        colors, hidden = fill_hidden(vertices, faces, colors, seen, draft.axis)
    return Mesh(vertices, faces, colors, vertex_normals(vertices, faces)), volume, hidden


def _checked_maps(cloud: PointCloud, depth, rgb, mask) -> tuple[np.ndarray, np.ndarray]:
    """(RGB photo, bool mask) once they, the depth map and the cloud are known to agree."""
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
    if len(cloud) < MIN_POINTS:
        raise InputError(
            f"Only {len(cloud)} points are left; at least {MIN_POINTS} are needed to build a surface."
        )
    return rgb[..., :3], mask


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
