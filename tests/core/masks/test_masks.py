"""Stage 2: masks from rembg (tiny custom ONNX), the weight-free colour key, and their cleanup."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputError, ModelUnavailableError, OptionError
from core.masks.cleanup import clean_mask
from core.masks.key import key_mask
from core.masks.remover import BackgroundRemover

from ..conftest import toy_photo


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_custom_onnx_through_rembg_session(tiny_segmenter):
    img, truth = toy_photo(160, 120)
    prob = BackgroundRemover().mask(img, str(tiny_segmenter))
    assert prob.shape == truth.shape and prob.dtype == np.float32
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    assert iou(clean_mask(prob >= 0.5), truth) > 0.9


def test_sessions_are_kept_between_images(tiny_segmenter):
    remover = BackgroundRemover()
    img, _ = toy_photo(160, 120)
    remover.mask(img, str(tiny_segmenter))
    first = remover._session(str(tiny_segmenter))
    remover.mask(img, str(tiny_segmenter))
    assert remover._session(str(tiny_segmenter)) is first


def test_colour_key_on_a_plain_background():
    img, truth = toy_photo(160, 120)
    assert iou(clean_mask(key_mask(img)), truth) > 0.9


def test_colour_key_with_no_object():
    with pytest.raises(InputError) as err:
        key_mask(np.full((64, 64, 3), 240, np.uint8))
    assert str(err.value) == (
        "No object stands out from the background colour: "
        "--segment key needs an object on a plain background."
    )


def test_cleanup_keeps_the_main_object_fills_small_holes_keeps_big_ones():
    m = np.zeros((100, 100), bool)
    m[20:80, 20:80] = True
    m[45:47, 45:47] = False  # a pinhole: filled
    m[30:40, 55:75] = False  # a big hole (like the inside of a handle): kept... if big enough
    m[2:4, 2:4] = True  # speck: dropped
    out = clean_mask(m, erode_px=0, max_hole_share=0.02)
    assert out[46, 46] and not out[3, 3]
    assert not out[35, 65]


def test_cleanup_of_an_empty_mask():
    with pytest.raises(InputError, match="^The mask removes everything"):
        clean_mask(np.zeros((10, 10), bool))


def test_unknown_rembg_model():
    with pytest.raises(OptionError) as err:
        BackgroundRemover().mask(np.zeros((32, 32, 3), np.uint8), "u3net")
    assert str(err.value).startswith("Unknown background-removal model 'u3net': use one of ")
    assert "u2net" in str(err.value) and "custom .onnx" in str(err.value)


def test_missing_custom_onnx(tmp_path):
    with pytest.raises(OptionError) as err:
        BackgroundRemover().mask(np.zeros((32, 32, 3), np.uint8), str(tmp_path / "seg.onnx"))
    assert str(err.value) == f"The custom ONNX model '{tmp_path / 'seg.onnx'}' does not exist."


def test_custom_onnx_with_the_wrong_input(tmp_path):
    """A model that takes a single-channel image cannot segment a photo."""
    import warnings

    import torch

    path = tmp_path / "gray.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            torch.nn.Conv2d(1, 1, 1), torch.zeros(1, 1, 320, 320), str(path), dynamo=False
        )
    with pytest.raises(OptionError) as err:
        BackgroundRemover().mask(np.zeros((32, 32, 3), np.uint8), str(path))
    assert str(err.value) == (
        "The custom ONNX model 'gray.onnx' has input shape [1, 1, 320, 320]; "
        "a segmentation model must take one 1x3xHxW image."
    )


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(OptionError, match=r"^The custom ONNX model 'bad.onnx' cannot be loaded"):
        BackgroundRemover().mask(np.zeros((32, 32, 3), np.uint8), str(bad))


def test_default_model_offline_is_one_paragraph(isolated_home):
    """u2net is not on this machine and cannot be downloaded (the test proxy refuses)."""
    with pytest.raises(ModelUnavailableError) as err:
        BackgroundRemover().mask(np.zeros((32, 32, 3), np.uint8), "u2net")
    text = str(err.value)
    folder = isolated_home / "rembg" / "models" / "u2net"
    assert text.startswith(
        f"The background-removal model 'u2net' is not in {folder} and could not be downloaded "
        "(the download server cannot be reached)."
    )
    assert "--segment key" in text and "\n" not in text
