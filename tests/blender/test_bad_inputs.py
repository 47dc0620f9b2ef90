"""Every bad input a Blender user can give the operator: one exact sentence in an ERROR report, nothing left.

The same inputs as the CLI's (tests/core/cli/test_bad_inputs.py), where Blender lets a user
make them: photo files, the Blender image source, models, and the options the panel's
properties do not already rule out (those are checked to be clamped instead). And the
unusual-but-valid photos (grayscale, CMYK, 16-bit, palette with transparency,
EXIF-rotated, paths with spaces and non-ASCII) come in as meshes.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest

bpy = pytest.importorskip(
    "bpy",
    reason="bpy (Blender as a Python module) is not importable: run .venv-blender/bin/pytest tests/blender",
)
from blender_helpers import WEIGHT_FREE, datablocks, reconstruct, worker_module  # noqa: E402
from conftest import REPO_ROOT, run_core  # noqa: E402

pytestmark = pytest.mark.blender

FOLDER = "bad inputs ü"  # every path below has a space and a non-ASCII letter


@pytest.fixture(scope="module")
def inputs(core_python, tmp_path_factory) -> Path:
    """The bad and the unusual inputs, made once with the CLI tests' own makers."""
    root = tmp_path_factory.mktemp("inputs")
    folder = root / FOLDER
    folder.mkdir()
    run_core(
        core_python,
        f"""
        import numpy as np
        from pathlib import Path
        from PIL import Image
        from tests.core.conftest import toy_photo
        from tests.core.cli.test_bad_inputs import (
            _constant_segmenter, _gray_input_segmenter, _png_bomb, _truncated)

        p = Path({str(folder)!r})
        (p / "a folder").mkdir()
        (p / "zero.jpg").write_bytes(b"")
        _truncated(p / "cut.jpg")
        (p / "notes.jpg").write_bytes(b"hello\\n")
        _png_bomb(p / "bomb.png")
        Image.new("RGB", (1, 1), "red").save(p / "dot.png")
        Image.new("RGBA", (64, 64), (255, 0, 0, 0)).save(p / "clear.png")
        Image.new("RGB", (64, 48), (200, 200, 200)).save(p / "plain.png")
        _constant_segmenter(p / "nothing.onnx")
        _gray_input_segmenter(p / "gray.onnx")

        img, _ = toy_photo(160, 120)
        Image.fromarray(img).save(p / "toy.png")
        Image.fromarray(img).convert("L").save(p / "gray.jpg")
        Image.fromarray(img).convert("CMYK").save(p / "cmyk.jpg")
        lum = np.asarray(Image.fromarray(img).convert("L")).astype(np.uint16) * 257
        Image.fromarray(lum).save(p / "g16.png")
        pal = Image.fromarray(img).quantize(colors=16)
        pal.save(p / "pal.png", transparency=int(np.asarray(pal)[0, 0]))

        toy = Image.open({str(REPO_ROOT / "examples" / "toy.jpg")!r})
        toy.resize((160, 120)).save(p / "upright.jpg", quality=95)
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 degrees clockwise to view", as phones write it
        toy.resize((160, 120)).rotate(90, expand=True).save(
            p / "phone photo é.jpg", exif=exif.tobytes(), quality=95)
        """,
    )
    return folder


@pytest.fixture
def warm(addon, inputs):
    """A worker that has run once, so each case costs only its own request."""
    if worker_module().current_worker() is None:
        assert reconstruct(filepath=str(inputs / "toy.png"), **WEIGHT_FREE) == {"FINISHED"}
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    return worker_module().current_worker()


def photo(name: str, **options):
    return lambda p: {"filepath": str(p / name), **WEIGHT_FREE, **options}


def model(**options):
    return lambda p: {"filepath": str(p / "toy.png"), **WEIGHT_FREE, **options}


