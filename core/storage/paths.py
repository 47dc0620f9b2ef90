"""Where img2mesh keeps models and caches: one data folder, overridable per library."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def data_home() -> Path:
    """``$IMG2MESH_HOME``, else the per-user data folder of this platform."""
    env = os.environ.get("IMG2MESH_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "img2mesh"


def hf_cache_dir() -> Path | None:
    """Hugging Face cache for our downloads, or None when the user set their own.

    The user's own ``HF_HOME`` / ``HF_HUB_CACHE`` win, so models they already
    downloaded are found instead of fetched again.
    """
    if any(os.environ.get(v) for v in ("HF_HUB_CACHE", "HF_HOME", "HUGGINGFACE_HUB_CACHE")):
        return None
    return data_home() / "huggingface"


def rembg_home() -> Path:
    """Folder rembg downloads its models to (``U2NET_HOME`` / ``REMBG_HOME`` win when set)."""
    for var in ("U2NET_HOME", "REMBG_HOME"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    return data_home() / "rembg"


def cache_dir() -> Path:
    """Depth and mask cache."""
    return data_home() / "cache"


def describe() -> dict:
    """Where things are, for ``img2mesh --where`` and the add-on's preferences."""
    hf = hf_cache_dir()
    return {
        "data_home": str(data_home()),
        "huggingface_cache": str(hf) if hf else _user_hf_cache(),
        "rembg_models": str(rembg_home()),
        "depth_cache": str(cache_dir()),
    }


def _user_hf_cache() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return os.environ["HUGGINGFACE_HUB_CACHE"]
    return str(Path(os.environ["HF_HOME"]) / "hub")
