"""Valid volumes: finding a closed mesh's self-intersections and repairing them.

A closed solid is only useful for Booleans, slicers and volume computations when it
is a valid volume: every edge on two faces, every vertex on one fan of faces, faces
wound outward, a positive volume, and no two faces crossing. :func:`volume_report`
checks all of it; :func:`untangle` removes the crossings that meshing leaves.

The work is bounded by the face count, whatever the input: a search for crossings
(:func:`crossing_pairs`) has a budget of box comparisons and exact tests
(:data:`WORK_PER_FACE` per face, 4 to 5 times what clean meshes use) and gives up,
saying so, when it runs out or finds more pairs than asked for; its memory is a chunk
of candidate pairs at a time. :func:`untangle` stops as soon as a search says the
surface crosses itself beyond :func:`repair_limit` (noise, not a fold or two), and
keeps the best state of at most ``rounds`` rounds. Budgets count work, never time, so
the same input always gives the same mesh and the same report.
"""

from __future__ import annotations

import numpy as np

#: Corners this near another face's plane count as on it, in the units of
#: _triangles_cross (Moeller's test, as Open3D runs it, with a wider margin).
TOUCH = 1e-4

#: A point this near a face (share of the pair's spread) counts as on it: Open3D's
#: float test calls such near misses of thin faces crossings.
NEAR = 2e-3

#: Faces nearer each other than this share of the surface's size (and sharing no
#: vertex) touch, and count as crossing: Open3D's test flags such near misses (one
#: was 5e-6 of the object apart), and a valid volume should not hang on rounding.
GAP = 1e-5

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
    tri_lo, tri_hi = _boxes(tri)
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
            hit = _triangles_cross(self.tri[ca], self.tri[cb], self.span)
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


def _triangles_cross(t1: np.ndarray, t2: np.ndarray, span: float) -> np.ndarray:
    """Whether triangles t1[i] and t2[i] ((K, 3, 3) each) meet (:func:`_meet`), or Open3D's
    float test says they cross: it calls some nearly coplanar faces lying side by side
    crossing, and a user's check must agree with the report (:mod:`core.tritri`)."""
    from .tritri import open3d_flags

    hit, separate = _meet(t1, t2, span)
    # Where one face's corners all lie more than TOUCH to one side of the other's plane
    # (Open3D's normalisation), Open3D's test, whose margin is smaller, says "apart" too.
    rest = np.flatnonzero(~hit & ~separate)
    hit[rest] = open3d_flags(t1[rest], t2[rest])
    return hit


def _meet(t1: np.ndarray, t2: np.ndarray, span: float) -> tuple[np.ndarray, np.ndarray]:
    """Whether closed triangles t1[i] and t2[i] ((K, 3, 3) each) have a point in common,
    and whether one lies wholly more than :data:`TOUCH` to one side of the other's plane
    (scaled as below).

    Each pair is scaled to unit spread per axis, as Open3D does, and faces nearer
    than :data:`TOUCH` and :data:`NEAR` count as touching, and so do faces within
    :data:`GAP` x ``span`` (the surface's size) of each other: Open3D's float test calls
    some such near misses crossings, and a valid volume should not hang on rounding.
    """
    gap = GAP * span
    apart_real = _apart(t1, t2, gap) | _apart(t2, t1, gap)
    both = np.concatenate([t1, t2], axis=1)
    mu = both.mean(axis=1, keepdims=True)
    sigma = np.sqrt(((both - mu) ** 2).sum(axis=1, keepdims=True) / 5.0) + 1e-12
    o1, o2 = t1, t2
    t1, t2 = (t1 - mu) / sigma, (t2 - mu) / sigma
    eps = TOUCH
    n1 = np.cross(t1[:, 1] - t1[:, 0], t1[:, 2] - t1[:, 0])
    n2 = np.cross(t2[:, 1] - t2[:, 0], t2[:, 2] - t2[:, 0])
    d2 = np.einsum("kij,kj->ki", t2 - t1[:, :1], n1)  # t2's corners above t1's plane
    d1 = np.einsum("kij,kj->ki", t1 - t2[:, :1], n2)
    separate = _one_side(d2, eps) | _one_side(d1, eps)
    out = np.zeros(len(t1), dtype=bool)
    # (faces separated here but nearer than the gap may still touch by the edge tests'
    # NEAR margin)
    todo = np.flatnonzero(~(separate & apart_real))
    if len(todo):
        t1, t2, n1, n2, d1, d2 = t1[todo], t2[todo], n1[todo], n2[todo], d1[todo], d2[todo]
        coplanar = np.all(np.abs(d2) <= eps, axis=1) | np.all(np.abs(d1) <= eps, axis=1)
        hit = np.zeros(len(todo), dtype=bool)
        for k in range(3):
            hit |= _edge_meets(
                t1[:, k], t1[:, (k + 1) % 3], d1[:, k], d1[:, (k + 1) % 3], t2, n2, eps
            )
            hit |= _edge_meets(
                t2[:, k], t2[:, (k + 1) % 3], d2[:, k], d2[:, (k + 1) % 3], t1, n1, eps
            )
        if coplanar.any():
            hit[coplanar] = _coplanar_overlap(t1[coplanar], t2[coplanar], n1[coplanar], eps)
        out[todo] = hit
    # Faces that do not cross but come within GAP of the surface's size touch. Not those
    # more than that to one side of the other's plane, nor those whose boxes are apart.
    near = ~out & ~apart_real
    near[near] = ~_boxes_apart(o1[near], o2[near], gap)
    near = np.flatnonzero(near)
    if len(near):
        out[near] = _triangle_distance(o1[near], o2[near]) <= gap
    return out, separate


