"""Brings a reconstruction result (coloured mesh and the photo's camera) into the Blender scene."""

from __future__ import annotations

import logging
import os

import bpy
import numpy as np

# The Blender-free half (reading and checking a result, camera maths) is in logic/.
from .logic.camera_math import SENSOR_MM, camera_settings
from .logic.camera_math import clip_range as _clip_range
from .logic.errors import ResultError
from .logic.protocol import srgb_to_linear
from .logic.results import DEFAULT_ROTATION as _DEFAULT_ROTATION
from .logic.results import RESULT_FORMAT_VERSION, load_result, texture_arrays
from .logic.results import mesh_arrays as _mesh_arrays
from .logic.results import parse_intrinsics as _parse_intrinsics
from .logic.results import parse_result as _parse_result
from .logic.results import vector3 as _vector3

__all__ = [
    "RESULT_FORMAT_VERSION",
    "SENSOR_MM",
    "ResultError",
    "camera_settings",
    "import_result",
    "load_result",
    "srgb_to_linear",
]

log = logging.getLogger(__name__)

#: Name of the point-domain colour attribute that holds the photo's colours.
COLOR_ATTRIBUTE = "Color"
#: Base name of the material that shows that attribute (Blender adds .001, ... on clashes).
MATERIAL_NAME = "Img2Mesh Vertex Colour"
#: Name of the UV map that places the photo texture, and of the texture's material.
UV_MAP = "UVMap"
TEXTURE_MATERIAL_NAME = "Img2Mesh Photo Texture"

_BLENDER = bpy.app.version
_DATA_BY_ID_TYPE = {
    "OBJECT": "objects",
    "MESH": "meshes",
    "MATERIAL": "materials",
    "CAMERA": "cameras",
    "IMAGE": "images",
}


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

    - ``vertices`` float32 (N, 3), output frame of core/geometry/camera.py (Z up, camera along +Y)
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
    uv_arr, data = texture_arrays(uv, png, len(obj.data.polygons))
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
        if material.node_tree is None:  # 4.x; 5.x materials always have nodes
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
    if material.node_tree is None:  # Blender 4.x; 5.x makes every material with nodes and
        material.use_nodes = True  # deprecates use_nodes (removed in 6.0)
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
