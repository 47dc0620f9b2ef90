"""Operators: reconstruct a photo through the worker (in the background or blocking), cancel, set up.

Thin: the request comes from logic.requests and sources, the run from runner; user errors
(logic.errors.UserError) become ``self.report`` in one place, :func:`report_error`.
"""

import bpy
from bpy.props import BoolProperty, StringProperty

from . import environment, panel, preferences, runner, sources
from .logic.errors import UserError
from .logic.requests import resolve_options as _resolve
from .properties import OPTION_NAMES, AutoToggles, ReconstructOptions

# What tests and scripts reached here before the runner had a module of its own.
from .runner import cancel_running, finish, running_job, summary_text, tick  # noqa: F401

UNDO_MESSAGE = runner.UNDO_MESSAGE


def resolve_options(op, scene, *, interactive: bool = False) -> dict:
    """The options of a run: the operator's where a script gave them, else the panel's."""
    panel = getattr(scene, "img2mesh", None)
    given = {name for name in OPTION_NAMES if op.properties.is_property_set(name)}
    return _resolve(
        given,
        OPTION_NAMES,
        lambda name: getattr(op, name),
        lambda name: getattr(panel, name),
        panel.source if panel is not None else None,
        interactive=interactive,
    )


def report_error(op, error: UserError | OSError | str):
    """The one place a user error becomes Blender's report (and the panel's outcome)."""
    text = str(error)
    runner.record(text, ok=False)
    op.report({"ERROR"}, text)
    return {"CANCELLED"}


# ----------------------------------------------------------------------------- operators


class IMG2MESH_OT_reconstruct(ReconstructOptions, AutoToggles, bpy.types.Operator):
    """Turn a photo into a coloured mesh (and a camera that sees it as the photo does)"""

    bl_idname = "img2mesh.reconstruct"
    bl_label = "Reconstruct from Image"
    bl_options = {"REGISTER", "UNDO"}

    rembg_model: StringProperty(  # type: ignore[valid-type]
        name="Background Removal Model",
        description="A rembg model name or a .onnx file. Empty: the one in the preferences",
        options={"HIDDEN"},
    )
    background: BoolProperty(  # type: ignore[valid-type]
        name="In the Background",
        description="Return at once and import the result when the worker is done (what the "
        "panel's button does); otherwise block until the mesh is in the scene",
        options={"HIDDEN", "SKIP_SAVE"},
    )

    @classmethod
    def poll(cls, context) -> bool:
        return context.mode == "OBJECT"

    def draw(self, context) -> None:
        """Adjust Last Operation: what was reconstructed, then the options as the panel shows them."""
        layout = self.layout
        if layout is None:
            return
        layout.use_property_split = True
        layout.use_property_decorate = False
        col = layout.column()
        for name in ("filepath", "image", "prompt"):
            if getattr(self, name):
                col.prop(self, name)
        col.prop(self, "mesh")
        if self.prompt:
            panel.draw_prompt_options(col, self)
        panel.draw_options(layout, self, preferences.get(context).depth_model)

    def _request(self, context, interactive: bool):
        options = resolve_options(self, context.scene, interactive=interactive)
        # Remember what was used, so Adjust Last Operation and redo repeat exactly this.
        for name in OPTION_NAMES:
            setattr(self, name, options[name])
        options["rembg_model"] = self.rembg_model
        return sources.build_request(options, preferences.get(context))

    def execute(self, context):
        """Blocking (scripts, ``blender -b --python``, redo), or in the background when asked."""
        return self._run(context, interactive=False)

    def invoke(self, context, event):
        """From the panel, F3 or a dropped photo: Blender stays responsive while it runs."""
        self.background = True
        return self._run(context, interactive=True)

    def _run(self, context, interactive: bool):
        if runner.running_job() is not None:
            return report_error(
                self, "A reconstruction is already running; wait for it or cancel it."
            )
        try:
            request = self._request(context, interactive)
            job = runner.start(request, preferences.get(context))
        except UserError as exc:
            return report_error(self, exc)
        if self.background:
            runner.run_in_background(job)
            self.report({"INFO"}, f"Reconstructing {request.name} (Esc cancels)")
            # Nothing has changed yet, so no undo step now: the import pushes its own.
            return {"CANCELLED"}
        try:
            try:
                job.wait()
            except KeyboardInterrupt:
                job.cancel()  # the worker stops at its next step and stays
                job.wait()
        finally:
            runner.worker_client.release(job)
        landing = runner.land(context, job)
        if landing.failed:
            self.report({"ERROR"}, landing.text)
            return {"CANCELLED"}
        if landing.obj is None:  # cancelled
            self.report({"WARNING"}, landing.text)
            return {"CANCELLED"}
        for warning in landing.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, landing.text)
        return {"FINISHED"}


