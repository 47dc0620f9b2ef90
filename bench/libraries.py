"""Our crossing search, repair and decimation against the field's libraries, on the pipeline's own meshes.

    python bench/libraries.py                  # 640 x 480, the scenes below (tens of minutes)
    python bench/libraries.py --quick          # 320 x 240, Poisson depth 6, two scenes (smoke test)
    python bench/libraries.py --json out.json --markdown out.md --scenes toy,bottle
    python bench/libraries.py --render out.json  # the tables of a saved run again

It needs the libraries it compares, which img2mesh itself does not install:
``.venv/bin/python -m pip install manifold3d meshlib pymeshfix fast-simplification``.

Meshes (all rounded to float32, the values a mesh file keeps): for each oracle scene
(core.oracle.scenes.make_scene, core.oracle.shapes.make_shape_scene) with depth corrupted
like a network's (core.oracle.scores.network_like_depth): ``raw``, the closed Poisson solid
as Open3D gives it, before our repair (core.surface.poisson.poisson_mesh, which
closed_poisson then hands to core.surface.crossings.cleaned); ``stretched``, the repaired
solid stretched to a thickness of STRETCH x the width (core.surface.thickness, before the
cleaned call of build._thickened); ``result``, the closed mesh
core.surface.build.reconstruct_surface returns; ``decimated``, our decimation
(core.surface.refine.decimate, Open3D's quadric decimation) of the repaired solid to a
quarter of its faces, before the repair that build._simplified runs after it.

Tasks, each timed as the median of ``--repeats`` runs, interleaved (Open3D's search, which
is quadratic in the face count, is run once per mesh):

- search: ours (core.solid.search.intersecting_pairs), MeshLib's findSelfCollidingTriangles
  (touching counts or not) and Open3D's get_self_intersecting_triangles (pymeshfix's
  select_intersecting_triangles is left out: not in its public API, and in 0.18.1 it answers
  with garbage numbers); the pairs each finds, sorted by an exact test in
  rational arithmetic (do the two closed triangles share a point?) and the distance between
  them (within core.solid.exact.GAP of the mesh's size: "near");
- repair of ``raw``, ``stretched`` and ``decimated``: ours (core.surface.crossings.cleaned; untangle as
  build._simplified calls it), MeshLib's SelfIntersections.fix (Relax, CutAndFill) and
  pymeshfix's MeshFix.repair; the pairs left (Open3D, ours, exact), the vertices and faces
  kept, the distance to the input surface and the volume change;
- validity: manifold3d's Manifold(Mesh(...)).status() and its time, on meshes with and
  without crossings;
- decimation: ours (Open3D) against fast-simplification and MeshLib's decimateMesh, to the
  same face count: time, faces, whether it stays closed and the crossings it makes.

Also each library's version, and whether PyPI has a wheel for CPython 3.10 to 3.13 on
Linux x86_64, macOS arm64 and Windows amd64 (PyPI's JSON API; skipped offline).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCENES = ("toy", "torus", "sphere", "box", "bottle", "cup", "chair", "blob")
QUICK_SCENES = ("toy", "bottle")
#: The thickness (x the object's width) of the ``stretched`` mesh: a deep stretch folds the rim.
STRETCH = 1.0
PACKAGES = ("manifold3d", "meshlib", "meshlib-core", "pymeshfix", "fast-simplification", "open3d")
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
PLATFORMS = {"linux x86_64": "linux", "macOS arm64": "mac", "Windows amd64": "win"}


# --- the meshes ---------------------------------------------------------------------------------


def f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def make_meshes(name: str, quick: bool) -> list[dict]:
    """The raw Poisson solid, the pipeline's result and our decimation of the repaired solid."""
    from core.geometry.mesh import Mesh
    from core.geometry.topology import is_closed
    from core.oracle.scenes import SCENE_NAMES, make_scene
    from core.oracle.scores import network_like_depth
    from core.oracle.shapes import make_shape_scene
    from core.surface.back import back_cloud
    from core.surface.build import reconstruct_surface
    from core.surface.cloud import point_cloud
    from core.surface.crossings import cleaned
    from core.surface.poisson import WIDE_SCALE, choose_poisson_depth, poisson_mesh, poisson_scale
    from core.surface.refine import decimate
    from core.surface.thickness import stretched_solid

    size = {"width": 320, "height": 240} if quick else {"width": 640, "height": 480}
    scene = make_scene(name, **size) if name in SCENE_NAMES else make_shape_scene(name, **size)
    depth = network_like_depth(scene.depth, scene.mask)
    cloud = point_cloud(depth, scene.rgb, scene.mask, scene.intrinsics)
    silhouette = scene.mask | cloud.valid
    level = 6 if quick else choose_poisson_depth(len(cloud))  # quick: a quarter of the faces
    back = back_cloud(cloud, silhouette, scene.intrinsics)
    for scale in (poisson_scale(level), WIDE_SCALE):  # as closed_poisson: wider when cut open
        raw, _ = poisson_mesh(
            cloud, back, silhouette, scene.intrinsics, level, scale, None, lambda *a: None
        )
        if is_closed(raw.faces):
            break
    result, _ = reconstruct_surface(
        cloud, depth, scene.rgb, scene.mask, scene.intrinsics, shape="inflate", poisson_depth=level
    )
    clean, _ = cleaned(raw.vertices, raw.faces)
    solid = Mesh(clean, raw.faces, raw.colors)
    stretched = stretched_solid(solid, cloud, silhouette, scene.intrinsics, STRETCH)
    target = len(raw.faces) // 4
    small = decimate(solid, target)
    return [
        {"scene": name, "mesh": "raw", "v": f32(raw.vertices), "f": raw.faces.astype(np.int64)},
        {
            "scene": name,
            "mesh": "stretched",
            "v": f32(stretched.vertices),
            "f": stretched.faces.astype(np.int64),
        },
        {
            "scene": name,
            "mesh": "result",
            "v": f32(result.vertices),
            "f": result.faces.astype(np.int64),
        },
        {
            "scene": name,
            "mesh": "decimated",
            "v": f32(small.vertices),
            "f": small.faces.astype(np.int64),
            "source": (clean, raw.faces, target),
        },
    ]


