"""One photo from its source to its written files: the per-photo job the CLI, a batch, Ray workers and the add-on's worker all run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Cancelled
from ..files.atomic import atomic_write_all, check_target
from ..files.meshes import mesh_files
from ..files.names import preview_path
from ..settings import Settings
from .result import Result

#: The stage a job reports while it writes its files (after the pipeline's own stages).
WRITE_STAGE = "write"


@dataclass
class Done:
    """A photo's finished job: its result, the files written, and the seconds it all took."""

    result: Result
    written: list[Path]
    seconds: float

    def report(self) -> dict:
        """The run's report (core.runs.result.Result.report) with the files it wrote."""
        entry = self.result.report()
        entry["outputs"] = [str(p) for p in self.written]
        return entry

    def summary(self, name: str | None = None) -> str:
        """One line: the mesh's name, faces, vertices, what it is and the whole job's seconds."""
        return self.result.summary(name, self.seconds)


def run_photo(
    pipeline,
    source: str | Path,
    settings: Settings,
    write: Callable[[Result], list[Path]],
    *,
    progress=None,
    cancel: Callable[[], bool] | None = None,
    prompt: tuple[str, dict[str, Any]] | None = None,
) -> Done:
    """Reconstruct ``source`` with ``pipeline`` and write the result with ``write``.

    ``write(result)`` writes every file the caller wants, all or nothing, and returns
    their paths. ``prompt``: (text, core.runs.pipeline.Pipeline.generate's options): the
    picture is generated from the text first and saved at ``source``; if anything after
    that fails or is cancelled, it is removed again, so an unfinished job leaves no files.
    ``progress(stage, fraction, message)`` and ``cancel()`` are the pipeline's; a cancel
    asked during its last step still stops the job before anything is written. The
    result's ``timings["write"]`` is the writing's.
    """
    t0 = time.perf_counter()
    if prompt is None:
        result = pipeline.run(source, settings, progress=progress, cancel=cancel)
    else:
        text, options = prompt
        result = pipeline.run_prompt(
            text, source, settings, progress=progress, cancel=cancel, **options
        )
    try:
        if cancel is not None and cancel():
            raise Cancelled()
        if progress is not None:
            progress(WRITE_STAGE, 0.0, "Writing files")
        t1 = time.perf_counter()
        written = write(result)
        result.timings["write"] = time.perf_counter() - t1
        if progress is not None:
            progress(WRITE_STAGE, 1.0, "Writing files")
    except BaseException:
        if prompt is not None:  # all or nothing: no picture without its result
            Path(source).unlink(missing_ok=True)
        raise
    return Done(result, written, time.perf_counter() - t0)


def write_outputs(result: Result, target: Path, *, preview: bool, overwrite: bool) -> list[Path]:
    """The mesh at ``target`` (with a textured OBJ's .mtl and image) and its preview beside
    it: all of them or none. Returns the paths in the order written."""
    from ..files.preview import preview_file

    items = mesh_files(result.mesh, target)
    if preview:
        # targets checked before the picture is drawn: a taken name costs nothing
        for path, _ in items:
            check_target(path, overwrite=overwrite)
        items.append(preview_file(result.mesh, preview_path(target), camera=result.camera))
    return atomic_write_all(items, overwrite=overwrite)
