"""A worker's result file read and checked against docs/result-format.md before Blender sees it."""

from __future__ import annotations

import json
import logging
import math

import numpy as np

from .errors import ResultError
from .protocol import INTRINSICS_KEYS, RESULT_CAMERA_KEYS, RESULT_FORMAT, RESULT_MESH_KEYS

log = logging.getLogger(__name__)

#: Highest result-file layout this add-on understands (the worker's, from the shared protocol).
RESULT_FORMAT_VERSION = RESULT_FORMAT
#: The camera looks along +Y with Z up when a result gives no rotation.
DEFAULT_ROTATION = (math.pi / 2.0, 0.0, 0.0)


def load_result(path: str) -> dict:
    """Read a worker's result ``.npz`` file into a dict of numpy arrays (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise ResultError(f"The result file {path} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise ResultError(f"The result file {path} cannot be read: {exc}") from exc


def mesh_arrays(vertices, faces, colors, normals):
    """Check and convert the mesh arrays; returns contiguous float32/int32 arrays."""
    verts = float_rows(vertices, "vertices")
    n = len(verts)
    if n == 0:
        raise ResultError("The mesh has no vertices.")
    if not np.isfinite(verts).all():
        raise ResultError("Some vertex positions are not finite numbers (NaN or infinity).")

    tris = np.asarray(faces)
    if tris.size == 0:
        tris = np.zeros((0, 3), dtype=np.int32)
    if tris.ndim != 2 or tris.shape[1] != 3:
        raise ResultError(f"faces must be triangles, an (M, 3) array, not shape {tris.shape}.")
    if tris.dtype.kind not in "iu":
        raise ResultError(f"faces must hold integer vertex indices, not {tris.dtype}.")
    if len(tris):
        lo, hi = int(tris.min()), int(tris.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise ResultError(
                f"A face refers to vertex {bad}, but the mesh has only {n} vertices "
                f"(valid indices are 0 to {n - 1})."
            )
    tris = np.ascontiguousarray(tris, dtype=np.int32)
    # Blender's Mesh.validate() would delete triangles that use a vertex twice; doing it
    # here keeps the mesh valid without paying for validate().
    degenerate = (
        (tris[:, 0] == tris[:, 1]) | (tris[:, 1] == tris[:, 2]) | (tris[:, 0] == tris[:, 2])
    )
    if degenerate.any():
        log.info("Dropped %d triangles that use a vertex twice.", int(degenerate.sum()))
        tris = np.ascontiguousarray(tris[~degenerate])

    cols = np.asarray(colors)
    if cols.ndim != 2 or cols.shape != (n, 3):
        raise ResultError(f"colors must be one RGB row per vertex, ({n}, 3), not {cols.shape}.")
    if cols.dtype == np.uint8:
        cols = cols.astype(np.float32) / np.float32(255.0)
    else:
        cols = np.asarray(cols, dtype=np.float32)
        if not np.isfinite(cols).all():
            raise ResultError("Some vertex colours are not finite numbers (NaN or infinity).")
        if len(cols) and cols.max() > 2.0:  # a little over 1 is interpolation; more is 0-255
            raise ResultError(
                "Vertex colours must be in [0, 1] (or uint8 0-255); these look like 0-255 floats."
            )
        cols = np.clip(cols, 0.0, 1.0)

    if normals is not None:
        nrm = float_rows(normals, "normals")
        if len(nrm) != n:
            raise ResultError(f"normals must have one row per vertex ({n}), not {len(nrm)}.")
        length = np.linalg.norm(nrm, axis=1)
        if not (np.isfinite(length).all() and (length > 1e-12).all()):
            raise ResultError("Some vertex normals are zero or not finite numbers.")
        normals = np.ascontiguousarray(nrm / length[:, None], dtype=np.float32)
    return verts, tris, cols, normals


def float_rows(value, what: str) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ResultError(f"{what} must be an (N, 3) array, not shape {a.shape}.")
    if a.dtype.kind not in "fiu":
        raise ResultError(f"{what} must hold numbers, not {a.dtype}.")
    return np.ascontiguousarray(a, dtype=np.float32)


def text_value(value) -> str:
    """A str stored in an npz file (a 0-d unicode or bytes array) as a Python str."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "US" and value.ndim == 0:
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise ResultError(f"Expected a text value, got {type(value).__name__}.")
    return value


