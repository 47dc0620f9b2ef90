"""Operators: reconstruct a photo through the worker (in the background or blocking), cancel, set up."""

import contextlib
import itertools
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from bpy.props import BoolProperty, StringProperty

from . import environment, importer, preferences, worker_client
from .properties import OPTION_NAMES, ReconstructOptions

UNDO_MESSAGE = "Reconstruct from Image"
#: Seconds between two looks at the worker's messages while a run goes on in the background.
POLL_INTERVAL = 0.1


@dataclass
class Outcome:
    """What the panel shows after a run: its summary, or why it failed."""

    text: str
    ok: bool


last_outcome: Outcome | None = None


@dataclass
class Request:
    """Everything a reconstruction needs, resolved from the operator, the scene and the preferences."""

    image: str  # the photo's path on disk
    name: str  # of the object to make
    settings: dict[str, Any]  # core.settings.Settings fields
    create_camera: bool
    source_image: bpy.types.Image | None = None  # when the photo is an image open in Blender
    scratch: str = ""  # a temp folder holding a packed image written out
    prompt: dict[str, Any] | None = None  # a text prompt (the worker protocol's "prompt")
    picture_folder: str = ""  # where a prompt's picture is saved when the run lands
    picture: str = ""  # the saved picture, as the Blender image refers to it


#: The options that say what is reconstructed; one of them is used.
SOURCES = {"FILE": "filepath", "IMAGE": "image", "PROMPT": "prompt"}


def resolve_options(op, scene, *, interactive: bool = False) -> dict[str, Any]:
    """The options of a run: the operator's where a script gave them, else the panel's.

    Interactive runs (the panel's button, F3, a dropped photo) take every option from
    the panel, except a photo given to the operator (a drop), so that values Blender
    remembers from an earlier run never override what the panel shows.
    """
    panel = getattr(scene, "img2mesh", None)
    given = {name for name in OPTION_NAMES if op.properties.is_property_set(name)}
    if interactive:
        given &= {"filepath", "image"}
    values: dict[str, Any] = {}
    for name in OPTION_NAMES:
        values[name] = getattr(op if name in given or panel is None else panel, name)
    chosen = [key for key, name in SOURCES.items() if name in given]
    if not chosen:
        if panel is not None:  # the panel says which of its sources is meant
            chosen = [panel.source]
        else:
            chosen = [key for key, name in SOURCES.items() if values[name]] or ["FILE"]
    for key, name in SOURCES.items():
        if key not in chosen:
            values[name] = ""  # a source the run does not use, e.g. the panel's other one
    values["source"] = "PROMPT" if "PROMPT" in chosen else chosen[0]
    return values


def settings_dict(options: dict[str, Any], prefs: Any) -> dict[str, Any]:
    """The core's Settings (core/settings.py) as the worker takes them."""
    settings: dict[str, Any] = {
        "max_size": int(options["max_size"]),
        "segment": options["segment"].lower(),
        "depth": options["depth"].lower(),
        "device": prefs.device.lower(),
        "mesh": options["mesh"].lower(),
        "open": bool(options["trim"]),
        "smooth": int(options["smooth"]),
        "cache": bool(prefs.use_cache),
    }
    rembg = (options.get("rembg_model") or prefs.rembg_model or "").strip()
    if rembg:
        settings["rembg_model"] = _path_or_name(rembg)
    settings.update(_model_source(options["depth_model"] or prefs.depth_model, "depth_model"))
    if not options["auto_fov"]:
        settings["fov"] = math.degrees(options["fov"])
    if options["poisson_depth"]:
        settings["poisson_depth"] = int(options["poisson_depth"])
    if options["target_faces"]:
        settings["target_faces"] = int(options["target_faces"])
    if options["shape"] != "AUTO" and not options["trim"]:
        settings["shape"] = options["shape"].lower()
    if options["thickness"] > 0 and not options["trim"]:
        settings["thickness"] = float(options["thickness"])
    return settings


def _model_source(value: str | None, name_key: str) -> dict[str, str]:
    """A model field as the worker's settings: a local folder (``model_dir``) or a hub name."""
    model = (value or "").strip()
    if not model:
        return {}
    local = bpy.path.abspath(model)
    if os.path.isdir(local):
        return {"model_dir": os.path.abspath(local)}
    return {name_key: model}


