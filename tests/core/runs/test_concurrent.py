"""Segmentation and depth at the same time: the same result as one after the other, in order."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.errors import Cancelled
from core.runs.pipeline import Pipeline
from core.settings import Settings
from tests.core.conftest import toy_photo


def run(pipeline: Pipeline, settings: Settings, **kwargs):
    events: list[tuple[str, float, str]] = []
    threads: set[str] = set()

    def progress(stage, fraction, message):
        events.append((stage, fraction, message))
        threads.add(threading.current_thread().name)

    result = pipeline.run(toy_photo(160, 120)[0], settings, progress=progress, **kwargs)
    return result, events, threads


def test_concurrent_networks_give_the_sequential_result(tiny_glpn, tiny_segmenter):
    settings = Settings(
        rembg_model=str(tiny_segmenter), model_dir=str(tiny_glpn), device="cpu", cache=False,
        mesh="grid",
    )  # fmt: skip
    together, events, threads = run(Pipeline(concurrent=True), settings)
    alone, alone_events, _ = run(Pipeline(), settings)
    assert together.info["networks_concurrent"] is True
    assert "networks_concurrent" not in alone.info
    np.testing.assert_array_equal(together.mask, alone.mask)
    np.testing.assert_allclose(together.depth, alone.depth, rtol=1e-5)
    # the same mesh: the depth grid's solid is valid by construction, nothing is repaired
    np.testing.assert_allclose(together.mesh.vertices, alone.mesh.vertices, atol=1e-5)
    # progress comes from the calling thread only, stage after stage, as before
    assert threads == {threading.current_thread().name}
    stages = list(dict.fromkeys(e[0] for e in events))
    assert stages == ["load", "segment", "depth", "pointcloud", "mesh"]
    assert [e[0] for e in events] == sorted(
        (e[0] for e in events), key=["load", "segment", "depth", "pointcloud", "mesh"].index
    )
    # the depth model's own messages (loading it) still reach the user
    assert any(m.startswith("Loading") for s, _, m in events if s == "depth")
    assert stages == list(dict.fromkeys(e[0] for e in alone_events))
    assert {"segment", "depth"} <= set(together.timings)


def test_a_depth_error_comes_out_of_the_call(tiny_segmenter, tmp_path):
    """A depth model that cannot be had fails the run as it does sequentially."""
    from core.errors import Img2MeshError

    settings = Settings(
        rembg_model=str(tiny_segmenter), model_dir=str(tmp_path / "missing"), device="cpu",
        cache=False,
    )  # fmt: skip
    with pytest.raises(Img2MeshError) as together:
        run(Pipeline(concurrent=True), settings)
    with pytest.raises(Img2MeshError) as alone:
        run(Pipeline(), settings)
    assert str(together.value) == str(alone.value)
    # and the depth thread is gone
    assert not any(t.name == "img2mesh-depth" for t in threading.enumerate())


def test_cancel_while_depth_runs_stops_both(tiny_glpn, tiny_segmenter):
    settings = Settings(
        rembg_model=str(tiny_segmenter), model_dir=str(tiny_glpn), device="cpu", cache=False,
    )  # fmt: skip
    seen: list[str] = []

    def cancel() -> bool:
        return "depth" in seen

    def progress(stage, fraction, message):
        seen.append(stage)

    with pytest.raises(Cancelled):
        Pipeline(concurrent=True).run(
            toy_photo(160, 120)[0], settings, progress=progress, cancel=cancel
        )
    assert "pointcloud" not in seen
    assert not any(t.name == "img2mesh-depth" for t in threading.enumerate())
