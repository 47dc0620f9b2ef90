"""The reconstruction worker: ``python -m core.worker`` serves Pipeline runs over JSON lines (docs/worker-protocol.md)."""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .. import __version__

if TYPE_CHECKING:
    from ..runs.pipeline import Pipeline

# What the add-on must agree on lives in core/protocol.py (the add-on ships a copy).
from ..protocol import PHOTO_STAGES, PROMPT_FIELDS, PROMPT_STAGES, PROTOCOL
from ..protocol import overall as _overall  # noqa: E402

#: Tests only: seconds to wait after each progress event, so that a test can act while a
#: given stage is under way (cancel it, look at the temp folder) without racing the worker.
PROGRESS_DELAY_VAR = "IMG2MESH_TEST_PROGRESS_DELAY"


def go_offline() -> None:
    """No network from this process: Blender's "Allow Online Access" is off.

    The Hugging Face hub honours HF_HUB_OFFLINE; rembg's downloader does not, so
    connections are refused at the socket, and a missing model becomes the core's
    usual ModelUnavailableError instead of a download.
    """
    import socket

    os.environ["HF_HUB_OFFLINE"] = "1"

    def refuse(*_args, **_kwargs):
        raise OSError("online access is turned off, so nothing is downloaded")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse


def protocol_stream() -> IO[str]:
    """The real stdout, for protocol lines only; fd 1 then points at stderr.

    Libraries print to stdout (open3d from C++, some from Python); at the file
    descriptor level their output goes to stderr, so the protocol stays clean.
    """
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", encoding="utf-8", buffering=1)


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays, paths: as JSON values."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


_IDLE = object()  # no request is running


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


