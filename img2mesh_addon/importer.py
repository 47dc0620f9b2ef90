"""Brings a reconstruction result (coloured mesh and the photo's camera) into the Blender scene."""

from __future__ import annotations

import json
import logging
import math
import os

import bpy
import numpy as np

log = logging.getLogger(__name__)

#: Name of the point-domain colour attribute that holds the photo's colours.
COLOR_ATTRIBUTE = "Color"
#: Base name of the material that shows that attribute (Blender adds .001, ... on clashes).
MATERIAL_NAME = "Img2Mesh Vertex Colour"
#: Name of the UV map that places the photo texture, and of the texture's material.
UV_MAP = "UVMap"
TEXTURE_MATERIAL_NAME = "Img2Mesh Photo Texture"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Highest result-file layout this importer understands (docs/result-format.md).
RESULT_FORMAT_VERSION = 1
#: The camera's sensor is 36 mm across the photo's longer side, so the lens reads as a
#: full-frame (35 mm equivalent) focal length.
SENSOR_MM = 36.0

_BLENDER = bpy.app.version
_DEFAULT_ROTATION = (math.pi / 2.0, 0.0, 0.0)
_INTRINSICS_KEYS = ("fx", "fy", "cx", "cy", "width", "height")
_DATA_BY_ID_TYPE = {
    "OBJECT": "objects",
    "MESH": "meshes",
    "MATERIAL": "materials",
    "CAMERA": "cameras",
    "IMAGE": "images",
}


class ResultError(ValueError):
    """A result that cannot be imported; the message is a sentence for the user."""


# --------------------------------------------------------------------------- public API


def import_mesh(
    name: str,
    vertices,
    faces,
    colors,
    *,
    collection: bpy.types.Collection | None = None,
    normals=None,
    validate: bool = False,
) -> bpy.types.Object:
    """Add a smooth-shaded mesh object coloured by the photo, made active and the only selection.

    vertices: (N, 3) float; faces: (M, 3) integer indices into vertices; colors: (N, 3)
    sRGB in [0, 1] (floats) or 0-255 (uint8); normals: optional (N, 3) vertex normals,
    applied as custom normals. The object goes into ``collection`` (default: the active
    collection). The inputs are checked with numpy first (shapes, finite values, index
    range; triangles that repeat a vertex are dropped), so the mesh is valid by
    construction; ``validate=True`` also runs Blender's ``Mesh.validate()``, which costs
    about a second per million triangles. On any error nothing is left behind.
    """
    arrays = _mesh_arrays(vertices, faces, colors, normals)
    view_layer = bpy.context.view_layer
    if collection is None:
        collection = _active_collection(bpy.context)
    created: list[bpy.types.ID] = []
    try:
        obj = _build_mesh_object(name, *arrays, collection, created, validate=validate)
    except BaseException:
        _remove(created)
        raise
    _select_only(view_layer, obj)
    return obj


def create_camera(
    name: str,
    intrinsics,
    location,
    rotation_euler=_DEFAULT_ROTATION,
    *,
    image_path: str | None = None,
    collection: bpy.types.Collection | None = None,
    clip_range: tuple[float, float] | None = None,
    set_render: bool = True,
) -> bpy.types.Object:
    """Add a camera that sees exactly what the photo shows.

    intrinsics: dict with fx, fy, cx, cy (pixels, OpenCV convention: pixel centres at
    integers) and width, height; a JSON string of it or a sequence in that order also
    works. Lens and sensor give the photo's horizontal and vertical field of view, lens
    shift its principal point, pixel aspect any fx != fy. ``image_path`` (optional) is
    shown as the camera's background image. With ``set_render`` (the default, as the
    fSpy importer does) the camera becomes the scene camera and the render resolution
    becomes the photo's size, so the camera view lines up with the photo; without it the
    scene is left alone and the view lines up once the resolution has the photo's aspect.
    """
    intr = _parse_intrinsics(intrinsics)
    if collection is None:
        collection = _active_collection(bpy.context)
    created: list[bpy.types.ID] = []
    try:
        image = _load_image(image_path, created) if image_path else None
        cam = _build_camera(
            name, intr, location, rotation_euler, image, clip_range, collection, created
        )
    except BaseException:
        _remove(created)
        raise
    if set_render:
        _use_as_scene_camera(bpy.context.scene, cam, intr)
    return cam