# (id, operator options from the inputs folder, the exact message (or its start), worker asked)
CASES = [
    ("missing path", photo("missing.jpg"), "The image '{p}/missing.jpg' does not exist.", True),
    ("a folder", photo("a folder"), "'{p}/a folder' is a folder, not an image.", True),
    ("0-byte file", photo("zero.jpg"), "The image 'zero.jpg' is an empty file (0 bytes).", True),
    ("truncated JPEG", photo("cut.jpg"), "The image 'cut.jpg' is damaged or truncated (...", True),
    (
        "text named .jpg",
        photo("notes.jpg"),
        "'notes.jpg' is not an image file Pillow can read.",
        True,
    ),
    (
        "decompression bomb",
        photo("bomb.png"),
        "The image 'bomb.png' is too large (40000x40000 pixels); the limit is 80 megapixels.",
        True,
    ),
    (
        "1x1 image",
        photo("dot.png"),
        "The image 'dot.png' is too small (1x1 pixels); it needs at least 16 pixels on each side.",
        True,
    ),
    (
        "fully transparent RGBA",
        photo("clear.png"),
        "The image 'clear.png' is fully transparent: there is nothing to reconstruct.",
        True,
    ),
    (
        "nothing stands out (Plain Backdrop)",
        photo("plain.png"),
        "No object stands out from the background colour: Plain Backdrop needs an object on a "
        "plain background.",
        True,
    ),
    (
        "mask removes everything (Automatic)",
        model(segment="REMBG", rembg_model="{p}/nothing.onnx"),
        "The mask removes everything: no foreground is left to reconstruct.",
        True,
    ),
    (
        "unknown rembg model",
        model(segment="REMBG", rembg_model="u3net"),
        "Unknown background-removal model 'u3net': use one of ...",
        True,
    ),
    (
        "custom ONNX with the wrong input",
        model(segment="REMBG", rembg_model="{p}/gray.onnx"),
        "The custom ONNX model 'gray.onnx' has input shape [1, 1, 320, 320]; a segmentation "
        "model must take one 1x3xHxW image.",
        True,
    ),
    (
        "unknown depth model (offline)",
        model(depth="MODEL", depth_model="img2mesh-test/absent"),
        "The depth model 'img2mesh-test/absent' could not be loaded...",
        True,
    ),
    (
        "Poisson depth 3",
        model(mesh="POISSON", poisson_depth=3),
        "The Poisson depth must be between 4 and 12, not 3.",
        True,
    ),
    (
        "target faces 2",
        model(target_faces=2),
        "The target face count must be at least 4, not 2.",
        True,
    ),
    (
        "no photo chosen",
        lambda p: {"filepath": "", **WEIGHT_FREE},
        "Choose a photo first (a file, or an image open in Blender).",
        False,
    ),
    (
        "no such Blender image",
        lambda p: {"image": "holiday.jpg", **WEIGHT_FREE},
        "There is no image named 'holiday.jpg' in Blender.",
        False,
    ),
    (
        "a Blender image with no file",
        lambda p: {
            "image": bpy.data.images.new("Painted", 32, 32).name,
            **WEIGHT_FREE,
        },
        "The image 'Painted' has no file to reconstruct from; save it first (Image > Save As).",
        False,
    ),
    (
        "an empty prompt",
        lambda p: {"prompt": "   ", **WEIGHT_FREE},
        'The prompt is empty: describe one object, e.g. "a red toy car".',
        False,
    ),
]


