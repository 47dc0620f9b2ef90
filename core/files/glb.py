"""Binary glTF (GLB): one mesh, its vertex colours and its photo texture, upright in every viewer."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputError
from ..geometry.mesh import Mesh
from ..protocol import srgb_to_linear

_GLB_MAGIC = 0x46546C67  # "glTF"


_CHUNK_JSON = 0x4E4F534A


_CHUNK_BIN = 0x004E4942


_FLOAT, _UBYTE, _USHORT, _UINT = 5126, 5121, 5123, 5125


_COMPONENT_DTYPES = {
    5120: "<i1",
    _UBYTE: "<u1",
    5122: "<i2",
    _USHORT: "<u2",
    _UINT: "<u4",
    _FLOAT: "<f4",
}


_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


_TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


# glTF is Y up with the front facing +Z; this node rotation (-90 deg about X) maps our
# Z-up, camera-along-+Y frame onto it, so viewers show the object upright while the
# stored vertices stay in the project frame. Blender's importer undoes both exactly.
_NODE_ROTATION = [-(0.5**0.5), 0.0, 0.0, 0.5**0.5]


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] to sRGB-encoded values (IEC 61966-2-1)."""
    c = np.clip(np.asarray(c, dtype=np.float32), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055).astype(np.float32)


def write_glb(mesh: Mesh, f: BinaryIO) -> None:
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


def read_glb(path: Path) -> Mesh:
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
