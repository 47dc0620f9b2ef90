"""Write and read meshes as PLY, OBJ and GLB, atomically and never over a file by accident."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import struct
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import InputError, OutputError
from .mesh import Mesh
from .protocol import srgb_to_linear

#: Extensions :func:`write_mesh` and :func:`read_mesh` understand.
MESH_FORMATS = (".ply", ".obj", ".glb")

# errno values that mean "this folder does not let you write", as opposed to "it is full".
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def write_mesh(mesh: Mesh, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``mesh`` to ``path``; the extension (.ply, .obj, .glb) picks the format.

    Coordinates are written as given (the project's frame: Z up, camera looking
    along +Y). Returns the path written. Raises :class:`OutputError` for anything
    the user can fix: unsupported extension, missing or read-only folder, full
    disk, or an existing file without ``overwrite``.
    """
    path = Path(path)
    writer = _WRITERS.get(path.suffix.lower())
    if writer is None:
        raise OutputError(
            f"Cannot write {path}: '{path.suffix or path.name}' is not a supported mesh format; "
            f"use {_format_list(MESH_FORMATS)}."
        )
    _check_mesh(mesh, path)
    if mesh.texture is not None and path.suffix.lower() == ".obj":
        return _write_textured_obj(mesh, path, overwrite)
    return atomic_write(path, lambda f: writer(mesh, f), overwrite=overwrite)


def companion_files(path: str | os.PathLike, textured: bool) -> list[Path]:
    """The files :func:`write_mesh` writes beside ``path``: a textured OBJ's .mtl and image."""
    path = Path(path)
    if not textured or path.suffix.lower() != ".obj":
        return []
    return [path.with_suffix(".mtl"), texture_path(path)]


def texture_path(path: str | os.PathLike) -> Path:
    """Where a textured OBJ's image goes: ``NAME.texture.png`` (``NAME.png`` is often the photo)."""
    path = Path(path)
    return path.with_name(path.stem + ".texture.png")


def atomic_write_all(
    items: list[tuple[Path, Callable[[BinaryIO], None]]], *, overwrite: bool = False
) -> list[Path]:
    """:func:`atomic_write` for files that belong together: all of them appear, or none.

    Every target is checked first; each is written to a temporary file; only then are
    they moved into place. If a move fails, the ones already moved are removed again.
    """
    for path, _ in items:
        check_target(path, overwrite=overwrite)
    staged: list[tuple[str, Path]] = []
    placed: list[Path] = []
    try:
        for path, write in items:
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp_name, path))
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp_name, 0o666 & ~_umask())
        for _tmp, path in staged:
            if not overwrite and path.exists():
                raise OutputError(f"{path} exists; pass --overwrite to replace it.")
        for tmp_name, path in staged:
            os.replace(tmp_name, path)
            placed.append(path)
    except OSError as exc:
        for path in placed:
            with contextlib.suppress(OSError):
                path.unlink()
        raise _output_error(
            exc, items[len(placed)][0] if len(placed) < len(items) else items[0][0]
        ) from exc
    except BaseException:
        for path in placed:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    finally:
        for tmp_name, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    return [path for path, _ in items]


def read_mesh(path: str | os.PathLike) -> Mesh:
    """Read a mesh written by :func:`write_mesh` (or a similar PLY, OBJ or GLB file).

    Coordinates come back as stored, colours as sRGB in [0, 1] (GLB's linear
    COLOR_0 is converted back); meshes without colours get mid grey.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in MESH_FORMATS:
        raise InputError(
            f"Cannot read {path}: '{path.suffix or path.name}' is not a supported mesh format; "
            f"use {_format_list(MESH_FORMATS)}."
        )
    if not path.is_file():
        raise InputError(f"Cannot read {path}: the file does not exist.")
    if ext == ".glb":
        return _read_glb(path)
    if ext == ".obj":
        return _read_obj(path)
    return _read_ply(path)


def atomic_write(
    path: str | os.PathLike, write: Callable[[BinaryIO], None], *, overwrite: bool = False
) -> Path:
    """Call ``write`` on a temporary file next to ``path``, then move it into place.

    Either the whole file appears at ``path`` or nothing changes: on any failure
    the temporary file is removed and the error is re-raised (OS errors the user
    can fix become :class:`OutputError`).
    """
    path = check_target(path, overwrite=overwrite)
    folder = path.parent
    tmp_name = None
    try:
        # Same folder as the target so os.replace is a rename on one file system.
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file 0600; give it the mode a normal open() would.
        os.chmod(tmp_name, 0o666 & ~_umask())
        if not overwrite and path.exists():
            # Another process created it while we were writing.
            raise OutputError(f"{path} exists; pass --overwrite to replace it.")
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise _output_error(exc, path) from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    return path


def check_target(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Raise :class:`OutputError` now if ``path`` cannot be written, before any slow work."""
    path = Path(path)
    folder = path.parent
    try:
        os.stat(folder)
    except FileNotFoundError:
        raise OutputError(f"Cannot write {path}: the folder {folder} does not exist.") from None
    except OSError as exc:  # e.g. a parent folder the user may not enter
        raise _output_error(exc, path) from None
    if not folder.exists():
        raise OutputError(f"Cannot write {path}: the folder {folder} does not exist.")
    if not folder.is_dir():
        raise OutputError(f"Cannot write {path}: {folder} is not a folder.")
    if path.is_dir():
        raise OutputError(f"Cannot write {path}: it is a folder.")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it.")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"Cannot write {path}: the folder {folder} is not writable.")
    return path


