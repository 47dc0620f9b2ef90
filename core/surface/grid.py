"""The depth grid as a mesh: two triangles per block of pixels, split at depth jumps; closed by a back copy and walls along the outline."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..geometry.camera import Intrinsics
from ..geometry.mesh import Mesh
from ..geometry.pointcloud import PointCloud
from ..geometry.topology import border_mask, compact, half_edges, split_pinches
from .cloud import default_edge_threshold
from .thickness import pushed_back


def grid_mesh(cloud: PointCloud, silhouette, intrinsics: Intrinsics, closed: bool, thickness):
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
        vertices, faces, border = split_pinches(vertices, faces)
        back, _ = pushed_back(vertices, cloud, silhouette, intrinsics, thickness)
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
    vertices, faces = compact(vertices, faces)
    mesh = Mesh(vertices, faces, np.zeros_like(vertices))
    mesh.front = front[used]  # the measured points (and their pinch copies): kept in place
    return mesh


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


def _close_with_back(
    vertices: np.ndarray, faces: np.ndarray, back: np.ndarray, border=None, pixel=None
):
    """Front faces, reversed back faces, and a wall of two triangles along each border edge.

    ``border``: the faces' border half-edges when already known (:func:`split_pinches`).
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
    src, dst = half_edges(faces)
    if border is None:
        border = border_mask(src, dst)
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
    src, dst = half_edges(faces)
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
    copies (:func:`split_pinches`) are not leaned: their walls meet other walls at
    that pixel.
    """
    src, dst = half_edges(faces)
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
