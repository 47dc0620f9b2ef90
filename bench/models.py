"""Real-size depth and segmentation networks, built once for timing.

The hub cannot be reached from the benchmark machines, so the networks are built from
their published configurations and saved the way a download is: a ``save_pretrained``
folder for the depth models (loaded by the core's own loading code through
``--model-dir``) and an ONNX file for U^2-Net (used through ``--rembg-model``, rembg's
custom-model session). The compute is the real networks'. The depth networks keep
random weights, so their depth is noise; U^2-Net is trained briefly on the project's
oracle scenes (20-25 minutes on two cores), so that its mask is an object's mask, as a trained
network's is, and an INT8 copy can be judged against it.

``python bench/models.py [FOLDER]`` builds what is missing (default ``bench/.models``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_FOLDER = Path(__file__).resolve().parent / ".models"

#: Training steps of the benchmark's U^2-Net (20-25 minutes on two cores; see bench/u2net.py).
U2NET_STEPS = 400

#: name -> what it is, for the report.
MODELS = {
    "glpn-nyu": "GLPN-NYU architecture (MiT-b4 encoder: depths 3/8/27/3, hidden 64/128/320/512, "
    "heads 1/2/5/8; decoder 64), random weights",
    "depth-anything-v2-small": "Depth Anything V2 Small architecture (DINOv2-S/14 backbone, "
    "DPT head 48/96/192/384, fusion 64), random weights",
    "u2net.onnx": "U^2-Net (full size, 44 M parameters, as rembg's u2net.onnx), trained for "
    f"{U2NET_STEPS} steps on the oracle scenes (bench/u2net.py: train) so that its mask is an "
    "object's",
}


def save_glpn_nyu(folder: Path, *, seed: int = 0, tiny: bool = False) -> Path:
    """GLPN with vinvino02/glpn-nyu's configuration (MiT-b4) and its image processor."""
    import torch
    from transformers import GLPNConfig, GLPNForDepthEstimation

    torch.manual_seed(seed)
    config = GLPNConfig(
        num_encoder_blocks=4,
        depths=[1, 1, 1, 1] if tiny else [3, 8, 27, 3],
        sr_ratios=[8, 4, 2, 1],
        hidden_sizes=[8, 16, 24, 32] if tiny else [64, 128, 320, 512],
        patch_sizes=[7, 3, 3, 3],
        strides=[4, 2, 2, 2],
        num_attention_heads=[1, 1, 1, 1] if tiny else [1, 2, 5, 8],
        mlp_ratios=[4, 4, 4, 4],
        decoder_hidden_size=8 if tiny else 64,
        max_depth=10,
    )
    model = GLPNForDepthEstimation(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    # The processor as the hub's preprocessor_config.json describes it (resize to a
    # multiple of 32, rescale to [0, 1]); written by hand so no backend is needed.
    _write_json(
        folder / "preprocessor_config.json",
        {
            "do_resize": True,
            "do_rescale": True,
            "image_processor_type": "GLPNImageProcessor",
            "resample": 2,
            "rescale_factor": 1 / 255,
            "size_divisor": 32,
        },
    )
    return folder


def save_depth_anything_v2_small(folder: Path, *, seed: int = 0, tiny: bool = False) -> Path:
    """Depth Anything V2 Small (relative) with the hub's configuration and processor."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(seed)
    backbone = Dinov2Config(
        hidden_size=16 if tiny else 384,
        num_hidden_layers=4 if tiny else 12,
        num_attention_heads=2 if tiny else 6,
        mlp_ratio=4,
        image_size=518,
        patch_size=14,
        layerscale_value=1.0,
        out_indices=[1, 2, 3, 4] if tiny else [3, 6, 9, 12],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=14,
        reassemble_hidden_size=16 if tiny else 384,
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=[8, 16, 32, 32] if tiny else [48, 96, 192, 384],
        fusion_hidden_size=16 if tiny else 64,
        head_hidden_size=8 if tiny else 32,
        head_in_index=-1,
        depth_estimation_type="relative",
    )
    model = DepthAnythingForDepthEstimation(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    _write_json(
        folder / "preprocessor_config.json",
        {
            "do_normalize": True,
            "do_pad": False,
            "do_rescale": True,
            "do_resize": True,
            "ensure_multiple_of": 14,
            "image_mean": [0.485, 0.456, 0.406],
            "image_processor_type": "DPTImageProcessor",
            "image_std": [0.229, 0.224, 0.225],
            "keep_aspect_ratio": True,
            "resample": 3,
            "rescale_factor": 1 / 255,
            "size": {"height": 518, "width": 518},
        },
    )
    return folder


def export_u2net(path: Path, *, seed: int = 0, tiny: bool = False) -> Path:
    """U^2-Net at full size exported to ONNX as rembg ships it (1x3x320x320 in, 7 sigmoid maps out)."""
    import warnings

    import torch

    from bench.u2net import U2NET, train

    torch.manual_seed(seed)
    net = U2NET(3, 1, width=1 / 16 if tiny else 1.0).eval()
    steps = 0 if tiny else U2NET_STEPS  # the smoke test's sliver stays random
    if steps:
        started = time.perf_counter()
        train(net, steps=steps, seed=seed, log=lambda text: print(text, file=sys.stderr))
        print(f"trained U^2-Net in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            torch.zeros(1, 3, 320, 320),
            str(tmp),
            input_names=["input.1"],
            output_names=["d0", "d1", "d2", "d3", "d4", "d5", "d6"],
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(path)
    _write_json(_stamp(path), {"trained_steps": steps})
    return path


def _stamp(path: Path) -> Path:
    """Where the U^2-Net file's training record is kept (a file without it is rebuilt)."""
    return path.with_suffix(".json")


def build(
    folder: Path = DEFAULT_FOLDER, *, only: list[str] | None = None, tiny: bool = False
) -> dict[str, Path]:
    """Build whatever is missing in ``folder``; returns name -> path.

    ``tiny``: the same architectures at toy sizes (the benchmark's smoke test).
    """
    makers = {
        "glpn-nyu": save_glpn_nyu,
        "depth-anything-v2-small": save_depth_anything_v2_small,
        "u2net.onnx": export_u2net,
    }
    out = {}
    for name, make in makers.items():
        if only and name not in only:
            continue
        target = folder / name
        done = target.is_file() if name.endswith(".onnx") else (target / "config.json").is_file()
        if name == "u2net.onnx" and done:  # built before it was trained, or for the other mode
            stamp = _stamp(target)
            steps = json.loads(stamp.read_text()).get("trained_steps") if stamp.is_file() else None
            done = steps == (0 if tiny else U2NET_STEPS)
        if not done:
            print(f"building {name} in {folder}", file=sys.stderr)
            make(target, tiny=tiny)
        out[name] = target
    return out


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    args = parser.parse_args()
    for name, path in build(args.folder).items():
        print(f"{name}: {path}")
