"""The fast paths checked against the plain ones: the depth network in ONNX Runtime, U^2-Net without rembg."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.depth.estimator import DepthEstimator
from core.depth.onnx_graphs import TOLERANCE, OnnxDepthModel
from core.depth.preprocessing import Preprocessing, resize_bicubic
from core.errors import OptionError
from core.networks.agreement import relative_error

from ..conftest import toy_photo

ROOT = Path(__file__).resolve().parents[3]


def estimator(folder: Path, backend: str = "auto", **kwargs) -> DepthEstimator:
    return DepthEstimator("x", model_dir=str(folder), device="cpu", backend=backend, **kwargs)


def graphs(home: Path) -> list[Path]:
    return sorted(p for p in (home / "onnx").glob("*/*.onnx") if p.parent.name != "segmentation")


@pytest.fixture(params=["glpn", "depth-anything"])
def tiny_model(request, tiny_glpn, tiny_depth_anything) -> Path:
    return tiny_glpn if request.param == "glpn" else tiny_depth_anything


# --- ONNX Runtime gives PyTorch's depth ------------------------------------------------------


def test_onnx_runtime_depth_matches_pytorch(tiny_model, isolated_home):
    img, _ = toy_photo(160, 120)
    plain = estimator(tiny_model, "torch").predict(img)

    fast = estimator(tiny_model)
    first = fast.predict(img)  # PyTorch runs, the graph is exported and verified
    assert fast.backend == "pytorch" and "verified against PyTorch" in fast.backend_note
    assert np.array_equal(first.values, plain.values) and fast.warnings == []
    second = fast.predict(img)
    assert fast.backend == "onnxruntime" and fast.last_forward_s > 0
    assert second.kind == plain.kind and second.values.shape == (120, 160)
    assert relative_error(second.values, plain.values, plain.kind) <= TOLERANCE
    assert len(graphs(isolated_home)) == 1


def test_the_torch_backend_never_exports(tiny_glpn, isolated_home):
    est = estimator(tiny_glpn, "torch")
    img, _ = toy_photo(96, 64)
    est.predict(img)
    est.predict(img)
    assert est.backend == "pytorch" and not (isolated_home / "onnx").exists()


def test_a_later_process_reuses_the_graph_without_torch(tiny_glpn, isolated_home, tmp_path):
    """Start-up with a verified graph imports neither torch nor transformers."""
    img, _ = toy_photo(160, 120)
    reference = estimator(tiny_glpn).predict(img).values  # exports and verifies
    exported = graphs(isolated_home)
    np.save(tmp_path / "img.npy", img)
    code = (
        "import sys, numpy as np\n"
        "from core.depth.estimator import DepthEstimator\n"
        f"e = DepthEstimator('x', model_dir={str(tiny_glpn)!r}, device='cpu')\n"
        f"values = e.predict(np.load({str(tmp_path / 'img.npy')!r}, allow_pickle=False)).values\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, values)\n"
        "heavy = [m for m in ('torch', 'transformers', 'rembg') if m in sys.modules]\n"
        "print(e.backend, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "onnxruntime []", out.stderr
    assert relative_error(np.load(tmp_path / "out.npy"), reference) <= TOLERANCE
    assert graphs(isolated_home) == exported  # reused, not exported again


def test_each_input_shape_is_verified_on_its_own(tiny_glpn, isolated_home):
    est = estimator(tiny_glpn)
    small, _ = toy_photo(96, 64)
    large, _ = toy_photo(160, 128)
    est.predict(small)
    est.predict(small)
    assert est.backend == "onnxruntime"
    est.predict(large)  # a new shape: PyTorch again, and a second graph
    assert est.backend == "pytorch"
    est.predict(large)
    assert est.backend == "onnxruntime"
    meta = json.loads(next((isolated_home / "onnx").glob("*/meta.json")).read_text())
    assert sorted(meta["shapes"]) == ["128x160", "64x96"]
    assert all(e["status"] == "verified" for e in meta["shapes"].values())
    assert len(graphs(isolated_home)) == 2


def test_changed_weights_make_a_new_graph(tiny_glpn, isolated_home, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_glpn, copy)
    img, _ = toy_photo(96, 64)
    estimator(copy).predict(img)
    os.utime(copy / "model.safetensors", ns=(1, 1))  # as if replaced by other weights
    est = estimator(copy)
    est.predict(img)
    assert est.backend == "pytorch"  # not trusted: exported and verified again
    assert len(graphs(isolated_home)) == 2


def test_a_failed_verification_keeps_pytorch_and_says_why(tiny_glpn, isolated_home, monkeypatch):
    import core.depth.onnx_graphs as depth_onnx

    real_export = depth_onnx._export

    def wrong_export(model, pixel_values, path):
        """The model's graph with its depth 1% too far: close, but not the same depth."""
        import onnx

        real_export(model, pixel_values, path)
        graph = onnx.load(str(path))
        for node in graph.graph.node:
            node.output[:] = ["raw" if o == "predicted_depth" else o for o in node.output]
        graph.graph.node.append(onnx.helper.make_node("Mul", ["raw", "k"], ["predicted_depth"]))
        graph.graph.initializer.append(
            onnx.numpy_helper.from_array(np.array(1.01, np.float32), "k")
        )
        onnx.save(graph, str(path))

    monkeypatch.setattr(depth_onnx, "_export", wrong_export)
    img, _ = toy_photo(96, 64)
    plain = estimator(tiny_glpn, "torch").predict(img).values
    est = estimator(tiny_glpn)
    for _ in range(2):
        values = est.predict(img).values
        assert est.backend == "pytorch" and np.array_equal(values, plain)
    assert "differs from PyTorch's" in est.backend_note
    assert est.warnings == [
        f"The depth network ran in PyTorch because {est.backend_note.split(': ', 1)[1][:-1]}."
    ]
    assert graphs(isolated_home) == []
    meta = json.loads(next((isolated_home / "onnx").glob("*/meta.json")).read_text())
    (entry,) = meta["shapes"].values()
    assert entry["status"] == "refused" and entry["max_relative_error"] > TOLERANCE

    # a new process does not try again, and says the same
    monkeypatch.setattr(depth_onnx, "_export", real_export)
    later = estimator(tiny_glpn)
    later.predict(img)
    assert later.backend == "pytorch" and later.warnings == est.warnings


