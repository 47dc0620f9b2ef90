"""How a triangle mesh's faces connect: half-edges, borders, closedness, fans, pieces, areas and normals."""

from __future__ import annotations

import numpy as np


def half_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sources and destinations of every face's half-edges, half-edge k * M + f."""
    src = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    dst = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    return src.astype(np.int64), dst.astype(np.int64)


def border_mask(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Half-edges whose opposite half-edge no face has."""
    n = int(max(src.max(initial=0), dst.max(initial=0))) + 1
    key = np.sort(src * n + dst)
    twin = dst * n + src
    pos = np.clip(np.searchsorted(key, twin), 0, len(key) - 1)
    return key[pos] != twin


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


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop vertices no face uses and renumber."""
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    return vertices[used], remap[faces]


def split_pinches(vertices: np.ndarray, faces: np.ndarray):
    """Give each fan of triangles around a vertex its own copy of the vertex.

    Where two triangles of the grid touch only at a corner, walls built along the
    border would share that corner's vertical edge four times (not a manifold).
    Only pinched vertices (two or more outgoing border half-edges) are split.
    Returns the vertices, the faces and the border mask of their half-edges (see
    :func:`half_edges`), which splitting does not change: it only separates vertices.
    """
    src, dst = half_edges(faces)
    border = border_mask(src, dst)
    pinched = np.bincount(src[border], minlength=len(vertices)) > 1
    if not pinched.any():
        return vertices, faces, border
    vertices, faces = _split_fans(vertices, faces, pinched)
    return vertices, faces, border


def separate_sheets(vertices: np.ndarray, faces: np.ndarray):
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
    originals left unused (see :func:`compact`).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m, n = len(faces), len(vertices)
    src, dst = half_edges(faces)
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


def drop_small_pieces(vertices: np.ndarray, faces: np.ndarray, share: float) -> np.ndarray:
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
    area = face_areas(vertices, faces)
    piece = labels[faces[:, 0]]
    piece_area = np.bincount(piece, weights=area, minlength=count)
    keep = piece_area >= share * piece_area.sum()
    return faces[keep[piece]]


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
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
