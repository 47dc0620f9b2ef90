"""What a finished run leaves for the add-on: the result ``.npz`` (docs/result-format.md) and an upright copy of an EXIF-rotated photo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..files.atomic import atomic_write
from ..protocol import RESULT_FORMAT


def write_result(result, path: Path) -> Path:
    """The result ``.npz`` as docs/result-format.md lays it out, written atomically."""
    import numpy as np

    mesh, camera = result.mesh, result.camera
    photo = str(Path(result.photo.path).resolve()) if result.photo.path else ""
    upright = upright_copy(Path(photo), path.parent) if photo else None
    arrays = {
        "vertices": mesh.vertices,
        "faces": mesh.faces,
        "colors": mesh.colors,
        "intrinsics": np.array(json.dumps(camera.intrinsics.to_dict())),
        "camera_location": np.asarray(camera.location, dtype=np.float64),
        "camera_rotation": np.asarray(camera.rotation_euler, dtype=np.float64),
        "image_path": np.array(str(upright or photo)),
        "format_version": np.int32(RESULT_FORMAT),
        "fov_source": np.array(camera.source),
    }
    if upright is not None:
        arrays["image_upright_of"] = np.array(photo)
    if mesh.normals is not None:
        arrays["normals"] = mesh.normals
    if mesh.texture is not None:
        arrays["texture_uv"] = mesh.texture.uv
        arrays["texture_png"] = np.frombuffer(mesh.texture.png(), np.uint8)
    return atomic_write(path, lambda f: np.savez(f, **arrays), overwrite=True)


def upright_copy(photo: Path, folder: Path) -> Path | None:
    """An upright copy of a photo whose EXIF says to rotate or mirror it, else None.

    The mesh is made upright, but Blender shows image files as stored, so the camera's
    background gets this copy instead (the add-on packs it into the .blend). A copy
    that cannot be made only costs the background its orientation.
    """
    from PIL import Image, ImageOps  # type: ignore[import-not-found]

    try:
        with Image.open(photo) as img:
            if img.getexif().get(0x0112, 1) in (0, 1):  # 1: stored upright; 0: not set
                return None
            upright = ImageOps.exif_transpose(img)
            alpha = "A" in upright.getbands() or "transparency" in upright.info
            target = folder / ("upright.png" if alpha else "upright.jpg")
            if alpha:
                upright.save(target)
            else:
                upright.convert("RGB").save(target, quality=92)
            return target
    except Exception as exc:  # never worth failing a finished reconstruction for
        print(f"No upright copy of {photo} for the background ({exc}).", file=sys.stderr)
        return None
