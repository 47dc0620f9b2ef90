"""Is a closed mesh a valid volume? Closed, one fan per vertex, wound outward, positive volume, crossing nowhere.

A closed solid is only useful for Booleans, slicers and volume computations when all of
that holds: :func:`volume_report` checks it and says which part fails.
"""

from __future__ import annotations

import numpy as np

from .repair import repair_limit
from .search import crossing_pairs


def volume_report(
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    pairs: int | None = None,
    counted: bool = True,
    fans: bool | None = None,
) -> dict:
    """Whether (vertices, faces) is a valid volume, and why not.

    ``closed`` (every edge on exactly two faces), ``vertex_manifold`` (one fan of faces
    around every vertex), ``oriented`` (neighbouring faces wound alike), ``volume``
    (signed; positive when the faces are wound outward), ``self_intersections`` (crossing
    face pairs; ``pairs`` when already counted, ``counted`` False when that is only a lower
    bound), ``self_intersections_counted`` (False: the count stopped at
    :func:`repair_limit` or at the search's work budget: there are at least that many) and
    ``valid``: all of them hold. ``fans``: True when one fan around every vertex is known
    by construction (the depth grid's solid), so it is not checked again.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    out = {
        "closed": False,
        "vertex_manifold": False,
        "oriented": False,
        "volume": 0.0,
        "self_intersections": 0,
        "self_intersections_counted": True,
        "valid": False,
    }
    if len(f) == 0:
        return out
    src = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    dst = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    n = int(f.max()) + 1
    undirected = np.sort(np.minimum(src, dst) * n + np.maximum(src, dst))
    starts = np.flatnonzero(np.r_[True, undirected[1:] != undirected[:-1], True])
    closed = bool(np.all(np.diff(starts) == 2))
    directed = np.sort(src * n + dst)
    oriented = bool(np.all(directed[1:] != directed[:-1]))
    out["closed"] = closed
    out["oriented"] = closed and oriented
    out["vertex_manifold"] = closed and (bool(fans) if fans is not None else _one_fan_each(f, n))
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    out["volume"] = float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)
    if pairs is None:
        found, complete = crossing_pairs(v, f, limit=repair_limit(len(f)) + 1)
        pairs = len(found)
        counted = bool(complete)
    out["self_intersections_counted"] = bool(counted)
    out["self_intersections"] = int(pairs)
    out["valid"] = bool(
        out["closed"]
        and out["oriented"]
        and out["vertex_manifold"]
        and out["volume"] > 0
        and pairs == 0
        and out["self_intersections_counted"]
    )
    return out


def _one_fan_each(faces: np.ndarray, n: int) -> bool:
    """On a closed, consistently wound mesh: the faces around every vertex form one cycle.

    Each corner (face f at vertex x) points to the face across its outgoing edge's
    twin, which is the next corner around x; x is manifold when following that
    permutation from one corner visits all of x's corners.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m = len(faces)
    src = faces.reshape(-1)  # corner k of face f: index 3 f + k
    prev = faces[:, [2, 0, 1]].reshape(-1)  # the vertex before each corner
    # Corner (f, k) at x has incoming edge prev->x; the face with edge x->prev holds
    # the next corner at x.
    key_out = src * n + np.roll(faces, -1, axis=1).reshape(-1)  # x -> next
    order = np.argsort(key_out)
    want = src * n + prev
    pos = np.clip(np.searchsorted(key_out[order], want), 0, len(want) - 1)
    found = key_out[order][pos] == want
    nxt = order[pos]
    if not found.all():
        return False
    graph = coo_matrix((np.ones(3 * m), (np.arange(3 * m), nxt)), shape=(3 * m, 3 * m))
    count, _ = connected_components(graph, directed=False)
    used = np.unique(src).size
    return int(count) == used
