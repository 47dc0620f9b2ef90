"""Before/after pictures of the shape prior: whole-object scenes seen from behind.

    python bench/shape_images.py            # writes docs/images/shape-*.png

Each scene of core.oracle.shapes.SHAPE_SCENES named below is meshed as a closed solid with
the hidden side inflated (--shape inflate) and chosen automatically (--shape auto), and
drawn with matplotlib from a viewpoint the camera never had (behind, or below for the
ring), shaded by the faces' normals. With ../shared/data beside the project, the globe of
its TUM RGB-D frame (real sensor depth, a real IS-Net mask) is drawn the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.oracle.scores import whole_object_score  # noqa: E402
from core.oracle.shapes import make_shape_scene  # noqa: E402
from core.surface.build import reconstruct_surface  # noqa: E402
from core.surface.cloud import point_cloud  # noqa: E402

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


SHARED = ROOT.parent / "shared" / "data"


def tum_globe(data: Path = SHARED):
    """The TUM RGB-D frame's globe: (rgb, depth, mask, intrinsics) of a crop around it, from
    the shared ``data`` folder (also the real-data test's input).

    The mask is the real IS-Net's, cut at 2.3 m: the sensor's depth is not registered
    exactly to the colour, and along the outline it reads the wall behind the globe.
    """
    from PIL import Image

    from core.geometry.camera import Intrinsics
    from core.masks.remover import BackgroundRemover

    r0, r1, c0, c1 = 0, 110, 50, 175
    rgb = np.asarray(Image.open(data / "rgbd/tum/color.png").convert("RGB"))[r0:r1, c0:c1]
    rgb = np.ascontiguousarray(rgb)
    depth = np.asarray(Image.open(data / "rgbd/tum/depth.png")).astype(np.float32) / 5000.0
    depth = np.ascontiguousarray(depth[r0:r1, c0:c1])
    model = data / "models/isnet-general-use-fp16.onnx"
    mask = (BackgroundRemover().mask(rgb, str(model)) > 0.5) & (depth > 0) & (depth < 2.3)
    return rgb, depth, mask, Intrinsics(525.0, 525.0, 319.5 - c0, 239.5 - r0, c1 - c0, r1 - r0)


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
    if not SHARED.is_dir():
        print(f"no {SHARED}: the real globe is not drawn")
        return 0
    rgb, depth, mask, intrinsics = tum_globe()
    cloud = point_cloud(depth, rgb, mask, intrinsics)
    fig = plt.figure(figsize=(9.6, 3.2), dpi=100)
    ax = fig.add_subplot(1, 3, 1)
    ax.imshow(np.where(mask[..., None], rgb, rgb // 3))
    ax.set_axis_off()
    ax.set_title("TUM RGB-D frame, crop and mask", fontsize=9)
    for i, shape in enumerate(("inflate", "auto")):
        mesh, info = reconstruct_surface(cloud, depth, rgb, mask, intrinsics, shape=shape)
        label = "inflated (before)" if shape == "inflate" else f"shape prior: {info['shape']}"
        draw(fig.add_subplot(1, 3, i + 2, projection="3d"), mesh, (10, 90), f"{label}, behind")
    fig.tight_layout()
    path = out / "shape-tum-globe.png"
    fig.savefig(path)
    plt.close(fig)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
