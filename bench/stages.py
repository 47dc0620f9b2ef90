"""The stages after the networks on realistic depth: oracle scenes with network-like depth, timed per stage in one warm process.

    python bench/stages.py                  # 14 scenes at 640 x 480, 3 rounds (~3 minutes)
    python bench/stages.py --quick          # 2 scenes at 200 x 150, 1 round (smoke test)
    python bench/stages.py --json out.json

The benchmark's random-weight depth network gives a crumpled plane inside the mask,
which no real photo gives; here the depth is each oracle scene's exact depth corrupted
the way a depth network errs (core.oracle.scores.network_like_depth), saved as a depth
map, and the photo's alpha is its mask. Each round runs the real ``Pipeline`` on every
scene in a fresh ``Pipeline`` (its in-memory Poisson cache would otherwise serve the
next round) of one warm process, writes the mesh as a textured GLB, and draws the
preview as the command does. One more, profiled, run per scene splits the mesh stage
into its parts (:data:`PARTS`), scaled to the median. Targets from issue 25 (2 cores,
warm, 640 px): mesh stage <= 0.8 s including the shape prior and the valid-volume
guarantee, writing mesh + texture + preview <= 0.3 s, the preview <= 0.15 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The parts of the mesh stage, by where their time is spent (module prefixes under core/,
#: or a native function's name); whatever else the mesh stage spends is "rest".
PARTS = {
    "Poisson solve": ("create_from_point_cloud_poisson",),
    "back cloud": ("core/surface/back.py", "core/surface/thickness.py"),
    "shape prior": ("core/shape_prior/",),
    "valid volume (crossings, repair)": ("core/solid/", "core/surface/crossings.py"),
    "hidden colours": ("core/surface/hidden_colours.py",),
}

#: Targets (issue 25): seconds.
TARGETS = {"mesh": 0.8, "writing": 0.3, "preview": 0.15}


def scenes(quick: bool) -> list[tuple[str, object]]:
    from core.oracle.hidden_side import HIDDEN_SCENES, make_hidden_scene
    from core.oracle.scenes import SCENE_NAMES, make_scene

    size = {"width": 200, "height": 150} if quick else {"width": 640, "height": 480}
    if quick:
        return [("toy", make_scene("toy", **size)), ("mug", make_hidden_scene("mug", **size))]
    out = [(name, make_scene(name, **size)) for name in SCENE_NAMES]
    return out + [(name, make_hidden_scene(name, **size)) for name in HIDDEN_SCENES]


def prepare(name: str, scene, folder: Path) -> dict:
    """The scene as a user gives it: an RGBA photo and a depth map (network-like depth)."""
    import numpy as np

    from core.oracle.scenes import save_scene
    from core.oracle.scores import network_like_depth

    paths = save_scene(scene, folder / name)
    depth = network_like_depth(scene.depth, scene.mask).astype(np.float32)
    np.save(paths["depth_npy"], depth)
    return {
        "photo": str(paths["rgba"]),
        "depth": str(paths["depth_npy"]),
        "fx": scene.intrinsics.fx,
    }


def one_run(item: dict, size: int, out: Path, profile: bool = False) -> dict:
    """One photo through a fresh Pipeline, then written as the command writes it."""
    from core.files.meshes import mesh_files
    from core.files.preview import preview_png
    from core.runs.pipeline import Pipeline
    from core.settings import Settings

    settings = Settings(depth_map=item["depth"], focal_px=item["fx"], max_size=size, cache=False)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    result = Pipeline().run(item["photo"], settings)
    if profiler is not None:
        profiler.disable()
    t0 = time.perf_counter()
    for path, write in mesh_files(result.mesh, out):
        with open(path, "wb") as f:
            write(f)
    t1 = time.perf_counter()
    png = preview_png(result.mesh, camera=result.camera)
    t2 = time.perf_counter()
    out.with_suffix(".png").write_bytes(png)
    stages = dict(result.timings)
    stages["write"] = t1 - t0
    stages["preview"] = t2 - t1
    run = {
        "stages": stages,
        "faces": int(result.mesh.n_faces),
        "shape": result.info.get("mesh_shape"),
        "valid": result.kind == "closed solid",
    }
    if profiler is not None:
        run["parts"] = split(profiler)
    return run


def split(profiler) -> dict[str, float]:
    """Seconds per :data:`PARTS` entry, each function's own time given to the nearest
    caller in core/ (numpy's and Open3D's work counts for the code that asked for it)."""
    import pstats

    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]

    def part_of(func) -> str | None:
        filename, _, name = func
        where = filename.replace("\\", "/")
        for part, keys in PARTS.items():
            for key in keys:
                if key.endswith((".py", "/")):
                    if f"/{key}" in where:
                        return part
                elif key in name:  # a native function: "<built-in method ...key>"
                    return part
        return None

    def in_core(func) -> bool:
        return "/core/" in func[0].replace("\\", "/")

    totals = dict.fromkeys(PARTS, 0.0)

    def give(func, seconds: float, depth: int = 0) -> None:
        part = part_of(func)
        if part is not None:
            totals[part] += seconds
            return
        if in_core(func) or depth > 30:
            return  # core code of no listed part: the rest
        callers = stats[func][4]
        spent = sum(edge[2] + 1e-12 for edge in callers.values())
        for caller, edge in callers.items():
            if caller in stats:
                give(caller, seconds * (edge[2] + 1e-12) / spent, depth + 1)

    for func, (_, _, own, _, _) in stats.items():
        if own > 0:
            give(func, own)
    return totals


def measure(quick: bool = False, rounds: int | None = None, log=print) -> dict:
    rounds = rounds or (1 if quick else 3)
    work = Path(tempfile.mkdtemp(prefix="img2mesh-stages-"))
    made = scenes(quick)
    size = 200 if quick else 640
    items = {name: prepare(name, scene, work) for name, scene in made}
    log(f"stages: warming up ({len(items)} scenes at {size} px)")
    first = next(iter(items))
    one_run(items[first], size, work / "warm.glb")  # imports, first-call costs
    runs: dict[str, list[dict]] = {name: [] for name in items}
    for r in range(rounds):
        log(f"stages: round {r + 1}/{rounds}")
        for name, item in items.items():
            runs[name].append(one_run(item, size, work / f"{name}.glb"))
    log("stages: one profiled run per scene (the mesh stage's parts)")
    rows = {}
    for name, item in items.items():
        profiled = one_run(item, size, work / f"{name}.glb", profile=True)
        keys = runs[name][0]["stages"].keys()
        median = {
            k: statistics.median(run["stages"].get(k, 0.0) for run in runs[name]) for k in keys
        }
        scale = median["mesh"] / max(profiled["stages"]["mesh"], 1e-9)
        parts = {k: v * scale for k, v in profiled["parts"].items()}
        named = sum(parts.values())
        if named > median["mesh"]:  # the profiler's own overhead, unevenly spread
            parts = {k: v * median["mesh"] / named for k, v in parts.items()}
        parts["rest"] = max(0.0, median["mesh"] - sum(parts.values()))
        rows[name] = {
            "stages": median,
            "writing": median["write"] + median["preview"],
            "parts": parts,
            "faces": runs[name][0]["faces"],
            "shape": runs[name][0]["shape"],
            "valid": runs[name][0]["valid"],
        }
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return {"size": size, "rounds": rounds, "scenes": rows}


def summary(result: dict) -> dict:
    rows = result["scenes"].values()

    def med(get) -> float:
        return statistics.median(get(r) for r in rows)

    return {
        "mesh": med(lambda r: r["stages"]["mesh"]),
        "mesh_max": max(r["stages"]["mesh"] for r in rows),
        "texture": med(lambda r: r["stages"].get("texture", 0.0)),
        "pointcloud": med(lambda r: r["stages"]["pointcloud"]),
        "writing": med(lambda r: r["writing"] + r["stages"].get("texture", 0.0)),
        "preview": med(lambda r: r["stages"]["preview"]),
    }


def markdown(result: dict, image: str | None = None) -> list[str]:
    s = summary(result)
    parts = list(PARTS) + ["rest"]
    lines = [
        "## The stages after the networks, on realistic depth",
        "",
        f"`bench/stages.py`: {len(result['scenes'])} oracle scenes (the geometry scenes and the "
        "hidden-side scenes) at "
        f"{result['size']} px with depth corrupted like a network's (a depth map given to the "
        "real `Pipeline`; the photo's alpha is the mask), one warm process, a fresh `Pipeline` "
        f"per run, median of {result['rounds']} rounds. Writing is the textured GLB plus the "
        "texture's bake (the mesh stage's last step, timed apart) plus the preview. The mesh "
        "stage's parts come from one profiled run per scene, scaled to the median.",
        "",
        "| scene | prior | faces | point cloud | mesh | " + " | ".join(parts) + " | texture "
        "| write GLB | preview |",
        "|---|---|---|---|---|" + "---|" * len(parts) + "---|---|---|",
    ]
    for name, r in result["scenes"].items():
        st = r["stages"]
        lines.append(
            f"| {name} | {r['shape'] or '-'} | {r['faces']:,} | {st['pointcloud']:.3f} | "
            f"{st['mesh']:.2f} | "
            + " | ".join(f"{r['parts'][p]:.2f}" for p in parts)
            + f" | {st.get('texture', 0.0):.3f} | {st['write']:.3f} | {st['preview']:.3f} |"
        )
    verdict = [
        ("mesh stage, median of the scenes", s["mesh"], TARGETS["mesh"]),
        ("writing: texture + GLB + preview, median", s["writing"], TARGETS["writing"]),
        ("preview, median", s["preview"], TARGETS["preview"]),
    ]
    lines += ["", "| measure | seconds | target | met |", "|---|---|---|---|"]
    for label, value, limit in verdict:
        lines.append(
            f"| {label} | {value:.3f} | <= {limit} | {'yes' if value <= limit else '**no**'} |"
        )
    lines.append(f"| mesh stage, slowest scene | {s['mesh_max']:.3f} | | |")
    if image:
        lines += ["", f"![Where the mesh stage's time goes, per scene]({image})"]
    return lines + [""]


def plot(result: dict, path: Path) -> None:
    """A stacked bar per scene: the mesh stage's parts, then texture, write, preview."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["scenes"])
    segments = [*PARTS, "rest", "texture", "write", "preview"]
    colors = [
        "#64b5f6",
        "#90caf9",
        "#ffb74d",
        "#e57373",
        "#ba68c8",
        "#b0bec5",
        "#81c784",
        "#a5d6a7",
        "#fff176",
    ]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(names) + 2.0), dpi=90)
    left = [0.0] * len(names)
    for segment, color in zip(segments, colors, strict=True):
        widths = []
        for n in names:
            r = result["scenes"][n]
            widths.append(
                r["parts"][segment] if segment in r["parts"] else r["stages"].get(segment, 0.0)
            )
        ax.barh(names, widths, left=left, color=color, label=segment, edgecolor="white")
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.axvline(TARGETS["mesh"], color="#455a64", lw=0.8, ls="--")
    ax.invert_yaxis()
    ax.set_xlabel("seconds (median, warm process, 2 cores)")
    ax.legend(ncol=5, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("After the networks: mesh stage parts, texture, write, preview", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small scenes, one round")
    parser.add_argument("--rounds", type=int, help="rounds per scene (3)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write the stacked-bar picture here")
    args = parser.parse_args(argv)
    result = measure(args.quick, args.rounds, log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.plot:
        plot(result, args.plot)
    print("\n".join(markdown(result, str(args.plot) if args.plot else None)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