def test_a_failed_export_keeps_pytorch(tiny_glpn, isolated_home, monkeypatch):
    import core.depth.onnx_graphs as depth_onnx

    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported: aten::something")

    monkeypatch.setattr(depth_onnx, "_export", broken)
    est = estimator(tiny_glpn)
    img, _ = toy_photo(96, 64)
    est.predict(img)
    assert est.backend == "pytorch"
    assert est.warnings == [
        "The depth network ran in PyTorch because the export to ONNX failed "
        "(Unsupported: aten::something)."
    ]


def test_without_onnxruntime_auto_warns_and_onnx_refuses(tiny_glpn, monkeypatch):
    import core.depth.onnx_graphs as depth_onnx

    real = depth_onnx._version
    monkeypatch.setattr(
        depth_onnx, "_version", lambda name: None if name == "onnxruntime" else real(name)
    )
    img, _ = toy_photo(96, 64)
    est = estimator(tiny_glpn)
    est.predict(img)
    assert est.backend == "pytorch"
    assert est.warnings == [
        "ONNX Runtime is not installed, so the depth network runs in PyTorch (slower)."
    ]
    with pytest.raises(OptionError, match="onnxruntime is not installed"):
        estimator(tiny_glpn, "onnx").predict(img)


def test_unknown_backend_is_an_option_error(tiny_glpn):
    with pytest.raises(OptionError, match="Unknown depth backend 'tensorrt'"):
        estimator(tiny_glpn, "tensorrt")


# --- the processor's steps, repeated without transformers -------------------------------------


@pytest.mark.parametrize("size", [(160, 120), (97, 61), (200, 301), (640, 480)])
def test_preprocessing_equals_the_image_processor(tiny_model, size):
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(str(tiny_model))
    config = json.loads((tiny_model / "config.json").read_text())
    ours = Preprocessing.from_config(
        json.loads((tiny_model / "preprocessor_config.json").read_text()), config["model_type"]
    )
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    overrides = [None] if config["model_type"] == "glpn" else [None, (112, 112), (70, 98)]
    for override in overrides:
        kwargs = {"size": {"height": override[0], "width": override[1]}} if override else {}
        theirs = processor(images=image, return_tensors="np", **kwargs)["pixel_values"]
        mine = ours(image, override)
        assert mine.shape == theirs.shape == (1, 3, *ours.input_shape(*size, override))
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize(
    "src,dst", [((48, 64), (120, 160)), ((56, 70), (120, 160)), ((130, 170), (64, 96))]
)
def test_bicubic_resize_equals_torch(src, dst):
    import torch

    values = np.random.default_rng(1).random(src).astype(np.float32) + 1.0
    theirs = torch.nn.functional.interpolate(
        torch.from_numpy(values)[None, None], size=dst, mode="bicubic", align_corners=False
    )[0, 0].numpy()
    # torch rounds coordinates and weights to float32: agreement to 1e-5 on noise
    np.testing.assert_allclose(resize_bicubic(values, *dst), theirs, rtol=5e-5, atol=0)
    assert resize_bicubic(values, *src) is not values
    np.testing.assert_array_equal(resize_bicubic(values, *src), values)


def test_relative_error_by_output_kind():
    reference = np.array([[1.0, 2.0], [4.0, 8.0]])
    assert relative_error(reference * 1.001, reference) == pytest.approx(0.001)
    assert relative_error(reference + 0.007, reference, "disparity") == pytest.approx(0.001)
    assert relative_error(reference[:1], reference) == float("inf")
    assert relative_error(np.full((2, 2), np.nan), reference) == float("inf")


def test_models_the_backend_does_not_handle_stay_in_pytorch(tiny_glpn, tmp_path):
    import shutil

    other = tmp_path / "zoe"
    shutil.copytree(tiny_glpn, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "zoedepth"}))
    with pytest.raises(Exception, match="does not handle 'zoedepth' models"):
        OnnxDepthModel(other, str(other))


