"""Stage 2: the object's mask — rembg, a weight-free colour key refined by GrabCut, or an alpha channel — and its cleanup."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from .errors import InputError, ModelUnavailableError, OptionError


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
        ``quantize``: ``auto`` runs an INT8 copy once verified on a first photo (core.quantize);
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
                    f"it must take a 1x3xHxW image and return a mask ({_first_line(exc)})."
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


#: How a custom model's input is normalised: ``imagenet`` (U^2-Net, BiRefNet: ImageNet's
#: mean and std), ``half`` (IS-Net/DIS, BRIA RMBG, BEN: mean 0.5, std 1), or ``auto``
#: (see :func:`detect_normalization`).
NORMALIZATIONS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "half": ((0.5, 0.5, 0.5), (1.0, 1.0, 1.0)),
}


def _new_session(model: str, normalize: str = "auto", quantize: str = "off"):
    from .paths import rembg_home

    # rembg reads its model folder from the environment; ours unless the user set theirs.
    if not (os.environ.get("U2NET_HOME") or os.environ.get("REMBG_HOME")):
        os.environ["REMBG_HOME"] = str(rembg_home())
    if _is_custom(model):
        return _custom_session(Path(model), normalize, quantize)
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
    return _first_line(exc)


def _downloaded(model: str) -> Path | None:
    """The model file rembg downloaded earlier, where rembg looks for it, or None."""
    from .paths import rembg_home

    legacy = os.environ.get("U2NET_HOME") or os.path.join(
        os.environ.get("XDG_DATA_HOME", "~"), ".u2net"
    )
    for folder in (rembg_home() / "models" / model, Path(legacy).expanduser()):
        candidate = folder / f"{model}.onnx"
        if candidate.is_file():
            return candidate
    return None


class U2netSession:
    """rembg's U2netSession / U2netCustomSession, the same steps on the same file, without rembg.

    Also the fixed-size families rembg runs (IS-Net/DIS, BRIA RMBG, BEN, BiRefNet): the
    input size is read from the model (a fixed H x W, else U^2-Net's 320 x 320), the
    normalisation is ``normalize`` (a key of :data:`NORMALIZATIONS`; ``None``: ImageNet's,
    as rembg's U^2-Net), and with ``sigmoid`` set, logits (BiRefNet's output) go through
    a sigmoid before rembg's min-max scaling.

    ``clip``: the named models clip the scaled output to [0, 1] before 8-bit
    conversion, the custom session does not (it changes nothing unless the output is
    constant).
    """

    def __init__(
        self, path: Path, *, clip: bool, normalize: str | None = None, quantize: str = "off"
    ) -> None:
        import onnxruntime as ort

        self.clip = clip
        self.path = Path(path)
        self.int8 = None  # core.quantize.Int8Graph, with quantize "auto" on the CPU
        self.int8_note: str | None = None
        self.message = None  # message(text): a one-off step is starting (set per photo)
        providers = _providers(ort)
        if providers == ["CPUExecutionProvider"]:
            from .onnx_cache import cached_session
            from .paths import data_home

            folder = data_home() / "onnx" / "segmentation"
            if quantize == "auto":
                self.int8 = _int8_graph(self.path, folder / "int8")
                session = self.int8.open()
                if session is not None:
                    self.inner_session = session
                    self.int8_note = _int8_note(self.int8)
            if self.int8 is None or self.int8.session is None:
                # the graph as ONNX Runtime optimises it anyway, kept so the next start skips that
                self.inner_session = cached_session(self.path, folder, _threads)
                if self.int8 is not None and self.int8.status == "refused":
                    self.int8_note = _int8_note(self.int8)
        else:
            self.inner_session = ort.InferenceSession(
                str(path), _session_options(ort), providers=providers
            )
        inputs = self.inner_session.get_inputs()
        shape = inputs[0].shape if inputs else []
        fixed = len(shape) == 4 and all(isinstance(v, int) and v > 0 for v in shape[2:])
        #: (width, height) the image is resized to
        self.size = (int(shape[3]), int(shape[2])) if fixed else (320, 320)
        self.normalize = normalize or "imagenet"
        self.sigmoid = False  # the output is logits (set by _custom_session)

    def predict(self, img, *args, **kwargs) -> list:
        from PIL import Image

        # rembg's BaseSession.normalize and U2netSession.predict, step for step
        im = img.convert("RGB").resize(self.size, Image.Resampling.LANCZOS)
        im_ary = np.array(im)
        im_ary = im_ary / max(np.max(im_ary), 1e-6)
        mean, std = NORMALIZATIONS[self.normalize]
        tmp = np.zeros((im_ary.shape[0], im_ary.shape[1], 3))
        for c in range(3):
            tmp[:, :, c] = (im_ary[:, :, c] - mean[c]) / std[c]
        feed = np.expand_dims(tmp.transpose((2, 0, 1)), 0).astype(np.float32)
        name = self.inner_session.get_inputs()[0].name
        outs = self.inner_session.run(None, {name: feed})
        if self.int8 is not None and self.int8.status is None:
            if self.message is not None:
                self.message("Preparing an INT8 segmentation network (once per model)")
            self._try_int8({name: feed}, outs[0])
        pred = np.asarray(outs[0], dtype=np.float64)[:, 0, :, :]
        if self.sigmoid:
            pred = 1 / (1 + np.exp(-np.clip(pred, -60, 60)))  # logits (BiRefNet), as rembg does
        ma, mi = np.max(pred), np.min(pred)
        # A constant prediction singles nothing out (rembg divides by zero here).
        pred = np.squeeze((pred - mi) / (ma - mi) if ma > mi else np.zeros_like(pred))
        if self.clip:
            pred = pred.clip(0, 1)
        mask = Image.fromarray((pred * 255).astype("uint8"), mode="L")
        return [mask.resize(img.size, Image.Resampling.LANCZOS)]

    def _try_int8(self, feed: dict, reference: np.ndarray) -> None:
        """Quantise the model on this photo's input; use the INT8 copy from the next photo if close."""
        from .quantize import compare_masks, trim

        assert self.int8 is not None
        if self.sigmoid:  # logits: compare what the pipeline cuts, after the sigmoid

            def compare(output, ref):
                sig = lambda v: 1 / (1 + np.exp(-np.clip(np.asarray(v, np.float64), -60, 60)))  # noqa: E731
                return compare_masks(sig(output), sig(ref))
        else:
            compare = compare_masks
        if self.int8.build(self.path, "static", feed, reference, compare):
            self.inner_session = self.int8.session  # the full-precision session is let go
            with contextlib.suppress(OSError):
                trim(self.int8.graph.parent, keep=4)
        self.int8_note = _int8_note(self.int8)


def _int8_graph(path: Path, folder: Path):
    """The INT8 copy of segmentation model ``path`` for this CPU (core.quantize)."""
    import hashlib

    from .onnx_cache import cpu_key
    from .quantize import Int8Graph

    st = path.stat()
    blob = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{cpu_key()}"
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return Int8Graph(folder / f"{path.stem[:40]}-{digest}.onnx", "segmentation model", digest)


def _int8_note(int8) -> str:
    if int8.status == "verified":
        return f"INT8 (mask IoU {int8.measure:.3f} with full precision on its first photo)"
    return f"full precision (INT8 refused: {int8.reason})"


def detect_family(path: Path, input_shape) -> str:
    """``u2net``, ``isnet`` or ``birefnet``: the family of a custom segmentation model, from its graph.

    A model with a dynamic (or 320 x 320) input is U^2-Net-style: ImageNet's
    statistics, as rembg's custom session uses. A fixed larger input is one of the
    1024-pixel families: those whose first output comes out of a Sigmoid (``isnet``:
    IS-Net/DIS, BRIA RMBG, BEN) take mean 0.5 and std 1; one that outputs logits
    (``birefnet``) takes ImageNet's and a sigmoid after. Without the onnx package to
    read the graph, a fixed input means ``isnet``.
    """
    spatial = list(input_shape[2:]) if len(input_shape) == 4 else []
    if not all(isinstance(v, int) for v in spatial) or max(spatial or [0]) <= 320:
        return "u2net"
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # no onnx package, or a graph only onnxruntime reads
        return "isnet"
    made_by = {out: node for node in graph.node for out in node.output}
    node = made_by.get(graph.output[0].name)
    for _ in range(8):  # through casts (fp16 models) and reshapes to the last real step
        if node is None or node.op_type not in _PASS_THROUGH:
            break
        node = made_by.get(node.input[0])
    return "birefnet" if node is not None and node.op_type != "Sigmoid" else "isnet"


#: Steps after a model's last activation that keep its values' range.
_PASS_THROUGH = {"Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose"}


#: The input normalisation of each family detect_family tells apart.
FAMILY_NORMALIZATION = {"u2net": "imagenet", "isnet": "half", "birefnet": "imagenet"}


def _session_options(ort):
    """As rembg's new_session makes them, but without the memory arena (see core.onnx_cache)."""
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    _threads(options)
    return options


def _threads(options) -> None:
    """rembg's rule: OMP_NUM_THREADS, when set, is both thread counts."""
    if "OMP_NUM_THREADS" in os.environ:
        threads = int(os.environ["OMP_NUM_THREADS"])
        options.inter_op_num_threads = threads
        options.intra_op_num_threads = threads


def _providers(ort) -> list[str]:
    """The execution providers rembg's BaseSession picks."""
    available = ort.get_available_providers()
    device = ort.get_device()
    if device == "GPU" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device[0:3] == "GPU" and "ROCMExecutionProvider" in available:
        return ["ROCMExecutionProvider", "CPUExecutionProvider"]
    if "OpenVINOExecutionProvider" in available:
        return ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _custom_session(path: Path, normalize: str = "auto", quantize: str = "off"):
    """A session on a segmentation .onnx file the user chose, checked before onnxruntime sees it.

    The user's file is checked here (exists, .onnx, parses, image input) rather than by
    rembg, which only accepts custom files under its own model folder. Its input size
    is read from it; ``normalize`` ``auto`` takes the one of its family (:func:`detect_family`).
    """
    if normalize not in ("auto", *NORMALIZATIONS):
        raise OptionError(
            f"Unknown input normalisation '{normalize}': choose auto, {', '.join(NORMALIZATIONS)}."
        )
    if not path.exists():
        raise OptionError(f"The custom ONNX model '{path}' does not exist.")
    if not path.is_file() or path.suffix.lower() != ".onnx":
        raise OptionError(f"The custom model '{path}' must be a .onnx file.")
    try:
        session = U2netSession(path, clip=False, quantize=quantize)
    except Exception as exc:
        raise OptionError(
            f"The custom ONNX model '{path.name}' cannot be loaded ({_first_line(exc)})."
        ) from None
    inputs = session.inner_session.get_inputs()
    shape = inputs[0].shape if inputs else []
    if (
        len(inputs) != 1
        or len(shape) != 4
        or shape[1] not in (3, "3")
        and not isinstance(shape[1], str)
    ):
        raise OptionError(
            f"The custom ONNX model '{path.name}' has input shape {shape}; "
            "a segmentation model must take one 1x3xHxW image."
        )
    family = detect_family(path, shape)
    session.normalize = FAMILY_NORMALIZATION[family] if normalize == "auto" else normalize
    session.sigmoid = family == "birefnet"
    return session


def key_mask(rgb: np.ndarray) -> np.ndarray:
    """Weight-free mask for a photo on a plain background: key out the border colour, refine with GrabCut."""
    import cv2

    h, w = rgb.shape[:2]
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    b = max(2, min(h, w) // 50)
    border = np.concatenate(
        [
            lab[:b].reshape(-1, 3),
            lab[-b:].reshape(-1, 3),
            lab[:, :b].reshape(-1, 3),
            lab[:, -b:].reshape(-1, 3),
        ]
    )
    bg = np.median(border, axis=0)
    # lightness counts half: soft shadows on the backdrop change it more than the hue
    weight = np.array([0.5, 1.0, 1.0], np.float32)
    dist = np.linalg.norm((lab - bg) * weight, axis=2)
    border_dist = np.linalg.norm((border - bg) * weight, axis=1)
    # threshold from how much the background itself varies (gradients, noise, shadows)
    thr = max(12.0, float(np.percentile(border_dist, 99)) * 1.5)
    sure_fg = dist > thr * 2.0
    probable_fg = dist > thr
    if sure_fg.sum() < 16:
        sure_fg = probable_fg
    if probable_fg.sum() < 16:
        raise InputError(
            "No object stands out from the background colour: --segment key needs an object on a plain background.",
            code="key_found_nothing",
            field="segment",
        )
    gc = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    gc[probable_fg] = cv2.GC_PR_FGD
    gc[sure_fg] = cv2.GC_FGD
    gc[:b] = gc[-b:] = cv2.GC_BGD
    gc[:, :b] = gc[:, -b:] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(
            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, 4, cv2.GC_INIT_WITH_MASK
        )
        mask = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    except cv2.error:
        mask = (
            probable_fg  # GrabCut refuses degenerate colour models; the key alone is still a mask
        )
    return mask


def clean_mask(
    mask: np.ndarray, *, erode_px: int = 1, min_share: float = 0.05, max_hole_share: float = 0.02
) -> np.ndarray:
    """Keep the main component(s), fill small holes and erode the halo left by soft edges.

    Components smaller than ``min_share`` of the largest are dropped; enclosed holes
    smaller than ``max_hole_share`` of the object are filled (larger ones, like the
    inside of a ring, are real).
    """
    import cv2

    m = np.asarray(mask, dtype=bool)
    if not m.any():
        raise InputError("The mask removes everything: no foreground is left to reconstruct.")
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= max(areas.max() * min_share, 1)) + 1
    m = np.isin(labels, keep)
    # fill holes: background pixels not connected to the image border
    inv = (~m).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    border_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < max_hole_share * m.sum())
    holes = np.isin(labels, small) & ~np.isin(labels, border_labels) & (labels > 0)
    m |= holes
    if erode_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1))
        eroded = cv2.erode(m.astype(np.uint8), k).astype(bool)
        if eroded.sum() >= 0.5 * m.sum():  # thin objects would vanish
            m = eroded
    if not m.any():
        raise InputError("The mask removes everything: no foreground is left to reconstruct.")
    return m


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
