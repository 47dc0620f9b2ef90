"""On-disk cache of masks and depth, keyed by image content and the settings that shaped them."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

#: Oldest entries are removed beyond this many files.
MAX_ENTRIES = 400


class DiskCache:
    """``get``/``put`` of small dicts of numpy arrays in ``root`` (one .npz per entry)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, kind: str, digest: str, key: dict) -> Path:
        blob = json.dumps({"kind": kind, "image": digest, "key": key}, sort_keys=True, default=str)
        return self.root / f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}.npz"

    def get(self, kind: str, digest: str, key: dict) -> dict | None:
        path = self._path(kind, digest, key)
        try:
            with np.load(path, allow_pickle=False) as data:
                entry = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError):
            return None  # missing or damaged: recompute
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used entries survive trimming
        return entry

    def put(self, kind: str, digest: str, key: dict, arrays: dict) -> None:
        """Store atomically; a cache that cannot be written is skipped, never an error."""
        path = self._path(kind, digest, key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".npz")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, **arrays)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            self._trim()
        except OSError:
            pass

    def _trim(self) -> None:
        entries = sorted(self.root.glob("*.npz"), key=lambda p: p.stat().st_mtime)
        for old in entries[: max(0, len(entries) - MAX_ENTRIES)]:
            with contextlib.suppress(OSError):
                old.unlink()
