"""The add-on's side of the reconstruction worker: one long-lived subprocess and the run in flight.

The worker (``python -m core.worker`` in the reconstruction environment) speaks JSON
lines (docs/worker-protocol.md). Reader threads put its messages on a queue; only
the main thread drains it, through :meth:`Job.poll`. No bpy here: the operators
turn a finished :class:`Job` into Blender data.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .logic.errors import WorkerError
from .logic.messages import CANCELLED, stage_label
from .logic.protocol import PROTOCOL
from .logic.requests import os_reason

__all__ = ["PROTOCOL", "WorkerError", "os_reason"]

#: Seconds a worker gets to exit after "shutdown" or SIGTERM before it is killed.
GRACE_SECONDS = 3.0
#: Seconds a cancelled run gets to stop at its next step (the worker then stays, with its
#: models and caches) before the worker process is stopped instead.
CANCEL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process is started with; a different config needs a new worker."""

    python: str
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def make(cls, python: str, env: dict[str, str] | None = None) -> WorkerConfig:
        return cls(python, tuple(sorted((env or {}).items())))


class WorkerClient:
    """One worker subprocess: start, send requests, receive events on a queue, stop."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.events: queue.Queue[dict] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.last_activity = time.monotonic()
        self.info: dict[str, Any] = {}  # the "ready" event
        self._proc: subprocess.Popen[bytes] | None = None
        self._ended: subprocess.Popen[bytes] | None = None  # the process after stop()
        self._lock = threading.Lock()

    # -- life ----------------------------------------------------------------------------
    def start(self) -> None:
        env = dict(os.environ)
        env.update(dict(self.config.env))
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
        # -I: the environment's own packages only (no PYTHONPATH/PYTHONHOME from Blender, no
        # user site, no current folder on sys.path).
        command = [self.config.python, "-I", "-u", "-m", "core.worker"]
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=tempfile.gettempdir(),
                **kwargs,
            )
        except OSError as exc:
            raise WorkerError(
                f"The reconstruction environment's Python {self.config.python} cannot be "
                f"started ({exc.strerror or exc})."
            ) from None
        self.last_activity = time.monotonic()
        proc = self._proc
        threading.Thread(target=self._read_stdout, args=(proc,), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(proc,), daemon=True).start()

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The worker's process, also after it was stopped (to check it is gone)."""
        return self._proc or self._ended

    @property
    def pid(self) -> int | None:
        proc = self.process
        return proc.pid if proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def send(self, message: dict) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise WorkerError("The reconstruction worker is not running.")
        try:
            with self._lock:
                proc.stdin.write((json.dumps(message) + "\n").encode("utf-8"))
                proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerError("The reconstruction worker stopped unexpectedly.") from None

    def stop(self, *, graceful: bool = True) -> None:
        """Ask the worker to quit (graceful), else terminate; kill if it does not go."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None and graceful:
            try:
                if proc.stdin is not None:
                    proc.stdin.write(b'{"request": "shutdown"}\n')
                    proc.stdin.close()
                proc.wait(GRACE_SECONDS)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        if proc.poll() is None:
            proc.terminate()
            if hasattr(signal, "SIGCONT"):  # a stopped process acts on SIGTERM only once resumed
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGCONT)
            try:
                proc.wait(GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        # stdout and stderr are closed by their reader threads once they reach the end.
        self._ended = proc

    def exit_description(self) -> str:
        """How the process ended, for messages: "exit code 1", "killed by SIGKILL"."""
        proc = self._proc or self._ended
        code = proc.poll() if proc else None
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def last_error_line(self) -> str:
        """The last line the worker wrote to stderr that says something."""
        for line in reversed(self.stderr_tail):
            if line.strip() and not line.startswith(("  ", "Traceback")):
                return line.strip()
        return ""

    # -- reader threads -------------------------------------------------------------------
    def _read_stdout(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self.last_activity = time.monotonic()
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                self.stderr_tail.append(line)  # not protocol: treat as log output
                continue
            if isinstance(message, dict):
                self.events.put(message)
        proc.stdout.close()
        proc.wait()
        self.events.put({"event": "exit", "id": None, "pid": proc.pid})

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        pending = b""
        fd = proc.stderr.fileno()
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            # Any output is a sign of life: downloads report progress only on stderr.
            self.last_activity = time.monotonic()
            pending += chunk
            *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
            for line in lines:
                text = line.decode("utf-8", "replace").rstrip()
                if text:
                    self.stderr_tail.append(text)
                    print(f"img2mesh worker: {text}", file=sys.stderr)
        proc.stderr.close()


def private_folder(prefix: str = "img2mesh-") -> str:
    """A new temp folder only this user can enter (``mkdtemp``: mode 0700); WorkerError if none."""
    try:
        return tempfile.mkdtemp(prefix=prefix)
    except OSError as exc:
        raise WorkerError(
            f"No temp folder can be made in {tempfile.gettempdir()} ({os_reason(exc)}); free "
            "some space there or set TMPDIR to another folder."
        ) from None


# ---------------------------------------------------------------------------- the worker


_worker: WorkerClient | None = None
_ids = itertools.count(1)


def current_worker() -> WorkerClient | None:
    """The running worker, if any (for status displays and tests)."""
    return _worker if _worker is not None and _worker.alive() else None


def get_worker(config: WorkerConfig) -> WorkerClient:
    """The running worker for ``config``; a new one if there is none, it died or config changed."""
    global _worker
    if _worker is not None and (_worker.config != config or not _worker.alive()):
        discard_worker(graceful=_worker.alive())
    if _worker is None:
        worker = WorkerClient(config)
        worker.start()
        _worker = worker
    return _worker


def discard_worker(*, graceful: bool = False) -> None:
    """Stop the worker (if any); the next run starts a new one."""
    global _worker
    worker, _worker = _worker, None
    if worker is not None:
        worker.stop(graceful=graceful)


def shutdown() -> None:
    """On unregister and on quit: cancel what runs and stop the worker."""
    job = active_job()
    if job is not None:
        job.kill()
    if _job is not None:
        release(_job)
    discard_worker(graceful=True)


# ------------------------------------------------------------------------------- the job


@dataclass
class Job:
    """One reconstruction request in flight, from sending it to the imported (or dropped) result."""

    worker: WorkerClient
    image: str
    name: str
    settings: dict
    timeout: float
    folder: str = ""
    request_id: str = ""
    state: str = "running"  # running | done | failed | cancelled
    stage: str = "start"
    fraction: float = 0.0
    overall: float = 0.0
    message: str = field(default_factory=lambda: stage_label("start"))
    messages: list[tuple[str, str]] = field(default_factory=list)  # (stage, message)
    error: str = ""
    error_kind: str = ""
    error_event: dict = field(default_factory=dict)  # the "error" event (code, details)
    done: dict = field(default_factory=dict)  # the "done" event
    cancel_sent: float = 0.0  # when a cancel was sent (time.monotonic); 0: none
    request: Any = None  # what the add-on needs to land the result (requests.Request)
    ready: bool = False  # the worker has said "ready"
    prompt: dict | None = None  # a text prompt's "prompt" object instead of an image

    @property
    def result_path(self) -> str:
        return os.path.join(self.folder, "result.npz")

    @property
    def picture_path(self) -> str:
        """Where the worker saves a prompt's picture: in the private folder, like the result."""
        return os.path.join(self.folder, f"{self.name}.png")

    @property
    def finished(self) -> bool:
        return self.state != "running"

    def poll(self) -> bool:
        """Drain the worker's messages (main thread); True once the job has finished."""
        if self.finished:
            return True
        while self.state == "running":
            try:
                message = self.worker.events.get_nowait()
            except queue.Empty:
                break
            self._handle(message)
        if self.cancelling and time.monotonic() - self.cancel_sent > CANCEL_GRACE_SECONDS:
            self.kill()  # it does not reach its next step (a long model load, a hang)
        elif (
            self.state == "running" and time.monotonic() - self.worker.last_activity > self.timeout
        ):
            self._fail(
                "Timeout",
                f"The reconstruction worker gave no sign of life for {self.timeout:g} seconds "
                "and was stopped; try again, or raise the timeout in the add-on's preferences.",
            )
        return self.finished

    def wait(self, interval: float = 0.05) -> None:
        """Block until the job has finished (the synchronous path)."""
        while not self.poll():
            try:
                message = self.worker.events.get(timeout=interval)
            except queue.Empty:
                continue
            self._handle(message)

    @property
    def cancelling(self) -> bool:
        """A cancel was sent and the worker has not yet stopped the run."""
        return bool(self.cancel_sent) and not self.finished

    def cancel(self) -> None:
        """Ask the worker to stop this run at its next step; it keeps its models and caches.

        The run ends (state "cancelled") when the worker says so; one that does not within
        CANCEL_GRACE_SECONDS is stopped with its worker process (see :meth:`poll`).
        """
        if self.finished or self.cancel_sent:
            return
        self.cancel_sent = time.monotonic()
        self.message = "Cancelling"
        try:
            self.worker.send({"request": "cancel", "id": self.request_id})
        except WorkerError:
            self.kill()

    def kill(self) -> None:
        """Stop at once: the worker process is terminated (the next run starts a new one)."""
        if self.finished:
            return
        self._cancelled()
        self._end()

    def _cancelled(self) -> None:
        self.state = "cancelled"
        self.error, self.error_kind = CANCELLED, "Cancelled"
        self.cleanup()

    def _end(self) -> None:
        """Stop this job's worker at once (the next run starts a new one) and leave nothing behind."""
        if _worker is self.worker:
            discard_worker(graceful=False)
        else:
            self.worker.stop(graceful=False)
        self.cleanup()

    def cleanup(self) -> None:
        """Remove the private temp folder (after import, on failure or cancel)."""
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- messages ---------------------------------------------------------------------------
    def _handle(self, message: dict) -> None:
        event = message.get("event")
        if event == "exit":
            if message.get("pid") != self.worker.pid:
                return  # an old worker's farewell
            if self.cancel_sent:
                self.kill()  # gone while stopping: the run is cancelled all the same
                return
            how = self.worker.exit_description()
            if self.ready:
                text = (
                    f"The reconstruction worker stopped unexpectedly ({how}); "
                    "the next run starts a new one."
                )
            else:
                reason = self.worker.last_error_line() or how
                text = (
                    f"The reconstruction environment cannot run the worker ({reason}); "
                    "check it in the add-on's preferences (Set up or choose another one)."
                )
            self._fail("WorkerDied", text)
            return
        if event == "ready" and message.get("id") is None:
            if message.get("protocol") != PROTOCOL:
                self._fail(
                    "Protocol",
                    f"The reconstruction environment has img2mesh "
                    f"{message.get('img2mesh_version', '?')} (worker protocol "
                    f"{message.get('protocol')}), which this add-on (protocol {PROTOCOL}) cannot "
                    "use; press Set up in the add-on's preferences to update it.",
                )
                return
            self.worker.info = message
            self.ready = True
            return
        if message.get("id") != self.request_id:
            return  # not ours (a late message of an earlier request)
        if event == "progress":
            self.stage = str(message.get("stage", self.stage))
            self.fraction = float(message.get("fraction", 0.0))
            self.overall = float(message.get("overall", self.overall))
            text = str(message.get("message") or stage_label(self.stage))
            self.messages.append((self.stage, text))
            if not self.cancel_sent:
                self.message = text
        elif event == "cancelled" or (self.cancel_sent and event in ("done", "error")):
            self._cancelled()  # a result that came after the cancel is not wanted either
        elif event == "done":
            self.done = message
            self.state = "done"
            self.overall = 1.0
        elif event == "error":
            self.error_kind = str(message.get("kind", "Error"))
            self.error = str(message.get("message") or "The reconstruction failed.")
            self.error_event = message
            self.state = "failed"
            self.cleanup()

    def _fail(self, kind: str, text: str) -> None:
        """The worker cannot finish this job: stop it (the next run starts a new one)."""
        self.state, self.error_kind, self.error = "failed", kind, text
        tail = list(self.worker.stderr_tail)[-15:]
        if tail:
            print("img2mesh: the worker's last output:\n  " + "\n  ".join(tail), file=sys.stderr)
        self._end()


