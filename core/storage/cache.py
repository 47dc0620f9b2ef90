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
    """``get``/``put`` of small dicts of numpy arrays in ``root`` (one .npz per entry).

    Each entry also stores the digest of its key (``__key__``): a file that is cut
    short, emptied, unreadable or another entry's (copied or renamed into place) is a
    miss, removed and computed again, never an error.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _digest(self, kind: str, digest: str, key: dict) -> str:
        blob = json.dumps({"kind": kind, "image": digest, "key": key}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def _path(self, kind: str, digest: str, key: dict) -> Path:
        return self.root / f"{kind}-{self._digest(kind, digest, key)}.npz"

    def get(self, kind: str, digest: str, key: dict) -> dict | None:
        path = self._path(kind, digest, key)
        try:
            with np.load(path, allow_pickle=False) as data:
                entry = {k: data[k] for k in data.files}
        except FileNotFoundError:
            return None
        except Exception:  # cut short, not a zip, unreadable: numpy and zipfile raise many kinds
            entry = None
        if entry is None or str(entry.pop("__key__", "")) != self._digest(kind, digest, key):
            with contextlib.suppress(OSError):
                path.unlink()  # damaged or foreign: recomputed and stored again
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used entries survive trimming
        return entry

    def put(self, kind: str, digest: str, key: dict, arrays: dict) -> None:
        """Store atomically; a cache that cannot be written is skipped (one warning), never an error."""
        path = self._path(kind, digest, key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".npz")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, __key__=np.array(self._digest(kind, digest, key)), **arrays)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            self._trim()
        except OSError as exc:
            from .datafolder import cannot_write

            cannot_write(exc)

    def _trim(self) -> None:
        from .datafolder import keep_newest

        keep_newest(self.root, "[!.]*.npz", MAX_ENTRIES)  # not ".tmp-*": still being written
