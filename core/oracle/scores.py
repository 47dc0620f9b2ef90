"""Scores of a reconstructed mesh against an oracle scene: completeness, spill, watertightness, colour."""

from __future__ import annotations

import numpy as np

from ..geometry.camera import Intrinsics
from ..geometry.mesh import Mesh

#: Completeness counts a visible ground-truth point as found when the mesh surface is
#: within this share of the ground-truth bounding-box diagonal.
COMPLETENESS_SHARE = 0.01

#: Spill forgives surface that lands this many pixels outside the silhouette (a 3x3
#: dilation per pixel): pixel centres are sampled, so an exact reconstruction of a
#: rim still pokes up to half a pixel past the last masked pixel centre.
SPILL_DILATION_PX = 1


def completeness(mesh: Mesh, points: np.ndarray, tolerance: float) -> float:
    """Share of ``points`` within ``tolerance`` (same unit) of the mesh surface."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    if len(points) == 0:
        return 1.0
    if mesh.n_faces == 0:
        return 0.0
    return float(np.mean(surface_distance(mesh, points) <= tolerance))


def surface_distance(mesh: Mesh, points: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest point of the mesh surface (not just its vertices)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(mesh.vertices, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(mesh.faces, dtype=np.uint32)),
    )
    query = o3d.core.Tensor(np.ascontiguousarray(points, dtype=np.float32))
    return scene.compute_distance(query).numpy()


def spill(
    mesh: Mesh,
    mask: np.ndarray,
    intrinsics: Intrinsics,
    *,
    dilation: int = SPILL_DILATION_PX,
    samples: int = 100_000,
    seed: int = 0,
) -> float:
    """Share of the mesh's surface area that projects outside the silhouette.

    The surface is sampled uniformly by area; a sample spills when it projects outside
    ``mask`` grown by ``dilation`` pixels (a square structuring element), outside the
    image, or lies at or behind the camera plane.
    """
    import cv2

    if mesh.n_faces == 0:
        return 0.0
    region = np.asarray(mask, dtype=bool)
    if dilation > 0:
        kernel = np.ones((2 * dilation + 1, 2 * dilation + 1), np.uint8)
        region = cv2.dilate(region.astype(np.uint8), kernel) > 0
    pts = sample_surface(mesh, samples, seed=seed)
    h, w = region.shape
    z = pts[:, 2]
    u, v = intrinsics.project(pts)
    with np.errstate(invalid="ignore"):
        r = np.rint(v)
        c = np.rint(u)
        inside = (z > 0) & (r >= 0) & (r < h) & (c >= 0) & (c < w)
    ri = np.where(inside, r, 0).astype(np.int64)
    ci = np.where(inside, c, 0).astype(np.int64)
    inside &= region[ri, ci]
    return float(1.0 - inside.mean())


def sample_surface(mesh: Mesh, count: int, *, seed: int = 0) -> np.ndarray:
    """(count, 3) points spread uniformly over the mesh's area."""
    rng = np.random.default_rng(seed)
    v = mesh.vertices.astype(np.float64)
    a, b, c = (v[mesh.faces[:, i]] for i in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    total = area.sum()
    if not (total > 0):
        return v[mesh.faces[:, 0]][:count]
    face = rng.choice(len(area), size=count, p=area / total)
    r1 = np.sqrt(rng.random(count))
    r2 = rng.random(count)
    wa, wb, wc = 1 - r1, r1 * (1 - r2), r1 * r2
    return a[face] * wa[:, None] + b[face] * wb[:, None] + c[face] * wc[:, None]


def edge_report(mesh: Mesh) -> dict:
    """Counts of border edges (one face) and non-manifold edges (three or more faces)."""
    faces = mesh.faces.astype(np.int64)
    if len(faces) == 0:
        return {"edges": 0, "border_edges": 0, "nonmanifold_edges": 0}
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return {
        "edges": int(len(counts)),
        "border_edges": int(np.sum(counts == 1)),
        "nonmanifold_edges": int(np.sum(counts > 2)),
    }


def is_watertight(mesh: Mesh) -> bool:
    """No border edge and every edge on exactly two faces (closed and edge-manifold)."""
    report = edge_report(mesh)
    return report["edges"] > 0 and report["border_edges"] == 0 and report["nonmanifold_edges"] == 0


def color_error(mesh: Mesh, rgb: np.ndarray, mask: np.ndarray, intrinsics: Intrinsics) -> float:
    """Mean absolute difference (0-1 per channel) between vertex colours and the photo.

    Each vertex the camera sees (nothing of the mesh in front of it) is compared with the
    pixel it projects to; vertices landing outside the mask are skipped (the photo shows
    background there), and so is the hidden side, whose colours the photo does not show
    (core.oracle.hidden_side scores those). NaN if no vertex is left.
    """
    v = mesh.vertices.astype(np.float64)
    u, w = intrinsics.project(v)
    with np.errstate(invalid="ignore"):
        r, c = np.rint(w), np.rint(u)
        h, wd = mask.shape
        inside = (v[:, 2] > 0) & (r >= 0) & (r < h) & (c >= 0) & (c < wd)
    ri = np.where(inside, r, 0).astype(np.int64)
    ci = np.where(inside, c, 0).astype(np.int64)
    inside &= np.asarray(mask, dtype=bool)[ri, ci]
    if inside.any() and mesh.n_faces:
        span = float(np.ptp(v, axis=0).max())
        inside[inside] = seen_from_camera(mesh, v[inside], 1e-3 * span)
    if not inside.any():
        return float("nan")
    photo = np.asarray(rgb)[ri[inside], ci[inside], :3].astype(np.float64) / 255.0
    return float(np.mean(np.abs(mesh.colors[inside].astype(np.float64) - photo)))


def score(mesh: Mesh, scene) -> dict:
    """All scores of ``mesh`` (camera frame) against a :class:`core.oracle.scenes.Scene`."""
    return {
        "completeness": completeness(
            mesh, scene.visible_points, COMPLETENESS_SHARE * scene.diagonal
        ),
        "spill": spill(mesh, scene.mask, scene.intrinsics),
        "watertight": is_watertight(mesh),
        "color_error": color_error(mesh, scene.rgb, scene.mask, scene.intrinsics),
        "faces": mesh.n_faces,
    }


#: The whole-object score counts a point as matched within this share of the diagonal.
WHOLE_SHARE = 0.02


def whole_object_score(
    mesh: Mesh, scene, *, share: float = WHOLE_SHARE, samples: int = 20_000, seed: int = 0
) -> dict:
    """Precision, recall and F-score of ``mesh`` against the scene's FULL object surface.

    Both surfaces are sampled uniformly by area. Precision: share of the mesh's samples
    within ``share`` x the diagonal of the object's surface; recall: share of the
    object's samples within that of the mesh; ``hidden_recall``: recall over the object's
    samples the camera does not see (the hidden half that a single photo must guess).
    """
    tolerance = share * scene.diagonal
    if mesh.n_faces == 0:
        return {"precision": 0.0, "recall": 0.0, "f_score": 0.0, "hidden_recall": 0.0}
    ours = sample_surface(mesh, samples, seed=seed)
    truth = sample_surface(scene.mesh, samples, seed=seed + 1)
    precision = float(np.mean(surface_distance(scene.mesh, ours) <= tolerance))
    near = surface_distance(mesh, truth) <= tolerance
    recall = float(np.mean(near))
    hidden = ~seen_from_camera(scene.mesh, truth, tolerance * 0.25)
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "precision": precision,
        "recall": recall,
        "f_score": float(f),
        "hidden_recall": float(np.mean(near[hidden])) if hidden.any() else float("nan"),
    }


