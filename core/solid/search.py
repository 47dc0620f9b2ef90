"""Finding the face pairs of a mesh that cross or touch: a broad phase of cell grids, then exact tests, on a work budget.

The work is bounded by the face count, whatever the input: a search
(:func:`crossing_pairs`) has a budget of box comparisons and exact tests
(:data:`WORK_PER_FACE` per face, 4 to 5 times what clean meshes use) and gives up,
saying so, when it runs out or finds more pairs than asked for; its memory is a chunk
of candidate pairs at a time. Budgets count work, never time, so the same input always
gives the same answer.
"""

from __future__ import annotations

import numpy as np

from .exact import GAP, NEAR, boxes, triangles_cross

#: Most cells a face is entered in: a face spanning more goes to a coarser level of
#: cells (each three times the last), so the broad phase makes O(faces) entries.
BIG_CELLS = 27


#: The work budget of one search, per face: box comparisons the broad phase makes, and
#: CANDIDATE_COST per candidate pair it gives the exact test. Clean meshes (the oracle
#: scenes, Poisson or grid) use 75 to 125; a search that runs out of it stops and says
#: so, and the surface counts as far too tangled to repair.
WORK_PER_FACE = 400


#: The least work budget of one search, whatever the face count.
MIN_WORK = 5_000_000


#: The work of one candidate pair's exact test, in box comparisons.
CANDIDATE_COST = 8


#: Candidate pairs given to the exact test at once (memory O(CHUNK), not O(pairs)).
CHUNK = 1 << 17


def intersecting_pairs(
    vertices: np.ndarray, faces: np.ndarray, active: np.ndarray | None = None
) -> np.ndarray:
    """(K, 2) indices of the face pairs that cross or touch, sharing no vertex.

    ``active``: a (M,) bool mask; only pairs with an active face are looked at.

    The same rule as Open3D's ``get_self_intersecting_triangles``: faces with a vertex
    in common are neighbours, never counted; faces that only touch (a copy of a
    vertex at the same spot) count. Every pair is found (no limit, no work budget):
    for tests and benchmarks; meshing uses :func:`crossing_pairs`.
    """
    return crossing_pairs(vertices, faces, active, limit=None, work=None)[0]


