"""Before any work: the photos a command names, the files it will write, and whether it may."""

from __future__ import annotations

from pathlib import Path

from ..errors import OptionError, OutputError
from ..files.names import IMAGE_SUFFIXES, MESH_FORMATS


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


def plan_outputs(images: list[Path], output: str | None, fmt: str, batch: bool) -> list[Path]:
    """The mesh path of each image (``output``: -o, a file for one photo, else a folder,
    made here; ``fmt``: the format in a folder); errors before any work is done."""
    if not batch:
        target = Path(output) if output else Path.cwd() / (images[0].stem + ".ply")
        if target.suffix.lower() not in MESH_FORMATS:
            raise OutputError(
                f"Cannot write '{target.name}': the output must end in {', '.join(MESH_FORMATS)}."
            )
        return [target]
    if not output:
        raise OptionError("Several images need an output folder: -o FOLDER.")
    folder = Path(output)
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
        targets.append(folder / f"{unique}.{fmt}")
    return targets
