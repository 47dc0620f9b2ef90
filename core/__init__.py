"""img2mesh core: one photo to a coloured 3D mesh, without Blender.

``import core`` stays fast: the heavy libraries (torch, transformers, open3d, rembg)
are imported inside the functions that use them. docs/architecture.md maps the packages.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import Img2MeshError  # noqa: E402,F401
from .settings import Settings  # noqa: E402,F401


def __getattr__(name: str):
    # Lazy exports keep `import core` light.
    if name in ("Pipeline", "reconstruct"):
        from .runs import pipeline

        return getattr(pipeline, name)
    if name == "Result":
        from .runs.result import Result

        return Result
    raise AttributeError(name)
