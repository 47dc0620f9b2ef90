"""Times bringing a ~1M-triangle coloured mesh into Blender: our importer, from_pydata, the PLY importer."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import bpy
except ImportError:
    sys.exit(
        "This benchmark needs bpy (Blender as a Python module): run it with .venv-blender/bin/python."
    )

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from img2mesh_addon import importer  # noqa: E402


def displaced_grid(triangles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A k x k vertex grid with 2 (k-1)^2 ~ ``triangles`` triangles, a bumpy height and photo-like colours."""
    k = math.ceil(math.sqrt(triangles / 2.0)) + 1
    ys, xs = np.mgrid[0:k, 0:k].astype(np.float32) / np.float32(k - 1)
    height = 0.1 * np.sin(12.0 * xs) * np.cos(9.0 * ys)
    vertices = np.stack([xs.ravel() - 0.5, height.ravel(), ys.ravel()], axis=1)
    idx = np.arange(k * k, dtype=np.int32).reshape(k, k)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    # 8-bit colours like a photo's, as floats in [0, 1].
    rgb = np.stack([xs.ravel(), ys.ravel(), 0.5 + height.ravel() * 4.0], axis=1)
    colors = np.round(np.clip(rgb, 0.0, 1.0) * 255.0) / 255.0
    return (
        np.ascontiguousarray(vertices, dtype=np.float32),
        np.ascontiguousarray(faces, dtype=np.int32),
        np.ascontiguousarray(colors, dtype=np.float32),
    )


def write_binary_ply(path: Path, vertices, faces, colors) -> None:
    """Binary little-endian PLY with float x, y, z, uchar red, green, blue and triangle lists."""
    vertex = np.empty(
        len(vertices),
        dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")],
    )
    vertex["x"], vertex["y"], vertex["z"] = vertices.T
    rgb = np.round(colors * 255.0).astype(np.uint8)
    vertex["r"], vertex["g"], vertex["b"] = rgb.T
    face = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face["n"], face["v"] = 3, faces
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {len(faces)}\n"
        "property list uchar int vertex_indices\nend_header\n"
    )
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(vertex.tobytes())
        fh.write(face.tobytes())


def clear_scene() -> None:
    for collection in (bpy.data.objects, bpy.data.meshes, bpy.data.materials):
        for block in list(collection):
            collection.remove(block)


def run_ours(vertices, faces, colors, **kwargs) -> None:
    importer.import_mesh("bench", vertices, faces, colors, **kwargs)


def run_from_pydata(vertices, faces, colors) -> None:
    mesh = bpy.data.meshes.new("bench")
    mesh.from_pydata(vertices, [], faces)
    mesh.update()
    attribute = mesh.color_attributes.new("Color", "BYTE_COLOR", "POINT")
    rgba = np.ones((len(colors), 4), dtype=np.float32)
    rgba[:, :3] = colors
    attribute.data.foreach_set("color_srgb", rgba.ravel())
    mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
    obj = bpy.data.objects.new("bench", mesh)
    bpy.context.collection.objects.link(obj)


def run_ply(path: Path) -> None:
    bpy.ops.wm.ply_import(filepath=str(path))


def time_runs(label: str, fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        clear_scene()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    print(f"  {label}: " + ", ".join(f"{t:.3f}" for t in times), file=sys.stderr)
    clear_scene()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--triangles", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write {method: median seconds} here")
    args = parser.parse_args(argv)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    vertices, faces, colors = displaced_grid(args.triangles)
    normals = np.zeros_like(vertices)
    normals[:, 1] = -1.0
    print(f"{len(vertices)} vertices, {len(faces)} triangles, Blender {bpy.app.version_string}")

    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ply = Path(tmp) / "bench.ply"
        write_binary_ply(ply, vertices, faces, colors)
        results["ply_import"] = time_runs("ply_import", lambda: run_ply(ply), args.repeat)
    results["import_mesh"] = time_runs(
        "import_mesh", lambda: run_ours(vertices, faces, colors), args.repeat
    )
    results["import_mesh+normals"] = time_runs(
        "import_mesh+normals",
        lambda: run_ours(vertices, faces, colors, normals=normals),
        args.repeat,
    )
    results["import_mesh+validate"] = time_runs(
        "import_mesh+validate",
        lambda: run_ours(vertices, faces, colors, validate=True),
        args.repeat,
    )
    results["from_pydata"] = time_runs(
        "from_pydata", lambda: run_from_pydata(vertices, faces, colors), args.repeat
    )

    medians = {method: statistics.median(times) for method, times in results.items()}
    ply_time = medians["ply_import"]
    print(f"\n{'method':<22} {'median s':>9} {'best s':>8} {'x PLY':>6}")
    for method, times in results.items():
        print(
            f"{method:<22} {medians[method]:9.3f} {min(times):8.3f} {medians[method] / ply_time:6.2f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(medians, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
