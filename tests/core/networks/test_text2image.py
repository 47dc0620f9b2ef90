"""Text prompts: a tiny random diffusers pipeline loaded like a user's download, seeded, cancelled, meshed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli.main import main
from core.errors import Cancelled, MissingExtraError, ModelUnavailableError
from core.networks.text2image import NEGATIVE_PROMPT, TEXT_EXTRA_MESSAGE, TextToImage, wrap_prompt
from core.protocol import prompt_slug

from ..cli.test_cli import open3d_mesh, photo_colour_agreement
from ..conftest import install_in_hf_cache

WEIGHT_FREE = ["--segment", "none", "--depth", "inflate", "--max-size", "128"]

# diffusers' Euler scheduler builds an array in a way numpy 2 warns about; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="session")
def tiny_t2i(tmp_path_factory) -> Path:
    pytest.importorskip("diffusers")
    from tests.tiny_models import save_tiny_text2image

    return save_tiny_text2image(tmp_path_factory.mktemp("tiny-text2image"))


@pytest.fixture(scope="session")
def tiny_generator(tiny_t2i) -> TextToImage:
    """Loaded once: as a folder it runs with the default model's settings (SD-Turbo: 512 px, 1 step)."""
    gen = TextToImage(model_dir=tiny_t2i, device="cpu")
    gen.load()
    return gen


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- the library ---------------------------------------------------------------------------


def test_same_seed_same_picture_other_seed_other_picture(tiny_generator):
    a, info = tiny_generator.generate("a red toy car", seed=3, steps=2)
    b, _ = tiny_generator.generate("a red toy car", seed=3, steps=2)
    c, _ = tiny_generator.generate("a red toy car", seed=4, steps=2)
    assert a.shape == (512, 512, 3) and a.dtype == np.uint8  # SD-Turbo's size
    assert np.array_equal(a, b)
    assert (a != c).mean() > 0.5
    assert info["seed"] == 3 and info["steps"] == 2 and info["width"] == info["height"] == 512
    assert info["model"] == "stabilityai/sd-turbo" and info["model_dir"] == str(
        tiny_generator.source
    )
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["full_prompt"] == wrap_prompt("a red toy car")
    # a turbo model runs without guidance, so no negative prompt is sent
    assert info["guidance_scale"] == 0.0 and info["negative_prompt"] is None
    json.dumps(info)  # JSON-ready for reports and the worker


def test_prompt_wrapping_and_raw_prompt(tiny_generator):
    assert wrap_prompt("A red toy car") == wrap_prompt("red toy car")
    assert wrap_prompt("an old boot").startswith("a single whole old boot, centred, full view")
    assert "plain light grey background" in wrap_prompt("mug")
    wrapped, _ = tiny_generator.generate("a red toy car", seed=0, steps=1)
    raw, info = tiny_generator.generate("a red toy car", seed=0, steps=1, raw_prompt=True)
    assert info["full_prompt"] == "a red toy car" and info["raw_prompt"] is True
    assert not np.array_equal(wrapped, raw)  # the text conditions the picture


def test_size_is_chosen_and_kept_to_multiples_of_8(tiny_generator):
    rgb, info = tiny_generator.generate("a mug", width=100, height=64, steps=1)
    assert rgb.shape == (64, 96, 3) and (info["width"], info["height"]) == (96, 64)


def test_progress_follows_the_steps(tiny_generator):
    calls = []
    tiny_generator.generate("a mug", steps=3, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_cancel_mid_generation_stops_at_that_step(tiny_generator):
    calls = []
    with pytest.raises(Cancelled):
        tiny_generator.generate(
            "a mug",
            steps=6,
            progress=lambda i, n: calls.append(i),
            cancel=lambda: len(calls) > 2,  # true once step 2 is done
        )
    assert calls == [0, 1, 2]
    # the model stays loaded and usable
    assert tiny_generator.generate("a mug", steps=1)[0].shape == (512, 512, 3)


def test_model_id_from_the_hub_cache_with_its_own_defaults(tiny_t2i, isolated_home):
    """An id not in the table: resolved from the cache in IMG2MESH_HOME (no network: the
    test's proxy refuses everything), run with the pipeline's own size and guidance."""
    install_in_hf_cache(tiny_t2i, "img2mesh-test/tiny-sd", isolated_home / "huggingface")
    gen = TextToImage("img2mesh-test/tiny-sd", device="cpu")
    rgb, info = gen.generate("a red toy car", seed=1, steps=3)
    assert rgb.shape == (64, 64, 3)  # the UNet's sample size x the VAE's factor 8
    assert info["model"] == "img2mesh-test/tiny-sd" and info["model_dir"] is None
    # guided by default (7.5), so the negative prompt is used
    assert info["guidance_scale"] == 7.5 and info["negative_prompt"] == NEGATIVE_PROMPT
    again, _ = TextToImage("img2mesh-test/tiny-sd", device="cpu").generate(
        "a red toy car", seed=1, steps=3
    )
    assert np.array_equal(rgb, again)


def _load_attempts(monkeypatch) -> list[bool]:
    """Each call diffusers gets to load a pipeline: True when it may only read the cache."""
    from diffusers import AutoPipelineForText2Image

    calls: list[bool] = []
    real = AutoPipelineForText2Image.from_pretrained

    def spy(*args, **kwargs):
        calls.append(bool(kwargs.get("local_files_only")))
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoPipelineForText2Image, "from_pretrained", spy)
    return calls