def import_result(
    context: bpy.types.Context,
    result,
    *,
    name: str,
    create_camera: bool = True,
    texture: bool = True,
) -> tuple[bpy.types.Object, bpy.types.Object | None]:
    """Import a worker result (the dict of arrays from its ``.npz`` file) into the scene.

    Layout (docs/result-format.md; every array as ``np.savez`` writes it):

    - ``vertices`` float32 (N, 3), output frame of core/mesh.py (Z up, camera along +Y)
    - ``faces`` int32 (M, 3), indices into vertices
    - ``colors`` float32 (N, 3), sRGB in [0, 1] (the photo's own values, not linear)
    - ``normals`` optional float32 (N, 3), unit vertex normals
    - ``intrinsics`` str (0-d array): JSON object with fx, fy, cx, cy, width, height
      (``Intrinsics.to_dict()``); or float64 (6,) in that order
    - ``camera_location`` float64 (3,), ``camera_rotation`` float64 (3,): Blender
      location and XYZ Euler rotation (radians) of the photo's camera, normally (pi/2, 0, 0)
    - ``image_path`` optional str (0-d array): absolute path of the photo, or ""
    - ``texture_uv`` optional float32 (M, 3, 2), ``texture_png`` optional uint8 (K,): the
      photo texture (see :func:`add_texture`); used unless ``texture`` is False
    - ``format_version`` optional int (0-d array), 1

    Adds the mesh object (active, the only selection) and, with ``create_camera``, the
    photo's camera (scene camera, render resolution set to the photo's size, photo as
    background image; a photo that cannot be read is skipped with a warning). All or
    nothing: if anything fails, whatever was created is removed and the error re-raised.
    Returns (mesh object, camera object or None).
    """
    parsed = _parse_result(result, need_camera=create_camera)
    collection = _active_collection(context)
    created: list[bpy.types.ID] = []
    cam = None
    try:
        obj = _build_mesh_object(
            name,
            parsed["vertices"],
            parsed["faces"],
            parsed["colors"],
            parsed["normals"],
            collection,
            created,
        )
        if texture and parsed.get("texture_png") is not None:
            _add_texture(obj, parsed["texture_uv"], parsed["texture_png"], created)
        if create_camera:
            image = _try_load_image(parsed["image_path"], created)
            clip = _clip_range(parsed["vertices"], parsed["camera_location"])
            cam = _build_camera(
                f"{obj.name} Camera",
                parsed["intrinsics"],
                parsed["camera_location"],
                parsed["camera_rotation"],
                image,
                clip,
                collection,
                created,
            )
    except BaseException:
        _remove(created)
        raise
    # Scene state changes last: they cannot fail, so there is nothing to undo on error.
    if cam is not None:
        _use_as_scene_camera(context.scene, cam, parsed["intrinsics"])
    _select_only(context.view_layer, obj)
    return obj, cam


def add_texture(obj: bpy.types.Object, uv, png: bytes) -> bpy.types.Image:
    """Give ``obj`` (made by :func:`import_mesh` or :func:`import_result`) the photo texture.

    uv: (M, 3, 2) float, one row per face corner in the order of the mesh's faces, (0, 0)
    the image's top-left corner and v downwards (glTF's convention, as the core writes
    it); png: the texture as PNG bytes. Adds the UV map ``UVMap`` and an Image Texture
    node feeding the Principled BSDF's Base Color; the colour attribute and its node stay
    (unlinked), so switching back is one link. The image is packed into the .blend: it
    is made by the reconstruction, not a file of the user's, and a packed image travels
    with the .blend (saved beside it, it would be lost when only the .blend is copied,
    and a .blend not yet saved has no "beside"). All or nothing, like the import.
    """
    uv_arr, data = _texture_arrays(uv, png, len(obj.data.polygons))
    created: list[bpy.types.ID] = []
    try:
        return _add_texture(obj, uv_arr, data, created)
    except BaseException:
        _remove(created)
        raise