def crossing_pairs(
    vertices: np.ndarray,
    faces: np.ndarray,
    active: np.ndarray | None = None,
    *,
    limit: int | None = None,
    work: int | None = -1,
) -> tuple[np.ndarray, bool]:
    """The crossing face pairs (as :func:`intersecting_pairs`) and whether all were found.

    The search stops after ``limit`` pairs (None: no limit), or when the broad phase
    has made ``work`` box comparisons (-1: :data:`WORK_PER_FACE` per face, at least
    :data:`MIN_WORK`; None: no budget): its time and memory are bounded by the face
    count, and the answer depends only on the input. Grids of cells about a face across
    (coarser levels for bigger faces) find the candidate pairs, an exact test in float64
    decides, a chunk at a time.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    none = np.zeros((0, 2), dtype=np.int64)
    if len(f) < 2 or (active is not None and not active.any()):
        return none, True
    if work == -1:
        work = max(MIN_WORK, WORK_PER_FACE * len(f))
    tri = v[f]  # (M, 3, 3)
    # Boxes grown by a little more than the narrow test's margins (TOUCH, NEAR), so a
    # near miss counts whatever the rest of the mesh is.
    span = float(np.max(v.max(axis=0) - v.min(axis=0))) if len(v) else 0.0
    if not (span > 0 and np.isfinite(span)):
        return none, True
    tri_lo, tri_hi = boxes(tri)
    grow = np.maximum(5 * NEAR * (tri_hi - tri_lo).max(axis=1, keepdims=True), 2 * GAP * span)
    lo = tri_lo - grow
    hi = tri_hi + grow
    del tri_lo, tri_hi
    extent = hi - lo
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        return none, True
    # A cell about as big as most faces: each face then sits in a few cells.
    cell = max(float(np.quantile(extent.max(axis=1), 0.9)), span * 1e-6)
    if active is not None and not active.all():
        near = _near_active(lo, extent, active, cell)
        if len(near) < 0.8 * len(f):
            pairs, complete = crossing_pairs(
                v, f[near], _all_true_if(active[near]), limit=limit, work=work
            )
            return near[pairs], complete
    search = _Search(tri, f, span, limit, work)
    # float32 boxes grown by a millionth of the mesh: half the memory traffic.
    pad = 1e-6 * span
    box_lo = (lo - pad).astype(np.float32)
    box_hi = (hi + pad).astype(np.float32)
    origin = v.min(axis=0)
    size = extent.max(axis=1)
    # Levels of cells, each at least three times the last: a face goes in the first
    # level where it spans at most BIG_CELLS cells, and each level pairs its own faces
    # with those of its level and below (which span at most two of its cells per axis).
    level = np.full(len(f), -1)
    for depth in range(64):
        todo = level < 0
        first = np.floor((lo - origin) / cell)
        last = np.floor((hi - origin) / cell)
        count = np.minimum(last - first + 1, 1e6).prod(axis=1)
        level[todo & (count <= BIG_CELLS)] = depth
        need = level == depth
        members = np.flatnonzero((level >= 0) & (level <= depth))
        if need.any() and len(members) > 1:
            _grid_pairs(
                members,
                first[members].astype(np.int64),
                last[members].astype(np.int64),
                box_lo,
                box_hi,
                active,
                need,
                search,
            )
        if search.done or not (level < 0).any():
            break
        cell = max(3.0 * cell, float(np.quantile(size[level < 0], 0.9)) / 3.0)
    search.flush()
    return search.result()


class _Search:
    """Candidate pairs gathered in chunks, tested exactly, the crossing ones kept."""

    def __init__(self, tri, faces, span, limit, work):
        self.tri, self.faces, self.span, self.limit = tri, faces, span, limit
        self.budget = work if work is not None else np.inf
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.n_pending = 0
        self.found: list[np.ndarray] = []
        self.n_found = 0
        self.complete = True

    @property
    def done(self) -> bool:
        return not self.complete or (self.limit is not None and self.n_found >= self.limit)

    def spend(self, work: int) -> bool:
        """Takes ``work`` from the budget; False (and the search incomplete) when it runs out."""
        self.budget -= work
        if self.budget < 0:
            self.complete = False
        return self.complete

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        # A candidate's exact test costs about as much as CANDIDATE_COST box comparisons.
        if len(a) == 0 or self.done or not self.spend(CANDIDATE_COST * len(a)):
            return
        self.pending.append((a, b))
        self.n_pending += len(a)
        if self.n_pending >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.pending or (self.limit is not None and self.n_found >= self.limit):
            self.pending, self.n_pending = [], 0
            return
        a = np.concatenate([p[0] for p in self.pending])
        b = np.concatenate([p[1] for p in self.pending])
        self.pending, self.n_pending = [], 0
        for s in range(0, len(a), CHUNK):
            ca, cb = a[s : s + CHUNK], b[s : s + CHUNK]
            # No shared vertex.
            fa, fb = self.faces[ca].T, self.faces[cb].T
            keep = np.ones(len(ca), dtype=bool)
            for x in fa:
                for y in fb:
                    keep &= x != y
            ca, cb = ca[keep], cb[keep]
            if len(ca) == 0:
                continue
            hit = triangles_cross(self.tri[ca], self.tri[cb], self.span)
            ca, cb = ca[hit], cb[hit]
            if len(ca):
                self.found.append(np.stack([np.minimum(ca, cb), np.maximum(ca, cb)], axis=1))
                self.n_found += len(ca)
            if self.limit is not None and self.n_found >= self.limit:
                break

    def result(self) -> tuple[np.ndarray, bool]:
        if not self.found:
            return np.zeros((0, 2), dtype=np.int64), self.complete
        pairs = np.concatenate(self.found)
        if self.limit is not None and len(pairs) >= self.limit:
            # Stopped at the limit: more may cross (unless exactly that many were left).
            return pairs[: self.limit], False
        return pairs, self.complete


def _grid_pairs(ids, first, last, box_lo, box_hi, active, need, search) -> None:
    """Candidate pairs of faces ``ids`` sharing a cell, each with a ``need`` face in it.

    Each face of ``ids`` spans at most BIG_CELLS cells. In a cell, the ``need`` faces come
    first, so every wanted pair has a ``need`` face as its first entry: only those are
    walked, and the work is theirs times the cell's size.
    """
    n_cells = last - first + 1
    count = n_cells.prod(axis=1)
    owner = np.repeat(np.arange(len(ids)), count)
    local = np.arange(owner.size) - np.repeat(np.cumsum(count) - count, count)
    nx, ny = n_cells[owner, 0], n_cells[owner, 1]
    ix = first[owner, 0] + local % nx
    iy = first[owner, 1] + (local // nx) % ny
    iz = first[owner, 2] + local // (nx * ny)
    del local, nx, ny
    base = first.min(axis=0)
    dims = (last.max(axis=0) - base + 2).astype(np.int64)
    key = ((ix - base[0]) * dims[1] + (iy - base[1])) * dims[2] + (iz - base[2])
    face = ids[owner]
    order = np.lexsort((~need[face], key))
    key, owner, face = key[order], owner[order], face[order]
    cells = np.stack([ix[order], iy[order], iz[order]], axis=0).astype(np.int32)
    del ix, iy, iz, order
    # Only the cells holding a needed face (and an active one) matter.
    new_cell = np.r_[True, key[1:] != key[:-1]]
    cell_id = np.cumsum(new_cell) - 1
    wanted = np.zeros(int(cell_id[-1]) + 1, dtype=bool)
    wanted[cell_id[need[face]]] = True
    if active is not None:
        has_active = np.zeros_like(wanted)
        has_active[cell_id[active[face]]] = True
        wanted &= has_active
    wanted = wanted[cell_id]
    key, owner, face, cells = key[wanted], owner[wanted], face[wanted], cells[:, wanted]
    if len(key) == 0:
        return
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    sizes = np.diff(np.r_[starts, len(key)])
    # Every entry pairs with the entries after it in its cell, j places on. A pair
    # sharing several cells is kept in one: the cell of the corner where their boxes'
    # overlap starts.
    after = np.repeat(starts + sizes, sizes) - np.arange(len(key)) - 1
    e_lo = np.ascontiguousarray(box_lo[face].T)
    e_hi = np.ascontiguousarray(box_hi[face].T)
    e_first = np.ascontiguousarray(first[owner].T, dtype=np.int32)
    e_active = active[face] if active is not None else None
    alive = np.flatnonzero((after >= 1) & need[face])
    j = 0
    while len(alive) and not search.done:
        j += 1
        if not search.spend(len(alive)):
            return
        i, k2 = alive, alive + j
        ok = np.ones(len(i), dtype=bool)
        for k in range(3):
            ok &= e_lo[k, i] <= e_hi[k, k2]
            ok &= e_lo[k, k2] <= e_hi[k, i]
            ok &= np.maximum(e_first[k, i], e_first[k, k2]) == cells[k, i]
        if e_active is not None:
            ok &= e_active[i] | e_active[k2]
        hit = np.flatnonzero(ok)
        search.add(face[i[hit]], face[k2[hit]])
        alive = alive[after[alive] >= j + 1]


def _all_true_if(mask: np.ndarray) -> np.ndarray:
    return mask if not mask.all() else np.ones(len(mask), dtype=bool)


def _near_active(lo, extent, active, cell) -> np.ndarray:
    """Faces whose boxes can meet an active face's box (found by cells at least as big).

    A face at most a cell across spans two cells per axis, so a face overlapping an
    active one has its first cell within one of the active face's first cell.
    """
    size = extent.max(axis=1)
    cell = max(cell, float(size[active].max()))
    small = size <= cell
    corner = np.floor((lo - lo.min(axis=0)) / cell).astype(np.int64) + 1
    dims = corner.max(axis=0) + 2
    key = (corner[:, 0] * dims[1] + corner[:, 1]) * dims[2] + corner[:, 2]
    seeds = np.unique(key[active])
    offsets = np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).reshape(3, -1).T
    shift = (offsets[:, 0] * dims[1] + offsets[:, 1]) * dims[2] + offsets[:, 2]
    marked = np.unique((seeds[:, None] + shift[None, :]).reshape(-1))
    pos = np.clip(np.searchsorted(marked, key), 0, len(marked) - 1)
    return np.flatnonzero((marked[pos] == key) | ~small)
