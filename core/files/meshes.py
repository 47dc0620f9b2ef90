"""Write and read meshes as PLY, OBJ and GLB: the extension picks the format."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError, OutputError
from ..geometry.mesh import Mesh
from .atomic import Writer, atomic_write_all
from .glb import read_glb, write_glb
from .names import MESH_FORMATS
from .obj import read_obj, textured_obj_files, write_obj
from .ply import read_ply, write_ply


def write_mesh(mesh: Mesh, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``mesh`` to ``path``; the extension (.ply, .obj, .glb) picks the format.

    Coordinates are written as given (the project's frame: Z up, camera looking
    along +Y). A textured OBJ brings its .mtl and image (all three or none). Returns
    the path written. Raises :class:`OutputError` for anything the user can fix:
    unsupported extension, missing or read-only folder, full disk, or an existing
    file without ``overwrite``.
    """
    return atomic_write_all(mesh_files(mesh, path), overwrite=overwrite)[0]


def mesh_files(mesh: Mesh, path: str | os.PathLike) -> list[tuple[Path, Writer]]:
    """The files that hold ``mesh`` at ``path``, each with the function that writes it: the
    mesh first (a textured OBJ's .mtl and image after it), for :func:`atomic_write_all`."""
    path = Path(path)
    writer = _WRITERS.get(path.suffix.lower())
    if writer is None:
        raise OutputError(
            f"Cannot write {path}: '{path.suffix or path.name}' is not a supported mesh format; "
            f"use {_format_list(MESH_FORMATS)}."
        )
    _check_mesh(mesh, path)
    if mesh.texture is not None and path.suffix.lower() == ".obj":
        return textured_obj_files(mesh, path)
    return [(path, lambda f: writer(mesh, f))]


def read_mesh(path: str | os.PathLike) -> Mesh:
    """Read a mesh written by :func:`write_mesh` (or a similar PLY, OBJ or GLB file).

    Coordinates come back as stored, colours as sRGB in [0, 1] (GLB's linear
    COLOR_0 is converted back); meshes without colours get mid grey.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in MESH_FORMATS:
        raise InputError(
            f"Cannot read {path}: '{path.suffix or path.name}' is not a supported mesh format; "
            f"use {_format_list(MESH_FORMATS)}."
        )
    if not path.is_file():
        raise InputError(f"Cannot read {path}: the file does not exist.")
    if ext == ".glb":
        return read_glb(path)
    if ext == ".obj":
        return read_obj(path)
    return read_ply(path)


def _format_list(exts: tuple[str, ...]) -> str:
    return ", ".join(exts[:-1]) + " or " + exts[-1]


def _check_mesh(mesh: Mesh, path: Path) -> None:
    if mesh.n_vertices == 0 or mesh.n_faces == 0:
        raise OutputError(f"Cannot write {path}: the mesh is empty.")
    # Shape mismatches and bad indices are bugs in the caller, not user errors.
    if mesh.colors.shape != mesh.vertices.shape:
        raise ValueError(f"colors {mesh.colors.shape} do not match vertices {mesh.vertices.shape}")
    if mesh.normals is not None and mesh.normals.shape != mesh.vertices.shape:
        raise ValueError(
            f"normals {mesh.normals.shape} do not match vertices {mesh.vertices.shape}"
        )
    if mesh.faces.min() < 0 or mesh.faces.max() >= mesh.n_vertices:
        raise ValueError("face indices out of range")
    if mesh.texture is not None and mesh.texture.uv.shape != (mesh.n_faces, 3, 2):
        raise ValueError(f"texture UVs {mesh.texture.uv.shape} do not match {mesh.n_faces} faces")
    if not np.isfinite(mesh.vertices).all():
        raise ValueError("the mesh has NaN or infinite vertex coordinates")


_WRITERS = {".ply": write_ply, ".obj": write_obj, ".glb": write_glb}
