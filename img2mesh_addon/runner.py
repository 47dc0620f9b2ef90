"""A reconstruction's run in Blender: sent to the worker, driven by a timer (or waited for), landed in the scene.

The run itself is the worker client's one registry (``worker_client.current_job()``);
this module adds what Blender needs around it: the timer, the import, the panel's outcome,
the popup. Blender data is touched only here and only on the main thread, and nothing
from ``bpy.data`` is held across timer ticks (an undo or a file load would free it).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np

from . import importer, preferences, worker_client
from .logic import messages
from .logic.errors import ResultError, UserError
from .logic.requests import Request, place_picture

UNDO_MESSAGE = "Reconstruct from Image"
#: Seconds between two looks at the worker's messages while a run goes on in the background.
POLL_INTERVAL = 0.1


@dataclass
class Outcome:
    """What the panel shows after a run: its summary, or why it failed."""

    text: str
    ok: bool


last_outcome: Outcome | None = None


def record(text: str, ok: bool) -> None:
    global last_outcome
    last_outcome = Outcome(text, ok)


def start(request: Request, prefs: Any) -> worker_client.Job:
    """Send the request to the worker (started if needed); UserError with a sentence if not."""
    try:
        config = preferences.worker_config(prefs)
        return worker_client.start_job(
            config,
            request.image,
            request.settings,
            name=request.name,
            timeout=float(prefs.timeout),
            prompt=request.prompt,
            request=request,
        )
    except BaseException:
        request.remove_scratch()
        raise


def running_job() -> worker_client.Job | None:
    """The reconstruction under way (or stopping, or finished and not yet landed), if any."""
    return worker_client.current_job()


def error_text(job: worker_client.Job) -> str:
    """The job's error in the add-on's words, with what Blender's own settings change."""
    event = job.error_event or {"kind": job.error_kind, "message": job.error}
    return messages.error_text(event, online=preferences.online_access())


# ---------------------------------------------------------------------------- landing


def finish(context, job: worker_client.Job, request: Request) -> tuple[bpy.types.Object, Any]:
    """Bring a finished job's result into the scene; the temp folders go either way.

    A prompt's picture moves from the worker's temp folder to its picture folder and is
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
        if cam is not None and request.source_image and request.scratch:
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
        request.remove_scratch()
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
        raise ResultError(f"The generated picture {path} cannot be loaded: {exc}") from None


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


def _show_source_image(cam, name: str) -> None:
    """A packed image was written to a temp file: show the image itself instead.

    The image is looked up by name now: an undo during the run may have removed it. The
    camera then keeps the copy it loaded, packed under the image's name, since the temp
    file goes when the run ends.
    """
    image = bpy.data.images.get(name)
    backgrounds = cam.data.background_images
    if not len(backgrounds) or backgrounds[0].image is None:
        return
    loaded = backgrounds[0].image
    if image is None or image == loaded:  # gone (the copy may have taken its free name)
        loaded.pack()
        loaded.name = name
        suffix = os.path.splitext(loaded.filepath)[1]
        loaded.filepath_raw = f"//{os.path.splitext(name)[0]}{suffix}"
        return
    backgrounds[0].image = image
    if loaded.users == 0:
        bpy.data.images.remove(loaded)


# ---------------------------------------------------------------------- background run


def run_in_background(job: worker_client.Job) -> None:
    """Let the timer drive ``job`` (sent) and land its result."""
    record("", ok=True)
    _forget_cancel_reason()
    if not bpy.app.timers.is_registered(tick):
        # persistent: a file load must not drop the timer while a cancel is still stopping
        bpy.app.timers.register(tick, first_interval=POLL_INTERVAL, persistent=True)


def tick() -> float | None:
    """The timer that drives a background run on Blender's main thread (None: done)."""
    job = running_job()
    if job is None:
        return None
    finished = job.poll()
    _redraw()
    if not finished:
        return POLL_INTERVAL
    worker_client.release(job)
    with _in_a_window():
        landing = land(bpy.context, job, undo_step=True)
    if landing.failed:
        _popup(landing.text)
    _redraw()
    return None


@dataclass
class Landing:
    """How a finished run ended in the scene: ``obj`` (the imported mesh, when it landed),
    ``text`` (the summary, or why not), the run's ``warnings``, and whether it ``failed``
    (a cancel is no failure: the user asked for it)."""

    text: str
    obj: Any = None
    warnings: tuple[str, ...] = ()
    failed: bool = False


def land(context, job: worker_client.Job, *, undo_step: bool = False) -> Landing:
    """Where every finished run ends, blocking or in the background: the result imported
    (``undo_step``: with an undo step of its own, for a run that ended outside an
    operator), or the job's temp files removed; the panel's outcome recorded either way.
    """
    request: Request = job.request
    if job.state == "done":
        try:
            obj, _cam = finish(context, job, request)
            if undo_step:
                bpy.ops.ed.undo_push(message=UNDO_MESSAGE)
        except (UserError, OSError) as exc:
            landing = Landing(str(exc), failed=True)
        except ReferenceError:  # Blender data freed under us (undo, file load)
            text = "The result could not be placed: the scene changed while it was imported."
            landing = Landing(text, failed=True)
        else:
            warnings = tuple(job.done.get("warnings", []))
            landing = Landing(summary_text(job, request, obj), obj, warnings)
    else:
        job.cleanup()
        request.remove_scratch()
        if job.state == "cancelled":
            landing = Landing(_cancel_reason or job.error or messages.CANCELLED)
            _forget_cancel_reason()
        else:
            landing = Landing(error_text(job), failed=True)
    record(" ".join([landing.text, *landing.warnings]), ok=not landing.failed)
    return landing


_cancel_reason = ""  # why the running job was cancelled, when not the user's Cancel


def _forget_cancel_reason() -> None:
    global _cancel_reason
    _cancel_reason = ""


def cancel_running(*, wait: bool = False, reason: str = "") -> bool:
    """Ask the running reconstruction to stop; False if nothing runs.

    The worker stops at its next step and stays, with its models; the timer lands the
    outcome (``wait``: block until then, at most the cancel grace period, then kill).
    """
    global _cancel_reason
    job = running_job()
    if job is None:
        return False
    _cancel_reason = reason
    job.cancel()
    if wait or not bpy.app.timers.is_registered(tick):
        job.wait()
        tick()
        if bpy.app.timers.is_registered(tick):
            bpy.app.timers.unregister(tick)
    _redraw()
    return True


def abort() -> None:
    """Stop everything at once (unregister, quit): the run and its worker process."""
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    job = running_job()
    if job is not None:
        job.kill()
        worker_client.release(job)
        if job.request is not None:
            job.request.remove_scratch()
        record(messages.CANCELLED, ok=True)


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


def redraw() -> None:
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


_redraw = redraw


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


@bpy.app.handlers.persistent
def _cancel_on_load(*_args) -> None:
    """Another file is opened: a result must not land in it; the run stops (its worker stays)."""
    cancel_running(wait=True, reason="Reconstruction cancelled: another file was opened.")


def register() -> None:
    bpy.app.handlers.load_pre.append(_cancel_on_load)


def unregister() -> None:
    abort()
    if _cancel_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_cancel_on_load)
