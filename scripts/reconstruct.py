"""Reconstruct a photo into a .blend without the UI: the add-on's operator, run synchronously.

    blender -b --python scripts/reconstruct.py -- photo.jpg --out scene.blend [options]
    python scripts/reconstruct.py photo.jpg --out scene.blend [options]     (with the bpy module)

The add-on comes from this repository (or, with --installed, the copy Blender has
enabled). The core runs in its own environment: --python-env, else the add-on's
preferences (Set up), else $IMG2MESH_PYTHON. Exit status 0 on success, 1 with one
readable sentence on stderr when the reconstruction cannot be done, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ADDON_MODULE = "img2mesh_addon"
#: Free bytes below which a failed save is put down to a full disk.
LOW_SPACE = 64 * 1024 * 1024


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="reconstruct.py",
        description="Reconstruct a photo into a coloured mesh and save it in a .blend file.",
    )
    p.add_argument("photo", help="the photo (any format Pillow reads)")
    p.add_argument("--out", required=True, metavar="SCENE.blend", help="the .blend to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing .blend")
    p.add_argument(
        "--python-env",
        metavar="PATH",
        help="the reconstruction environment (its folder or its python); default: the add-on's "
        "preferences, else $IMG2MESH_PYTHON",
    )
    p.add_argument("--data-dir", metavar="DIR", help="where models and caches are kept")
    p.add_argument(
        "--device", choices=["auto", "cpu", "cuda", "mps"], help="where the network runs"
    )
    p.add_argument("--timeout", type=int, metavar="S", help="worker timeout in seconds")
    p.add_argument("--installed", action="store_true", help="use the installed, enabled add-on")
    p.add_argument("--max-size", type=int, default=640, metavar="PX", help="working size")
    p.add_argument("--segment", choices=["rembg", "key", "none"], default="rembg")
    p.add_argument("--rembg-model", metavar="NAME|FILE.onnx", help="rembg model or .onnx file")
    p.add_argument("--depth", choices=["model", "inflate"], default="model")
    p.add_argument("--depth-model", metavar="ID", help="Hugging Face depth model id")
    p.add_argument("--model-dir", metavar="DIR", help="local folder holding the depth model")
    p.add_argument("--fov", type=float, metavar="DEG", help="field of view (longer side)")
    p.add_argument("--mesh", choices=["poisson", "grid"], default="poisson")
    p.add_argument("--open", action="store_true", help="trim to the visible surface")
    p.add_argument("--poisson-depth", type=int, default=0, metavar="N")
    p.add_argument("--target-faces", type=int, default=0, metavar="N")
    p.add_argument("--smooth", type=int, default=0, metavar="N")
    p.add_argument(
        "--vertex-colors-only",
        action="store_true",
        help="no photo texture (UV map and packed image), only the vertex colours",
    )
    p.add_argument("--no-camera", action="store_true", help="do not add the photo's camera")
    p.add_argument("--no-cache", action="store_true", help="no depth and mask cache")
    p.add_argument("--keep-scene", action="store_true", help="keep the startup scene's objects")
    return p.parse_args(argv)


def script_args() -> list[str]:
    """Blender passes the script's own arguments after ``--``; plain python has them all."""
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1 :]
    return sys.argv[1:]


def fail(message: str) -> None:
    print(f"reconstruct.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def save_error(out: Path, exc: RuntimeError) -> str:
    """One sentence for a failed save (Blender's own text does not say "disk full")."""
    reason = str(exc).strip().removeprefix("Error: ").strip().rstrip(".")
    try:
        free = shutil.disk_usage(out.parent).free
    except OSError:
        free = None
    if free is not None and free < LOW_SPACE:
        return f"'{out}' cannot be written: the disk is full ({free // 1024:,} KB free)."
    return f"'{out}' cannot be written ({reason})."


def preferences() -> Any:
    import bpy

    prefs = bpy.context.preferences
    assert prefs is not None
    return prefs


def enable_addon(installed: bool) -> str:
    import addon_utils

    if installed:
        addons = preferences().addons
        for name in ("bl_ext.user_default.img2mesh", "img2mesh"):
            if name in addons:
                return name
        fail("No enabled Img2Mesh add-on was found (drop --installed to use this repository's).")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    if ADDON_MODULE in preferences().addons:
        return ADDON_MODULE  # enabling it again would restart it (and stop its warm worker)
    if addon_utils.enable(ADDON_MODULE, default_set=True) is None:  # type: ignore[func-returns-value]
        fail(f"The add-on in {REPO / ADDON_MODULE} could not be enabled (see the output above).")
    return ADDON_MODULE


def main() -> None:
    args = parse_args(script_args())
    import bpy

    out = Path(args.out).expanduser().resolve()
    if out.suffix.lower() != ".blend":
        fail(f"The output must be a .blend file, not '{out.name}'.")
    if out.exists() and not args.overwrite:
        fail(f"'{out}' exists already; pass --overwrite to replace it.")
    if not out.parent.is_dir():
        fail(f"The folder '{out.parent}' does not exist.")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        fail(f"The folder '{out.parent}' is not writable.")

    module = enable_addon(args.installed)
    print(f"reconstruct.py: Blender {bpy.app.version_string}, add-on {module}")
    prefs: Any = preferences().addons[module].preferences
    if args.python_env:
        # absolute, not resolved: a venv's python is a symlink to the base interpreter
        prefs.python_path = os.path.abspath(os.path.expanduser(args.python_env))
    if args.data_dir:
        prefs.data_dir = str(Path(args.data_dir).expanduser().resolve())
    if args.device:
        prefs.device = args.device.upper()
    if args.timeout:
        prefs.timeout = args.timeout
    prefs.use_cache = not args.no_cache

    scene = bpy.context.scene
    assert scene is not None
    if not args.keep_scene:
        for old in list(scene.objects):
            bpy.data.objects.remove(old)
    options = {
        "filepath": str(Path(args.photo).expanduser().resolve()),
        "segment": args.segment.upper(),
        "depth": args.depth.upper(),
        "depth_model": args.model_dir or args.depth_model or "",
        "auto_fov": args.fov is None,
        "mesh": args.mesh.upper(),
        "trim": args.open,
        "poisson_depth": args.poisson_depth,
        "target_faces": args.target_faces,
        "smooth": args.smooth,
        "max_size": args.max_size,
        "create_camera": not args.no_camera,
        "vertex_colors_only": args.vertex_colors_only,
    }
    if args.fov is not None:
        options["fov"] = math.radians(args.fov)
    if args.rembg_model:
        options["rembg_model"] = args.rembg_model
    try:
        bpy.ops.img2mesh.reconstruct(**options)  # type: ignore[attr-defined]
    except (RuntimeError, TypeError) as exc:
        # The operator reports its one sentence as "Error: ..."
        fail(str(exc).strip().removeprefix("Error: ").strip())
    view_layer = bpy.context.view_layer
    obj = view_layer.objects.active if view_layer else None
    try:
        # Blender writes "<out>@" and renames it: a failed save leaves no partial file.
        bpy.ops.wm.save_as_mainfile(filepath=str(out))
    except RuntimeError as exc:
        fail(save_error(out, exc))
    data: Any = obj.data if obj is not None else None
    faces = len(data.polygons) if data is not None else 0
    print(f"reconstruct.py: saved {out} ({obj.name if obj else '?'}: {faces:,} faces)")


if __name__ == "__main__":
    main()
