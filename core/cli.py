"""The ``img2mesh`` command: photos in, coloured meshes (plus previews and reports) out."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import __version__
from .errors import Img2MeshError, ModelUnavailableError, OptionError, OutputError
from .protocol import DEFAULT_T2I_MODEL
from .settings import DEFAULT_DEPTH_MODEL, DEFAULT_REMBG_MODEL, Settings

MESH_FORMATS = (".ply", ".obj", ".glb")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}

EXIT_ERROR, EXIT_USAGE, EXIT_MODEL, EXIT_CANCELLED = 1, 2, 3, 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="img2mesh",
        description="Turn photos into coloured 3D meshes (PLY, OBJ or GLB).",
        epilog=(
            "Examples:\n"
            "  img2mesh photo.jpg -o toy.ply\n"
            "  img2mesh a.jpg b.png photos/ -o meshes/ --format glb\n"
            "  img2mesh product.jpg --segment key --depth inflate -o flat.ply   (no model weights needed)\n"
            "  img2mesh color.png --depth-map depth.png --focal-px 525 --mesh grid -o scan.ply\n"
            '  img2mesh --prompt "a red toy car" -o car.ply   (writes car.png too; needs img2mesh[text])\n'
            "Coordinates: Z up, the camera looks along +Y, metres when the depth is metric."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", metavar="IMAGE", help="photos or folders of photos")
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="mesh file (.ply, .obj, .glb) for one photo, or a folder for several "
        "(default: IMAGE's name with .ply in the current folder)",
    )
    p.add_argument(
        "--format",
        choices=[f[1:] for f in MESH_FORMATS],
        default="ply",
        help="mesh format when writing into a folder (default: ply)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no-preview", action="store_true", help="do not write the preview PNG")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip photos whose outputs are all there already (resume a batch)",
    )
    p.add_argument(
        "--report", metavar="FILE.json", help="write settings, timings, counts and warnings"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--version", action="version", version=f"img2mesh {__version__}")
    p.add_argument(
        "--where", action="store_true", help="print where models and caches are stored, then exit"
    )

    g = p.add_argument_group(
        "text prompt", 'instead of photos: generate the picture (pip install "img2mesh[text]")'
    )
    g.add_argument(
        "--prompt",
        metavar="TEXT",
        help="describe one object; its picture is saved beside the mesh (MESH's name with .png) "
        "and reconstructed like a photo (default output: the prompt's words with .ply)",
    )
    g.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="noise seed: the same seed gives the same picture (default: 0)",
    )
    g.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="denoising steps (default: the model's own; 1 for SD-Turbo)",
    )
    g.add_argument(
        "--t2i-model",
        metavar="ID",
        help=f"diffusers text-to-image model id (default: {DEFAULT_T2I_MODEL})",
    )
    g.add_argument(
        "--t2i-model-dir",
        metavar="DIR",
        help="local folder holding the text-to-image model (offline use)",
    )
    g.add_argument(
        "--raw-prompt",
        action="store_true",
        help="use the prompt as written, without asking for one whole object on a plain background",
    )

    g = p.add_argument_group(
        "cluster", "spread a folder over a Ray cluster (pip install 'img2mesh[cluster]')"
    )
    g.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run the photos on Ray workers that each load the models once: a new local Ray "
        "instance, or the cluster at ADDRESS (auto, HOST:6379, ray://HOST:10001)",
    )
    g.add_argument(
        "--ray-cpus",
        type=float,
        default=2.0,
        metavar="N",
        help="CPU cores per Ray worker (default: 2; one worker per N cores of the cluster)",
    )
    g.add_argument(
        "--ray-gpus",
        type=float,
        default=0.0,
        metavar="G",
        help="GPUs per Ray worker (default: 0; 1 on GPU nodes, 0.5 to share one between two)",
    )

    g = p.add_argument_group("image")
    g.add_argument(
        "--max-size",
        type=int,
        default=Settings.max_size,
        metavar="PX",
        help=f"longest side of the working image (default: {Settings.max_size})",
    )

    g = p.add_argument_group("background removal")
    g.add_argument(
        "--segment",
        choices=["rembg", "key", "none"],
        default="rembg",
        help="rembg (default), key: weight-free colour key + GrabCut for plain backgrounds, "
        "none: use the whole image",
    )
    g.add_argument(
        "--no-remove-background",
        dest="segment",
        action="store_const",
        const="none",
        help="same as --segment none",
    )
    g.add_argument(
        "--rembg-model",
        default=DEFAULT_REMBG_MODEL,
        metavar="NAME|FILE.onnx",
        help=f"rembg model name or a custom .onnx file: U2-Net style (any input size, 320 used) or "
        f"fixed-size IS-Net/BiRefNet/BRIA style (default: {DEFAULT_REMBG_MODEL})",
    )
    g.add_argument(
        "--rembg-normalize",
        choices=["auto", "imagenet", "half"],
        default="auto",
        help="input normalisation of a custom .onnx: imagenet (U2-Net, BiRefNet), half (mean 0.5, "
        "std 1: IS-Net, BRIA); auto (default) tells them apart from the model's graph",
    )

    g = p.add_argument_group("depth")
    g.add_argument(
        "--depth",
        choices=["model", "inflate"],
        default="model",
        help="model: a depth network (default); inflate: weight-free silhouette inflation",
    )
    g.add_argument(
        "--depth-model",
        default=DEFAULT_DEPTH_MODEL,
        metavar="ID",
        help=f"Hugging Face depth model id (default: {DEFAULT_DEPTH_MODEL})",
    )
    g.add_argument(
        "--model-dir", metavar="DIR", help="local folder holding the depth model (offline use)"
    )
    g.add_argument(
        "--depth-kind",
        choices=["auto", "metric", "disparity"],
        default="auto",
        help="how to read the model's output (default: from the architecture)",
    )
    g.add_argument(
        "--depth-map", metavar="FILE", help="use this depth map (16-bit PNG, float TIFF, .npy)"
    )
    g.add_argument(
        "--depth-scale",
        type=float,
        metavar="M",
        help="metres per stored unit of --depth-map (default: 0.001 for integer maps, 1 for float)",
    )
    g.add_argument(
        "--depth-resolution",
        type=int,
        metavar="PX",
        help="network input height (default: the model's own; 480 for GLPN)",
    )
    g.add_argument(
        "--depth-backend",
        choices=["auto", "torch", "onnx"],
        default="auto",
        help="how the depth network runs on the CPU: auto (default) = ONNX Runtime once its "
        "depth is verified to match PyTorch's, else PyTorch; torch; onnx",
    )
    g.add_argument(
        "--quantize",
        choices=["auto", "off"],
        default="auto",
        help="INT8 networks in ONNX Runtime: auto (default) = an INT8 copy of each network, "
        "made on its first photo and used only if its mask (IoU >= 0.98) and depth (99%% of "
        "pixels within 2%%) match full precision's; off = always full precision",
    )
    g.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        default="auto",
        help="where the networks run (default: auto = cuda, mps, cpu)",
    )

    g = p.add_argument_group("camera")
    g.add_argument(
        "--fov",
        type=float,
        metavar="DEG",
        help="field of view across the longer side (default: EXIF, the model, or 55)",
    )
    g.add_argument(
        "--focal-px", type=float, metavar="PX", help="focal length in pixels of the full-size photo"
    )

    g = p.add_argument_group("mesh")
    g.add_argument(
        "--mesh",
        choices=["poisson", "grid"],
        default="poisson",
        help="poisson: smooth surface (default); grid: exact triangulation of the depth map",
    )
    g.add_argument(
        "--open",
        action="store_true",
        help="keep only the visible surface instead of a closed solid",
    )
    g.add_argument(
        "--poisson-depth",
        type=int,
        metavar="N",
        help="octree depth (default: from the point count)",
    )
    g.add_argument(
        "--thickness",
        type=float,
        metavar="R",
        help="depth of the hidden back as a share of the object's width (default: from the silhouette)",
    )
    g.add_argument(
        "--shape",
        choices=("auto", "revolve", "inflate"),
        default="auto",
        help="hidden side of a closed solid: auto (default) turns the visible surface about "
        "its axis when the object is a surface of revolution (a bottle, can, cup, vase), "
        "else inflates the outline; revolve or inflate force one",
    )
    g.add_argument("--target-faces", type=int, metavar="N", help="decimate to about N faces")
    g.add_argument("--smooth", type=int, default=0, metavar="N", help="Taubin smoothing iterations")
    g.add_argument(
        "--outlier-std",
        type=float,
        default=Settings.outlier_std,
        metavar="R",
        help="statistical outlier removal: standard-deviation ratio",
    )
    g.add_argument(
        "--no-cache", action="store_true", help="do not read or write the mask and depth cache"
    )

    g = p.add_argument_group("texture")
    g.add_argument(
        "--texture",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="give .glb and .obj a UV texture from the full-size photo (default); .obj then "
        "comes with NAME.mtl and NAME.texture.png; --no-texture: vertex colours only",
    )
    g.add_argument(
        "--texture-size",
        type=int,
        default=Settings.texture_size,
        metavar="PX",
        help=f"longest side of the texture (default: {Settings.texture_size})",
    )
    return p


def settings_from_args(a: argparse.Namespace) -> Settings:
    return Settings(
        max_size=a.max_size,
        segment=a.segment,
        rembg_model=a.rembg_model,
        rembg_normalize=a.rembg_normalize,
        depth="map" if a.depth_map else a.depth,
        depth_model=a.depth_model,
        depth_kind=a.depth_kind,
        depth_map=a.depth_map,
        depth_scale=a.depth_scale,
        depth_resolution=a.depth_resolution,
        device=a.device,
        depth_backend=a.depth_backend,
        quantize=a.quantize,
        model_dir=a.model_dir,
        fov=a.fov,
        focal_px=a.focal_px,
        outlier_std=a.outlier_std,
        mesh=a.mesh,
        open=a.open,
        poisson_depth=a.poisson_depth,
        thickness=a.thickness,
        shape=a.shape,
        target_faces=a.target_faces,
        smooth=a.smooth,
        cache=not a.no_cache,
        texture=a.texture,
        texture_size=a.texture_size,
    )


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; folders become their image files (sorted, not recursive)."""
    out: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise OptionError(
                    f"The folder '{p}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})."
                )
            out.extend(found)
        else:
            out.append(p)
    return out


