"""A depth model's files and image steps without transformers: where its files are, its processor's steps, the resize back."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class NotSupported(Exception):
    """This model or machine cannot use the ONNX Runtime backend; the message says why."""


#: model_type -> the image processor family whose steps :class:`Preprocessing` repeats.
SUPPORTED_MODELS = {"glpn": "glpn", "depth_anything": "dpt", "dpt": "dpt"}


#: PIL resampling filters by the numbers transformers stores in preprocessor_config.json.
_RESAMPLE = {0: "NEAREST", 1: "LANCZOS", 2: "BILINEAR", 3: "BICUBIC", 4: "BOX", 5: "HAMMING"}


@dataclass(frozen=True)
class Preprocessing:
    """The steps of a GLPN or DPT image processor (as transformers' PIL backend does them).

    GLPN: resize down to multiples of ``size_divisor``, rescale to [0, 1].
    DPT (also Depth Anything): resize to ``size``, keeping the aspect ratio (scaling as
    little as possible) and rounding to multiples of ``ensure_multiple_of``; rescale;
    normalise with ``mean`` and ``std``; optionally pad to multiples of ``pad_divisor``.
    """

    family: str
    resample: int = 2
    do_resize: bool = True
    size: tuple[int, int] | None = None  # (height, width), DPT
    size_divisor: int = 32  # GLPN
    keep_aspect_ratio: bool = False
    ensure_multiple_of: int = 1
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = False
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    do_pad: bool = False
    pad_divisor: int | None = None

    @classmethod
    def from_config(cls, config: dict, model_type: str) -> Preprocessing:
        """From a model's preprocessor_config.json; raises :class:`NotSupported` for other processors."""
        family = SUPPORTED_MODELS.get(model_type)
        kind = str(config.get("image_processor_type") or config.get("feature_extractor_type") or "")
        if family is None:
            raise NotSupported(f"the ONNX Runtime backend does not handle '{model_type}' models")
        if family == "glpn" and kind.startswith("GLPN"):
            return cls(
                family="glpn",
                resample=int(config.get("resample", 2)),
                do_resize=bool(config.get("do_resize", True)),
                size_divisor=int(config.get("size_divisor", 32)),
                do_rescale=bool(config.get("do_rescale", True)),
                rescale_factor=float(config.get("rescale_factor", 1 / 255)),
            )
        if family == "dpt" and kind.startswith("DPT"):
            size = config.get("size") or {"height": 384, "width": 384}
            if not isinstance(size, dict) or not {"height", "width"} <= set(size):
                raise NotSupported(f"the image processor's size {size!r} is not a height and width")
            return cls(
                family="dpt",
                resample=int(config.get("resample", 3)),
                do_resize=bool(config.get("do_resize", True)),
                size=(int(size["height"]), int(size["width"])),
                keep_aspect_ratio=bool(config.get("keep_aspect_ratio", False)),
                ensure_multiple_of=int(config.get("ensure_multiple_of", 1)),
                do_rescale=bool(config.get("do_rescale", True)),
                rescale_factor=float(config.get("rescale_factor", 1 / 255)),
                do_normalize=bool(config.get("do_normalize", True)),
                mean=tuple(float(v) for v in config.get("image_mean", (0.5, 0.5, 0.5))),
                std=tuple(float(v) for v in config.get("image_std", (0.5, 0.5, 0.5))),
                do_pad=bool(config.get("do_pad", False)),
                pad_divisor=config.get("size_divisor"),
            )
        raise NotSupported(f"the image processor '{kind or 'unknown'}' is not one it repeats")

    def resized_size(self, width: int, height: int, size: tuple[int, int] | None = None):
        """(width, height) the processor resizes an image of ``width`` x ``height`` to."""
        if not self.do_resize:
            return width, height
        if self.family == "glpn":
            d = self.size_divisor
            return width // d * d, height // d * d
        out_h, out_w = size or self.size
        scale_h, scale_w = out_h / height, out_w / width
        if self.keep_aspect_ratio:
            # scale as little as possible
            if abs(1 - scale_w) < abs(1 - scale_h):
                scale_h = scale_w
            else:
                scale_w = scale_h
        m = self.ensure_multiple_of
        return _multiple(scale_w * width, m), _multiple(scale_h * height, m)

    def input_shape(self, width: int, height: int, size=None) -> tuple[int, int]:
        """(height, width) of the network input for an image of ``width`` x ``height``."""
        w, h = self.resized_size(width, height, size)
        if self.do_pad and self.pad_divisor:
            p = int(self.pad_divisor)
            w, h = math.ceil(w / p) * p, math.ceil(h / p) * p
        return h, w

    def __call__(self, image, size: tuple[int, int] | None = None) -> np.ndarray:
        """(1, 3, H, W) float32 pixel values of a PIL image."""
        from PIL import Image

        image = image.convert("RGB")
        w, h = self.resized_size(*image.size, size)
        if (w, h) != image.size:
            image = image.resize((w, h), getattr(Image.Resampling, _RESAMPLE[self.resample]))
        x = np.asarray(image).transpose(2, 0, 1)
        if self.do_rescale:
            # transformers upcasts to float64 before scaling, then stores float32
            x = (x.astype(np.float64) * self.rescale_factor).astype(np.float32)
        else:
            x = x.astype(np.float32)
        if self.do_normalize:
            mean = np.array(self.mean, dtype=np.float32)[:, None, None]
            std = np.array(self.std, dtype=np.float32)[:, None, None]
            x = (x - mean) / std
        if self.do_pad and self.pad_divisor:
            x = _center_pad(x, int(self.pad_divisor))
        return np.ascontiguousarray(x[None], dtype=np.float32)


def _multiple(value: float, multiple: int) -> int:
    x = round(value / multiple) * multiple
    if x < 0:
        x = math.ceil(value / multiple) * multiple
    return int(x)


def _center_pad(x: np.ndarray, divisor: int) -> np.ndarray:
    _, h, w = x.shape
    nh, nw = math.ceil(h / divisor) * divisor, math.ceil(w / divisor) * divisor
    top, left = (nh - h) // 2, (nw - w) // 2
    return np.pad(x, ((0, 0), (top, nh - h - top), (left, nw - w - left)))


def resize_bicubic(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a 2-D array as ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)`` does.

    Cubic convolution with A = -0.75 at half-pixel centres, edge pixels repeated, no
    antialiasing; done as two small matrix products. Agrees with torch to about 1e-5
    relative on noise, far closer on depth maps (torch rounds its weights to float32).
    """
    values = np.asarray(values)
    if values.shape == (height, width):
        return values.astype(np.float32)
    rows = _cubic_weights(values.shape[0], height)
    cols = _cubic_weights(values.shape[1], width)
    return (rows @ values.astype(np.float64) @ cols.T).astype(np.float32)


def _cubic_weights(n_in: int, n_out: int, a: float = -0.75) -> np.ndarray:
    # source coordinates in float32, as torch computes them for float32 tensors
    scale = np.float32(n_in) / np.float32(n_out)
    x = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    x0 = np.floor(x)
    t = (x - x0).astype(np.float64)

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    weights = np.zeros((n_out, n_in), dtype=np.float64)
    out = np.arange(n_out)
    for offset, w in ((-1, far(t + 1)), (0, near(t)), (1, near(1 - t)), (2, far(2 - t))):
        idx = np.clip(x0.astype(np.int64) + offset, 0, n_in - 1)
        np.add.at(weights, (out, idx), w)
    return weights


def local_model_folder(source: str) -> Path | None:
    """The folder holding the model's config, processor config and safetensors weights, or None.

    ``source`` is a local folder or a hub id already in the Hugging Face cache (found
    without importing huggingface_hub and without any network access).
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return path if _complete(path) else None
    if source.count("/") != 1:
        return None
    repo = _hub_cache() / f"models--{source.replace('/', '--')}"
    try:
        commit = (repo / "refs" / "main").read_text().strip()
    except OSError:
        return None
    snapshot = repo / "snapshots" / commit
    return snapshot if _complete(snapshot) else None


def _complete(folder: Path) -> bool:
    names = {"config.json", "preprocessor_config.json"}
    if not all((folder / n).is_file() for n in names):
        return False
    return any(folder.glob("*.safetensors"))


def _hub_cache() -> Path:
    from ..storage.paths import hf_cache_dir

    ours = hf_cache_dir()
    if ours is not None:
        return ours
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    return Path(os.environ["HF_HOME"]).expanduser() / "hub"