def _add_texture(obj, uv: np.ndarray, png: bytes, created) -> bpy.types.Image:
    mesh = obj.data
    image = bpy.data.images.new(f"{obj.name} Texture", 1, 1)
    created.append(image)
    image.pack(data=png, data_len=len(png))
    image.source = "FILE"
    image.filepath_raw = f"//{bpy.path.clean_name(obj.name)}.texture.png"
    image.colorspace_settings.name = "sRGB"
    if tuple(image.size) == (0, 0):
        raise ResultError("The result's texture is not a readable PNG image.")
    layer = mesh.uv_layers.new(name=UV_MAP)
    if layer is None:
        raise ResultError("The mesh cannot take another UV map.")
    flat = np.empty((len(uv) * 3, 2), np.float32)
    flat[:, 0] = uv[:, :, 0].ravel()
    flat[:, 1] = 1.0 - uv[:, :, 1].ravel()  # Blender's v runs upwards
    layer.data.foreach_set("uv", flat.ravel())
    mesh.uv_layers.active = layer
    material = mesh.materials[0] if len(mesh.materials) else None
    if material is None:
        material = bpy.data.materials.new(TEXTURE_MATERIAL_NAME)
        created.append(material)
        material.use_nodes = True
        mesh.materials.append(material)
    else:
        material.name = TEXTURE_MATERIAL_NAME
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next((node for node in nodes if node.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    node = nodes.new("ShaderNodeTexImage")
    node.image = image
    node.interpolation = "Linear"
    node.extension = "EXTEND"  # the atlas does not repeat
    node.location = (bsdf.location.x - 320.0, bsdf.location.y + 200.0)
    uv_node = nodes.new("ShaderNodeUVMap")
    uv_node.uv_map = layer.name
    uv_node.location = (node.location.x - 220.0, node.location.y - 60.0)
    links.new(uv_node.outputs["UV"], node.inputs["Vector"])
    for link in list(bsdf.inputs["Base Color"].links):
        links.remove(link)
    links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    nodes.active = node  # Solid view's "Texture" colour shows the active image node
    return image


def load_result(path: str) -> dict:
    """Read a worker's result ``.npz`` file into a dict of numpy arrays (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise ResultError(f"The result file {path} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise ResultError(f"The result file {path} cannot be read: {exc}") from exc


# ----------------------------------------------------------------------- input checks


def _texture_arrays(uv, png, n_faces: int) -> tuple[np.ndarray, bytes]:
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


def _mesh_arrays(vertices, faces, colors, normals):
    """Check and convert the mesh arrays; returns contiguous float32/int32 arrays."""
    verts = _float_rows(vertices, "vertices")
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
        nrm = _float_rows(normals, "normals")
        if len(nrm) != n:
            raise ResultError(f"normals must have one row per vertex ({n}), not {len(nrm)}.")
        length = np.linalg.norm(nrm, axis=1)
        if not (np.isfinite(length).all() and (length > 1e-12).all()):
            raise ResultError("Some vertex normals are zero or not finite numbers.")
        normals = np.ascontiguousarray(nrm / length[:, None], dtype=np.float32)
    return verts, tris, cols, normals


def _float_rows(value, what: str) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ResultError(f"{what} must be an (N, 3) array, not shape {a.shape}.")
    if a.dtype.kind not in "fiu":
        raise ResultError(f"{what} must hold numbers, not {a.dtype}.")
    return np.ascontiguousarray(a, dtype=np.float32)


def _text(value) -> str:
    """A str stored in an npz file (a 0-d unicode or bytes array) as a Python str."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "US" and value.ndim == 0:
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise ResultError(f"Expected a text value, got {type(value).__name__}.")
    return value


def _parse_intrinsics(value) -> dict:
    """fx, fy, cx, cy (floats) and width, height (ints) from a dict, JSON text or 6 numbers."""
    if isinstance(value, (str, bytes)) or (
        isinstance(value, np.ndarray) and value.dtype.kind in "US"
    ):
        try:
            value = json.loads(_text(value))
        except json.JSONDecodeError as exc:
            raise ResultError(f"The camera intrinsics are not valid JSON: {exc}") from exc
    if isinstance(value, dict):
        missing = [k for k in _INTRINSICS_KEYS if k not in value]
        if missing:
            raise ResultError(f"The camera intrinsics lack {', '.join(missing)}.")
        numbers = [value[k] for k in _INTRINSICS_KEYS]
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


def _vector3(value, what: str) -> tuple[float, float, float]:
    a = np.asarray(value, dtype=np.float64).ravel()
    if a.shape != (3,) or not np.isfinite(a).all():
        raise ResultError(f"{what} must be three finite numbers, not {value!r}.")
    return (float(a[0]), float(a[1]), float(a[2]))


def _parse_result(result, *, need_camera: bool) -> dict:
    """Check a result dict against the documented layout before anything is created."""
    if not hasattr(result, "keys"):
        raise ResultError("A result must be a mapping of names to arrays (an .npz file).")
    version = int(np.asarray(result["format_version"])) if "format_version" in result else 1
    if version > RESULT_FORMAT_VERSION:
        raise ResultError(
            f"The result file has layout version {version}; this add-on reads up to "
            f"{RESULT_FORMAT_VERSION}. Update the add-on."
        )
    missing = [k for k in ("vertices", "faces", "colors") if k not in result]
    if need_camera:
        missing += [k for k in ("intrinsics", "camera_location") if k not in result]
    if missing:
        raise ResultError(f"The result lacks {', '.join(missing)}.")
    verts, tris, cols, nrm = _mesh_arrays(
        result["vertices"], result["faces"], result["colors"], result.get("normals")
    )
    parsed = {"vertices": verts, "faces": tris, "colors": cols, "normals": nrm}
    if "texture_png" in result or "texture_uv" in result:
        if "texture_png" not in result or "texture_uv" not in result:
            raise ResultError("A result with a texture needs both texture_uv and texture_png.")
        parsed["texture_uv"], parsed["texture_png"] = _texture_arrays(
            result["texture_uv"], result["texture_png"], len(tris)
        )
    if need_camera:
        parsed["intrinsics"] = _parse_intrinsics(result["intrinsics"])
        parsed["camera_location"] = _vector3(result["camera_location"], "camera_location")
        rotation = result.get("camera_rotation", _DEFAULT_ROTATION)
        parsed["camera_rotation"] = _vector3(rotation, "camera_rotation")
        path = result.get("image_path")
        parsed["image_path"] = _text(path) if path is not None else ""
    return parsed


# ------------------------------------------------------------------------- building


def _build_mesh_object(name, verts, tris, cols, normals, collection, created, *, validate=False):
    n, m = len(verts), len(tris)
    mesh = bpy.data.meshes.new(name)
    created.append(mesh)
    mesh.vertices.add(n)
    mesh.loops.add(3 * m)
    mesh.polygons.add(m)
    # Blender 3.5+ keeps positions and face corners as generic attributes: writing those
    # is a plain copy, while MeshVertex.co / MeshLoop.vertex_index go element by element
    # (about 0.5 s per million triangles). Blender 3.4 has no such attributes.
    _fill(mesh, "position", "vector", mesh.vertices, "co", verts.ravel())
    _fill(mesh, ".corner_vert", "value", mesh.loops, "vertex_index", tris.ravel())
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * m, 3, dtype=np.int32))
    if _BLENDER < (4, 0):  # loop_total is derived from loop_start since 4.0
        mesh.polygons.foreach_set("loop_total", np.full(m, 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    if validate and mesh.validate(clean_customdata=False):
        log.warning("Blender's mesh validation corrected mesh %r.", mesh.name)

    attribute = mesh.color_attributes.new(COLOR_ATTRIBUTE, "BYTE_COLOR", "POINT")
    _set_srgb_colors(attribute, cols)
    _make_active_color(mesh, attribute)

    if hasattr(mesh, "shade_smooth"):  # 4.1+: smooth is the absence of "sharp_face"
        mesh.shade_smooth()
    else:
        mesh.polygons.foreach_set("use_smooth", np.ones(m, dtype=bool))
    if normals is not None:
        _set_custom_normals(mesh, normals)

    mesh.materials.append(_new_material(attribute.name, created))
    obj = bpy.data.objects.new(name, mesh)
    created.append(obj)
    collection.objects.link(obj)
    return obj


def _fill(mesh, attribute: str, attribute_prop: str, fallback, prop: str, flat) -> None:
    layer = mesh.attributes.get(attribute)
    if layer is not None:
        layer.data.foreach_set(attribute_prop, flat)
    else:
        fallback.foreach_set(prop, flat)


def _set_srgb_colors(attribute, cols: np.ndarray) -> None:
    """Store sRGB colours in a BYTE_COLOR attribute (which keeps them as sRGB bytes)."""
    rgba = np.ones((len(cols), 4), dtype=np.float32)
    rgba[:, :3] = cols
    if "color_srgb" in bpy.types.ByteColorAttributeValue.bl_rna.properties:
        attribute.data.foreach_set("color_srgb", rgba.ravel())
    else:  # before color_srgb existed, .color took linear values and encoded them to sRGB
        rgba[:, :3] = srgb_to_linear(cols)
        attribute.data.foreach_set("color", rgba.ravel())


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """The exact sRGB transfer function (IEC 61966-2-1), inverted: sRGB in [0, 1] -> linear."""
    c = np.asarray(c, dtype=np.float32)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _make_active_color(mesh, attribute) -> None:
    group = mesh.color_attributes
    group.active_color = attribute
    for prop in ("active_color_name", "default_color_name"):  # 3.5/4.0+ names
        if hasattr(group, prop):
            setattr(group, prop, attribute.name)
    if hasattr(group, "render_color_index"):
        group.render_color_index = group.active_color_index


def _set_custom_normals(mesh, normals: np.ndarray) -> None:
    if _BLENDER >= (4, 5):
        # 4.5 "free" custom normals: a float vector attribute, set with one copy.
        layer = mesh.attributes.new("custom_normal", "FLOAT_VECTOR", "POINT")
        layer.data.foreach_set("vector", normals.ravel())
        return
    if hasattr(mesh, "use_auto_smooth"):  # before 4.1 custom normals need auto smooth
        mesh.use_auto_smooth = True
    mesh.normals_split_custom_set_from_vertices(normals)


def _new_material(attribute_name: str, created) -> bpy.types.Material:
    """Principled BSDF whose Base Color reads the colour attribute (Material Preview, renders)."""
    material = bpy.data.materials.new(MATERIAL_NAME)
    created.append(material)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next((node for node in nodes if node.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    color = nodes.new("ShaderNodeVertexColor")  # "Color Attribute" in the Add menu
    color.layer_name = attribute_name
    color.location = (bsdf.location.x - 300.0, bsdf.location.y - 100.0)
    links.new(color.outputs["Color"], bsdf.inputs["Base Color"])
    # The photo's colours already hold its lighting; a matte surface adds fewer highlights.
    bsdf.inputs["Roughness"].default_value = 0.9
    return material


def camera_settings(intr: dict) -> dict:
    """Blender camera and render values for pinhole intrinsics (see create_camera).

    Blender's view plane spans ``width`` horizontally and ``ycor * height`` vertically
    with ``ycor = pixel_aspect_y / pixel_aspect_x``; the sensor fit side spans the sensor,
    and lens shift is a fraction of that side. Square view units need ycor = fx / fy.
    """
    fx, fy, cx, cy = intr["fx"], intr["fy"], intr["cx"], intr["cy"]
    w, h = intr["width"], intr["height"]
    ycor = fx / fy
    aspect_x, aspect_y = (1.0, ycor) if ycor >= 1.0 else (1.0 / ycor, 1.0)
    frame_w, frame_h = w, ycor * h  # the view plane, in horizontal pixels
    if frame_w >= frame_h:
        fit, side = "HORIZONTAL", frame_w
        sensor_w, sensor_h = SENSOR_MM, SENSOR_MM * frame_h / frame_w
    else:
        fit, side = "VERTICAL", frame_h
        sensor_w, sensor_h = SENSOR_MM * frame_w / frame_h, SENSOR_MM
    return {
        "sensor_fit": fit,
        "sensor_width": sensor_w,
        "sensor_height": sensor_h,
        "lens": fx * SENSOR_MM / side,
        # OpenCV puts pixel centres at integers, so the image centre is ((w-1)/2, (h-1)/2).
        "shift_x": ((w - 1) / 2.0 - cx) / side,
        "shift_y": ycor * (cy - (h - 1) / 2.0) / side,
        "resolution": (w, h),
        "pixel_aspect": (aspect_x, aspect_y),
    }


def _build_camera(name, intr, location, rotation_euler, image, clip_range, collection, created):
    settings = camera_settings(intr)
    data = bpy.data.cameras.new(name)
    created.append(data)
    for prop in ("sensor_fit", "sensor_width", "sensor_height", "lens", "shift_x", "shift_y"):
        setattr(data, prop, settings[prop])
    if clip_range is not None:
        data.clip_start, data.clip_end = clip_range
    if image is not None:
        data.show_background_images = True
        background = data.background_images.new()
        background.image = image
        # The camera frame has the photo's aspect (pixel aspect included): stretch fits it.
        background.frame_method = "STRETCH"
    cam = bpy.data.objects.new(name, data)
    created.append(cam)
    cam.location = _vector3(location, "The camera location")
    cam.rotation_mode = "XYZ"
    cam.rotation_euler = _vector3(rotation_euler, "The camera rotation")
    collection.objects.link(cam)
    return cam


def _clip_range(verts: np.ndarray, location) -> tuple[float, float]:
    """Blender's default clipping (0.1 to 100), widened so the whole mesh is drawn."""
    dist = np.linalg.norm(verts.astype(np.float64) - np.asarray(location), axis=1)
    near, far = float(dist.min()), float(dist.max())
    start = min(0.1, 0.5 * near) if near > 0 else 0.1
    return max(start, 1e-6), max(100.0, 2.0 * far)


def _load_image(path: str, created) -> bpy.types.Image:
    before = {image.as_pointer() for image in bpy.data.images}
    try:
        image = bpy.data.images.load(path, check_existing=True)
    except RuntimeError as exc:
        raise ResultError(f"The photo {path} cannot be loaded: {exc}") from exc
    if image.as_pointer() not in before:
        created.append(image)
    return image


def _try_load_image(path: str, created) -> bpy.types.Image | None:
    """The photo as background image is a convenience: a missing one is not an error."""
    if not path:
        return None
    if not os.path.isfile(path):
        log.warning("The photo %s is gone; the camera gets no background image.", path)
        return None
    try:
        return _load_image(path, created)
    except ResultError as exc:
        log.warning("%s The camera gets no background image.", exc)
        return None


# ------------------------------------------------------------------------ scene state


def _active_collection(context) -> bpy.types.Collection:
    collection = getattr(context, "collection", None)
    if collection is None:
        collection = context.view_layer.active_layer_collection.collection
    return collection


def _use_as_scene_camera(scene, cam, intr: dict) -> None:
    settings = camera_settings(intr)
    scene.camera = cam
    render = scene.render
    render.resolution_x, render.resolution_y = settings["resolution"]
    render.pixel_aspect_x, render.pixel_aspect_y = settings["pixel_aspect"]


def _select_only(view_layer, obj) -> None:
    for other in view_layer.objects.selected:
        other.select_set(False)
    try:
        obj.select_set(True, view_layer=view_layer)
    except RuntimeError:  # its collection is excluded from this view layer
        return
    view_layer.objects.active = obj


def _remove(created) -> None:
    """Delete datablocks made by a failed import, newest first (objects before their data)."""
    for block in reversed(created):
        try:
            data = getattr(bpy.data, _DATA_BY_ID_TYPE[block.id_type])
            data.remove(block)
        except ReferenceError:  # already gone with its owner
            pass
