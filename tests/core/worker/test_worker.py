"""The reconstruction worker (``python -m core.worker``) as the add-on sees it: JSON lines in and out."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.protocol import ERROR_CODES, PROTOCOL
from core.worker.serve import PROGRESS_DELAY_VAR

REPO = Path(__file__).resolve().parents[3]
TOY = REPO / "examples" / "toy.jpg"
WEIGHT_FREE = {"segment": "key", "depth": "inflate", "mesh": "grid", "max_size": 96}


class Worker:
    """A worker subprocess with a reader thread, as the add-on runs it."""

    def __init__(self, env: dict | None = None, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-u", "-m", "core.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.raw: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.raw.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def send(self, **request) -> None:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def event(self, timeout: float = 120) -> dict:
        line = self.lines.get(timeout=timeout)
        assert line is not None, f"the worker ended: {self.proc.stderr.read()}"
        return json.loads(line)

    def until(self, kinds: set[str]) -> list[dict]:
        events = []
        while True:
            events.append(self.event())
            if events[-1]["event"] in kinds:
                return events

    def close(self) -> int:
        if self.proc.poll() is None:
            self.send(request="shutdown")
        code = self.proc.wait(30)
        self.proc.stderr.close()
        return code


@pytest.fixture
def worker(tmp_path):
    w = Worker(cwd=tmp_path)
    yield w
    if w.proc.poll() is None:
        w.proc.kill()
        w.proc.wait()


def test_ready_then_reconstruct_writes_the_documented_result(worker, tmp_path):
    ready = worker.event()
    assert ready["event"] == "ready" and ready["id"] is None
    assert ready["protocol"] == PROTOCOL == 2
    assert ready["pid"] == worker.proc.pid and ready["loaded_models"] == []

    worker.send(request="ping", id=7)
    assert worker.event() | {"pid": 0} == ready | {"id": 7, "pid": 0}

    out = tmp_path / "result.npz"
    worker.send(
        request="reconstruct", id="r1", image=str(TOY), output=str(out), settings=WEIGHT_FREE
    )
    events = worker.until({"done", "error"})
    done, progress = events[-1], events[:-1]
    assert done["event"] == "done", done
    assert all(e["event"] == "progress" and e["id"] == "r1" for e in progress)
    stages = [e["stage"] for e in progress]
    assert list(dict.fromkeys(stages)) == ["load", "segment", "depth", "pointcloud", "mesh"]
    overall = [e["overall"] for e in progress]
    assert overall == sorted(overall) and overall[-1] == 1.0
    assert all(isinstance(e["message"], str) and e["message"] for e in progress)

    assert done["result"] == str(out) and done["name"] == "toy"
    assert done["summary"].startswith("toy.jpg: ") and "faces" in done["summary"]
    assert done["report"]["settings"]["mesh"] == "grid"
    assert not list(tmp_path.glob("*.partial"))

    with np.load(out, allow_pickle=False) as npz:
        r = {k: npz[k] for k in npz.files}
    assert r["vertices"].dtype == np.float32 and r["vertices"].shape == (done["vertices"], 3)
    assert r["faces"].dtype == np.int32 and r["faces"].shape == (done["faces"], 3)
    assert r["colors"].dtype == np.float32 and r["colors"].shape == r["vertices"].shape
    assert r["colors"].min() >= 0.0 and r["colors"].max() <= 1.0
    intrinsics = json.loads(str(r["intrinsics"]))
    assert set(intrinsics) == {"fx", "fy", "cx", "cy", "width", "height"}
    assert max(intrinsics["width"], intrinsics["height"]) == 96
    assert r["camera_location"].shape == (3,) and r["camera_location"].dtype == np.float64
    np.testing.assert_allclose(r["camera_rotation"], [np.pi / 2, 0, 0])
    assert str(r["image_path"]) == str(TOY.resolve())
    assert int(r["format_version"]) == 1
    assert worker.close() == 0


def test_errors_are_one_sentence_and_the_worker_carries_on(worker, tmp_path):
    worker.event()  # ready
    out = str(tmp_path / "r.npz")
    worker.send(request="reconstruct", id=1, image=str(tmp_path / "nope.jpg"), output=out)
    error = worker.until({"done", "error"})[-1]
    assert error == {
        "event": "error",
        "id": 1,
        "kind": "InputError",
        "message": f"The image '{tmp_path / 'nope.jpg'}' does not exist.",
    }
    worker.send(request="reconstruct", id=2, image=str(TOY), output=out, settings={"meshh": 1})
    assert worker.event() | {"message": ""} == {
        "event": "error",
        "id": 2,
        "kind": "OptionError",
        "message": "",
    }
    worker.send(request="reconstruct", id=3, image=str(TOY), output=str(tmp_path / "no" / "r.npz"))
    error = worker.event()
    assert error["kind"] == "OutputError" and "does not exist" in error["message"]
    worker.send(request="explode", id=4)
    assert worker.event()["kind"] == "ProtocolError"
    worker.proc.stdin.write("not json\n")
    worker.proc.stdin.flush()
    assert worker.event() | {"message": ""} == {
        "event": "error",
        "id": None,
        "kind": "ProtocolError",
        "message": "",
    }
    assert not Path(out).exists()
    worker.send(request="ping", id=5)
    assert worker.event()["event"] == "ready"
    # The protocol stream held nothing but JSON events.
    assert all(json.loads(line)["event"] for line in worker.raw)
    assert worker.close() == 0


def test_worker_exits_when_blender_goes(worker):
    worker.event()
    worker.proc.stdin.close()  # what happens when Blender quits or crashes
    assert worker.proc.wait(30) == 0


def test_library_output_goes_to_stderr_not_into_the_protocol():
    code = (
        "import os, sys\n"
        "from core.worker.serve import protocol_stream\n"
        "out = protocol_stream()\n"
        "print('python noise')\n"
        "sys.stdout.flush()\n"
        "os.write(1, b'C-level noise\\n')\n"
        'out.write(\'{"event": "ready"}\\n\')\n'
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == '{"event": "ready"}\n'
    assert "python noise" in run.stderr and "C-level noise" in run.stderr


def test_offline_worker_reports_a_missing_model_instead_of_downloading(tmp_path):
    w = Worker(env={"IMG2MESH_OFFLINE": "1"}, cwd=tmp_path)
    try:
        w.event()
        settings = {**WEIGHT_FREE, "segment": "rembg", "rembg_model": "u2net"}
        w.send(
            request="reconstruct",
            id=1,
            image=str(TOY),
            output=str(tmp_path / "r.npz"),
            settings=settings,
        )
        error = w.until({"done", "error"})[-1]
        assert error["kind"] == "ModelUnavailableError", error
        assert "u2net" in error["message"]
        # The fields the add-on words its own advice from (not the CLI's --flags).
        assert error["code"] == "rembg_model_unavailable" and error["field"] == "rembg_model"
        assert error["details"]["model"] == "u2net" and error["details"]["reason"]
        assert not list(Path(os.environ["IMG2MESH_HOME"]).rglob("*.onnx"))
    finally:
        w.close()


def test_a_prompt_request_generates_saves_and_reconstructs(worker, tmp_path):
    """The prompt form: "generate" progress first, the picture saved where asked, bad fields refused."""
    pytest.importorskip("diffusers")
    from tests.tiny_models import save_tiny_text2image

    model = save_tiny_text2image(tmp_path / "tiny-t2i")
    worker.event()  # ready
    out, picture = tmp_path / "result.npz", tmp_path / "a-red-toy-car.png"
    settings = {"segment": "none", "depth": "inflate", "mesh": "grid", "max_size": 64}
    prompt = {"text": "a red toy car", "seed": 3, "model_dir": str(model), "width": 128}
    worker.send(
        request="reconstruct",
        id="p1",
        prompt=prompt,
        picture=str(picture),
        output=str(out),
        settings=settings,
    )
    events = worker.until({"done", "error"})
    done, progress = events[-1], events[:-1]
    assert done["event"] == "done", done
    stages = list(dict.fromkeys(e["stage"] for e in progress))
    assert stages == ["generate", "load", "segment", "depth", "pointcloud", "mesh"]
    overall = [e["overall"] for e in progress]
    assert overall == sorted(overall) and overall[-1] == 1.0
    last_generate = max(e["overall"] for e in progress if e["stage"] == "generate")
    assert last_generate == pytest.approx(2.0 / 3.0, abs=1e-3)  # generating: two thirds
    assert done["picture"] == str(picture) and done["name"] == "a-red-toy-car"
    assert done["report"]["generated"]["seed"] == 3
    assert Image.open(picture).size == (128, 128)
    with np.load(out, allow_pickle=False) as npz:
        assert str(npz["image_path"]) == str(picture.resolve())

    for bad, message in [
        ({"seed": 1}, 'A prompt request needs "prompt": {"text": "...", ...}.'),
        ({"text": "a mug", "colour": "red"}, "Unknown prompt option: colour."),
        ({"text": "  "}, 'The prompt is empty: describe one object, e.g. "a red toy car".'),
    ]:
        worker.send(
            request="reconstruct",
            id="bad",
            prompt=bad,
            picture=str(tmp_path / "x.png"),
            output=str(tmp_path / "x.npz"),
        )
        error = worker.event()
        assert (error["kind"], error["message"]) == ("OptionError", message), error
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.npz").exists()
    assert worker.close() == 0


def _stage_events(events: list[dict], stage: str) -> list[str]:
    return [e["message"] for e in events if e["event"] == "progress" and e["stage"] == stage]


def test_cancel_stops_the_run_and_the_warm_worker_serves_the_next_without_reloading(
    tmp_path, tiny_glpn
):
    """A cancel stops the pipeline at its next step; the process, its models and caches stay."""
    w = Worker(env={PROGRESS_DELAY_VAR: "0.3"}, cwd=tmp_path)
    try:
        assert w.event()["event"] == "ready"
        settings = {
            "segment": "key",
            "depth": "model",
            "model_dir": str(tiny_glpn),
            "mesh": "grid",
            "max_size": 96,
        }
        first = tmp_path / "first.npz"
        w.send(request="reconstruct", id="r1", image=str(TOY), output=str(first), settings=settings)
        events = []
        while not (events and events[-1].get("stage") == "pointcloud"):
            events.append(w.event())
            assert events[-1]["event"] == "progress", events[-1]
        assert any(m.startswith("Loading ") for m in _stage_events(events, "depth"))
        w.send(request="cancel", id="r1")  # while the worker waits after a progress event
        end = w.until({"done", "error", "cancelled"})
        assert end[-1] == {"event": "cancelled", "id": "r1", "message": "Reconstruction cancelled."}
        assert [e["stage"] for e in end[:-1]] in ([], ["pointcloud"])  # stopped at the next step
        assert not first.exists() and not list(tmp_path.glob("*.partial"))

        # Still the same process, with its model loaded.
        assert w.proc.poll() is None
        w.send(request="ping", id="p")
        ready = w.event()
        assert ready["event"] == "ready" and ready["pid"] == w.proc.pid
        assert len(ready["loaded_models"]) == 1

        # A late cancel (its run is over) and one for no run are ignored without a word.
        w.send(request="cancel", id="r1")
        w.send(request="cancel")
        second = tmp_path / "second.npz"
        w.send(
            request="reconstruct", id="r2", image=str(TOY), output=str(second), settings=settings
        )
        events = w.until({"done", "error", "cancelled"})
        assert events[-1]["event"] == "done", events[-1]
        assert {e["id"] for e in events} == {"r2"}
        depth = _stage_events(events, "depth")
        assert depth and not any(m.startswith("Loading ") for m in depth), depth
        assert events[-1]["report"]["cache"]["depth"] is True  # the cancelled run's depth
        with np.load(second, allow_pickle=False) as npz:  # a whole result, not just a file
            assert npz["faces"].shape == (events[-1]["faces"], 3) and events[-1]["faces"] > 100
            assert npz["vertices"].shape == (events[-1]["vertices"], 3)
    finally:
        assert w.close() == 0


def test_a_cancel_sent_before_its_run_starts_stops_it_at_once(worker, tmp_path):
    worker.event()
    out = tmp_path / "r.npz"
    # The add-on may cancel a request it has not sent yet (the user pressed Esc while the
    # request was being written): that run ends at its first step, with no result file.
    worker.send(request="cancel", id=1)
    worker.send(request="reconstruct", id=1, image=str(TOY), output=str(out), settings=WEIGHT_FREE)
    first = worker.until({"done", "error", "cancelled"})
    assert first[-1]["id"] == 1 and first[-1]["event"] == "cancelled", first[-1]
    assert not [e for e in first if e["event"] == "progress" and e.get("stage") == "mesh"]
    assert not out.exists()
    # A cancel stops only its own run: the next request runs to the end.
    worker.send(request="reconstruct", id=2, image=str(TOY), output=str(out), settings=WEIGHT_FREE)
    second = worker.until({"done", "error", "cancelled"})[-1]
    assert second["id"] == 2 and second["event"] == "done", second
    assert out.exists()
    assert worker.close() == 0


def test_a_second_request_while_a_run_goes_is_answered_busy_at_once(tmp_path):
    w = Worker(env={PROGRESS_DELAY_VAR: "2"}, cwd=tmp_path)
    try:
        w.event()
        out = tmp_path / "r.npz"
        w.send(request="reconstruct", id=1, image=str(TOY), output=str(out), settings=WEIGHT_FREE)
        assert w.until({"progress"})[-1]["id"] == 1  # run 1 has started
        w.send(request="reconstruct", id=2, image=str(TOY), output=str(out), settings=WEIGHT_FREE)
        busy = w.until({"error"})[-1]
        assert busy["id"] == 2 and busy["kind"] == "Busy", busy
        assert "one request runs at a time" in busy["message"]
        w.send(request="cancel", id=1)
        end = w.until({"done", "error", "cancelled"})[-1]
        assert end["id"] == 1 and end["event"] == "cancelled", end
    finally:
        assert w.close() == 0


def test_shutdown_during_a_run_stops_it_and_exits(tmp_path):
    w = Worker(env={PROGRESS_DELAY_VAR: "2"}, cwd=tmp_path)
    w.event()
    w.send(
        request="reconstruct",
        id=1,
        image=str(TOY),
        output=str(tmp_path / "r.npz"),
        settings=WEIGHT_FREE,
    )
    assert w.event()["event"] == "progress"
    w.send(request="shutdown")
    assert w.until({"cancelled", "done", "error"})[-1]["event"] == "cancelled"
    assert w.proc.wait(30) == 0
    assert not (tmp_path / "r.npz").exists()


def test_a_user_error_carries_a_code_the_add_on_words_itself(worker, tmp_path):
    """A plain-backdrop mask that finds nothing: the event says which setting is at fault."""
    plain = tmp_path / "plain.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(plain)
    worker.event()
    worker.send(
        request="reconstruct",
        id=1,
        image=str(plain),
        output=str(tmp_path / "r.npz"),
        settings=WEIGHT_FREE,
    )
    error = worker.until({"done", "error"})[-1]
    assert error["kind"] == "InputError", error
    assert error["code"] == "key_found_nothing" and error["code"] in ERROR_CODES
    assert error["field"] == "segment" and "--segment key" in error["message"]
    assert worker.close() == 0
