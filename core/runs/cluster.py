"""Spreading a folder of photos over a Ray cluster: an actor pool of warm pipelines.

Each Ray actor keeps one :class:`~core.runs.pipeline.Pipeline` (the models load once per
actor). The driver (the ``img2mesh`` process) sends each actor the photo's bytes and
gets back the bytes of the mesh and its preview, which it writes atomically where a
local batch would. So the nodes need no shared file system, and only the driver
ever writes into the output folder: Ctrl-C or a lost node leaves no partial file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ..errors import Img2MeshError, ModelUnavailableError, OptionError, OutputError
from ..files.atomic import atomic_write_all
from ..settings import Settings
from .batch import Tell
from .job import run_photo, write_outputs

INSTALL_HINT = "--ray needs Ray: pip install 'img2mesh[cluster]' (or pip install ray)."


def require_ray():
    """The ``ray`` module, or an :class:`OptionError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise OptionError(INSTALL_HINT) from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how big the Ray workers are: ``address`` "local" (start one here), "auto",
    HOST:6379 or ray://HOST:10001; ``cpus`` and ``gpus`` per worker (each loads the models once)."""

    address: str = "local"
    cpus: float = 2.0
    gpus: float = 0.0


class PhotoWorker:
    """A Ray actor: one warm pipeline that turns photo bytes into mesh and preview bytes."""

    def __init__(self) -> None:
        from .pipeline import Pipeline

        self.pipeline = Pipeline()

    def ping(self) -> str:
        return os.uname().nodename

    def run(
        self, name: str, data: bytes, mesh_name: str, settings: Settings, preview: bool
    ) -> dict:
        """``{"files": {file name: bytes}, "report", "summary", "warnings"}`` or ``{"error"}``."""
        job = Path(tempfile.mkdtemp(prefix="img2mesh-ray-"))
        try:
            photo = job / name  # the photo's own name, so messages and EXIF read as locally
            photo.write_bytes(data)
            target = job / "out" / mesh_name
            target.parent.mkdir()
            done = run_photo(
                self.pipeline,
                photo,
                settings,
                lambda result: write_outputs(result, target, preview=preview, overwrite=True),
            )
            # every file the photo's run wrote, by name, in the order written: the mesh
            # (a textured OBJ's .mtl and image after it), then the preview
            files = {p.name: p.read_bytes() for p in done.written}
            return {
                "files": files,
                "report": done.report(),
                "summary": done.summary(target.name),
                "warnings": list(done.result.warnings),
                "node": os.uname().nodename,
            }
        except ModelUnavailableError as exc:
            return {"error": str(exc), "model": True}
        except Img2MeshError as exc:
            return {"error": str(exc)}
        finally:
            shutil.rmtree(job, ignore_errors=True)


def run_on_ray(
    images: list[Path],
    targets: list[Path],
    settings: Settings,
    ray_options: RayOptions,
    *,
    preview: bool,
    overwrite: bool,
    several: bool,
    tell: Tell,
    show_bar: bool = False,
) -> tuple[list[dict], int]:
    """Reconstruct ``images`` into ``targets`` on a Ray cluster; returns (reports, failures).

    Reports are in input order, like a local batch's. A photo that fails is counted and
    named (``tell.failure``); a model that cannot be had stops the whole run (as
    locally). ``show_bar``: a progress bar of photos on stderr.
    """

    ray = require_ray()
    started_here = _connect(ray, ray_options.address)
    actors: list = []
    bar = None
    stack = contextlib.ExitStack()
    interrupted = stack.enter_context(_ctrl_c())

    emit = tell.summary
    try:
        remote = ray.remote(num_cpus=ray_options.cpus, num_gpus=ray_options.gpus)(PhotoWorker)
        n_actors = _pool_size(ray, ray_options.cpus, ray_options.gpus, len(images))
        actors = [remote.remote() for _ in range(n_actors)]
        if show_bar:
            from tqdm import tqdm

            bar = tqdm(total=len(images), desc="Photos", unit="photo", file=sys.stderr)
            emit = bar.write

        reports: list[dict | None] = [None] * len(images)
        failures = 0
        todo = deque(range(len(images)))
        in_flight: dict = {}

        def submit(actor) -> None:
            while todo:
                i = todo.popleft()
                try:
                    data = images[i].read_bytes()
                except OSError as exc:
                    _fail(i, f"cannot read it ({exc.strerror or exc}).")
                    continue
                ref = actor.run.remote(images[i].name, data, targets[i].name, settings, preview)
                in_flight[ref] = (i, actor)
                return

        def _fail(i: int, message: str) -> None:
            nonlocal failures
            if not several:
                raise Img2MeshError(message if message.endswith(".") else message + ".")
            failures += 1
            tell.failure(f"{images[i].name}: {message}")
            reports[i] = {"input": str(images[i]), "error": message}
            if bar is not None:
                bar.update(1)

        for actor in actors:
            submit(actor)
        while in_flight:
            interrupted()
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.1)
            if not ready:
                continue
            ref = ready[0]
            i, actor = in_flight.pop(ref)
            try:
                out = ray.get(ref)
            except ray.exceptions.RayActorError:
                # The actor's process or node was lost: this photo fails, a new actor takes over.
                out = {"error": "the Ray worker running it was lost."}
                actors.remove(actor)
                actor = remote.remote()
                actors.append(actor)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                out = {"error": f"it failed on the Ray worker ({type(cause).__name__}: {cause})."}
            if "error" in out:
                if out.get("model"):
                    raise ModelUnavailableError(out["error"])
                _fail(i, out["error"])
            else:
                paths = [targets[i].with_name(name) for name in out["files"]]
                try:
                    blobs = [lambda f, b=blob: f.write(b) for blob in out["files"].values()]
                    atomic_write_all(list(zip(paths, blobs, strict=True)), overwrite=overwrite)
                except OutputError as exc:
                    if not several:
                        raise
                    _fail(i, str(exc))
                else:
                    report = out["report"]
                    report["input"] = str(images[i])
                    report["outputs"] = [str(p) for p in paths]
                    report["ray_node"] = out["node"]
                    reports[i] = report
                    for w in out["warnings"]:
                        tell.warning(w)
                    emit(out["summary"])
                    if bar is not None:
                        bar.update(1)
            submit(actor)
        return [r for r in reports if r is not None], failures
    finally:
        stack.close()
        if bar is not None:
            bar.close()
        _stop(ray, actors, started_here)


@contextlib.contextmanager
def _ctrl_c():
    """Ctrl-C noted by our own handler and raised as KeyboardInterrupt at the next check
    (the function yielded), never inside Ray's own calls, which can swallow it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    seen: list[int] = []

    def check() -> None:
        if seen:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)


def _connect(ray, address: str) -> bool:
    """Join the cluster at ``address`` ('local': start one here); True if we started it."""
    import logging

    if ray.is_initialized():
        return False
    local = address == "local"
    try:
        ray.init(
            address=None if local else address,
            include_dashboard=False if local else None,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; the user gets one sentence
        where = (
            "start a local Ray instance" if local else f"connect to the Ray cluster at {address}"
        )
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OptionError(f"Cannot {where} ({reason.rstrip('.')}).") from None
    return local


def _pool_size(ray, cpus: float, gpus: float, n_photos: int) -> int:
    """As many actors as the cluster's resources hold, and no more than there are photos."""
    resources = ray.cluster_resources()
    fits = int(resources.get("CPU", 0) // cpus) if cpus > 0 else n_photos
    if gpus > 0:
        fits = min(fits, int(resources.get("GPU", 0) // gpus))
        if fits == 0:
            raise OptionError(
                f"The Ray cluster has no room for a worker with {gpus:g} GPU "
                f"({resources.get('GPU', 0):g} GPUs in all)."
            )
    return max(1, min(fits, n_photos))


def _stop(ray, actors: list, started_here: bool) -> None:
    for actor in actors:
        with contextlib.suppress(Exception):  # best effort while shutting down
            ray.kill(actor, no_restart=True)
    if started_here:
        ray.shutdown()