def plan_outputs(images: list[Path], a: argparse.Namespace, batch: bool) -> list[Path]:
    """The mesh path of each image; errors before any work is done."""
    if not batch:
        target = Path(a.output) if a.output else Path.cwd() / (images[0].stem + ".ply")
        if target.suffix.lower() not in MESH_FORMATS:
            raise OutputError(
                f"Cannot write '{target.name}': the output must end in {', '.join(MESH_FORMATS)}."
            )
        return [target]
    if not a.output:
        raise OptionError("Several images need an output folder: -o FOLDER.")
    folder = Path(a.output)
    if folder.suffix.lower() in MESH_FORMATS:
        raise OptionError(
            f"Several images need an output folder, not the file name '{folder.name}'."
        )
    if not folder.exists():
        if not folder.parent.exists():
            raise OutputError(
                f"Cannot create the output folder '{folder}': '{folder.parent}' does not exist."
            )
        try:
            folder.mkdir()
        except OSError as exc:
            raise OutputError(
                f"Cannot create the output folder '{folder}' ({exc.strerror})."
            ) from None
    names = [img.stem for img in images]
    targets = []
    for img, stem in zip(images, names, strict=True):
        # two photos with the same name in different folders must not overwrite each other
        unique = stem if names.count(stem) == 1 else f"{img.parent.name}_{stem}"
        targets.append(folder / f"{unique}.{a.format}")
    return targets


