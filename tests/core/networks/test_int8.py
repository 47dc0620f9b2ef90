"""INT8 copies of the networks: kept only within their bound of full precision, refused (and remembered) otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.depth.estimator import DepthEstimator
from core.errors import OptionError
from core.masks.sessions import U2netSession
from core.networks import agreement, int8
from core.storage import datafolder

from ..conftest import SHARED_DATA, toy_photo

ROOT = Path(__file__).resolve().parents[3]


def int8_files(home: Path, pattern: str = "*.onnx") -> list[Path]:
    return sorted((home / "onnx").glob(f"*/int8/{pattern}"))


def session(path: Path, quantize: str = "auto") -> U2netSession:
    return U2netSession(path, clip=False, quantize=quantize)


def mask_of(s: U2netSession, img: np.ndarray) -> np.ndarray:
    return np.asarray(s.predict(Image.fromarray(img))[0]) >= 128


# --- segmentation: static INT8, checked by mask IoU --------------------------------------


def test_segmentation_int8_is_kept_when_its_mask_matches(tiny_segmenter, isolated_home):
    img, truth = toy_photo(160, 120)
    full = mask_of(session(tiny_segmenter, "off"), img)
    s = session(tiny_segmenter)
    first = mask_of(s, img)  # full precision, then the INT8 copy is made and checked
    assert np.array_equal(first, full)
    assert s.int8.status == "verified" and s.int8.measure >= agreement.MIN_MASK_IOU
    assert s.inner_session is s.int8.session and "INT8 (mask IoU" in s.int8_note
    second = mask_of(s, img)  # now the INT8 graph
    iou = (second & full).sum() / (second | full).sum()
    assert iou >= agreement.MIN_MASK_IOU
    assert (second & truth).sum() / (second | truth).sum() > 0.8  # still the object
    [graph] = int8_files(isolated_home)
    verdict = json.loads(graph.with_suffix(".json").read_text())
    assert verdict["status"] == "verified" and verdict["measure"] >= agreement.MIN_MASK_IOU
    # a new process opens the INT8 graph straight away, full precision not at all
    again = session(tiny_segmenter)
    assert again.int8.status == "verified" and again.inner_session is again.int8.session
    assert np.array_equal(mask_of(again, img), second)


def test_segmentation_int8_outside_its_bound_is_refused_and_remembered(
    tiny_segmenter, isolated_home, monkeypatch
):
    monkeypatch.setattr(agreement, "MIN_MASK_IOU", 1.01)  # no mask can meet it
    img, _ = toy_photo(160, 120)
    full = mask_of(session(tiny_segmenter, "off"), img)
    s = session(tiny_segmenter)
    assert np.array_equal(mask_of(s, img), full)
    assert s.int8.status == "refused" and "less than 1.01" in s.int8.reason
    assert s.inner_session is not s.int8.session and "INT8 refused" in s.int8_note
    assert np.array_equal(mask_of(s, img), full)  # still full precision
    assert int8_files(isolated_home) == []  # the refused graph is not kept
    [verdict] = int8_files(isolated_home, "*.json")
    assert json.loads(verdict.read_text())["status"] == "refused"

    def never(*args, **kwargs):
        raise AssertionError("a refused model is quantised again")

    monkeypatch.setattr(int8, "quantize_file", never)
    later = session(tiny_segmenter)  # a later process: the verdict stands, no new attempt
    assert np.array_equal(mask_of(later, img), full) and later.int8.status == "refused"


def test_a_corrupted_quantisation_is_refused(tiny_segmenter, isolated_home, monkeypatch):
    """An INT8 graph whose output is wrong by design (negated: the mask inverted) is refused."""
    import onnx
    from onnx import helper

    original = int8.quantize_file

    def wrong(source, target, method, feed=None):
        original(source, target, method, feed)
        model = onnx.load(str(target))
        out = model.graph.output[0]
        model.graph.node.append(helper.make_node("Neg", ["negated"], [out.name]))
        for node in model.graph.node[:-1]:
            node.output[:] = ["negated" if o == out.name else o for o in node.output]
        onnx.save(model, str(target))

    monkeypatch.setattr(int8, "quantize_file", wrong)
    img, _ = toy_photo(160, 120)
    full = mask_of(session(tiny_segmenter, "off"), img)
    s = session(tiny_segmenter)
    assert np.array_equal(mask_of(s, img), full)
    assert s.int8.status == "refused" and s.int8.measure < 0.5
    assert np.array_equal(mask_of(s, img), full)


def test_a_damaged_int8_graph_is_rebuilt(tiny_segmenter, isolated_home):
    img, _ = toy_photo(160, 120)
    s = session(tiny_segmenter)
    mask_of(s, img)
    [graph] = int8_files(isolated_home)
    graph.write_bytes(graph.read_bytes()[:1000])  # cut short
    again = session(tiny_segmenter)  # falls back to full precision, says so once
    assert again.int8.status is None and again.inner_session is not None
    assert any("INT8 copy of the segmentation model" in w for w in datafolder.take_warnings())
    assert int8_files(isolated_home) == []
    mask_of(again, img)  # the next photo makes it again
    assert again.int8.status == "verified" and again.inner_session is again.int8.session
    assert len(int8_files(isolated_home)) == 1


def fused_head_segmenter(path: Path) -> Path:
    """U^2-Net's last layers in miniature: ``Sigmoid(Conv1x1(Concat(sides)))``, sides = the image twice.

    Its logits are 12 - 3 x (the sum of the normalised colours, twice): the toy's
    coloured object is foreground, the white backdrop background.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.full((1, 6, 1, 1), -3.0, np.float32), "outconv.weight")
    bias = numpy_helper.from_array(np.array([12.0], np.float32), "outconv.bias")
    nodes = [
        helper.make_node("Concat", ["input.1", "input.1"], ["sides"], name="/Concat", axis=1),
        helper.make_node(
            "Conv", ["sides", "outconv.weight", "outconv.bias"], ["logits"], name="/outconv/Conv"
        ),
        helper.make_node("Sigmoid", ["logits"], ["d0"], name="/Sigmoid"),
    ]
    graph = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("d0", TensorProto.FLOAT, [1, 1, 320, 320])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_the_output_head_stays_float_so_a_fused_head_keeps_its_mask(tmp_path, isolated_home):
    """Quantised whole, this head's INT8 mask was empty (IoU 0.000: ONNX Runtime's fused
    QLinearConv/QLinearSigmoid), so the INT8 copy was refused; the real U^2-Net's was too."""
    import onnx

    model = fused_head_segmenter(tmp_path / "head.onnx")
    assert int8.output_head(onnx.load(str(model))) == ["/Sigmoid", "/outconv/Conv"]
    img, truth = toy_photo(160, 120)
    full = mask_of(session(model, "off"), img)
    assert (full & truth).sum() / (full | truth).sum() > 0.95  # a real mask of the object
    s = session(model)
    assert np.array_equal(mask_of(s, img), full)
    assert s.int8.status == "verified" and s.int8.measure >= agreement.MIN_MASK_IOU, s.int8_note
    second = mask_of(s, img)  # the INT8 graph
    assert (second & full).sum() / (second | full).sum() >= agreement.MIN_MASK_IOU
    [graph] = int8_files(isolated_home)
    ops = {node.op_type for node in onnx.load(str(graph)).graph.node}
    assert "QLinearConcat" in ops  # the rest is INT8; the head is float
    assert not ops & {"QLinearConv", "QLinearSigmoid"}


