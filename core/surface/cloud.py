"""Stage 4: depth map + photo + mask -> coloured, cleaned, oriented point cloud in the camera frame."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..geometry.camera import Intrinsics
from ..geometry.pointcloud import PointCloud, backproject, grid_normals

#: Fewest points a surface is built from; below this Poisson and the grid give nothing useful.
MIN_POINTS = 16


#: Neighbouring pixels whose depths differ more than a surface seen this far from face-on
#: would explain are a discontinuity (a silhouette or an occlusion), not one surface.
EDGE_ANGLE_DEG = 88.0


#: Pixels whose back-projected point lies farther than this (in the depth's unit) from the
#: camera are no reading, leaving float32 headroom for every later step.
MAX_COORDINATE = 1e30


#: A point closer than this many pixel footprints (z / f) to the surface around it is
#: never an outlier, however clean (and so narrow) the rest of the depth map is.
OUTLIER_FLOOR = 2.0


def point_cloud(
    depth: np.ndarray,
    rgb: np.ndarray,
    mask: np.ndarray,
    intrinsics: Intrinsics,
    *,
    outlier_neighbors: int = 20,
    outlier_std: float = 2.0,
    edge_threshold: float | None = None,
) -> PointCloud:
    """Back-project the masked pixels with a usable depth and clean the result.

    depth: (H, W) z along the optical axis; 0, negative or non-finite values are no reading.
    rgb: (H, W, 3) uint8 (an alpha channel is ignored). mask: (H, W), true on the object.
    edge_threshold: relative depth jump (share of the depth) between neighbouring pixels
    above which the farther pixel is dropped as a flying pixel; None chooses it from the
    focal length (see :data:`EDGE_ANGLE_DEG`); ``math.inf`` keeps every pixel.
    Statistical outlier removal then drops points standing off the surface of their
    ``outlier_neighbors`` nearest pixels by more than ``outlier_std`` standard
    deviations (``outlier_neighbors=0`` skips it; see :func:`_drop_statistical_outliers`).
    Normals come from the depth grid and face the camera.
    """
    depth, rgb, mask = _checked(depth, rgb, mask, intrinsics)

    with np.errstate(invalid="ignore", over="ignore"):
        valid = mask & np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise InputError(
            "The depth map has no usable reading (a positive, finite depth) inside the mask."
        )

    # Everything below works on the bounding box of the usable pixels: objects rarely fill the frame.
    rows = np.flatnonzero(valid.any(axis=1))
    cols = np.flatnonzero(valid.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    sub = valid[box]
    z = np.where(sub, depth[box], np.nan).astype(np.float64)
    grid = backproject(z, intrinsics, origin=(int(rows[0]), int(cols[0])))
    # Points beyond MAX_COORDINATE would overflow float32 once the back surface and
    # Poisson's cube are added; no real depth map (in any unit) gets there.
    with np.errstate(invalid="ignore"):
        sub &= (np.abs(grid) < MAX_COORDINATE).all(axis=-1)

    threshold = default_edge_threshold(intrinsics) if edge_threshold is None else edge_threshold
    if math.isfinite(threshold):
        sub &= ~_far_side_of_jumps(z, sub, threshold)
    if sub.sum() < MIN_POINTS:
        raise InputError(_too_few(int(sub.sum())))

    if outlier_neighbors > 0:
        focal = math.sqrt(intrinsics.fx * intrinsics.fy)
        sub = _drop_statistical_outliers(grid, sub, outlier_neighbors, outlier_std, focal)
        if sub.sum() < MIN_POINTS:
            raise InputError(_too_few(int(sub.sum())))

    normals = grid_normals(grid, sub)
    local = np.argwhere(sub)
    r, c = local[:, 0], local[:, 1]
    pixels = (local + np.array([rows[0], cols[0]])).astype(np.int32)
    valid = np.zeros(depth.shape, dtype=bool)
    valid[box] = sub
    colors = rgb[pixels[:, 0], pixels[:, 1]].astype(np.float32) / np.float32(255.0)
    return PointCloud(grid[r, c], colors, normals[r, c], pixels, valid)


def default_edge_threshold(intrinsics: Intrinsics) -> float:
    """Relative depth jump per pixel made by a surface seen :data:`EDGE_ANGLE_DEG` from face-on."""
    focal = max(min(intrinsics.fx, intrinsics.fy), 1e-6)
    return max(0.02, math.tan(math.radians(EDGE_ANGLE_DEG)) / focal)


def _far_side_of_jumps(z: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels deeper than a 4-neighbour by more than ``threshold`` of the nearer depth.

    Only the farther pixel of a jump goes: at a silhouette that is the flying pixel
    smeared towards the background, at an occlusion the hidden surface's last pixel;
    the nearer surface keeps its edge.
    """
    drop = np.zeros(valid.shape, dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        for a, b, va, vb, da, db in (
            (z[:, :-1], z[:, 1:], valid[:, :-1], valid[:, 1:], drop[:, :-1], drop[:, 1:]),
            (z[:-1], z[1:], valid[:-1], valid[1:], drop[:-1], drop[1:]),
        ):
            both = va & vb
            jump = np.abs(a - b) > threshold * np.minimum(a, b)
            cut = both & jump
            da |= cut & (a > b)
            db |= cut & (b > a)
    return drop


def _drop_statistical_outliers(
    grid: np.ndarray, valid: np.ndarray, neighbors: int, std_ratio: float, focal: float
) -> np.ndarray:
    """Drop points that stand off the surface their pixel neighbours describe.

    A point's score is its distance, along the local normal, from the mean of the
    valid points in the smallest pixel window holding ``neighbors`` others, in pixel
    footprints (z / f). Points scoring above mean + ``std_ratio`` x std of all scores
    go, but never below :data:`OUTLIER_FLOOR` footprints: on clean depth the spread
    is tiny and a purely relative limit would eat steep, honest surfaces (a sphere's
    rim), which Open3D's k-nearest-neighbour filter does too (3-4% of a clean
    sphere, and 0.3-0.4 s for 150k points on two cores; this costs a tenth).
    Points whose window leaves the valid pixels are not judged (depth jumps are
    handled before), except lone points with no valid 4-neighbour, which go.
    """
    import cv2

    radius = max(1, math.ceil((math.sqrt(neighbors + 1) - 1) / 2))
    size = 2 * radius + 1
    p = np.where(valid[..., None], grid, 0.0).astype(np.float32)
    # The score is a ratio, so unit scale changes nothing but keeps products finite.
    extent = float(np.max(np.abs(p)))
    if extent > 0:
        p /= np.float32(extent)
    weight = valid.astype(np.float32)
    box = {"ksize": (size, size), "normalize": False, "borderType": cv2.BORDER_CONSTANT}
    total = cv2.boxFilter(p, -1, **box) - p
    count = cv2.boxFilter(weight, -1, **box) - weight
    judged = valid & (count >= size * size - 1.5)

    four = np.zeros(valid.shape, dtype=np.int8)
    four[:, 1:] += valid[:, :-1]
    four[:, :-1] += valid[:, 1:]
    four[1:] += valid[:-1]
    four[:-1] += valid[1:]
    keep = valid & (four > 0)
    if not judged.any():
        return keep

    # Central differences skip the point itself, so a spike cannot tilt its own normal.
    du = np.zeros_like(p)
    dv = np.zeros_like(p)
    du[:, 1:-1] = p[:, 2:] - p[:, :-2]
    dv[1:-1] = p[2:] - p[:-2]
    rows, cols = np.nonzero(judged)
    a, b = du[rows, cols], dv[rows, cols]
    n = np.cross(a, b)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
    here = p[rows, cols]
    ref = total[rows, cols] / count[rows, cols, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.abs(np.sum(n * (here - ref), axis=1)) * focal / here[:, 2]
    score = np.nan_to_num(score, nan=0.0, posinf=np.finfo(np.float32).max)
    s = score.astype(np.float64)
    limit = max(s.mean() + std_ratio * s.std(), OUTLIER_FLOOR)
    keep[rows[score > limit], cols[score > limit]] = False
    return keep


def _checked(depth, rgb, mask, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    depth = np.asarray(depth)
    rgb = np.asarray(rgb)
    mask = np.asarray(mask)
    if depth.ndim != 2:
        raise InputError(
            f"The depth map must be a single-channel image, not an array of shape {depth.shape}."
        )
    if depth.size == 0:
        raise InputError("The depth map is empty (0 pixels).")
    h, w = depth.shape
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise InputError(f"The photo must be an RGB image, not an array of shape {rgb.shape}.")
    if rgb.shape[:2] != (h, w):
        raise InputError(
            f"The photo is {rgb.shape[1]}x{rgb.shape[0]} pixels but the depth map is {w}x{h}."
        )
    if mask.shape != (h, w):
        raise InputError(f"The mask is {_size(mask)} but the depth map is {w}x{h} pixels.")
    if (intrinsics.width, intrinsics.height) != (w, h):
        raise InputError(
            f"The camera is set up for {intrinsics.width}x{intrinsics.height} pixels "
            f"but the depth map is {w}x{h}."
        )
    if not (
        intrinsics.fx > 0 and intrinsics.fy > 0 and math.isfinite(intrinsics.fx * intrinsics.fy)
    ) or not (math.isfinite(intrinsics.cx) and math.isfinite(intrinsics.cy)):
        raise InputError("The camera's focal length must be positive and finite.")
    mask = mask.astype(bool) if mask.dtype == bool else np.nan_to_num(mask) > 0
    if not mask.any():
        raise InputError(
            "The mask removes everything: no pixel is left as the object "
            "(try another background removal method, or none)."
        )
    rgb = rgb[..., :3]
    if rgb.dtype != np.uint8:
        scale = 255.0 if np.issubdtype(rgb.dtype, np.floating) else 1.0
        rgb = np.clip(np.nan_to_num(rgb.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    return depth, rgb, mask


def _size(a: np.ndarray) -> str:
    return f"{a.shape[1]}x{a.shape[0]} pixels" if a.ndim >= 2 else f"an array of shape {a.shape}"


def _too_few(n: int) -> str:
    return (
        f"Only {n} points are left after removing pixels without depth, depth jumps and "
        f"outliers; at least {MIN_POINTS} are needed to build a surface."
    )
