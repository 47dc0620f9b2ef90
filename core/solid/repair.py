"""Repairing the crossings meshing leaves: vertices sent back to a known-good surface, or relaxed apart, on a budget.

:func:`untangle` stops as soon as a search says the surface crosses itself beyond
:func:`repair_limit` (noise, not a fold or two), and keeps the best state of at most
``rounds`` rounds: the same input always gives the same mesh.
"""

from __future__ import annotations

import numpy as np

from .exact import meet
from .search import crossing_pairs

#: Relaxing is tried when at most this many pairs per face (or :data:`MIN_REPAIR`
#: pairs) cross; a surface with more is reported as not a valid volume as it is.
REPAIR_SHARE = 1.0


MIN_REPAIR = 256


#: With an anchor (a surface known to cross nowhere) the repair goes back to it, which
#: undoes any fold: it is tried with up to this many crossing pairs per face.
ANCHORED = 8


def repair_limit(n_faces: int) -> int:
    """Most crossing pairs worth repairing on a surface of ``n_faces`` faces."""
    return max(MIN_REPAIR, int(REPAIR_SHARE * n_faces))


def untangle(
    vertices: np.ndarray,
    faces: np.ndarray,
    anchor: np.ndarray | None = None,
    *,
    rounds: int = 10,
    keep: np.ndarray | None = None,
    float32: bool = False,
) -> tuple[np.ndarray, int]:
    """Vertices moved so that no two faces cross; returns them and the crossing pairs left.

    ``anchor``: positions of the same vertices known to cross nowhere (the surface before
    a smoothing, stretching or sliding step); only faces with a vertex away from it
    are checked. The vertices of crossing faces and their neighbours go back to it,
    over a neighbourhood that grows each round: a crossing the step made is undone
    where it is and nowhere else, and at worst the anchor itself comes back. Without
    an anchor (or where going back does not help) they move half-way to their
    neighbours' mean, with a jitter (a local relaxation, which unfolds the slivers
    and small folds Poisson and decimation leave). Only faces near moved vertices
    are checked again. ``keep``: a bool mask of vertices the relaxation leaves where they
    are (measured points), while it can fix the crossings without them. ``float32``: the
    positions it moves are rounded to float32 before they are checked (the values a mesh
    file keeps), so the count returned holds for the surface as written.
    """
    v = np.array(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    # Going back to an anchor undoes any fold, however many faces it crosses; relaxing
    # without one is worth it for a few crossings, not for noise.
    limit = repair_limit(len(faces)) if anchor is None else MIN_REPAIR + ANCHORED * len(faces)
    if anchor is not None:
        anchor = np.asarray(anchor, dtype=np.float64)
        moved = np.any(v != anchor, axis=1)[faces].any(axis=1)
        pairs, complete = crossing_pairs(v, faces, moved, limit=limit + 1)
    else:
        pairs, complete = crossing_pairs(v, faces, limit=limit + 1)
    if len(pairs) == 0 and complete:
        return v, 0
    if not complete or len(pairs) > limit:
        # Far too tangled to repair (noise, not a fold or two): left as it is.
        return v, max(len(pairs), limit + 1)
    best, best_left = v.copy(), len(pairs)
    n = len(v)
    src = faces.reshape(-1)
    nbr = np.roll(faces, 1, axis=1).reshape(-1)
    span = float(np.ptp(v, axis=0).max()) if len(v) else 0.0
    for r in range(rounds):
        pairs = np.asarray(pairs).reshape(-1, 2)
        # Pairs that only Open3D's rounding noise calls crossing (nearly coplanar faces
        # side by side): one face of each is lifted off the other's plane by a thousandth
        # of its size. The others are repaired as they are below.
        noise = ~meet(v[faces[pairs[:, 0]]], v[faces[pairs[:, 1]]], span)[0]
        real = pairs[~noise]
        nudged = _nudge(v, faces, pairs[noise, 1], r) if noise.any() else np.zeros(n, bool)
        region = np.zeros(n, dtype=bool)
        region[faces[np.unique(real)].reshape(-1)] = True
        # and rings of neighbours, growing each round
        for _ in range(1 + r):
            region[faces[region[faces].any(axis=1)].reshape(-1)] = True
        back = region & np.any(v != anchor, axis=1) if anchor is not None else region[:0]
        if len(real) == 0:
            region = nudged
        elif back.any():
            # All the way back in the region, then two rings part of the way, so the
            # fix fades out instead of making a step that crosses something else.
            weight = region.astype(np.float64)
            ring = region
            for share in (2 / 3, 1 / 3):
                ring = np.zeros(n, dtype=bool)
                ring[faces[(weight > 0)[faces].any(axis=1)].reshape(-1)] = True
                weight[ring & (weight == 0)] = share
            region = (weight > 0) & np.any(v != anchor, axis=1)
            v[region] += weight[region, None] * (anchor[region] - v[region])
        else:
            # relaxation stays local: the crossing faces and one ring, not a growing area
            region = np.zeros(n, dtype=bool)
            region[faces[np.unique(real)].reshape(-1)] = True
            region[faces[region[faces].any(axis=1)].reshape(-1)] = True
            if keep is not None and (region & ~keep).any() and r < rounds // 2:
                region &= ~keep  # first try without moving the kept vertices
            total = np.zeros_like(v)
            np.add.at(total, src, v[nbr])
            count = np.bincount(src, minlength=n)[:, None]
            mean = total / np.maximum(count, 1)
            step = np.linalg.norm(mean[region] - v[region], axis=1, keepdims=True)
            v[region] += 0.5 * (mean[region] - v[region])
            # Faces lying in one plane (walls along a straight outline) stay there under
            # relaxation; a jitter of a hundredth of the step takes them apart.
            # (drawn from each vertex's own position, not its number: Poisson numbers its
            # output differently from run to run, and the same surface must come out)
            v[region] += 0.01 * step * _jitter(v[region], r)
        region |= nudged
        if float32:
            v[region] = v[region].astype(np.float32)
        # A pair can only have started (or stopped) crossing where one of its faces moved
        # now; pairs of faces that did not move still cross and are kept.
        active = region[faces].any(axis=1)
        still = pairs[~active[pairs].any(axis=1)]
        if len(still) > limit:
            break
        pairs, complete = crossing_pairs(v, faces, active, limit=max(1, limit + 1 - len(still)))
        if len(still):
            pairs = np.unique(np.concatenate([np.asarray(pairs).reshape(-1, 2), still]), axis=0)
        if len(pairs) == 0 and complete:
            return v, 0
        if not complete or len(pairs) > limit:
            break  # this round made it worse than worth repairing: the best so far stands
        if len(pairs) < best_left:
            best, best_left = v.copy(), len(pairs)
    return best, best_left


def _nudge(v: np.ndarray, faces: np.ndarray, which: np.ndarray, salt: int) -> np.ndarray:
    """Faces ``which`` moved along their normals by a thousandth of their longest edge, up
    or down as each position's hash says (in place); returns the vertices moved."""
    which = np.unique(which)
    tri = v[faces[which]]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-300
    edge = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max(axis=1)
    # At least a few float32 steps of its coordinates: a sliver Poisson left (edges of
    # 10 micrometres at 0.8 m) would otherwise move less than the rounding to float32.
    ulp = np.spacing(np.abs(tri).max(axis=(1, 2)).astype(np.float32)).astype(np.float64)
    sign = np.sign(_jitter(tri.mean(axis=1), salt)[:, 0]) + (tri.mean(axis=1)[:, 0] == 0)
    step = (np.maximum(1e-3 * edge, 24.0 * ulp) * sign)[:, None] * normal
    moved = np.zeros(len(v), dtype=bool)
    for k in range(3):
        idx = faces[which, k]
        np.add.at(v, idx, step / 3.0)
        moved[idx] = True
    return moved


def _jitter(points: np.ndarray, salt: int) -> np.ndarray:
    """A pseudo-random (K, 3) in [-1, 1] that depends only on each point's position."""
    a = np.array([[12.9898, 78.233, 37.719], [39.346, 11.135, 83.155], [73.156, 52.235, 9.151]])
    h = np.sin(points @ a * (1e3 + salt)) * 43758.5453
    return 2.0 * (h - np.floor(h)) - 1.0