@pytest.mark.parametrize("name,make,message,asks_worker", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_sentence_and_leaves_nothing(
    warm, inputs, temp_root, name, make, message, asks_worker
):
    from img2mesh_addon import operators

    listing = sorted(os.listdir(inputs))
    options = {
        key: value.format(p=inputs) if isinstance(value, str) else value
        for key, value in make(inputs).items()
    }
    before = datablocks()  # empty, or the Blender image a case made
    with pytest.raises(RuntimeError) as error:
        reconstruct(**options)
    report = str(error.value).strip()
    assert report.startswith("Error: ") and "\n" not in report, report
    text = report.removeprefix("Error: ")
    expected = message.format(p=inputs)
    if expected.endswith("..."):
        assert text.startswith(expected[:-3]), text
    else:
        assert text == expected
    if name == "unknown depth model (offline)":
        assert text.endswith(
            "and give that folder as the Depth Model. Without weights, Depth: Inflate Silhouette "
            "still makes a mesh. Blender's online access is off (Preferences > System > "
            "Network), so nothing is downloaded."
        )
    # Advice is in the panel's words, never the command line's (`hf download ...` is a
    # shell command of its own).
    assert not re.search(r"(?<![\w-])--[a-z]", re.sub(r"`[^`]*`", "", text)), text
    # What the panel shows, and nothing else: no datablock, no temp file, inputs untouched.
    assert operators.runner.last_outcome == operators.runner.Outcome(text, ok=False)
    assert datablocks() == before
    assert list(temp_root.iterdir()) == []
    assert sorted(os.listdir(inputs)) == listing
    job = worker_module().last_job
    assert (job is not None and operators.runner.error_text(job) == text) is asks_worker
    assert worker_module().current_worker() is warm  # a user error keeps the worker


PROPERTY_LIMITS = [
    # (property, value given, what Blender keeps, why the CLI's bad value cannot be made here)
    ("fov", 0.0, math.radians(1.0), "zero field of view: clamped to 1 degree"),
    ("fov", math.radians(-10.0), math.radians(1.0), "negative field of view: clamped"),
    ("poisson_depth", 20, 12, "Poisson depth 20: clamped to 12"),
    ("poisson_depth", 0, 0, "Poisson depth 0 means automatic here"),
    ("target_faces", -5, 0, "0 target faces means no simplification here"),
    ("max_size", 0, 32, "working size: at least 32 pixels"),
    ("smooth", -1, 0, "smoothing iterations cannot be negative"),
    ("seed", -1, 0, "seeds are not negative"),
    ("steps", 5000, 1000, "at most 1000 denoising steps"),
]


@pytest.mark.parametrize(
    "prop,value,kept,why", PROPERTY_LIMITS, ids=[f"{p[0]}={p[1]:g}" for p in PROPERTY_LIMITS]
)
def test_values_the_panel_cannot_hold(addon, prop, value, kept, why):
    settings = bpy.context.scene.img2mesh
    setattr(settings, prop, value)
    assert getattr(settings, prop) == pytest.approx(kept, abs=1e-6), why


def test_the_operator_clamps_too_and_the_worker_gets_the_clamped_value(warm, inputs):
    options = {**WEIGHT_FREE, "auto_fov": False, "fov": -1.0, "max_size": 8}
    assert reconstruct(filepath=str(inputs / "toy.png"), **options) == {"FINISHED"}
    used = worker_module().last_job.done["report"]["settings"]
    assert used["fov"] == pytest.approx(1.0, abs=1e-4) and used["max_size"] == 32


@pytest.mark.parametrize(
    "name,options",
    [
        ("gray.jpg", {"segment": "NONE"}),  # a grey object on grey paper: no colour to key
        ("cmyk.jpg", {}),
        ("g16.png", {"segment": "NONE"}),
        ("pal.png", {}),  # its transparency is the mask
    ],
    ids=["grayscale", "CMYK JPEG", "16-bit PNG", "palette PNG with transparency"],
)
def test_unusual_images_become_meshes(warm, inputs, temp_root, name, options):
    assert reconstruct(filepath=str(inputs / name), **{**WEIGHT_FREE, **options}) == {"FINISHED"}
    obj = bpy.data.objects[Path(name).stem]
    assert len(obj.data.polygons) > 100
    assert min(obj.dimensions) > 0
    assert list(temp_root.iterdir()) == []


def test_an_exif_rotated_photo_comes_out_upright(warm, inputs, temp_root):
    """A phone stores the photo sideways with 'rotate 90 degrees' in EXIF: mesh and camera stand up."""
    options = {**WEIGHT_FREE, "auto_fov": False, "fov": math.radians(39.6), "max_size": 160}
    assert reconstruct(filepath=str(inputs / "upright.jpg"), **options) == {"FINISHED"}
    upright = bpy.data.objects["upright"].dimensions
    plain = bpy.data.objects["upright Camera"].data.background_images[0].image
    assert plain.packed_file is None  # an upright photo is shown from its file
    assert reconstruct(filepath=str(inputs / "phone photo é.jpg"), **options) == {"FINISHED"}
    rotated = bpy.data.objects["phone photo é"].dimensions
    assert rotated.z > rotated.x * 1.3  # taller (Z) than wide (X), like the bear
    assert rotated.z / rotated.x == pytest.approx(upright.z / upright.x, rel=0.05)

    # Blender shows files as stored (sideways): the camera gets the worker's upright copy,
    # packed, under the photo's name; the render frame is the upright photo's.
    scene = bpy.context.scene
    assert (scene.render.resolution_x, scene.render.resolution_y) == (160, 120)
    image = bpy.data.objects["phone photo é Camera"].data.background_images[0].image
    assert image.name == "phone photo é.jpg" and image.packed_file is not None
    assert tuple(image.size) == (160, 120)
    assert image.filepath == "//phone photo é upright.jpg"
    assert list(temp_root.iterdir()) == []


@pytest.mark.parametrize("device", ["CUDA", "MPS"])
def test_a_device_this_machine_lacks(warm, inputs, tiny_models, temp_root, device):
    prefs = bpy.context.preferences.addons["img2mesh_addon"].preferences
    prefs.device = device
    options = {**WEIGHT_FREE, "depth": "MODEL", "depth_model": str(tiny_models / "tiny-glpn")}
    try:
        reconstruct(filepath=str(inputs / "toy.png"), **options)
    except RuntimeError as error:
        text = str(error).strip()
    else:
        pytest.skip(f"this machine has {device}")
    finally:
        prefs.device = "CPU"
    expected = {
        "CUDA": "CUDA was asked for (Device: CUDA, in the add-on's preferences) but no CUDA GPU "
        "is available to PyTorch.",
        "MPS": "MPS was asked for (Device: MPS, in the add-on's preferences) but this PyTorch "
        "cannot use Apple's GPU.",
    }[device]
    assert text == f"Error: {expected}"
    assert datablocks() == {k: set() for k in datablocks()}
    assert list(temp_root.iterdir()) == []
