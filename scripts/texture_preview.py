"""README image: one mesh seen from beside the photo's camera, vertex colours next to the photo texture.

    .venv/bin/python scripts/texture_preview.py examples/toy.jpg docs/images/toy-texture.png \
        --segment key --depth inflate

Ray-casts the mesh (Open3D) from a camera turned ``--yaw`` degrees around the object and
shades each hit with a headlight; left half vertex colours, right half the texture.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def render(
    result, yaw_deg: float, size: int, zoom: float = 1.0, look_z: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """(vertex-coloured, textured) RGB images of ``result.mesh`` from a turned camera."""
    import open3d as o3d

    from core.surface.texture import sample_texture

    mesh = result.mesh
    v = mesh.vertices.astype(np.float64)
    centre = (v.min(axis=0) + v.max(axis=0)) / 2
    centre[2] = v[:, 2].min() + look_z * (v[:, 2].max() - v[:, 2].min())
    radius = float(np.linalg.norm(v.max(axis=0) - v.min(axis=0))) / 2
    distance = radius / math.tan(math.radians(20)) * 1.1
    yaw = math.radians(yaw_deg)
    # the photo's camera looks along +Y: turn it about Z, look at the centre, a little from above
    eye = centre + distance * np.array([-math.sin(yaw), -math.cos(yaw), 0.35])
    forward = centre - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    s = np.linspace(-1, 1, size) * math.tan(math.radians(20)) / zoom
    xx, yy = np.meshgrid(s, -s)
    dirs = forward + xx[..., None] * right + yy[..., None] * up
    dirs /= np.linalg.norm(dirs, axis=2, keepdims=True)
    rays = np.concatenate([np.broadcast_to(eye, dirs.shape), dirs], axis=2).reshape(-1, 6)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(mesh.vertices), o3d.core.Tensor(mesh.faces.astype(np.uint32))
    )
    hit = scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))
    ok = np.isfinite(hit["t_hit"].numpy())
    face = hit["primitive_ids"].numpy()[ok].astype(np.int64)
    uv = hit["primitive_uvs"].numpy()[ok].astype(np.float64)
    bary = np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)
    normal = hit["primitive_normals"].numpy()[ok]
    shade = 0.35 + 0.65 * np.abs((normal * rays[ok, 3:]).sum(axis=1))[:, None]
    background = np.array([235.0, 236.0, 238.0])
    images = []
    for colours in (
        (mesh.colors[mesh.faces[face]] * 255.0 * bary[:, :, None]).sum(axis=1),
        sample_texture(mesh.texture, face, bary),
    ):
        out = np.tile(background, (size * size, 1))
        out[ok] = colours * shade
        images.append(np.clip(out, 0, 255).astype(np.uint8).reshape(size, size, 3))
    return images[0], images[1]


def main(argv=None) -> int:
    from PIL import Image

    from core.runs.pipeline import Pipeline
    from core.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photo")
    p.add_argument("out")
    p.add_argument("--segment", default="key")
    p.add_argument("--depth", default="inflate")
    p.add_argument("--yaw", type=float, default=30.0)
    p.add_argument("--size", type=int, default=360)
    p.add_argument("--zoom", type=float, default=1.0, help="narrower view (x times)")
    p.add_argument("--look-z", type=float, default=0.5, help="height looked at (0 bottom, 1 top)")
    a = p.parse_args(argv)
    result = Pipeline().run(a.photo, Settings(segment=a.segment, depth=a.depth))
    left, right = render(result, a.yaw, a.size, a.zoom, a.look_z)
    gap = np.full((a.size, 8, 3), 255, np.uint8)
    Image.fromarray(np.hstack([left, gap, right])).save(a.out, optimize=True)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
