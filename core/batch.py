"""Bookkeeping of a batch run: photos already done (--skip-existing), the report written as each photo finishes, the closing count."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import OutputError


def outputs_of(target: Path, preview: bool, texture: bool = False) -> list[Path]:
    """The files one photo's run writes: its mesh (with a textured OBJ's .mtl and image),
    and its preview unless turned off."""
    from .export import companion_files

    out = [target, *companion_files(target, texture)]
    if preview:
        out.append(target.with_name(target.stem + ".preview.png"))
    return out


def already_done(targets: list[Path], preview: bool, texture: bool = False) -> list[bool]:
    """For each photo: are all of its outputs there (so --skip-existing skips it)?

    Outputs are written all or nothing (a failed preview removes its mesh), so a photo
    with only some of them was changed by hand: it is not skipped, and replacing what
    is left needs --overwrite.
    """
    return [all(_there(p, file=True) for p in outputs_of(t, preview, texture)) for t in targets]


def check_targets(paths: list[Path], overwrite: bool, batch: bool, skip_existing: bool) -> None:
    """Every output can be written; in a batch, existing ones are named with the ways on."""
    from .export import check_target

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
        from .export import atomic_write

        payload = {"runs": self.runs} if self.batch else self.runs[0]
        text = json.dumps(payload, indent=2).encode()
        atomic_write(self.path, lambda f: f.write(text), overwrite=self.overwrite)
        self.overwrite = True  # from now on it is our own file


def closing_line(done: int, skipped: int, failed: int) -> str:
    total = done + skipped + failed
    return (
        f"{total} photo{'s' if total != 1 else ''}: {done} done, {skipped} skipped "
        f"(outputs already there), {failed} failed."
    )
