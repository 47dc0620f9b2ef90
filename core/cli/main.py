"""The ``img2mesh`` command: photos in, coloured meshes (plus previews and reports) out."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import Img2MeshError, ModelUnavailableError, OptionError
from .arguments import build_parser, check_arguments, settings_from_args

EXIT_ERROR, EXIT_USAGE, EXIT_MODEL, EXIT_CANCELLED = 1, 2, 3, 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.where:
        from ..storage.paths import describe

        for k, v in describe().items():
            print(f"{k}: {v}")
        return 0
    check_arguments(parser, a)
    try:
        return run_photos(a) if a.prompt is None else run_prompt(a)
    except ModelUnavailableError as exc:
        error(str(exc))
        return EXIT_MODEL
    except Img2MeshError as exc:
        error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        error("Interrupted; nothing was written for the unfinished image.")
        return EXIT_CANCELLED


def error(message: str) -> None:
    print(f"img2mesh: error: {message}", file=sys.stderr)


def warning(message: str) -> None:
    print(f"img2mesh: warning: {message}", file=sys.stderr)


def _bars(a: argparse.Namespace, prefix: str = ""):
    from .progress import StageBars

    # bars only on a terminal: a log file gets the summary lines, not carriage returns
    return StageBars(prefix, enabled=not a.quiet and sys.stderr.isatty())


def run_photos(a: argparse.Namespace) -> int:
    """Photos (files or folders) to meshes: here, one after the other, or on Ray workers."""
    from ..files.names import outputs_of
    from ..runs.batch import Report, Tell, already_done, check_targets, closing_line, run_batch
    from .planning import expand_inputs, plan_outputs

    settings = settings_from_args(a)
    images = expand_inputs(a.inputs)
    several = len(images) > 1 or any(Path(i).is_dir() for i in a.inputs)
    targets = plan_outputs(images, a.output, a.format, several)
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
    check_targets(planned, a.overwrite, several, a.skip_existing)
    skipped = sum(skip)
    if skipped:
        print(
            f"Skipping {skipped} of {len(images)} photo{'s' if len(images) != 1 else ''}: "
            "their outputs are all there (--skip-existing)."
        )
    # each photo's line as it lands, also into a pipe or log
    tell = Tell(lambda line: print(line, flush=True), warning, error)
    report = Report(report_path, a.overwrite, several)

    if a.ray is not None:
        from ..runs.cluster import RayOptions, run_on_ray

        todo = [i for i, s in enumerate(skip) if not s]
        reports, failures = run_on_ray(
            [images[i] for i in todo],
            [targets[i] for i in todo],
            settings,
            RayOptions(a.ray, a.ray_cpus, a.ray_gpus),
            preview=preview,
            overwrite=a.overwrite,
            several=several,
            tell=tell,
            show_bar=not a.quiet and sys.stderr.isatty(),
        )
        by_input = {entry["input"]: entry for entry in reports}
        for i, (image, target) in enumerate(zip(images, targets, strict=True)):
            if skip[i]:
                outputs = [str(p) for p in outputs_of(target, preview, a.texture)]
                report.add({"input": str(image), "skipped": True, "outputs": outputs})
            elif str(image) in by_input:  # in input order, as a local batch writes it
                report.add(by_input[str(image)])
        if several:
            print(closing_line(len(todo) - failures, skipped, failures))
        return EXIT_ERROR if failures else 0

    from ..runs.pipeline import Pipeline

    done, failures = run_batch(
        Pipeline(),
        images,
        targets,
        settings,
        preview=preview,
        overwrite=a.overwrite,
        skip=skip,
        report=report,
        tell=tell,
        several=several,
        progress_for=lambda i: _bars(a, f"[{i + 1}/{len(images)}] " if several else ""),
    )
    if several:
        print(closing_line(done, skipped, failures))
    return EXIT_ERROR if failures else 0


def run_prompt(a: argparse.Namespace) -> int:
    """--prompt: generate the picture, save it beside the mesh, reconstruct it like a photo."""
    from ..files.names import outputs_of
    from ..networks.text2image import check_prompt, require_diffusers
    from ..protocol import prompt_slug
    from ..runs.batch import Report, check_targets
    from ..runs.job import run_photo, write_outputs
    from ..runs.pipeline import Pipeline
    from .planning import plan_outputs

    settings = settings_from_args(a)
    prompt = check_prompt(a.prompt)
    target = plan_outputs([Path(prompt_slug(prompt) + ".png")], a.output, a.format, False)[0]
    picture = target.with_suffix(".png")
    report_path = Path(a.report) if a.report else None
    planned = [*outputs_of(target, not a.no_preview, a.texture), picture]
    if report_path:
        planned.append(report_path)
    if len({p.resolve() for p in planned}) < len(planned):
        raise OptionError(
            f"The mesh, picture, preview, texture and report paths must differ ({target.name})."
        )
    check_targets(planned, a.overwrite, False, False)
    require_diffusers()

    options = {
        "model": a.t2i_model,
        "model_dir": a.t2i_model_dir,
        "seed": a.seed or 0,
        "steps": a.steps,
        "raw_prompt": a.raw_prompt,
    }
    bars = _bars(a)
    t0 = time.perf_counter()
    try:
        done = run_photo(
            Pipeline(),
            picture,
            settings,
            lambda result: [
                picture,
                *write_outputs(result, target, preview=not a.no_preview, overwrite=a.overwrite),
            ],
            progress=bars,
            prompt=(prompt, {**options, "overwrite": a.overwrite}),
        )
    finally:
        bars.close()
    Report(report_path, a.overwrite, False).add(done.report())
    for w in done.result.warnings:
        warning(w)
    gen = done.result.info["generated"]
    print(
        f"{picture.name}: generated by {gen['model']} (seed {gen['seed']}, {gen['steps']} "
        f"step{'s' if gen['steps'] != 1 else ''}, {gen['width']}x{gen['height']})"
    )
    print(done.result.summary(target.name, time.perf_counter() - t0))
    return 0
