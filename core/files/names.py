"""The names of the files a run reads and writes: photo and mesh suffixes, a mesh's preview and a textured OBJ's companions (standard library only)."""

from __future__ import annotations

import os
from pathlib import Path

#: Extensions :func:`core.files.meshes.write_mesh` and ``read_mesh`` understand.
MESH_FORMATS = (".ply", ".obj", ".glb")

#: Photos a folder given on the command line is searched for.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}


def preview_path(mesh_path: str | os.PathLike) -> Path:
    """Where a mesh's preview goes: ``NAME.preview.png`` beside it."""
    mesh_path = Path(mesh_path)
    return mesh_path.with_name(mesh_path.stem + ".preview.png")


def companion_files(path: str | os.PathLike, textured: bool) -> list[Path]:
    """The files written beside a mesh at ``path``: a textured OBJ's .mtl and image."""
    path = Path(path)
    if not textured or path.suffix.lower() != ".obj":
        return []
    return [path.with_suffix(".mtl"), texture_path(path)]


def texture_path(path: str | os.PathLike) -> Path:
    """Where a textured OBJ's image goes: ``NAME.texture.png`` (``NAME.png`` is often the photo)."""
    path = Path(path)
    return path.with_name(path.stem + ".texture.png")


def outputs_of(target: str | os.PathLike, preview: bool, texture: bool = False) -> list[Path]:
    """The files one photo's run writes: its mesh (with a textured OBJ's .mtl and image),
    and its preview unless turned off, in the order they are written."""
    out = [Path(target), *companion_files(target, texture)]
    if preview:
        out.append(preview_path(target))
    return out