def test_unknown_model_offline_is_one_paragraph_at_once(monkeypatch):
    """Offline, the cache is asked and nothing is downloaded (huggingface_hub would retry
    an unreachable host with back-off for a minute and a half)."""
    pytest.importorskip("diffusers")
    calls = _load_attempts(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as err:
        TextToImage("img2mesh-test/no-such-model", device="cpu").load()
    assert calls == [True]  # the cache only: no download, so no retries
    text = str(err.value)
    assert "'img2mesh-test/no-such-model' could not be loaded" in text
    assert "huggingface" in text  # where it looked
    assert "--t2i-model-dir" in text and "img2mesh photo.jpg" in text  # what to do
    assert "\n" not in text and "Traceback" not in text


def test_unreachable_hub_is_the_same_paragraph_without_retries(monkeypatch):
    """No HF_HUB_OFFLINE: one probe of the hub fails through the dead proxy, and the
    download is never attempted."""
    pytest.importorskip("diffusers")
    from core.networks import hub

    calls = _load_attempts(monkeypatch)
    probes = []
    real = hub.socket.create_connection

    def probe(address, *args, **kwargs):
        probes.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(hub.socket, "create_connection", probe)
    with pytest.raises(ModelUnavailableError, match="could not be downloaded from the Hugging"):
        TextToImage("img2mesh-test/no-such-model", device="cpu").load()
    assert calls == [True] and probes == [("127.0.0.1", 9)]


def test_a_folder_that_is_not_a_pipeline(tmp_path, tiny_glpn):
    pytest.importorskip("diffusers")
    with pytest.raises(ModelUnavailableError, match="model_index.json"):
        TextToImage(model_dir=tiny_glpn, device="cpu").load()
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        TextToImage(model_dir=tmp_path / "missing", device="cpu").load()


def test_pickle_only_weights_are_refused(tiny_t2i, tmp_path):
    """Weights only from safetensors: a UNet saved as a pickle is never unpickled."""
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_t2i, folder)
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(unet), folder / "unet" / "diffusion_pytorch_model.bin")
    unet.unlink()
    with pytest.raises(ModelUnavailableError):
        TextToImage(model_dir=folder, device="cpu").load()


