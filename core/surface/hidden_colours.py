"""The hidden side's colours: filled from the seen surface's rim, never copied from the front.

A vertex the camera sees takes the photo's colour at its pixel. A hidden one used to take
the same (the colour of the front surface in front of it), so the back of a head showed
the face again and a bottle's label came through mirrored. Now the hidden vertices are
coloured from the seen ones only, where the two meet:

- ``rim fill``: each hidden vertex takes the colour of the well-seen vertex nearest it
  along the surface, smoothed among the hidden ones, so the back of a head takes the
  head's colour and the back of a body the body's (a harmonic fill averaged every colour
  around into grey);
- ``rim bands about the axis`` (a solid turned about its axis by the shape prior): at each
  height the colours of the seen arc's two ends are carried round the back, blending from
  one end to the other, so a label's band continues round without its print; what is not
  on the turned body (a handle) is then filled as above.

The photo darkens a surface toward its outline; what the hidden side gets has that taken
out (:func:`shading_floor`), and near the seam it blends into the rim's own colours, so no
step shows where the two sides meet.
"""

from __future__ import annotations

import math

import numpy as np

from ..geometry.camera import Intrinsics

#: Height of one band of the axis fill, as a share of the body's extent along the axis.
BAND = 0.01

#: The bands' colours are smoothed along the axis over this many bands (Gaussian sigma).
BAND_SMOOTHING = 1.5

#: A hidden vertex is on the turned body when its radius is within this share of its
#: height's largest seen radius (a handle or spout reaches farther out).
BODY_REACH = 1.1

#: The hidden side turns from the rim's own colours to the shading-free ones over this
#: share of the object's size, measured along the surface from the seam.
SEAM = 0.01
SEAM_EDGES = 4

#: Seen vertices facing the camera at least this much (cosine) give the hidden side its
#: colours; nearer the outline they keep their photo colour but are not copied on.
RELIABLE_FACING = 0.35

#: Rounds of smoothing after each hidden vertex took its nearest seen colour.
SPREAD_ROUNDS = 50

#: The shading floor (see :func:`shading_floor`) is never taken below this: a hidden side
#: at most 1 / MIN_FLOOR times as bright as the outline it is filled from.
MIN_FLOOR = 0.4


def seen_vertices(vertices: np.ndarray, faces: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """(N,) bool: the vertices the camera sees: in the image, on a face that faces it, and
    first on the ray from the camera to them (a hair of slack for the ray's own rounding)."""
    import open3d as o3d

    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    seen = np.zeros(len(v), dtype=bool)
    if len(f) == 0:
        return seen
    tri = v[f]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    toward = np.einsum("ij,ij->i", normal, tri.mean(axis=1)) < 0  # facing the camera
    seen[f[toward].reshape(-1)] = True
    u, w = intrinsics.project(v)
    with np.errstate(invalid="ignore"):
        seen &= (v[:, 2] > 0) & (u > -0.5) & (u < intrinsics.width - 0.5)
        seen &= (w > -0.5) & (w < intrinsics.height - 0.5)
    idx = np.flatnonzero(seen)
    if len(idx) == 0:
        return seen
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(v, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(f, dtype=np.uint32)),
    )
    dist = np.linalg.norm(v[idx], axis=1)
    rays = np.zeros((len(idx), 6), np.float32)
    rays[:, 3:] = v[idx] / dist[:, None]
    hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().astype(np.float64)
    span = float(np.ptp(v, axis=0).max()) or 1.0
    seen[idx] = hit >= dist - (1e-3 * span + 1e-5 * dist)
    return seen


def fill_hidden(
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    seen: np.ndarray,
    axis: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, str]:
    """``colors`` with every vertex not ``seen`` filled from the seen ones; and which fill.

    ``axis``: (a point, the unit direction) of the axis a revolved solid was turned about
    (camera frame): the hidden body is filled band by band about it first. The seen
    colours keep their photo values; what the hidden side gets from them has the photo's
    darkening toward the outline taken out (:func:`shading_floor`), and near the seam it
    blends into the rim's own colours over :data:`SEAM` of the object's size, so no step
    shows where the two sides meet.
    """
    colors = np.asarray(colors, dtype=np.float32)
    seen = np.asarray(seen, dtype=bool)
    if seen.all():
        return colors, "none (every vertex is seen)"
    if not seen.any():
        return colors, "none (no vertex is seen)"
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    raw = colors.astype(np.float64)
    facing = _facing(v, f)
    floor = shading_floor(raw, facing, seen)
    lit = raw.copy()
    lit[seen] = np.clip(raw[seen] / (floor + (1.0 - floor) * facing[seen])[:, None], 0.0, 1.0)
    # the colours worth carrying over: seen well enough for their shading to be known (at a
    # grazing angle a rounded edge's normal and its pixel disagree most)
    known = seen & (facing >= RELIABLE_FACING)
    if known.sum() < 0.2 * seen.sum():
        known = seen.copy()
    how = "rim fill"
    if axis is not None:
        banded = _axis_bands(v, lit, seen, known, *axis)
        if banded.any():
            known |= banded
            how = "rim bands about the axis"
    # the colours with the shading taken out, spread over the hidden side; near the seam
    # blended into the nearest seen vertex's own colour, so that no step shows there
    graph = _edge_graph(v, f)
    far = _spread(graph, lit, known)
    # over SEAM of the object's size, and never fewer than SEAM_EDGES edges: a coarse mesh's
    # first hidden ring would be past a ramp shorter than its edges (a step)
    edge = float(np.median(np.linalg.norm(v[f[:, 0]] - v[f[:, 1]], axis=1)))
    reach = max(SEAM * float(np.ptp(v, axis=0).max()), SEAM_EDGES * edge)
    # (only the ramp needs the distance: the search stops past it)
    distance, nearest = _from_seen(graph, seen, limit=reach)
    x = np.clip(distance / reach, 0.0, 1.0)
    weight = (x * x * (3.0 - 2.0 * x))[:, None]
    out = raw.copy()
    hidden = ~seen
    out[hidden] = (1.0 - weight[hidden]) * raw[nearest[hidden]] + weight[hidden] * far[hidden]
    if floor < 1.0:
        how += f", shading taken out (the outline {floor:.2f}x as bright)"
    return np.clip(out, 0.0, 1.0).astype(np.float32), how


