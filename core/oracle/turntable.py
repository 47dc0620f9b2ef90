"""What a user sees when they orbit a model: a reconstruction and its object turned about the object's vertical axis and drawn from the photo's camera, view by view, with silhouette IoU and colour PSNR per view."""

from __future__ import annotations

import math

import numpy as np

from ..geometry.camera import Intrinsics
from ..geometry.mesh import Mesh

#: The azimuths of a turntable, degrees: 0 is the photo's own view, 180 the back.
AZIMUTHS = tuple(range(0, 360, 45))

#: Background of the drawn views (sRGB 0-255): none of the objects' colours.
BACKGROUND = (250, 250, 250)


def draw(mesh: Mesh, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """``mesh`` (camera frame) ray-cast through every pixel centre: (H, W, 3) uint8 of its
    vertex colours as they are (flat: no light), and the (H, W) mask it covers."""
    from .scenes import cast, surface_colours

    _, hit = cast(mesh, intrinsics)
    mask = np.isfinite(hit["t_hit"].numpy())
    rgb = np.empty((intrinsics.height, intrinsics.width, 3), dtype=np.uint8)
    rgb[:] = BACKGROUND
    colour = surface_colours(mesh, hit, mask).astype(np.float64)
    rgb[mask] = np.clip(np.round(colour * 255.0), 0, 255).astype(np.uint8)
    return rgb, mask


def turned(mesh: Mesh, centre: np.ndarray, up: np.ndarray, degrees: float) -> Mesh:
    """``mesh`` turned by ``degrees`` about the line through ``centre`` along ``up``."""
    a = np.asarray(up, dtype=np.float64)
    a = a / np.linalg.norm(a)
    t = math.radians(degrees)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    r = np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * (k @ k)
    return mesh.transformed(r, np.asarray(centre) - r @ np.asarray(centre))


def turntable(
    mesh: Mesh,
    truth: Mesh | None,
    intrinsics: Intrinsics,
    up: np.ndarray,
    centre: np.ndarray | None = None,
    azimuths=AZIMUTHS,
) -> dict:
    """Each azimuth's view of ``mesh`` (and of ``truth``, the object, when known), both
    turned about the vertical ``up`` through ``centre`` (default: the truth's, else the
    mesh's, bounding-box middle). Returns ``views``: [{azimuth, iou, psnr}] (None without
    a truth), and ``ours`` / ``theirs``: the drawn views."""
    ref = truth if truth is not None else mesh
    if centre is None:
        v = ref.vertices.astype(np.float64)
        centre = 0.5 * (v.min(axis=0) + v.max(axis=0))
    views, ours, theirs = [], [], []
    for azimuth in azimuths:
        rgb, mask = draw(turned(mesh, centre, up, azimuth), intrinsics)
        ours.append(rgb)
        entry = {"azimuth": int(azimuth), "iou": None, "psnr": None}
        if truth is not None:
            rgb_t, mask_t = draw(turned(truth, centre, up, azimuth), intrinsics)
            theirs.append(rgb_t)
            union = mask | mask_t
            entry["iou"] = float((mask & mask_t).sum() / max(int(union.sum()), 1))
            both = mask & mask_t
            if both.any():
                diff = (rgb[both].astype(np.float64) - rgb_t[both]) / 255.0
                entry["psnr"] = float(10 * np.log10(1.0 / max(float(np.mean(diff**2)), 1e-12)))
        views.append(entry)
    return {"views": views, "ours": ours, "theirs": theirs}


def strip(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of views (e.g. the model's over the object's), each view cropped to what any
    of them covers, laid out as one image."""
    h, w = rows[0][0].shape[:2]
    covered = np.zeros((h, w), dtype=bool)
    for row in rows:
        for view in row:
            covered |= np.any(view != BACKGROUND, axis=-1)
    ys, xs = np.nonzero(covered)
    if len(ys):
        y0, y1 = max(ys.min() - 4, 0), min(ys.max() + 5, h)
        x0, x1 = max(xs.min() - 4, 0), min(xs.max() + 5, w)
    else:
        y0, y1, x0, x1 = 0, h, 0, w
    return np.concatenate(
        [np.concatenate([view[y0:y1, x0:x1] for view in row], axis=1) for row in rows], axis=0
    )
