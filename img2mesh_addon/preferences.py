"""The add-on's preferences: the reconstruction environment, data folder, device, default models."""

import os
import textwrap
from types import SimpleNamespace
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import environment, worker_client
from .logic.protocol import DEFAULT_DEPTH_MODEL, DEFAULT_REMBG_MODEL

DEFAULT_TIMEOUT = 600

DEVICES = [
    ("AUTO", "Auto", "CUDA, then Apple's GPU (MPS), then the CPU"),
    ("CPU", "CPU", "Always the CPU"),
    ("CUDA", "CUDA", "An NVIDIA GPU"),
    ("MPS", "MPS", "Apple's GPU (Metal)"),
]


def _environment_changed(_self, _context) -> None:
    # The next check looks again; the next run starts a new worker if its Python or data
    # folder changed (worker_client.get_worker compares the configuration).
    environment.forget_status()


class IMG2MESH_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: StringProperty(  # type: ignore[valid-type]
        name="Existing Environment",
        description="A Python environment that has img2mesh installed: its folder or its python "
        "executable. Empty: the one made by Set up",
        subtype="FILE_PATH",
        update=_environment_changed,
    )
    setup_python: StringProperty(  # type: ignore[valid-type]
        name="Python for Set up",
        description=f"The Python ({environment.python_span()}) that Set up builds the "
        "environment from. Empty: Blender's own if it can, else one found on the system",
        subtype="FILE_PATH",
    )
    pip_args: StringProperty(  # type: ignore[valid-type]
        name="Extra pip Arguments",
        description="Added to Set up's pip commands, e.g. --extra-index-url URL for a PyTorch "
        "build, or --no-index --find-links FOLDER to install from local wheels without a network",
    )
    setup_text: BoolProperty(  # type: ignore[valid-type]
        name="Text prompts",
        description="Set up also installs diffusers and accelerate, so that a picture can be "
        "generated from a text prompt (the model itself, 2.6 GB for SD-Turbo, is downloaded on "
        "the first prompt)",
        default=False,
    )
    data_dir: StringProperty(  # type: ignore[valid-type]
        name="Data Folder",
        description="Where models and caches are stored. Empty: a folder of the add-on's own "
        "(shown below)",
        subtype="DIR_PATH",
        update=_environment_changed,
    )
    device: EnumProperty(  # type: ignore[valid-type]
        name="Device",
        description="Where the depth network runs",
        items=DEVICES,
        default="AUTO",
    )
    depth_model: StringProperty(  # type: ignore[valid-type]
        name="Default Depth Model",
        description="Hugging Face model id or a local model folder, used when the panel names "
        "no other",
        default=DEFAULT_DEPTH_MODEL,
    )
    rembg_model: StringProperty(  # type: ignore[valid-type]
        name="Background Removal Model",
        description="A rembg model name (u2net, isnet-general-use, ...) or a .onnx file",
        default=DEFAULT_REMBG_MODEL,
    )
    use_cache: BoolProperty(  # type: ignore[valid-type]
        name="Cache Depth and Masks",
        description="Keep each photo's depth and mask, so changing only mesh options is fast",
        default=True,
    )
    timeout: IntProperty(  # type: ignore[valid-type]
        name="Worker Timeout",
        description="Seconds without any sign of life after which the worker is stopped",
        default=DEFAULT_TIMEOUT,
        min=1,
        soft_max=7200,
        subtype="TIME_ABSOLUTE" if bpy.app.version >= (4, 0) else "NONE",
    )

    def draw(self, context) -> None:
        layout = self.layout
        if layout is None:
            return
        choice = python_choice(self)
        status = environment.cached_status(choice.path)
        # Never in draw() itself: the check runs a Python for up to a minute.
        idle = status is None and environment.active_setup() is None
        if idle and environment.check_in_background(choice.path):
            bpy.app.timers.register(_redraw_when_checked, first_interval=0.2)

        box = layout.box()
        box.label(text="Reconstruction Environment", icon="CONSOLE")
        if status is None and environment.checking(choice.path):
            box.label(text="Checking…", icon="SORTTIME")
        elif status is None:
            box.label(text="Not checked yet: press Check.", icon="QUESTION")
        else:
            draw_text(box, status.line, context, "CHECKMARK" if status.ready else "ERROR")
        where = {
            "preferences": "the environment chosen below",
            "setup": "the environment made by Set up",
            "environment variable": f"${environment.PYTHON_ENV_VAR}",
            "none": "none yet",
        }[choice.source]
        box.label(text=f"Python: {choice.path or '-'} ({where})")

        task = environment.last_setup()
        row = box.row(align=True)
        if task is not None and not task.finished:
            row.label(text=f"{task.step}: {task.line}"[:120], icon="SORTTIME")
            row.operator("img2mesh.cancel_setup", text="Cancel", icon="CANCEL")
        else:
            row.operator("img2mesh.setup_environment", icon="IMPORT")
            row.operator("img2mesh.check_environment", icon="FILE_REFRESH")
            box.prop(self, "setup_text")
            if task is not None and task.state in ("failed", "cancelled"):
                draw_text(box, task.error, context, "ERROR")
        if not online_access():
            box.label(
                text="Online access is off (System > Network): no downloads, Set up included.",
                icon="INTERNET_OFFLINE" if bpy.app.version >= (4, 2) else "ERROR",
            )
        box.prop(self, "python_path")
        sub = box.column()
        sub.prop(self, "setup_python")
        sub.prop(self, "pip_args")
        sub.label(text=f"Set up makes its environment in {environment.setup_dir()}")
        if not environment.venv_python(environment.setup_dir()).is_file():
            draw_text(sub, environment.setup_base_line(self.setup_python), context)

        box = layout.box()
        box.label(text="Reconstruction", icon="MESH_MONKEY")
        box.prop(self, "data_dir")
        if not self.data_dir:
            box.label(text=f"Models and caches: {environment.default_data_dir()}")
        box.prop(self, "device")
        box.prop(self, "depth_model")
        box.prop(self, "rembg_model")
        box.prop(self, "use_cache")
        box.prop(self, "timeout")


