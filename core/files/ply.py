"""Binary PLY with vertex colours (and normals): written here, read with Open3D."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputError
from ..geometry.mesh import Mesh


def _colors_u8(colors: np.ndarray) -> np.ndarray:
    return np.round(np.clip(colors, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_ply(mesh: Mesh, f: BinaryIO) -> None:
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if mesh.normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vert = np.empty(mesh.n_vertices, dtype=fields)  # packed, as PLY wants
    vert["x"], vert["y"], vert["z"] = mesh.vertices.T
    if mesh.normals is not None:
        vert["nx"], vert["ny"], vert["nz"] = mesh.normals.T
    rgb = _colors_u8(mesh.colors)
    vert["red"], vert["green"], vert["blue"] = rgb.T

    face = np.empty(mesh.n_faces, dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face["n"] = 3
    face["v"] = mesh.faces

    header = [
        "ply",
        "format binary_little_endian 1.0",
        "comment img2mesh: Z up, camera looks along +Y",
    ]
    header.append(f"element vertex {mesh.n_vertices}")
    header += [f"property float {name}" for name, kind in fields if kind == "<f4"]
    header += [f"property uchar {name}" for name, kind in fields if kind == "u1"]
    header += [f"element face {mesh.n_faces}", "property list uchar int vertex_indices"]
    header.append("end_header\n")
    f.write("\n".join(header).encode("ascii"))
    f.write(vert.data)
    f.write(face.data)


def read_ply(path: Path) -> Mesh:
    import open3d as o3d

    o3d_mesh = o3d.io.read_triangle_mesh(str(path))
    vertices = np.asarray(o3d_mesh.vertices, dtype=np.float32)
    if len(vertices) == 0:
        raise InputError(f"Cannot read {path}: it holds no mesh.")
    faces = np.asarray(o3d_mesh.triangles, dtype=np.int32)
    if o3d_mesh.has_vertex_colors():
        colors = np.asarray(o3d_mesh.vertex_colors, dtype=np.float32)
    else:
        colors = np.full((len(vertices), 3), 0.5, np.float32)
    normals = None
    if o3d_mesh.has_vertex_normals():
        normals = np.asarray(o3d_mesh.vertex_normals, dtype=np.float32)
    return Mesh(vertices, faces, colors, normals)