# --- the searches -------------------------------------------------------------------------------


def ours_search(v, f) -> np.ndarray:
    from core.solid.search import intersecting_pairs

    return intersecting_pairs(v, f)


def meshlib_mesh(v, f):
    import meshlib.mrmeshnumpy as mn

    return mn.meshFromFacesVerts(
        np.ascontiguousarray(f, dtype=np.int32), np.ascontiguousarray(v, dtype=np.float32)
    )


def meshlib_search(v, f, touch: bool) -> np.ndarray:
    import meshlib.mrmeshpy as mm

    mesh = meshlib_mesh(v, f)
    found = mm.findSelfCollidingTriangles(mm.MeshPart(mesh), touchIsIntersection=touch)
    pairs = np.array([[p.aFace.get(), p.bFace.get()] for p in found], dtype=np.int64)
    return pairs.reshape(-1, 2)


def open3d_mesh(v, f):
    import open3d as o3d

    return o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(v, dtype=np.float64)),
        o3d.utility.Vector3iVector(np.asarray(f, dtype=np.int32)),
    )


def open3d_search(v, f) -> np.ndarray:
    return np.asarray(open3d_mesh(v, f).get_self_intersecting_triangles(), dtype=np.int64).reshape(
        -1, 2
    )


def pair_set(pairs: np.ndarray) -> set[tuple[int, int]]:
    pairs = np.sort(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), axis=1)
    return set(map(tuple, pairs.tolist()))


# --- an exact referee ---------------------------------------------------------------------------


