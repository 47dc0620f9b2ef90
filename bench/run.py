"""img2mesh against the original approach, side by side in one run: ``python bench/run.py``.

Runs every configuration in its own fresh process on the same inputs, several times
and interleaved (so a busy machine slows both sides alike), takes medians, and writes
docs/benchmarks.md, the JSON behind it and a stacked-bar plot of time per stage.
``--quick`` does the same with tiny models and images (the test suite's smoke test).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Re-mesh variants timed in a warm process after a default run of the same photo.
REMESH = [{"thickness": 0.3}, {"open": True}, {"mesh": "grid"}]

SCENES = ("sphere", "box", "torus", "toy")

#: A photo of at most 350 px, where fixed costs dominate (a user's 271 x 347 photo).
SMALL = (272, 348)

#: Photos in the batch-throughput folder (local warm process against Ray on this machine).
BATCH_PHOTOS = 8

#: How each approach meshes an oracle scene in the geometry benchmark.
GEOMETRY_MODES = {
    "ours (default: closed solid)": {},
    "ours --open": {"open": True},
    "ours --mesh grid": {"mesh": "grid"},
}


def build_models(folder: Path, tiny: bool, only: list[str] | None) -> dict[str, Path]:
    """bench/models.py's build, in a child process: training U^2-Net grows a process to about
    3 GB, and on Linux every process forked after that reports that peak as its own (a child
    starts with its parent's memory), so every peak RSS of the run would read 2.8 GiB."""
    code = (
        "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1])\n"
        "from bench import models\n"
        "made = models.build(Path(sys.argv[2]), tiny=sys.argv[3] == '1', only=json.loads(sys.argv[4]))\n"
        "print(json.dumps({k: str(v) for k, v in made.items()}))\n"
    )
    args = [str(ROOT), str(folder), "1" if tiny else "0", json.dumps(only)]
    done = subprocess.run([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"bench: the benchmark's models could not be built (exit {done.returncode})"
        )
    return {name: Path(path) for name, path in json.loads(done.stdout.splitlines()[-1]).items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models and images (smoke test)")
    parser.add_argument("--repeat", type=int, help="fresh processes per configuration (3)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--images", type=Path, help="folder of the plot (next to --out: images/)")
    parser.add_argument("--json", type=Path, help="raw results (default: bench/results/)")
    parser.add_argument("--models", type=Path, help="model folder (default: bench/.models)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--no-blender", action="store_true", help="skip the Blender import timing")
    parser.add_argument(
        "--only",
        choices=["texture", "memory", "shape"],
        help="run one section on its own: texture = colour fidelity and cost of the photo "
        "texture (bench/texture.py; writes docs/texture-benchmark.md); memory = peak RSS, "
        "48-MP vs 640-px JPEG (printed); shape = whole-object scores, hidden side included, "
        "inflated vs the shape prior (bench/shape.py; printed, --quick for three small scenes)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS.json",
        help="measure nothing: write --out (and its plot) again from a run's saved results, "
        "after a change to the report's text",
    )
    args, rest = parser.parse_known_args(argv)
    if args.render:
        if rest or args.only:
            parser.error("--render takes only --out and --images")
        return render(json.loads(args.render.read_text()), args.out, args.images)
    if args.only == "texture":
        from bench import texture

        forward = [f"--repeat={args.repeat}"] if args.repeat else []
        if args.out != ROOT / "docs" / "benchmarks.md":
            forward.append(f"--out={args.out}")
        if args.json:
            forward.append(f"--json={args.json}")
        return texture.main(forward + rest)
    if args.only == "shape":
        from bench import shape

        forward = ["--quick"] if args.quick else []
        if args.json:
            forward.append(f"--json={args.json}")
        return shape.main(forward + rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.only == "memory":
        from bench import memory

        return memory.main(args.repeat or 3, args.workdir)

    from bench import models as bench_models

    quick = args.quick
    repeat = args.repeat or (1 if quick else 3)
    sizes = [(160, 120)] if quick else [(640, 480), (1280, 960)]
    json_path = args.json or ROOT / "bench" / "results" / ("quick.json" if quick else "full.json")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="img2mesh-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = args.models or (work / "models" if quick else bench_models.DEFAULT_FOLDER)
    home = work / "home"  # IMG2MESH_HOME of every "ours" process: ONNX graphs and caches
    shutil.rmtree(home, ignore_errors=True)
    bench = Bench(work, home, quick)
    first = sizes[0]
    results: dict = {
        "machine": machine(),
        "quick": quick,
        "repeat": repeat,
        "u2net_steps": 0 if quick else bench_models.U2NET_STEPS,
        "sizes": [f"{w}x{h}" for w, h in sizes],
        "command": " ".join(
            ["python bench/run.py"]
            + (["--quick"] if quick else [])
            + ([f"--repeat {args.repeat}"] if args.repeat else [])
            + (["--no-blender"] if args.no_blender else [])
        ),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }

    def independent() -> None:
        """What needs no network models: versions, geometry on exact depth, Blender."""
        results["versions"] = versions()
        log("geometry on oracle scenes")
        results["geometry"] = bench.geometry(first, SCENES[:1] if quick else SCENES)
        log("the stages after the networks on realistic depth (bench/stages.py)")
        results["stages"] = bench.stages()
        if not args.no_blender:
            log("Blender import")
            results["blender"] = bench.blender(20_000 if quick else 1_000_000, 1 if quick else 3)

    # The smoke test's numbers mean nothing, so it runs these beside the rest; a real
    # run keeps every measurement alone on the machine.
    background = Background(independent) if quick else None
    log(f"models in {model_dir}")
    only = ["glpn-nyu", "u2net.onnx"] if quick else None
    bench.models = build_models(model_dir, quick, only)
    inputs = make_inputs(work / "inputs", sizes)
    if not quick:  # the smoke test's 160 x 120 photo is itself small
        inputs[SMALL] = make_inputs(work / "inputs", [SMALL])[SMALL]
    originals = None
    if quick:  # the original approach needs no ONNX graph: beside ours, too

        def original_runs() -> None:
            tag = f"{first[0]}x{first[1]}"
            results["original_runs"] = {f"original {tag}": [bench.original(inputs[first]["first"])]}

        originals = Background(original_runs)
    log("first runs: exporting and verifying the ONNX graphs")
    results["first_run"] = bench.first_runs(inputs[first])
    log(f"timing: {repeat} round(s)")
    results["timing"] = bench.timing(inputs, sizes, repeat, original=originals is None)
    if originals is not None:
        originals.result()
        results["timing"].update(results.pop("original_runs"))
    if background is None:
        independent()
        log("the real worker")
        results["worker"] = bench.worker(inputs[first])
        results["imports"] = bench.import_times()
        log("memory on a 48-MP photo")
        from bench import memory

        results["memory"] = memory.measure(work, repeat)
        log("batch throughput: local and Ray")
        results["batch"] = bench.batch(inputs[first], BATCH_PHOTOS)
    else:
        background.result()
    small = first if quick else SMALL
    results["small"] = f"{small[0]}x{small[1]}"
    results["targets"] = targets(results, f"{first[0]}x{first[1]}")

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    render(results, args.out, args.images)
    log(f"and {json_path}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


class Background(threading.Thread):
    """A function run beside the main thread; :meth:`result` re-raises what it raised."""

    def __init__(self, fn) -> None:
        super().__init__(daemon=True)
        self.fn, self.error = fn, None
        self.start()

    def run(self) -> None:
        try:
            self.fn()
        except BaseException as exc:  # handed to the main thread
            self.error = exc

    def result(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- inputs ------------------------------------------------------------------------------------


def make_inputs(folder: Path, sizes) -> dict:
    """Per size: two photos (the toy and the box oracle scenes rendered as JPEG files)."""
    from PIL import Image

    from core.oracle.scenes import make_scene

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for w, h in sizes:
        paths = {}
        for role, name in (("first", "toy"), ("second", "box")):
            path = folder / f"{name}-{w}x{h}.jpg"
            Image.fromarray(make_scene(name, width=w, height=h).rgb).save(path, quality=92)
            paths[role] = path
        out[(w, h)] = paths
    return out


# --- running processes ---------------------------------------------------------------------------


class Bench:
    def __init__(self, work: Path, home: Path, quick: bool) -> None:
        self.work, self.home, self.quick = work, home, quick
        self.models: dict[str, Path] = {}
        # PYTHONFAULTHANDLER: a run that crashes leaves its Python stack in its .err file
        self.env = {**os.environ, "IMG2MESH_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        self.env["PYTHONFAULTHANDLER"] = "1"
        self.env.pop("PYTHONPATH", None)
        self.counter = itertools.count(1)

    def process(self, cmd: list[str], env: dict | None = None) -> dict:
        """Run ``cmd`` from the repository root; its wall time, peak RSS and what it wrote."""
        n = next(self.counter)
        out_json = self.work / f"run-{n}.json"
        cmd = [str(c).replace("{json}", str(out_json)) for c in cmd]
        err_path = self.work / f"run-{n}.err"
        with open(err_path, "wb") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env or self.env, stdout=subprocess.DEVNULL, stderr=err
            )
            if hasattr(os, "wait4"):
                _, status, usage = os.wait4(proc.pid, 0)
                wall = time.perf_counter() - t0
                code = os.waitstatus_to_exitcode(status)
                proc.returncode = code
                scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes / KiB
                rss = usage.ru_maxrss * scale
            else:
                code = proc.wait()
                wall, rss = time.perf_counter() - t0, None
        if code != 0:
            tail = err_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(cmd)} failed ({code}):\n{tail}")
        data = json.loads(out_json.read_text()) if out_json.exists() else {}
        return {"wall": wall, "peak_rss": rss, **data}

    def ours_settings(self, **changes) -> dict:
        return {
            "rembg_model": str(self.models["u2net.onnx"]),
            "model_dir": str(self.models["glpn-nyu"]),
            "device": "cpu",
            **changes,
        }

    def cli(self, image: Path, *extra: str) -> dict:
        """``img2mesh IMAGE`` with the benchmark's models, default options, a fresh cache."""
        shutil.rmtree(self.home / "cache", ignore_errors=True)
        out = self.work / "cli.ply"
        cmd = [sys.executable, "-m", "core", image, "-o", out, "--overwrite", "-q"]
        cmd += ["--rembg-model", self.models["u2net.onnx"]]
        cmd += ["--model-dir", self.models["glpn-nyu"], "--report", "{json}", *extra]
        return self.process(cmd)

    def first_runs(self, images: dict) -> dict:
        """The very first runs: PyTorch, then the ONNX export and its verification."""
        out = {"glpn": self.cli(images["first"])}
        if not self.quick:
            da = self.ours(images["first"], model_dir=str(self.models["depth-anything-v2-small"]))
            out["depth_anything"] = da
        return out

    def ours(
        self,
        image: Path,
        image2: Path | None = None,
        remesh=(),
        concurrent: bool = False,
        **changes,
    ) -> dict:
        cache = Path(tempfile.mkdtemp(prefix="cache-", dir=self.work))
        cmd = [sys.executable, "-m", "bench.runs", "ours", "--json", "{json}", "--image", image]
        if concurrent:
            cmd.append("--concurrent")
        cmd += ["--out", self.work / "ours.ply", "--cache-dir", cache]
        cmd += ["--settings", json.dumps(self.ours_settings(**changes))]
        if image2:
            cmd += ["--image2", image2]
        for change in remesh:
            cmd += ["--remesh", json.dumps(change)]
        result = self.process(cmd)
        shutil.rmtree(cache, ignore_errors=True)
        return result

    def original(self, image: Path) -> dict:
        cmd = [sys.executable, "-m", "bench.runs", "original", "--json", "{json}"]
        cmd += ["--image", image, "--out", self.work / "original.ply"]
        cmd += ["--model", self.models["glpn-nyu"]]
        return self.process(cmd)

    def timing(self, inputs: dict, sizes, repeat: int, *, original: bool = True) -> dict:
        """Every timed configuration, ``repeat`` rounds; without ``original``, ours only."""
        runs: dict[str, list] = {}
        first = sizes[0]
        for r in range(repeat):
            for w, h in sizes:
                images = inputs[(w, h)]
                tag = f"{w}x{h}"
                log(f"round {r + 1}/{repeat}, {tag}")
                # interleaved, so that a busy machine slows both sides alike
                if original:
                    runs.setdefault(f"original {tag}", []).append(self.original(images["first"]))
                runs.setdefault(f"ours {tag}", []).append(
                    self.ours(
                        images["first"],
                        images["second"],
                        remesh=REMESH if (w, h) == first else (),
                    )
                )
                runs.setdefault(f"ours cli {tag}", []).append(self.cli(images["first"]))
            if self.quick:
                continue  # the smoke test skips the comparisons that import torch
            w, h = SMALL
            log(f"round {r + 1}/{repeat}, {w}x{h} (small photo)")
            if original:
                runs.setdefault(f"original {w}x{h}", []).append(
                    self.original(inputs[SMALL]["first"])
                )
            runs.setdefault(f"ours cli {w}x{h}", []).append(self.cli(inputs[SMALL]["first"]))
            images = inputs[first]
            tag = f"{first[0]}x{first[1]}"
            da = str(self.models["depth-anything-v2-small"])
            runs.setdefault(f"ours concurrent {tag}", []).append(
                self.ours(images["first"], images["second"], concurrent=True)
            )
            runs.setdefault(f"ours torch {tag}", []).append(
                self.ours(images["first"], depth_backend="torch")
            )
            # INT8 off: full precision (the lever's "without"); same photos as "ours"
            runs.setdefault(f"ours fp32 {tag}", []).append(
                self.ours(images["first"], images["second"], quantize="off")
            )
            runs.setdefault(f"ours da {tag}", []).append(self.ours(images["first"], model_dir=da))
            runs.setdefault(f"ours da torch {tag}", []).append(
                self.ours(images["first"], model_dir=da, depth_backend="torch")
            )
        return runs

    def geometry(self, size, scenes) -> dict:
        w, h = size
        out = {}
        for scene in scenes:
            base = [sys.executable, "-m", "bench.runs", "geometry", "--json", "{json}"]
            base += ["--scene", scene, "--size", f"{w}x{h}", "--workdir", self.work / "scenes"]
            rows = {"original": self.process([*base, "--approach", "original"])}
            modes = list(GEOMETRY_MODES.items())[:1] if self.quick else GEOMETRY_MODES.items()
            for label, options in modes:
                cmd = [*base, "--approach", "ours", "--settings", json.dumps(options)]
                if not options:  # the default: then re-meshed in the same process
                    for change in REMESH:
                        cmd += ["--remesh", json.dumps(change)]
                rows[label] = self.process(cmd)
            out[scene] = rows
        return out

    def stages(self) -> dict:
        """bench/stages.py in a fresh process: oracle scenes with network-like depth."""
        out = self.work / "stages.json"
        cmd = [sys.executable, "-m", "bench.stages", "--json", str(out)]
        subprocess.run(
            [*cmd, *(["--quick"] if self.quick else [])],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        return json.loads(out.read_text())

    def worker(self, images: dict) -> dict | None:
        if not (ROOT / "core" / "worker" / "__main__.py").is_file():
            return None
        shutil.rmtree(self.home / "cache", ignore_errors=True)
        cmd = [sys.executable, "-m", "bench.runs", "worker", "--json", "{json}"]
        cmd += ["--image", images["first"], "--image2", images["second"]]
        cmd += ["--out", self.work / "worker.npz", "--settings", json.dumps(self.ours_settings())]
        try:
            return self.process(cmd)
        except RuntimeError as exc:
            log(f"the worker could not be timed: {exc}")
            return {"error": str(exc).splitlines()[0]}

    def batch(self, images: dict, n: int) -> dict | None:
        """One folder of ``n`` photos: ``img2mesh FOLDER`` in one warm process, then ``--ray``."""
        import importlib.util

        folder = self.work / "batch"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for i in range(n):
            role = "first" if i % 2 == 0 else "second"
            shutil.copy(images[role], folder / f"photo{i:02d}.jpg")
        base = [sys.executable, "-m", "core", folder, "--overwrite", "-q"]
        base += ["--rembg-model", self.models["u2net.onnx"], "--model-dir", self.models["glpn-nyu"]]
        out: dict = {"photos": n}
        shutil.rmtree(self.home / "cache", ignore_errors=True)
        out["local"] = self.process([*base, "-o", self.work / "batch-local"])["wall"]
        if importlib.util.find_spec("ray") is None:
            log("Ray is not installed: the Ray batch is not timed")
            return out
        env = {k: v for k, v in self.env.items() if k.lower() not in ("http_proxy", "https_proxy")}
        try:
            out["ray_start"] = self.process(
                [sys.executable, "-m", "bench.runs", "ray_start", "--json", "{json}"], env=env
            )
            shutil.rmtree(self.home / "cache", ignore_errors=True)
            # one worker of all cores: the same parallelism as the local run
            cores = str(os.cpu_count() or 1)
            cmd = [*base, "-o", self.work / "batch-ray", "--ray", "--ray-cpus", cores]
            out["ray"] = self.process(cmd, env=env)["wall"]
        except RuntimeError as exc:
            log(f"the Ray batch could not be timed: {exc}")
            out["error"] = str(exc).splitlines()[0]
        return out

    def import_times(self) -> dict:
        out = {}
        modules = ("open3d", "open3d:deferred", "rembg", "torch")
        for module in (*modules, "transformers.models.glpn.modeling_glpn"):
            cmd = [sys.executable, "-m", "bench.runs", "import", "--json", "{json}"]
            out[module] = self.process([*cmd, "--module", module])["seconds"]
        return out

    def blender(self, triangles: int, repeat: int) -> dict | None:
        python = ROOT / ".venv-blender" / "bin" / "python"
        if not python.exists():
            log("no .venv-blender: Blender import not timed")
            return None
        cmd = [python, ROOT / "bench" / "blender_import.py", "--json", "{json}"]
        cmd += ["--triangles", str(triangles), "--repeat", str(repeat)]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        result = self.process(cmd, env=env)
        result["triangles"] = triangles
        return result


# --- machine and versions -----------------------------------------------------------------------


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            memory = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("img2mesh", "torch", "transformers", "onnxruntime", "open3d", "rembg", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    python = ROOT / ".venv-blender" / "bin" / "python"
    if python.exists():
        try:
            out["bpy"] = (
                subprocess.run(
                    [python, "-c", "import bpy; print(bpy.app.version_string)"],
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
        except (OSError, subprocess.SubprocessError, IndexError):
            out["bpy"] = None
    return out


# --- summarising ---------------------------------------------------------------------------------


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def pick(runs: list[dict], path: str):
    """Median over runs of the value at a dotted path ("first.stages.mesh")."""
    values = []
    for run in runs:
        value = run
        for part in path.split("."):
            if isinstance(value, list):
                value = value[int(part)] if int(part) < len(value) else None
            else:
                value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                break
        values.append(value)
    return median(values)


def stage_table(timing: dict, tag: str) -> list[dict]:
    """Rows of (stage, original s, ours s) for one image size."""
    o, u, c = timing[f"original {tag}"], timing[f"ours {tag}"], timing[f"ours cli {tag}"]

    def total(runs, keys):
        return median([sum(_get(r, k) or 0.0 for k in keys) for r in runs])

    return [
        {
            "stage": "start-up: imports + model load",
            "original": total(o, ["startup.imports", "startup.model_load"]),
            "ours": total(
                u, ["startup.imports", "startup.segmentation_model", "startup.depth_model"]
            ),
        },
        {
            "stage": "load the photo",
            "original": pick(o, "stages.load"),
            "ours": pick(u, "first.stages.load"),
        },
        {
            "stage": "background removal (U^2-Net; the original has none)",
            "original": None,
            "ours": pick(u, "first.stages.segment"),
        },
        {
            "stage": "depth network forward (same input, same output)",
            "original": pick(o, "stages.forward"),
            "ours": pick(u, "first.forward"),
        },
        {
            "stage": "depth stage in all (pre- and post-processing, conversion)",
            "original": total(o, ["stages.preprocess", "stages.forward", "stages.depth_post"]),
            "ours": pick(u, "first.stages.depth"),
        },
        {
            "stage": "point cloud, cleaning, normals",
            "original": total(o, ["stages.rgbd_to_points", "stages.outliers", "stages.normals"]),
            "ours": pick(u, "first.stages.pointcloud"),
        },
        {
            "stage": "Poisson meshing incl. closing/trimming (ours: incl. importing Open3D)",
            "original": pick(o, "stages.mesh"),
            "ours": pick(u, "first.stages.mesh"),
        },
        {
            "stage": "write PLY",
            "original": pick(o, "stages.write"),
            "ours": pick(u, "first.stages.write"),
        },
        {
            "stage": "end-to-end: the whole process, launch to exit (ours: `img2mesh`, "
            "with its preview PNG)",
            "original": pick(o, "wall"),
            "ours": pick(c, "wall"),
        },
    ]


def _get(run: dict, path: str):
    value = run
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def targets(results: dict, tag: str) -> list[dict]:
    """Each target of the issue, measured in this run at ``tag``."""
    timing = results["timing"]
    o, u, c = timing[f"original {tag}"], timing[f"ours {tag}"], timing[f"ours cli {tag}"]
    rows = {r["stage"]: r for r in stage_table(timing, tag)}
    out = []

    def ratio_row(measure, original, ours, limit, unit="s"):
        ratio = ours / original if ours is not None and original else None
        out.append(
            {
                "measure": measure,
                "original": original,
                "ours": ours,
                "ratio": ratio,
                "target": f"<= {limit:.2f}x original",
                "met": ratio is not None and ratio <= limit,
                "unit": unit,
            }
        )

    def absolute_row(measure, ours, limit, extra=""):
        out.append(
            {
                "measure": measure,
                "original": None,
                "ours": ours,
                "ratio": None,
                "target": f"<= {limit:g} s{extra}",
                "met": ours is not None and ours <= limit,
                "unit": "s",
            }
        )

    def stage(key):
        return rows[next(k for k in rows if k.startswith(key))]

    r = stage("start-up")
    ratio_row("start-up: imports + model load", r["original"], r["ours"], 0.50)
    r = stage("depth network forward")
    ratio_row("depth network forward, same resolution, same output", r["original"], r["ours"], 0.50)
    absolute_row("background removal (segmentation)", stage("background removal")["ours"], 0.6)
    r = stage("point cloud")
    ratio_row("point cloud, cleaning, normals", r["original"], r["ours"], 0.50)
    r = stage("Poisson")
    ratio_row("Poisson meshing incl. closing/trimming", r["original"], r["ours"], 0.15)
    ratio_row("end-to-end default", pick(o, "wall"), pick(c, "wall"), 0.10)
    small = results.get("small")
    if small and f"original {small}" in timing and f"ours cli {small}" in timing:
        ratio_row(
            f"end-to-end default, photo of at most 350 px ({small})",
            pick(timing[f"original {small}"], "wall"),
            pick(timing[f"ours cli {small}"], "wall"),
            0.25,
        )
    ratio_row("second image in a warm process", pick(o, "wall"), pick(u, "second.wall"), 0.15)
    absolute_row("second image in a warm process, time", pick(u, "second.wall"), 2.0)
    worker = results.get("worker") or {}
    if worker.get("second") is not None:
        ratio_row("second image in the real worker", pick(o, "wall"), worker["second"], 0.15)
        absolute_row("second image in the real worker, time", worker["second"], 2.2)
    absolute_row("preview PNG, two views (warm process)", pick(u, "second.preview"), 0.15)
    if results.get("stages"):
        from bench import stages

        realistic = stages.summary(results["stages"])
        n = len(results["stages"]["scenes"])
        absolute_row(
            f"mesh stage on realistic depth, median of {n} oracle scenes (bench/stages.py)",
            realistic["mesh"],
            stages.TARGETS["mesh"],
        )
        absolute_row(
            "writing on realistic depth: texture + GLB + preview, median",
            realistic["writing"],
            stages.TARGETS["writing"],
        )
    grid = next((i for i, ch in enumerate(REMESH) if ch.get("mesh") == "grid"), None)
    if grid is not None:
        absolute_row(
            "`--mesh grid` meshing stage alone", pick(u, f"remesh.{grid}.stages.mesh"), 0.5
        )
    for i, change in enumerate(REMESH):
        flags = " ".join(_flag(k, v) for k, v in change.items())
        absolute_row(
            f"cached re-mesh with `{flags}` (warm process)", pick(u, f"remesh.{i}.wall"), 2.0
        )
    ratio_row("peak memory (RSS)", pick(o, "peak_rss"), pick(c, "peak_rss"), 0.5, unit="bytes")
    blender = results.get("blender")
    if blender:
        ours, ply = blender.get("import_mesh"), blender.get("ply_import")
        out.append(
            {
                "measure": f"import of {blender['triangles']:,} coloured triangles into Blender "
                "(`foreach_set`)",
                "original": ply,
                "ours": ours,
                "ratio": ours / ply if ours and ply else None,
                "target": "<= 1 s and <= 1.5x Blender's PLY importer",
                "met": bool(ours and ply and ours <= 1.0 and ours <= 1.5 * ply),
                "unit": "s",
                "original_label": "Blender's PLY importer",
            }
        )
    geometry = results.get("geometry") or {}
    better = []
    for scene, rows_ in geometry.items():
        ours = rows_["ours (default: closed solid)"]["scores"]
        orig, own = rows_["original"]["scores"], rows_["original"]["scores_own_camera"]
        out.append(
            {
                "measure": f"oracle `{scene}`: completeness / spill (default)",
                "original": f"{own['completeness']:.2f} / {own['spill']:.2f} (own camera); "
                f"{orig['completeness']:.2f} / {orig['spill']:.2f} (true camera)",
                "ours": f"{ours['completeness']:.3f} / {ours['spill']:.3f}",
                "ratio": None,
                "target": ">= 0.95 / <= 0.05",
                "met": ours["completeness"] >= 0.95 and ours["spill"] <= 0.05,
                "unit": "",
            }
        )
        better.append(
            ours["spill"] < min(orig["spill"], own["spill"])
            and ours["completeness"] > own["completeness"]
            and ours["completeness"] >= orig["completeness"] - 0.01
        )
    if geometry:
        # the Poisson row's second half: "with better oracle scores"
        poisson = next(t for t in out if t["measure"].startswith("Poisson"))
        poisson["target"] += ", with better oracle scores"
        poisson["met"] = poisson["met"] and all(better)
        poisson["note"] = (
            "better on every scene: less spill than the original under both scorings, more "
            "complete than its own-camera mesh and within 0.01 of its true-camera one"
            if all(better)
            else "not better on every oracle scene (see the geometry section)"
        )
    return out


def _flag(key: str, value) -> str:
    name = "--" + key.replace("_", "-")
    return name if value is True else f"{name} {value}"


# --- writing -----------------------------------------------------------------------------------


def fmt(value, unit: str = "s") -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if unit == "bytes":
        return f"{value / 2**30:.2f} GiB"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def _memory_lines(memory: dict) -> list[str]:
    from bench.memory import markdown as memory_markdown

    return memory_markdown(memory)


def render(results: dict, out: Path, images: Path | None = None) -> int:
    """Write the report ``out`` and its plot (in ``images``, else images/ beside it)."""
    images_dir = images or out.parent / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    name = "benchmark-stages-quick.png" if results.get("quick") else "benchmark-stages.png"
    plot = images_dir / name
    plot_stages(results, plot)
    realistic = None
    if results.get("stages"):
        from bench import stages

        realistic = plot.with_name(plot.stem + "-realistic.png")
        stages.plot(results["stages"], realistic)
        realistic = os.path.relpath(realistic, out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(results, os.path.relpath(plot, out.parent), realistic))
    log(f"wrote {out}, {plot}")
    return 0


def markdown(results: dict, plot: str, realistic: str | None = None) -> str:
    m, v, timing = results["machine"], results["versions"], results["timing"]
    sizes = results["sizes"]
    first = sizes[0]
    lines = [
        "# Benchmarks: img2mesh and the original approach, side by side",
        "",
        f"Generated by `{results['command']}` on {results['date']}; do not edit by hand "
        "(rerun the command). Every number below was measured in that one run.",
        "",
        *(
            [
                "**Smoke test (`--quick`): tiny models and images, one round, some rows "
                "left out. These numbers say nothing about speed.**",
                "",
            ]
            if results.get("quick")
            else []
        ),
        "## Reproduce",
        "",
        "```sh",
        "python bench/run.py            # about 25 minutes on two cores; writes this file",
        "python bench/run.py --quick    # tiny models and images: the test suite's smoke test",
        "python bench/run.py --render bench/results/full.json  # this file again from the "
        "saved run (after a change to its text; measures nothing)",
        "```",
        "",
        "The models are built once into `bench/.models/` (`python bench/models.py`; 20-25 "
        "minutes more the first time, for training U^2-Net). The Blender "
        "row needs `.venv-blender` (bpy 4.5); `--no-blender` skips it.",
        "",
        "Other benchmarks, each with its own page: the whole object, hidden side included "
        "([shape-benchmark.md](shape-benchmark.md), random lathe objects in "
        "[lathe-benchmark.md](lathe-benchmark.md), random boxes and extrusions in "
        "[box-benchmark.md](box-benchmark.md)), the hidden side's colours and the turntable "
        "([hidden-side.md](hidden-side.md)), the photo texture "
        "([texture-benchmark.md](texture-benchmark.md)), and our crossing search, repair "
        "and decimation against the field's libraries ([libraries.md](libraries.md)).",
        "",
        *(_memory_lines(results["memory"]) if "memory" in results else []),
        "## Machine and versions",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores"
        + (f", {m['memory_bytes'] / 2**30:.0f} GiB memory" if m.get("memory_bytes") else ""),
        f"- OS: {m['os']}; Python {m['python']}",
        "- " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        f"- Each configuration ran {results['repeat']} time(s) in a fresh process, "
        "configurations interleaved; tables show medians. Other work on the machine "
        "makes single numbers noisy; ratios compare runs of this same session.",
        "",
        "## What runs",
        "",
        "- **Original approach** (`bench/original.py`, re-implemented plainly as described): "
        "the photo resized to a height of at most 480 (multiples of 32); GLPN depth in plain "
        "PyTorch (`no_grad`, default threads); the 16-pixel border cropped; depth scaled to "
        "8 bits; an Open3D RGB-D image turned into a point cloud with fx = fy = 500 and the "
        "principal point at the centre; statistical outlier removal (20 neighbours, std "
        "ratio 20); normals (Open3D's default 30 neighbours, oriented to +z); Poisson depth "
        "10 on one thread, no trimming; rotated by pi about x; written as PLY. No background "
        "removal: every pixel becomes a point.",
        "- **Ours**: the core's `Pipeline` with default settings (rembg U^2-Net mask, GLPN "
        "at the same 480-pixel input through ONNX Runtime where verified against PyTorch, "
        "closed Poisson solid at the automatic octree depth, PLY). End-to-end is the "
        "`img2mesh PHOTO -o OUT.ply` command, which also draws its preview PNG.",
        "- **Networks**: the real architectures at their real sizes (`bench/models.py`): "
        "GLPN-NYU (MiT-b4: depths 3/8/27/3, hidden sizes 64/128/320/512, heads 1/2/5/8, "
        "decoder 64) and Depth Anything V2 Small (DINOv2-S/14, DPT head 48/96/192/384) with "
        "random weights, and U^2-Net (44 M parameters, exported to ONNX and used through "
        f"`--rembg-model FILE.onnx`) {_u2net_training(results)}. The compute is real; "
        "the depth is not, so the stages after the "
        "networks work on a noisy, nearly flat depth map (about 5 m away) inside the "
        "object's mask (see the point counts); the geometry section measures quality on "
        "exact depth instead.",
        f"- **Photos**: the `toy` oracle scene rendered at {', '.join(sizes)} (JPEG), and "
        "the `box` scene as the second image. Both approaches work at 640 x 480 at most "
        "(the original's 480-pixel height, our default `--max-size 640`). A "
        f"{results.get('small') or 'small'} rendering of the toy times both whole runs on a photo "
        "of at most 350 px, where fixed costs dominate.",
        "- **Ours, networks at once**: the same runs with segmentation and depth at the same "
        "time (`Pipeline(concurrent=True)`), for the levers table.",
        "",
        f"## Targets ({first}, GLPN-NYU architecture)",
        "",
        "| measure | original | ours | ours / original | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for t in results["targets"]:
        unit = t["unit"]
        original = fmt(t["original"], unit)
        if t.get("original_label") and t["original"] is not None:
            original = f"{fmt(t['original'], unit)} ({t['original_label']})"
        lines.append(
            f"| {t['measure']} | {original} | {fmt(t['ours'], unit)} | "
            f"{fmt(t['ratio'], 'x')} | {t['target']} | {'yes' if t['met'] else '**no**'} |"
        )
    notes = [f"{t['measure']}: {t['note']}." for t in results["targets"] if t.get("note")]
    if notes:
        lines += ["", *notes]
    met = sum(t["met"] for t in results["targets"])
    lines += [
        "",
        f"{met} of {len(results['targets'])} targets met in this run. The ratios for start-up, "
        "forward, point cloud and meshing compare the stage tables below; end-to-end and "
        "memory compare whole processes (ours: the `img2mesh` command); the second image "
        "compares ours in a warm process with the original's whole run (it has no warm "
        "mode). The stages after the networks work on the networks' output (a noisy plane "
        "about 5 m away from the random-weight depth network, inside the trained U^2-Net's "
        "mask), so their times are for that input; the geometry section times them on exact "
        "depth. That noise inside a whole object's mask is a crumpled surface: the second "
        "photo's solid has about 100,000 triangles, where the random-weight U^2-Net of earlier "
        "runs left a mask of scattered blobs and 8,500 (measured by hand on the same code: "
        "meshing 2.5 against 1.2 s, the warm second photo 4.4 against 3.3 s).",
        "",
    ]

    for tag in sizes:
        rows = stage_table(timing, tag)
        o, u, c = timing[f"original {tag}"], timing[f"ours {tag}"], timing[f"ours cli {tag}"]
        lines += [
            f"## Time per stage, {tag} photo (seconds, median)",
            "",
            "| stage | original | ours | ours / original |",
            "|---|---|---|---|",
        ]
        for r in rows:
            ratio = r["ours"] / r["original"] if r["ours"] is not None and r["original"] else None
            lines.append(
                f"| {r['stage']} | {fmt(r['original'])} | {fmt(r['ours'])} | {fmt(ratio, 'x')} |"
            )
        rss_o, rss_c = pick(o, "peak_rss"), pick(c, "peak_rss")
        lines += [
            f"| peak memory (RSS) | {fmt(rss_o, 'bytes')} | {fmt(rss_c, 'bytes')} | "
            f"{fmt(rss_c / rss_o if rss_o and rss_c else None, 'x')} |",
            f"| points meshed | {pick(o, 'counts.points'):,.0f} | "
            f"{pick(u, 'first.counts.points'):,.0f} | |",
            f"| triangles | {pick(o, 'counts.triangles'):,.0f} | "
            f"{pick(u, 'first.counts.triangles'):,.0f} | |",
            "",
        ]
    lines += levers(results, first)
    lines += batch_rows(results)
    lines += warm_rows(results, first)
    lines += geometry_rows(results)
    if results.get("stages"):
        from bench import stages

        lines += stages.markdown(results["stages"], realistic)
    lines += blender_rows(results)
    lines += first_run_rows(results)
    lines += [
        "## Where the time goes",
        "",
        f"![time per stage]({plot})",
        "",
        "Stacked time per stage, medians: the original approach and ours in a fresh "
        "process, and ours on a second photo in the same (warm) process.",
        "",
    ]
    return "\n".join(lines)


def _u2net_training(results: dict) -> str:
    steps = results.get("u2net_steps")
    if not steps:  # the smoke test's sliver of the network, or a run from before it was trained
        return "with random weights"
    return (
        f"trained for {steps} steps (20-25 minutes on this machine, once; `bench/u2net.py`) "
        "on the project's oracle scenes pasted on random backgrounds, so that its mask is an object's mask, "
        "as a trained network's is, and its INT8 copy is judged on a real mask (random "
        "weights give noise about 0.5, which no INT8 copy can match)"
    )


def _int8_state(runs: list, field: str) -> str:
    """What the runs' reports say of the INT8 copy: kept, refused (why) or not tried."""
    notes = [str((r.get("second") or {}).get(field) or "") for r in runs]
    if any("INT8 refused" in n for n in notes):
        why = next(n for n in notes if "INT8 refused" in n).split("INT8 refused:", 1)[1]
        return f"refused in this run:{why.rstrip(')')}"
    if any("INT8" in n for n in notes):
        return "kept in this run"
    return "not tried in this run"


def levers(results: dict, tag: str) -> list[str]:
    timing, imports = results["timing"], results.get("imports") or {}
    u, t = timing[f"ours {tag}"], timing.get(f"ours torch {tag}", [])
    da, dat = timing.get(f"ours da {tag}", []), timing.get(f"ours da torch {tag}", [])
    o = timing[f"original {tag}"]
    cc = timing.get(f"ours concurrent {tag}", [])
    fp = timing.get(f"ours fp32 {tag}", [])
    depth = pick(u, "first.poisson_depth")
    seg_int8 = _int8_state(u, "mask_network")
    depth_int8 = _int8_state(u, "backend_note")
    rows = [
        (
            "depth network in ONNX Runtime instead of PyTorch (GLPN-NYU forward; verified "
            "to match PyTorch within 1e-3)",
            pick(t, "first.forward"),
            pick(u, "first.forward"),
            True,
        ),
        (
            "... Depth Anything V2 Small forward",
            pick(dat, "first.forward"),
            pick(da, "first.forward"),
            True,
        ),
        (
            "... and no torch/transformers import: start-up (imports + depth model)",
            add(pick(t, "startup.imports"), pick(t, "startup.depth_model")),
            add(pick(u, "startup.imports"), pick(u, "startup.depth_model")),
            True,
        ),
        (
            "... start-up and first photo, same process (segmentation, depth, meshing)",
            add(_startup(t), pick(t, "first.wall")),
            add(_startup(u), pick(u, "first.wall")),
            True,
        ),
        (
            "INT8 depth graph (`--quantize auto`: dynamic INT8 matrix products in ONNX Runtime, "
            f"kept only if 99% of the depth is within 2% of full precision; {depth_int8}): "
            "GLPN-NYU forward, second photo",
            pick(fp, "second.forward"),
            pick(u, "second.forward"),
            True,
        ),
        (
            "INT8 segmentation model (static QDQ, calibrated on the first photo, kept only if "
            f"its mask IoU with full precision is >= 0.98; {seg_int8}): U^2-Net stage, "
            "second photo",
            pick(fp, "second.stages.segment"),
            pick(u, "second.stages.segment"),
            True,
        ),
        (
            "... both: second photo in a warm process",
            pick(fp, "second.wall"),
            pick(u, "second.wall"),
            True,
        ),
        (
            "... both: start-up (imports + models; an INT8 graph replaces the full-precision one)",
            _startup(fp),
            _startup(u),
            True,
        ),
        (
            "Open3D imported without its plotly/Dash helpers (loaded on first use), import alone",
            imports.get("open3d"),
            imports.get("open3d:deferred"),
            True,
        ),
        (
            "U^2-Net run directly in ONNX Runtime, not through rembg (rembg's import skipped)",
            imports.get("rembg"),
            0.0 if imports.get("rembg") is not None else None,
            False,
        ),
        (
            f"automatic Poisson depth (here {depth or 0:.0f}, on one thread: the same mesh on "
            "every run) instead of depth 10 (ours: closed solid, warm second photo)",
            pick(o, "stages.mesh"),
            pick(u, "second.stages.mesh"),
            True,
        ),
        (
            "vectorised back-projection, grid-based outlier removal and normals instead of "
            "Open3D's k-nearest-neighbour filters",
            add(pick(o, "stages.outliers"), pick(o, "stages.normals")),
            pick(u, "first.stages.pointcloud"),
            True,
        ),
        (
            "segmentation and depth at the same time (threads; `Pipeline(concurrent=True)`, "
            "off by default) instead of one after the other: first photo incl. start-up",
            add(pick(u, "first.wall"), _startup(u)),
            add(pick(cc, "first.wall"), _startup(cc)),
            True,
        ),
        (
            "... second photo in a warm process",
            pick(u, "second.wall"),
            pick(cc, "second.wall"),
            True,
        ),
        (
            "models kept warm: second photo in the same process (first: incl. start-up)",
            add(pick(u, "first.wall"), _startup(u)),
            pick(u, "second.wall"),
            True,
        ),
    ]
    lines = [
        f"## What each lever bought ({tag}, this run)",
        "",
        "| lever | without (s) | with (s) | with / without |",
        "|---|---|---|---|",
    ]
    for label, without, with_, show_ratio in rows:
        ratio = _ratio(with_, without) if show_ratio else None
        lines.append(f"| {label} | {fmt(without)} | {fmt(with_)} | {fmt(ratio, 'x')} |")
    lines.append("")
    if imports:
        lines += [
            f"Imports measured alone in fresh processes: Open3D {fmt(imports.get('open3d'))} s "
            "(ours imports it lazily, in its first meshing stage), torch "
            f"{fmt(imports.get('torch'))} s, transformers' GLPN "
            f"{fmt(imports.get('transformers.models.glpn.modeling_glpn'))} s (with torch), "
            f"rembg {fmt(imports.get('rembg'))} s.",
            "",
        ]
    lines += [
        "The preview PNG (not in the table: the old renderer is gone) was measured A/B in one "
        "process on the bundled example's 42,000-face mesh while this machine was shared: "
        "drawn from 20,000 faces with antialiased, edged polygons and `savefig`, 0.78-1.06 s; "
        "from 8,000 faces, no antialiasing or edges, no autolimits, our own Agg canvas and "
        "fast PNG compression, 0.20-0.24 s (about 0.25x). Importing matplotlib in a background "
        "thread while the networks ran saved a cold run about 0.25 s, but once left the main "
        "thread a half-imported matplotlib (an AttributeError in 1 of 3 quick benchmark runs); "
        "it was taken out. Since 2026-12-07 the faces are filled by OpenCV "
        "(`cv2.fillConvexPoly`, far to near, 1/16-pixel corners, no antialiasing) instead of "
        "matplotlib, the same picture: on that mesh, A/B in one warm process with the machine "
        "shared by four other jobs, 0.41-0.26 s against 0.55-0.53 s (0.50-0.75x); the first "
        "preview of a fresh process, its imports included, 0.43 s against 2.03 s, because "
        "matplotlib (about 1 s to import) is no longer loaded at all; it left the core's "
        "dependencies.",
        "",
        "INT8, measured by hand (A/B interleaved in one process, this CPU: AVX2 without "
        "VNNI, two cores shared with other work): the forward of U^2-Net (static QDQ, 320 x "
        "320) 0.51x full precision; of the real, trained IS-Net (1024 x 1024, fp16 weights "
        "widened to fp32 first) 0.51-0.56x, and its whole segmentation stage 0.49x on the "
        "real photos in /work/shared/data, whose INT8 masks overlap full precision's with IoU "
        "0.9965-0.9994 (accepted; quantising it once takes 15-45 s and peaks at 3.7 GB, "
        "against 1.1 GB for a full-precision run); GLPN-NYU with dynamic INT8 matrix products "
        "0.73-0.84x (99% of the depth within 0.03% on the random weights). Both at once, the "
        "real IS-Net and GLPN-NYU in one warm process, the same 640 x 427 photo four times "
        "(its mesh reused, so this is the networks): 4.68 s against 7.33 s (0.63x; "
        "segmentation 0.53x, depth forward 0.85x); start-up and first photo 6.6 s against "
        "11.0 s. Peak memory of a "
        "cold `img2mesh` run with both graphs cached: 0.80x with the INT8 depth graph (742 "
        "against 924 MiB on a 640 x 427 photo; the full-precision graph is not even opened). "
        "Tried and not kept: static QDQ of GLPN's convolutions as well (0.99x alone, 0.78x "
        "with the dynamic matrix products: no faster, and 5% of the depth's range off); "
        "the attention's activation-by-activation products quantised too (0.83x, the same "
        "as without them); "
        "per-channel weights for U^2-Net (no better mask agreement); intra-op threads 1, 2 or "
        "ONNX Runtime's default for U^2-Net (1.58, 1.65, 1.65 s: the same); ONNX Runtime's "
        "memory pattern off (1.8x slower, peak not lower); Poisson on every 2nd or 4th point "
        "(0.85x, 0.78x the Poisson time, the surface moved by up to 0.6% and 1% of its size). "
        "A static INT8 graph keeps its output head in float (`core/networks/int8.py: "
        "output_head`; for U^2-Net the 1x1 convolution that fuses the side outputs, and its "
        "sigmoid). Quantised whole, the trained U^2-Net's mask was damaged by ONNX Runtime "
        "1.32's fused QLinearConv/QLinearSigmoid (from the extended optimisation level on; "
        "right at the basic one): mask IoU against full precision 0.939 on the toy scene and "
        "0.771 on the box for the benchmark's network, 0.000 (an empty mask) for a shorter "
        "training of it, so its INT8 copy was refused. With the head in float: 0.999 and "
        "0.999, and a forward of 0.40-0.41 s against 0.42 s quantised whole and 0.74-0.78 s "
        "in full precision. On the real IS-Net, whose outputs are sigmoids of resized side "
        "outputs, it changes nothing measurable: IoU 0.9976-0.9991 against 0.9975-0.9986 on "
        "three photos of /work/shared/data, the same forward time. With random weights "
        "U^2-Net's mask is noise about 0.5 and its INT8 copy is refused (IoU 0.07 on the toy "
        "scene): the reason the benchmark's U^2-Net is trained.",
        "",
        "ONNX Runtime sessions start from a graph optimised once for this CPU and run "
        "without a memory arena (activations are returned after each run), which keeps "
        "start-up and peak memory down.",
        "",
        "Also tried by hand and not kept (2026-11-30, this machine, medians of 3-5): OpenVINO "
        "2026.4 as the runtime (the same graphs, exported without ONNX Runtime's own "
        "operators): U^2-Net 0.75 s against ONNX Runtime's 0.73 s, GLPN-NYU 1.24 s against "
        "1.41 s for the same unoptimised graph and 1.18 s for ours: no gain, for 180 MB more "
        "installed; and GLPN-NYU quantised to INT8 by OpenVINO's own tool (NNCF 3.4, "
        "transformer preset, calibrated on four photos of /work/shared/data): 1.13-1.18 s "
        "against OpenVINO's full-precision 1.11-1.15 s, no faster on this CPU without VNNI. "
        "GLPN-NYU's forward by operator (ONNX Runtime's profiler, INT8 graph, "
        "1.12 s): INT8 matrix products 30%, convolutions 26%, the attention's float "
        "products 15%, layout transposes and reorders 14%, GELU 5%: no one part to cut. "
        "Graph optimisation level 'extended' or 'basic' instead of 'all' (ours): 1.62 and "
        "1.67 s against 1.45 s. Sessions from ONNX Runtime's own model format instead of "
        "an optimised ONNX file: U^2-Net's opened in 0.38-0.40 s against 0.27-0.30 s, and "
        "loading it in place (its bytes used directly) crashed the process. The `open3d-cpu` "
        "wheel (a 228 MB library instead of 805 MB): imported in 0.38 s against 0.41 s. "
        "matplotlib without the property tables it writes into its artists' docstrings on "
        "import: the preview's imports 0.32 s against 0.42 s of a cold run, a change to a "
        "library's internals for 0.1 s.",
        "",
    ]
    return lines


def batch_rows(results: dict) -> list[str]:
    """Photos per minute: one warm local process against Ray on this same machine."""
    b = results.get("batch")
    if not b:
        return []
    n = b["photos"]

    def per_minute(wall) -> str:
        return f"{60.0 * n / wall:.1f}" if wall else "—"

    start = (b.get("ray_start") or {}).get("actor_ready")
    lines = [
        f"## A folder of {n} photos: local batch and Ray (this machine)",
        "",
        "| run | wall (s) | photos per minute |",
        "|---|---|---|",
        f"| `img2mesh FOLDER -o OUT` (one warm process) | {fmt(b.get('local'))} | "
        f"{per_minute(b.get('local'))} |",
    ]
    if b.get("ray") is not None:
        lines.append(
            f"| `img2mesh FOLDER -o OUT --ray` (a local Ray instance, one worker of all cores) "
            f"| {fmt(b['ray'])} | {per_minute(b['ray'])} |"
        )
    lines.append("")
    if b.get("ray") is not None and b.get("local"):
        extra = b["ray"] - b["local"]
        per_photo = (extra - start) / n if start is not None else None
        lines += [
            f"Ray adds {fmt(extra)} s to the folder: starting a local instance and a worker "
            f"takes {fmt(start)} s (measured alone), the rest, {fmt(per_photo)} s per photo, "
            "is the photo and result bytes through Ray's object store and the driver's "
            "writes. On a cluster each node runs its own workers (docs/cluster.md).",
            "",
        ]
    elif b.get("error"):
        lines += [f"The Ray run failed: {b['error']}", ""]
    else:
        lines += ["Ray is not installed here: the Ray run was skipped.", ""]
    return lines


def add(*values):
    """Sum, or None when any part is missing."""
    return None if any(v is None for v in values) else sum(values)


def _ratio(a, b):
    return a / b if a is not None and b else None


def _startup(runs) -> float | None:
    keys = ("imports", "segmentation_model", "depth_model")
    return median([sum(_get(r, f"startup.{k}") or 0 for k in keys) for r in runs])


def warm_rows(results: dict, tag: str) -> list[str]:
    timing = results["timing"]
    u = timing[f"ours {tag}"]
    lines = [
        f"## Warm process: second photo and cached re-mesh ({tag})",
        "",
        "After the first photo, the same `Pipeline` (models loaded, as in the add-on's worker) "
        "runs a second photo, then the first photo again with other mesh settings: its mask "
        "and depth come from the cache, and the pipeline still holds its point cloud and "
        "Poisson surfaces (it keeps the last four photos'). A new thickness stretches the "
        "closed solid solved in the first run along the camera's rays (no Poisson run); "
        "`--open` solves the open surface; `--mesh grid` triangulates the depth grid.",
        "",
        "| run | wall s | stages (s) | reused | triangles | warnings |",
        "|---|---|---|---|---|---|",
    ]

    def stages(path):
        keys = ("load", "segment", "depth", "pointcloud", "mesh", "write")
        return ", ".join(f"{k} {fmt(pick(u, f'{path}.stages.{k}'))}" for k in keys)

    def at(run, path):
        for part in path.split("."):
            run = run[int(part)] if isinstance(run, list) else run.get(part, {})
        return run

    def warnings(path):
        found = set()
        for run in u:
            found.update(at(run, path).get("warnings") or [])
        return " ".join(sorted(found)) or "—"

    runs = [("first photo (after start-up)", "first"), ("second photo", "second")]
    for i, change in enumerate(REMESH):
        runs.append(
            (f"re-mesh `{' '.join(_flag(k, val) for k, val in change.items())}`", f"remesh.{i}")
        )

    def reused(path):
        names = {"pointcloud": "point cloud", "surface": "Poisson surface"}
        hits = [names.get(k, k) for k, v in (at(u[0], path).get("cache") or {}).items() if v]
        return ", ".join(hits) or "—"

    for label, path in runs:
        lines.append(
            f"| {label} | {fmt(pick(u, f'{path}.wall'))} | {stages(path)} | {reused(path)} | "
            f"{pick(u, f'{path}.counts.triangles') or 0:,.0f} | {warnings(path)} |"
        )
    worker = results.get("worker")
    if worker and "second" in worker:
        lines += [
            "",
            f"The real worker (`python -m core.worker`, two photos over its pipe protocol): "
            f"ready after {fmt(worker['ready'])} s, first photo {fmt(worker['first'])} s, "
            f"second {fmt(worker['second'])} s (request to `done`, including writing the "
            "result file).",
        ]
    elif worker:
        lines += ["", f"The real worker could not be timed: {worker.get('error')}"]
    return lines + [""]


def geometry_rows(results: dict) -> list[str]:
    geometry = results.get("geometry") or {}
    if not geometry:
        return []
    lines = [
        "## Geometry on oracle scenes (exact depth, no networks)",
        "",
        "Each scene is ray-cast (`core/oracle/scenes.py`): a photo, its exact depth and mask, "
        "the camera. Scores (`core/oracle/scores.py`): **completeness** = share of the visible "
        "ground-truth surface points within 1% of the scene's diagonal of the mesh; "
        "**spill** = share of the mesh's area that projects outside the silhouette (grown "
        "by one pixel); watertight = closed and edge-manifold. These score the visible "
        "surface; the whole object, hidden side included (lathe objects and others, exact "
        "and network-like depth), is scored by `bench/run.py --only shape`: "
        "[shape-benchmark.md](shape-benchmark.md).",
        "",
        "- *Original*: fed the exact depth the way it uses depth: the 16-pixel crop, depth "
        "scaled to 8 bits over its maximum, its fx = fy = 500 camera, outlier removal, "
        "normals, Poisson depth 10 on one thread, no trimming (background pixels have no "
        "depth, so it gets the object's silhouette for free). For scoring, its mesh is "
        "rotated back by pi about x and scaled from its 8-bit depth unit to metres by the "
        "scene's largest depth. Scored twice: *own camera* (the shape it made, seen through "
        "fx = fy = 500) and *true camera* (every vertex projected through its camera and "
        "back-projected through the scene's: the most generous comparison, leaving only "
        "quantisation, filtering and Poisson).",
        "- *Ours*: `img2mesh` on the scene's RGBA photo (its alpha is the mask) with "
        "`--depth-map` (the exact depth) and `--focal-px` (the scene's focal length), "
        "moved back from the output frame to the camera frame.",
        "",
        "| scene | approach | completeness | spill | watertight | triangles | points | "
        "point cloud + mesh s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scene, rows in geometry.items():
        for label, row in rows.items():
            variants = [(label, row["scores"])]
            if "scores_own_camera" in row:
                variants = [
                    (label + " (own camera)", row["scores_own_camera"]),
                    (label + " (true camera)", row["scores"]),
                ]
            for name, s in variants:
                lines.append(
                    f"| {scene} | {name} | {s['completeness']:.3f} | {s['spill']:.3f} | "
                    f"{'yes' if s['watertight'] else 'no'} | {s['faces']:,.0f} | "
                    f"{row['points']:,} | {fmt(row['timings']['pointcloud+mesh'])} |"
                )
    remeshed = {s: r["ours (default: closed solid)"].get("remesh") for s, r in geometry.items()}
    if any(remeshed.values()):
        lines += [
            "",
            "Re-meshing an oracle scene with other mesh settings in the same (warm) process, "
            "after the default run: the same work as a cached re-mesh of a photo (no "
            "network runs), on real geometry instead of the random networks' output.",
            "",
            "| scene | "
            + " | ".join(
                f"`{' '.join(_flag(k, v) for k, v in c.items())}` wall s (mesh s)" for c in REMESH
            )
            + " |",
            "|---|" + "---|" * len(REMESH),
        ]
        for scene, runs in remeshed.items():
            if runs:
                cells = [f"{fmt(r['wall'])} ({fmt(r['stages']['mesh'])})" for r in runs]
                lines.append(f"| {scene} | " + " | ".join(cells) + " |")
    return lines + [""]


def blender_rows(results: dict) -> list[str]:
    b = results.get("blender")
    if not b:
        return []
    lines = [
        f"## Import into Blender ({results['versions'].get('bpy') or 'bpy'}, "
        f"{b['triangles']:,} coloured triangles)",
        "",
        "`bench/blender_import.py`: a displaced grid with per-vertex colours, median of "
        "fresh scenes.",
        "",
        "| method | median s | x PLY importer |",
        "|---|---|---|",
    ]
    ply = b.get("ply_import")
    labels = {
        "import_mesh": "ours: `import_mesh` (`foreach_set`)",
        "import_mesh+normals": "ours, with custom normals",
        "import_mesh+validate": "ours, with `mesh.validate()`",
        "from_pydata": "`from_pydata` + colour attribute",
        "ply_import": "Blender's PLY importer (`bpy.ops.wm.ply_import`) on the same mesh",
    }
    for key, label in labels.items():
        if key in b:
            lines.append(f"| {label} | {fmt(b[key])} | {fmt(_ratio(b[key], ply), 'x')} |")
    return lines + [""]


def first_run_rows(results: dict) -> list[str]:
    f = results.get("first_run") or {}
    glpn, da = f.get("glpn"), f.get("depth_anything")
    if not glpn:
        return []
    note = (glpn.get("depth") or {}).get("backend_note")
    lines = [
        "## The very first run (once per model and input size)",
        "",
        "The first photo of a size runs the depth network in PyTorch, exports it to ONNX, "
        "runs the exported graph on the same photo and keeps it only if its depth matches "
        "PyTorch's within 1e-3 (relative per pixel for metric depth; relative to the "
        "output's range for Depth Anything's disparity). Later runs load the kept graph "
        "without torch. With `--quantize auto` (the default) the same first photo then makes "
        "an INT8 copy of each network and keeps it only within its bound (mask IoU >= 0.98; "
        "99% of the depth within 2%); the verdict is kept either way.",
        "",
        f"- GLPN-NYU, `img2mesh` with an empty data folder: {fmt(glpn['wall'])} s, peak "
        f"{fmt(glpn['peak_rss'], 'bytes')}; {note}; segmentation: "
        f"{glpn.get('mask_network') or 'not reported'}.",
    ]
    if da:
        lines.append(
            f"- Depth Anything V2 Small: first photo {fmt(da['first']['wall'])} s after "
            f"start-up; {da['first']['backend_note']}."
        )
    return lines + [""]


def plot_stages(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timing = results["timing"]
    segments = [
        "start-up",
        "load",
        "background removal",
        "depth network",
        "depth, rest",
        "point cloud",
        "mesh",
        "write",
    ]
    colors = [
        "#9e9e9e",
        "#cfd8dc",
        "#ffb74d",
        "#e57373",
        "#f8bbd0",
        "#81c784",
        "#64b5f6",
        "#b39ddb",
    ]
    bars, labels = [], []
    for tag in results["sizes"]:
        o, u = timing[f"original {tag}"], timing[f"ours {tag}"]
        pre = pick(o, "stages.preprocess") + pick(o, "stages.depth_post")
        bars.append(
            [
                pick(o, "startup.imports") + pick(o, "startup.model_load"),
                pick(o, "stages.load"),
                0.0,
                pick(o, "stages.forward"),
                pre,
                pick(o, "stages.rgbd_to_points")
                + pick(o, "stages.outliers")
                + pick(o, "stages.normals"),
                pick(o, "stages.mesh"),
                pick(o, "stages.write"),
            ]
        )
        labels.append(f"original\n{tag}")
        for which, label in (("first", "ours"), ("second", "ours, 2nd\nphoto (warm)")):
            forward = pick(u, f"{which}.forward") or 0.0
            bars.append(
                [
                    _startup(u) if which == "first" else 0.0,
                    pick(u, f"{which}.stages.load"),
                    pick(u, f"{which}.stages.segment"),
                    forward,
                    max(0.0, pick(u, f"{which}.stages.depth") - forward),
                    pick(u, f"{which}.stages.pointcloud"),
                    pick(u, f"{which}.stages.mesh"),
                    pick(u, f"{which}.stages.write"),
                ]
            )
            labels.append(f"{label}\n{tag}")
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=90)
    left = [0.0] * len(bars)
    for i, (name, color) in enumerate(zip(segments, colors, strict=True)):
        widths = [b[i] or 0.0 for b in bars]
        ax.barh(labels, widths, left=left, color=color, label=name, edgecolor="white")
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("seconds (median)")
    ax.legend(ncol=4, fontsize=7, loc="lower right", frameon=False)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("Time per stage, original approach vs img2mesh", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