def _output_error(exc: OSError, path: Path) -> OutputError:
    if exc.errno in _DISK_FULL:
        return OutputError(f"Cannot write {path}: the disk is full.")
    if exc.errno in _NOT_WRITABLE or isinstance(exc, PermissionError):
        return OutputError(f"Cannot write {path}: the folder {path.parent} is not writable.")
    return OutputError(f"Cannot write {path}: {exc.strerror or exc}.")


def _umask() -> int:
    # os.umask can only be read by setting it; /proc avoids that race on Linux.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _format_list(exts: tuple[str, ...]) -> str:
    return ", ".join(exts[:-1]) + " or " + exts[-1]


def _check_mesh(mesh: Mesh, path: Path) -> None:
    if mesh.n_vertices == 0 or mesh.n_faces == 0:
        raise OutputError(f"Cannot write {path}: the mesh is empty.")
    # Shape mismatches and bad indices are bugs in the caller, not user errors.
    if mesh.colors.shape != mesh.vertices.shape:
        raise ValueError(f"colors {mesh.colors.shape} do not match vertices {mesh.vertices.shape}")
    if mesh.normals is not None and mesh.normals.shape != mesh.vertices.shape:
        raise ValueError(
            f"normals {mesh.normals.shape} do not match vertices {mesh.vertices.shape}"
        )
    if mesh.faces.min() < 0 or mesh.faces.max() >= mesh.n_vertices:
        raise ValueError("face indices out of range")
    if mesh.texture is not None and mesh.texture.uv.shape != (mesh.n_faces, 3, 2):
        raise ValueError(f"texture UVs {mesh.texture.uv.shape} do not match {mesh.n_faces} faces")
    if not np.isfinite(mesh.vertices).all():
        raise ValueError("the mesh has NaN or infinite vertex coordinates")