def test_a_float16_model_is_widened_before_quantising(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((1, 3, 1, 1), 0.5, np.float16), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["xh"], to=TensorProto.FLOAT16),
            helper.make_node("Conv", ["xh", "w"], ["yh"]),
            helper.make_node("Cast", ["yh"], ["y"], to=TensorProto.FLOAT),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert int8.to_float32(model)
    onnx.checker.check_model(model)
    assert model.graph.initializer[0].data_type == TensorProto.FLOAT
    assert all(a.i == TensorProto.FLOAT for n in model.graph.node for a in n.attribute)
    assert not int8.to_float32(model)  # nothing left to widen


# --- depth: dynamic INT8, checked by relative depth ---------------------------------------


def test_depth_int8_is_kept_within_two_percent(tiny_glpn, isolated_home):
    img, _ = toy_photo(160, 120)
    full = DepthEstimator("x", model_dir=str(tiny_glpn), device="cpu", quantize="off")
    full.predict(img)
    reference = full.predict(img).values  # ONNX Runtime, full precision
    est = DepthEstimator("x", model_dir=str(tiny_glpn), device="cpu", quantize="auto")
    est.predict(img)  # PyTorch, the export, and its INT8 copy checked against PyTorch
    values = est.predict(img).values
    assert est.backend == "onnxruntime" and "INT8" in est.backend_note
    assert agreement.depth_error(values, reference) <= agreement.MAX_DEPTH_ERROR
    [graph] = int8_files(isolated_home)
    assert json.loads(graph.with_suffix(".json").read_text())["status"] == "verified"