def _one_side(d: np.ndarray, eps: float) -> np.ndarray:
    """Whether all three heights ``d[i]`` are above ``eps`` or all below ``-eps``."""
    a, b, c = d[:, 0], d[:, 1], d[:, 2]
    return ((a > eps) & (b > eps) & (c > eps)) | ((a < -eps) & (b < -eps) & (c < -eps))


def _boxes(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least and greatest corner of each triangle ((K, 3, 3) -> two (K, 3)), corner by
    corner: numpy's reductions over an axis of three are slow."""
    lo = np.minimum(np.minimum(tri[:, 0], tri[:, 1]), tri[:, 2])
    hi = np.maximum(np.maximum(tri[:, 0], tri[:, 1]), tri[:, 2])
    return lo, hi


def _boxes_apart(t1: np.ndarray, t2: np.ndarray, gap: float) -> np.ndarray:
    """Whether the boxes of t1[i] and t2[i] are more than ``gap`` apart along some axis."""
    lo1, hi1 = _boxes(t1)
    lo2, hi2 = _boxes(t2)
    return ((lo1 - hi2 > gap) | (lo2 - hi1 > gap)).any(axis=1)


def _apart(t1: np.ndarray, t2: np.ndarray, gap: float) -> np.ndarray:
    """Whether all of t2[i]'s corners lie more than ``gap`` on one side of t1[i]'s plane."""
    n = np.cross(t1[:, 1] - t1[:, 0], t1[:, 2] - t1[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-300
    h = np.einsum("kij,kj->ki", t2 - t1[:, :1], n)
    return np.all(h > gap, axis=1) | np.all(h < -gap, axis=1)


def _triangle_distance(t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """Least distance between triangles t1[i] and t2[i] that do not cross ((K, 3, 3) each):
    the least of each corner's distance to the other triangle and each edge pair's."""
    best = np.full(len(t1), np.inf)
    for a, b in ((t1, t2), (t2, t1)):
        n, ok = _unit_normals(b)
        for k in range(3):
            best = np.minimum(best, _point_triangle(a[:, k], b, n, ok))
    # the nine edge pairs at once
    i, j = np.repeat(np.arange(3), 3), np.tile(np.arange(3), 3)
    k = len(t1)
    d = _segments(
        t1[:, i].reshape(-1, 3),
        t1[:, (i + 1) % 3].reshape(-1, 3),
        t2[:, j].reshape(-1, 3),
        t2[:, (j + 1) % 3].reshape(-1, 3),
    )
    return np.minimum(best, d.reshape(k, 9).min(axis=1))


def _unit_normals(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals of tri[i] (zero where degenerate), and where they are defined."""
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(n, axis=1)
    ok = length > 0
    return n / np.where(ok, length, 1.0)[:, None], ok


def _point_triangle(p: np.ndarray, tri: np.ndarray, n: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Distance from p[i] to the plane of tri[i] (unit normal ``n``, defined where ``ok``)
    where it projects inside, else infinity (the edges' distances are the segments' case)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    h = np.einsum("ij,ij->i", p - a, n)
    q = p - h[:, None] * n
    inside = ok.copy()
    for u, v in ((a, b), (b, c), (c, a)):
        inside &= np.einsum("ij,ij->i", np.cross(v - u, q - u), n) >= 0
    return np.where(inside, np.abs(h), np.inf)


def _segments(p1, q1, p2, q2) -> np.ndarray:
    """Least distance between segments p1[i]-q1[i] and p2[i]-q2[i] (Ericson, 5.1.9)."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a = np.einsum("ij,ij->i", d1, d1)
    e = np.einsum("ij,ij->i", d2, d2)
    f = np.einsum("ij,ij->i", d2, r)
    c = np.einsum("ij,ij->i", d1, r)
    b = np.einsum("ij,ij->i", d1, d2)
    denom = a * e - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(denom > 1e-300, np.clip((b * f - c * e) / denom, 0, 1), 0.0)
        t = np.where(e > 1e-300, (b * s + f) / e, 0.0)
        s = np.where(t < 0, np.where(a > 1e-300, np.clip(-c / a, 0, 1), 0.0), s)
        s = np.where(t > 1, np.where(a > 1e-300, np.clip((b - c) / a, 0, 1), 0.0), s)
        t = np.clip(t, 0, 1)
    return np.linalg.norm(p1 + d1 * s[:, None] - (p2 + d2 * t[:, None]), axis=1)


def _edge_meets(s, e, ds, de, tri, n, eps) -> np.ndarray:
    """Whether segment s-e (signed heights ds, de over ``tri``'s plane) meets ``tri``."""
    crosses = ((ds <= eps) & (de >= -eps)) | ((ds >= -eps) & (de <= eps))
    denom = ds - de
    flat = np.abs(denom) <= eps  # lies in the plane: the coplanar test handles it
    w = np.where(flat, 0.0, ds / np.where(flat, 1.0, denom))
    x = s + (e - s) * np.clip(w, 0.0, 1.0)[:, None]
    inside = np.ones(len(s), dtype=bool)
    scale = np.linalg.norm(n, axis=1)
    for k in range(3):
        a, b = tri[:, k], tri[:, (k + 1) % 3]
        side = np.einsum("ki,ki->k", np.cross(b - a, x - a), n)
        inside &= side >= -NEAR * np.linalg.norm(b - a, axis=1) * scale
    return crosses & ~flat & inside


def _coplanar_overlap(t1, t2, n, eps) -> np.ndarray:
    """Overlap of triangles in one plane: an edge pair crosses or a corner lies inside."""
    axis = np.argmax(np.abs(n), axis=1)
    keep = np.array([[1, 2], [0, 2], [0, 1]])[axis]
    rows = np.arange(len(t1))[:, None]
    p = np.stack([t1[rows, k, keep] for k in range(3)], axis=1)  # (K, 3, 2)
    q = np.stack([t2[rows, k, keep] for k in range(3)], axis=1)

    def cross2(o, a, b):
        return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (
            b[..., 0] - o[..., 0]
        )

    def inside(pts, tri):
        s = [cross2(tri[:, k], tri[:, (k + 1) % 3], pts) for k in range(3)]
        return (np.all([x >= -eps for x in s], axis=0)) | (np.all([x <= eps for x in s], axis=0))

    hit = np.zeros(len(t1), dtype=bool)
    for i in range(3):
        hit |= inside(p[:, i], q) | inside(q[:, i], p)
        for j in range(3):
            a, b = p[:, i], p[:, (i + 1) % 3]
            c, d = q[:, j], q[:, (j + 1) % 3]
            d1, d2 = cross2(a, b, c), cross2(a, b, d)
            d3, d4 = cross2(c, d, a), cross2(c, d, b)
            hit |= (d1 * d2 <= 0) & (d3 * d4 <= 0) & ~((d1 == 0) & (d2 == 0))
    return hit


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
        noise = ~_meet(v[faces[pairs[:, 0]]], v[faces[pairs[:, 1]]], span)[0]
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
