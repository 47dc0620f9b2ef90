"""The ``img2mesh`` command's arguments: the parser, the checks argparse cannot make, and the Settings they give."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import __version__
from ..files.names import MESH_FORMATS
from ..protocol import DEFAULT_T2I_MODEL
from ..settings import DEFAULT_DEPTH_MODEL, DEFAULT_REMBG_MODEL, Settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="img2mesh",
        description="Turn photos into coloured 3D meshes (PLY, OBJ or GLB).",
        epilog=(
            "Examples:\n"
            "  img2mesh photo.jpg -o toy.ply\n"
            "  img2mesh a.jpg b.png photos/ -o meshes/ --format glb\n"
            "  img2mesh product.jpg --segment key --depth inflate -o flat.ply   (no model weights needed)\n"
            "  img2mesh color.png --depth-map depth.png --focal-px 525 --mesh grid -o scan.ply\n"
            '  img2mesh --prompt "a red toy car" -o car.ply   (writes car.png too; needs img2mesh[text])\n'
            "Coordinates: Z up, the camera looks along +Y, metres when the depth is metric."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", metavar="IMAGE", help="photos or folders of photos")
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="mesh file (.ply, .obj, .glb) for one photo, or a folder for several "
        "(default: IMAGE's name with .ply in the current folder)",
    )
    p.add_argument(
        "--format",
        choices=[f[1:] for f in MESH_FORMATS],
        default="ply",
        help="mesh format when writing into a folder (default: ply)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no-preview", action="store_true", help="do not write the preview PNG")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip photos whose outputs are all there already (resume a batch)",
    )
    p.add_argument(
        "--report", metavar="FILE.json", help="write settings, timings, counts and warnings"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--version", action="version", version=f"img2mesh {__version__}")
    p.add_argument(
        "--where", action="store_true", help="print where models and caches are stored, then exit"
    )

    g = p.add_argument_group(
        "text prompt", 'instead of photos: generate the picture (pip install "img2mesh[text]")'
    )
    g.add_argument(
        "--prompt",
        metavar="TEXT",
        help="describe one object; its picture is saved beside the mesh (MESH's name with .png) "
        "and reconstructed like a photo (default output: the prompt's words with .ply)",
    )
    g.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="noise seed: the same seed gives the same picture (default: 0)",
    )
    g.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="denoising steps (default: the model's own; 1 for SD-Turbo)",
    )
    g.add_argument(
        "--t2i-model",
        metavar="ID",
        help=f"diffusers text-to-image model id (default: {DEFAULT_T2I_MODEL})",
    )
    g.add_argument(
        "--t2i-model-dir",
        metavar="DIR",
        help="local folder holding the text-to-image model (offline use)",
    )
    g.add_argument(
        "--raw-prompt",
        action="store_true",
        help="use the prompt as written, without asking for one whole object on a plain background",
    )

    g = p.add_argument_group(
        "cluster", "spread a folder over a Ray cluster (pip install 'img2mesh[cluster]')"
    )
    g.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run the photos on Ray workers that each load the models once: a new local Ray "
        "instance, or the cluster at ADDRESS (auto, HOST:6379, ray://HOST:10001)",
    )
    g.add_argument(
        "--ray-cpus",
        type=float,
        default=2.0,
        metavar="N",
        help="CPU cores per Ray worker (default: 2; one worker per N cores of the cluster)",
    )
    g.add_argument(
        "--ray-gpus",
        type=float,
        default=0.0,
        metavar="G",
        help="GPUs per Ray worker (default: 0; 1 on GPU nodes, 0.5 to share one between two)",
    )

    g = p.add_argument_group("image")
    g.add_argument(
        "--max-size",
        type=int,
        default=Settings.max_size,
        metavar="PX",
        help=f"longest side of the working image (default: {Settings.max_size})",
    )

    g = p.add_argument_group("background removal")
    g.add_argument(
        "--segment",
        choices=["rembg", "key", "none"],
        default="rembg",
        help="rembg (default), key: weight-free colour key + GrabCut for plain backgrounds, "
        "none: use the whole image",
    )
    g.add_argument(
        "--no-remove-background",
        dest="segment",
        action="store_const",
        const="none",
        help="same as --segment none",
    )
    g.add_argument(
        "--rembg-model",
        default=DEFAULT_REMBG_MODEL,
        metavar="NAME|FILE.onnx",
        help=f"rembg model name or a custom .onnx file: U2-Net style (any input size, 320 used) or "
        f"fixed-size IS-Net/BiRefNet/BRIA style (default: {DEFAULT_REMBG_MODEL})",
    )
    g.add_argument(
        "--rembg-normalize",
        choices=["auto", "imagenet", "half"],
        default="auto",
        help="input normalisation of a custom .onnx: imagenet (U2-Net, BiRefNet), half (mean 0.5, "
        "std 1: IS-Net, BRIA); auto (default) tells them apart from the model's graph",
    )

    g = p.add_argument_group("depth")
    g.add_argument(
        "--depth",
        choices=["model", "inflate"],
        default="model",
        help="model: a depth network (default); inflate: weight-free silhouette inflation",
    )
    g.add_argument(
        "--depth-model",
        default=DEFAULT_DEPTH_MODEL,
        metavar="ID",
        help=f"Hugging Face depth model id (default: {DEFAULT_DEPTH_MODEL})",
    )
    g.add_argument(
        "--model-dir", metavar="DIR", help="local folder holding the depth model (offline use)"
    )
    g.add_argument(
        "--depth-kind",
        choices=["auto", "metric", "disparity"],
        default="auto",
        help="how to read the model's output (default: from the architecture)",
    )
    g.add_argument(
        "--depth-map", metavar="FILE", help="use this depth map (16-bit PNG, float TIFF, .npy)"
    )
    g.add_argument(
        "--depth-scale",
        type=float,
        metavar="M",
        help="metres per stored unit of --depth-map (default: 0.001 for integer maps, 1 for float)",
    )
    g.add_argument(
        "--depth-resolution",
        type=int,
        metavar="PX",
        help="network input height (default: the model's own; 480 for GLPN)",
    )
    g.add_argument(
        "--depth-backend",
        choices=["auto", "torch", "onnx"],
        default="auto",
        help="how the depth network runs on the CPU: auto (default) = ONNX Runtime once its "
        "depth is verified to match PyTorch's, else PyTorch; torch; onnx",
    )
    g.add_argument(
        "--quantize",
        choices=["auto", "off"],
        default="auto",
        help="INT8 networks in ONNX Runtime: auto (default) = an INT8 copy of each network, "
        "made on its first photo and used only if its mask (IoU >= 0.98) and depth (99%% of "
        "pixels within 2%%) match full precision's; off = always full precision",
    )
    g.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        default="auto",
        help="where the networks run (default: auto = cuda, mps, cpu)",
    )

    g = p.add_argument_group("camera")
    g.add_argument(
        "--fov",
        type=float,
        metavar="DEG",
        help="field of view across the longer side (default: EXIF, the model, or 55)",
    )
    g.add_argument(
        "--focal-px", type=float, metavar="PX", help="focal length in pixels of the full-size photo"
    )

    g = p.add_argument_group("mesh")
    g.add_argument(
        "--mesh",
        choices=["poisson", "grid"],
        default="poisson",
        help="poisson: smooth surface (default); grid: exact triangulation of the depth map",
    )
    g.add_argument(
        "--open",
        action="store_true",
        help="keep only the visible surface instead of a closed solid",
    )
    g.add_argument(
        "--poisson-depth",
        type=int,
        metavar="N",
        help="octree depth (default: from the point count)",
    )
    g.add_argument(
        "--thickness",
        type=float,
        metavar="R",
        help="depth of the hidden back as a share of the object's width (default: from the silhouette)",
    )
    g.add_argument(
        "--shape",
        choices=("auto", "revolve", "box", "inflate"),
        default="auto",
        help="hidden side of a closed solid: auto (default) turns the visible surface about "
        "its axis when the object is a surface of revolution (a bottle, can, cup, vase), "
        "completes a box or straight extrusion (a prism, an L-shaped block) from its flat "
        "faces, else inflates the outline; revolve, box or inflate force one",
    )
    g.add_argument("--target-faces", type=int, metavar="N", help="decimate to about N faces")
    g.add_argument("--smooth", type=int, default=0, metavar="N", help="Taubin smoothing iterations")
    g.add_argument(
        "--outlier-std",
        type=float,
        default=Settings.outlier_std,
        metavar="R",
        help="statistical outlier removal: standard-deviation ratio",
    )
    g.add_argument(
        "--no-cache", action="store_true", help="do not read or write the mask and depth cache"
    )

    g = p.add_argument_group("texture")
    g.add_argument(
        "--texture",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="give .glb and .obj a UV texture from the full-size photo (default); .obj then "
        "comes with NAME.mtl and NAME.texture.png; --no-texture: vertex colours only",
    )
    g.add_argument(
        "--texture-size",
        type=int,
        default=Settings.texture_size,
        metavar="PX",
        help=f"longest side of the texture (default: {Settings.texture_size})",
    )
    return p


def settings_from_args(a: argparse.Namespace) -> Settings:
    return Settings(
        max_size=a.max_size,
        segment=a.segment,
        rembg_model=a.rembg_model,
        rembg_normalize=a.rembg_normalize,
        depth="map" if a.depth_map else a.depth,
        depth_model=a.depth_model,
        depth_kind=a.depth_kind,
        depth_map=a.depth_map,
        depth_scale=a.depth_scale,
        depth_resolution=a.depth_resolution,
        device=a.device,
        depth_backend=a.depth_backend,
        quantize=a.quantize,
        model_dir=a.model_dir,
        fov=a.fov,
        focal_px=a.focal_px,
        outlier_std=a.outlier_std,
        mesh=a.mesh,
        open=a.open,
        poisson_depth=a.poisson_depth,
        thickness=a.thickness,
        shape=a.shape,
        target_faces=a.target_faces,
        smooth=a.smooth,
        cache=not a.no_cache,
        texture=a.texture,
        texture_size=a.texture_size,
    )


def check_arguments(parser: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """The combinations argparse cannot check; a wrong one ends the command (exit 2)."""
    prompt_only = ("seed", "steps", "t2i_model", "t2i_model_dir", "raw_prompt")
    if a.prompt is None and any(getattr(a, k) not in (None, False) for k in prompt_only):
        parser.error("--seed, --steps, --t2i-model, --t2i-model-dir and --raw-prompt need --prompt")
    if a.prompt is not None and a.inputs:
        parser.error("give either images or --prompt, not both")
    if a.ray not in (None, "local", "auto") and Path(a.ray).exists():
        parser.error(
            f"--ray took '{a.ray}' for a cluster address: put --ray after the photos, "
            "or give the address (--ray local starts one here)"
        )
    if not a.inputs and a.prompt is None:
        parser.error("give at least one image, or --prompt TEXT (or --where)")
    if a.ray is None and (a.ray_cpus != 2.0 or a.ray_gpus != 0.0):
        parser.error("--ray-cpus and --ray-gpus need --ray")
    if a.ray is not None and (a.prompt is not None or a.ray_cpus <= 0 or a.ray_gpus < 0):
        parser.error("--ray works on photos, with --ray-cpus above 0 and --ray-gpus 0 or more")
