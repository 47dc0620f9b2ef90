"""The depth network through ONNX Runtime: exported once per model and input shape, verified against PyTorch, cached.

A Hugging Face depth model is exported to ONNX the first time it runs on an input of
a given shape, and ONNX Runtime's depth for that very image is compared with
PyTorch's. Only a graph whose depth matches PyTorch's within :data:`TOLERANCE` is
kept and used for later images of that shape; a failed export or comparison is
recorded with its reason, and PyTorch stays in use for that shape. Later runs that
find a verified graph need neither torch nor transformers: the image processor's
steps are done without them (core.depth.preprocessing) and the output is resized back
as transformers' post-processing does.

The graphs are static (one file per input shape): traced shape arithmetic makes a
dynamic export wrong at shapes other than the traced one (Depth Anything's output
size is baked in), and a static graph is also the faster one to run.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import first_line
from ..networks.agreement import relative_error
from .preprocessing import NotSupported, Preprocessing, resize_bicubic

#: ONNX Runtime's output must match PyTorch's to this relative difference (see :func:`relative_error`).
TOLERANCE = 1e-3


#: Version of how graphs are exported; a new one makes every cached graph stale.
EXPORT_FORMAT = 1


#: ONNX opset of the exported graphs.
OPSET = 17


#: Input shapes kept per model (least recently used go): each graph holds all the weights.
KEEP_SHAPES = 4


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


class OnnxDepthModel:
    """The exported graphs of one depth model: which shapes are verified, their sessions."""

    def __init__(self, folder: Path, source: str, root: Path | None = None) -> None:
        from ..storage.paths import data_home

        self.folder = folder
        self.source = source
        self.config = json.loads((folder / "config.json").read_text())
        model_type = str(self.config.get("model_type", ""))
        processor = json.loads((folder / "preprocessor_config.json").read_text())
        self.preprocessing = Preprocessing.from_config(processor, model_type)
        self.ort_version = _version("onnxruntime")
        if self.ort_version is None:
            raise NotSupported("onnxruntime is not installed")
        self.key = self._key()
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in folder.name)[-40:]
        self.dir = (root or data_home() / "onnx") / f"{slug}-{self.key}"
        self._sessions: dict[tuple[int, int], object] = {}
        self.last_forward_s: float | None = None  # seconds of the last session.run
        self._refused: dict[tuple[int, int], str] = {}
        self._unwritable: set[tuple[int, int]] = set()  # refused only for want of disk
        self._checked: dict[tuple[int, int], str] = {}  # graph fingerprints seen to match
        self._failed: set[tuple[int, int]] = set()  # graphs ONNX Runtime could not open
        #: ``auto``: an INT8 copy per shape once verified on a first photo (core.networks.int8)
        self.quantize = "off"
        self._int8: dict[tuple[int, int], object] = {}  # core.networks.int8.Int8Graph per shape

    def _key(self) -> str:
        """Changes whenever the weights, configs, transformers or torch change."""
        h = hashlib.sha256()
        parts = [f"format {EXPORT_FORMAT}", f"opset {OPSET}", str(self.folder.resolve())]
        parts += [f"transformers {_version('transformers')}", f"torch {_version('torch')}"]
        for f in sorted(self.folder.iterdir()):
            if f.suffix in (".json", ".safetensors"):
                st = f.stat()
                parts.append(f"{f.name} {st.st_size} {st.st_mtime_ns}")
        h.update("\n".join(parts).encode())
        return h.hexdigest()[:16]

    # -- bookkeeping ---------------------------------------------------------------------
    # Everything here is ours, so nothing in it may stop a run: an unreadable meta.json is
    # an empty one, a graph whose fingerprint (core.storage.datafolder) does not match its entry
    # or that ONNX Runtime cannot open is deleted and exported again, and a folder that
    # cannot be written leaves PyTorch in use with one warning about the data folder.
    def _meta_path(self) -> Path:
        return self.dir / "meta.json"

    def _meta(self) -> dict:
        try:
            data = json.loads(self._meta_path().read_text())
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        if not isinstance(data.get("shapes"), dict):
            data["shapes"] = {}
        return data

    def _record(self, shape: tuple[int, int], entry: dict | None) -> None:
        """Write down what happened to this shape (None: forget it); a cache that cannot be written is skipped."""
        from ..storage.datafolder import locked

        if entry is not None and entry.get("status") == "refused":
            self._refused[shape] = str(entry.get("reason"))
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with locked(self.dir):
                self._record_locked(shape, entry)
        except OSError as exc:
            from ..storage.datafolder import cannot_write

            cannot_write(exc)  # tried again by the next process; this one remembers (self._refused)

    def _record_locked(self, shape: tuple[int, int], entry: dict | None) -> None:
        meta = self._meta()
        meta.setdefault("model", self.source)
        if entry is None:
            meta["shapes"].pop(_shape_name(shape), None)
        else:
            meta["shapes"][_shape_name(shape)] = entry
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".meta-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(meta, f, indent=2, sort_keys=True)
            os.replace(tmp, self._meta_path())
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def entry(self, shape: tuple[int, int]) -> dict | None:
        """What is known about this input shape under the installed onnxruntime, or None."""
        entry = self._meta()["shapes"].get(_shape_name(shape))
        if not isinstance(entry, dict) or not self._current(entry):
            return None
        if entry.get("status") == "verified" and not self._graph_ok(shape, entry):
            return None
        return entry

    def _graph_ok(self, shape: tuple[int, int], entry: dict) -> bool:
        """Is the graph on disk the one this entry verified? A damaged one is removed (said once)."""
        from ..storage.datafolder import matches

        expected = entry.get("graph")
        if expected is not None and self._checked.get(shape) == expected:
            return True
        graph = self._graph(shape)
        if not isinstance(expected, str) or not graph.exists():
            return False  # trimmed, or written before graphs had fingerprints: exported again
        if matches(graph, expected):
            self._checked[shape] = expected
            return True
        self._discard(shape)
        return False

    def _discard(self, shape: tuple[int, int]) -> None:
        """Remove a damaged graph and its entry, unless another process has just replaced it."""
        from ..storage.datafolder import locked, matches, rebuilt, remove

        graph = self._graph(shape)
        self._checked.pop(shape, None)
        self._sessions.pop(shape, None)
        try:
            with locked(self.dir):
                fresh = self._meta()["shapes"].get(_shape_name(shape))
                if (
                    shape not in self._failed
                    and isinstance(fresh, dict)
                    and matches(graph, fresh.get("graph"))
                ):
                    return  # replaced by another process since we looked: it is fine
                remove(graph)
                self._record_locked(shape, None)
        except OSError:
            pass  # a read-only folder: this process uses PyTorch; the next run tries again
        rebuilt(graph, "saved ONNX Runtime depth graph")

    def _current(self, entry: dict) -> bool:
        """Made by the installed onnxruntime on this kind of CPU (the graph is optimised for both)."""
        from ..networks.sessions import cpu_key

        return entry.get("onnxruntime") == self.ort_version and entry.get("cpu") == cpu_key()

    def verified(self, shape: tuple[int, int]) -> bool:
        if shape in self._failed:
            return False
        entry = self.entry(shape)
        return entry is not None and entry.get("status") == "verified"

    def any_verified(self) -> bool:
        shapes = self._meta()["shapes"]
        return any(
            isinstance(e, dict)
            and e.get("status") == "verified"
            and self._current(e)
            and isinstance(e.get("graph"), str)
            for e in shapes.values()
        )

    def refused(self, shape: tuple[int, int]) -> str | None:
        """Why this shape runs in PyTorch, if it was tried (by this process or an earlier one)."""
        if shape in self._refused:
            return self._refused[shape]
        entry = self.entry(shape)
        return str(entry.get("reason")) if entry and entry.get("status") == "refused" else None

    def unwritable(self, shape: tuple[int, int]) -> bool:
        """Was this shape left in PyTorch only because the data folder could not take its graph?"""
        return shape in self._unwritable

    def _graph(self, shape: tuple[int, int]) -> Path:
        return self.dir / f"{_shape_name(shape)}.onnx"

    # -- running ---------------------------------------------------------------------------
    def session(self, shape: tuple[int, int]):
        """The ONNX Runtime session for a verified shape (created once), else None."""
        if shape in self._sessions:
            return self._sessions[shape]
        if not self.verified(shape):
            return None
        int8 = self.int8(shape)
        if int8 is not None and int8.open() is not None:
            self._sessions[shape] = int8.session  # the full-precision graph is not even opened
            return int8.session
        from ..networks.sessions import open_optimized

        try:
            session = open_optimized(self._graph(shape))
        except Exception:  # onnxruntime raises its own types for a graph it cannot parse
            self._failed.add(shape)
            self._discard(shape)
            self._failed.discard(shape)
            return None
        with contextlib.suppress(OSError):
            os.utime(self._graph(shape))  # recently used graphs are kept
        self._sessions[shape] = session
        return session

    def int8(self, shape: tuple[int, int]):
        """The INT8 copy of a verified shape's graph (core.networks.int8.Int8Graph), or None with quantize off."""
        if self.quantize != "auto" or not self.verified(shape):
            return None
        if shape not in self._int8:
            from ..networks.int8 import Int8Graph

            entry = self.entry(shape) or {}
            graph = self.dir / "int8" / f"{_shape_name(shape)}.onnx"
            # made from (and only valid for) this very full-precision graph
            self._int8[shape] = Int8Graph(graph, "depth graph", str(entry.get("graph")))
        return self._int8[shape]

    def try_int8(
        self, shape: tuple[int, int], pixel_values: np.ndarray, reference: np.ndarray, kind: str
    ) -> bool:
        """Quantise this shape's graph, run it on ``pixel_values``; keep it if its depth is close to ``reference``.

        ``reference``: the full-precision graph's depth of the same input, resized as
        :meth:`run` resizes it. From then on :meth:`session` gives the INT8 session.
        """
        from ..networks.agreement import MAX_DEPTH_ERROR, depth_error
        from ..networks.int8 import trim

        int8 = self.int8(shape)
        if int8 is None or int8.status is not None:
            return False

        def compare(output, ref):
            values = np.asarray(output, dtype=np.float32).reshape(output.shape[-2:])
            error = depth_error(resize_bicubic(values, *ref.shape), ref, kind)
            reason = (
                f"99% of its depth is within {error:.2%} of full precision's, "
                f"more than {MAX_DEPTH_ERROR:.0%}"
            )
            return error <= MAX_DEPTH_ERROR, error, reason

        feed = {"pixel_values": pixel_values}
        if not int8.build(self._graph(shape), "dynamic", feed, reference, compare):
            return False
        self._sessions[shape] = int8.session  # the full-precision session is let go
        with contextlib.suppress(OSError):
            trim(int8.graph.parent, KEEP_SHAPES)
        return True

    def run(self, session, pixel_values: np.ndarray, height: int, width: int) -> np.ndarray:
        """Depth (height, width) float32 from pixel values, resized as transformers does."""
        name = session.get_inputs()[0].name
        t0 = time.perf_counter()
        out = session.run(None, {name: pixel_values})[0]
        self.last_forward_s = time.perf_counter() - t0
        values = np.asarray(out, dtype=np.float32).reshape(out.shape[-2:])
        return resize_bicubic(values, height, width)

    # -- exporting -------------------------------------------------------------------------
    def export_and_verify(
        self, model, pixel_values, image, size, reference: np.ndarray, kind: str = "metric"
    ) -> tuple[bool, str]:
        """Export ``model`` for this input, compare ONNX Runtime's depth of ``image`` with ``reference``.

        ``pixel_values``: the torch tensor PyTorch ran on; ``reference``: PyTorch's output
        after post-processing, of ``kind`` (see :func:`relative_error`). Returns
        (verified, what happened) and records it. A failure of the disk (full, read-only)
        is not recorded: the next run tries again.
        """
        from ..networks.sessions import cpu_key, open_optimized, optimize
        from ..storage.datafolder import cannot_write, fingerprint, locked, matches, unavailable

        shape = tuple(int(v) for v in pixel_values.shape[-2:])
        if _version("onnx") is None:
            # not recorded: installing onnx is all it takes
            reason = "exporting it needs the onnx package (pip install onnx)"
            self._refused[shape] = reason
            return False, reason
        entry = {
            "onnxruntime": self.ort_version,
            "cpu": cpu_key(),
            "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

        def disk_failed(exc: BaseException) -> tuple[bool, str]:
            cannot_write(exc)
            reason = f"its ONNX Runtime folder {self.dir} cannot be written ({first_line(exc)})"
            self._refused[shape] = reason
            self._unwritable.add(shape)
            return False, reason

        graph = self._graph(shape)
        temporary: list[Path] = []
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            for suffix in (".onnx", ".opt.onnx"):
                fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".export-", suffix=suffix)
                os.close(fd)
                temporary.append(Path(tmp))
        except OSError as exc:
            for tmp in temporary:
                tmp.unlink(missing_ok=True)
            return disk_failed(exc)
        plain, optimized = temporary
        try:
            t0 = time.perf_counter()
            try:
                _export(model, pixel_values, plain)
            except Exception as exc:  # the tracer and exporter raise many kinds
                if unavailable(exc):
                    return disk_failed(exc)
                reason = f"the export to ONNX failed ({first_line(exc)})"
                self._record(shape, {**entry, "status": "refused", "reason": reason})
                return False, reason
            entry["export_s"] = round(time.perf_counter() - t0, 2)
            try:
                # What is verified and kept is the graph as optimised for this CPU.
                optimize(plain, optimized)
                session = open_optimized(optimized)
                ours = self.run(session, self.preprocessing(image, size), *reference.shape)
            except Exception as exc:  # onnxruntime raises its own types
                if unavailable(exc):
                    return disk_failed(exc)
                reason = f"ONNX Runtime could not run the exported graph ({first_line(exc)})"
                self._record(shape, {**entry, "status": "refused", "reason": reason})
                return False, reason
            error = relative_error(ours, reference, kind)
            entry["max_relative_error"] = float(f"{error:.3g}") if math.isfinite(error) else None
            if not error <= TOLERANCE:
                reason = (
                    f"ONNX Runtime's depth differs from PyTorch's by {error:.2g} "
                    f"(relative), more than {TOLERANCE:g}"
                )
                self._record(shape, {**entry, "status": "refused", "reason": reason})
                return False, reason
            try:
                with locked(self.dir):
                    # Another process (the add-on's worker, a second CLI run) may have
                    # put a verified graph for this shape in place meanwhile: keep that one.
                    theirs = self._meta()["shapes"].get(_shape_name(shape))
                    if not (
                        isinstance(theirs, dict)
                        and theirs.get("status") == "verified"
                        and self._current(theirs)
                        and matches(graph, theirs.get("graph"))
                    ):
                        entry["graph"] = fingerprint(optimized)
                        os.replace(optimized, graph)
                        self._record_locked(shape, {**entry, "status": "verified"})
            except OSError as exc:
                return disk_failed(exc)
            self._sessions[shape] = session
            self._trim()
            return True, f"verified against PyTorch (largest relative difference {error:.1g})"
        finally:
            for tmp in temporary:
                if tmp.exists():
                    tmp.unlink()

    def _trim(self) -> None:
        from ..storage.datafolder import keep_newest

        keep_newest(self.dir, "[!.]*.onnx", KEEP_SHAPES)  # not ".export-*": still exporting


def _shape_name(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


class _DepthOnly:
    """Wraps a transformers depth model so the traced graph takes pixels and gives predicted_depth."""

    def __new__(cls, model):
        import torch

        class DepthOnly(torch.nn.Module):
            def __init__(self, inner) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, pixel_values):
                return self.inner(pixel_values=pixel_values).predicted_depth

        return DepthOnly(model)


def _export(model, pixel_values, path: Path) -> None:
    import warnings

    import torch

    wrapper = _DepthOnly(model).eval()
    # the TorchScript exporter; newer torch defaults to torch.export, which traces less
    legacy = (
        {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    )
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python values: verified below
            torch.onnx.export(
                wrapper,
                (pixel_values.detach().to("cpu", torch.float32),),
                str(path),
                input_names=["pixel_values"],
                output_names=["predicted_depth"],
                opset_version=OPSET,
                do_constant_folding=True,
                **legacy,
            )
    finally:
        # The exporter puts modules back in the mode it found them in, and a fresh
        # wrapper would have been in training mode (dropout and stochastic depth on).
        model.eval()
