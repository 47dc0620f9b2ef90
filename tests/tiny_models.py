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
        if f.is_dir():  # diffusers pipelines keep one folder per component
            shutil.copytree(f, snap / f.name, dirs_exist_ok=True)
        else:
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


def save_tiny_text2image(folder: Path) -> Path:
    """A Stable-Diffusion-style text-to-image pipeline at toy sizes (UNet, VAE, CLIP text
    encoder, a byte-level CLIP tokenizer, Euler scheduler), saved as a diffusers download is.

    Its pictures are noise, but they are made by the real code path: latents 8x smaller
    than the picture, text conditioning, seeded denoising steps and per-step callbacks.
    """
    import json
    import tempfile

    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=(2, 4),
        norm_num_groups=4,
    )
    vae = AutoencoderKL(  # four blocks: latents 8x smaller than the picture, as in SD
        block_out_channels=(4, 4, 8, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    )
    # A random decoder draws grey noise; lean it towards one colour (brick red) so that tests
    # can tell the picture's colours in a mesh from a default grey.
    with torch.no_grad():
        vae.decoder.conv_out.weight.mul_(0.3)
        vae.decoder.conv_out.bias.copy_(torch.tensor([0.6, -0.5, -0.6]))
    # CLIP's byte-level BPE with no merges: every byte is a token, as in the real vocabulary.
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(256 - len(printable))]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
        vocab.write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
        merges.write_text("#version: 0.2\n", encoding="utf-8")
        # no merges, so a token per character: room for the wrapped prompt (CLIP's 77 is words)
        tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=256)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokens),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=256,
            projection_dim=16,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="trailing",  # as SD-Turbo's
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def main(out: Path) -> None:
    """Write tiny-glpn/, tiny-depth-anything/, tiny_seg.onnx and (with diffusers) tiny-text2image/ into ``out``."""
    import importlib.util

    out.mkdir(parents=True, exist_ok=True)
    makers = [("tiny-glpn", save_tiny_glpn), ("tiny-depth-anything", save_tiny_depth_anything)]
    if importlib.util.find_spec("diffusers") is not None:
        makers.append(("tiny-text2image", save_tiny_text2image))
    for name, make in makers:
        (out / name).mkdir(exist_ok=True)
        make(out / name)
    export_tiny_segmenter(out / "tiny_seg.onnx")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
