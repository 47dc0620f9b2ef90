"""INT8 copies of the networks, kept only when the first photo shows them close to full precision.

``--quantize auto`` (the default): the first photo a network sees (per model, and per
input size for the depth graphs) runs in full precision as always; an INT8 copy of the
graph is then made (ONNX Runtime's quantisation tool), run on the same input, and kept
only if its output is within a stated bound of the full-precision one:

- segmentation: the mask (the model's output, min-max scaled and cut at 0.5, as the
  pipeline does) overlaps the full-precision mask with an IoU of at least
  :data:`core.networks.agreement.MIN_MASK_IOU`;
- depth: 99% of the pixels differ by at most :data:`core.networks.agreement.MAX_DEPTH_ERROR` relative (metric
  depth: of the pixel's depth; relative disparity: of the map's range, as
  :func:`core.networks.agreement.relative_error` compares them).

Otherwise the verdict (with the numbers) is kept and the network stays in full
precision for that model and size. How each is quantised: U^2-Net-style segmentation
models are convolutions, quantised statically (QDQ, activations calibrated on the
photo itself, 8-bit weights per tensor); the depth transformers' matrix products are
quantised dynamically (8-bit weights, activations quantised per run). Both are about
twice as fast in their quantised parts on a CPU with AVX2 and no VNNI (measured: see
docs/benchmarks.md).

The INT8 graphs and their verdicts are ours: a damaged or unreadable graph is removed
and made again from the next photo; a folder that cannot be written leaves the network
in full precision.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

#: ``auto``: INT8 where verified (per model and input size); ``off``: always full precision.
MODES = ("auto", "off")

#: Version of how INT8 graphs are made; a new one makes every kept verdict stale.
#: 2: a static graph's output head stays in float (see :func:`output_head`).
QUANT_FORMAT = 2

#: Element-wise activations that may end a network: the layer before them is part of its head.
_ACTIVATIONS = {"Sigmoid", "Tanh", "Relu", "Softmax", "Clip", "HardSigmoid"}

#: Nodes that only retype or pass an output on: the head is found behind them.
_PASS_THROUGH = {"Cast", "Identity"}


def to_float32(model) -> bool:
    """Turn a float16 ONNX model (weights, constants, casts, declared types) into float32, in place.

    ONNX Runtime's quantisation tool calibrates and quantises float32 graphs only.
    Returns whether anything changed.
    """
    import onnx
    from onnx import TensorProto, numpy_helper

    changed = False

    def widen(t) -> None:
        nonlocal changed
        if t.data_type == TensorProto.FLOAT16:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
            changed = True

    g = model.graph
    for t in g.initializer:
        widen(t)
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                widen(a.t)
            if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT16:
                a.i = TensorProto.FLOAT
                changed = True
    for vi in (*g.value_info, *g.input, *g.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT16:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
            changed = True
    return changed


def quantize_file(source: Path, target: Path, method: str, feed: dict | None = None) -> None:
    """Write an INT8 copy of ``source``, optimised for this CPU, to ``target`` (atomically).

    ``method``: ``static`` (QDQ; ``feed``, one input of the session, calibrates the
    activations) or ``dynamic`` (matrix products only).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".int8-"))
    with _quiet(), contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        _quantize(source, target, work, method, feed)


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_level = 0


@contextlib.contextmanager
def _quiet():
    """The quantisation tool's advice (on the root logger) is not the user's concern.

    Counted, so that two networks quantised at once (``Pipeline(concurrent=True)``) put
    the root logger's level back as they found it.
    """
    import logging

    global _quiet_depth, _quiet_level
    root = logging.getLogger()
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_level = root.level
            root.setLevel(logging.ERROR)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                root.setLevel(_quiet_level)


