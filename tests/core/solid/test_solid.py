"""Every closed solid is a valid volume: closed, manifold, wound outward, crossing nowhere.

Open3D's own checks are the referee here (its self-intersection test is quadratic in the
face count, so the scenes are rendered small).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.oracle.scenes import box_mesh as _box
from core.oracle.scenes import make_scene, render
from core.oracle.scenes import merge_meshes as _merge
from core.oracle.scenes import place_mesh as _place
from core.oracle.scenes import rotation_matrix as _rotation
from core.oracle.scenes import sphere_mesh as _sphere
from core.oracle.shapes import SHAPE_SCENES, make_shape_scene
from core.solid.repair import untangle
from core.solid.search import crossing_pairs, intersecting_pairs
from core.solid.validity import volume_report
from core.surface.build import reconstruct_surface
from core.surface.cloud import point_cloud


def o3d_mesh(vertices, faces):
    import open3d as o3d

    return o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(vertices, dtype=np.float64)),
        o3d.utility.Vector3iVector(np.asarray(faces, dtype=np.int32)),
    )


def closed_manifold(m) -> bool:
    """Open3D's is_watertight() without its self-intersection search (asked for separately:
    the search is the slow part, and is_watertight() would run it a second time)."""
    return m.is_edge_manifold(allow_boundary_edges=False) and m.is_vertex_manifold()


def _crossing_for_real(mesh, m) -> list:
    """The face pairs Open3D's float test calls crossing that exactly share a point.

    Its test also flags two faces of one exact plane that do not touch (a known false
    positive: flat faces of a box's or a lathe object's end, or a depth staircase, come out
    of Poisson or the grid in one plane): each pair it reports is put to the exact test in
    rational arithmetic (core.oracle.rational), and only the ones that meet count."""
    from core.oracle.rational import exactly_meet

    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.faces)
    pairs = np.asarray(m.get_self_intersecting_triangles()).reshape(-1, 2)
    return [(a, b) for a, b in pairs.tolist() if exactly_meet(v[f[a]], v[f[b]])]


def assert_valid_volume(mesh):
    """What Open3D says about the mesh, and that our own report agrees with it."""
    m = o3d_mesh(mesh.vertices, mesh.faces)
    assert m.is_edge_manifold(allow_boundary_edges=False)
    assert m.is_vertex_manifold()
    assert m.is_orientable()
    # (is_watertight() would only repeat these: it is the three checks above and this one)
    assert not _crossing_for_real(mesh, m)
    # wound outward: a positive signed volume (Open3D's get_volume() would search for
    # self-intersections a second time before it sums the same tetrahedra)
    v = np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.faces)]
    assert np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() > 0
    report = volume_report(mesh.vertices, mesh.faces)
    assert report["valid"], report


@cache
def small_scene(name: str):
    if name in SHAPE_SCENES:
        return make_shape_scene(name, width=200, height=150)
    return make_scene(name, width=200, height=150)


def solid(name: str, **options):
    s = small_scene(name)
    cloud = point_cloud(s.depth, s.rgb, s.mask, s.intrinsics)
    return reconstruct_surface(cloud, s.depth, s.rgb, s.mask, s.intrinsics, **options)


# --- the checks themselves ---------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offset=st.tuples(*[st.floats(-0.6, 0.6)] * 3),
    jitter=st.floats(0.0, 0.02),
    resolution=st.integers(6, 16),
    seed=st.integers(0, 1000),
)
def test_crossing_pairs_are_the_ones_open3d_finds(offset, jitter, resolution, seed):
    import open3d as o3d

    a = o3d.geometry.TriangleMesh.create_sphere(0.5, resolution=resolution)
    b = o3d.geometry.TriangleMesh.create_torus(0.4, 0.15, 16, 8)
    b.translate(np.asarray(offset))
    m = a + b
    v = np.asarray(m.vertices) + np.random.default_rng(seed).normal(
        scale=jitter, size=(len(m.vertices), 3)
    )
    f = np.asarray(m.triangles)
    expected = np.sort(np.asarray(o3d_mesh(v, f).get_self_intersecting_triangles()), axis=1)
    found = set(map(tuple, intersecting_pairs(v, f)))
    expected = set(map(tuple, expected))
    # Every pair Open3D finds; a few more only where two edges in one plane cross
    # or faces pass within 0.2% of each other (counted as touching on purpose).
    assert expected <= found
    assert len(found - expected) <= max(4, len(found) // 4)


def test_volume_report_tells_what_is_wrong():
    box = _box((1.0, 1.0, 1.0), [(0.5, 0.5, 0.5)] * 6)
    # the box's faces each have their own corners: weld them into one closed surface
    v, inverse = np.unique(np.round(box.vertices, 9), axis=0, return_inverse=True)
    f = inverse.reshape(-1)[box.faces]
    good = volume_report(v, f)
    assert good["valid"] and good["volume"] == pytest.approx(1.0)
    inside_out = volume_report(v, f[:, ::-1])
    assert not inside_out["valid"] and inside_out["volume"] < 0
    assert not volume_report(v, f[:-1])["closed"]
    # two boxes through each other: closed and wound outward, but not a volume
    shifted = np.concatenate([v, v + 0.5])
    both = np.concatenate([f, f + len(v)])
    crossing = volume_report(shifted, both)
    assert crossing["closed"] and crossing["self_intersections"] > 0 and not crossing["valid"]
    # two boxes sharing only a corner vertex: not vertex-manifold
    corner = np.argmax(v.sum(axis=1))
    other = np.argmin(v.sum(axis=1))
    moved = v - v[other] + v[corner]
    f2 = f + len(v)
    f2[f2 == other + len(v)] = corner
    pinched = volume_report(np.concatenate([v, moved]), np.concatenate([f, f2]))
    assert pinched["closed"] and not pinched["vertex_manifold"] and not pinched["valid"]


def test_a_bounded_search_finds_the_same_pairs_or_says_it_stopped():
    """The search stops at ``limit`` pairs or when its work budget runs out, and says so.

    Two spheres through each other: every crossing pair is found when the search may
    run to the end; with a limit it keeps that many of them and reports itself
    incomplete, as it does when the budget is too small to look at all candidates.
    """
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_sphere(0.5, resolution=16)
    v0, f0 = np.asarray(m.vertices), np.asarray(m.triangles)
    v = np.concatenate([v0, v0 + [0.6, 0.0, 0.0]])
    f = np.concatenate([f0, f0 + len(v0)])
    every = intersecting_pairs(v, f)
    assert len(every) > 20
    pairs, complete = crossing_pairs(v, f)  # the default budget: plenty for a clean mesh
    assert complete and set(map(tuple, pairs)) == set(map(tuple, every))
    few, complete = crossing_pairs(v, f, limit=10)
    assert not complete and len(few) == 10 and set(map(tuple, few)) <= set(map(tuple, every))
    starved, complete = crossing_pairs(v, f, work=100)
    assert not complete and set(map(tuple, starved)) <= set(map(tuple, every))
    # the same input, the same answer: the budget counts work, not time
    again, _ = crossing_pairs(v, f, work=100)
    np.testing.assert_array_equal(again, starved)


def noise_grid(size: int):
    from core.geometry.camera import Intrinsics

    rng = np.random.default_rng(0)
    depth = (2.0 * rng.lognormal(0.0, 0.3, (size, size))).astype(np.float32)
    mask = np.ones((size, size), dtype=bool)
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    k = Intrinsics(200.0, 200.0, size / 2, size / 2, size, size)
    pc = point_cloud(depth, rgb, mask, k)
    return reconstruct_surface(pc, depth, rgb, mask, k, method="grid")


def test_the_grid_of_pure_noise_is_a_valid_volume_by_construction():
    """Depth of pure noise: torn into hundreds of pieces with walls everywhere, and still a
    valid volume (front on the pixel rays, back behind it on the same rays, walls in the
    planes of their border rays, leaned apart): Open3D finds no crossing either."""
    mesh, info = noise_grid(128)
    assert info["watertight"] and info["self_intersections"] == 0 and not info["warnings"]
    m = o3d_mesh(mesh.vertices, mesh.faces)
    assert closed_manifold(m) and len(m.get_self_intersecting_triangles()) == 0
    assert len(intersecting_pairs(mesh.vertices, mesh.faces)) == 0


def test_a_tangle_beyond_repair_is_reported_quickly_not_repaired_forever():
    """A closed surface crossing itself everywhere (the noise grid with its vertices
    shuffled): the search runs out of its work budget (core.solid.WORK_PER_FACE), no
    repair is tried, and the report says what it is, the same each run."""
    from core.geometry.topology import is_closed
    from core.surface.crossings import invalid_volume_warning as _invalid_volume_warning

    mesh, _ = noise_grid(256)
    shuffled = mesh.vertices[np.random.default_rng(1).permutation(mesh.n_vertices)]
    assert mesh.n_faces > 10_000 and is_closed(mesh.faces)
    report = volume_report(shuffled, mesh.faces)
    assert report["closed"] and not report["valid"] and not report["self_intersections_counted"]
    assert "too many places" in _invalid_volume_warning(report)
    untangled, left = untangle(shuffled, mesh.faces)
    assert left > 1000
    np.testing.assert_array_equal(untangled, shuffled)  # left as it is
    # and it is so: with no work budget, a thousand crossing pairs are soon found
    assert len(crossing_pairs(shuffled, mesh.faces, limit=1000, work=None)[0]) == 1000


def test_untangle_undoes_a_fold_only_where_it_is():
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_sphere(0.5, resolution=20)
    anchor = np.asarray(m.vertices).copy()
    faces = np.asarray(m.triangles)
    bent = anchor.copy()
    # push a cap of the sphere through the far side
    cap = anchor[:, 2] > 0.45
    bent[cap, 2] -= 0.97
    assert len(intersecting_pairs(bent, faces)) > 0
    fixed, left = untangle(bent, faces, anchor)
    assert left == 0
    assert not o3d_mesh(fixed, faces).is_self_intersecting()
    far = np.linalg.norm(anchor - anchor[cap].mean(axis=0), axis=1) > 0.6
    assert np.array_equal(fixed[far], bent[far])  # untouched away from the fold


# --- every path of the meshing gives a valid volume --------------------------------------------

PATHS = {
    "poisson": {},
    "grid": {"method": "grid"},
    "smooth": {"smooth": 8},
    "decimated": {"target_faces": 1500},
    "thin": {"thickness": 0.15},
    "thick": {"thickness": 2.0},
    "everything": {"smooth": 3, "target_faces": 3000, "thickness": 0.5},
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize(
    "name", ["toy", pytest.param("torus", marks=pytest.mark.slow), "chair", "cup"]
)
def test_every_closed_solid_is_a_valid_volume(name, path):
    options = dict(PATHS[path])
    if name == "torus" and path != "poisson":
        # The torus at the automatic depth has 60-80k faces, and Open3D's own check takes
        # 6-9 s a time there: its other paths run one octree level coarser (16-18k faces,
        # the hole and the tube still there); the default path keeps the automatic depth.
        options["poisson_depth"] = 6
    mesh, info = solid(name, **options)
    assert info["watertight"] and info["self_intersections"] == 0
    assert_valid_volume(mesh)


def test_a_step_whose_crossings_cannot_be_repaired_is_undone_with_a_warning(monkeypatch):
    """Smoothing that pushes a patch of the front through the back, and a repair that
    cannot undo it (emulated: every repair after it gives up): the solid is the surface
    before the smoothing, a valid volume, and the report says the smoothing was not
    applied. The surface before it comes from the same Poisson solve (``solids``)."""
    from core.surface import build, crossings

    solids: dict = {}
    before, _ = solid("sphere", solids=solids, shape="inflate")

    dents = []

    def dented(mesh, iterations):
        dents.append(iterations)
        v = mesh.vertices.copy()
        z = v[:, 2]
        near = z < np.quantile(z, 0.005)  # a patch of the front, pushed through the back
        v[near, 2] += 1.5 * float(np.ptp(z))
        return type(mesh)(v, mesh.faces, mesh.colors)

    real = crossings.untangle

    def gives_up(vertices, faces, anchor=None, **options):
        if not dents:
            return real(vertices, faces, anchor, **options)
        pairs, _ = crossing_pairs(vertices, faces)
        return np.array(vertices), len(pairs)

    monkeypatch.setattr(build, "taubin", dented)
    monkeypatch.setattr(crossings, "untangle", gives_up)  # where each step's repair looks it up
    monkeypatch.setattr(build, "untangle", gives_up)
    after, info = solid("sphere", solids=solids, shape="inflate", smooth=2)
    assert info["poisson_reused"]
    assert info["warnings"] == [
        "The smoothing made faces cross that could not be repaired, so it was not applied "
        "to the solid."
    ]
    assert info["watertight"] and info["self_intersections"] == 0
    assert volume_report(after.vertices, after.faces)["valid"]
    # the solid without the smoothing (whose report test_our_report_says_what_open3d_says
    # checks against Open3D), vertex for vertex
    np.testing.assert_array_equal(after.faces, before.faces)
    np.testing.assert_array_equal(after.vertices, before.vertices)


def test_chair_legs_stay_legs():
    """Thin parts are kept, not sanded away to make the volume valid."""
    mesh, info = solid("chair")
    s = small_scene("chair")
    from core.oracle.scores import completeness

    assert completeness(mesh, s.visible_points, 0.02 * s.diagonal) > 0.95
    assert_valid_volume(mesh)


@st.composite
def blobs(draw):
    """A few boxes and spheres, some thin, overlapping or apart, posed at random."""
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        centre = draw(st.tuples(*[st.floats(-0.15, 0.15)] * 3))
        if draw(st.booleans()):
            size = draw(st.tuples(*[st.floats(0.01, 0.25)] * 3))
            part = _box(size, [(0.8, 0.4, 0.2)] * 6)
        else:
            part = _sphere(draw(st.floats(0.02, 0.15)), (0.3, 0.6, 0.8), resolution=16)
        angles = draw(st.tuples(*[st.floats(0, 90)] * 3))
        parts.append(_place(part, _rotation(*angles), centre))
    return _merge(parts)


def test_a_rod_seen_end_on_gives_a_valid_grid_solid():
    """Found by the test below: a square rod seen almost end on is steep in depth, and the
    grid's back copies leaned a fifth of a pixel outward met the front (Open3D found 2
    crossing pairs in a solid reported valid). Leaned copies that make faces cross now go
    back onto their rays."""
    from core.geometry.camera import intrinsics_from_fov
    from core.geometry.mesh import Mesh

    x = [(-0.02025662, 0.09653296), (-0.03492761, 0.12412507)]
    x += [(0.02025662, 0.15346704), (0.03492761, 0.12587494)]
    corners = np.array([(a, b, z) for z in (-0.125, 0.125) for a, b in x])
    quads = [(0, 1, 2, 3), (7, 6, 5, 4), (0, 4, 5, 1), (1, 5, 6, 2), (2, 6, 7, 3), (3, 7, 4, 0)]
    faces = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    rod = Mesh(corners + [0, 0, 1.2], faces, np.full((8, 3), 0.5))
    assert o3d_mesh(rod.vertices, rod.faces).get_volume() != 0
    s = render("rod", rod, intrinsics_from_fov(160, 120, 50))
    cloud = point_cloud(s.depth, s.rgb, s.mask, s.intrinsics)
    mesh, info = reconstruct_surface(cloud, s.depth, s.rgb, s.mask, s.intrinsics, method="grid")
    assert info["watertight"] and info["self_intersections"] == 0
    assert_valid_volume(mesh)


@pytest.mark.slow
def test_a_sliver_in_stepped_depth_is_lifted_clear_of_float32_rounding():
    """Depth in 1 cm steps (a depth sensor's): Poisson left a sliver 10 micrometres across,
    7 micrometres from a face, that Open3D's float test calls crossing. Lifted off by a
    thousandth of its size, it moved less than float32's rounding at 0.8 m and 2 pairs
    were left: the solid was reported "not a valid volume". It now moves a few float32
    steps at least."""
    s = make_shape_scene("blob")
    depth = np.where(s.mask, np.round(s.depth / 0.01) * 0.01, 0.0).astype(np.float32)
    cloud = point_cloud(depth, s.rgb, s.mask, s.intrinsics)
    mesh, info = reconstruct_surface(cloud, depth, s.rgb, s.mask, s.intrinsics, shape="inflate")
    assert info["watertight"] and info["self_intersections"] == 0, info["warnings"]
    assert volume_report(mesh.vertices.astype(np.float32).astype(np.float64), mesh.faces)["valid"]


# The same examples on every run (derandomize), so that CI is reproducible. Random runs
# of the grid path alone (135 shapes) found one case where Open3D still disagrees with our
# report, a known limitation (README, "Mesh"): a staircase of depth (a box's side seen
# nearly edge on) gives front faces in one exact plane, and Open3D's float test calls two
# of them, 0.7 pixel apart in the image, crossing.
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(shape=blobs(), path=st.sampled_from(["poisson", "grid", "thin", "smooth"]))
def test_random_shapes_give_valid_volumes(shape, path):
    from core.errors import InputError
    from core.geometry.camera import intrinsics_from_fov
    from core.geometry.mesh import Mesh

    placed = Mesh(shape.vertices + np.array([0, 0, 1.2]), shape.faces, shape.colors)
    s = render("blob", placed, intrinsics_from_fov(160, 120, 50))
    if s.mask.sum() < 50:
        return
    cloud = point_cloud(s.depth, s.rgb, s.mask, s.intrinsics)
    try:
        mesh, info = reconstruct_surface(cloud, s.depth, s.rgb, s.mask, s.intrinsics, **PATHS[path])
    except InputError:
        return  # too few points: a readable error, not a broken solid
    if info["watertight"]:
        assert_valid_volume(mesh)
    else:
        # never called a solid when it is not one, and the user is told why
        assert any("valid volume" in w or "holes" in w for w in info["warnings"])


# --- the depth grid: valid by construction, and Open3D agrees ----------------------------------


def test_the_bundled_example_s_grid_is_a_valid_volume_open3d_agrees():
    """examples/toy.jpg with its exact depth, at 160 x 120: the closed grid is reported
    valid without any search, and Open3D finds it watertight with no crossing pair."""
    from pathlib import Path

    from PIL import Image

    from core.depth.maps import load_depth_map
    from core.geometry.camera import intrinsics_from_focal

    root = Path(__file__).resolve().parents[3] / "examples"
    w, h = 160, 120
    rgb = np.asarray(Image.open(root / "toy.jpg").convert("RGB").resize((w, h)))
    mask = np.asarray(Image.open(root / "toy_mask.png").convert("L").resize((w, h), 0)) > 127
    depth, _ = load_depth_map(root / "toy_depth.png", (w, h), 0.001)
    k = intrinsics_from_focal(w, h, 888.8888888888889 * w / 640)
    cloud = point_cloud(depth, rgb, mask, k)
    mesh, info = reconstruct_surface(cloud, depth, rgb, mask, k, method="grid")
    assert info["watertight"] and info["self_intersections"] == 0 and not info["warnings"]
    m = o3d_mesh(mesh.vertices, mesh.faces)
    assert closed_manifold(m) and len(m.get_self_intersecting_triangles()) == 0
    assert len(intersecting_pairs(mesh.vertices, mesh.faces)) == 0


@pytest.mark.parametrize("name", ["sphere", "box", "toy"])
def test_grid_walls_along_a_straight_outline_do_not_touch(name):
    """The walls of a straight run of outline lie in one plane through the camera: built
    as flat strips (same diagonal, back on the pixel rays) Open3D called 5, 2 and 5 pairs
    of them crossing on these scenes. Alternating diagonals and leaned back edges: none."""
    mesh, info = solid(name, method="grid")
    assert info["watertight"] and info["self_intersections"] == 0
    m = o3d_mesh(mesh.vertices, mesh.faces)
    assert len(m.get_self_intersecting_triangles()) == 0 and closed_manifold(m)
    # the front stays on its pixel rays: only back copies of border vertices lean
    s = small_scene(name)
    k = s.intrinsics
    v = np.asarray(mesh.vertices)
    u = k.fx * v[:, 0] / v[:, 2] + k.cx
    r = k.fy * v[:, 1] / v[:, 2] + k.cy
    off = np.maximum(np.abs(u - np.rint(u)), np.abs(r - np.rint(r)))
    assert off.max() < 0.201 and (off < 1e-3).mean() > 0.9


AGREEMENT = {
    "grid": {"method": "grid"},
    "poisson": {"poisson_depth": 6},
    "grid smoothed": {"method": "grid", "smooth": 5},
    "grid decimated": {"method": "grid", "target_faces": 2000},
    "smoothed and decimated": {"smooth": 3, "target_faces": 1500},
}


@pytest.mark.parametrize("path", list(AGREEMENT))
@pytest.mark.parametrize("name", ["sphere", "box", "chair"])
def test_our_report_says_what_open3d_says(name, path):
    """Valid exactly when Open3D says watertight; our count of crossing pairs, 0, is its count.

    That includes the pairs Open3D's float test calls crossing although they only lie
    side by side, nearly coplanar (a smoothed or decimated grid of a flat object, rounded
    to float32): the search asks the same test (core.solid.tritri) and the repair moves them.
    """
    mesh, info = solid(name, **AGREEMENT[path])
    v = np.asarray(mesh.vertices, dtype=np.float32).astype(np.float64)
    m = o3d_mesh(v, mesh.faces)
    assert info["watertight"] and info["self_intersections"] == 0
    assert len(intersecting_pairs(mesh.vertices, mesh.faces)) == 0
    assert closed_manifold(m) and len(np.asarray(m.get_self_intersecting_triangles())) == 0


def test_open3d_s_float_test_is_answered_as_open3d_answers_it():
    """core.solid.tritri gives Open3D's own answer pair by pair, also on the nearly coplanar
    pairs where that answer is noise (side by side in one plane, float32-rounded)."""
    from core.solid.tritri import open3d_flags

    rng = np.random.default_rng(1)
    n = 1500
    general = (rng.normal(size=(n, 3, 3)), rng.normal(size=(n, 3, 3)) * 0.7 + 0.3)
    flat = np.concatenate(
        [rng.uniform(0, 1e-3, (n, 6, 2)), 0.5 + rng.normal(0, 3e-8, (n, 6, 1))], axis=2
    )
    normal = rng.normal(size=(n, 1, 3))
    t1 = rng.normal(size=(n, 1, 3))
    t1 -= (t1 * normal).sum(-1, keepdims=True) / (normal**2).sum(-1, keepdims=True) * normal
    t2 = np.cross(normal, t1)
    c = rng.uniform(0, 1e-3, (n, 6, 2))
    tilted = 0.7 + c[..., :1] * t1 + c[..., 1:] * t2 + rng.normal(0, 1e-9, (n, 6, 3))
    for p, q in (general, (flat[:, :3], flat[:, 3:]), (tilted[:, :3], tilted[:, 3:])):
        verts = np.concatenate([p, q], axis=1).reshape(-1, 3)
        m = o3d_mesh(verts, np.arange(6 * n).reshape(-1, 3))
        theirs = np.zeros(n, dtype=bool)
        for a, b in np.asarray(m.get_self_intersecting_triangles()):
            if a // 2 == b // 2:
                theirs[a // 2] = True
        ours = open3d_flags(p, q)
        assert 0.1 * n < theirs.sum() < 0.9 * n  # both answers occur
        assert (ours != theirs).sum() <= 0.002 * n  # an unstable pair or two may round apart


def test_faces_that_touch_count_as_crossing():
    """Two triangles 5e-6 of the surface's size apart, sharing no vertex: crossing (and
    pulled apart by a repair), as Open3D's test may call them; 1e-3 apart: not."""
    base = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    far = np.array([[2.0, 2.0, 2.0]])  # sets the surface's size
    for gap, crossing in ((5e-6, True), (1e-3, False)):
        top = np.array([[0.2, 0.2, 0.0], [0.2, 0.2, 1.0], [0.6, 0.2, 1.0]]) + [0, 0, gap * 2]
        v = np.concatenate([base, top, far])
        f = np.array([[0, 1, 2], [3, 4, 5]])
        assert (len(crossing_pairs(v, f)[0]) == 1) == crossing, gap


def test_the_exact_referee_keeps_real_crossings():
    """_crossing_for_real only drops Open3D's false positives: two triangles piercing each
    other stay a crossing, and the same two moved apart are none."""
    from core.geometry.mesh import Mesh

    a = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    b = [[0.2, 0.2, -0.5], [0.2, 0.2, 0.5], [0.8, -0.3, 0.0]]
    for shift, crossing in ((0.0, True), (5.0, False)):
        v = np.array(a + [[x + shift, y, z] for x, y, z in b], dtype=np.float64)
        mesh = Mesh(v, np.array([[0, 1, 2], [3, 4, 5]]), np.zeros_like(v))
        m = o3d_mesh(mesh.vertices, mesh.faces)
        assert bool(_crossing_for_real(mesh, m)) is crossing
