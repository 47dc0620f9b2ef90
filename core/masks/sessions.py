"""U^2-Net-style segmentation sessions in ONNX Runtime: rembg's steps without rembg, and their INT8 copies."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

#: How a custom model's input is normalised: ``imagenet`` (U^2-Net, BiRefNet: ImageNet's
#: mean and std), ``half`` (IS-Net/DIS, BRIA RMBG, BEN: mean 0.5, std 1), or ``auto``
#: (see :func:`detect_normalization`).
NORMALIZATIONS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "half": ((0.5, 0.5, 0.5), (1.0, 1.0, 1.0)),
}


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
        self.int8 = None  # core.networks.int8.Int8Graph, with quantize "auto" on the CPU
        self.int8_note: str | None = None
        self.message = None  # message(text): a one-off step is starting (set per photo)
        providers = _providers(ort)
        if providers == ["CPUExecutionProvider"]:
            from ..networks.sessions import cached_session
            from ..storage.paths import data_home

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
        self.sigmoid = False  # the output is logits (set by custom_session)

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
        from ..networks.agreement import compare_masks
        from ..networks.int8 import trim

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
    """The INT8 copy of segmentation model ``path`` for this CPU (core.networks.int8)."""
    import hashlib

    from ..networks.int8 import Int8Graph
    from ..networks.sessions import cpu_key

    st = path.stat()
    blob = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{cpu_key()}"
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return Int8Graph(folder / f"{path.stem[:40]}-{digest}.onnx", "segmentation model", digest)


def _int8_note(int8) -> str:
    if int8.status == "verified":
        return f"INT8 (mask IoU {int8.measure:.3f} with full precision on its first photo)"
    return f"full precision (INT8 refused: {int8.reason})"


def _session_options(ort):
    """As rembg's new_session makes them, but without the memory arena (see core.networks.sessions)."""
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