def shading_floor(colors: np.ndarray, facing: np.ndarray, seen: np.ndarray) -> float:
    """How bright the seen surface is where it turns away from the camera, as a share of
    where it faces it (1: no darkening): ``s`` in brightness = colour x (s + (1 - s) facing).

    A photo darkens a surface toward its outline (light from the camera's side, a flash,
    and every rounded object's edges); a hidden side filled from those edges would be too
    dark all over. The floor is read from the seen surface itself, colour by colour (the
    vertices of one chromaticity share a paint, so their brightness against ``facing``, the
    cosine of the angle to the line of sight, shows the light and not the paint): a line
    fitted per colour, weighted by its vertices. 1 where the brightness does not fall
    toward the outline; never below :data:`MIN_FLOOR`.
    """
    rgb = colors[seen]
    c = facing[seen]
    total = rgb.sum(axis=1)
    ok = total > 0.05  # too dark to tell a colour (a black print)
    if ok.sum() < 50:
        return 1.0
    rgb, c, total = rgb[ok], c[ok], total[ok]
    chroma = np.floor(rgb[:, :2] / total[:, None] / 0.04).astype(np.int64)
    key = chroma[:, 0] * 1000 + chroma[:, 1]
    floors, weights = [], []
    for k in np.unique(key):
        sel = key == k
        if sel.sum() < 50 or np.ptp(c[sel]) < 0.3:
            continue
        xs, ys = [], []
        for lo in np.arange(0.0, 1.0, 0.1):
            inside = sel & (c >= lo) & (c < lo + 0.1)
            if inside.sum() >= 10:
                xs.append(float(np.median(c[inside])))
                ys.append(float(np.median(total[inside])))
        if len(xs) < 3:
            continue
        slope, at0 = np.polyfit(xs, ys, 1)
        if at0 + slope <= 0:
            continue
        floors.append(float(np.clip(at0 / (at0 + slope), MIN_FLOOR, 1.0)))
        weights.append(int(sel.sum()))
    if not floors:
        return 1.0
    order = np.argsort(floors)
    cumulative = np.cumsum(np.asarray(weights)[order])
    return floors[order[np.searchsorted(cumulative, cumulative[-1] / 2)]]  # weighted median


def _spread(graph, colors: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Each unknown vertex the colour of the known vertex nearest it along the surface, then
    smoothed among the unknown ones (SPREAD_ROUNDS rounds of each taking its neighbours'
    mean): the back of a head takes the head's colour and the back of a body the body's,
    where a harmonic fill averaged every colour around it into grey."""
    from scipy import sparse

    if known.all() or not known.any():
        return colors
    _, nearest = _from_seen(graph, known)
    out = colors.copy()
    unknown = ~known
    out[unknown] = colors[nearest[unknown]]
    adjacency = graph.copy()
    adjacency.data[:] = 1.0
    rows = np.flatnonzero(unknown)
    step = adjacency[rows]
    step = sparse.diags(1.0 / np.maximum(np.asarray(step.sum(axis=1)).ravel(), 1.0)) @ step
    for _ in range(SPREAD_ROUNDS):
        out[rows] = step @ out
    return out


def _edge_graph(v: np.ndarray, faces: np.ndarray):
    """The mesh's edges as a symmetric sparse matrix of their lengths (each edge once per
    direction, whatever number of faces share it)."""
    from scipy import sparse

    n = len(v)
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    length = np.linalg.norm(v[i] - v[j], axis=1) + 1e-12
    graph = sparse.csr_matrix((length, (i, j)), shape=(n, n))
    return graph.maximum(graph.T).tocsr()  # an edge two faces share is one entry each way


def _from_seen(graph, seen: np.ndarray, limit: float = np.inf):
    """Each vertex's distance along the surface (edge by edge) to the nearest seen vertex,
    and that vertex; past ``limit`` the distance is inf and the vertex any seen one."""
    from scipy.sparse.csgraph import dijkstra

    sources = np.flatnonzero(seen)
    distance, _, nearest = dijkstra(
        graph,
        directed=True,
        indices=sources,
        min_only=True,
        return_predecessors=True,
        limit=limit,
    )
    nearest = np.where(nearest >= 0, nearest, sources[0])
    return np.nan_to_num(distance, posinf=np.inf), nearest


def _facing(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """|cos| of the angle between each vertex's normal and its line of sight."""
    from ..geometry.topology import vertex_normals

    view = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
    return np.abs(np.einsum("ij,ij->i", vertex_normals(v, faces).astype(np.float64), view))