def preview_path(mesh_path: Path) -> Path:
    return mesh_path.with_name(mesh_path.stem + ".preview.png")


def with_companions(targets: list[Path], a: argparse.Namespace) -> list[Path]:
    """The mesh paths and the files a textured OBJ brings along (.mtl, .texture.png)."""
    from .export import companion_files

    out: list[Path] = []
    for target in targets:
        out += [target, *companion_files(target, a.texture)]
    return out


def check_writable(paths: list[Path], overwrite: bool) -> None:
    from .export import check_target

    for path in paths:
        check_target(path, overwrite=overwrite)


class StageBars:
    """One tqdm bar per stage on stderr."""

    def __init__(self, prefix: str, enabled: bool) -> None:
        self.prefix, self.enabled = prefix, enabled
        self.stage, self.bar = None, None

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(
                total=100,
                desc=f"{self.prefix}{message}",
                unit="%",
                leave=True,
                bar_format="{desc:<42.42} {percentage:3.0f}%|{bar:24}| {elapsed}",
                file=sys.stderr,
            )
        else:
            self.bar.set_description_str(f"{self.prefix}{message}", refresh=False)
        self.bar.update(max(0, round(fraction * 100) - self.bar.n))
        if fraction >= 1.0:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.stage = None, None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.where:
        from .paths import describe

        for k, v in describe().items():
            print(f"{k}: {v}")
        return 0
    prompt_only = ("seed", "steps", "t2i_model", "t2i_model_dir", "raw_prompt")
    if a.prompt is None and any(getattr(a, k) not in (None, False) for k in prompt_only):
        parser.error("--seed, --steps, --t2i-model, --t2i-model-dir and --raw-prompt need --prompt")
    if a.prompt is not None and a.inputs:
        parser.error("give either images or --prompt, not both")
    if a.ray not in (None, "local", "auto") and Path(a.ray).exists():
        parser.error(
            f"--ray took '{a.ray}' for a cluster address: put --ray after the photos, "
            "or give the address (--ray local starts one here)"
        )
    if not a.inputs and a.prompt is None:
        parser.error("give at least one image, or --prompt TEXT (or --where)")
    if a.ray is None and (a.ray_cpus != 2.0 or a.ray_gpus != 0.0):
        parser.error("--ray-cpus and --ray-gpus need --ray")
    if a.ray is not None and (a.prompt is not None or a.ray_cpus <= 0 or a.ray_gpus < 0):
        parser.error("--ray works on photos, with --ray-cpus above 0 and --ray-gpus 0 or more")
    try:
        return _run(a) if a.prompt is None else _run_prompt(a)
    except ModelUnavailableError as exc:
        _error(str(exc))
        return EXIT_MODEL
    except Img2MeshError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("Interrupted; nothing was written for the unfinished image.")
        return EXIT_CANCELLED


