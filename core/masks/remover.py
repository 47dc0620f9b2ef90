"""The background remover: a rembg model by name, or the user's own ONNX file, one session per model kept."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelUnavailableError, OptionError, first_line
from ..storage.paths import rembg_home
from .families import custom_session
from .sessions import U2netSession


class BackgroundRemover:
    """rembg sessions, created once per model and kept for the next images."""

    def __init__(self) -> None:
        self._sessions: dict[str, object] = {}

    def mask(
        self,
        rgb: np.ndarray,
        model: str = "u2net",
        normalize: str = "auto",
        quantize: str = "off",
        message=None,
    ) -> np.ndarray:
        """Foreground probability (H, W) float32 in [0, 1] from a rembg model name or a custom .onnx file.

        ``normalize``: how a custom file's input is normalised (see :data:`NORMALIZATIONS`);
        ``quantize``: ``auto`` runs an INT8 copy once verified on a first photo (core.networks.int8);
        ``message(text)`` is told when that one-off preparation starts (it takes seconds).
        """
        session = self._session(model, normalize, quantize)
        session.message = message
        from PIL import Image

        try:
            out = session.predict(Image.fromarray(rgb))
        except Exception as exc:  # onnxruntime raises its own types for shape errors
            if _is_custom(model):
                raise OptionError(
                    f"The custom ONNX model '{Path(model).name}' cannot segment this image: "
                    f"it must take a 1x3xHxW image and return a mask ({first_line(exc)})."
                ) from None
            raise
        return np.asarray(out[0], dtype=np.float32) / 255.0

    def load(self, model: str = "u2net", normalize: str = "auto", quantize: str = "off") -> None:
        """Create the model's session now (it is otherwise made on the first mask)."""
        self._session(model, normalize, quantize)

    def _session(self, model: str, normalize: str = "auto", quantize: str = "off"):
        key = f"{Path(model).resolve()}|{normalize}" if _is_custom(model) else model
        key += f"|{quantize}"
        if key not in self._sessions:
            self._sessions[key] = _new_session(model, normalize, quantize)
        return self._sessions[key]

    def quantization(self) -> str | None:
        """What the last-used session's INT8 copy is doing, for the run's report (None: not tried)."""
        for session in reversed(list(self._sessions.values())):
            note = getattr(session, "int8_note", None)
            if note:
                return note
        return None


def _is_custom(model: str) -> bool:
    return model.lower().endswith(".onnx") or os.sep in model or "/" in model


#: rembg's U^2-Net-style models: their sessions resize to 320 x 320, normalise with
#: ImageNet's statistics and min-max scale the first output, which :class:`U2netSession`
#: repeats without importing rembg (whose package import pulls pymatting, numba and
#: scikit-image: about two seconds before the first mask).
U2NET_FAMILY = ("u2net", "u2netp", "u2net_human_seg", "silueta")


def _new_session(model: str, normalize: str = "auto", quantize: str = "off"):

    # rembg reads its model folder from the environment; ours unless the user set theirs.
    if not (os.environ.get("U2NET_HOME") or os.environ.get("REMBG_HOME")):
        os.environ["REMBG_HOME"] = str(rembg_home())
    if _is_custom(model):
        return custom_session(Path(model), normalize, quantize)
    if model in U2NET_FAMILY:
        local = _downloaded(model)
        if local is not None:
            try:
                return U2netSession(local, clip=True, quantize=quantize)
            except Exception:  # a damaged download: rembg's own session reports it
                pass

    from rembg import new_session
    from rembg.sessions import sessions_names

    local = [
        n
        for n in sessions_names
        if n not in ("u2net_custom", "dis_custom", "ben_custom", "atlascloud", "withoutbg", "sam")
    ]
    if model not in local:
        raise OptionError(
            f"Unknown background-removal model '{model}': use one of {', '.join(sorted(local))}, "
            "or the path of a custom .onnx file."
        )
    import logging

    import pooch

    # pooch announces every download attempt on stderr (its own, unregistered logger)
    pooch.get_logger().setLevel(logging.WARNING)
    try:
        return new_session(model)
    except OSError as exc:
        folder = Path(rembg_home()) / "models" / model
        reason = _network_reason(exc)
        raise ModelUnavailableError(
            f"The background-removal model '{model}' is not in {folder} and could not be "
            f"downloaded ({reason}). Connect to the internet once so it is stored "
            f"there, copy {model}.onnx into that folder, pass your own file with "
            "--rembg-model FILE.onnx, or use the weight-free --segment key for photos on a plain "
            "background.",
            code="rembg_model_unavailable",
            field="rembg_model",
            details={"model": model, "folder": str(folder), "reason": reason},
        ) from None


def _network_reason(exc: BaseException) -> str:
    text = str(exc)
    if any(
        k in text for k in ("Max retries", "NameResolution", "Connection", "resolve", "timed out")
    ):
        return "the download server cannot be reached"
    return first_line(exc)


def _downloaded(model: str) -> Path | None:
    """The model file rembg downloaded earlier, where rembg looks for it, or None."""

    legacy = os.environ.get("U2NET_HOME") or os.path.join(
        os.environ.get("XDG_DATA_HOME", "~"), ".u2net"
    )
    for folder in (rembg_home() / "models" / model, Path(legacy).expanduser()):
        candidate = folder / f"{model}.onnx"
        if candidate.is_file():
            return candidate
    return None