def referee(v, f, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """Each pair's class: "meet" (exactly share a point), "near" (within core.solid.exact.GAP
    of the mesh's size) or "apart"; "neighbours" when they share a vertex."""
    from core.oracle.rational import exactly_meet
    from core.solid.exact import GAP, _triangle_distance

    span = float(np.ptp(v, axis=0).max())
    out = {}
    todo = sorted(pairs)
    if not todo:
        return out
    arr = np.array(todo)
    t1, t2 = v[f[arr[:, 0]]], v[f[arr[:, 1]]]
    dist = _triangle_distance(t1, t2)
    for k, (a, b) in enumerate(todo):
        if set(f[a].tolist()) & set(f[b].tolist()):
            out[(a, b)] = "neighbours"
        elif exactly_meet(t1[k], t2[k]):
            out[(a, b)] = "meet"
        elif dist[k] <= GAP * span:
            out[(a, b)] = "near"
        else:
            out[(a, b)] = "apart"
    return out


def exact_pairs_left(v, f) -> int:
    """Pairs that exactly share a point, among those our search or Open3D's finds."""
    found = pair_set(ours_search(v, f))
    return sum(1 for c in referee(v, f, found).values() if c == "meet")


# --- timing -------------------------------------------------------------------------------------


def timed(runs: dict, repeats: int) -> dict[str, tuple[float, object]]:
    """{name: (median seconds, last answer)}: each callable run ``repeats`` times, interleaved."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    answer: dict[str, object] = {}
    for _ in range(repeats):
        for name, (fn, once) in runs.items():
            if once and times[name]:
                continue
            start = time.perf_counter()
            answer[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {k: (statistics.median(times[k]), answer[k]) for k in runs}


# --- the tasks ----------------------------------------------------------------------------------


def search_row(m: dict, repeats: int) -> dict:
    v, f = m["v"], m["f"]
    runs = {
        "ours": (lambda: ours_search(v, f), False),
        "meshlib": (lambda: meshlib_search(v, f, False), False),
        "meshlib_touch": (lambda: meshlib_search(v, f, True), False),
        "open3d": (lambda: open3d_search(v, f), True),
    }
    got = timed(runs, repeats)
    sets = {k: pair_set(a) for k, (_, a) in got.items()}
    m["open3d_pairs"] = len(sets["open3d"])
    union = set().union(*sets.values())
    classes = referee(v, f, union)
    meet = {p for p, c in classes.items() if c == "meet"}
    seen_by_open3d = sets["open3d"]
    row = {"scene": m["scene"], "mesh": m["mesh"], "faces": len(f), "exact_meet": len(meet)}
    for k, (sec, _) in got.items():
        row[f"{k}_s"] = round(sec, 4)
    for k, s in sets.items():
        kinds = [classes[p] for p in s]
        row[k] = {
            "pairs": len(s),
            "meet": kinds.count("meet"),
            "near": kinds.count("near"),
            "apart": kinds.count("apart"),
            "neighbours": kinds.count("neighbours"),
            "missed_meet": len(meet - s),
            "missed_open3d": len(seen_by_open3d - s),
        }
    return row


def signed_volume(v, f) -> float:
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def meshlib_arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    import meshlib.mrmeshnumpy as mn

    mesh.pack()
    return mn.getNumpyVerts(mesh).astype(np.float64), mn.getNumpyFaces(mesh.topology).astype(
        np.int64
    )


def unchanged(v, f, rv, rf) -> bool:
    """Whether (rv, rf) holds exactly the triangles of (v, f), in any order."""
    if len(rf) != len(f):
        return False

    def triangles(vv, ff):
        return {tuple(sorted(map(tuple, t))) for t in vv[ff].tolist()}

    return triangles(v, f) == triangles(rv, rf)


def meshlib_fix(v, f, method: str):
    import meshlib.mrmeshpy as mm

    mesh = meshlib_mesh(v, f)
    settings = mm.SelfIntersections.Settings()
    settings.method = getattr(mm.SelfIntersections.Settings.Method, method)
    settings.touchIsIntersection = True
    settings.subdivideEdgeLen = (
        3.4e38  # FLT_MAX: no subdivision of the patches (face count kept near)
    )
    mm.SelfIntersections.fix(mesh, settings)
    return meshlib_arrays(mesh)


def pymeshfix_fix(v, f):
    import pymeshfix

    tm = pymeshfix.PyTMesh()
    tm.set_quiet(1)
    tm.load_array(np.ascontiguousarray(v, dtype=np.float64), np.ascontiguousarray(f, np.int32))
    tm.fill_small_boundaries(0, True)
    tm.clean()  # MeshFix.repair without dropping the smaller pieces
    pts, tris = tm.return_arrays()
    return np.asarray(pts, np.float64), np.asarray(tris, np.int64)


def ours_fix(v, f, mesh_kind: str):
    if mesh_kind in ("raw", "stretched"):
        from core.surface.crossings import cleaned

        out, _ = cleaned(v, f)
    else:
        from core.solid.repair import untangle

        out, _ = untangle(f32(v), f, float32=True)
    return out, f


def repair_row(m: dict, repeats: int) -> list[dict]:
    from core.geometry.mesh import Mesh
    from core.geometry.topology import is_closed
    from core.oracle.scores import surface_distance

    v, f = m["v"], m["f"]
    runs = {
        "ours": (lambda: ours_fix(v, f, m["mesh"]), False),
        "meshlib_relax": (lambda: meshlib_fix(v, f, "Relax"), False),
        "meshlib_cutfill": (lambda: meshlib_fix(v, f, "CutAndFill"), False),
        "pymeshfix": (lambda: pymeshfix_fix(v, f), False),
    }
    got = timed(runs, repeats)
    span = float(np.ptp(v, axis=0).max())
    volume = signed_volume(v, f)
    rows = []
    for k, (sec, (rv, rf)) in got.items():
        rv = f32(rv)
        same = len(rv) == len(v) and len(rf) == len(f) and np.array_equal(rf, f)
        to_input = surface_distance(Mesh(v, f, v), rv) / span
        to_output = surface_distance(Mesh(rv, rf, rv), v) / span if len(rf) else np.array([1.0])
        start = time.perf_counter()
        if unchanged(v, f, rv, rf) and "open3d_pairs" in m:
            o3d_left = m["open3d_pairs"]  # the same triangles: Open3D's answer on the input
        else:
            o3d_left = len(open3d_search(rv, rf))
        o3d_s = time.perf_counter() - start
        rows.append(
            {
                "scene": m["scene"],
                "mesh": m["mesh"],
                "method": k,
                "seconds": round(sec, 4),
                "faces_in": len(f),
                "faces_out": len(rf),
                "vertices_in": len(v),
                "vertices_out": len(rv),
                "same_topology": bool(same),
                "closed": is_closed(rf),
                "open3d_left": o3d_left,
                "open3d_check_s": round(o3d_s, 2),
                "ours_left": len(ours_search(rv, rf)),
                "exact_left": exact_pairs_left(rv, rf),
                "meshlib_left": len(meshlib_search(rv, rf, False)),
                "max_moved": float(np.abs(rv - v).max() / span) if same else None,
                "max_to_input": float(to_input.max()),
                "mean_to_input": float(to_input.mean()),
                "max_to_output": float(to_output.max()),
                "volume_change": signed_volume(rv, rf) / volume - 1.0,
            }
        )
    return rows


def manifold_row(m: dict, repeats: int) -> dict:
    import manifold3d as m3

    v, f = m["v"], m["f"]

    def build():
        mesh = m3.Mesh(
            vert_properties=np.ascontiguousarray(v, dtype=np.float32),
            tri_verts=np.ascontiguousarray(f, dtype=np.uint32),
        )
        solid = m3.Manifold(mesh)
        return str(solid.status()).split(".")[-1], solid.volume(), solid.num_tri()

    ((sec, (status, vol, tris)),) = timed({"m": (build, False)}, repeats).values()
    return {
        "scene": m["scene"],
        "mesh": m["mesh"],
        "faces": len(f),
        "seconds": round(sec, 4),
        "status": status,
        "triangles_kept": tris,
        "volume_ratio": vol / signed_volume(v, f) if len(f) else None,
    }


def bad_edges(f: np.ndarray) -> int:
    """Edges not shared by exactly two faces (0 on a closed surface)."""
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, count = np.unique(e, axis=0, return_counts=True)
    return int((count != 2).sum())


def decimation_row(m: dict, repeats: int) -> list[dict]:
    from core.geometry.mesh import Mesh
    from core.geometry.topology import is_closed
    from core.oracle.scores import surface_distance
    from core.solid.repair import untangle
    from core.surface.refine import decimate

    clean, faces, target = m["source"]
    v = f32(clean)

    def ours():
        out = decimate(Mesh(v, faces, np.zeros_like(v)), target)
        return np.asarray(out.vertices, np.float64), np.asarray(out.faces, np.int64)

    def fast():
        import fast_simplification

        pts, tris = fast_simplification.simplify(v, faces.astype(np.int32), target_count=target)
        return pts, np.asarray(tris, np.int64)

    def meshlib():
        import meshlib.mrmeshpy as mm

        mesh = meshlib_mesh(v, faces)
        settings = mm.DecimateSettings()
        settings.maxDeletedFaces = len(faces) - target
        settings.maxError = float("inf")
        settings.packMesh = True
        mm.decimateMesh(mesh, settings)
        return meshlib_arrays(mesh)

    got = timed(
        {
            "ours_open3d": (ours, False),
            "fast_simplification": (fast, False),
            "meshlib": (meshlib, False),
        },
        repeats,
    )
    rows = []
    for k, (sec, (dv, df)) in got.items():
        dv = f32(dv)
        left_before = len(ours_search(dv, df))
        start = time.perf_counter()
        relaxed, left = untangle(dv, df, float32=True)
        untangle_s = time.perf_counter() - start
        span = float(np.ptp(v, axis=0).max())
        to_input = surface_distance(Mesh(v, faces, v), dv) / span
        to_output = surface_distance(Mesh(dv, df, dv), v) / span
        rows.append(
            {
                "scene": m["scene"],
                "method": k,
                "seconds": round(sec, 4),
                "faces_in": len(faces),
                "target": target,
                "faces_out": len(df),
                "closed": is_closed(df),
                "bad_edges": bad_edges(df),
                "ours_pairs": left_before,
                "open3d_pairs": len(open3d_search(dv, df)),
                "exact_pairs": exact_pairs_left(dv, df),
                "untangle_s": round(untangle_s, 3),
                "left_after_untangle": left,
                "open3d_after_untangle": len(open3d_search(relaxed, df)),
                "max_to_input": float(to_input.max()),
                "mean_to_input": float(to_input.mean()),
                "max_to_output": float(to_output.max()),
                "mean_to_output": float(to_output.mean()),
                "volume_change": signed_volume(dv, df) / signed_volume(v, faces) - 1.0,
            }
        )
    return rows


# --- versions and wheels -------------------------------------------------------------------------


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for p in PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = "not installed"
    return out


def wheel_matrix(names: dict[str, str]) -> dict[str, dict[str, str]]:
    """{package: {"3.11 linux x86_64": "yes"/"no"}} from PyPI's file list of the version
    installed here (the newest release when none is)."""
    import urllib.request

    from packaging.utils import parse_wheel_filename

    out = {}
    for package, version in names.items():
        try:
            url = f"https://pypi.org/pypi/{package}/json"
            with urllib.request.urlopen(url, timeout=20) as r:
                data = json.load(r)
        except OSError as error:
            out[package] = {"error": str(error)}
            continue
        if version not in data.get("releases", {}):
            version = data["info"]["version"]
        files = data["releases"][version]
        tags = []
        for entry in files:
            if entry["filename"].endswith(".whl"):
                tags += list(parse_wheel_filename(entry["filename"])[3])
        data["info"]["version"] = version
        row = {"version": data["info"]["version"]}
        for py in PYTHONS:
            for label, os_name in PLATFORMS.items():
                row[f"{py} {label}"] = "yes" if any(_fits(t, py, os_name) for t in tags) else "no"
        out[package] = row
    return out


def _fits(tag, py: str, os_name: str) -> bool:
    minor = int(py.split(".")[1])
    interp, abi, plat = tag.interpreter, tag.abi, tag.platform
    if interp.startswith("cp"):
        n = int(interp[3:]) if interp[2:3] == "3" and interp[3:].isdigit() else -1
        ok = n == minor or (abi == "abi3" and 0 <= n <= minor)
    elif interp.startswith("py"):
        ok = interp in ("py3", f"py3{minor}") or (interp == "py2.py3")
    else:
        ok = False
    if not ok:
        return False
    if plat == "any":
        return True
    if os_name == "linux":
        return plat.endswith("x86_64") and "linux" in plat
    if os_name == "mac":
        return plat.startswith("macosx") and (plat.endswith("arm64") or "universal2" in plat)
    return plat == "win_amd64"


# --- the report ---------------------------------------------------------------------------------


def _p(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.3f}%"


def markdown(out: dict) -> str:
    lines = ["### Versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in out["versions"].items()]
    lines += [
        "",
        "### Search: seconds (median) and the pairs found",
        "",
        "Pairs: found / exactly meeting / near (within 1e-5 of the size) / apart / sharing a "
        "vertex (not tested); missed: exactly meeting pairs (among all found) / Open3D's pairs "
        "it did not report. Meeting: pairs sharing no vertex that exactly share a point.",
        "",
        "| scene | mesh | faces | meeting | ours | MeshLib | MeshLib touch | Open3D (1 run) |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(r, k):
        d = r[k]
        return (
            f"{r[k + '_s']:.3f} s: {d['pairs']} / {d['meet']} / {d['near']} / {d['apart']}"
            f" / {d['neighbours']}, missed {d['missed_meet']} / {d['missed_open3d']}"
        )

    for r in out["search"]:
        lines.append(
            f"| {r['scene']} | {r['mesh']} | {r['faces']} | {r['exact_meet']} | {cell(r, 'ours')} "
            f"| {cell(r, 'meshlib')} | {cell(r, 'meshlib_touch')} | {cell(r, 'open3d')} |"
        )
    lines += [
        "",
        "### Repair",
        "",
        "Left: crossing pairs after the repair by Open3D / ours / exactly meeting / "
        "MeshLib. Distances are shares of the mesh's size.",
        "",
        "| scene | mesh | method | seconds | left O3D / ours / exact / MeshLib | faces in "
        "-> out | same vertices and faces | closed | max moved | max / mean to input "
        "| max input to output | volume change |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["repair"]:
        lines.append(
            f"| {r['scene']} | {r['mesh']} | {r['method']} | {r['seconds']:.3f} "
            f"| {r['open3d_left']} / {r['ours_left']} / {r['exact_left']} / {r['meshlib_left']} "
            f"| {r['faces_in']} -> {r['faces_out']} | {r['same_topology']} | {r['closed']} "
            f"| {_p(r['max_moved'])} | {_p(r['max_to_input'])} / {_p(r['mean_to_input'])} "
            f"| {_p(r['max_to_output'])} | {100 * r['volume_change']:+.3f}% |"
        )
    lines += [
        "",
        "### manifold3d: Manifold(Mesh(...))",
        "",
        "| scene | mesh | faces | seconds | status | triangles kept | volume / ours |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out["manifold"]:
        lines.append(
            f"| {r['scene']} | {r['mesh']} | {r['faces']} | {r['seconds']:.4f} "
            f"| {r['status']} | {r['triangles_kept']} | {r['volume_ratio']:.5f} |"
        )
    lines += [
        "",
        "### Decimation to a quarter of the faces",
        "",
        "Pairs: crossing pairs after decimation, ours / Open3D / exactly meeting; then "
        "our untangle (as build._simplified runs it): seconds, pairs left (ours / Open3D); "
        "distances (shares of the size) from the result to the input surface and back.",
        "",
        "| scene | method | seconds | faces in -> out (target) | closed (edges not on two "
        "faces) | pairs ours / O3D / exact | untangle s | left ours / O3D | max / mean to input "
        "| max / mean input to it | volume change |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["decimation"]:
        lines.append(
            f"| {r['scene']} | {r['method']} | {r['seconds']:.3f} | {r['faces_in']} -> "
            f"{r['faces_out']} ({r['target']}) | {r['closed']} ({r.get('bad_edges', '-')}) "
            f"| {r['ours_pairs']} / {r['open3d_pairs']} / {r['exact_pairs']} "
            f"| {r['untangle_s']:.3f} | {r['left_after_untangle']} / "
            f"{r['open3d_after_untangle']} | {_p(r.get('max_to_input'))} / "
            f"{_p(r.get('mean_to_input'))} | {_p(r.get('max_to_output'))} / "
            f"{_p(r.get('mean_to_output'))} | "
            + ("-" if "volume_change" not in r else f"{100 * r['volume_change']:+.3f}%")
            + " |"
        )
    wheels = out.get("wheels") or {}
    if wheels:
        cols = [f"{py} {label}" for py in PYTHONS for label in PLATFORMS]
        lines += [
            "",
            "### Wheels on PyPI (CPython, binary only)",
            "",
            "| package | version | " + " | ".join(cols) + " |",
            "|---|---|" + "---|" * len(cols),
        ]
        for p, row in wheels.items():
            if "error" in row:
                lines.append(f"| {p} | {row['error']} |")
                continue
            lines.append(f"| {p} | {row['version']} | " + " | ".join(row[c] for c in cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scenes", default=None, help="comma-separated scene names")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--no-wheels", action="store_true", help="skip PyPI's file lists")
    parser.add_argument("--render", default=None, help="print the tables of a saved --json run")
    parser.add_argument(
        "--tasks", default="search,repair,manifold,decimation", help="comma-separated tasks"
    )
    args = parser.parse_args(argv)
    if args.render:
        text = markdown(json.loads(Path(args.render).read_text()))
        if args.markdown:
            Path(args.markdown).write_text(text)
        print(text)
        return
    names = args.scenes.split(",") if args.scenes else (QUICK_SCENES if args.quick else SCENES)
    out: dict = {
        "versions": versions(),
        "search": [],
        "repair": [],
        "manifold": [],
        "decimation": [],
    }
    if not args.no_wheels:
        out["wheels"] = wheel_matrix(out["versions"])
    for name in names:
        start = time.perf_counter()
        meshes = make_meshes(name, args.quick)
        print(f"# {name}: meshes in {time.perf_counter() - start:.1f} s", flush=True)
        tasks = set(args.tasks.split(","))
        for m in meshes:
            if "search" in tasks:
                out["search"].append(search_row(m, args.repeats))
                print(json.dumps(out["search"][-1]), flush=True)
            if "manifold" in tasks:
                out["manifold"].append(manifold_row(m, args.repeats))
                print(json.dumps(out["manifold"][-1]), flush=True)
            if "repair" in tasks and m["mesh"] in ("raw", "stretched", "decimated"):
                for row in repair_row(m, args.repeats):
                    out["repair"].append(row)
                    print(json.dumps(row), flush=True)
            if "decimation" in tasks and m["mesh"] == "decimated":
                for row in decimation_row(m, args.repeats):
                    out["decimation"].append(row)
                    print(json.dumps(row), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
    text = markdown(out)
    if args.markdown:
        Path(args.markdown).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