def _path_or_name(value: str) -> str:
    if value.lower().endswith(".onnx") or os.sep in value or "/" in value:
        return os.path.abspath(bpy.path.abspath(value))
    return value


def build_request(options: dict[str, Any], prefs: Any) -> Request:
    """The photo on disk, the object's name and the settings; WorkerError with a sentence if unusable."""
    settings = settings_dict(options, prefs)
    create_camera = bool(options["create_camera"])
    if sum(bool(options[name]) for name in SOURCES.values()) > 1:
        raise worker_client.WorkerError(
            "Give one thing to reconstruct: a photo, an image open in Blender or a prompt."
        )
    if options.get("source") == "PROMPT" or options["prompt"]:
        return prompt_request(options, prefs, settings, create_camera)
    if options["filepath"]:
        path = os.path.abspath(bpy.path.abspath(options["filepath"]))
        return Request(path, Path(path).stem or "Photo", settings, create_camera)
    if not options["image"]:
        raise worker_client.WorkerError(
            "Choose a photo first (a file, or an image open in Blender)."
        )
    image = bpy.data.images.get(options["image"])
    if image is None:
        raise worker_client.WorkerError(f"There is no image named '{options['image']}' in Blender.")
    name = Path(image.name).stem or image.name
    if image.packed_file is not None:
        scratch = worker_client.private_folder("img2mesh-input-")
        suffix = Path(image.filepath or image.name).suffix or ".png"
        stem = "".join(c if c.isalnum() or c in "-_ " else "_" for c in name) or "photo"
        path = os.path.join(scratch, stem + suffix)
        try:
            with open(path, "wb") as fh:
                fh.write(image.packed_file.data)
        except OSError as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise worker_client.WorkerError(
                f"The packed image '{image.name}' cannot be written to the temp folder "
                f"{tempfile.gettempdir()} ({worker_client.os_reason(exc)})."
            ) from None
        request = Request(path, name, settings, create_camera)
        request.scratch = scratch
    elif image.source == "FILE" and image.filepath:
        path = os.path.abspath(bpy.path.abspath(image.filepath, library=image.library))
        request = Request(path, name, settings, create_camera)
    else:
        raise worker_client.WorkerError(
            f"The image '{image.name}' has no file to reconstruct from; save it first "
            "(Image > Save As)."
        )
    request.source_image = image
    return request


def prompt_request(
    options: dict[str, Any], prefs: Any, settings: dict[str, Any], create_camera: bool
) -> Request:
    """A text prompt's run: the worker makes the picture, which lands in picture_folder()."""
    text = options["prompt"].strip()
    if not text:
        raise worker_client.WorkerError(
            'The prompt is empty: describe one object, e.g. "a red toy car".'
        )
    prompt: dict[str, Any] = {
        "text": text,
        "seed": int(options["seed"]),
        "raw": bool(options["raw_prompt"]),
    }
    if options["steps"]:
        prompt["steps"] = int(options["steps"])
    prompt.update(_model_source(options["t2i_model"], "model"))
    folder = picture_folder(prefs)
    _check_writable(folder)
    return Request(
        "", prompt_slug(text), settings, create_camera, prompt=prompt, picture_folder=folder
    )


def prompt_slug(prompt: str, max_length: int = 40) -> str:
    """A name from a prompt: "A red toy car!" -> "a-red-toy-car" (as core.text2image names files)."""
    slug = ""
    for word in re.findall(r"[^\W_]+", prompt.lower()):
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_length:
            break
        slug = candidate
    return slug or "prompt"


def picture_folder(prefs: Any) -> str:
    """Where generated pictures go: "generated" beside the saved .blend, else in the data folder.

    Beside the .blend, the picture travels with the project (and is referred to by a
    relative path); an unsaved file has no project folder yet, so the data folder keeps it.
    """
    if bpy.data.filepath:
        return os.path.join(os.path.dirname(os.path.abspath(bpy.data.filepath)), "generated")
    return os.path.join(preferences.data_dir(prefs), "generated")


def _check_writable(folder: str) -> None:
    """Refuse now, before a minute of generating, if the picture could not be saved."""
    existing = folder
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise worker_client.WorkerError(
            f"The generated picture cannot be saved in '{folder}': the folder is not writable."
        )