def _write_outputs(result, target: Path, a: argparse.Namespace) -> list[str]:
    """The mesh and its preview, all or nothing: a failed preview removes the mesh again."""
    from .export import companion_files, write_mesh
    from .preview import write_preview

    written: list[Path] = []
    try:
        written.append(write_mesh(result.mesh, target, overwrite=a.overwrite))
        written += companion_files(target, result.texture is not None)
        if not a.no_preview:
            preview = preview_path(target)
            written.append(
                write_preview(result.mesh, preview, camera=result.camera, overwrite=a.overwrite)
            )
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return [str(p) for p in written]


def _error(message: str) -> None:
    print(f"img2mesh: error: {message}", file=sys.stderr)


def _run(a: argparse.Namespace) -> int:
    from .batch import Report, already_done, check_targets, closing_line, outputs_of

    settings = settings_from_args(a)
    images = expand_inputs(a.inputs)
    batch = len(images) > 1 or any(Path(i).is_dir() for i in a.inputs)
    targets = plan_outputs(images, a, batch)
    report_path = Path(a.report) if a.report else None
    preview = not a.no_preview
    skip = already_done(targets, preview, a.texture) if a.skip_existing else [False] * len(images)
    planned = [
        p
        for t, s in zip(targets, skip, strict=True)
        if not s
        for p in outputs_of(t, preview, a.texture)
    ]
    if report_path:
        planned.append(report_path)
    check_targets(planned, a.overwrite, batch, a.skip_existing)
    skipped = sum(skip)
    if skipped:
        print(
            f"Skipping {skipped} of {len(images)} photo{'s' if len(images) != 1 else ''}: "
            "their outputs are all there (--skip-existing)."
        )

    if a.ray is not None:
        from .cluster import run_on_ray

        todo = [i for i, s in enumerate(skip) if not s]
        reports, failures = run_on_ray(
            [images[i] for i in todo], [targets[i] for i in todo], settings, a, batch=batch
        )
        by_input = {entry["input"]: entry for entry in reports}
        report = Report(report_path, a.overwrite, batch)
        for i, (image, target) in enumerate(zip(images, targets, strict=True)):
            if skip[i]:
                outputs = [str(p) for p in outputs_of(target, preview, a.texture)]
                report.add({"input": str(image), "skipped": True, "outputs": outputs})
            elif str(image) in by_input:  # in input order, as a local batch writes it
                report.add(by_input[str(image)])
        if batch:
            print(closing_line(len(todo) - failures, skipped, failures))
        return EXIT_ERROR if failures else 0

    from .pipeline import Pipeline

    # matplotlib is imported when the preview is drawn, not in a background thread while
    # the networks run: a concurrent import once left the main thread a half-made module
    # (AttributeError in matplotlib), and it saves only about 0.25 s.
    pipeline = Pipeline()
    report = Report(report_path, a.overwrite, batch)
    done = failures = 0
    for i, (image, target) in enumerate(zip(images, targets, strict=True)):
        if skip[i]:
            outputs = [str(p) for p in outputs_of(target, not a.no_preview, a.texture)]
            report.add({"input": str(image), "skipped": True, "outputs": outputs})
            continue
        prefix = f"[{i + 1}/{len(images)}] " if batch else ""
        # bars only on a terminal: a log file gets the summary lines, not carriage returns
        bars = StageBars(prefix, enabled=not a.quiet and sys.stderr.isatty())
        t0 = time.perf_counter()
        try:
            result = pipeline.run(image, settings, progress=bars)
            bars("write", 0.0, "Writing files")
            t1 = time.perf_counter()
            written = _write_outputs(result, target, a)
            result.timings["write"] = time.perf_counter() - t1
            bars("write", 1.0, "Writing files")
        except Img2MeshError as exc:
            bars.close()
            if not batch or isinstance(exc, ModelUnavailableError):
                raise
            failures += 1
            _error(f"{image.name}: {exc}")
            report.add({"input": str(image), "error": str(exc)})
            continue
        finally:
            bars.close()
        done += 1
        entry = result.report()
        entry["outputs"] = written
        report.add(entry)  # written as each photo finishes: a batch that dies keeps it
        for w in result.warnings:
            print(f"img2mesh: warning: {w}", file=sys.stderr)
        total = time.perf_counter() - t0
        print(result.summary(target.name, total))
    if batch:
        print(closing_line(done, skipped, failures))
    return EXIT_ERROR if failures else 0


