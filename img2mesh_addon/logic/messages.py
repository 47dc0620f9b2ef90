"""What the add-on says: worker errors worded in the panel's and preferences' terms, from their fields.

The core words its advice for the command line (``--device cuda``); an error event also
carries a ``code`` (core/protocol.py ERROR_CODES) and ``details``, from which the add-on
words the same advice in terms of its own settings. An error without a code (or with one
this add-on does not know) is shown as the core wrote it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .protocol import STAGE_LABELS

CANCELLED = "Reconstruction cancelled."
OFFLINE = (
    "Blender's online access is off (Preferences > System > Network), so nothing is downloaded."
)


def _device(d: Mapping[str, str]) -> str:
    device = d.get("device", "")
    where = f"(Device: {device.upper()}, in the add-on's preferences)"
    if device == "mps":
        return f"MPS was asked for {where} but this PyTorch cannot use Apple's GPU."
    return f"{device.upper()} was asked for {where} but no CUDA GPU is available to PyTorch."


def _depth_model(d: Mapping[str, str]) -> str:
    model = d.get("model", "")
    return (
        f"The depth model '{model}' could not be loaded: its weights are not in {d.get('where')} "
        f"and could not be downloaded from the Hugging Face hub ({d.get('reason')}). "
        "Connect to the internet once so the weights are cached, or download them on another "
        f"machine (`hf download {model} --local-dir DIR`) and give that folder as the Depth "
        "Model. Without weights, Depth: Inflate Silhouette still makes a mesh."
    )


def _rembg_model(d: Mapping[str, str]) -> str:
    model = d.get("model", "")
    return (
        f"The background-removal model '{model}' is not in {d.get('folder')} and could not be "
        f"downloaded ({d.get('reason')}). Connect to the internet once so it is stored there, "
        f"copy {model}.onnx into that folder, choose your own .onnx file as the Background "
        "Removal Model in the add-on's preferences, or use the weight-free Options > "
        "Background: Plain Backdrop for photos on a plain background."
    )


def _key_found_nothing(_d: Mapping[str, str]) -> str:
    return (
        "No object stands out from the background colour: Plain Backdrop needs an object on a "
        "plain background."
    )


def _t2i_model(d: Mapping[str, str]) -> str:
    gated = (
        " If the model is gated, accept its licence on its Hugging Face page and log in "
        "with `hf auth login`."
    )
    return (
        f"The text-to-image model '{d.get('model')}' could not be loaded: its weights are not "
        f"in {d.get('where')} and could not be downloaded from the Hugging Face hub "
        f"({d.get('reason')}). Connect to the internet once so the weights are cached, or "
        f"download them on another machine (`{d.get('download')}`) and give that folder as the "
        "prompt's Model." + (gated if d.get("gated") else "") + " A photo still works without it."
    )


#: How the add-on words each of the core's error codes.
WORDING: dict[str, Callable[[Mapping[str, str]], str]] = {
    "device_unavailable": _device,
    "depth_model_unavailable": _depth_model,
    "rembg_model_unavailable": _rembg_model,
    "key_found_nothing": _key_found_nothing,
    "t2i_model_unavailable": _t2i_model,
}


def error_text(error: Mapping, *, online: bool = True) -> str:
    """An error event (kind, message, code, details) as the sentence the add-on shows."""
    message = str(error.get("message") or "The reconstruction failed.")
    word = WORDING.get(str(error.get("code") or ""))
    details = error.get("details") or {}  # the worker leaves out empty fields
    if word is not None and isinstance(details, Mapping):
        message = word({str(k): str(v) for k, v in details.items()})
    if error.get("kind") == "ModelUnavailableError" and not online:
        message += " " + OFFLINE
    return message


def stage_label(stage: str) -> str:
    """The progress bar's words for a stage ("start": before the worker has answered)."""
    if stage == "start":
        return "Starting the worker"
    return STAGE_LABELS.get(stage, "")
