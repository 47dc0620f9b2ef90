"""Files img2mesh writes under its data folder: fingerprinted, locked while replaced, checked when read.

Nothing here may ever stop a run: a damaged file of ours is rebuilt (or the run goes
without it), a folder that cannot be written is used read-only. What the user should
know is said once per process, as one warning line (:func:`warn`, collected by the
pipeline with :func:`take_warnings`).
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

#: Bytes read at each of :data:`SAMPLES` evenly spaced places by :func:`fingerprint`.
CHUNK = 1 << 16
SAMPLES = 16

_said: set[str] = set()
_pending: list[str] = []


def warn(message: str) -> None:
    """Queue ``message`` for the user, unless this process said it already."""
    if message not in _said:
        _said.add(message)
        _pending.append(message)


def take_warnings() -> list[str]:
    """The warnings queued since the last call (each said once per process)."""
    out = list(_pending)
    _pending.clear()
    return out


def cannot_write(exc: BaseException | None = None) -> None:
    """The data folder refused a write: one warning, then the run goes on without saving there."""
    from .paths import data_home

    reason = ""
    if isinstance(exc, OSError):
        reason = f" ({exc.strerror or exc})"
    warn(
        f"The data folder {data_home()} cannot be written{reason}: nothing is saved there, "
        "so the next run repeats the one-off work (set IMG2MESH_HOME to a writable folder)."
    )


def rebuilt(path: Path, what: str) -> None:
    """One of our files was damaged (cut short, emptied, replaced, unreadable) and is made again."""
    warn(f"The {what} {path} was damaged; it is rebuilt (nothing to do on your side).")


def unavailable(exc: BaseException) -> bool:
    """Is ``exc`` (or its text) about the disk, not the content: full, read-only, permissions?"""
    import errno

    if isinstance(exc, OSError) and exc.errno in (
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
    ):
        return True
    text = str(exc)
    return any(
        k in text
        for k in ("No space left", "Disk quota", "Read-only file system", "Permission denied")
    )


def fingerprint(path: Path) -> str:
    """Size and a SHA-256 of :data:`SAMPLES` evenly spaced chunks (start and end included).

    Cut-short, emptied, grown or swapped files change it; reading a few hundred KiB
    instead of a 100-300 MB graph keeps a warm start fast (hashing a whole GLPN graph
    costs about as much as opening its session). A flipped byte between the samples is
    left to ONNX Runtime's own parse, whose failure is also treated as damage.
    """
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= CHUNK * SAMPLES:
            h.update(f.read())
        else:
            step = (size - CHUNK) / (SAMPLES - 1)
            for i in range(SAMPLES):
                f.seek(int(i * step))
                h.update(f.read(CHUNK))
    return f"{size}:{h.hexdigest()[:32]}"


def matches(path: Path, expected: object) -> bool:
    """Does ``path`` exist and have the fingerprint recorded when it was written?"""
    if not isinstance(expected, str):
        return False
    try:
        return fingerprint(path) == expected
    except OSError:
        return False


@contextlib.contextmanager
def locked(folder: Path):
    """Hold ``folder``'s lock file (exclusive, between processes) while replacing its files.

    Where no lock can be taken (no fcntl, a folder that cannot be written), the block
    runs without one: every file is still written by ``os.replace``, so a reader never
    sees half a file.
    """
    handle = None
    try:
        import fcntl

        handle = open(folder / ".lock", "a+b")  # noqa: SIM115 (held across the yield)
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    except (ImportError, OSError):
        if handle is not None:
            handle.close()
        handle = None
    try:
        yield
    finally:
        if handle is not None:
            handle.close()  # releases the lock


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def keep_newest(folder: Path, pattern: str, keep: int, sidecars: tuple[str, ...] = ()) -> None:
    """Remove all but the ``keep`` most recently used files matching ``pattern`` in ``folder``,
    each with the files beside it that have one of the ``sidecars`` suffixes instead of its
    own (its checksum or verdict). ``pattern`` should skip names starting with a dot: those
    are the temporary files of a process still writing."""
    files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
    for old in files[: max(0, len(files) - keep)]:
        for path in (old, *(old.with_suffix(s) for s in sidecars)):
            with contextlib.suppress(OSError):
                path.unlink()
