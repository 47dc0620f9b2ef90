"""What the worker and the Blender add-on must agree on: protocol version, stages, result keys, defaults, error codes.

Standard library only, and no imports from the rest of the package: the add-on ships a
byte-identical copy of this file as ``img2mesh_addon/logic/protocol.py`` (the add-on cannot
import the core, which lives in another Python). Edit ``core/protocol.py`` and copy it over;
``tests/addon_pure/test_protocol.py`` and ``scripts/build_extension.py`` refuse copies that
differ. docs/worker-protocol.md describes the messages.
"""

from __future__ import annotations

import re

#: Version of the request/event protocol; bumped when a message changes meaning.
#: 2: the ``cancel`` request and the ``cancelled`` event; errors carry ``code`` and ``field``.
PROTOCOL = 2
#: Version of the result file layout written (docs/result-format.md).
RESULT_FORMAT = 1

# ------------------------------------------------------------------------------ messages
#: Requests the worker reads on stdin.
REQUESTS = ("reconstruct", "cancel", "ping", "shutdown")
#: Events the worker writes on stdout.
EVENTS = ("ready", "progress", "done", "cancelled", "error")

# -------------------------------------------------------------------------------- stages
#: Stages of a photo's run, in order, as progress events name them.
PHOTO_STAGES = ("load", "segment", "depth", "pointcloud", "mesh")
#: A text prompt's run makes the picture first.
PROMPT_STAGES = ("generate", *PHOTO_STAGES)
#: What each stage is called on a progress bar.
STAGE_LABELS = {
    "generate": "Generating image",  # before "load", only for a text prompt
    "load": "Loading image",
    "segment": "Removing background",
    "depth": "Estimating depth",
    "pointcloud": "Building point cloud",
    "mesh": "Meshing",
}
#: Share of the whole run each stage takes, for one overall progress fraction. Making a
#: prompt's picture takes about twice as long as reconstructing it (SD-Turbo on a CPU).
STAGE_WEIGHTS = {
    "generate": 2.0,
    "load": 0.05,
    "segment": 0.15,
    "depth": 0.35,
    "pointcloud": 0.1,
    "mesh": 0.35,
}


def overall(stage: str, fraction: float, stages: tuple[str, ...] = PHOTO_STAGES) -> float:
    """The whole run's progress in [0, 1] when ``stage`` is ``fraction`` done."""
    total = sum(STAGE_WEIGHTS[name] for name in stages)
    done = 0.0
    for name in stages:
        weight = STAGE_WEIGHTS[name]
        if name == stage:
            return (done + weight * min(max(fraction, 0.0), 1.0)) / total
        done += weight
    return done / total


# ------------------------------------------------------------------------------ requests
#: The fields of a request's "prompt" object and the Pipeline.generate options they become.
PROMPT_FIELDS = {
    "text": "prompt",
    "seed": "seed",
    "steps": "steps",
    "model": "model",
    "model_dir": "model_dir",
    "raw": "raw_prompt",
    "width": "width",
    "height": "height",
}

#: Defaults of core.settings.Settings that the add-on shows as its own defaults.
DEFAULT_DEPTH_MODEL = "vinvino02/glpn-nyu"
DEFAULT_REMBG_MODEL = "u2net"
DEFAULT_T2I_MODEL = "stabilityai/sd-turbo"  # prompts; licence, why: core/networks/text2image.py
DEFAULT_MAX_SIZE = 640  # longest side of the working image, pixels
DEFAULT_SMOOTH = 0
#: Limits checked by core.settings.Settings (the add-on's fields use the same).
MIN_MAX_SIZE = 32
POISSON_DEPTH_RANGE = (4, 12)
MIN_TARGET_FACES = 4
MAX_THICKNESS = 10.0

# ------------------------------------------------------------------------------- results
#: Arrays every result .npz holds (docs/result-format.md).
RESULT_MESH_KEYS = ("vertices", "faces", "colors")
#: Arrays a result needs for its camera.
RESULT_CAMERA_KEYS = ("intrinsics", "camera_location")
#: Arrays a result may hold.
RESULT_OPTIONAL_KEYS = (
    "normals",
    "camera_rotation",
    "image_path",
    "image_upright_of",
    "format_version",
    "fov_source",
    "texture_uv",
    "texture_png",
)
#: The keys of the JSON text in "intrinsics".
INTRINSICS_KEYS = ("fx", "fy", "cx", "cy", "width", "height")

# -------------------------------------------------------------------------------- errors
#: An error event's ``code``: a failure each side words in its own terms from the event's
#: ``details`` (the command line names flags, the add-on its panel's settings). An error
#: without a code is shown as its ``message``.
ERROR_CODES = {
    "device_unavailable": "the asked device (details: device) cannot be used",
    "depth_model_unavailable": "the depth model (details: model, where, reason) cannot be loaded",
    "rembg_model_unavailable": "the background-removal model (details: model, folder, reason)",
    "key_found_nothing": "the plain-backdrop mask found no object",
    "t2i_model_unavailable": "the text-to-image model (details: model, where, reason, download, "
    "gated) cannot be loaded",
}


def prompt_slug(prompt: str, max_length: int = 40) -> str:
    """A file name stem from a prompt: "A red toy car!" -> "a-red-toy-car"."""
    slug = ""
    for word in re.findall(r"[^\W_]+", prompt.lower()):
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_length:
            break
        slug = candidate
    return slug or "prompt"


def srgb_to_linear(c):
    """sRGB-encoded values in [0, 1] to linear light (IEC 61966-2-1), as float32 numpy arrays.

    Colours travel as sRGB (docs/result-format.md); glTF and older Blenders want linear.
    numpy is imported here, not above, so that this module stays standard-library only.
    """
    import numpy as np

    c = np.clip(np.asarray(c, dtype=np.float32), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)
