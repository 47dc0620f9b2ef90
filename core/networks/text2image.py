"""Text prompt to picture: a diffusers text-to-image pipeline, loaded once, seeded, cancellable."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Cancelled, MissingExtraError, ModelUnavailableError, OptionError
from ..protocol import DEFAULT_T2I_MODEL

# The default model (DEFAULT_T2I_MODEL, "stabilityai/sd-turbo"): SD-Turbo, Stability AI's
# distilled Stable Diffusion 2.1, makes a 512x512 picture in one network evaluation
# (about a minute on 2 CPU cores, two thirds of it the image decoder) from a 2.6 GB
# download (its fp16 weights, run in float32 on the CPU). Licence: the Stability AI Community License -- free for research,
# non-commercial use, and commercial use by people and organisations with under USD 1M
# annual revenue; above that, Stability's Enterprise licence. It is not a permissive
# licence: no Apache-2.0/MIT model is both small and good enough to be a CPU default
# (FLUX.1-schnell is Apache-2.0 but has 12B parameters; Segmind-Vega is Apache-2.0 but
# needs ~25 guided steps at 1024 px). Any diffusers model id or folder can be used
# instead (--t2i-model / --t2i-model-dir); see docs/text-prompts.md.

#: What the default wrapping asks for: one whole object on a plain light background,
#: which is what background removal and depth estimation handle best.
PROMPT_TEMPLATE = (
    "a single whole {subject}, centred, full view, isolated on a plain light grey background, "
    "studio lighting, soft even light, no shadow, product photo"
)
#: Used only by models that apply classifier-free guidance (guidance scale above 1).
NEGATIVE_PROMPT = (
    "cropped, cut off, partial view, several objects, cluttered background, scenery, "
    "text, watermark, frame, border, hard shadow, blurry"
)

TEXT_EXTRA_MESSAGE = (
    'Text prompts need the optional diffusers package: run `pip install "img2mesh[text]"` '
    '(in Blender, tick "Text prompts" in the add-on\'s Set up).'
)

#: step(done, total) after each denoising step; cancel() -> True stops the run.
StepFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class ModelDefaults:
    """How a model is meant to be run: its own step count, guidance, size and weights."""

    steps: int = 25
    guidance_scale: float | None = None  # None: the pipeline's own default
    size: int | None = None  # square side in pixels; None: the pipeline's own
    variant: str | None = None  # weights file variant to fetch ("fp16" halves the download)
    gpu_dtype: str = "float16"  # CUDA dtype; the CPU and MPS always run float32
    licence: str | None = None


#: Models with known settings; any other model gets :class:`ModelDefaults` ().
KNOWN_MODELS = {
    "stabilityai/sd-turbo": ModelDefaults(
        steps=1,
        guidance_scale=0.0,
        size=512,
        variant="fp16",
        licence="Stability AI Community License",
    ),
    "stabilityai/sdxl-turbo": ModelDefaults(
        steps=1,
        guidance_scale=0.0,
        size=512,
        variant="fp16",
        licence="Stability AI Community License",
    ),
    "black-forest-labs/FLUX.1-schnell": ModelDefaults(
        steps=4, guidance_scale=0.0, size=1024, gpu_dtype="bfloat16", licence="Apache-2.0"
    ),
    "segmind/Segmind-Vega": ModelDefaults(
        steps=25, guidance_scale=9.0, size=1024, licence="Apache-2.0"
    ),
}


def diffusers_available() -> bool:
    """Whether the ``text`` extra is installed (cheap: nothing is imported)."""
    try:
        return importlib.util.find_spec("diffusers") is not None
    except (ImportError, ValueError):
        return False


def require_diffusers() -> None:
    """Raise :class:`MissingExtraError` with the one sentence that says how to enable prompts."""
    if not diffusers_available():
        raise MissingExtraError(TEXT_EXTRA_MESSAGE)


def wrap_prompt(prompt: str) -> str:
    """The user's words inside :data:`PROMPT_TEMPLATE` ("a red toy car" -> "a single whole red toy car, ...")."""
    subject = re.sub(r"^(a|an|the|one)\s+", "", prompt.strip(), flags=re.IGNORECASE)
    return PROMPT_TEMPLATE.format(subject=subject)


def check_prompt(prompt: str) -> str:
    text = (prompt or "").strip()
    if not text:
        raise OptionError('The prompt is empty: describe one object, e.g. "a red toy car".')
    return text