def _quantize(source: Path, target: Path, work: Path, method: str, feed: dict | None) -> None:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    from .sessions import optimize

    plain = source
    model = onnx.load(str(source))
    if to_float32(model):
        plain = work / "fp32.onnx"
        onnx.save(model, str(plain))
    head = output_head(model)  # the graph is read once; only node names are kept
    del model
    quantized = work / "int8.onnx"
    options = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    if method == "dynamic":
        quantize_dynamic(
            plain,
            quantized,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            extra_options=options,
        )
    elif method == "static":
        if feed is None:
            raise ValueError("static quantisation needs an input to calibrate on")

        class OneInput(CalibrationDataReader):
            def __init__(self) -> None:
                self.inputs = iter([feed])

            def get_next(self):
                return next(self.inputs, None)

        quantize_static(
            plain,
            quantized,
            OneInput(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=head,
            extra_options=options,
        )
    else:
        raise ValueError(f"unknown quantisation method {method!r}")
    optimize(quantized, target)


def output_head(model) -> list[str]:
    """Names of the nodes that make the graph's outputs: each output's node, and the layer before
    it when that node is an activation (U^2-Net's ``Sigmoid(Conv(Concat(sides)))``); casts and
    identities on the way (a float16 model's output casts) are passed through and kept too.

    They stay in float in a static INT8 graph. Quantised, U^2-Net's fused output came out
    all zeros once ONNX Runtime had fused its QDQ pairs into QLinearConv/QLinearSigmoid
    (exact at the basic optimisation level, zeros from the extended one; ONNX Runtime
    1.32), so its mask lost every pixel. The head is one small layer per output.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    names: list[str] = []

    def keep(node) -> None:
        if node.name and node.name not in names:
            names.append(node.name)

    for output in model.graph.output:
        node = producer.get(output.name)
        while node is not None and node.op_type in _PASS_THROUGH and node.input:
            keep(node)
            node = producer.get(node.input[0])
        if node is None:
            continue
        keep(node)
        if node.op_type in _ACTIVATIONS and node.input and node.input[0] in producer:
            keep(producer[node.input[0]])
    return names


# --- how close is close enough -----------------------------------------------------------


# --- one INT8 graph and its verdict --------------------------------------------------------


class Int8Graph:
    """The INT8 copy of one full-precision graph: made once from a first input, kept if close.

    ``graph`` is the INT8 file, ``graph.json`` beside it the verdict (``verified`` or
    ``refused``, the measure, the onnxruntime version and the format): a verdict of
    another onnxruntime version or format is stale and the copy is made again.
    """

    def __init__(self, graph: Path, what: str, source_id: str = "") -> None:
        self.graph = graph
        self.verdict_path = graph.with_suffix(".json")
        self.what = what
        self.source_id = source_id  # e.g. the full-precision graph's fingerprint
        self.session = None
        self.status: str | None = None  # None: not tried yet; "verified" | "refused"
        self.reason = ""
        self.measure: float | None = None
        self.unwritable = False
        self._read()

    def _current(self, data: dict) -> bool:
        from importlib.metadata import version

        from .sessions import cpu_key

        return (
            data.get("format") == QUANT_FORMAT
            and data.get("onnxruntime") == version("onnxruntime")
            and data.get("cpu") == cpu_key()
            and data.get("source") == self.source_id
        )

    def _read(self) -> None:
        try:
            data = json.loads(self.verdict_path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(data, dict) or not self._current(data):
            return
        if data.get("status") == "refused":
            self.status, self.reason = "refused", str(data.get("reason", ""))
            self.measure = data.get("measure")
        elif data.get("status") == "verified":
            self.status, self.measure = "verified", data.get("measure")
            self._expected = data.get("graph")

    def open(self):
        """The INT8 session when verified; a damaged graph is removed (tried again on the next photo)."""
        if self.session is not None or self.status != "verified":
            return self.session
        from ..storage.datafolder import matches, rebuilt, remove
        from .sessions import open_optimized

        session = None
        if matches(self.graph, getattr(self, "_expected", None)):
            try:
                session = open_optimized(self.graph)
            except Exception:  # onnxruntime's own types: a graph it cannot parse is damaged
                session = None
        if session is None:
            if self.graph.exists() or self.verdict_path.exists():
                rebuilt(self.graph, f"INT8 copy of the {self.what}")
            remove(self.graph)
            remove(self.verdict_path)
            self.status = None
            return None
        with contextlib.suppress(OSError):
            os.utime(self.graph)
        self.session = session
        return session

    def build(self, source: Path, method: str, feed: dict, reference: np.ndarray, compare) -> bool:
        """Quantise ``source``, run it on ``feed``, keep it if ``compare(output, reference)`` says so.

        ``compare(output, reference) -> (ok, measure, reason)``. Returns whether the
        INT8 graph is now in use. A disk that cannot take the graph records nothing.
        """
        from importlib.metadata import version

        from ..storage.datafolder import fingerprint, unavailable
        from .sessions import cpu_key, open_optimized

        entry = {
            "format": QUANT_FORMAT,
            "onnxruntime": version("onnxruntime"),
            "cpu": cpu_key(),
            "source": self.source_id,
            "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        t0 = time.perf_counter()
        try:
            self.graph.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.graph.parent, prefix=".int8-", suffix=".onnx")
            os.close(fd)
        except OSError as exc:
            return self._unwritable(exc)
        made = Path(name)  # moved into place with its verdict, under the folder's lock
        try:
            try:
                quantize_file(source, made, method, feed)
                session = open_optimized(made)
                first = session.get_inputs()[0].name
                output = session.run(None, {first: feed[next(iter(feed))]})[0]
            except Exception as exc:  # the quantisation tool and onnxruntime raise many kinds
                if unavailable(exc):
                    return self._unwritable(exc)
                text = str(exc).strip().splitlines()
                reason = f"quantising it failed ({text[0][:200] if text else type(exc).__name__})"
                return self._keep({**entry, "status": "refused", "reason": reason}, None)
            entry["quantize_s"] = round(time.perf_counter() - t0, 2)
            ok, measure, reason = compare(output, reference)
            entry["measure"] = None if not math.isfinite(measure) else float(f"{measure:.4g}")
            if not ok:
                return self._keep({**entry, "status": "refused", "reason": reason}, None)
            try:
                entry["graph"] = fingerprint(made)
            except OSError as exc:
                return self._unwritable(exc)
            return self._keep({**entry, "status": "verified"}, session, made)
        finally:
            made.unlink(missing_ok=True)

    def _unwritable(self, exc: BaseException) -> bool:
        from ..storage.datafolder import cannot_write

        cannot_write(exc)  # nothing recorded: the next process tries again
        self.status, self.unwritable = "refused", True
        self.reason = "its folder cannot be written"
        return False

    def _keep(self, entry: dict, session, made: Path | None = None) -> bool:
        """Put the verdict (and the verified graph ``made``) in place; this process uses them either way."""
        from ..storage.datafolder import cannot_write, locked

        self.status = entry["status"]
        self.reason = str(entry.get("reason", ""))
        self.measure = entry.get("measure")
        self._expected = entry.get("graph")
        self.session = session
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.graph.parent, prefix=".int8-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(entry, f, indent=2, sort_keys=True)
            with locked(self.graph.parent):  # the graph and its verdict change together
                if made is not None:
                    os.replace(made, self.graph)
                os.replace(tmp, self.verdict_path)
        except OSError as exc:
            cannot_write(exc)  # this process still uses (or refuses) it; the next one tries again
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        return session is not None


def trim(folder: Path, keep: int) -> None:
    """Remove all but the ``keep`` most recently used INT8 graphs (and their verdicts) in ``folder``."""
    from ..storage.datafolder import keep_newest

    keep_newest(folder, "[!.]*.onnx", keep, (".json",))