def seen_from_camera(mesh: Mesh, points: np.ndarray, slack: float) -> np.ndarray:
    """Whether the ray from the camera (the origin) to each point first hits near it."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(mesh.vertices, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(mesh.faces, dtype=np.uint32)),
    )
    dist = np.linalg.norm(points, axis=1)
    dirs = points / dist[:, None]
    rays = np.concatenate([np.zeros_like(dirs), dirs], axis=1).astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
    return hit >= dist - slack


def stepped_depth(depth: np.ndarray, mask: np.ndarray, step: float) -> np.ndarray:
    """``depth`` in steps of ``step`` metres within ``mask`` (0 elsewhere), like a depth
    sensor's, for benchmarks."""
    return np.where(mask, np.round(np.asarray(depth) / step) * step, 0.0).astype(np.float32)


def network_like_depth(
    depth: np.ndarray,
    mask: np.ndarray,
    *,
    relief_error: float = 0.15,
    noise: float = 0.002,
    blur_px: float = 2.0,
    seed: int = 0,
) -> np.ndarray:
    """``depth`` corrupted the way a monocular depth network errs, for benchmarks.

    The object's relief (its depth about its median) is stretched unevenly by a smooth
    field of up to about ``relief_error``, Gaussian noise of ``noise`` x the depth is
    added per pixel, and the edges are blurred over ``blur_px`` pixels into a background
    behind the object (networks smear depth across silhouettes). The median depth is
    kept: a wrong overall scale moves the whole object, which no shape score can tell
    from a wrong shape. 0 stays 0 off the mask.
    """
    import cv2

    rng = np.random.default_rng(seed)
    depth = np.asarray(depth, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    h, w = depth.shape
    if not mask.any():
        return depth.astype(np.float32)
    inside = depth[mask]
    median = float(np.median(inside))
    # A smooth field: a few random low-frequency waves across the image.
    rows, cols = np.mgrid[0:h, 0:w] / max(h, w)
    field = np.zeros((h, w))
    for _ in range(3):
        fx, fy = rng.uniform(0.5, 2.0, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        field += np.sin(2 * np.pi * (fx * cols + fy * rows) + phase)
    field *= relief_error / 3.0
    full = np.where(mask, median + (depth - median) * (1.0 + field), float(inside.max()) * 1.25)
    if blur_px > 0:
        full = cv2.GaussianBlur(full, (0, 0), blur_px)
    full = full * (1.0 + noise * rng.standard_normal((h, w)))
    return np.where(mask, full, 0.0).astype(np.float32)
