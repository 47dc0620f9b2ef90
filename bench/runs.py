"""One benchmark configuration in one fresh process: ``python -m bench.runs KIND --json OUT ...``.

Kinds: ``original`` (the original approach, stage by stage), ``ours`` (the core's
Pipeline, stage by stage; optionally a second image and a cached re-mesh in the same
warm process), ``geometry`` (either approach on an oracle scene, scored),
``worker`` (the real ``python -m core.worker`` process, if it is there).
Whole commands (the original script, ``img2mesh``) are timed by bench/run.py from
outside. Only the standard library is imported at the top, so the first timed
import is the configuration's own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

T0 = time.perf_counter()


def _timer():
    last = [time.perf_counter()]

    def lap() -> float:
        now = time.perf_counter()
        seconds = now - last[0]
        last[0] = now
        return seconds

    return lap


# --- the original approach -----------------------------------------------------------------------


def run_original(args) -> dict:
    lap = _timer()
    # The original script's imports, then its model load.
    import numpy as np  # noqa: F401
    import open3d  # noqa: F401
    import torch
    from PIL import Image
    from transformers import GLPNForDepthEstimation, GLPNImageProcessor  # noqa: F401

    from bench import original

    imports = lap()
    processor, network = original.load_model(args.model)
    startup = {"imports": imports, "model_load": lap()}
    stages: dict[str, float] = {}
    image = original.resize(Image.open(args.image))
    stages["load"] = lap()
    inputs = processor(images=image, return_tensors="pt")
    stages["preprocess"] = lap()
    with torch.no_grad():
        predicted = network(**inputs).predicted_depth
    stages["forward"] = lap()
    rgb, depth = original.crop_and_quantise(image, predicted)
    stages["depth_post"] = lap()
    pcd = original.point_cloud(rgb, depth)
    stages["rgbd_to_points"] = lap()
    points_before = len(pcd.points)
    pcd = original.clean(pcd)
    stages["outliers"] = lap()
    pcd = original.normals(pcd)
    stages["normals"] = lap()
    mesh = original.poisson(pcd)
    stages["mesh"] = lap()
    original.write(mesh, args.out)
    stages["write"] = lap()
    return {
        "startup": startup,
        "stages": stages,
        "counts": {
            "points": len(pcd.points),
            "points_before_cleaning": points_before,
            "triangles": len(mesh.triangles),
            "vertices": len(mesh.vertices),
        },
        "input_shape": list(np.asarray(image).shape[:2]),
    }


# --- ours ----------------------------------------------------------------------------------------


def run_ours(args) -> dict:
    lap = _timer()
    from core.runs.pipeline import Pipeline
    from core.settings import Settings

    settings = Settings(**json.loads(args.settings))
    imports = lap()
    pipeline = Pipeline(cache_dir=args.cache_dir, concurrent=args.concurrent)
    size = _working_size(args.image, settings.max_size)
    startup = {"imports": imports}
    if settings.segment == "rembg":
        pipeline.load_models(settings.replace(depth="inflate"))
        startup["segmentation_model"] = lap()
    if settings.depth == "model":
        pipeline.load_models(settings.replace(segment="none"), size)
        startup["depth_model"] = lap()
    out: dict = {"startup": startup}
    out["first"] = _one_image(pipeline, args.image, settings, args.out)
    if args.image2:
        out["second"] = _one_image(pipeline, args.image2, settings, args.out)
    for change in args.remesh or []:
        changed = settings.replace(**json.loads(change))
        out.setdefault("remesh", []).append(
            {"change": json.loads(change), **_one_image(pipeline, args.image, changed, args.out)}
        )
    return out


def _working_size(path: str, max_size: int) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
    scale = min(1.0, max_size / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def _one_image(pipeline, image: str, settings, out: str) -> dict:
    from core.files.meshes import write_mesh

    t0 = time.perf_counter()
    result = pipeline.run(image, settings)
    t1 = time.perf_counter()
    write_mesh(result.mesh, out, overwrite=True)
    t2 = time.perf_counter()
    # the preview as the command draws it, timed apart (the first one imports matplotlib)
    from core.files.preview import write_preview

    preview = Path(out).with_name(Path(out).stem + ".preview.png")
    write_preview(result.mesh, preview, camera=result.camera, overwrite=True)
    t3 = time.perf_counter()
    report = result.report()
    return {
        "stages": {**result.timings, "write": t2 - t1},
        "preview": t3 - t2,
        "forward": result.info.get("depth_forward_s"),
        "wall": t2 - t0,
        "backend": result.info.get("depth_backend"),
        "backend_note": result.info.get("depth_backend_note"),
        "mask_network": result.info.get("mask_network"),
        "cache": report["cache"],
        "warnings": result.warnings,
        "counts": {
            "points": report["counts"]["points"],
            "triangles": result.mesh.n_faces,
            "vertices": result.mesh.n_vertices,
        },
        "poisson_depth": report["mesh"].get("mesh_poisson_depth"),
    }


# --- geometry ------------------------------------------------------------------------------------


def run_geometry(args) -> dict:
    """One approach on one oracle scene, scored in the scene's camera frame."""
    import numpy as np

    from core.geometry.mesh import Mesh
    from core.oracle.scenes import make_scene, save_scene
    from core.oracle.scores import score

    width, height = (int(v) for v in args.size.split("x"))
    scene = make_scene(args.scene, width=width, height=height)
    if args.approach == "original":
        from bench import original

        t0 = time.perf_counter()
        mesh, pcd, frame = original.mesh_from_depth(scene.rgb, scene.depth, scene.intrinsics)
        seconds = time.perf_counter() - t0
        faces = np.asarray(mesh.triangles)
        raw = np.asarray(mesh.vertices)
        own = original.to_camera_frame(raw, frame, scene.intrinsics)
        true = original.to_camera_frame(raw, frame, scene.intrinsics, true_camera=True)
        ours = Mesh(true, faces, np.zeros_like(true))
        as_made = Mesh(own, faces, np.zeros_like(own))
        points = len(pcd.points)
        timings = {"pointcloud+mesh": seconds}
    else:
        from core.geometry.camera import to_camera_frame
        from core.runs.pipeline import Pipeline
        from core.settings import Settings

        paths = save_scene(scene, Path(args.workdir) / args.scene)
        options = json.loads(args.settings)
        settings = Settings(
            depth_map=str(paths["depth_npy"]),
            focal_px=float(scene.intrinsics.fx),
            max_size=max(width, height),
            cache=False,
            **options,
        )
        pipeline = Pipeline()
        result = pipeline.run(paths["rgba"], settings)
        ours = to_camera_frame(result.mesh, result.camera)
        points = result.info["points"]
        timings = {k: result.timings[k] for k in ("pointcloud", "mesh")}
        timings["pointcloud+mesh"] = timings["pointcloud"] + timings["mesh"]
        remesh = []
        for change in args.remesh or []:
            t0 = time.perf_counter()
            again = pipeline.run(paths["rgba"], settings.replace(**json.loads(change)))
            remesh.append(
                {
                    "change": json.loads(change),
                    "wall": time.perf_counter() - t0,
                    "stages": again.timings,
                    "triangles": again.mesh.n_faces,
                    "warnings": again.warnings,
                }
            )

    def plain(scores: dict) -> dict:
        return {k: (bool(v) if k == "watertight" else float(v)) for k, v in scores.items()}

    out = {}
    if args.approach == "original":
        out["scores_own_camera"] = plain(score(as_made, scene))
    elif remesh:
        out["remesh"] = remesh
    return {
        **out,
        "scene": args.scene,
        "approach": args.approach,
        "scores": plain(score(ours, scene)),
        "points": int(points),
        "timings": timings,
    }


