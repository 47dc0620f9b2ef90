"""A text prompt instead of a photo, in bpy 4.5 with a real worker and a tiny text-to-image pipeline.

The pipeline (tests/tiny_models.py save_tiny_text2image) is SD-Turbo's kind at toy
sizes, loaded from its folder as a user's download would be; its pictures are
reddish noise, made by the real code path.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

bpy = pytest.importorskip(
    "bpy",
    reason="bpy (Blender as a Python module) is not importable: run .venv-blender/bin/pytest tests/blender",
)
from blender_helpers import (  # noqa: E402
    RecordingLayout,
    colors,
    datablocks,
    drive,
    drive_until,
    pixels_seen_by_camera,
    reconstruct,
    seen_by_camera,
    undo,
    worker_module,
)
from conftest import read_only, run_core, tmpfs  # noqa: E402

pytestmark = pytest.mark.blender

#: Weight-free reconstruction of the picture: no depth or segmentation weights needed.
PICTURE_ONLY = {"segment": "NONE", "depth": "INFLATE", "mesh": "GRID", "max_size": 64}
TEXT_EXTRA_MESSAGE = (
    'Text prompts need the optional diffusers package: run `pip install "img2mesh[text]"` '
    '(in Blender, tick "Text prompts" in the add-on\'s Set up).'
)


@pytest.fixture(scope="module")
def t2i(tiny_models) -> Path:
    folder = tiny_models / "tiny-text2image"
    if not folder.is_dir():
        pytest.skip("the core environment has no diffusers (pip install -e '.[text]')")
    return folder


def pixels(image) -> np.ndarray:
    values = np.zeros(image.size[0] * image.size[1] * image.channels, dtype=np.float32)
    image.pixels.foreach_get(values)
    return values


def working_image(core_python, picture: Path, max_size: int, out: Path) -> np.ndarray:
    """The picture as the core reconstructs it: scaled to the working size."""
    run_core(
        core_python,
        f"""
        import numpy as np
        from core.files.photos import load_image
        np.save({str(out)!r}, load_image({str(picture)!r}, {max_size}).rgb)
        """,
    )
    return np.load(out)


def test_a_prompt_becomes_a_mesh_coloured_by_its_picture(
    addon, t2i, core_python, data_dir, temp_root, tmp_path
):
    from img2mesh_addon import operators

    bpy.ops.ed.undo_push(message="Before")
    result = reconstruct(prompt="A red toy car!", seed=3, t2i_model=str(t2i), **PICTURE_ONLY)
    assert result == {"FINISHED"}
    job = worker_module().last_job

    # The object is named after the prompt; the picture went to the data folder (the .blend
    # is not saved) and is loaded once, as an image and as the camera's background.
    obj = bpy.data.objects["a-red-toy-car"]
    picture = data_dir / "generated" / "a-red-toy-car.png"
    assert picture.is_file()
    # the picture once, and the photo texture made from it (packed, named after the object)
    assert sorted(image.name for image in bpy.data.images) == [
        "a-red-toy-car Texture",
        "a-red-toy-car.png",
    ]
    image = bpy.data.images["a-red-toy-car.png"]
    assert os.path.samefile(bpy.path.abspath(image.filepath), picture)
    assert tuple(image.size) == (512, 512)  # SD-Turbo's size: the folder runs with its settings
    cam = bpy.data.objects["a-red-toy-car Camera"]
    assert cam.data.background_images[0].image == image
    assert bpy.context.scene.camera == cam
    assert operators.runner.last_outcome.ok
    assert operators.runner.last_outcome.text.startswith("a-red-toy-car.png: ")
    assert operators.runner.last_outcome.text.endswith(f" Picture: {image.filepath}.")

    # What the worker did: generation first, then the photo pipeline, one overall bar.
    stages = list(dict.fromkeys(stage for stage, _ in job.messages))
    assert stages == ["generate", "load", "segment", "depth", "pointcloud", "mesh"]
    generated = job.done["report"]["generated"]
    assert (generated["prompt"], generated["seed"], generated["steps"]) == ("A red toy car!", 3, 1)
    assert generated["model_dir"] == str(t2i)

    # Vertex colours are the picture's pixels where the picture's camera sees each vertex.
    rgb = working_image(core_python, picture, PICTURE_ONLY["max_size"], tmp_path / "rgb.npy")
    assert rgb.shape == (64, 64, 3)
    mesh = obj.data
    samples = np.random.default_rng(0).choice(len(mesh.vertices), 200, replace=False)
    samples = samples[seen_by_camera(obj, cam, samples)]  # the hidden side is filled
    assert len(samples) >= 40
    r, c = np.rint(pixels_seen_by_camera(obj, cam, samples)).astype(int).T
    np.testing.assert_array_equal(
        np.rint(colors(mesh)[samples] * 255).astype(int), rgb[r, c].astype(int)
    )
    assert rgb[..., 0].mean() > rgb[..., 2].mean() + 50  # the tiny model's reddish noise

    # Nothing in the temp folder; one undo takes the mesh, camera and image away.
    assert list(temp_root.iterdir()) == []
    undo()
    assert datablocks() == {k: set() for k in datablocks()}
    assert picture.is_file()  # a saved file stays, as a rendered image would


def test_beside_a_saved_blend_the_same_seed_gives_the_same_picture(addon, t2i, tmp_path):
    blend = tmp_path / "my project" / "scène.blend"
    blend.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    options = {"prompt": "a ceramic teapot", "seed": 11, "t2i_model": str(t2i), **PICTURE_ONLY}
    assert reconstruct(**options) == {"FINISHED"}
    reconstruct(background=True, **options)  # as the panel's button runs it
    progress = drive()
    assert progress == sorted(progress)

    # Beside the .blend, referred to relatively; the second picture does not overwrite the first.
    folder = blend.parent / "generated"
    assert sorted(os.listdir(folder)) == ["a-ceramic-teapot-2.png", "a-ceramic-teapot.png"]
    first, second = (
        bpy.data.images["a-ceramic-teapot.png"],
        bpy.data.images["a-ceramic-teapot-2.png"],
    )
    assert first.filepath == "//generated/a-ceramic-teapot.png"
    assert second.filepath == "//generated/a-ceramic-teapot-2.png"
    assert [o.name for o in bpy.data.objects if o.type == "MESH"] == [
        "a-ceramic-teapot",
        "a-ceramic-teapot.001",
    ]
    np.testing.assert_array_equal(pixels(first), pixels(second))


def test_a_full_picture_folder_leaves_no_file_and_no_image(addon, t2i, data_dir, temp_root):
    folder = data_dir / "generated"
    folder.mkdir(exist_ok=True)
    with tmpfs(folder, "16k"):  # a 512x512 picture does not fit
        with pytest.raises(RuntimeError) as error:
            reconstruct(prompt="a green vase", t2i_model=str(t2i), **PICTURE_ONLY)
        assert str(error.value).strip() == (
            f"Error: The generated picture cannot be saved in '{folder}': the disk is full."
        )
        assert os.listdir(folder) == []  # no partial picture
    assert datablocks() == {k: set() for k in datablocks()}
    assert list(temp_root.iterdir()) == []
    assert worker_module().current_worker() is not None  # nothing wrong with the worker


def test_a_read_only_project_folder_is_refused_before_generating(addon, t2i, tmp_path):
    blend = tmp_path / "project" / "scene.blend"
    blend.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    last = worker_module().last_job
    with read_only(blend.parent), pytest.raises(RuntimeError) as error:
        reconstruct(prompt="a green vase", t2i_model=str(t2i), **PICTURE_ONLY)
    assert str(error.value).strip() == (
        f"Error: The generated picture cannot be saved in '{blend.parent / 'generated'}': "
        "the folder is not writable."
    )
    assert worker_module().last_job is last  # refused before a minute of generating
    assert datablocks() == {k: set() for k in datablocks()}


def test_an_unavailable_model_offline_says_what_to_do_in_blender(addon, t2i, temp_root):
    with pytest.raises(RuntimeError) as error:
        reconstruct(prompt="a green vase", t2i_model="img2mesh-test/absent-t2i", **PICTURE_ONLY)
    text = str(error.value).strip().removeprefix("Error: ")
    assert text.startswith("The text-to-image model 'img2mesh-test/absent-t2i' could not be loaded")
    assert "and give that folder as the prompt's Model." in text
    assert text.endswith(
        "A photo still works without it. Blender's online access is off (Preferences > System > "
        "Network), so nothing is downloaded."
    )
    assert not re.search(r"(?<![\w-])--[a-z]", re.sub(r"`[^`]*`", "", text)), text
    assert datablocks() == {k: set() for k in datablocks()}
    assert list(temp_root.iterdir()) == []


def test_cancel_while_generating_leaves_nothing(addon, t2i, data_dir, temp_root, monkeypatch):
    from img2mesh_addon import operators

    worker_client = worker_module()
    monkeypatch.setattr(worker_client, "CANCEL_GRACE_SECONDS", 120.0)  # a slow model load
    generated = data_dir / "generated"
    before_files = sorted(os.listdir(generated)) if generated.is_dir() else []
    before = datablocks()
    reconstruct(background=True, prompt="a brass lamp", t2i_model=str(t2i), **PICTURE_ONLY)
    drive_until(lambda job: job.stage == "generate")
    job = operators.running_job()
    process, folder = job.worker.process, Path(job.folder)
    assert folder.is_dir() and folder.parent == temp_root
    assert bpy.ops.img2mesh.cancel() == {"FINISHED"}
    drive(timeout=60)

    assert worker_client.last_job.state == "cancelled"
    assert worker_client.current_worker().process is process  # stopped, warm
    assert operators.running_job() is None and operators.tick() is None
    assert operators.runner.last_outcome.text == "Reconstruction cancelled."
    assert datablocks() == before
    assert list(temp_root.iterdir()) == []
    after_files = sorted(os.listdir(generated)) if generated.is_dir() else []
    assert after_files == before_files and "a-brass-lamp.png" not in after_files


@pytest.fixture(scope="module")
def no_text_environment(core_python, tmp_path_factory) -> Path:
    """A real Python environment without the "text" extra: the core's packages, diffusers left out.

    A fresh virtual environment (from the core's base Python) whose site-packages links to
    every package of the core's environment except diffusers, so `import diffusers` fails
    as it does where `pip install img2mesh` was run without `[text]`. Every site-packages
    folder the core's Python sees is flattened into it, and a .pth file that only adds
    another of those folders is left out: it would bring diffusers back (a git worktree's
    environment that borrows the main checkout's packages is made that way).
    """
    env = tmp_path_factory.mktemp("no-text") / "venv"
    run_core(
        core_python,
        f"""
        import os, subprocess, sys
        subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", {str(env)!r}],
                       check=True)
        python = os.path.join({str(env)!r}, "bin", "python")
        code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        target = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True,
                                check=True).stdout.strip()
        sites = [p for p in sys.path if os.path.basename(p) == "site-packages"
                 and os.path.isdir(p)]
        real_sites = {{os.path.realpath(p) for p in sites}}

        def adds_a_site(pth):
            with open(pth) as fh:
                lines = [line.strip() for line in fh]
            return any(os.path.realpath(line) in real_sites for line in lines if line)

        for source in sites:
            for name in os.listdir(source):
                path, link = os.path.join(source, name), os.path.join(target, name)
                if name.lower().startswith("diffusers") or os.path.lexists(link):
                    continue
                if name.endswith(".pth") and adds_a_site(path):
                    continue
                os.symlink(path, link)
        """,
    )
    return env


def test_without_the_text_extra_one_sentence_says_how_to_enable_prompts(
    addon, no_text_environment, temp_root, data_dir
):
    if sys.platform == "win32":
        pytest.skip("the environment is built the POSIX way")
    from img2mesh_addon import environment, operators

    prefs = bpy.context.preferences.addons["img2mesh_addon"].preferences
    prefs.python_path = str(no_text_environment)
    try:
        status = environment.check(environment.python_in(str(no_text_environment)))
        assert status.ready and not status.text_prompts, status.line
        generated = data_dir / "generated"
        before = sorted(os.listdir(generated)) if generated.is_dir() else []
        with pytest.raises(RuntimeError) as error:
            reconstruct(prompt="a red toy car", **PICTURE_ONLY)
        assert str(error.value).strip() == f"Error: {TEXT_EXTRA_MESSAGE}"
        assert worker_module().last_job.error_kind == "MissingExtraError"
        assert operators.runner.last_outcome == operators.runner.Outcome(
            TEXT_EXTRA_MESSAGE, ok=False
        )
        assert datablocks() == {k: set() for k in datablocks()}
        assert list(temp_root.iterdir()) == []
        assert (sorted(os.listdir(generated)) if generated.is_dir() else []) == before

        # The panel says so before anyone presses the button.
        settings = bpy.context.scene.img2mesh
        settings.source = "PROMPT"
        log: list = []
        from img2mesh_addon import panel

        panel.IMG2MESH_PT_main.draw(SimpleNamespace(layout=RecordingLayout(log)), bpy.context)
        labels = [text for kind, text in log if kind == "label"]
        assert any(text.startswith("Text prompts are not set up: tick") for text in labels)
    finally:
        prefs.python_path = ""
        worker_module().discard_worker()


def test_the_panel_offers_the_prompt_with_the_cores_defaults(addon):
    from core.protocol import DEFAULT_T2I_MODEL
    from img2mesh_addon import panel

    settings = bpy.context.scene.img2mesh
    settings.source = "PROMPT"
    log: list = []
    panel.IMG2MESH_PT_main.draw(SimpleNamespace(layout=RecordingLayout(log)), bpy.context)
    drawn = {name for kind, name in log if kind == "prop"}
    assert {"source", "prompt"} <= drawn and not {"filepath", "image"} & drawn
    # How the picture is made: in the Picture sub-panel, shown for prompts only.
    assert panel.IMG2MESH_PT_prompt.poll(bpy.context)
    log.clear()
    panel.IMG2MESH_PT_prompt.draw(SimpleNamespace(layout=RecordingLayout(log)), bpy.context)
    drawn = {name for kind, name in log if kind == "prop"}
    assert {"seed", "auto_steps", "t2i_model", "raw_prompt"} <= drawn
    assert ("label", f"Default: {DEFAULT_T2I_MODEL}") in log
    # The slug itself is one function shared with the core (tests/addon_pure/).

    # An empty prompt is refused before any worker is asked.
    with pytest.raises(RuntimeError) as error:
        reconstruct()
    assert str(error.value).strip() == (
        'Error: The prompt is empty: describe one object, e.g. "a red toy car".'
    )
    with pytest.raises(RuntimeError, match="Give one thing to reconstruct"):
        reconstruct(prompt="a mug", filepath="/photos/mug.jpg")


def test_set_up_offers_the_text_extra(addon, tmp_path):
    from img2mesh_addon import environment

    steps = environment.setup_commands("python3", tmp_path / "venv", "/w/img2mesh.whl", text=True)
    labels = [label for label, _ in steps]
    assert labels == [
        "Creating the environment",
        "Installing img2mesh's dependencies",
        "Installing img2mesh",
    ]
    assert steps[1][1][-1] == "/w/img2mesh.whl[text]"
    assert steps[2][1][-1] == "/w/img2mesh.whl"  # the package itself, without its extras again
    plain = environment.setup_commands("python3", tmp_path / "venv", "/w/img2mesh.whl")
    assert plain[1][1][-1] == "/w/img2mesh.whl"
