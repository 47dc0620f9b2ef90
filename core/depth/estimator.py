"""A Hugging Face depth network, loaded once and kept: PyTorch, or ONNX Runtime once its depth is verified."""

from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelUnavailableError, OptionError
from ..networks.devices import cpu_for_sure, pick_device

#: What each architecture's output means. "disparity" outputs are affine-invariant
#: inverse depth (Depth Anything relative, MiDaS/DPT); the rest are metres.
OUTPUT_KIND = {
    "glpn": "metric",
    "zoedepth": "metric",
    "depth_pro": "metric",
    "prompt_depth_anything": "metric",
    "dpt": "disparity",
}


@dataclass
class DepthPrediction:
    """A depth network's output at the image's size, before conversion to depth.

    values: (H, W) float32; kind: "metric" (metres along the optical axis) or
    "disparity" (relative inverse depth, larger is nearer).
    focal_px: the model's own estimate of the focal length in pixels of this image, if any.
    """

    values: np.ndarray
    kind: str
    focal_px: float | None = None


#: How the network runs: ``auto`` uses ONNX Runtime where its depth is verified to match
#: PyTorch's (see core.depth_onnx), else PyTorch; ``onnx`` insists on ONNX Runtime.
BACKENDS = ("auto", "torch", "onnx")


