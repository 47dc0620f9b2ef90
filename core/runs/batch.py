"""A batch of photos: each through the per-photo job in turn, the ones already done skipped (--skip-existing), the report written as each photo finishes, the closing count."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import Img2MeshError, ModelUnavailableError, OutputError
from ..files.atomic import atomic_write, check_target
from ..files.names import outputs_of
from ..settings import Settings
from .job import run_photo, write_outputs


@dataclass
class Tell:
    """What a batch tells its user as it goes: a finished photo's summary line, a warning,
    and a failed photo's sentence (``NAME: reason``)."""

    summary: Callable[[str], None]
    warning: Callable[[str], None]
    failure: Callable[[str], None]


def run_batch(
    pipeline,
    photos: list[Path],
    targets: list[Path],
    settings: Settings,
    *,
    preview: bool,
    overwrite: bool,
    skip: list[bool],
    report: Report,
    tell: Tell,
    several: bool = True,
    progress_for: Callable[[int], Callable] | None = None,
) -> tuple[int, int]:
    """Each photo not skipped through :func:`core.runs.job.run_photo`, in order; (done, failed).

    Every photo's entry goes into ``report`` as it finishes. With ``several`` photos, one
    that fails with an error the user can cause is named and counted and the batch goes
    on; a model that cannot be had stops it at once (every photo would fail the same
    way). With one photo its error is raised. ``progress_for(i)`` gives photo ``i``'s
    progress callable, whose ``close()`` is called when the photo is over.
    """
    done = failures = 0
    for i, (photo, target) in enumerate(zip(photos, targets, strict=True)):
        if skip[i]:
            outputs = [str(p) for p in outputs_of(target, preview, settings.texture)]
            report.add({"input": str(photo), "skipped": True, "outputs": outputs})
            continue
        progress = progress_for(i) if progress_for is not None else None
        try:
            job = run_photo(
                pipeline,
                photo,
                settings,
                lambda result, target=target: write_outputs(
                    result, target, preview=preview, overwrite=overwrite
                ),
                progress=progress,
            )
        except Img2MeshError as exc:
            if not several or isinstance(exc, ModelUnavailableError):
                raise
            failures += 1
            tell.failure(f"{photo.name}: {exc}")
            report.add({"input": str(photo), "error": str(exc)})
            continue
        finally:
            if progress is not None:
                progress.close()
        done += 1
        report.add(job.report())  # written as each photo finishes: a batch that dies keeps it
        for warning in job.result.warnings:
            tell.warning(warning)
        tell.summary(job.summary(target.name))
    return done, failures


def already_done(targets: list[Path], preview: bool, texture: bool = False) -> list[bool]:
    """For each photo: are all of its outputs there (so --skip-existing skips it)?

    Outputs are written all or nothing (a failed preview removes its mesh), so a photo
    with only some of them was changed by hand: it is not skipped, and replacing what
    is left needs --overwrite.
    """
    return [all(_there(p, file=True) for p in outputs_of(t, preview, texture)) for t in targets]


def check_targets(paths: list[Path], overwrite: bool, batch: bool, skip_existing: bool) -> None:
    """Every output can be written; in a batch, existing ones are named with the ways on."""
    there = [] if overwrite else [p for p in paths if _there(p)]
    if there and skip_existing:
        raise OutputError(
            f"{there[0]} is there without the other outputs of its photo, so that photo is "
            "not skipped: pass --overwrite to make it again, or remove the file."
        )
    if batch and there:
        raise OutputError(
            f"{len(there)} of the outputs exist already (first: {there[0]}): pass "
            "--skip-existing to make only the missing ones, or --overwrite to replace them."
        )
    for path in paths:
        check_target(path, overwrite=overwrite)


def _there(path: Path, file: bool = False) -> bool:
    """Does ``path`` exist? A folder the user may not enter counts as no (check_target says why)."""
    try:
        return path.is_file() if file else path.exists()
    except OSError:
        return False


class Report:
    """The --report file, rewritten (atomically) after each photo so a batch that dies keeps it."""

    def __init__(self, path: Path | None, overwrite: bool, batch: bool) -> None:
        self.path, self.overwrite, self.batch = path, overwrite, batch
        self.runs: list[dict] = []

    def add(self, entry: dict) -> None:
        self.runs.append(entry)
        if self.path is None:
            return
        payload = {"runs": self.runs} if self.batch else self.runs[0]
        text = json.dumps(payload, indent=2).encode()
        atomic_write(self.path, lambda f: f.write(text), overwrite=self.overwrite)
        self.overwrite = True  # from now on it is our own file


def closing_line(done: int, skipped: int, failed: int) -> str:
    """The batch's last line: how many photos were done, skipped and failed."""
    total = done + skipped + failed
    return (
        f"{total} photo{'s' if total != 1 else ''}: {done} done, {skipped} skipped "
        f"(outputs already there), {failed} failed."
    )