def test_without_diffusers_one_sentence_says_how_to_enable_prompts(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # as if not installed
    with pytest.raises(MissingExtraError) as err:
        TextToImage(device="cpu").generate("a red toy car")
    assert str(err.value) == TEXT_EXTRA_MESSAGE
    assert 'pip install "img2mesh[text]"' in TEXT_EXTRA_MESSAGE and "Set up" in TEXT_EXTRA_MESSAGE
    assert TEXT_EXTRA_MESSAGE.count(". ") == 0  # one sentence
    code = main(["--prompt", "a red toy car", "-o", str(tmp_path / "car.ply"), "-q"])
    assert code == 1
    assert capsys.readouterr().err.strip() == f"img2mesh: error: {TEXT_EXTRA_MESSAGE}"
    assert files_in(tmp_path) == []


def test_prompt_slug():
    assert prompt_slug("A red toy car!") == "a-red-toy-car"
    assert prompt_slug("  ") == "prompt"
    assert prompt_slug("Ünïcode mug") == "ünïcode-mug"
    assert len(prompt_slug("word " * 50)) <= 40


# -- the command line ----------------------------------------------------------------------


def test_cli_prompt_end_to_end(tmp_path, tiny_t2i, tiny_generator):
    """Picture beside the mesh, then exactly the photo pipeline: the mesh wears its colours."""
    out = tmp_path / "car.ply"
    code = main(
        [
            "--prompt",
            "a red toy car",
            "-o",
            str(out),
            "--t2i-model-dir",
            str(tiny_t2i),
            "--seed",
            "7",
            "--steps",
            "2",
            "--report",
            str(tmp_path / "car.json"),
            "-q",
            *WEIGHT_FREE,
        ]
    )
    assert code == 0
    assert files_in(tmp_path) == ["car.json", "car.ply", "car.png", "car.preview.png"]
    picture = np.asarray(Image.open(tmp_path / "car.png").convert("RGB"))
    # the saved picture is the library's picture for the same prompt, seed and steps
    expected, _ = tiny_generator.generate("a red toy car", seed=7, steps=2)
    assert np.array_equal(picture, expected)
    assert json.loads(Image.open(tmp_path / "car.png").text["img2mesh"])["seed"] == 7

    mesh = open3d_mesh(out)  # readable by Open3D, coloured
    report = json.loads((tmp_path / "car.json").read_text())
    gen = report["generated"]
    assert (gen["prompt"], gen["seed"], gen["steps"]) == ("a red toy car", 7, 2)
    assert gen["model"] == "stabilityai/sd-turbo" and gen["model_dir"] == str(tiny_t2i)
    assert report["input"] == str(tmp_path / "car.png")
    assert report["outputs"] == [
        str(tmp_path / n) for n in ("car.png", "car.ply", "car.preview.png")
    ]
    assert "generate" in report["timings_s"]
    assert report["counts"]["faces"] == len(mesh.triangles)
    # colours come from the picture (brick red noise), not a default grey
    colours = np.asarray(mesh.vertex_colors)
    assert np.abs(colours.mean(axis=0) - picture.reshape(-1, 3).mean(axis=0) / 255).max() < 0.05
    assert photo_colour_agreement(out, report, picture) < 0.1


def test_cli_default_name_comes_from_the_prompt(tmp_path, tiny_t2i, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["--prompt", "A red toy car!", "--t2i-model-dir", str(tiny_t2i), "-q", "--no-preview"]
    assert main([*args, *WEIGHT_FREE]) == 0
    assert files_in(tmp_path) == ["a-red-toy-car.ply", "a-red-toy-car.png"]
    stdout = capsys.readouterr().out
    assert (
        "a-red-toy-car.png: generated by stabilityai/sd-turbo (seed 0, 1 step, 512x512)" in stdout
    )
    # the picture is checked before any work: no overwriting without --overwrite
    (tmp_path / "a-red-toy-car.ply").unlink()
    assert main([*args, *WEIGHT_FREE]) == 1
    assert "a-red-toy-car.png exists; pass --overwrite" in capsys.readouterr().err
    assert main([*args, *WEIGHT_FREE, "--overwrite"]) == 0


@pytest.mark.parametrize("stage", ["generate", "mesh"])
def test_cli_interrupted_leaves_no_files(tmp_path, tiny_t2i, monkeypatch, stage):
    """Ctrl+C during generation (at step 2 of 4), or after the picture was saved: nothing is left."""
    from core.cli import progress as cli

    real = cli.StageBars.__call__

    def interrupt(self, st, fraction, message):
        if st == stage and (st != "generate" or message.startswith("Generating image (2/")):
            raise KeyboardInterrupt
        return real(self, st, fraction, message)

    monkeypatch.setattr(cli.StageBars, "__call__", interrupt)
    args = ["--prompt", "a mug", "-o", str(tmp_path / "mug.ply"), "--steps", "4"]
    code = main([*args, "--t2i-model-dir", str(tiny_t2i), "-q", *WEIGHT_FREE])
    assert code == 130
    assert files_in(tmp_path) == []  # no picture, no mesh, no temporary files


def test_library_run_prompt_cancelled_leaves_no_files(tmp_path, tiny_t2i):
    from core.runs.pipeline import Pipeline
    from core.settings import Settings

    pipeline = Pipeline()
    steps = []
    with pytest.raises(Cancelled):
        pipeline.run_prompt(
            "a mug",
            tmp_path / "mug.png",
            Settings(segment="none", depth="inflate", max_size=128, device="cpu"),
            model_dir=tiny_t2i,
            steps=4,
            progress=lambda stage, f, m: steps.append(m),
            cancel=lambda: "Generating image (2/4)" in steps,
        )
    assert files_in(tmp_path) == []
    result = pipeline.run_prompt(
        "a mug",
        tmp_path / "mug.png",
        Settings(segment="none", depth="inflate", max_size=128, device="cpu"),
        model_dir=tiny_t2i,
        steps=1,
    )
    assert result.mesh.n_faces > 0 and result.photo.path == tmp_path / "mug.png"
    assert result.report()["generated"]["picture"] == str(tmp_path / "mug.png")


def test_cli_prompt_options_are_checked(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["photo.jpg", "--prompt", "a mug"])
    assert exit_.value.code == 2
    assert "either images or --prompt" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["photo.jpg", "--seed", "3"])
    assert exit_.value.code == 2 and "need --prompt" in capsys.readouterr().err
    assert main(["--prompt", "  ", "-o", str(tmp_path / "x.ply")]) == 1
    assert "The prompt is empty" in capsys.readouterr().err
