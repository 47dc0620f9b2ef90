"""Stage 2: the object's mask — rembg, a weight-free colour key refined by GrabCut, or an alpha channel — and its cleanup."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InputError, ModelUnavailableError, OptionError


class BackgroundRemover:
    """rembg sessions, created once per model and kept for the next images."""

    def __init__(self) -> None:
        self._sessions: dict[str, object] = {}

    def mask(self, rgb: np.ndarray, model: str = "u2net") -> np.ndarray:
        """Foreground probability (H, W) float32 in [0, 1] from a rembg model name or a custom .onnx file."""
        session = self._session(model)
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

    def _session(self, model: str):
        key = str(Path(model).resolve()) if _is_custom(model) else model
        if key not in self._sessions:
            self._sessions[key] = _new_session(model)
        return self._sessions[key]


def _is_custom(model: str) -> bool:
    return model.lower().endswith(".onnx") or os.sep in model or "/" in model


def _new_session(model: str):
    from .paths import rembg_home

    # rembg reads its model folder from the environment; ours unless the user set theirs.
    if not (os.environ.get("U2NET_HOME") or os.environ.get("REMBG_HOME")):
        os.environ["REMBG_HOME"] = str(rembg_home())
    if _is_custom(model):
        return _custom_session(Path(model))

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
        raise ModelUnavailableError(
            f"The background-removal model '{model}' is not in {folder} and could not be "
            f"downloaded ({_network_reason(exc)}). Connect to the internet once so it is stored "
            f"there, copy {model}.onnx into that folder, pass your own file with "
            "--rembg-model FILE.onnx, or use the weight-free --segment key for photos on a plain "
            "background."
        ) from None


def _network_reason(exc: BaseException) -> str:
    text = str(exc)
    if any(
        k in text for k in ("Max retries", "NameResolution", "Connection", "resolve", "timed out")
    ):
        return "the download server cannot be reached"
    return _first_line(exc)


def _custom_session(path: Path):
    """rembg's custom U2-Net session on a file the user chose, checked before onnxruntime sees it."""
    if not path.exists():
        raise OptionError(f"The custom ONNX model '{path}' does not exist.")
    if not path.is_file() or path.suffix.lower() != ".onnx":
        raise OptionError(f"The custom model '{path}' must be a .onnx file.")
    import onnxruntime as ort
    from rembg.sessions.u2net_custom import U2netCustomSession

    class CheckedCustomSession(U2netCustomSession):
        # rembg only accepts custom files under its own model folder; we check the
        # user's file ourselves (exists, .onnx, parses, image input) instead.
        @classmethod
        def download_models(cls, *args, **kwargs):
            return str(path.resolve())

    try:
        session = CheckedCustomSession("u2net_custom", ort.SessionOptions(), model_path=str(path))
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
            "No object stands out from the background colour: --segment key needs an object on a plain background."
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
