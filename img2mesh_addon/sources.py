"""What a run reconstructs, taken from Blender: a photo file, an image open in Blender, or a prompt."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import bpy

from . import preferences, worker_client
from .logic import requests
from .logic.errors import WorkerError
from .logic.requests import Request


def build_request(options: dict[str, Any], prefs: Any) -> Request:
    """The photo on disk, the object's name and the settings; WorkerError with a sentence if unusable."""
    abspath = bpy.path.abspath
    settings = requests.settings_dict(options, prefs, abspath)
    create_camera = bool(options["create_camera"])
    requests.check_one_source(options)
    if options.get("source") == "PROMPT" or options["prompt"]:
        folder = requests.picture_folder(bpy.data.filepath, preferences.data_dir(prefs))
        return requests.prompt_request(options, settings, folder, abspath)
    if options["filepath"]:
        path = os.path.abspath(abspath(options["filepath"]))
        return Request(path, Path(path).stem or "Photo", settings, create_camera)
    if not options["image"]:
        raise WorkerError("Choose a photo first (a file, or an image open in Blender).")
    image = bpy.data.images.get(options["image"])
    if image is None:
        raise WorkerError(f"There is no image named '{options['image']}' in Blender.")
    name = Path(image.name).stem or image.name
    if image.packed_file is not None:
        scratch = worker_client.private_folder("img2mesh-input-")
        suffix = Path(image.filepath or image.name).suffix or ".png"
        path = os.path.join(scratch, requests.file_stem(name) + suffix)
        try:
            with open(path, "wb") as fh:
                fh.write(image.packed_file.data)
        except OSError as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise WorkerError(
                f"The packed image '{image.name}' cannot be written to the temp folder "
                f"{tempfile.gettempdir()} ({requests.os_reason(exc)})."
            ) from None
        request = Request(path, name, settings, create_camera, scratch=scratch)
    elif image.source == "FILE" and image.filepath:
        path = os.path.abspath(abspath(image.filepath, library=image.library))
        request = Request(path, name, settings, create_camera)
    else:
        raise WorkerError(
            f"The image '{image.name}' has no file to reconstruct from; save it first "
            "(Image > Save As)."
        )
    request.source_image = image.name  # by name: the image itself may go with an undo
    return request
