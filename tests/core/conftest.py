"""Shared fixtures of the core's tests: an isolated data folder, tiny random models, synthetic photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own IMG2MESH_HOME and no network: models come only from local files."""
    home = tmp_path_factory.mktemp("img2mesh-home")
    monkeypatch.setenv("IMG2MESH_HOME", str(home))
    for var in (
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "U2NET_HOME",
        "REMBG_HOME",
        "TRANSFORMERS_CACHE",
    ):
        monkeypatch.delenv(var, raising=False)
    # A proxy nobody listens on: any download attempt fails at once, as it would offline.
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return home


def save_tiny_glpn(folder: Path) -> Path:
    """A GLPN with the real architecture's layout at toy sizes, saved as a user's download would be."""
    import torch
    from transformers import GLPNConfig, GLPNForDepthEstimation, GLPNImageProcessor

    torch.manual_seed(0)
    config = GLPNConfig(
        num_encoder_blocks=4,
        depths=[1, 1, 1, 1],
        hidden_sizes=[8, 16, 24, 32],
        num_attention_heads=[1, 1, 1, 1],
        decoder_hidden_size=8,
        sr_ratios=[8, 4, 2, 1],
    )
    GLPNForDepthEstimation(config).save_pretrained(folder)
    GLPNImageProcessor().save_pretrained(folder)
    return folder


def save_tiny_depth_anything(folder: Path) -> Path:
    """A Depth Anything (relative, DINOv2 backbone) at toy sizes."""
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    torch.manual_seed(0)
    backbone = Dinov2Config(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=56,
        patch_size=14,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        fusion_hidden_size=16,
        neck_hidden_sizes=[8, 16, 32, 32],
        head_hidden_size=8,
        depth_estimation_type="relative",
    )
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        do_pad=False,
    ).save_pretrained(folder)
    return folder


def install_in_hf_cache(model_dir: Path, repo_id: str, cache: Path) -> None:
    """Lay out ``model_dir`` as huggingface_hub stores a download, so ``from_pretrained(repo_id)`` finds it."""
    import shutil

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for f in model_dir.iterdir():
        shutil.copy2(f, snap / f.name)


@pytest.fixture(scope="session")
def tiny_glpn(tmp_path_factory) -> Path:
    return save_tiny_glpn(tmp_path_factory.mktemp("tiny-glpn"))


@pytest.fixture(scope="session")
def tiny_depth_anything(tmp_path_factory) -> Path:
    return save_tiny_depth_anything(tmp_path_factory.mktemp("tiny-depth-anything"))


def export_tiny_segmenter(path: Path) -> Path:
    """Export a tiny ONNX segmentation network: distance of each pixel's colour from white.

    rembg normalises the image with ImageNet's mean and std and min-max scales the
    output, so a coloured object on a white backdrop comes out as foreground.
    """
    import torch

    class WhiteDistance(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            mean = torch.tensor([0.485, 0.456, 0.406])
            std = torch.tensor([0.229, 0.224, 0.225])
            self.register_buffer("white", ((1 - mean) / std).view(1, 3, 1, 1))
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
            torch.nn.init.constant_(
                self.conv.weight, 1.0 / 9.0
            )  # a little smoothing, like a real net

        def forward(self, x):
            d = torch.sqrt(((x - self.white) ** 2).sum(dim=1, keepdim=True) + 1e-6)
            return self.conv(d)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            WhiteDistance(),
            torch.zeros(1, 3, 320, 320),
            str(path),
            input_names=["input.1"],
            output_names=["mask"],
            dynamo=False,
        )
    return path


@pytest.fixture(scope="session")
def tiny_segmenter(tmp_path_factory) -> Path:
    return export_tiny_segmenter(tmp_path_factory.mktemp("onnx") / "tiny_seg.onnx")


def toy_photo(
    width: int = 160, height: int = 120, background=(245, 245, 245)
) -> tuple[np.ndarray, np.ndarray]:
    """A plain-background photo of a shaded two-colour ellipse and its true mask."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy, rx, ry = width * 0.5, height * 0.55, width * 0.3, height * 0.33
    r2 = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    mask = r2 <= 1.0
    img = np.empty((height, width, 3), np.uint8)
    img[:] = background
    shade = np.clip(1.0 - 0.4 * r2, 0.5, 1.0)
    red = np.stack([220 * shade, 40 * shade, 30 * shade], axis=-1)
    blue = np.stack([30 * shade, 60 * shade, 200 * shade], axis=-1)
    body = np.where((xx < cx)[..., None], red, blue).astype(np.uint8)
    img[mask] = body[mask]
    return img, mask


@pytest.fixture
def toy_jpeg(tmp_path) -> tuple[Path, np.ndarray]:
    from PIL import Image

    img, mask = toy_photo()
    path = tmp_path / "toy photo ü.jpg"  # spaces and non-ASCII on purpose
    Image.fromarray(img).save(path, quality=95)
    return path, mask


def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real test data not found at {SHARED_DATA} (the shared/ folder is not beside this clone)"
        )
    return SHARED_DATA