class TextToImage:
    """A loaded text-to-image pipeline, kept in memory for the next prompts."""

    def __init__(
        self,
        model: str = DEFAULT_T2I_MODEL,
        *,
        model_dir: str | os.PathLike | None = None,
        device: str = "auto",
    ) -> None:
        self.model_id = model or DEFAULT_T2I_MODEL
        self.source = str(model_dir) if model_dir else self.model_id
        self.requested_device = device
        self.defaults = KNOWN_MODELS.get(self.model_id, ModelDefaults())
        self.device: str | None = None
        self.dtype: str | None = None
        self._pipe = None

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    def load(self) -> None:
        """Load the pipeline: a folder as is, an id from the cache first, else from the hub."""
        if self._pipe is not None:
            return
        require_diffusers()
        local = Path(self.source).expanduser()
        if self.source != self.model_id and not local.is_dir():
            raise ModelUnavailableError(
                f"The text-to-image model folder '{self.source}' does not exist."
            )
        import torch

        from ..storage.paths import hf_cache_dir
        from .devices import pick_device
        from .hub import from_pretrained

        self.device = pick_device(self.requested_device)
        self.dtype = self.defaults.gpu_dtype if self.device == "cuda" else "float32"
        torch.set_num_threads(os.cpu_count() or 1)
        # Only safetensors: never unpickle weights, never run code from a model repo.
        kwargs: dict = {"use_safetensors": True, "trust_remote_code": False}
        variant = self.defaults.variant
        if local.is_dir():
            source = str(local)
            if variant and not any(local.rglob(f"*.{variant}.safetensors")):
                variant = None
        else:
            source = self.source
            cache = hf_cache_dir()
            if cache:
                kwargs["cache_dir"] = str(cache)
        if variant:
            kwargs["variant"] = variant
        with _quiet_loading():
            from diffusers import AutoPipelineForText2Image, DiffusionPipeline

            # the dtype at load time keeps the modules a model wants in float32 there
            kwargs[_dtype_keyword(DiffusionPipeline)] = getattr(torch, self.dtype)
            try:
                pipe = from_pretrained(AutoPipelineForText2Image, source, **kwargs)
            except ValueError as exc:
                if "AutoPipeline" in str(exc) or "_class_name" in str(exc):
                    raise OptionError(
                        f"'{self.source}' is not a text-to-image pipeline that diffusers knows "
                        "(AutoPipelineForText2Image cannot load it)."
                    ) from None
                raise self._unavailable(exc) from None
            except (OSError, KeyError) as exc:
                raise self._unavailable(exc) from None
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self._pipe = pipe

    def _unavailable(self, exc: BaseException) -> ModelUnavailableError:
        from ..storage.paths import hf_cache_dir

        where = hf_cache_dir() or "your Hugging Face cache (HF_HOME / HF_HUB_CACHE)"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = reason.rstrip(".")
        download = f"hf download {self.model_id} --local-dir DIR"
        if self.defaults.variant:  # only the weights that are used, not every copy in the repo
            download += f' --include "*.json" "*.txt" "*.{self.defaults.variant}.safetensors"'
        if Path(self.source).expanduser().is_dir():
            return ModelUnavailableError(
                f"The text-to-image model in '{self.source}' could not be loaded ({reason}). "
                "The folder must hold model_index.json and one sub-folder per component with "
                f"its config and .safetensors weights, as saved by save_pretrained (or {download})."
            )
        gated = (
            " If the model is gated, accept its licence on its Hugging Face page and log in "
            "with `hf auth login`."
        )
        is_gated = "401" in reason or "gated" in reason.lower()
        return ModelUnavailableError(
            f"The text-to-image model '{self.model_id}' could not be loaded: its weights are not "
            f"in {where} and could not be downloaded from the Hugging Face hub ({reason}). "
            "Connect to the internet once so the weights are cached, or download them on another "
            f"machine (`{download}`) and pass --t2i-model-dir DIR."
            + (gated if is_gated else "")
            + " A photo still works without it: img2mesh photo.jpg.",
            code="t2i_model_unavailable",
            field="t2i_model",
            details={
                "model": self.model_id,
                "where": str(where),
                "reason": reason,
                "download": download,
                "gated": "yes" if is_gated else "",
            },
        )

    def generate(
        self,
        prompt: str,
        *,
        seed: int = 0,
        steps: int | None = None,
        guidance_scale: float | None = None,
        width: int | None = None,
        height: int | None = None,
        raw_prompt: bool = False,
        progress: StepFn | None = None,
        cancel: CancelFn | None = None,
    ) -> tuple[np.ndarray, dict]:
        """Picture for ``prompt``: (H, W, 3) uint8 RGB and what made it (JSON-ready).

        The same prompt, seed, steps, size and model give the same picture (the noise
        comes from a CPU generator, so also across devices as far as their arithmetic
        allows). Unless ``raw_prompt``, the prompt is wrapped by :func:`wrap_prompt`.
        ``progress(step, total)`` follows the denoising steps; ``cancel()`` returning
        True raises :class:`Cancelled` at the next step.
        """
        text = check_prompt(prompt)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise OptionError(f"The seed must be a whole number from 0 to 2^63-1, not {seed}.")
        steps = self.defaults.steps if steps is None else steps
        if not isinstance(steps, int) or not 1 <= steps <= 1000:
            raise OptionError(f"The number of steps must be between 1 and 1000, not {steps}.")
        if guidance_scale is None:
            guidance_scale = self.defaults.guidance_scale
        width, height = _size(width, height, self.defaults.size)

        def check_cancel() -> None:
            if cancel is not None and cancel():
                raise Cancelled("Image generation cancelled.")

        check_cancel()
        self.load()
        check_cancel()
        import torch

        pipe = self._pipe
        params = inspect.signature(type(pipe).__call__).parameters
        full_prompt = text if raw_prompt else wrap_prompt(text)
        kwargs: dict = {
            "prompt": full_prompt,
            "num_inference_steps": steps,
            "generator": torch.Generator("cpu").manual_seed(seed),
            "output_type": "np",
        }
        if width is not None:
            kwargs["width"], kwargs["height"] = width, height
        if guidance_scale is not None and "guidance_scale" in params:
            kwargs["guidance_scale"] = float(guidance_scale)
        effective = kwargs.get("guidance_scale", _default(params, "guidance_scale"))
        negative = None
        if not raw_prompt and "negative_prompt" in params and (effective or 0) > 1:
            negative = kwargs["negative_prompt"] = NEGATIVE_PROMPT

        def on_step_end(_pipe, i, _t, callback_kwargs):
            if progress is not None:
                progress(i + 1, steps)
            check_cancel()
            return callback_kwargs

        if "callback_on_step_end" in params:
            kwargs["callback_on_step_end"] = on_step_end
        if progress is not None:
            progress(0, steps)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = pipe(**kwargs)
        rgb = _to_uint8(out.images[0])
        nsfw = getattr(out, "nsfw_content_detected", None)
        info = {
            "prompt": text,
            "full_prompt": full_prompt,
            "negative_prompt": negative,
            "raw_prompt": bool(raw_prompt),
            "seed": seed,
            "steps": steps,
            "guidance_scale": effective,
            "width": int(rgb.shape[1]),
            "height": int(rgb.shape[0]),
            "model": self.model_id,
            "model_dir": self.source if self.source != self.model_id else None,
            "pipeline": type(pipe).__name__,
            "licence": self.defaults.licence,
            "device": self.device,
            "dtype": self.dtype,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        if nsfw is not None and any(bool(x) for x in nsfw):
            info["nsfw_filtered"] = True
        return rgb, info


def save_picture(
    rgb: np.ndarray, path: str | os.PathLike, info: dict | None = None, *, overwrite: bool = False
) -> Path:
    """Write a generated picture as PNG atomically, with how it was made in its text chunks."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from ..files.atomic import atomic_write

    meta = PngInfo()
    if info:
        meta.add_text("prompt", str(info.get("prompt", "")))
        meta.add_text("img2mesh", json.dumps(info, ensure_ascii=False))
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    return atomic_write(
        path, lambda f: image.save(f, format="PNG", pnginfo=meta), overwrite=overwrite
    )


_generators: dict[tuple, TextToImage] = {}


def generate_image(
    prompt: str,
    *,
    model: str | None = None,
    model_dir: str | os.PathLike | None = None,
    device: str = "auto",
    **kwargs,
) -> tuple[np.ndarray, dict]:
    """One-call :meth:`TextToImage.generate` with process-wide models (loaded once)."""
    key = (model or DEFAULT_T2I_MODEL, str(model_dir) if model_dir else None, device)
    if key not in _generators:
        _generators[key] = TextToImage(key[0], model_dir=model_dir, device=device)
    return _generators[key].generate(prompt, **kwargs)


def _size(width: int | None, height: int | None, default: int | None) -> tuple:
    if width is None and height is None:
        return (default, default) if default else (None, None)
    width, height = width or height, height or width
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or not 64 <= value <= 4096:
            raise OptionError(f"The picture {name} must be 64 to 4096 pixels, not {value}.")
    # latent diffusion works on 8x smaller latents
    return width - width % 8, height - height % 8


def _dtype_keyword(pipeline_class) -> str:
    """``dtype`` in newer diffusers, ``torch_dtype`` (now deprecated) before."""
    try:
        source = inspect.getsource(pipeline_class.from_pretrained)
    except (OSError, TypeError):  # no source files: assume a current diffusers
        return "dtype"
    return "dtype" if 'kwargs.pop("dtype"' in source else "torch_dtype"


def _default(params, name: str):
    p = params.get(name)
    return None if p is None or p.default is inspect.Parameter.empty else p.default


def _to_uint8(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):  # a PIL image from pipelines that ignore output_type
        image = np.asarray(image.convert("RGB"))
    if image.dtype != np.uint8:
        image = np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


@contextlib.contextmanager
def _quiet_loading():
    """No "Loading pipeline components" bars or deprecation chatter while a model loads.

    Hub download bars stay: a first download is long and worth watching.
    """
    import logging
    import warnings

    from .hub import no_loading_bars

    names = ("diffusers", "transformers")
    levels = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            # failures raise and become one readable paragraph; their log lines would repeat it
            logging.getLogger(n).setLevel(logging.CRITICAL)
        with no_loading_bars(*names), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
