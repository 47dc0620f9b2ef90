"""The reconstruction options: shared by the operator and the panel's per-scene settings."""

import math
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .logic.protocol import DEFAULT_MAX_SIZE, DEFAULT_T2I_MODEL, MIN_MAX_SIZE

SEGMENT_ITEMS = [
    ("REMBG", "Automatic", "Remove the background with a segmentation network (rembg)"),
    ("KEY", "Plain Backdrop", "Key out a plain, evenly coloured background (no model needed)"),
    ("NONE", "Keep", "Keep the whole photo, background included"),
]
DEPTH_ITEMS = [
    ("MODEL", "Depth Model", "Estimate depth with a neural network"),
    ("INFLATE", "Inflate Silhouette", "A rounded shape from the outline alone (no model needed)"),
]
MESH_ITEMS = [
    ("POISSON", "Poisson", "A smooth surface fitted to the points"),
    ("GRID", "Grid", "The depth map triangulated pixel by pixel: exact, but stepped at edges"),
]
SHAPE_ITEMS = [
    (
        "AUTO",
        "Auto",
        "Turn the visible surface about its axis when the object is a surface of "
        "revolution (bottle, can, cup, vase), complete a box or straight extrusion from its "
        "flat faces, else inflate the outline",
    ),
    ("REVOLVE", "Revolve", "Always turn the visible surface about its axis"),
    (
        "BOX",
        "Box",
        "Complete a box or straight extrusion from its visible flat faces (inflate the "
        "outline when no box fits)",
    ),
    ("INFLATE", "Inflate", "Always inflate the outline"),
]


class ReconstructOptions:
    """Options of one reconstruction (a mixin, as Blender's ImportHelper is)."""

    # SKIP_SAVE: an operator never remembers a photo from one run to the next.
    filepath: StringProperty(  # type: ignore[valid-type]
        name="Photo",
        description="The photo to reconstruct",
        subtype="FILE_PATH",
        options={"SKIP_SAVE"},
    )
    image: StringProperty(  # type: ignore[valid-type]
        name="Image",
        description="An image open in Blender to reconstruct (used when no photo file is given)",
        options={"SKIP_SAVE"},
    )
    prompt: StringProperty(  # type: ignore[valid-type]
        name="Prompt",
        description="Describe one object (e.g. a red toy car): a picture of it is generated, "
        "saved, and reconstructed like a photo. Used when no photo is given",
        options={"SKIP_SAVE"},
    )
    seed: IntProperty(  # type: ignore[valid-type]
        name="Seed",
        description="The noise the picture starts from: the same prompt, seed, steps and model "
        "give the same picture",
        default=0,
        min=0,
    )
    steps: IntProperty(  # type: ignore[valid-type]
        name="Steps",
        description="Denoising steps. 0: the model's own (1 for SD-Turbo; up to 4 can add detail)",
        default=0,
        min=0,
        max=1000,
        soft_max=50,
    )
    t2i_model: StringProperty(  # type: ignore[valid-type]
        name="Text-to-Image Model",
        description="A diffusers text-to-image model: a Hugging Face id or a local model "
        f"folder. Empty: {DEFAULT_T2I_MODEL}",
    )
    raw_prompt: BoolProperty(  # type: ignore[valid-type]
        name="Prompt as Written",
        description="Send the prompt as written, without asking for one whole object on a "
        "plain light background (which background removal and depth estimation need)",
        default=False,
    )
    segment: EnumProperty(  # type: ignore[valid-type]
        name="Remove Background",
        description="How the object is separated from its background",
        items=SEGMENT_ITEMS,
        default="REMBG",
    )
    depth: EnumProperty(  # type: ignore[valid-type]
        name="Depth",
        description="Where the depth comes from",
        items=DEPTH_ITEMS,
        default="MODEL",
    )
    depth_model: StringProperty(  # type: ignore[valid-type]
        name="Depth Model",
        description="Hugging Face model id or a local model folder. Empty: the default model "
        "from the add-on's preferences",
    )
    auto_fov: BoolProperty(  # type: ignore[valid-type]
        name="Automatic Field of View",
        description="From the photo's EXIF focal length (or the depth model), else 55 degrees",
        default=True,
    )
    fov: FloatProperty(  # type: ignore[valid-type]
        name="Field of View",
        description="The photo's field of view across its longer side",
        subtype="ANGLE",
        default=math.radians(55.0),
        min=math.radians(1.0),
        max=math.radians(179.0),
    )
    mesh: EnumProperty(  # type: ignore[valid-type]
        name="Mesh",
        description="How the surface is made from the points",
        items=MESH_ITEMS,
        default="POISSON",
    )
    poisson_depth: IntProperty(  # type: ignore[valid-type]
        name="Poisson Depth",
        description="Detail of the Poisson surface (octree depth, 4 to 12). 0: chosen from the "
        "number of points",
        default=0,
        min=0,
        max=12,
    )
    trim: BoolProperty(  # type: ignore[valid-type]
        name="Trim to Visible Surface",
        description="Keep only the surface the photo shows (open) instead of a closed solid",
        default=False,
    )
    shape: EnumProperty(  # type: ignore[valid-type]
        name="Hidden Side",
        description="How the closed solid's hidden side is made",
        items=SHAPE_ITEMS,
        default="AUTO",
    )
    thickness: FloatProperty(  # type: ignore[valid-type]
        name="Thickness",
        description="How deep the closed solid reaches behind the surface the photo shows, as a "
        "share of the object's width. 0: from the outline, as a round object would be. "
        "Changing only this reuses the last solve, so it takes a fraction of a second",
        default=0.0,
        min=0.0,
        max=10.0,
        soft_max=2.0,
        step=5,
        precision=2,
    )
    target_faces: IntProperty(  # type: ignore[valid-type]
        name="Target Faces",
        description="Simplify the mesh to about this many faces. 0: no simplification",
        default=0,
        min=0,
        soft_max=1_000_000,
    )
    smooth: IntProperty(  # type: ignore[valid-type]
        name="Smoothing",
        description="Taubin smoothing iterations",
        default=0,
        min=0,
        soft_max=50,
    )
    quantize: BoolProperty(  # type: ignore[valid-type]
        name="INT8 Networks",
        description="Run INT8 copies of the networks, each made on its first photo and used "
        "only if its mask and depth match full precision's closely (about twice as fast on "
        "the CPU). Off: always full precision",
        default=True,
    )
    max_size: IntProperty(  # type: ignore[valid-type]
        name="Working Size",
        description="The photo is scaled so its longer side has at most this many pixels",
        default=DEFAULT_MAX_SIZE,
        min=MIN_MAX_SIZE,
        soft_max=2048,
        subtype="PIXEL",
    )
    vertex_colors_only: BoolProperty(  # type: ignore[valid-type]
        name="Vertex Colours Only",
        description="Colour the mesh only per vertex, without the photo texture (a UV map and "
        "the full-size photo as an image, packed into the .blend). Vertex colours are as "
        "sharp as the mesh is dense; the texture keeps the photo's own detail",
        default=False,
    )
    create_camera: BoolProperty(  # type: ignore[valid-type]
        name="Create Camera",
        description="Add a camera with the photo's field of view and the photo as background, "
        "so the mesh lines up with the photo through it",
        default=True,
    )


