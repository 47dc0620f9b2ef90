"""Where a network runs: CUDA, Apple's MPS or the CPU, as asked and as available."""

from __future__ import annotations

import os

from ..errors import OptionError


def pick_device(device: str = "auto") -> str:
    """``auto`` means CUDA, then Apple's MPS, then the CPU."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise OptionError(
            "CUDA was asked for (--device cuda) but no CUDA GPU is available to PyTorch.",
            code="device_unavailable",
            field="device",
            details={"device": "cuda"},
        )
    if device == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise OptionError(
            "MPS was asked for (--device mps) but this PyTorch cannot use Apple's GPU.",
            code="device_unavailable",
            field="device",
            details={"device": "mps"},
        )
    return device


def cpu_for_sure(device: str) -> str | None:
    """``"cpu"`` when the network surely runs on the CPU, found without importing torch; else None.

    ``auto`` only means the CPU when no GPU is visible to the system at all; when one
    may be, torch decides (see :func:`pick_device`).
    """
    import sys

    if device == "cpu":
        return "cpu"
    if device != "auto" or "torch" in sys.modules:
        return None
    import platform

    if sys.platform == "darwin":
        return None if platform.machine() == "arm64" else "cpu"
    if sys.platform == "win32":
        system = os.environ.get("SYSTEMROOT", r"C:\Windows")
        return None if os.path.exists(os.path.join(system, "System32", "nvcuda.dll")) else "cpu"
    gpu_nodes = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")
    return None if any(os.path.exists(p) for p in gpu_nodes) else "cpu"
