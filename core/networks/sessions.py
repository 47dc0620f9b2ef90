"""ONNX Runtime sessions that start fast: each graph is optimised once for this CPU and kept.

Creating a session spends most of its time optimising the graph (fusions, and a
memory layout chosen for the CPU's vector width). ONNX Runtime can save the result;
loading that file with optimisation off gives the same session in a fraction of the
time (0.4 s instead of 0.8-1.3 s for GLPN-NYU, 0.1 s instead of 0.3-0.4 s for
U^2-Net on two cores). The saved graph is only valid for the ONNX Runtime version
and CPU that made it, so both are part of its name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import tempfile
from functools import cache
from pathlib import Path

from ..storage.datafolder import keep_newest


@cache
def cpu_key() -> str:
    """Short fingerprint of this CPU's instruction sets and of the ONNX Runtime version."""
    from importlib.metadata import version

    flags = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith(("flags", "Features")):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                break
    blob = f"{platform.machine()}|{platform.processor()}|{flags}|ort {version('onnxruntime')}"
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def options(ort, *, optimized: bool):
    """Session options: all optimisations (or none, for an already optimised graph), no arena.

    Without the arena, activations go back to the system after each run instead of
    being kept for the next (about 300 MB for GLPN at 640 x 480), at no measurable
    cost in time.
    """
    opts = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    opts.graph_optimization_level = level.ORT_DISABLE_ALL if optimized else level.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 3  # its notes on unused initialisers are not the user's concern
    # Idle pool threads sleep instead of spinning, so they leave the cores to whatever else
    # runs (Blender beside the worker, the background imports, other Ray workers). U^2-Net
    # then GLPN on a busy 2-core machine, interleaved in one process: 0.74x the time.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def optimize(source: Path, target: Path, configure=None, *, stamp: Path | None = None) -> None:
    """Write ``source`` optimised for this CPU to ``target`` (atomically).

    ``stamp``: also write the graph's fingerprint (core.storage.datafolder) there, the pair
    replaced under the folder's lock so that two processes optimising the same model
    leave one graph and its matching fingerprint.
    """
    import onnxruntime as ort

    from ..storage import datafolder

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".opt-", suffix=".onnx")
    os.close(fd)
    sum_tmp = None
    try:
        opts = options(ort, optimized=False)
        if configure is not None:
            configure(opts)
        opts.optimized_model_filepath = tmp
        ort.InferenceSession(str(source), opts, providers=["CPUExecutionProvider"])
        if not os.path.getsize(tmp):
            # onnxruntime logs, rather than raises, a failed write of the optimised graph
            raise OSError(28, "No space left on device (the optimised graph is empty)")
        if stamp is None:
            os.replace(tmp, target)
            return
        fd, sum_tmp = tempfile.mkstemp(dir=target.parent, prefix=".opt-", suffix=".sum")
        with os.fdopen(fd, "w") as f:
            f.write(datafolder.fingerprint(Path(tmp)))
        with datafolder.locked(target.parent):
            os.replace(tmp, target)
            os.replace(sum_tmp, stamp)
    finally:
        for path in (tmp, sum_tmp):
            if path is not None and os.path.exists(path):
                os.unlink(path)


def open_optimized(path: Path, configure=None):
    """A CPU session on a graph :func:`optimize` wrote."""
    import onnxruntime as ort

    opts = options(ort, optimized=True)
    if configure is not None:
        configure(opts)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def cached_session(source: Path, folder: Path, configure=None):
    """A CPU session on ``source``, optimised once and kept in ``folder`` for the next start.

    The copy's name holds the source's path, size and time, so a changed file is
    optimised again; a ``.sum`` file beside it holds the copy's fingerprint
    (core.storage.datafolder). A copy that is cut short, emptied, swapped or that ONNX Runtime
    cannot open is ours, not the user's: it is made again from ``source`` (one
    warning). If the copy cannot be written, the session is made from ``source``
    directly; only a failure on ``source`` itself reaches the caller.
    """
    from ..storage import datafolder

    st = source.stat()
    blob = f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}|{cpu_key()}"
    name = f"{source.stem[:40]}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}.onnx"
    copy = folder / name
    stamp = copy.with_suffix(".sum")
    if copy.exists():
        try:
            expected = stamp.read_text().strip()
        except OSError:
            expected = None
        if datafolder.matches(copy, expected):
            try:
                session = open_optimized(copy, configure)
            except Exception:  # onnxruntime's own types: a copy it cannot parse is damaged
                session = None
            if session is not None:
                with contextlib.suppress(OSError):
                    os.utime(copy)
                    keep_newest(folder, "[!.]*.onnx", 8, (".sum",))
                return session
        datafolder.rebuilt(copy, "optimised copy of the segmentation model")
        datafolder.remove(copy)
        datafolder.remove(stamp)
    try:
        optimize(source, copy, configure, stamp=stamp)
    except OSError as exc:
        if not datafolder.unavailable(exc):
            raise
        datafolder.cannot_write(exc)
        return _plain_session(source, configure)
    except Exception as exc:
        if datafolder.unavailable(exc):  # onnxruntime's own error for a full disk
            datafolder.cannot_write(exc)
        return _plain_session(source, configure)  # the user's file: its own error, if any
    with contextlib.suppress(OSError):
        keep_newest(folder, "[!.]*.onnx", 8, (".sum",))
    return open_optimized(copy, configure)


def _plain_session(source: Path, configure=None):
    import onnxruntime as ort

    opts = options(ort, optimized=False)
    if configure is not None:
        configure(opts)
    return ort.InferenceSession(str(source), opts, providers=["CPUExecutionProvider"])
