"""Stage 3: depth from tiny random models (loaded like a user's download), from files, and by inflation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.depth.estimator import DepthEstimator, _resize_for_glpn
from core.depth.maps import depth_from_prediction, inflate_depth, load_depth_map
from core.errors import InputError, ModelUnavailableError, OptionError
from core.geometry.camera import intrinsics_from_fov

from ..conftest import install_in_hf_cache, toy_photo


def test_tiny_glpn_from_the_hub_cache_by_id(tiny_glpn, isolated_home):
    """The default path: a model id resolved from the Hugging Face cache inside IMG2MESH_HOME,
    as a earlier download left it; no network is needed (the test's proxy refuses everything)."""
    install_in_hf_cache(tiny_glpn, "img2mesh-test/tiny-glpn", isolated_home / "huggingface")
    img, _ = toy_photo(160, 120)
    est = DepthEstimator("img2mesh-test/tiny-glpn", device="cpu")
    pred = est.predict(img)
    assert pred.kind == "metric"
    assert pred.values.shape == (120, 160) and pred.values.dtype == np.float32
    assert np.isfinite(pred.values).all() and (pred.values > 0).all()
    # float32 from start to end: far more than the 256 levels of the original uint8 depth
    assert len(np.unique(pred.values)) > 1000


def test_tiny_glpn_from_a_local_folder(tiny_glpn):
    est = DepthEstimator("vinvino02/glpn-nyu", device="cpu", model_dir=str(tiny_glpn))
    img, _ = toy_photo(96, 64)
    assert est.predict(img).values.shape == (64, 96)
    assert est.loaded and est.device == "cpu"


def test_loading_shows_no_library_bar_and_keeps_the_hub_download_bars(tiny_glpn, capfd):
    """transformers' "Loading weights" bar would cut through the stage bars; a download's stays."""
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as hf_logging

    from core.networks import hub

    enable_progress_bars()
    hf_logging.enable_progress_bar()
    during = []
    real = hub.from_pretrained

    def spy(loader, source, **kwargs):
        during.append((hf_logging.is_progress_bar_enabled(), are_progress_bars_disabled()))
        return real(loader, source, **kwargs)

    hub.from_pretrained = spy
    try:
        DepthEstimator("x", device="cpu", model_dir=str(tiny_glpn)).load()
    finally:
        hub.from_pretrained = real
    assert during and all(lib_bar is False and hub_off is False for lib_bar, hub_off in during)
    assert "Loading weights" not in capfd.readouterr().err
    # as they were afterwards
    assert hf_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()


def test_tiny_depth_anything_gives_disparity_converted_to_depth(tiny_depth_anything):
    est = DepthEstimator(
        "depth-anything/Depth-Anything-V2-Small-hf",
        device="cpu",
        model_dir=str(tiny_depth_anything),
    )
    img, mask = toy_photo(160, 120)
    pred = est.predict(img)
    assert pred.kind == "disparity" and pred.values.shape == (120, 160)
    K = intrinsics_from_fov(160, 120, 55)
    depth, metric = depth_from_prediction(pred, mask, K)
    assert not metric and depth.dtype == np.float32
    assert (depth[mask] > 0).all()


def test_disparity_conversion_is_inverse_and_normalised():
    """Larger disparity is nearer; the object ends up about one unit across."""
    from core.depth.estimator import DepthPrediction
    from core.depth.maps import RELATIVE_DEPTH_RATIO

    img, mask = toy_photo(160, 120)
    disp = np.tile(np.linspace(1.0, 2.0, 160, dtype=np.float32), (120, 1))
    K = intrinsics_from_fov(160, 120, 55)
    depth, metric = depth_from_prediction(DepthPrediction(disp, "disparity"), mask, K)
    row = depth[66][mask[66]]
    assert (np.diff(row) < 0).all()  # nearer to the right, where disparity grows
    near, far = np.percentile(depth[mask], 1), np.percentile(depth[mask], 99)
    assert far / near == pytest.approx(1 + RELATIVE_DEPTH_RATIO, rel=0.05)
    cols = np.nonzero(mask.any(axis=0))[0]
    width_world = (cols.max() - cols.min() + 1) * near / K.fx
    assert width_world == pytest.approx(1.0, rel=0.05)


def test_glpn_input_keeps_the_original_resolution():
    img = Image.new("RGB", (640, 480))
    assert _resize_for_glpn(img, 480).size == (640, 480)
    assert _resize_for_glpn(Image.new("RGB", (1280, 960)), 480).size == (640, 480)
    w, h = _resize_for_glpn(Image.new("RGB", (500, 333)), 480).size
    assert w % 32 == 0 and h % 32 == 0 and h <= 333


def test_unknown_model_offline_is_one_readable_paragraph(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    est = DepthEstimator("img2mesh-test/no-such-model", device="cpu")
    with pytest.raises(ModelUnavailableError) as err:
        est.load()
    text = str(err.value)
    assert "'img2mesh-test/no-such-model' could not be loaded" in text
    assert "huggingface" in text  # names where it looked
    assert "--model-dir" in text and "--depth inflate" in text  # says what to do
    assert "\n" not in text and "Traceback" not in text


def test_unreachable_hub_is_the_same_paragraph():
    """No HF_HUB_OFFLINE: the download is really attempted and fails (the proxy refuses)."""
    est = DepthEstimator("img2mesh-test/no-such-model", device="cpu")
    with pytest.raises(
        ModelUnavailableError, match="could not be downloaded from the Hugging Face hub"
    ):
        est.load()


def test_pickle_only_weights_are_refused(tiny_glpn, tmp_path):
    """Weights only from safetensors: a folder with just pytorch_model.bin is not unpickled."""
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(tiny_glpn / name, folder / name)
    torch.save(load_file(tiny_glpn / "model.safetensors"), folder / "pytorch_model.bin")
    est = DepthEstimator("x", device="cpu", model_dir=str(folder))
    with pytest.raises(ModelUnavailableError, match="model.safetensors"):
        est.load()


def test_a_folder_that_is_not_a_depth_model(tmp_path):
    from transformers import BertConfig

    BertConfig(
        hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8
    ).save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text("{}")
    with pytest.raises((OptionError, ModelUnavailableError)):
        DepthEstimator("x", device="cpu", model_dir=str(tmp_path)).load()


def test_missing_model_folder(tmp_path):
    with pytest.raises(ModelUnavailableError) as err:
        DepthEstimator("x", model_dir=str(tmp_path / "nope")).load()
    assert str(err.value) == f"The model folder '{tmp_path / 'nope'}' does not exist."


def test_cuda_asked_for_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from core.networks.devices import pick_device

    with pytest.raises(OptionError, match="no CUDA GPU"):
        pick_device("cuda")
    assert pick_device("auto") in ("cpu", "mps")


# -- depth maps ------------------------------------------------------------------------


def test_sixteen_bit_png_depth_map_in_millimetres(tmp_path):
    mm = np.full((48, 64), 1500, np.uint16)
    mm[:, :10] = 0
    Image.fromarray(mm).save(tmp_path / "d.png")
    depth, warnings = load_depth_map(tmp_path / "d.png", (64, 48))
    assert depth.dtype == np.float32 and depth[0, 20] == pytest.approx(1.5)
    assert (depth[:, :10] == 0).all() and warnings == []
    depth, _ = load_depth_map(tmp_path / "d.png", (64, 48), scale=1 / 5000)  # TUM's units
    assert depth[0, 20] == pytest.approx(0.3)


def test_npy_float_depth_with_nan_and_inf(tmp_path):
    d = np.full((48, 64), 2.0, np.float32)
    d[0, 0], d[0, 1], d[0, 2] = np.nan, np.inf, -1
    np.save(tmp_path / "d.npy", d)
    depth, _ = load_depth_map(tmp_path / "d.npy", (64, 48))
    assert depth[0, :3].tolist() == [0, 0, 0] and depth[5, 5] == 2.0


def test_float_tiff_and_resize_same_aspect(tmp_path):
    Image.fromarray(np.full((24, 32), 0.75, np.float32)).save(tmp_path / "d.tif")
    depth, _ = load_depth_map(tmp_path / "d.tif", (64, 48))
    assert depth.shape == (48, 64) and np.allclose(depth, 0.75)


@pytest.mark.parametrize(
    "make,message",
    [
        (
            lambda p: np.save(p / "z.npy", np.zeros((48, 64))) or p / "z.npy",
            "The depth map 'z.npy' holds no valid depth (all zero, negative, NaN or inf).",
        ),
        (
            lambda p: np.save(p / "n.npy", np.full((48, 64), np.nan)) or p / "n.npy",
            "The depth map 'n.npy' holds no valid depth (all zero, negative, NaN or inf).",
        ),
        (
            lambda p: np.save(p / "w.npy", np.ones((50, 50))) or p / "w.npy",
            "The depth map 'w.npy' is 50x50 but the image is 64x48: they must show the same view (same aspect ratio).",
        ),
        (
            lambda p: np.save(p / "c.npy", np.ones((48, 64, 3))) or p / "c.npy",
            "The depth map 'c.npy' must be a 2-D numeric array, not 3-D float64.",
        ),
        (
            lambda p: Image.new("RGB", (64, 48)).save(p / "rgb.png") or p / "rgb.png",
            "The depth map 'rgb.png' is an RGB image; depth must be single-channel 16-bit (PNG), "
            "32-bit float (TIFF) or a .npy array, never 8-bit colour.",
        ),
        (lambda p: p / "none.png", "The depth map '{p}/none.png' does not exist."),
    ],
)
def test_bad_depth_maps(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError) as err:
        load_depth_map(path, (64, 48))
    assert str(err.value) == message.format(p=tmp_path)


def test_inflation_bulges_towards_the_camera():
    _, mask = toy_photo(160, 120)
    K = intrinsics_from_fov(160, 120, 55)
    depth = inflate_depth(mask, K)
    assert (depth[mask] > 0).all() and (depth[~mask] == 0).all()
    rows, cols = np.nonzero(mask)
    centre = depth[int(rows.mean()), int(cols.mean())]
    edge = depth[rows[0], cols[0]]
    assert centre < edge  # the middle is nearest
    assert len(np.unique(depth[mask])) > 256


def test_inflation_of_an_empty_mask():
    with pytest.raises(InputError, match="removes everything"):
        inflate_depth(np.zeros((32, 32), bool), intrinsics_from_fov(32, 32, 55))
