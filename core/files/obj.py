"""Wavefront OBJ with vertex colours (``v x y z r g b``), and with a texture its .mtl and image beside it."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputError
from ..geometry.mesh import Mesh
from .names import companion_files


def write_obj(mesh: Mesh, f: BinaryIO) -> None:
    f.write(b"# img2mesh: Z up, camera looks along +Y; vertex colours are sRGB\n")
    # One C-level %-format per block instead of a Python loop per vertex.
    v = np.hstack([mesh.vertices.astype(np.float64), np.clip(mesh.colors, 0, 1).astype(np.float64)])
    _write_rows(f, "v %.6g %.6g %.6g %.4f %.4f %.4f\n", v)
    if mesh.normals is not None:
        _write_rows(f, "vn %.4f %.4f %.4f\n", mesh.normals.astype(np.float64))
        idx = np.repeat(mesh.faces.astype(np.int64) + 1, 2, axis=1)
        _write_rows(f, "f %d//%d %d//%d %d//%d\n", idx)
    else:
        _write_rows(f, "f %d %d %d\n", mesh.faces.astype(np.int64) + 1)


def textured_obj_files(mesh: Mesh, path: Path) -> list[tuple[Path, Callable[[BinaryIO], None]]]:
    """The three files of a textured OBJ, each with its writer: OBJ, MTL and PNG. Vertices
    keep their colours; ``vt`` rows carry the texture's UVs."""
    texture = mesh.texture
    mtl, image = companion_files(path, True)
    _, uv, faces = texture.split(mesh.faces)
    # OBJ indexes UVs separately, so vertices need no splitting: corner -> vt row
    corner_vt = faces.astype(np.int64) + 1

    def write_main(f: BinaryIO) -> None:
        f.write(b"# img2mesh: Z up, camera looks along +Y; vertex colours are sRGB\n")
        f.write(f"mtllib {mtl.name}\n".encode())
        v = np.hstack(
            [mesh.vertices.astype(np.float64), np.clip(mesh.colors, 0, 1).astype(np.float64)]
        )
        _write_rows(f, "v %.6g %.6g %.6g %.4f %.4f %.4f\n", v)
        # OBJ's v runs upwards from the image's bottom row
        vt = np.column_stack([uv[:, 0], 1.0 - uv[:, 1]]).astype(np.float64)
        _write_rows(f, "vt %.7f %.7f\n", vt)
        f.write(b"usemtl img2mesh\n")
        fv = mesh.faces.astype(np.int64) + 1
        if mesh.normals is not None:
            _write_rows(f, "vn %.4f %.4f %.4f\n", mesh.normals.astype(np.float64))
            rows = np.stack([fv, corner_vt, fv], axis=2).reshape(-1, 9)
            _write_rows(f, "f %d/%d/%d %d/%d/%d %d/%d/%d\n", rows)
        else:
            rows = np.stack([fv, corner_vt], axis=2).reshape(-1, 6)
            _write_rows(f, "f %d/%d %d/%d %d/%d\n", rows)

    material = (
        "# img2mesh: the photo as a texture (sRGB)\n"
        "newmtl img2mesh\n"
        "Ka 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
        f"map_Kd {image.name}\n"
    ).encode()
    png = texture.png()
    return [(path, write_main), (mtl, lambda f: f.write(material)), (image, lambda f: f.write(png))]


def _write_rows(f: BinaryIO, row_format: str, rows: np.ndarray, block: int = 65536) -> None:
    for start in range(0, len(rows), block):
        chunk = rows[start : start + block]
        f.write(((row_format * len(chunk)) % tuple(chunk.ravel().tolist())).encode("ascii"))


def read_obj(path: Path) -> Mesh:
    # Parsed here rather than by Open3D, whose OBJ reader reorders the vertices.
    v_rows, vn_rows, f_rows = [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("v "):
                v_rows.append(line[2:])
            elif line.startswith("vn "):
                vn_rows.append(line[3:])
            elif line.startswith("f "):
                f_rows.append(line[2:])
    if not v_rows or not f_rows:
        raise InputError(f"Cannot read {path}: it holds no mesh.")
    try:
        v = _float_rows(v_rows)
        vn = _float_rows(vn_rows) if vn_rows else None
        corner_v, corner_vn = _obj_triangles(f_rows)
    except (ValueError, IndexError):
        raise InputError(f"Cannot read {path}: it is not a valid OBJ file.") from None
    n = len(v)
    # OBJ indices are 1-based; negative ones count back from the end.
    faces = np.where(corner_v > 0, corner_v - 1, n + corner_v).reshape(-1, 3)
    if faces.size and (faces.min() < 0 or faces.max() >= n):
        raise InputError(f"Cannot read {path}: it is not a valid OBJ file.")
    normals = None
    if vn is not None and corner_vn is not None:
        normals = np.zeros((n, 3), np.float32)
        vn_idx = np.where(corner_vn > 0, corner_vn - 1, len(vn) + corner_vn)
        normals[faces.ravel()] = vn[vn_idx, :3]
    colors = v[:, 3:6] if v.shape[1] >= 6 else np.full((n, 3), 0.5, np.float32)
    return Mesh(v[:, :3], faces, colors, normals)


def _obj_triangles(rows: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Vertex and normal index of every triangle corner (OBJ numbering)."""
    parts = rows[0].split()[0].split("/")
    per_corner = sum(1 for p in parts if p)
    has_vn = len(parts) == 3 and bool(parts[2])
    numbers = _parse_numbers(" ".join(rows).replace("/", " "), np.int64)
    if len(numbers) == len(rows) * 3 * per_corner:
        # Fast path: every face a triangle laid out like the first one.
        grid = numbers.reshape(-1, per_corner)
        return grid[:, 0], grid[:, -1] if has_vn else None
    # Polygons or mixed layouts: fan-triangulate line by line.
    vs, vns = [], []
    for row in rows:
        corners = [c.split("/") for c in row.split()]
        for i in range(1, len(corners) - 1):
            for c in (corners[0], corners[i], corners[i + 1]):
                vs.append(int(c[0]))
                vns.append(int(c[2]) if len(c) == 3 and c[2] else 0)
    has_vn = bool(vns) and all(vns)
    return np.array(vs, np.int64), np.array(vns, np.int64) if has_vn else None


def _float_rows(rows: list[str]) -> np.ndarray:
    widths = {len(r.split()) for r in rows[:1000]}
    if len(widths) == 1:
        flat = _parse_numbers(" ".join(rows), np.float32)
        if len(flat) == len(rows) * widths.pop():
            return flat.reshape(len(rows), -1)
    # Mixed lines (some with colours, some without): keep xyz only.
    return np.array([r.split()[:3] for r in rows], dtype=np.float32)


def _parse_numbers(text: str, dtype) -> np.ndarray:
    # np.fromstring's C parser is ~10x faster than str.split; it only warns on junk.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(text, dtype=dtype, sep=" ")
        except DeprecationWarning:
            raise ValueError("not a list of numbers") from None