def place_picture(source: str, folder: str, stem: str) -> str:
    """Copy a generated picture into ``folder`` under a name no file has yet; its path.

    Nothing is overwritten (the file is created exclusively) and nothing is left on failure.
    """
    target = ""
    try:
        os.makedirs(folder, exist_ok=True)
        for n in itertools.count(1):
            target = os.path.join(folder, f"{stem}.png" if n == 1 else f"{stem}-{n}.png")
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            break
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                shutil.copyfileobj(src, out)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise
    except OSError as exc:
        raise importer.ResultError(
            f"The generated picture cannot be saved in '{folder}': "
            f"{worker_client.os_reason(exc, 'the folder')}."
        ) from None
    return target


def start(request: Request, prefs: Any) -> worker_client.Job:
    try:
        config = preferences.worker_config(prefs)
        job = worker_client.start_job(
            config,
            request.image,
            request.settings,
            name=request.name,
            timeout=float(prefs.timeout),
            prompt=request.prompt,
        )
    except BaseException:
        _remove_scratch(request)
        raise
    return job


def _remove_scratch(request: Request) -> None:
    if request.scratch:
        shutil.rmtree(request.scratch, ignore_errors=True)


#: The core words its advice for the command line; in Blender the same advice names the
#: panel's and the preferences' settings. (cli words, Blender words), applied in order.
CLI_WORDS = (
    ("(--device cuda)", "(Device: CUDA, in the add-on's preferences)"),
    ("(--device mps)", "(Device: MPS, in the add-on's preferences)"),
    ("and pass --model-dir DIR", "and give that folder as the Depth Model"),
    ("--depth inflate (or --depth-map FILE)", "Depth: Inflate Silhouette"),
    (
        "pass your own file with --rembg-model FILE.onnx",
        "choose your own .onnx file as the Background Removal Model in the add-on's preferences",
    ),
    ("the weight-free --segment key", "the weight-free Remove Background: Plain Backdrop"),
    (": --segment key needs", ": Plain Backdrop needs"),
    ("and pass --t2i-model-dir DIR", "and give that folder as the prompt's Model"),
    (" A photo still works without it: img2mesh photo.jpg.", " A photo still works without it."),
)


def blender_words(text: str) -> str:
    """A core message with its command-line advice put in terms of the add-on's settings."""
    for cli, blender in CLI_WORDS:
        text = text.replace(cli, blender)
    return text


def error_text(job: worker_client.Job) -> str:
    """The job's error, with what the user can do about Blender's own settings."""
    text = blender_words(job.error)
    if job.error_kind == "ModelUnavailableError" and not preferences.online_access():
        text += (
            " Blender's online access is off (Preferences > System > Network), so nothing is "
            "downloaded."
        )
    return text


def finish(context, job: worker_client.Job, request: Request) -> tuple[bpy.types.Object, Any]:
    """Bring a finished job's result into the scene; the temp folders go either way.

    A prompt's picture moves from the worker's temp folder to picture_folder() and is
    loaded as a Blender image (the camera's background); if anything fails, neither the
    file nor the image is left.
    """
    picture, image = "", None
    try:
        result = importer.load_result(job.result_path)
        if request.prompt is not None:
            picture = place_picture(job.picture_path, request.picture_folder, request.name)
            image = _load_picture(picture)
            result["image_path"] = np.array(picture)  # the camera shows the placed picture
        obj, cam = importer.import_result(
            context, result, name=request.name, create_camera=request.create_camera
        )
        if cam is not None and request.source_image is not None and request.scratch:
            _show_source_image(cam, request.source_image)
        elif cam is not None and "image_upright_of" in result:
            _keep_upright_copy(cam, str(result["image_upright_of"]))
    except BaseException:
        if image is not None:
            bpy.data.images.remove(image)
        if picture:
            with contextlib.suppress(OSError):
                os.unlink(picture)
        raise
    finally:
        job.cleanup()
        _remove_scratch(request)
    if image is not None:
        if bpy.data.filepath and context.preferences.filepaths.use_relative_paths:
            with contextlib.suppress(ValueError):  # another drive (Windows): keep it absolute
                image.filepath = bpy.path.relpath(picture)
        request.picture = image.filepath
    return obj, cam