# --- U^2-Net without importing rembg -----------------------------------------------------------


def test_segmentation_session_gives_rembgs_mask_exactly(tiny_segmenter):
    import onnxruntime as ort
    from rembg.sessions.u2net import U2netSession as RembgSession
    from rembg.sessions.u2net_custom import U2netCustomSession

    from core.masks.sessions import U2netSession

    img, _ = toy_photo(160, 120)
    photo = Image.fromarray(img)

    class Custom(U2netCustomSession):
        @classmethod
        def download_models(cls, *args, **kwargs):
            return str(tiny_segmenter)

    class Named(RembgSession):
        @classmethod
        def download_models(cls, *args, **kwargs):
            return str(tiny_segmenter)

    theirs_custom = Custom("u2net_custom", ort.SessionOptions(), model_path=str(tiny_segmenter))
    theirs_named = Named("u2net", ort.SessionOptions())
    for clip, theirs in ((False, theirs_custom), (True, theirs_named)):
        ours = U2netSession(tiny_segmenter, clip=clip).predict(photo)[0]
        assert np.array_equal(np.asarray(ours), np.asarray(theirs.predict(photo)[0]))


def test_a_downloaded_rembg_model_is_used_without_rembg(tiny_segmenter, isolated_home):
    """A u2net.onnx where rembg keeps its downloads is run directly; rembg is never imported."""
    import shutil

    folder = isolated_home / "rembg" / "models" / "u2net"
    folder.mkdir(parents=True)
    shutil.copy(tiny_segmenter, folder / "u2net.onnx")
    code = (
        "import sys, numpy as np\n"
        "from core.masks.remover import BackgroundRemover\n"
        "from tests.core.conftest import toy_photo\n"
        "img, truth = toy_photo(160, 120)\n"
        "prob = BackgroundRemover().mask(img, 'u2net')\n"
        "print(((prob >= 0.5) == truth).mean() > 0.9, 'rembg' in sys.modules)\n"
    )
    env = {**os.environ, "IMG2MESH_HOME": str(isolated_home)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    assert out.stdout.strip() == "True False", out.stderr


# --- the option, as users give it --------------------------------------------------------------


def test_cli_reports_the_backend_and_torch_is_honoured(tmp_path, tiny_glpn, isolated_home):
    """The command line's --depth-backend reaches the estimator; the report says what ran."""
    from core.cli.main import main

    photo = tmp_path / "toy.png"
    Image.fromarray(toy_photo(160, 120)[0]).save(photo)
    common = [str(photo), "--segment", "key", "--model-dir", str(tiny_glpn), "--no-preview"]
    common += ["--no-cache", "--mesh", "grid", "-q"]
    backends = []
    for i, backend in enumerate(["torch", "auto", "auto"]):
        report = tmp_path / f"{i}.json"
        args = [*common, "-o", str(tmp_path / f"{i}.ply"), "--report", str(report)]
        assert main([*args, "--depth-backend", backend]) == 0
        backends.append(json.loads(report.read_text())["depth"]["backend"])
    assert backends == ["pytorch", "pytorch", "onnxruntime"]  # the first auto run verifies
    assert (isolated_home / "onnx").is_dir()


def test_pipeline_loads_its_models_ahead(tiny_glpn, tiny_segmenter):
    from core.runs.pipeline import Pipeline
    from core.settings import Settings

    pipeline = Pipeline()
    settings = Settings(rembg_model=str(tiny_segmenter), model_dir=str(tiny_glpn), device="cpu")
    pipeline.load_models(settings, (160, 120))
    assert pipeline.depth_estimator(settings).loaded
    assert len(pipeline._remover._sessions) == 1
    result = pipeline.run(toy_photo(160, 120)[0], settings.replace(cache=False, mesh="grid"))
    assert result.mesh.n_faces > 0 and result.info["depth_backend"] == "pytorch"


def test_an_unwritable_data_folder_keeps_pytorch_without_retrying(tiny_glpn, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("IMG2MESH_HOME", str(blocker / "home"))
    est = estimator(tiny_glpn)
    img, _ = toy_photo(96, 64)
    for _ in range(2):
        est.predict(img)
        assert est.backend == "pytorch"
    from core.storage.datafolder import take_warnings

    assert est.warnings == []  # said once, about the data folder as a whole
    (warning,) = take_warnings()
    assert warning.startswith(f"The data folder {blocker / 'home'} cannot be written (")


def test_without_the_onnx_package_nothing_is_exported(tiny_glpn, isolated_home, monkeypatch):
    import core.depth.onnx_graphs as depth_onnx

    real = depth_onnx._version
    monkeypatch.setattr(depth_onnx, "_version", lambda name: None if name == "onnx" else real(name))
    est = estimator(tiny_glpn)
    est.predict(toy_photo(96, 64)[0])
    assert est.backend == "pytorch" and graphs(isolated_home) == []
    assert est.warnings == [
        "The depth network ran in PyTorch because exporting it needs the onnx package "
        "(pip install onnx)."
    ]