def test_depth_int8_outside_its_bound_stays_in_full_precision(
    tiny_glpn, isolated_home, monkeypatch
):
    monkeypatch.setattr(agreement, "MAX_DEPTH_ERROR", 0.0)
    img, _ = toy_photo(160, 120)
    est = DepthEstimator("x", model_dir=str(tiny_glpn), device="cpu", quantize="auto")
    est.predict(img)
    est.predict(img)
    assert est.backend == "onnxruntime" and "INT8 refused" in est.backend_note
    assert "more than 0%" in est.backend_note
    assert int8_files(isolated_home) == []


def test_a_later_process_runs_int8_depth_without_torch(tiny_glpn, isolated_home, tmp_path):
    img, _ = toy_photo(160, 120)
    est = DepthEstimator("x", model_dir=str(tiny_glpn), device="cpu", quantize="auto")
    est.predict(img)  # exports, verifies, quantises
    np.save(tmp_path / "img.npy", img)
    code = (
        "import sys, numpy as np\n"
        "from core.depth.estimator import DepthEstimator\n"
        f"e = DepthEstimator('x', model_dir={str(tiny_glpn)!r}, device='cpu', quantize='auto')\n"
        f"e.predict(np.load({str(tmp_path / 'img.npy')!r}))\n"
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime.quantization') if m in sys.modules]\n"
        "print(e.backend, 'INT8' in e.backend_note, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "onnxruntime True []", out.stderr


def test_a_damaged_int8_depth_graph_is_rebuilt(tiny_glpn, isolated_home):
    img, _ = toy_photo(160, 120)
    DepthEstimator("x", model_dir=str(tiny_glpn), device="cpu", quantize="auto").predict(img)
    [graph] = int8_files(isolated_home)
    graph.write_bytes(b"not a graph")
    est = DepthEstimator("x", model_dir=str(tiny_glpn), device="cpu", quantize="auto")
    est.predict(img)  # full precision, the damage said once, the copy made again
    assert est.backend == "onnxruntime" and "INT8 copy verified for the next photos" in (
        est.backend_note
    )
    assert any("INT8 copy of the depth graph" in w for w in datafolder.take_warnings())
    est.predict(img)
    assert "ONNX Runtime, INT8" in est.backend_note
    assert json.loads(graph.with_suffix(".json").read_text())["status"] == "verified"


def test_a_folder_that_cannot_take_the_int8_graph_leaves_full_precision(
    tiny_segmenter, isolated_home, monkeypatch
):
    import errno

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(int8, "quantize_file", full_disk)
    img, _ = toy_photo(160, 120)
    expected = mask_of(session(tiny_segmenter, "off"), img)
    s = session(tiny_segmenter)
    assert np.array_equal(mask_of(s, img), expected)
    assert s.int8.unwritable and s.int8.status == "refused"
    assert np.array_equal(mask_of(s, img), expected)  # not tried again in this process
    assert any("cannot be written" in w for w in datafolder.take_warnings())
    assert int8_files(isolated_home, "*") == []  # nothing recorded: the next process tries again


# --- options --------------------------------------------------------------------------------


def test_quantize_option_is_checked_and_keys_the_cache():
    from core.settings import Settings

    with pytest.raises(OptionError, match="Unknown quantize 'int4'"):
        Settings(quantize="int4")
    assert Settings(quantize="off").mask_key() == {**Settings().mask_key(), "quantize": "off"}
    assert "quantize" not in Settings().mask_key() and "quantize" not in Settings().depth_key()
    assert Settings(quantize="off").depth_key()["quantize"] == "off"


def test_cli_quantize_off_uses_full_precision(tmp_path, tiny_segmenter, isolated_home):
    img, _ = toy_photo(160, 120)
    Image.fromarray(img).save(tmp_path / "photo.png")
    base = [sys.executable, "-m", "core", str(tmp_path / "photo.png"), "--depth", "inflate"]
    base += [
        "--rembg-model",
        str(tiny_segmenter),
        "--no-texture",
        "--no-preview",
        "-q",
        "--no-cache",
    ]
    for mode in ("off", "auto", "auto"):
        out = tmp_path / f"{mode}.ply"
        cmd = [*base, "-o", str(out), "--overwrite", "--quantize", mode, "--report"]
        cmd += [str(tmp_path / "report.json")]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        assert out.is_file()
        network = json.loads((tmp_path / "report.json").read_text())["mask_network"]
        assert (network is None) if mode == "off" else network.startswith("INT8")


# --- the real, trained IS-Net on real photos -----------------------------------------------

ISNET = SHARED_DATA / "models" / "isnet-general-use-fp16.onnx"


@pytest.mark.skipif(not ISNET.is_file(), reason="the real IS-Net model is not here")
def test_real_isnet_int8_mask_matches_full_precision(isolated_home):
    photo = SHARED_DATA / "photos" / "animal-1.jpg"
    rgb = np.asarray(Image.open(photo).convert("RGB").resize((512, 384)))
    from core.masks.remover import BackgroundRemover

    full = BackgroundRemover().mask(rgb, str(ISNET), quantize="off") >= 0.5
    remover = BackgroundRemover()
    remover.mask(rgb, str(ISNET), quantize="auto")  # full precision; the INT8 copy checked
    assert remover.quantization().startswith("INT8"), remover.quantization()
    fast = remover.mask(rgb, str(ISNET), quantize="auto") >= 0.5
    assert (fast & full).sum() / (fast | full).sum() >= 0.98


def test_the_tools_logging_is_silenced_and_restored_across_threads():
    """Two networks quantised at once (concurrent pipeline) leave the root logger as they found it."""
    import logging

    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.INFO)
    try:
        first, second = int8._quiet(), int8._quiet()
        first.__enter__()
        second.__enter__()
        assert root.level == logging.ERROR
        first.__exit__(None, None, None)  # the first one done while the second still runs
        assert root.level == logging.ERROR
        second.__exit__(None, None, None)
        assert root.level == logging.INFO
    finally:
        root.setLevel(before)


def test_the_one_off_int8_preparation_is_shown_as_progress(tiny_segmenter, isolated_home):
    from core.runs.pipeline import Pipeline
    from core.settings import Settings

    img, _ = toy_photo(160, 120)
    settings = Settings(rembg_model=str(tiny_segmenter), depth="inflate", texture=False)
    pipeline = Pipeline()
    messages: list[list[tuple[str, str]]] = []
    for photo in (img, np.ascontiguousarray(img[:, ::-1])):  # two photos: no mask cache hit
        messages.append([])
        result = pipeline.run(
            photo, settings, progress=lambda st, f, m: messages[-1].append((st, m))
        )
        assert len(result.mesh.faces) > 100
    wanted = ("segment", "Preparing an INT8 segmentation network (once per model)")
    assert wanted in messages[0]  # the first photo says why segmentation takes longer
    assert wanted not in messages[1]  # and only the first
    assert result.info["mask_network"].startswith("INT8")