def _run_prompt(a: argparse.Namespace) -> int:
    """--prompt: generate the picture, save it beside the mesh, reconstruct it like a photo."""
    from .protocol import prompt_slug
    from .text2image import check_prompt, require_diffusers

    settings = settings_from_args(a)
    prompt = check_prompt(a.prompt)
    target = plan_outputs([Path(prompt_slug(prompt) + ".png")], a, batch=False)[0]
    picture = target.with_suffix(".png")
    report_path = Path(a.report) if a.report else None
    planned = [*with_companions([target], a), picture]
    if not a.no_preview:
        planned.append(preview_path(target))
    if report_path:
        planned.append(report_path)
    if len({p.resolve() for p in planned}) < len(planned):
        raise OptionError(
            f"The mesh, picture, preview, texture and report paths must differ ({target.name})."
        )
    check_writable(planned, a.overwrite)
    require_diffusers()

    from .export import atomic_write
    from .pipeline import Pipeline

    bars = StageBars("", enabled=not a.quiet and sys.stderr.isatty())
    t0 = time.perf_counter()
    written: list[Path] = []
    try:
        result = Pipeline().run_prompt(
            prompt,
            picture,
            settings,
            overwrite=a.overwrite,
            progress=bars,
            model=a.t2i_model,
            model_dir=a.t2i_model_dir,
            seed=a.seed or 0,
            steps=a.steps,
            raw_prompt=a.raw_prompt,
        )
        written.append(picture)  # from here on, a failure removes the picture too
        bars("write", 0.0, "Writing files")
        t1 = time.perf_counter()
        written.extend(Path(p) for p in _write_outputs(result, target, a))
        result.timings["write"] = time.perf_counter() - t1
        report = result.report()
        report["outputs"] = [str(p) for p in written]
        if report_path:
            text = json.dumps(report, indent=2).encode()
            written.append(
                atomic_write(report_path, lambda f: f.write(text), overwrite=a.overwrite)
            )
        bars("write", 1.0, "Writing files")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    finally:
        bars.close()
    for w in result.warnings:
        print(f"img2mesh: warning: {w}", file=sys.stderr)
    gen = result.info["generated"]
    print(
        f"{picture.name}: generated by {gen['model']} (seed {gen['seed']}, {gen['steps']} "
        f"step{'s' if gen['steps'] != 1 else ''}, {gen['width']}x{gen['height']})"
    )
    print(result.summary(target.name, time.perf_counter() - t0))
    return 0
