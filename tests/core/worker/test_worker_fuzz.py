"""The worker survives anything on its pipe: thousands of random requests at a real worker process, each answered, the next served."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.settings import Settings

REPO = Path(__file__).resolve().parents[3]
TOY = REPO / "examples" / "toy.jpg"
SENTINEL = "fuzz-sentinel-7f3a"


class RawWorker:
    """A worker subprocess fed raw bytes; its events read on a thread."""

    def __init__(self, cwd: Path, env: dict | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-u", "-m", "core.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.count = 0
        assert self.event()["event"] == "ready"

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def event(self, timeout: float = 60) -> dict:
        line = self.lines.get(timeout=timeout)
        assert line is not None, "the worker died"
        return json.loads(line)  # every protocol line is JSON

    def answers(self, data: bytes) -> list[dict]:
        """Send one line, then a ping: the events before the ping's ready answer the line."""
        self.count += 1
        tag = f"{SENTINEL}-{self.count}"
        self.write(data + b"\n" + json.dumps({"request": "ping", "id": tag}).encode() + b"\n")
        events = []
        while True:
            e = self.event()
            if e["event"] == "ready" and e["id"] == tag:
                return events
            events.append(e)

    def close(self) -> int:
        if self.proc.poll() is None:
            self.write(b'{"request": "shutdown"}\n')
        return self.proc.wait(30)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    # offline, with a data folder of its own: a random request never downloads a model
    home = tmp_path_factory.mktemp("fuzz-home")
    w = RawWorker(
        tmp_path_factory.mktemp("fuzz"), {"IMG2MESH_OFFLINE": "1", "IMG2MESH_HOME": str(home)}
    )
    yield w
    assert w.close() == 0  # it lived through all of it, and stops when asked
    if w.proc.poll() is None:
        w.proc.kill()


def _terminal(events: list[dict]) -> list[dict]:
    assert all(e["event"] in ("progress", "done", "error", "ready") for e in events), events
    return [e for e in events if e["event"] != "progress"]


def _blank(data: bytes) -> bool:
    try:
        return not data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


# --- strategies ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SETTING_NAMES = [f.name for f in fields(Settings)]
settings_objects = st.dictionaries(
    st.sampled_from(SETTING_NAMES) | st.text(max_size=10), json_values, max_size=5
)
paths = st.text(max_size=30) | st.just(str(TOY)) | json_values
requests = st.fixed_dictionaries(
    {
        "request": st.sampled_from(["reconstruct", "ping", "explode", "", "Reconstruct"])
        | json_values
    },
    optional={
        "id": json_values,
        "image": paths,
        "output": paths,
        "settings": settings_objects | json_values,
        "prompt": st.dictionaries(
            st.sampled_from(["text", "seed", "steps", "raw", "x"]), json_values
        )
        | json_values,
        "picture": paths,
        "extra": json_values,
    },
).filter(lambda r: r.get("request") != "shutdown")


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(request=requests)
def test_random_requests_are_each_answered(worker, request):
    line = json.dumps(request).encode()
    ends = _terminal(worker.answers(line))
    assert len(ends) == 1, ends
    (end,) = ends
    if request.get("request") == "ping":
        assert end["event"] == "ready"
    elif end["event"] == "done":  # a random request that happens to be valid
        assert Path(end["result"]).is_file()
    else:
        assert end["event"] == "error", end
        assert end["kind"] != "InternalError", end
        assert isinstance(end["message"], str) and end["message"].endswith(".")
    # the answer carries the request's id (null for one strict JSON cannot write: Infinity)
    try:
        json.dumps(request.get("id"), allow_nan=False)
        expected = request.get("id")
    except ValueError:
        expected = None
    assert end["id"] == expected


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")))
def test_random_bytes_are_each_answered(worker, data):
    ends = _terminal(worker.answers(data))
    if _blank(data):
        assert ends == []
        return
    assert len(ends) == 1, ends
    if ends[0]["event"] == "error":
        assert ends[0]["kind"] in ("ProtocolError", "OptionError", "InputError", "OutputError")


def test_huge_lines_and_deep_nesting_are_refused_and_the_next_request_served(worker):
    for data in (
        b"x" * (3 << 20),  # three times the limit, no JSON at all
        b'{"request": "ping", "id": "' + b"a" * (2 << 20) + b'"}',  # valid JSON, too long
        b"[" * 100_000 + b"]" * 100_000,  # nested deeper than the parser goes
        b'{"request": "reconstruct", "image": "\\u0000", "output": "x"}',
        b'{"request": "reconstruct", "image": "a", "output": "b", "settings": {"fov": 1e999}}',
    ):
        (end,) = _terminal(worker.answers(data))
        assert end["event"] == "error" and end["kind"] == "ProtocolError", end


def test_a_request_while_one_runs_is_answered_at_once(tmp_path):
    """During a slow run: ping gets ready, others a Busy or ProtocolError; the run still lands."""
    w = RawWorker(tmp_path, env={"IMG2MESH_TEST_PROGRESS_DELAY": "0.2"})
    out = tmp_path / "r.npz"
    settings_ = {"segment": "key", "depth": "inflate", "mesh": "grid", "max_size": 96}
    run = {"request": "reconstruct", "id": "run", "image": str(TOY), "output": str(out)}
    w.write(json.dumps({**run, "settings": settings_}).encode() + b"\n")
    assert w.event()["event"] == "progress"  # it is under way
    w.write(json.dumps({**run, "id": "second"}).encode() + b"\n")
    w.write(b"\xff\xfe junk\n")
    w.write(b'{"request": "ping", "id": "alive"}\n')
    seen = {}
    while "run" not in seen:
        e = w.event()
        if e["event"] != "progress":
            seen[e["id"] if e["id"] != "run" or e["event"] == "done" else "run"] = e
    assert seen["second"]["kind"] == "Busy" and seen[None]["kind"] == "ProtocolError"
    assert seen["alive"]["event"] == "ready"
    assert seen["run"]["event"] == "done" and out.is_file()
    # the next request is served as usual
    w.write(json.dumps({**run, "id": "third", "settings": settings_}).encode() + b"\n")
    while (e := w.event())["event"] == "progress":
        pass
    assert e["event"] == "done" and e["id"] == "third"
    assert w.close() == 0
