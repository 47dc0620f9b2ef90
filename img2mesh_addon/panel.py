"""The sidebar panel (3D Viewport > N > Img2Mesh) and dropping photos onto the viewport."""

import bpy

from . import environment, operators, preferences, properties

IMAGE_EXTENSIONS = ".jpg;.jpeg;.png;.webp;.tif;.tiff;.bmp"


class IMG2MESH_PT_main(bpy.types.Panel):
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

        layout.use_property_split = True
        layout.use_property_decorate = False
        col = layout.column()
        col.prop(settings, "source", expand=True)
        if settings.source == "FILE":
            col.prop(settings, "filepath", text="Photo")
        elif settings.source == "IMAGE":
            col.prop_search(settings, "image", bpy.data, "images", text="Image")
        else:
            _draw_prompt(col, context, settings, prefs)
        col.prop(settings, "segment")
        col.prop(settings, "depth")
        if settings.depth == "MODEL":
            col.prop(settings, "depth_model", text="Model")
            if not settings.depth_model:
                col.label(text=f"Default: {prefs.depth_model}")
        row = col.row(heading="Field of View", align=True)
        row.prop(settings, "auto_fov", text="Auto")
        sub = row.row(align=True)
        sub.active = not settings.auto_fov
        sub.prop(settings, "fov", text="")

        col = layout.column()
        col.prop(settings, "mesh")
        if settings.mesh == "POISSON":
            col.prop(settings, "poisson_depth")
        col.prop(settings, "trim", text="Trim")
        if not settings.trim:
            col.prop(settings, "shape")
            col.prop(settings, "thickness")
        col.prop(settings, "target_faces")
        col.prop(settings, "smooth")
        col.prop(settings, "max_size")
        col.prop(settings, "create_camera")

        layout.use_property_split = False
        job = operators.running_job()
        if job is None:
            layout.operator("img2mesh.reconstruct", icon="MESH_MONKEY")
        else:
            text = f"{job.message} ({job.overall:.0%})"
            if hasattr(layout, "progress"):  # 4.0+
                layout.progress(factor=job.overall, type="BAR", text=text)
            else:
                layout.label(text=text, icon="SORTTIME")
            layout.operator("img2mesh.cancel", text="Cancel", icon="CANCEL")
        outcome = operators.last_outcome
        if outcome is not None and outcome.text and job is None:
            box = layout.box()
            preferences.draw_text(box, outcome.text, context, "INFO" if outcome.ok else "ERROR")


def _draw_prompt(col, context, settings, prefs) -> None:
    col.prop(settings, "prompt", text="Prompt")
    col.prop(settings, "seed")
    col.prop(settings, "steps")
    col.prop(settings, "t2i_model", text="Model")
    if not settings.t2i_model:
        col.label(text=f"Default: {properties.DEFAULT_T2I_MODEL}")
    col.prop(settings, "raw_prompt")
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


classes: tuple = (IMG2MESH_PT_main,)

if hasattr(bpy.types, "FileHandler"):  # 4.1+: drop a photo onto the 3D Viewport

    class IMG2MESH_FH_image(bpy.types.FileHandler):
        bl_idname = "IMG2MESH_FH_image"
        bl_label = "Reconstruct Mesh from Photo"
        bl_import_operator = "img2mesh.reconstruct"
        bl_file_extensions = IMAGE_EXTENSIONS

        @classmethod
        def poll_drop(cls, context) -> bool:
            return context.area is not None and context.area.type == "VIEW_3D"

    classes = (IMG2MESH_PT_main, IMG2MESH_FH_image)