def _colors_u8(colors: np.ndarray) -> np.ndarray:
    return np.round(np.clip(colors, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------- PLY


def _write_ply(mesh: Mesh, f: BinaryIO) -> None:
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


# --------------------------------------------------------------------------- OBJ


def _write_obj(mesh: Mesh, f: BinaryIO) -> None:
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


def _write_textured_obj(mesh: Mesh, path: Path, overwrite: bool) -> Path:
    """OBJ + MTL + PNG: vertices keep their colours; ``vt`` rows carry the texture's UVs."""
    texture = mesh.texture
    mtl, image = companion_files(path, True)
    _, uv, faces = texture.split(mesh.faces)
    # OBJ indexes UVs separately, so vertices need no splitting: corner -> vt row
    corner_vt = faces.astype(np.int64) + 1

    def write_obj(f: BinaryIO) -> None:
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
    atomic_write_all(
        [(path, write_obj), (mtl, lambda f: f.write(material)), (image, lambda f: f.write(png))],
        overwrite=overwrite,
    )
    return path


def _write_rows(f: BinaryIO, row_format: str, rows: np.ndarray, block: int = 65536) -> None:
    for start in range(0, len(rows), block):
        chunk = rows[start : start + block]
        f.write(((row_format * len(chunk)) % tuple(chunk.ravel().tolist())).encode("ascii"))


# --------------------------------------------------------------------------- GLB

_GLB_MAGIC = 0x46546C67  # "glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942
_FLOAT, _UBYTE, _USHORT, _UINT = 5126, 5121, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_COMPONENT_DTYPES = {
    5120: "<i1",
    _UBYTE: "<u1",
    5122: "<i2",
    _USHORT: "<u2",
    _UINT: "<u4",
    _FLOAT: "<f4",
}
_TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}

# glTF is Y up with the front facing +Z; this node rotation (-90 deg about X) maps our
# Z-up, camera-along-+Y frame onto it, so viewers show the object upright while the
# stored vertices stay in the project frame. Blender's importer undoes both exactly.
_NODE_ROTATION = [-(0.5**0.5), 0.0, 0.0, 0.5**0.5]


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] to sRGB-encoded values (IEC 61966-2-1)."""
    c = np.clip(np.asarray(c, dtype=np.float32), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055).astype(np.float32)


def _write_glb(mesh: Mesh, f: BinaryIO) -> None:
    texture = mesh.texture
    if texture is not None:
        # one glTF vertex per (vertex, UV) pair
        source, uv, faces = texture.split(mesh.faces)
        mesh = Mesh(
            mesh.vertices[source],
            faces,
            mesh.colors[source],
            None if mesh.normals is None else mesh.normals[source],
        )
    blobs: list[np.ndarray] = []
    buffer_views: list[dict] = []
    accessors: list[dict] = []
    offset = 0

    def add(data: np.ndarray, gl_type: str, component: int, target: int, minmax: bool) -> int:
        nonlocal offset
        data = np.ascontiguousarray(data)
        buffer_views.append(
            {"buffer": 0, "byteOffset": offset, "byteLength": data.nbytes, "target": target}
        )
        accessor = {
            "bufferView": len(buffer_views) - 1,
            "componentType": component,
            "count": int(data.size // _TYPE_SIZES[gl_type]),
            "type": gl_type,
        }
        if minmax:
            flat = data.reshape(-1, _TYPE_SIZES[gl_type])
            accessor["min"] = [float(x) for x in flat.min(axis=0)]
            accessor["max"] = [float(x) for x in flat.max(axis=0)]
        accessors.append(accessor)
        blobs.append(data)
        # All our components are 4 bytes, so every view stays 4-byte aligned.
        offset += data.nbytes
        return len(accessors) - 1

    def add_bytes(data: bytes) -> int:
        nonlocal offset
        blob = np.frombuffer(data + b"\0" * (-len(data) % 4), np.uint8)
        buffer_views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data)})
        blobs.append(blob)
        offset += blob.nbytes
        return len(buffer_views) - 1

    attributes = {"POSITION": add(mesh.vertices, "VEC3", _FLOAT, _ARRAY_BUFFER, True)}
    if mesh.normals is not None:
        attributes["NORMAL"] = add(_unit(mesh.normals), "VEC3", _FLOAT, _ARRAY_BUFFER, False)
    # glTF multiplies the base colour by COLOR_0: with a texture, the vertex colours would
    # darken it in every viewer, so they travel as the application attribute _COLOR_0.
    color_key = "COLOR_0" if texture is None else "_COLOR_0"
    attributes[color_key] = add(srgb_to_linear(mesh.colors), "VEC3", _FLOAT, _ARRAY_BUFFER, False)
    if texture is not None:
        attributes["TEXCOORD_0"] = add(uv, "VEC2", _FLOAT, _ARRAY_BUFFER, False)
    indices = add(mesh.faces.astype("<u4").ravel(), "SCALAR", _UINT, _ELEMENT_ARRAY_BUFFER, True)
    material = {
        "name": "vertex colours",
        "pbrMetallicRoughness": {
            "baseColorFactor": [1.0, 1.0, 1.0, 1.0],
            "metallicFactor": 0.0,
            "roughnessFactor": 0.8,
        },
        # Open (single-surface) reconstructions are seen from behind too.
        "doubleSided": True,
    }
    extra: dict = {}
    if texture is not None:
        image_view = add_bytes(texture.png())
        material["name"] = "photo texture"
        material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": 0, "texCoord": 0}
        extra = {
            "images": [{"bufferView": image_view, "mimeType": "image/png", "name": "texture"}],
            # linear filtering, clamped at the edges (the atlas has no repeating pattern)
            "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}],
            "textures": [{"source": 0, "sampler": 0}],
        }

    doc = {
        "asset": {"version": "2.0", "generator": "img2mesh"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "img2mesh", "rotation": _NODE_ROTATION}],
        "meshes": [
            {
                "name": "img2mesh",
                "primitives": [
                    {"attributes": attributes, "indices": indices, "material": 0, "mode": 4}
                ],
            }
        ],
        # White base colour times COLOR_0 (or the texture): viewers show the colours unchanged.
        "materials": [material],
        **extra,
        "accessors": accessors,
        "bufferViews": buffer_views,
        "buffers": [{"byteLength": offset}],
    }
    json_bytes = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    json_bytes += b" " * (-len(json_bytes) % 4)
    bin_pad = -offset % 4
    total = 12 + 8 + len(json_bytes) + 8 + offset + bin_pad
    f.write(struct.pack("<III", _GLB_MAGIC, 2, total))
    f.write(struct.pack("<II", len(json_bytes), _CHUNK_JSON))
    f.write(json_bytes)
    f.write(struct.pack("<II", offset + bin_pad, _CHUNK_BIN))
    for blob in blobs:
        f.write(blob.data)
    f.write(b"\0" * bin_pad)


def _unit(normals: np.ndarray) -> np.ndarray:
    # glTF requires unit normals; a zero normal gets +Z rather than NaN.
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    out = np.where(length > 1e-12, normals / np.maximum(length, 1e-12), [0.0, 0.0, 1.0])
    return out.astype("<f4")


def _read_glb(path: Path) -> Mesh:
    try:
        return _parse_glb(path.read_bytes(), path)
    except (KeyError, IndexError, TypeError, ValueError, struct.error):
        # ValueError covers bad JSON, bad UTF-8 and buffers too short for their accessors.
        raise InputError(f"Cannot read {path}: it is not a valid GLB file.") from None


def _parse_glb(data: bytes, path: Path) -> Mesh:
    bad = ValueError("not a GLB file")
    if len(data) < 20:
        raise bad
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != _GLB_MAGIC or version != 2 or length > len(data):
        raise bad
    doc, binary, pos = None, b"", 12
    while pos + 8 <= length:
        chunk_len, chunk_type = struct.unpack_from("<II", data, pos)
        chunk = data[pos + 8 : pos + 8 + chunk_len]
        if chunk_type == _CHUNK_JSON:
            doc = json.loads(chunk)
        elif chunk_type == _CHUNK_BIN:
            binary = chunk
        pos += 8 + chunk_len
    if doc is None or not doc.get("meshes"):
        raise bad

    def accessor(index: int) -> np.ndarray:
        acc = doc["accessors"][index]
        if "sparse" in acc or "bufferView" not in acc:
            raise InputError(f"Cannot read {path}: sparse glTF accessors are not supported.")
        view = doc["bufferViews"][acc["bufferView"]]
        if view.get("buffer", 0) != 0 or "uri" in doc["buffers"][0]:
            raise InputError(f"Cannot read {path}: external glTF buffers are not supported.")
        dtype = np.dtype(_COMPONENT_DTYPES[acc["componentType"]])
        width = _TYPE_SIZES[acc["type"]]
        count = acc["count"]
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        stride = view.get("byteStride", 0) or dtype.itemsize * width
        rows = np.ndarray(
            (count, width),
            dtype=dtype,
            buffer=binary,
            offset=start,
            strides=(stride, dtype.itemsize),
        ).copy()
        if acc.get("normalized"):
            rows = rows.astype(np.float32) / np.iinfo(dtype).max
        return rows

    vertices, faces, colors, normals = [], [], [], []
    base = 0
    for prim in doc["meshes"][0]["primitives"]:
        if prim.get("mode", 4) != 4:
            continue  # only triangle lists make faces
        attrs = prim["attributes"]
        v = accessor(attrs["POSITION"]).astype(np.float32)
        idx = accessor(prim["indices"]).ravel() if "indices" in prim else np.arange(len(v))
        vertices.append(v)
        faces.append(idx.reshape(-1, 3).astype(np.int64) + base)
        color = attrs.get("COLOR_0", attrs.get("_COLOR_0"))
        if color is not None:
            colors.append(linear_to_srgb(accessor(color)[:, :3]))
        else:
            colors.append(np.full((len(v), 3), 0.5, np.float32))
        normals.append(accessor(attrs["NORMAL"]) if "NORMAL" in attrs else None)
        base += len(v)
    if not vertices:
        raise InputError(f"Cannot read {path}: it holds no triangles.")
    has_normals = all(n is not None for n in normals)
    return Mesh(
        np.concatenate(vertices),
        np.concatenate(faces),
        np.concatenate(colors),
        np.concatenate(normals) if has_normals else None,
    )


# --------------------------------------------------------------------------- readers


def _read_ply(path: Path) -> Mesh:
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


def _read_obj(path: Path) -> Mesh:
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


_WRITERS = {".ply": _write_ply, ".obj": _write_obj, ".glb": _write_glb}