#: The options the panel keeps per scene and the operator takes when not given explicitly.
OPTION_NAMES = tuple(ReconstructOptions.__annotations__)


def _zero_means_auto(
    name: str, manual: float, label: str, description: str, *, on_when_zero: bool = True
) -> Any:
    """A toggle that shows ``name``'s 0 ("chosen for you", or "none") as such; it stores nothing.

    Switched to 0: the option is 0. Switched away from 0: the option gets ``manual`` (if it
    was 0), which the panel then shows for editing. The option's own value stays what the
    request and the worker read, so 0 keeps meaning automatic everywhere else.
    """

    def get(self) -> bool:
        return (getattr(self, name) == 0) == on_when_zero

    def set(self, value: bool) -> None:
        if value == on_when_zero:
            setattr(self, name, type(manual)(0))
        elif getattr(self, name) == 0:
            setattr(self, name, manual)

    return BoolProperty(name=label, description=description, get=get, set=set)


class AutoToggles:
    """The "Auto" switches of the options where 0 means automatic (drawn instead of a bare 0)."""

    auto_poisson_depth: _zero_means_auto(  # type: ignore[valid-type]
        "poisson_depth", 8, "Auto", "Choose the Poisson detail from the number of points"
    )
    auto_thickness: _zero_means_auto(  # type: ignore[valid-type]
        "thickness", 1.0, "Auto", "The solid's depth from the outline, as a round object's"
    )
    simplify: _zero_means_auto(  # type: ignore[valid-type]
        "target_faces",
        50_000,
        "Simplify",
        "Simplify the mesh to about a number of faces (off: keep every face)",
        on_when_zero=False,
    )
    auto_steps: _zero_means_auto(  # type: ignore[valid-type]
        "steps", 4, "Auto", "The text-to-image model's own number of steps"
    )


#: The toggles that only show other options differently (not options of the run).
TOGGLE_NAMES = tuple(AutoToggles.__annotations__)


class IMG2MESH_PG_settings(ReconstructOptions, AutoToggles, bpy.types.PropertyGroup):
    """The panel's options, saved with the scene."""

    source: EnumProperty(  # type: ignore[valid-type]
        name="Source",
        description="What is reconstructed",
        items=[
            ("FILE", "Photo", "A photo file on disk"),
            ("IMAGE", "Image", "An image already open in Blender"),
            ("PROMPT", "Prompt", "A picture generated from a text prompt"),
        ],
        default="FILE",
    )


classes = (IMG2MESH_PG_settings,)


def register() -> None:
    bpy.types.Scene.img2mesh = bpy.props.PointerProperty(  # type: ignore[attr-defined,func-returns-value]
        type=IMG2MESH_PG_settings
    )


def unregister() -> None:
    del bpy.types.Scene.img2mesh  # type: ignore[attr-defined]