def _load_picture(path: str) -> bpy.types.Image:
    try:
        return bpy.data.images.load(path, check_existing=False)
    except RuntimeError as exc:
        raise importer.ResultError(
            f"The generated picture {path} cannot be loaded: {exc}"
        ) from None


def summary_text(job: worker_client.Job, request: Request, obj) -> str:
    """What the panel and the report say about a finished run."""
    text = job.done.get("summary") or obj.name
    return text + (f" Picture: {request.picture}." if request.picture else "")


def _keep_upright_copy(cam, photo: str) -> None:
    """The background is an upright copy of an EXIF-rotated photo in the temp folder: pack it.

    Blender shows image files as stored (sideways, for such a photo), so the copy the
    worker made is kept in the .blend under the photo's name. Its path points beside the
    .blend, so unpacking writes a new file there and never over the original photo.
    """
    backgrounds = cam.data.background_images
    if not len(backgrounds) or backgrounds[0].image is None:
        return
    image = backgrounds[0].image
    image.pack()
    stem, suffix = os.path.splitext(os.path.basename(photo))
    image.name = stem + suffix
    image.filepath_raw = f"//{stem} upright{os.path.splitext(image.filepath)[1]}"


def _show_source_image(cam, image) -> None:
    """A packed image was written to a temp file: show the image itself instead."""
    backgrounds = cam.data.background_images
    if len(backgrounds) and backgrounds[0].image is not None:
        loaded = backgrounds[0].image
        backgrounds[0].image = image
        if loaded != image and loaded.users == 0:
            bpy.data.images.remove(loaded)


def _record(text: str, ok: bool) -> None:
    global last_outcome
    last_outcome = Outcome(text, ok)


# ------------------------------------------------------------------------ background run


@dataclass
class _Running:
    job: worker_client.Job
    request: Request


_running: _Running | None = None


def running_job() -> worker_client.Job | None:
    """The reconstruction going on in the background, if any."""
    return _running.job if _running is not None else None


def tick() -> float | None:
    """The timer that drives a background run on Blender's main thread (None: done)."""
    global _running
    running = _running
    if running is None:
        return None
    finished = running.job.poll()
    _redraw()
    if not finished:
        return POLL_INTERVAL
    _running = None
    job, request = running.job, running.request
    if job.state == "done":
        try:
            with _in_a_window():
                obj, _cam = finish(bpy.context, job, request)
                bpy.ops.ed.undo_push(message=UNDO_MESSAGE)
        except (importer.ResultError, OSError) as exc:
            _record(str(exc), ok=False)
            _popup(str(exc))
        else:
            _record(" ".join([summary_text(job, request, obj), *job.done["warnings"]]), ok=True)
    else:
        job.cleanup()
        _remove_scratch(request)
        if job.state == "cancelled":
            _record(job.error, ok=True)
        else:
            _record(error_text(job), ok=False)
            _popup(error_text(job))
    _redraw()
    return None


def cancel_running() -> bool:
    """Stop the background run (its worker too); False if nothing runs."""
    global _running
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    running = _running
    if running is None:
        return False
    running.job.cancel()
    _remove_scratch(running.request)
    _running = None
    _record("Reconstruction cancelled.", ok=True)
    _redraw()
    return True


@contextlib.contextmanager
def _in_a_window():
    """A timer's context has no window: borrow the first one (if there is any) for the import."""
    wm = bpy.context.window_manager
    window = bpy.context.window or (wm.windows[0] if wm is not None and len(wm.windows) else None)
    if window is None:
        yield
        return
    with bpy.context.temp_override(window=window):
        yield


def _redraw() -> None:
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


def _popup(text: str) -> None:
    wm = bpy.context.window_manager
    if wm is None or not len(wm.windows) or bpy.app.background:
        print(f"img2mesh: {text}", file=sys.stderr)
        return

    def draw(menu, context):
        for line in preferences.wrap_text(text, context, 600):
            menu.layout.label(text=line)

    with _in_a_window():  # a popup needs a window, which a timer's context lacks
        wm.popup_menu(draw, title=UNDO_MESSAGE, icon="ERROR")


# ----------------------------------------------------------------------------- operators