def _axis_bands(v, colors, seen, source, point, direction) -> np.ndarray:
    """Colour the hidden vertices on a turned body from their height's seen arc (in place),
    its ends' colours taken from the ``source`` vertices; returns which were coloured."""
    a = np.asarray(direction, dtype=np.float64)
    a = a / np.linalg.norm(a)
    rel = v - np.asarray(point, dtype=np.float64)
    h = rel @ a
    radial = rel - np.outer(h, a)
    r = np.linalg.norm(radial, axis=1)
    toward = -np.asarray(point, dtype=np.float64)  # to the camera, at the origin
    e1 = toward - (toward @ a) * a
    if np.linalg.norm(e1) < 1e-12:
        return np.zeros(len(v), dtype=bool)  # looking down the axis: no rim around it
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(a, e1)
    theta = np.arctan2(radial @ e2, radial @ e1)  # 0: facing the camera
    extent = float(np.ptp(h[seen])) if seen.sum() > 1 else 0.0
    if not extent > 0:
        return np.zeros(len(v), dtype=bool)
    step = BAND * extent
    level = np.floor((h - h[seen].min()) / step).astype(np.int64)
    levels = np.unique(level[seen])
    # per band: the seen arc's two ends (their colours averaged over the last few degrees)
    # and the band's largest seen radius
    lo_c, hi_c, lo_t, hi_t, reach, mid = [], [], [], [], [], []
    for b in levels:
        sel = seen & (level == b)
        if sel.sum() < 3:
            continue
        t = theta[sel]
        tmin, tmax = float(t.min()), float(t.max())
        edge = max(math.radians(3.0), 0.15 * (tmax - tmin))
        good = source[sel]
        if good.sum() < 3:
            continue
        # the ends of the arc of well-seen vertices
        tg = t[good]
        lo_c.append(colors[sel][good][tg <= tg.min() + edge].mean(axis=0))
        hi_c.append(colors[sel][good][tg >= tg.max() - edge].mean(axis=0))
        lo_t.append(tmin)
        hi_t.append(tmax)
        reach.append(float(r[sel].max()))
        mid.append(b + 0.5)
    if len(mid) < 2:
        return np.zeros(len(v), dtype=bool)
    from scipy.ndimage import gaussian_filter1d

    # neighbouring bands agree but for the noise of their few vertices: smoothed along the
    # axis, the hidden side shows the bands' colours, not stripes
    mid = np.array(mid)
    lo_c = gaussian_filter1d(np.array(lo_c), BAND_SMOOTHING, axis=0, mode="nearest")
    hi_c = gaussian_filter1d(np.array(hi_c), BAND_SMOOTHING, axis=0, mode="nearest")
    at = (h - h[seen].min()) / step
    on_body = ~seen & (at >= mid[0] - 0.5) & (at <= mid[-1] + 0.5)
    on_body &= r <= BODY_REACH * np.interp(at, mid, np.array(reach))
    # only round the back: a hidden vertex within the seen arc (behind a handle) is left
    # to the fill from its neighbours
    arc_lo, arc_hi = np.interp(at, mid, np.array(lo_t)), np.interp(at, mid, np.array(hi_t))
    on_body &= (theta < arc_lo) | (theta > arc_hi)
    idx = np.flatnonzero(on_body)
    if len(idx) == 0:
        return on_body
    tmin, tmax = arc_lo[idx], arc_hi[idx]
    c_lo = np.stack([np.interp(at[idx], mid, np.array(lo_c)[:, k]) for k in range(3)], axis=1)
    c_hi = np.stack([np.interp(at[idx], mid, np.array(hi_c)[:, k]) for k in range(3)], axis=1)
    # round the back from the arc's right end (tmax) to its left end (tmin + 2 pi)
    span = np.mod(tmin - tmax, 2 * math.pi)
    span = np.where(span > 1e-6, span, 2 * math.pi)
    w = np.clip(np.mod(theta[idx] - tmax, 2 * math.pi) / span, 0.0, 1.0)[:, None]
    colors[idx] = (1.0 - w) * c_hi + w * c_lo
    return on_body