def wrap_text(text: str, context, width_px: int = 0) -> list[str]:
    """``text`` in lines that fit the region (Blender's labels do not wrap)."""
    region = getattr(context, "region", None)
    if width_px or region is None:
        chars = (width_px or 600) / 7
    else:
        # A sidebar is narrow: the box, the icon and the panel's margins take about 70 px,
        # and a character of Blender's UI font is about 6.5 px wide (times the UI scale).
        system = getattr(getattr(context, "preferences", None), "system", None)
        scale = getattr(system, "ui_scale", 1.0) or 1.0
        chars = (region.width / scale - 70) / 6.5
    return textwrap.wrap(text, max(12, int(chars))) or [""]


def draw_text(layout, text: str, context, icon: Any = "NONE") -> None:
    """Wrapped label lines; the icon on the first one."""
    for i, line in enumerate(wrap_text(text, context)):
        layout.label(text=line, icon=icon if i == 0 else "BLANK1")


# ------------------------------------------------------------------------------ helpers

#: What the preferences hold when the add-on is registered without being enabled
#: (e.g. ``register()`` called directly): the same names with their defaults.
_DEFAULTS = SimpleNamespace(
    python_path="",
    setup_python="",
    pip_args="",
    setup_text=False,
    data_dir="",
    device="AUTO",
    depth_model=DEFAULT_DEPTH_MODEL,
    rembg_model=DEFAULT_REMBG_MODEL,
    use_cache=True,
    timeout=DEFAULT_TIMEOUT,
)


def get(context=None) -> Any:
    """The add-on's preferences (or their defaults when it is not enabled as an add-on)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else _DEFAULTS


def online_access() -> bool:
    """Blender's "Allow Online Access" (always allowed before 4.2, which has no such switch)."""
    return bool(getattr(bpy.app, "online_access", True))


def python_choice(prefs: Any) -> environment.PythonChoice:
    return environment.find_python(prefs.python_path)


def data_dir(prefs: Any) -> str:
    if prefs.data_dir.strip():
        return os.path.abspath(bpy.path.abspath(prefs.data_dir.strip()))
    return str(environment.default_data_dir())


def _redraw_when_checked() -> float | None:
    """A timer: redraw the preferences once no background check runs any more."""
    if environment.checking():
        return 0.2
    wm = bpy.context.window_manager
    for window in wm.windows if wm is not None else ():
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()
    return None


def worker_config(prefs: Any) -> worker_client.WorkerConfig:
    """How to start the worker, or WorkerError when there is no environment yet."""
    choice = python_choice(prefs)
    if not choice.path:
        raise worker_client.WorkerError(
            "There is no reconstruction environment yet: press Set up in the add-on's "
            "preferences (Edit > Preferences > Add-ons > Img2Mesh), or choose an existing one."
        )
    env = {"IMG2MESH_HOME": data_dir(prefs)}
    if not online_access():
        env["IMG2MESH_OFFLINE"] = "1"
    return worker_client.WorkerConfig.make(choice.path, env)


classes = (IMG2MESH_AddonPreferences,)
