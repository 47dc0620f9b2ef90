"""Tiny random models for tests: real architectures at toy sizes, saved the way users' downloads are.

Used by the core's tests directly and by the Blender tests through
``python tests/tiny_models.py OUT_DIR`` run in the core's environment (bpy's has no torch).
"""

from __future__ import annotations

import sys
from pathlib import Path


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


def main(out: Path) -> None:
    """Write tiny-glpn/, tiny-depth-anything/ and tiny_seg.onnx into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name, make in (
        ("tiny-glpn", save_tiny_glpn),
        ("tiny-depth-anything", save_tiny_depth_anything),
    ):
        (out / name).mkdir(exist_ok=True)
        make(out / name)
    export_tiny_segmenter(out / "tiny_seg.onnx")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