# --- the real worker -----------------------------------------------------------------------------


def run_worker(args) -> dict:
    """Two photos through the real worker (``python -m core.worker``, docs/worker-protocol.md).

    Times each request from sending it to its ``done`` event; the worker process starts
    first and says ``ready``, so its start-up is timed on its own.
    """
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-u", "-m", "core.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        cwd=str(Path(__file__).resolve().parent.parent),
    )

    def wait_for(*kinds: str) -> dict:
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the worker stopped")
            event = json.loads(line)
            if event.get("event") in kinds:
                return event

    out: dict = {}
    try:
        wait_for("ready")
        out["ready"] = time.perf_counter() - t0
        folder = Path(args.out).parent
        for name, image in (("first", args.image), ("second", args.image2)):
            request = {
                "request": "reconstruct",
                "id": name,
                "image": image,
                "output": str(folder / f"worker-{name}.npz"),
                "settings": json.loads(args.settings),
            }
            t1 = time.perf_counter()
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            event = wait_for("done", "error")
            if event["event"] == "error":
                raise RuntimeError(event.get("message", "the worker failed"))
            out[name] = time.perf_counter() - t1
            out[f"{name}_report"] = event.get("report", {}).get("timings_s")
        proc.stdin.write(json.dumps({"request": "shutdown"}) + "\n")
        proc.stdin.flush()
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    return out


def run_ray_start(args) -> dict:
    """Start a local Ray instance and one actor that answers: Ray's fixed cost per run."""
    t0 = time.perf_counter()
    import logging

    import ray

    ray.init(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    started = time.perf_counter() - t0

    @ray.remote(num_cpus=1)
    class Echo:
        def ping(self) -> str:
            import core.runs.pipeline  # noqa: F401  (what a PhotoWorker imports first)

            return "ok"

    actor = Echo.remote()
    ray.get(actor.ping.remote())
    ready = time.perf_counter() - t0
    ray.shutdown()
    return {"init": started, "actor_ready": ready, "total": time.perf_counter() - t0}


def run_import(args) -> dict:
    """How long importing one module takes in a fresh process (``--module``)."""
    import importlib

    t0 = time.perf_counter()
    module = args.module
    if module.endswith(":deferred"):  # as the pipeline imports it (core.runs.startup)
        from core.runs.startup import defer_open3d_plotly

        defer_open3d_plotly()
        module = module.split(":")[0]
    importlib.import_module(module)
    return {"seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "kind", choices=["original", "ours", "geometry", "worker", "import", "ray_start"]
    )
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--image")
    parser.add_argument("--image2")
    parser.add_argument("--out")
    parser.add_argument("--model", help="the original's GLPN folder")
    parser.add_argument("--settings", default="{}", help="core Settings as JSON")
    parser.add_argument(
        "--remesh", action="append", help="mesh settings to change for a cached re-mesh (JSON)"
    )
    parser.add_argument("--cache-dir")
    parser.add_argument("--scene")
    parser.add_argument("--approach", choices=["original", "ours"])
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--workdir")
    parser.add_argument("--module")
    parser.add_argument(
        "--concurrent", action="store_true", help="segmentation and depth at the same time"
    )
    args = parser.parse_args(argv)
    run = {"original": run_original, "ours": run_ours, "geometry": run_geometry}
    run["worker"] = run_worker
    run["import"] = run_import
    run["ray_start"] = run_ray_start
    result = run[args.kind](args)
    result["process_s"] = time.perf_counter() - T0
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