_job: Job | None = None
#: The most recent job, running or not (what the last run printed, for status and tests).
last_job: Job | None = None


def current_job() -> Job | None:
    """The one registry of the run: sent and not yet released (it may have finished)."""
    return _job


def active_job() -> Job | None:
    """The reconstruction running now, if any."""
    return _job if _job is not None and not _job.finished else None


def release(job: Job) -> None:
    """The add-on is done with a finished job (imported or dropped its result)."""
    global _job
    if _job is job:
        _job = None


def start_job(
    config: WorkerConfig,
    image: str,
    settings: dict,
    *,
    name: str,
    timeout: float,
    prompt: dict | None = None,
    request: Any = None,
) -> Job:
    """Send a reconstruction to the worker (started if needed); refuses a second one at once.

    With ``prompt`` (the protocol's "prompt" object) the worker makes the picture first and
    saves it as :attr:`Job.picture_path`; ``image`` is then unused.
    """
    global _job, last_job
    if _job is not None and _job.finished:
        release(_job)  # finished and not collected: a blocking run that raised, say
    if _job is not None:
        raise WorkerError(
            "A reconstruction is already running; wait for it to finish or cancel it first."
        )
    worker = get_worker(config)
    worker.last_activity = time.monotonic()  # an idle worker has been quiet, not hung
    job = Job(worker, image, name, settings, timeout, ready=bool(worker.info), prompt=prompt)
    job.request = request
    job.folder = private_folder()  # removed after the run
    job.request_id = f"r{next(_ids)}"
    message: dict[str, Any] = {
        "request": "reconstruct",
        "id": job.request_id,
        "settings": settings,
        "output": job.result_path,
    }
    if prompt is None:
        message["image"] = image
    else:
        message["prompt"] = prompt
        message["picture"] = job.picture_path
    try:
        worker.send(message)
    except WorkerError:
        job.cleanup()
        discard_worker()
        raise WorkerError(
            "The reconstruction worker stopped before it got the request; try again."
        ) from None
    _job = last_job = job
    return job