class IMG2MESH_OT_cancel(bpy.types.Operator):
    """Stop the running reconstruction (the worker stays, with its models loaded)"""

    bl_idname = "img2mesh.cancel"
    bl_label = "Cancel Reconstruction"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context) -> bool:
        return runner.running_job() is not None

    def execute(self, context):
        runner.cancel_running()
        self.report({"INFO"}, "Cancelling the reconstruction.")
        return {"FINISHED"}


class IMG2MESH_OT_check_environment(bpy.types.Operator):
    """Check that the reconstruction environment has everything it needs"""

    bl_idname = "img2mesh.check_environment"
    bl_label = "Check"
    bl_options = {"INTERNAL"}

    def execute(self, context):
        choice = preferences.python_choice(preferences.get(context))
        status = environment.check(choice.path)
        self.report({"INFO"} if status.ready else {"WARNING"}, status.line)
        return {"FINISHED"}


class IMG2MESH_OT_setup_environment(bpy.types.Operator):
    """Make a Python environment for the reconstruction and install img2mesh with its dependencies (downloads about 1 to 3 GB)"""

    bl_idname = "img2mesh.setup_environment"
    bl_label = "Set up"
    bl_options = {"INTERNAL"}

    def _start(self, context) -> environment.SetupTask | None:
        prefs = preferences.get(context)
        try:
            return environment.start_setup(
                prefs.setup_python,
                prefs.pip_args,
                online=preferences.online_access(),
                text=prefs.setup_text,
            )
        except UserError as exc:
            report_error(self, exc)
            return None

    def execute(self, context):
        task = self._start(context)
        if task is None:
            return {"CANCELLED"}
        task.wait()
        return self._report(context, task)

    def invoke(self, context, event):
        task = self._start(context)
        if task is None:
            return {"CANCELLED"}

        def watch() -> float | None:
            runner.redraw()
            if not task.finished:
                return 0.5
            environment.check(preferences.python_choice(preferences.get()).path)
            runner.redraw()
            return None

        bpy.app.timers.register(watch, first_interval=0.5, persistent=True)
        self.report({"INFO"}, "Set up started; the preferences show its progress.")
        return {"FINISHED"}

    def _report(self, context, task: environment.SetupTask):
        status = environment.check(preferences.python_choice(preferences.get(context)).path)
        if task.state != "done":
            self.report({"ERROR"}, task.error)
            return {"CANCELLED"}
        self.report({"INFO"} if status.ready else {"WARNING"}, status.line)
        return {"FINISHED"}


class IMG2MESH_OT_cancel_setup(bpy.types.Operator):
    """Stop Set up"""

    bl_idname = "img2mesh.cancel_setup"
    bl_label = "Cancel Set up"
    bl_options = {"INTERNAL"}

    def execute(self, context):
        task = environment.active_setup()
        if task is not None:
            task.cancel()
        return {"FINISHED"}


_keymaps: list = []


def register() -> None:
    runner.register()
    wm = bpy.context.window_manager
    keyconfig = wm.keyconfigs.addon if wm is not None else None
    if keyconfig is not None:  # None in background mode
        # Esc cancels a running reconstruction; when none runs the operator's poll fails
        # and Esc does what it always does.
        keymap = keyconfig.keymaps.new(name="Window", space_type="EMPTY")
        item = keymap.keymap_items.new(IMG2MESH_OT_cancel.bl_idname, "ESC", "PRESS")
        _keymaps.append((keymap, item))


def unregister() -> None:
    runner.unregister()
    for keymap, item in _keymaps:
        keymap.keymap_items.remove(item)
    _keymaps.clear()


classes = (
    IMG2MESH_OT_reconstruct,
    IMG2MESH_OT_cancel,
    IMG2MESH_OT_check_environment,
    IMG2MESH_OT_setup_environment,
    IMG2MESH_OT_cancel_setup,
)
