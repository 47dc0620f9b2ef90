"""The sidebar panel (3D Viewport > N > Img2Mesh) and dropping photos onto the viewport."""

import bpy

from . import environment, preferences, runner
from .logic.protocol import DEFAULT_T2I_MODEL

IMAGE_EXTENSIONS = ".jpg;.jpeg;.png;.webp;.tif;.tiff;.bmp"


class IMG2MESH_PT_main(bpy.types.Panel):
    """The everyday choices: what to reconstruct, the mesh kind, the button and its progress."""

    bl_label = "Reconstruct from Image"
    bl_idname = "IMG2MESH_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Img2Mesh"

    def draw(self, context) -> None:
        layout = self.layout
        if layout is None:
            return
        settings = context.scene.img2mesh
        prefs = preferences.get(context)
        _draw_environment(layout, context, prefs)

        layout.prop(settings, "source", expand=True)
        layout.use_property_split = True
        layout.use_property_decorate = False
        col = layout.column()
        if settings.source == "FILE":
            col.prop(settings, "filepath", text="Photo")
        elif settings.source == "IMAGE":
            col.prop_search(settings, "image", bpy.data, "images", text="Image")
        else:
            col.prop(settings, "prompt", text="Prompt")
            _draw_prompt_status(col, context, prefs)
        col.prop(settings, "mesh")

        layout.use_property_split = False
        job = runner.running_job()
        if job is None:
            layout.operator("img2mesh.reconstruct", icon="MESH_MONKEY")
        else:
            text = f"{job.message} ({job.overall:.0%})"
            if hasattr(layout, "progress"):  # 4.0+
                layout.progress(factor=job.overall, type="BAR", text=text)
            else:
                layout.label(text=text, icon="SORTTIME")
            layout.operator("img2mesh.cancel", text="Cancel", icon="CANCEL")
        outcome = runner.last_outcome
        if outcome is not None and outcome.text and job is None:
            box = layout.box()
            preferences.draw_text(box, outcome.text, context, "INFO" if outcome.ok else "ERROR")


class IMG2MESH_PT_prompt(bpy.types.Panel):
    """How a prompt becomes a picture (shown for the Prompt source only)."""

    bl_label = "Picture"
    bl_idname = "IMG2MESH_PT_prompt"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Img2Mesh"
    bl_parent_id = "IMG2MESH_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context) -> bool:
        return context.scene.img2mesh.source == "PROMPT"

    def draw(self, context) -> None:
        layout = self.layout
        if layout is None:
            return
        layout.use_property_split = True
        layout.use_property_decorate = False
        draw_prompt_options(layout.column(), context.scene.img2mesh)


class IMG2MESH_PT_options(bpy.types.Panel):
    """Everything else about the run, closed until opened."""

    bl_label = "Options"
    bl_idname = "IMG2MESH_PT_options"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Img2Mesh"
    bl_parent_id = "IMG2MESH_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context) -> None:
        layout = self.layout
        if layout is None:
            return
        layout.use_property_split = True
        layout.use_property_decorate = False
        draw_options(layout, context.scene.img2mesh, preferences.get(context).depth_model)


def draw_prompt_options(col, options) -> None:
    """Seed, steps, model and wording of a prompt's picture (the panel's or an operator's)."""
    col.prop(options, "seed")
    _auto_row(col, options, "Steps", "auto_steps", "steps")
    col.prop(options, "t2i_model", text="Model")
    if not options.t2i_model:
        col.label(text=f"Default: {DEFAULT_T2I_MODEL}")
    col.prop(options, "raw_prompt", text="As Written")


def draw_options(layout, options, default_depth_model: str) -> None:
    """The options after the everyday ones, with 0 shown as Auto (the panel's or an operator's)."""
    col = layout.column()
    col.prop(options, "segment", text="Background")
    col.prop(options, "depth")
    if options.depth == "MODEL":
        col.prop(options, "depth_model", text="Model")
        if not options.depth_model:
            col.label(text=f"Default: {default_depth_model}")
    _auto_row(col, options, "View Angle", "auto_fov", "fov")
    col.prop(options, "max_size", text="Max Size")
    col.prop(options, "quantize", text="INT8 Networks")

    col = layout.column()
    if options.mesh == "POISSON":
        _auto_row(col, options, "Detail", "auto_poisson_depth", "poisson_depth")
    col.prop(options, "trim", text="Visible Only")
    if not options.trim:
        col.prop(options, "shape", text="Hidden Side")
        _auto_row(col, options, "Thickness", "auto_thickness", "thickness")
    _auto_row(col, options, "Simplify", "simplify", "target_faces", text="")
    col.prop(options, "smooth")
    col.prop(options, "vertex_colors_only", text="Vertex Colours Only")
    col.prop(options, "create_camera", text="Camera")


def _auto_row(col, options, heading: str, toggle: str, value: str, *, text="Auto") -> None:
    """``[x] Auto`` (or another switch) and, while the value is in use, the value beside it.

    The field of view stays in sight, greyed out, while Auto is on: it is what a photo
    without a focal length gets. The other values are 0 then, which means nothing to show.
    """
    row = col.row(heading=heading, align=True)
    row.prop(options, toggle, text=text)
    in_use = not options.auto_fov if toggle == "auto_fov" else getattr(options, value) != 0
    if in_use or toggle == "auto_fov":
        sub = row.row(align=True)
        sub.active = in_use
        sub.prop(options, value, text="")


def _draw_prompt_status(col, context, prefs) -> None:
    status = environment.cached_status(preferences.python_choice(prefs).path)
    if status is not None and status.ready and not status.text_prompts:
        preferences.draw_text(
            col.box(),
            'Text prompts are not set up: tick "Text prompts" and press Set up in the '
            "add-on's preferences.",
            context,
            "INFO",
        )


def _draw_environment(layout, context, prefs) -> None:
    """A warning when the reconstruction environment is known to be unusable."""
    choice = preferences.python_choice(prefs)
    status = environment.cached_status(choice.path)
    if choice.path and (status is None or status.ready):
        return
    box = layout.box()
    line = status.line if status else "No reconstruction environment yet."
    preferences.draw_text(box, line, context, "ERROR")
    op = box.operator("preferences.addon_show", text="Open Preferences", icon="PREFERENCES")
    op.module = __package__


classes: tuple = (IMG2MESH_PT_main, IMG2MESH_PT_prompt, IMG2MESH_PT_options)

if hasattr(bpy.types, "FileHandler"):  # 4.1+: drop a photo onto the 3D Viewport

    class IMG2MESH_FH_image(bpy.types.FileHandler):
        bl_idname = "IMG2MESH_FH_image"
        bl_label = "Reconstruct Mesh from Photo"
        bl_import_operator = "img2mesh.reconstruct"
        bl_file_extensions = IMAGE_EXTENSIONS

        @classmethod
        def poll_drop(cls, context) -> bool:
            return context.area is not None and context.area.type == "VIEW_3D"

    classes = (*classes, IMG2MESH_FH_image)