def parse_intrinsics(value) -> dict:
    """fx, fy, cx, cy (floats) and width, height (ints) from a dict, JSON text or 6 numbers."""
    if isinstance(value, (str, bytes)) or (
        isinstance(value, np.ndarray) and value.dtype.kind in "US"
    ):
        try:
            value = json.loads(text_value(value))
        except json.JSONDecodeError as exc:
            raise ResultError(f"The camera intrinsics are not valid JSON: {exc}") from exc
    if isinstance(value, dict):
        missing = [k for k in INTRINSICS_KEYS if k not in value]
        if missing:
            raise ResultError(f"The camera intrinsics lack {', '.join(missing)}.")
        numbers = [value[k] for k in INTRINSICS_KEYS]
    else:
        numbers = list(np.asarray(value, dtype=np.float64).ravel())
        if len(numbers) != 6:
            raise ResultError(
                "The camera intrinsics must be [fx, fy, cx, cy, width, height], "
                f"not {len(numbers)} numbers."
            )
    try:
        fx, fy, cx, cy, width, height = (float(x) for x in numbers)
    except (TypeError, ValueError) as exc:
        raise ResultError(f"The camera intrinsics must be numbers: {exc}") from exc
    if not all(math.isfinite(x) for x in (fx, fy, cx, cy, width, height)):
        raise ResultError("The camera intrinsics contain a value that is not a finite number.")
    if fx <= 0 or fy <= 0:
        raise ResultError(f"The focal lengths must be positive, not fx={fx:g}, fy={fy:g}.")
    if width < 1 or height < 1 or width != round(width) or height != round(height):
        raise ResultError(f"The image size must be whole pixels, not {width:g} x {height:g}.")
    return {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "width": int(width), "height": int(height)}


def vector3(value, what: str) -> tuple[float, float, float]:
    a = np.asarray(value, dtype=np.float64).ravel()
    if a.shape != (3,) or not np.isfinite(a).all():
        raise ResultError(f"{what} must be three finite numbers, not {value!r}.")
    return (float(a[0]), float(a[1]), float(a[2]))


def parse_result(result, *, need_camera: bool) -> dict:
    """Check a result dict against the documented layout before anything is created."""
    if not hasattr(result, "keys"):
        raise ResultError("A result must be a mapping of names to arrays (an .npz file).")
    version = int(np.asarray(result["format_version"])) if "format_version" in result else 1
    if version > RESULT_FORMAT_VERSION:
        raise ResultError(
            f"The result file has layout version {version}; this add-on reads up to "
            f"{RESULT_FORMAT_VERSION}. Update the add-on."
        )
    missing = [k for k in RESULT_MESH_KEYS if k not in result]
    if need_camera:
        missing += [k for k in RESULT_CAMERA_KEYS if k not in result]
    if missing:
        raise ResultError(f"The result lacks {', '.join(missing)}.")
    verts, tris, cols, nrm = mesh_arrays(
        result["vertices"], result["faces"], result["colors"], result.get("normals")
    )
    parsed = {"vertices": verts, "faces": tris, "colors": cols, "normals": nrm}
    if need_camera:
        parsed["intrinsics"] = parse_intrinsics(result["intrinsics"])
        parsed["camera_location"] = vector3(result["camera_location"], "camera_location")
        rotation = result.get("camera_rotation", DEFAULT_ROTATION)
        parsed["camera_rotation"] = vector3(rotation, "camera_rotation")
        path = result.get("image_path")
        parsed["image_path"] = text_value(path) if path is not None else ""
    if "texture_png" in result or "texture_uv" in result:
        if "texture_png" not in result or "texture_uv" not in result:
            raise ResultError("A result with a texture needs both texture_uv and texture_png.")
        parsed["texture_uv"], parsed["texture_png"] = texture_arrays(
            result["texture_uv"], result["texture_png"], len(tris)
        )
    return parsed


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def texture_arrays(uv, png, n_faces: int) -> tuple[np.ndarray, bytes]:
    """Check the photo texture: (M, 3, 2) finite UVs, one per face corner, and PNG bytes."""
    uv_arr = np.asarray(uv)
    if uv_arr.shape != (n_faces, 3, 2) or not np.issubdtype(uv_arr.dtype, np.number):
        raise ResultError(
            f"texture_uv must be one (u, v) per face corner, ({n_faces}, 3, 2), not {uv_arr.shape}."
        )
    uv_arr = uv_arr.astype(np.float32)
    if not np.isfinite(uv_arr).all():
        raise ResultError("texture_uv holds NaN or infinite values.")
    data = png if isinstance(png, bytes) else np.asarray(png, dtype=np.uint8).tobytes()
    if not data.startswith(_PNG_MAGIC):
        raise ResultError("texture_png must be the bytes of a PNG image.")
    return uv_arr, data
