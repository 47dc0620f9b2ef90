"""The per-photo job every shell runs: the pipeline, then the files, all of them or none."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from core.errors import Cancelled, OutputError
from core.files.atomic import atomic_write, atomic_write_all
from core.runs.job import run_photo, write_outputs
from core.runs.pipeline import Pipeline
from core.settings import Settings
from core.storage.datafolder import keep_newest

from ..conftest import toy_photo

WEIGHT_FREE = Settings(segment="key", depth="inflate", cache=False, max_size=160)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "toy.png"
    Image.fromarray(toy_photo(160, 120)[0]).save(path)
    return path


def test_a_photo_becomes_its_files_with_the_write_timed(photo, tmp_path):
    seen = []
    done = run_photo(
        Pipeline(),
        photo,
        WEIGHT_FREE,
        lambda result: write_outputs(result, tmp_path / "toy.obj", preview=True, overwrite=False),
        progress=lambda stage, fraction, message: seen.append((stage, fraction)),
    )
    names = ["toy.obj", "toy.mtl", "toy.texture.png", "toy.preview.png"]
    assert [p.name for p in done.written] == names == sorted(os.listdir(tmp_path), key=names.index)
    assert done.report()["outputs"] == [str(tmp_path / n) for n in names]
    assert "write" in done.result.timings and done.seconds >= done.result.total_seconds - 1e-6
    assert seen[-2:] == [("write", 0.0), ("write", 1.0)]
    assert done.summary("toy.obj").startswith("toy.obj: ") and "closed solid" in done.summary()


def test_a_cancel_during_the_last_step_writes_nothing(photo, tmp_path):
    asked = []

    def cancel() -> bool:  # asked only once the pipeline is done
        return bool(asked)

    def progress(stage, fraction, message):
        if stage == "mesh" and fraction == 1.0:
            asked.append(True)

    with pytest.raises(Cancelled):
        run_photo(
            Pipeline(),
            photo,
            WEIGHT_FREE,
            lambda result: pytest.fail("nothing is written after a cancel"),
            progress=progress,
            cancel=cancel,
        )
    assert list(tmp_path.iterdir()) == []


class _Picture:
    """A pipeline whose prompt run saves its picture and then reconstructs it for real."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb, self.pipeline = rgb, Pipeline()

    def run_prompt(self, text, picture, settings, *, progress=None, cancel=None, **options):
        from PIL import Image

        Image.fromarray(self.rgb).save(picture)
        return self.pipeline.run(picture, settings, progress=progress, cancel=cancel)


def test_a_prompt_whose_files_cannot_be_written_leaves_no_picture(tmp_path):
    picture = tmp_path / "car.png"

    def full(result):
        raise OutputError(f"Cannot write {tmp_path / 'car.ply'}: the disk is full.")

    with pytest.raises(OutputError, match="the disk is full"):
        run_photo(
            _Picture(toy_photo(160, 120)[0]), picture, WEIGHT_FREE, full, prompt=("a car", {})
        )
    assert list(tmp_path.iterdir()) == []


def test_files_that_belong_together_appear_all_or_none(tmp_path):
    def full(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    items = [(tmp_path / "a.ply", lambda f: f.write(b"mesh")), (tmp_path / "a.preview.png", full)]
    with pytest.raises(OutputError) as error:
        atomic_write_all(items)
    # the file that failed is named, and nothing is left: no file, no temporary one
    assert str(error.value) == f"Cannot write {tmp_path / 'a.preview.png'}: the disk is full."
    assert list(tmp_path.iterdir()) == []
    # the same group written whole; one file is the same writer
    items[1] = (tmp_path / "a.preview.png", lambda f: f.write(b"png"))
    assert atomic_write_all(items) == [p for p, _ in items]
    assert atomic_write(tmp_path / "b.json", lambda f: f.write(b"{}")).read_bytes() == b"{}"
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        atomic_write_all(items)
    assert (tmp_path / "a.ply").read_bytes() == b"mesh"


def test_only_the_newest_files_and_their_sidecars_are_kept(tmp_path):
    for i in range(5):
        graph = tmp_path / f"g{i}.onnx"
        graph.write_bytes(b"x")
        graph.with_suffix(".json").write_text("{}")
        os.utime(graph, (1_000_000 + i, 1_000_000 + i))
    (tmp_path / ".writing.onnx").write_bytes(b"a process still writes it")
    keep_newest(tmp_path, "[!.]*.onnx", 2, (".json",))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".writing.onnx", "g3.json", "g3.onnx", "g4.json", "g4.onnx"
    ]  # fmt: skip