class IMG2MESH_OT_reconstruct(ReconstructOptions, bpy.types.Operator):
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

    def _request(self, context, interactive: bool) -> Request:
        options = resolve_options(self, context.scene, interactive=interactive)
        # Remember what was used, so Adjust Last Operation and redo repeat exactly this.
        for name in OPTION_NAMES:
            setattr(self, name, options[name])
        options["rembg_model"] = self.rembg_model
        return build_request(options, preferences.get(context))

    def execute(self, context):
        """Blocking (scripts, ``blender -b --python``, redo), or in the background when asked."""
        return self._run(context, interactive=False)

    def invoke(self, context, event):
        """From the panel, F3 or a dropped photo: Blender stays responsive while it runs."""
        self.background = True
        return self._run(context, interactive=True)

    def _run(self, context, interactive: bool):
        if running_job() is not None or worker_client.active_job() is not None:
            return self._fail("A reconstruction is already running; wait for it or cancel it.")
        try:
            request = self._request(context, interactive)
            job = start(request, preferences.get(context))
        except worker_client.WorkerError as exc:
            return self._fail(str(exc))
        if self.background:
            return self._run_in_background(job, request)
        try:
            job.wait()
        except KeyboardInterrupt:
            job.cancel()
            _remove_scratch(request)
            return self._fail("Reconstruction cancelled.")
        if job.state != "done":
            _remove_scratch(request)
            return self._fail(error_text(job))
        try:
            obj, _cam = finish(context, job, request)
        except (importer.ResultError, OSError) as exc:
            return self._fail(str(exc))
        summary = summary_text(job, request, obj)
        _record(summary, ok=True)
        for warning in job.done.get("warnings", []):
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, summary)
        return {"FINISHED"}

    def _run_in_background(self, job: worker_client.Job, request: Request):
        global _running
        _running = _Running(job, request)
        _record("", ok=True)
        if not bpy.app.timers.is_registered(tick):
            bpy.app.timers.register(tick, first_interval=POLL_INTERVAL)
        self.report({"INFO"}, f"Reconstructing {request.name} (Esc cancels)")
        # Nothing has changed yet, so no undo step now: the import pushes its own.
        return {"CANCELLED"}

    def _fail(self, text: str):
        _record(text, ok=False)
        self.report({"ERROR"}, text)
        return {"CANCELLED"}


class IMG2MESH_OT_cancel(bpy.types.Operator):
    """Stop the running reconstruction (its worker process too)"""

    bl_idname = "img2mesh.cancel"
    bl_label = "Cancel Reconstruction"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context) -> bool:
        return running_job() is not None

    def execute(self, context):
        cancel_running()
        self.report({"INFO"}, "Reconstruction cancelled.")
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
        except environment.SetupError as exc:
            self.report({"ERROR"}, str(exc))
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
            _redraw()
            if not task.finished:
                return 0.5
            environment.check(preferences.python_choice(preferences.get()).path)
            _redraw()
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


@bpy.app.handlers.persistent
def _cancel_on_load(*_args) -> None:
    """Another file is opened: a result must not land in it (and the timer goes before the
    file load drops it: a dropped Python timer makes the bpy module hang when it exits)."""
    cancel_running()


_keymaps: list = []


def register() -> None:
    bpy.app.handlers.load_pre.append(_cancel_on_load)
    wm = bpy.context.window_manager
    keyconfig = wm.keyconfigs.addon if wm is not None else None
    if keyconfig is not None:  # None in background mode
        # Esc cancels a running reconstruction; when none runs the operator's poll fails
        # and Esc does what it always does.
        keymap = keyconfig.keymaps.new(name="Window", space_type="EMPTY")
        item = keymap.keymap_items.new(IMG2MESH_OT_cancel.bl_idname, "ESC", "PRESS")
        _keymaps.append((keymap, item))


def unregister() -> None:
    cancel_running()
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    for keymap, item in _keymaps:
        keymap.keymap_items.remove(item)
    _keymaps.clear()
    if _cancel_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_cancel_on_load)


classes = (
    IMG2MESH_OT_reconstruct,
    IMG2MESH_OT_cancel,
    IMG2MESH_OT_check_environment,
    IMG2MESH_OT_setup_environment,
    IMG2MESH_OT_cancel_setup,
)
