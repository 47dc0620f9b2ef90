"""A reconstruction request from the panel's and operator's options: resolved, checked, turned into worker settings.

Blender-free: where Blender's paths matter (``//relative`` paths), the caller passes
``abspath`` (``bpy.path.abspath``). Errors are :class:`WorkerError` sentences.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ResultError, WorkerError
from .protocol import prompt_slug

#: The options that say what is reconstructed; one of them is used.
SOURCES = {"FILE": "filepath", "IMAGE": "image", "PROMPT": "prompt"}

Abspath = Callable[[str], str]


@dataclass
class Request:
    """Everything a reconstruction needs, resolved from the operator, the scene and the preferences.

    No Blender data is held across the run (an undo or a file load would free it): an
    image open in Blender is kept by name (``source_image``) and looked up again when the
    result lands.
    """

    image: str  # the photo's path on disk
    name: str  # of the object to make
    settings: dict[str, Any]  # core.settings.Settings fields
    create_camera: bool
    source_image: str = ""  # the name of the Blender image the photo came from, if any
    scratch: str = ""  # a temp folder holding a packed image written out
    prompt: dict[str, Any] | None = None  # a text prompt (the worker protocol's "prompt")
    picture_folder: str = ""  # where a prompt's picture is saved when the run lands
    picture: str = ""  # the saved picture, as the Blender image refers to it

    def remove_scratch(self) -> None:
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


def resolve_options(
    given: set[str],
    option_names,
    op_value,
    panel_value,
    panel_source: str | None,
    *,
    interactive: bool = False,
) -> dict[str, Any]:
    """The options of a run: the operator's where a script gave them, else the panel's.

    ``given``: the operator's options set by the caller; ``op_value(name)`` and
    ``panel_value(name)`` read an option (``panel_source`` is None when there is no panel).
    Interactive runs (the panel's button, F3, a dropped photo) take every option from the
    panel, except a photo given to the operator (a drop), so that values Blender remembers
    from an earlier run never override what the panel shows.
    """
    if interactive:
        given = given & {"filepath", "image"}
    values: dict[str, Any] = {}
    for name in option_names:
        from_op = name in given or panel_source is None
        values[name] = op_value(name) if from_op else panel_value(name)
    chosen = [key for key, name in SOURCES.items() if name in given]
    if not chosen:
        if panel_source is not None:  # the panel says which of its sources is meant
            chosen = [panel_source]
        else:
            chosen = [key for key, name in SOURCES.items() if values[name]] or ["FILE"]
    for key, name in SOURCES.items():
        if key not in chosen:
            values[name] = ""  # a source the run does not use, e.g. the panel's other one
    values["source"] = "PROMPT" if "PROMPT" in chosen else chosen[0]
    return values


def settings_dict(options: dict[str, Any], prefs: Any, abspath: Abspath = str) -> dict[str, Any]:
    """The core's Settings (core/settings.py) as the worker takes them; 0 means automatic."""
    settings: dict[str, Any] = {
        "max_size": int(options["max_size"]),
        "segment": options["segment"].lower(),
        "depth": options["depth"].lower(),
        "device": prefs.device.lower(),
        "mesh": options["mesh"].lower(),
        "open": bool(options["trim"]),
        "smooth": int(options["smooth"]),
        "cache": bool(prefs.use_cache),
        "texture": not bool(options.get("vertex_colors_only", False)),
        "quantize": "auto" if options.get("quantize", True) else "off",
    }
    rembg = (options.get("rembg_model") or prefs.rembg_model or "").strip()
    if rembg:
        settings["rembg_model"] = path_or_name(rembg, abspath)
    settings.update(
        model_source(options["depth_model"] or prefs.depth_model, "depth_model", abspath)
    )
    if not options["auto_fov"]:
        settings["fov"] = math.degrees(options["fov"])
    if options["poisson_depth"]:
        settings["poisson_depth"] = int(options["poisson_depth"])
    if options["target_faces"]:
        settings["target_faces"] = int(options["target_faces"])
    if options.get("shape", "AUTO") != "AUTO" and not options["trim"]:
        settings["shape"] = options["shape"].lower()
    if options["thickness"] > 0 and not options["trim"]:
        settings["thickness"] = float(options["thickness"])
    return settings


def model_source(value: str | None, name_key: str, abspath: Abspath = str) -> dict[str, str]:
    """A model field as the worker's settings: a local folder (``model_dir``) or a hub name."""
    model = (value or "").strip()
    if not model:
        return {}
    local = abspath(model)
    if os.path.isdir(local):
        return {"model_dir": os.path.abspath(local)}
    return {name_key: model}


def path_or_name(value: str, abspath: Abspath = str) -> str:
    """A rembg model: a .onnx file (made absolute) or a model name."""
    if value.lower().endswith(".onnx") or os.sep in value or "/" in value:
        return os.path.abspath(abspath(value))
    return value


def check_one_source(options: dict[str, Any]) -> None:
    if sum(bool(options[name]) for name in SOURCES.values()) > 1:
        raise WorkerError(
            "Give one thing to reconstruct: a photo, an image open in Blender or a prompt."
        )


def prompt_object(options: dict[str, Any], abspath: Abspath = str) -> dict[str, Any]:
    """The worker protocol's "prompt" object; WorkerError for an empty prompt."""
    text = options["prompt"].strip()
    if not text:
        raise WorkerError('The prompt is empty: describe one object, e.g. "a red toy car".')
    prompt: dict[str, Any] = {
        "text": text,
        "seed": int(options["seed"]),
        "raw": bool(options["raw_prompt"]),
    }
    if options["steps"]:
        prompt["steps"] = int(options["steps"])
    prompt.update(model_source(options["t2i_model"], "model", abspath))
    return prompt


def prompt_request(
    options: dict[str, Any], settings: dict[str, Any], folder: str, abspath: Abspath = str
) -> Request:
    """A text prompt's run: the worker makes the picture, which lands in ``folder``."""
    prompt = prompt_object(options, abspath)
    check_writable(folder)
    return Request(
        "",
        prompt_slug(prompt["text"]),
        settings,
        bool(options["create_camera"]),
        prompt=prompt,
        picture_folder=folder,
    )


def picture_folder(blend_path: str, data_dir: str) -> str:
    """Where generated pictures go: "generated" beside the saved .blend, else in the data folder.

    Beside the .blend, the picture travels with the project (and is referred to by a
    relative path); an unsaved file has no project folder yet, so the data folder keeps it.
    """
    if blend_path:
        return os.path.join(os.path.dirname(os.path.abspath(blend_path)), "generated")
    return os.path.join(data_dir, "generated")


def check_writable(folder: str) -> None:
    """Refuse now, before a minute of generating, if the picture could not be saved."""
    existing = folder
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise WorkerError(
            f"The generated picture cannot be saved in '{folder}': the folder is not writable."
        )


def file_stem(name: str) -> str:
    """A Blender image's name as a safe file name stem."""
    return "".join(c if c.isalnum() or c in "-_ " else "_" for c in name) or "photo"


def os_reason(exc: OSError, folder: str = "it") -> str:
    """Why a file could not be written, in words: "the disk is full", "it is not writable"."""
    import errno

    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return "the disk is full"
    if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
        return f"{folder} is not writable"
    return exc.strerror or str(exc)


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
        raise ResultError(
            f"The generated picture cannot be saved in '{folder}': {os_reason(exc, 'the folder')}."
        ) from None
    return target