class Worker:
    """Reads requests, runs them one at a time, writes events; models stay loaded in between."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self._pipeline: Pipeline | None = None
        self._state = threading.Lock()  # the busy flag and the run's id, reader vs runner
        self._writing = threading.Lock()  # one event line at a time on the pipe
        self._busy = False
        self._stop_after_run = False
        self._running: Any = _IDLE  # the id of the request being run
        self._cancelled: set[Any] = set()  # ids of requests the add-on asked to stop

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            from ..runs.pipeline import Pipeline

            self._pipeline = Pipeline()
        return self._pipeline

    def emit(self, event: str, request_id: Any = None, **fields: Any) -> None:
        message = {"event": event, "id": request_id, **fields}
        text = json.dumps(message, default=_jsonable) + "\n"
        if event in ("done", "cancelled", "error") and (
            threading.current_thread() is threading.main_thread()
        ):
            with self._state:
                # the run is over for the add-on once it reads this: its next request is served
                self._busy = False
        with self._writing:
            self.out.write(text)
            self.out.flush()

    def ready(self, request_id: Any = None) -> None:
        loaded: list[str] = []
        if self._pipeline is not None:
            estimators: list[Any] = list(self._pipeline._estimators.values())
            loaded = [est.source for est in estimators if est.loaded]
        self.emit(
            "ready",
            request_id,
            protocol=PROTOCOL,
            img2mesh_version=__version__,
            python=sys.version.split()[0],
            executable=sys.executable,
            pid=os.getpid(),
            loaded_models=loaded,
        )

    def serve(self, lines) -> int:
        """Answer the requests in ``lines`` (text lines, or a binary stream such as stdin's buffer).

        A reader thread takes the lines as they come, so a request that arrives while a
        reconstruction runs is answered at once: ``cancel`` raises a flag that the running
        pipeline checks between steps (the run ends with a ``cancelled`` event and the
        worker keeps its models and caches), ``ping`` gets ``ready``, ``shutdown`` cancels
        the run and ends the worker after it, anything else is an ``error`` of kind
        ``Busy``. Malformed input of any kind is a ``ProtocolError`` reply
        (core.worker_input), and the worker reads on.
        """
        import queue

        from .requests import read_lines

        source = read_lines(lines) if hasattr(lines, "readline") and _is_binary(lines) else lines
        pending: queue.Queue = queue.Queue()
        self._busy = False
        self._stop_after_run = False

        def reader() -> None:
            try:
                for line in source:
                    with self._state:
                        if not self._busy:
                            pending.put(line)
                            continue
                    self._while_busy(line)
            finally:
                self._cancel(None)  # stdin closed: nobody waits for the run any more
                pending.put(None)

        self.ready()
        threading.Thread(target=reader, name="img2mesh-requests", daemon=True).start()
        while True:
            line = pending.get()
            if line is None:
                return 0
            parsed = self._request(line)
            if parsed is None:
                continue
            kind, request_id, request = parsed
            if kind == "shutdown":
                return 0
            if kind == "ping":
                self.ready(request_id)
                continue
            if kind == "cancel":
                # nothing runs: a cancel that came too late (the run has ended), or one for
                # a request not sent yet, which then stops at its first step
                self._cancel(request_id)
                continue
            with self._state:
                self._busy = True
                self._running = request_id
            try:
                self.reconstruct(request_id, request)
            finally:
                with self._state:
                    self._busy = False
                    self._running = _IDLE
                    self._cancelled.discard(_hashable(request_id))
            if self._stop_after_run:
                return 0

    def _request(self, line) -> tuple[str, Any, dict] | None:
        """(kind, id, request) of a valid request line; None after answering a bad one."""
        from .requests import ProtocolError, check, parse, request_id

        if isinstance(line, str) and not line.strip():
            return None
        request = None
        try:
            if isinstance(line, ProtocolError):
                raise line
            request = parse(line)
            return check(request), request_id(request), request
        except ProtocolError as exc:
            rid = request_id(request) if isinstance(request, dict) else None
            self.emit("error", rid, kind="ProtocolError", message=str(exc))
            return None

    def _while_busy(self, line) -> None:
        """A line read while a reconstruction runs (on the reader thread)."""
        parsed = self._request(line)
        if parsed is None:
            return
        kind, request_id, _ = parsed
        if kind == "ping":
            self.ready(request_id)
        elif kind == "cancel":
            self._cancel(request_id)
        elif kind == "shutdown":
            self._stop_after_run = True
            self._cancel(None)
        else:
            self.emit(
                "error",
                request_id,
                kind="Busy",
                message="A reconstruction is running: one request runs at a time; "
                "send it again after that run's done, cancelled or error event.",
            )

    def _cancel(self, request_id: Any) -> None:
        """Flag a run to stop: ``request_id`` None means whatever runs now."""
        with self._state:
            if request_id is None:
                if self._running is not _IDLE:
                    self._cancelled.add(_hashable(self._running))
            else:
                self._cancelled.add(_hashable(request_id))

    def cancelled(self, request_id: Any) -> bool:
        """Whether the add-on has asked to stop this request (the pipeline's cancel callback)."""
        with self._state:
            return _hashable(request_id) in self._cancelled

    def reconstruct(self, request_id: Any, request: dict) -> None:
        from ..errors import Cancelled, Img2MeshError, OptionError, OutputError
        from ..runs.job import run_photo
        from ..settings import Settings
        from .results import write_result

        started = time.perf_counter()
        prompt = request.get("prompt")
        stages = PHOTO_STAGES if prompt is None else PROMPT_STAGES
        delay = _progress_delay()
        try:
            output = request.get("output")
            source = request.get("image") if prompt is None else request.get("picture")
            if not output or not source:
                raise OptionError(
                    "A reconstruct request needs an output path and an image (or a prompt and "
                    "a picture path)."
                )
            settings = Settings.from_dict(request.get("settings") or {})
            folder = Path(output).parent
            if not folder.is_dir():
                raise OutputError(f"The result folder '{folder}' does not exist.")

            def progress(stage: str, fraction: float, message: str) -> None:
                if stage not in stages:  # the job's writing: the add-on knows the pipeline's stages
                    return
                self.emit(
                    "progress",
                    request_id,
                    stage=stage,
                    fraction=round(float(fraction), 4),
                    overall=round(_overall(stage, fraction, stages), 4),
                    message=message,
                )
                if delay:
                    time.sleep(delay)

            def cancel() -> bool:
                return self.cancelled(request_id)

            generate = None
            if prompt is not None:
                options = _prompt_options(prompt)
                generate = (options.pop("prompt"), options)
            done = run_photo(
                self.pipeline,
                source,
                settings,
                lambda result: [write_result(result, Path(output))],
                progress=progress,
                cancel=cancel,
                prompt=generate,
            )
            result = done.result
        except Cancelled as exc:
            self.emit("cancelled", request_id, message=str(exc))
            return
        except Img2MeshError as exc:
            coded = {"code": exc.code, "field": exc.field, "details": exc.details}
            self.emit(
                "error",
                request_id,
                kind=type(exc).__name__,
                message=str(exc),
                **({key: value for key, value in coded.items() if value}),
            )
            return
        except MemoryError:
            self.emit(
                "error",
                request_id,
                kind="MemoryError",
                message="The reconstruction ran out of memory; try a smaller working size.",
            )
            return
        except Exception as exc:  # a bug: say so in one sentence, details on stderr
            traceback.print_exc(file=sys.stderr)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.emit(
                "error",
                request_id,
                kind="InternalError",
                message=f"The reconstruction failed unexpectedly ({type(exc).__name__}"
                f"{': ' + reason if reason else ''}); the worker's log has the details.",
            )
            return
        extra = {} if prompt is None else {"picture": str(source)}
        self.emit(
            "done",
            request_id,
            result=str(output),
            name=Path(source).stem,
            summary=result.summary(),
            faces=result.mesh.n_faces,
            vertices=result.mesh.n_vertices,
            warnings=list(result.warnings),
            report=result.report(),
            seconds=round(time.perf_counter() - started, 4),
            **extra,
        )


def _is_binary(stream) -> bool:
    import io

    return isinstance(stream, io.BufferedIOBase | io.RawIOBase) or "b" in getattr(
        stream, "mode", ""
    )


def _prompt_options(prompt: Any) -> dict[str, Any]:
    """A request's "prompt" object as Pipeline.run_prompt's keyword arguments (checked)."""
    from ..errors import OptionError

    if not isinstance(prompt, dict) or not isinstance(prompt.get("text"), str):
        raise OptionError('A prompt request needs "prompt": {"text": "...", ...}.')
    unknown = sorted(set(prompt) - set(PROMPT_FIELDS))
    if unknown:
        raise OptionError(f"Unknown prompt option: {', '.join(unknown)}.")
    options = {PROMPT_FIELDS[key]: value for key, value in prompt.items() if value is not None}
    options["raw_prompt"] = bool(options.get("raw_prompt", False))
    return options


def _progress_delay() -> float:
    try:
        return max(0.0, float(os.environ.get(PROGRESS_DELAY_VAR, "") or 0.0))
    except ValueError:
        return 0.0


def main() -> int:
    out = protocol_stream()
    if os.environ.get("IMG2MESH_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        go_offline()
    try:
        # a stream of our own: the reader thread may still wait in it when the process
        # exits, and Python aborts if that is sys.stdin's (it locks it to close it)
        requests = open(sys.stdin.fileno(), "rb", closefd=False)  # noqa: SIM115
        return Worker(out).serve(requests)
    except KeyboardInterrupt:
        return 130
