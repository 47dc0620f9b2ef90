"""Open3D's smoothing and simplification of a mesh (Taubin, quadric decimation)."""

from __future__ import annotations

import numpy as np

from ..geometry.mesh import Mesh


def _to_o3d(mesh: Mesh):
    import open3d as o3d

    out = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(mesh.vertices.astype(np.float64)),
        o3d.utility.Vector3iVector(mesh.faces.astype(np.int32)),
    )
    out.vertex_colors = o3d.utility.Vector3dVector(mesh.colors.astype(np.float64))
    return out


def _from_o3d(mesh) -> Mesh:
    return Mesh(
        np.asarray(mesh.vertices), np.asarray(mesh.triangles), np.asarray(mesh.vertex_colors)
    )


def taubin(mesh: Mesh, iterations: int) -> Mesh:
    smoothed = _to_o3d(mesh).filter_smooth_taubin(number_of_iterations=int(iterations))
    return _from_o3d(smoothed)


def decimate(mesh: Mesh, target_faces: int) -> Mesh:
    import open3d as o3d

    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        simple = _to_o3d(mesh).simplify_quadric_decimation(int(target_faces))
        simple.remove_unreferenced_vertices()
    return _from_o3d(simple)