class DepthEstimator:
    """A loaded depth model, kept in memory for the next images.

    With the ``auto`` backend on the CPU, a model that ONNX Runtime has already run and
    verified (core.depth_onnx) loads without torch and transformers; otherwise the
    PyTorch model loads, and its first run of each input shape also exports and
    verifies the ONNX graph for the next ones. ``backend`` says what ran last,
    ``backend_note`` why, and ``warnings`` collects what the user should know.
    """

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        model_dir: str | None = None,
        kind: str = "auto",
        resolution: int | None = None,
        backend: str = "auto",
        quantize: str = "off",
    ) -> None:
        if backend not in BACKENDS:
            raise OptionError(
                f"Unknown depth backend '{backend}': choose one of {', '.join(BACKENDS)}."
            )
        self.model_id = model
        self.source = str(model_dir) if model_dir else model
        self.requested_device = device
        self.kind_override = kind
        self.resolution = resolution
        self.requested_backend = backend
        self.quantize = quantize  # "auto": INT8 where verified per input size (core.networks.int8)
        self.device: str | None = None
        self.backend: str | None = None  # "onnxruntime" or "pytorch", once something ran
        self.backend_note: str = ""
        self.warnings: list[str] = []
        #: seconds of the last network call alone (no pre- or post-processing)
        self.last_forward_s: float | None = None
        self._model = None
        self._processor = None
        self._config: dict | None = None
        self._onnx = None  # core.depth_onnx.OnnxDepthModel when ONNX Runtime may be used
        self._onnx_checked = False

    @property
    def loaded(self) -> bool:
        return self._model is not None or (self._onnx is not None and self._onnx.any_verified())

    def load(self, image_size: tuple[int, int] | None = None) -> None:
        """Load what the next run needs; ``image_size`` (width, height) readies its ONNX session too."""
        if self.requested_backend != "torch" and not self._onnx_checked:
            self._onnx_checked = True
            self._onnx = self._onnx_model()
        if self._onnx is not None and self._onnx.any_verified():
            self.device = "cpu"
            if image_size is not None:
                shape = self._onnx.preprocessing.input_shape(
                    *self._network_size(*image_size), self._size_override()
                )
                self._onnx.session(shape)
            if self._model is None:
                return
        if self._model is None:
            self._load_torch()

    def _onnx_model(self):
        """The ONNX Runtime side of this model, or None (with the reason in the note or warnings)."""
        from .onnx_graphs import OnnxDepthModel
        from .preprocessing import NotSupported, local_model_folder

        device = cpu_for_sure(self.requested_device)
        if not device:
            device = pick_device(self.requested_device)
        if device != "cpu":
            if self.requested_backend == "onnx":
                raise OptionError(
                    f"The ONNX Runtime depth backend runs on the CPU, not on {device}: "
                    "use --device cpu with --depth-backend onnx."
                )
            self.backend_note = f"PyTorch on {device} (ONNX Runtime is used on the CPU only)"
            return None
        folder = local_model_folder(self.source)
        if folder is None:
            # not downloaded yet: PyTorch's loading fetches it, then the model is looked at again
            self._onnx_checked = False
            return None
        try:
            onnx = OnnxDepthModel(folder, self.source)
            onnx.quantize = self.quantize
            return onnx
        except NotSupported as exc:
            reason = str(exc)
        except (OSError, ValueError) as exc:
            reason = f"its configuration could not be read ({exc})"
        if self.requested_backend == "onnx":
            raise OptionError(f"The ONNX Runtime depth backend cannot run this model: {reason}.")
        if reason == "onnxruntime is not installed":
            self.warnings.append(
                "ONNX Runtime is not installed, so the depth network runs in PyTorch (slower)."
            )
        self.backend_note = f"PyTorch ({reason})"
        return None

    def _load_torch(self) -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        from ..storage.paths import hf_cache_dir

        self.device = pick_device(self.requested_device)
        torch.set_num_threads(os.cpu_count() or 1)
        local = Path(self.source).expanduser()
        if self.source != self.model_id and not local.is_dir():
            raise ModelUnavailableError(f"The model folder '{self.source}' does not exist.")
        cache = hf_cache_dir()
        kwargs = {"cache_dir": str(cache)} if cache and not local.is_dir() else {}
        from ..networks.hub import from_pretrained, no_loading_bars

        try:
            with no_loading_bars("transformers"):
                processor = from_pretrained(AutoImageProcessor, str(self.source), **kwargs)
                # Only safetensors: never unpickle weights (no torch.load), never run repo code.
                model = from_pretrained(
                    AutoModelForDepthEstimation,
                    str(self.source),
                    use_safetensors=True,
                    trust_remote_code=False,
                    **kwargs,
                )
        except ValueError as exc:
            if "Unrecognized" in str(exc) or "configuration class" in str(exc):
                raise OptionError(
                    f"'{self.source}' is not a depth-estimation model that transformers knows "
                    "(AutoModelForDepthEstimation cannot load it)."
                ) from None
            raise self._unavailable(exc) from None
        except OSError as exc:
            raise self._unavailable(exc) from None
        model.eval().to(self.device)
        self._processor, self._model = processor, model
        self._config = model.config.to_dict()
        if self.requested_backend != "torch" and not self._onnx_checked:
            self._onnx_checked = True
            self._onnx = self._onnx_model()  # a download has just put the files in place

    def _unavailable(self, exc: BaseException) -> ModelUnavailableError:
        from ..storage.paths import hf_cache_dir

        where = hf_cache_dir() or "your Hugging Face cache (HF_HOME / HF_HUB_CACHE)"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if Path(self.source).expanduser().is_dir():
            return ModelUnavailableError(
                f"The depth model in '{self.source}' could not be loaded ({reason}). "
                "The folder must hold config.json, preprocessor_config.json and model.safetensors "
                "as saved by save_pretrained (or downloaded with `hf download MODEL --local-dir DIR`)."
            )
        return ModelUnavailableError(
            f"The depth model '{self.model_id}' could not be loaded: its weights are not in {where} "
            f"and could not be downloaded from the Hugging Face hub ({reason}). "
            "Connect to the internet once so the weights are cached, or download them on another "
            f"machine (`hf download {self.model_id} --local-dir DIR`) and pass --model-dir DIR. "
            "Without weights, --depth inflate (or --depth-map FILE) still makes a mesh.",
            code="depth_model_unavailable",
            field="depth_model",
            details={"model": self.model_id, "where": str(where), "reason": reason},
        )

    @property
    def _model_config(self) -> dict:
        if self._config is None:
            self._config = dict(self._onnx.config) if self._onnx is not None else {}
        return self._config

    @property
    def output_kind(self) -> str:
        if self.kind_override != "auto":
            return self.kind_override
        cfg = self._model_config
        model_type = cfg.get("model_type")
        kind = OUTPUT_KIND.get(model_type)
        if kind is None and model_type == "depth_anything":
            kind = (
                "metric"
                if cfg.get("depth_estimation_type", "relative") == "metric"
                else "disparity"
            )
        return kind or "disparity"

    def _is_glpn(self) -> bool:
        return self._model_config.get("model_type") == "glpn"

    def _network_size(self, width: int, height: int) -> tuple[int, int]:
        """Size of the image handed to the processor (GLPN's is capped here, see predict)."""
        if self._is_glpn():
            return _glpn_size(width, height, self.resolution or 480)
        return width, height

    def _size_override(self) -> tuple[int, int] | None:
        if self._is_glpn() or not self.resolution:
            return None
        return (self.resolution, self.resolution)

    def predict(self, rgb: np.ndarray, message=None) -> DepthPrediction:
        """Run the network on an (H, W, 3) uint8 image; the output is resized back to (H, W).

        ``message(text)`` is told about one-off work (the ONNX export on a first run).
        """
        from PIL import Image

        self.load()
        h, w = rgb.shape[:2]
        image = Image.fromarray(rgb)
        if self._is_glpn():
            # GLPN takes any size (multiple of 32); cap the height as the original design did (480).
            image = _resize_for_glpn(image, self.resolution or 480)
        size = self._size_override()
        onnx = self._onnx
        shape = onnx.preprocessing.input_shape(*image.size, size) if onnx is not None else None
        if onnx is not None:
            session = onnx.session(shape)
            if session is not None:
                pixel_values = onnx.preprocessing(image, size)
                values = onnx.run(session, pixel_values, h, w)
                self.last_forward_s = onnx.last_forward_s
                self.backend = "onnxruntime"
                self.backend_note = "ONNX Runtime (verified against PyTorch for this input size)"
                int8 = onnx.int8(shape)
                if int8 is not None and int8.status is None:
                    if message is not None:
                        message("Preparing an INT8 depth network (once per model and size)")
                    onnx.try_int8(shape, pixel_values, values, self.output_kind)
                if int8 is not None and int8.status == "verified":
                    if int8.session is session:
                        self.backend_note = (
                            f"ONNX Runtime, INT8 (99% of the depth within {int8.measure:.2%} "
                            "of full precision on its first photo of this size)"
                        )
                    else:
                        self.backend_note += "; INT8 copy verified for the next photos"
                elif int8 is not None and int8.status == "refused":
                    self.backend_note += f"; INT8 refused: {int8.reason}"
                return DepthPrediction(values, self.output_kind, None)
        if self._model is None:
            self._load_torch()
        if onnx is None and self._onnx is not None:  # found once PyTorch had the files
            onnx = self._onnx
            shape = onnx.preprocessing.input_shape(*image.size, size)
        pred, pixel_values = self._predict_torch(image, h, w, size)
        self.backend = "pytorch"
        if onnx is None:
            if self.requested_backend == "torch":
                self.backend_note = "PyTorch (asked for with the torch backend)"
            return pred
        if tuple(pixel_values.shape[-2:]) != shape or pred.focal_px is not None:
            # the processor did something else than core.depth_onnx repeats: stay with PyTorch
            self.backend_note = "PyTorch (the model's input is not the one ONNX Runtime would get)"
            return pred
        refused = onnx.refused(shape)
        if refused is None:
            if message is not None:
                message("Preparing a faster depth network (once per model and size)")
            ok, what = onnx.export_and_verify(
                self._model, pixel_values, image, size, pred.values, pred.kind
            )
            if ok:
                self.backend_note = f"PyTorch; ONNX Runtime graph exported and {what}"
                self._release_torch()
                int8 = onnx.int8(shape)
                if int8 is not None:  # its INT8 copy, checked against PyTorch's depth
                    onnx.try_int8(shape, onnx.preprocessing(image, size), pred.values, pred.kind)
                    self.backend_note += (
                        "; INT8 copy verified for the next photos"
                        if int8.status == "verified"
                        else f"; INT8 refused: {int8.reason}"
                    )
                return pred
            refused = what
        self.backend_note = f"PyTorch (ONNX Runtime not used: {refused})"
        warning = f"The depth network ran in PyTorch because {refused}."
        # a data folder that cannot be written is said once for all (core.storage.datafolder)
        if warning not in self.warnings and not onnx.unwritable(shape):
            self.warnings.append(warning)
        return pred

    def _predict_torch(self, image, h: int, w: int, size) -> tuple[DepthPrediction, object]:
        import torch

        kwargs = {"size": {"height": size[0], "width": size[1]}} if size else {}
        inputs = self._processor(images=image, return_tensors="pt", **kwargs)
        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        with torch.inference_mode():
            t0 = time.perf_counter()
            outputs = self._model(**inputs)
            self.last_forward_s = time.perf_counter() - t0
            post = self._processor.post_process_depth_estimation
            params = inspect.signature(post).parameters
            extra = {"source_sizes": [(h, w)]} if "source_sizes" in params else {}
            result = post(outputs, target_sizes=[(h, w)], **extra)[0]
        values = result["predicted_depth"].detach().float().cpu().numpy().astype(np.float32)
        focal = result.get("focal_length")
        focal_px = float(focal) if focal is not None else None
        pred = DepthPrediction(
            np.ascontiguousarray(values.reshape(h, w)), self.output_kind, focal_px
        )
        return pred, inputs["pixel_values"]

    def _release_torch(self) -> None:
        """The verified ONNX graph replaces the PyTorch model in memory."""
        import gc

        self._model = None
        self._processor = None
        gc.collect()


def _glpn_size(width: int, height: int, max_height: int) -> tuple[int, int]:
    nh = min(height, max_height)
    nh = max(32, nh - nh % 32)
    nw = max(32, int(round(width * nh / height / 32.0)) * 32)
    return nw, nh


def _resize_for_glpn(image, max_height: int):
    """Height at most ``max_height`` and both sides multiples of 32, keeping the aspect ratio."""
    from PIL import Image

    w, h = image.size
    nw, nh = _glpn_size(w, h, max_height)
    if (nw, nh) == (w, h):
        return image
    return image.resize((nw, nh), Image.Resampling.BICUBIC)
