"""Colour fidelity and cost of the photo texture: ``python bench/run.py --only texture``.

Fidelity: one ray per foreground pixel of the photo (at its original size) from the
run's camera; where it hits the mesh, the mesh's colour there (the texture at the hit's
UV, or the vertex colours interpolated) is compared with the photo: PSNR over the hits,
texture and vertex colours of the same mesh side by side. On the oracle scenes
(core/oracle/scenes.py, exact depth) and on the real photos in ../shared/data (weight-free
inflated depth; masks from the photo's alpha, else the real IS-Net model there).

Cost: the pipeline's "texture" time plus the extra time to write the GLB, texture on
and off alternating in one process (medians), for a 640-px photo and a 12-MP one.
Writes bench/results/texture.json and docs/texture-benchmark.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data"
ISNET = DATA / "models" / "isnet-general-use-fp16.onnx"
SCENES = ("sphere", "box", "torus", "toy")
#: Targets of issue 14.
TARGET_PSNR_DB = 30.0
TARGET_GAIN_DB = 8.0
TARGET_640_S = 0.5
TARGET_12MP_S = 1.5


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def fidelity(result, photo_rgb: np.ndarray, mask: np.ndarray) -> dict:
    """PSNR of texture and vertex colours against ``photo_rgb`` (original size) over ``mask``."""
    import open3d as o3d

    from core.geometry.camera import to_camera_frame
    from core.surface.texture import sample_texture

    mesh = to_camera_frame(result.mesh, result.camera)
    h, w = photo_rgb.shape[:2]
    K = result.camera.intrinsics.scaled(w, h)
    rows, cols = np.nonzero(mask)
    dirs = np.stack([(cols - K.cx) / K.fx, (rows - K.cy) / K.fy, np.ones(len(rows))], axis=1)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    rays = np.zeros((len(rows), 6), np.float32)
    rays[:, 3:] = dirs
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(mesh.vertices), o3d.core.Tensor(mesh.faces.astype(np.uint32))
    )
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    face = hit["primitive_ids"].numpy().astype(np.int64)
    ok = np.isfinite(hit["t_hit"].numpy())
    uv = hit["primitive_uvs"].numpy()[ok].astype(np.float64)
    bary = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)
    face = face[ok]
    want = photo_rgb[rows[ok], cols[ok]].astype(np.float64)
    vertex = (mesh.colors[mesh.faces[face]] * 255.0 * bary[:, :, None]).sum(axis=1)
    out = {
        "pixels": int(len(rows)),
        "hit_share": round(float(ok.mean()), 4),
        "psnr_vertex_db": round(psnr(vertex, want), 2),
    }
    if result.texture is not None:
        texture = sample_texture(result.texture, face, bary)
        out["psnr_texture_db"] = round(psnr(texture, want), 2)
        out["gain_db"] = round(out["psnr_texture_db"] - out["psnr_vertex_db"], 2)
        seen = result.texture.seen[face]
        out["seen_hit_share"] = round(float(seen.mean()), 4)
        out["sampled_texels_filled"] = result.texture.info["sampled_texels_filled"]
        out["texture_size"] = list(result.texture.size)
    return out


def _full_mask(result, size) -> np.ndarray:
    from PIL import Image

    w, h = size
    if (w, h) == result.photo.size:
        return result.mask
    return np.asarray(Image.fromarray(result.mask.astype(np.uint8) * 255).resize((w, h))) >= 128


def oracle_cases(work: Path) -> list[dict]:
    from core.oracle.scenes import make_scene, save_scene
    from core.runs.pipeline import Pipeline
    from core.settings import Settings

    out = []
    pipeline = Pipeline(cache_dir=work / "cache")
    for name in SCENES:
        scene = make_scene(name)
        paths = save_scene(scene, work / "scenes")
        settings = Settings(depth_map=str(paths["depth_npy"]), segment="none", cache=False)
        result = pipeline.run(paths["rgba"], settings)
        row = {"case": f"oracle {name}", "depth": "exact", "mask": "true (alpha)"}
        row.update(fidelity(result, scene.rgb, scene.mask))
        out.append(row)
    return out


def isnet_alpha(path: Path) -> np.ndarray:
    """The photo's mask from the real IS-Net model (models/README.md there: 1024x1024, mean 0.5)."""
    import onnxruntime as ort
    from PIL import Image

    rgb = Image.open(path).convert("RGB")
    x = np.asarray(rgb.resize((1024, 1024), Image.Resampling.BILINEAR), np.float32) / 255.0 - 0.5
    session = ort.InferenceSession(str(ISNET), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": x.transpose(2, 0, 1)[None]})[0]
    m = out[0, 0]
    m = (m - m.min()) / max(float(m.max() - m.min()), 1e-6)
    alpha = Image.fromarray((m * 255).astype(np.uint8)).resize(rgb.size, Image.Resampling.BILINEAR)
    return np.asarray(alpha)


def real_cases(work: Path) -> list[dict]:
    from PIL import Image

    from core.files.photos import load_original
    from core.runs.pipeline import Pipeline
    from core.settings import Settings

    photos = sorted((DATA / "photos").glob("*")) if (DATA / "photos").is_dir() else []
    out = []
    pipeline = Pipeline(cache_dir=work / "cache")
    for path in photos:
        has_alpha = Image.open(path).mode in ("RGBA", "LA")
        if not has_alpha and not ISNET.is_file():
            continue
        settings = Settings(depth="inflate", cache=False)
        if has_alpha:
            result = pipeline.run(path, settings)
        else:
            # the photo with IS-Net's mask as alpha, written losslessly (same pixels)
            cut = work / f"{path.stem}_isnet.png"
            rgb = np.asarray(Image.open(path).convert("RGB"))
            Image.fromarray(np.dstack([rgb, isnet_alpha(path)])).save(cut)
            result = pipeline.run(cut, settings)
        original = load_original(result.photo)
        full = result.photo.rgb if original is None else np.asarray(original)
        mask = _full_mask(result, (full.shape[1], full.shape[0]))
        row = {
            "case": path.name,
            "depth": "inflate",
            "mask": "alpha" if has_alpha else "IS-Net",
            "size": f"{full.shape[1]}x{full.shape[0]}",
        }
        row.update(fidelity(result, full, mask))
        out.append(row)
    return out


def cost(work: Path, repeat: int) -> list[dict]:
    """Texture on/off alternating in one process: the texture stage plus the GLB write."""
    from PIL import Image

    from core.files.meshes import write_mesh
    from core.runs.pipeline import Pipeline
    from core.settings import Settings

    source = DATA / "photos" / "fruit.jpg"
    if not source.is_file():
        return []
    inputs = {}
    base = Image.open(source).convert("RGB")
    inputs["640 px"] = work / "photo640.jpg"
    base.resize((640, round(640 * base.height / base.width)), Image.Resampling.LANCZOS).save(
        inputs["640 px"], quality=92
    )
    inputs["12 MP"] = work / "photo12mp.jpg"
    base.resize((4000, 3000), Image.Resampling.LANCZOS).save(inputs["12 MP"], quality=92)
    out = []
    for label, path in inputs.items():
        pipeline = Pipeline(cache_dir=work / "cache")
        settings = Settings(depth="inflate", segment="key")
        pipeline.run(path, settings)  # warm: mask cached, libraries loaded
        runs: dict[bool, list[float]] = {True: [], False: []}
        stage: list[float] = []
        for _ in range(repeat):
            for textured in (True, False):
                # a new photo object each time: the texture reads the file again, as a run would
                pipeline._original = None
                t0 = time.perf_counter()
                result = pipeline.run(path, settings.replace(texture=textured))
                write_mesh(result.mesh, work / "out.glb", overwrite=True)
                runs[textured].append(time.perf_counter() - t0)
                if textured:
                    stage.append(result.timings["texture"])
        on, off = statistics.median(runs[True]), statistics.median(runs[False])
        out.append(
            {
                "photo": label,
                "size": "x".join(map(str, result.photo.original_size)),
                "faces": result.mesh.n_faces,
                "texture_stage_s": round(statistics.median(stage), 3),
                "run_with_s": round(on, 3),
                "run_without_s": round(off, 3),
                "added_s": round(on - off, 3),
                "target_s": TARGET_640_S if label == "640 px" else TARGET_12MP_S,
            }
        )
    return out


def markdown(results: dict) -> str:
    lines = [
        "# Photo texture: colour fidelity and cost",
        "",
        f"Made by `{results['command']}` on {results['date']} (bench/texture.py). One ray per "
        "foreground pixel of the photo (original size) from the run's camera; PSNR of the "
        "mesh's colour at the hit against the photo, over the pixels whose ray hits the mesh. "
        "Texture and vertex colours are sampled on the same mesh.",
        "",
        "| case | depth | mask | rays hitting | seen faces at the hits | vertex colours | texture | gain | texels filled |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["fidelity"]:
        lines.append(
            f"| {row['case']} | {row['depth']} | {row['mask']} | {row['hit_share']:.1%} | "
            f"{row.get('seen_hit_share', 0):.1%} | {row['psnr_vertex_db']:.1f} dB | "
            f"{row.get('psnr_texture_db', float('nan')):.1f} dB | {row.get('gain_db', float('nan')):+.1f} dB | "
            f"{row.get('sampled_texels_filled', 0):.0%} |"
        )
    real = [r for r in results["fidelity"] if not r["case"].startswith("oracle")]
    if real:
        worst = min(r["psnr_texture_db"] for r in real)
        gain = min(r["gain_db"] for r in real)
        lines += [
            "",
            f"Real photos: texture at least {worst:.1f} dB (target {TARGET_PSNR_DB:.0f} dB: "
            f"{'met' if worst >= TARGET_PSNR_DB else 'NOT met'}), at least {gain:+.1f} dB over "
            f"the vertex colours (target +{TARGET_GAIN_DB:.0f} dB: "
            f"{'met' if gain >= TARGET_GAIN_DB else 'NOT met'}).",
        ]
    if results["cost"]:
        lines += [
            "",
            "## Cost",
            "",
            "A run with the texture (and its GLB written) against one without, alternating in "
            f"one warm process, medians of {results['repeat']}; weight-free depth (the "
            "texture's cost depends on the photo's size and the face count, not on the depth "
            "source). The 12-MP photo is worked at 640 px; its texture comes from all 12 MP.",
            "",
            "| photo | size | faces | texture stage | run with | run without | added | target |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in results["cost"]:
            lines.append(
                f"| {row['photo']} | {row['size']} | {row['faces']:,} | {row['texture_stage_s']:.2f} s | "
                f"{row['run_with_s']:.2f} s | {row['run_without_s']:.2f} s | "
                f"{row['added_s']:.2f} s | <= {row['target_s']} s "
                f"({'met' if row['added_s'] <= row['target_s'] else 'NOT met'}) |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per setting (3)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "texture-benchmark.md")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "texture.json")
    parser.add_argument("--no-cost", action="store_true", help="fidelity only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="img2mesh-texture-") as tmp:
        work = Path(tmp)
        results = {
            "command": "python bench/run.py --only texture"
            + (f" --repeat {args.repeat}" if args.repeat != 3 else ""),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "repeat": args.repeat,
            "fidelity": oracle_cases(work) + real_cases(work),
            "cost": [] if args.no_cost else cost(work, args.repeat),
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    args.out.write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
