"""Custom segmentation models of both families: U^2-Net style (any input, 320 used) and fixed-size IS-Net / BiRefNet / BRIA style."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.masks.families import detect_family
from core.masks.remover import BackgroundRemover

from ..conftest import shared_data, toy_photo


def _export_fixed(path: Path, size: int, *, logits: bool) -> Path:
    """A 1x3xSIZExSIZE segmenter: dark pixels (after mean 0.5 / std 1) are the object.

    ``logits``: no sigmoid at the end (as BiRefNet), else a sigmoid then a cast (as the
    fp16 IS-Net graphs end).
    """
    import torch

    class Dark(torch.nn.Module):
        def forward(self, x):
            score = 30.0 * (0.3 - x.mean(dim=1, keepdim=True))  # 0.5 (white) -> background
            return score if logits else torch.sigmoid(score).to(torch.float16).float()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Dark(), torch.zeros(1, 3, size, size), str(path), input_names=["input"], dynamo=False
        )
    return path


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_the_family_is_told_from_the_graph(tmp_path, tiny_segmenter):
    isnet = _export_fixed(tmp_path / "isnet-like.onnx", 384, logits=False)
    biref = _export_fixed(tmp_path / "biref-like.onnx", 384, logits=True)
    small = _export_fixed(tmp_path / "small.onnx", 64, logits=True)
    assert detect_family(isnet, [1, 3, 384, 384]) == "isnet"
    assert detect_family(biref, [1, 3, 384, 384]) == "birefnet"
    assert detect_family(small, [1, 3, 64, 64]) == "u2net"  # 320 px or less: U^2-Net's size
    assert detect_family(tiny_segmenter, [1, 3, 320, 320]) == "u2net"
    assert detect_family(tiny_segmenter, [1, 3, "height", "width"]) == "u2net"


@pytest.mark.parametrize("logits", [False, True])
def test_a_fixed_size_model_segments_at_its_own_size_and_is_resized_back(tmp_path, logits):
    model = _export_fixed(tmp_path / "fixed.onnx", 384, logits=logits)
    img, truth = toy_photo(160, 120)
    remover = BackgroundRemover()
    # the BiRefNet-like one is detected as such (ImageNet's statistics): force the half one
    prob = remover.mask(img, str(model), "half")
    assert prob.shape == (120, 160) and prob.dtype == np.float32
    assert prob.min() == 0.0 and prob.max() == 1.0  # min-max scaled
    assert iou(prob >= 0.5, truth) >= 0.9
    (session,) = remover._sessions.values()
    assert session.size == (384, 384) and session.sigmoid is logits


def test_a_fixed_size_model_through_the_command_line(tmp_path):
    from core.cli.main import main

    model = _export_fixed(tmp_path / "fixed size.onnx", 400, logits=False)
    img, truth = toy_photo(160, 120)
    photo = tmp_path / "toy.png"
    Image.fromarray(img).save(photo)
    report = tmp_path / "r.json"
    args = [str(photo), "--rembg-model", str(model), "--depth", "inflate", "--mesh", "grid"]
    args += ["--no-preview", "-q", "-o", str(tmp_path / "t.ply"), "--report", str(report)]
    assert main(args) == 0
    data = json.loads(report.read_text())
    assert data["mask_source"] == "rembg fixed size.onnx"
    assert abs(data["counts"]["foreground_pixels"] - truth.sum()) <= 0.08 * truth.sum()


def test_the_shared_isnet_segments_a_real_photo(tmp_path):
    """The real IS-Net (fixed 1024 x 1024, mean 0.5, std 1) on a render whose alpha is the truth."""
    data = shared_data()
    model = data / "models" / "isnet-general-use-fp16.onnx"
    if not model.is_file():
        pytest.skip(f"{model} is not there")
    rgba = np.asarray(Image.open(data / "photos" / "chair_render.png").convert("RGBA"))
    a = rgba[..., 3:].astype(np.float64) / 255
    rgb = np.round(rgba[..., :3] * a + 255 * (1 - a)).astype(np.uint8)  # composited on white
    truth = rgba[..., 3] >= 128
    photo = tmp_path / "chair on white.png"
    Image.fromarray(rgb).save(photo)

    from core.cli.arguments import build_parser, settings_from_args
    from core.masks.cleanup import clean_mask

    args = build_parser().parse_args([str(photo), "--rembg-model", str(model)])
    s = settings_from_args(args)
    remover = BackgroundRemover()  # what the pipeline's segmentation stage calls
    prob = remover.mask(
        np.asarray(Image.open(photo).convert("RGB")), s.rembg_model, s.rembg_normalize
    )
    assert prob.shape == truth.shape
    assert iou(prob >= 0.5, truth) >= 0.97, iou(prob >= 0.5, truth)
    # cleaned as the pipeline keeps it: the one-pixel erosion costs thin chair legs a little
    assert iou(clean_mask(prob >= 0.5), truth) >= 0.94
    (session,) = remover._sessions.values()
    assert (session.size, session.normalize, session.sigmoid) == ((1024, 1024), "half", False)
