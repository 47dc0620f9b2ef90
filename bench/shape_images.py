"""Before/after pictures of the shape prior: whole-object scenes seen from behind.

    python bench/shape_images.py            # writes docs/images/shape-*.png

Each scene of core.synthetic.SHAPE_SCENES named below is meshed as a closed solid with
the hidden side inflated (--shape inflate) and chosen automatically (--shape auto), and
drawn with matplotlib from a viewpoint the camera never had (behind, or below for the
ring), shaded by the faces' normals.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.evaluation import whole_object_score  # noqa: E402
from core.meshing import reconstruct_surface  # noqa: E402
from core.pointcloud import point_cloud  # noqa: E402
from core.synthetic import make_shape_scene  # noqa: E402

#: scene -> (elevation, azimuth) of the view, in the upright frame (z up, y away from the camera)
VIEWS = {"bottle": (10, 90), "cup": (10, 60), "torus_tilted": (-35, 90)}


def draw(ax, mesh, view, title):
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    v = mesh.vertices.astype(np.float64)
    # camera frame (x right, y down, z forward) to an upright frame: z up, y away
    up = np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)
    tri = up[mesh.faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    elev, azim = np.radians(view)
    eye = np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
    light = 0.25 + 0.75 * np.clip(n @ eye, 0, 1)
    ax.add_collection3d(
        Poly3DCollection(
            tri,
            facecolors=np.c_[np.tile(light[:, None], 3) * [0.85, 0.8, 0.7], np.ones(len(tri))],
            linewidths=0,
        )
    )
    centre = (up.max(axis=0) + up.min(axis=0)) / 2
    half = (up.max(axis=0) - up.min(axis=0)).max() / 2
    for axis, c in zip("xyz", centre, strict=True):
        getattr(ax, f"set_{axis}lim")(c - half, c + half)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(*view)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = ROOT / "docs" / "images"
    for name, view in VIEWS.items():
        scene = make_shape_scene(name, width=320, height=240)
        cloud = point_cloud(scene.depth, scene.rgb, scene.mask, scene.intrinsics)
        fig = plt.figure(figsize=(6.4, 3.2), dpi=100)
        for i, shape in enumerate(("inflate", "auto")):
            mesh, info = reconstruct_surface(
                cloud, scene.depth, scene.rgb, scene.mask, scene.intrinsics, shape=shape
            )
            f = whole_object_score(mesh, scene)["f_score"]
            label = "inflated (before)" if shape == "inflate" else f"shape prior: {info['shape']}"
            draw(fig.add_subplot(1, 2, i + 1, projection="3d"), mesh, view, f"{label}, F {f:.2f}")
        fig.tight_layout()
        path = out / f"shape-{name}.png"
        fig.savefig(path)
        plt.close(fig)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
