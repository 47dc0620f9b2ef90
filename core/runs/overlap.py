"""Segmentation and depth at the same time (``Pipeline(concurrent=True)``): both networks release the GIL."""

from __future__ import annotations

import time

from ..errors import Cancelled


def segment_beside_depth(segment, predict, step, cancel, timings: dict):
    """``segment(step)`` here and ``predict(step)`` in a thread, at the same time: (mask, prediction).

    ``step(stage, fraction, message="")`` reports progress (and raises to cancel);
    ``timings`` gets each stage's seconds.

    Both networks spend their time in ONNX Runtime or PyTorch, which release the
    GIL, and their model loads overlap too. The depth stage's progress messages
    are kept and shown after the segmentation's, so the stages still read in
    order; a cancel or an error stops the depth thread at its next step.
    """
    import queue
    import threading

    events: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    outcome: dict = {}

    def depth_step(stage: str, fraction: float, message: str = "") -> None:
        if stop.is_set():
            raise Cancelled()
        events.put((stage, fraction, message))

    def work() -> None:
        t0 = time.perf_counter()
        try:
            outcome["prediction"] = predict(depth_step)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            outcome["error"] = exc
        finally:
            outcome["seconds"] = time.perf_counter() - t0
            events.put(None)

    thread = threading.Thread(target=work, name="img2mesh-depth", daemon=True)
    thread.start()
    try:
        step("segment", 0.0)
        t0 = time.perf_counter()
        mask = segment(step)
        timings["segment"] = time.perf_counter() - t0
        step("segment", 1.0)
        step("depth", 0.0)
        while True:
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                if cancel is not None and cancel():
                    raise Cancelled() from None
                continue
            if event is None:
                break
            step(*event)
    except BaseException:
        stop.set()
        thread.join()
        raise
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    timings["depth"] = outcome["seconds"]
    step("depth", 1.0)
    return mask, outcome["prediction"]
