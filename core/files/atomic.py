"""Writing files atomically and never over a file by accident: one file, or files that belong together (all of them or none)."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import OutputError

#: Writes one file's bytes into the open (binary) file it is given.
Writer = Callable[[BinaryIO], None]


# errno values that mean "this folder does not let you write", as opposed to "it is full".
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def atomic_write(path: str | os.PathLike, write: Writer, *, overwrite: bool = False) -> Path:
    """Call ``write`` on a temporary file next to ``path``, then move it into place.

    Either the whole file appears at ``path`` or nothing changes: on any failure
    the temporary file is removed and the error is re-raised (OS errors the user
    can fix become :class:`OutputError`).
    """
    return atomic_write_all([(Path(path), write)], overwrite=overwrite)[0]


def atomic_write_all(items: list[tuple[Path, Writer]], *, overwrite: bool = False) -> list[Path]:
    """Files that belong together (a mesh, its texture, its preview): all of them appear, or none.

    Every target is checked first; each is written to a temporary file beside it (one
    file system, so the move is a rename); only then are they moved into place. If a
    write or a move fails, the temporary files go and the ones already moved are
    removed again. Returns the paths, in the order given.
    """
    items = [(Path(path), write) for path, write in items]
    for path, _ in items:
        check_target(path, overwrite=overwrite)
    staged: list[tuple[str, Path]] = []
    placed: list[Path] = []
    current = items[0][0] if items else Path()
    try:
        for current, write in items:
            fd, tmp_name = tempfile.mkstemp(
                dir=current.parent, prefix=f".{current.name}.", suffix=".tmp"
            )
            staged.append((tmp_name, current))
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            # mkstemp makes the file 0600; give it the mode a normal open() would.
            os.chmod(tmp_name, 0o666 & ~_umask())
        for _tmp, current in staged:
            if not overwrite and current.exists():
                # another process made it while we were writing
                raise OutputError(f"{current} exists; pass --overwrite to replace it.")
        for tmp_name, current in staged:
            os.replace(tmp_name, current)
            placed.append(current)
    except BaseException as exc:
        for path in placed:
            with contextlib.suppress(OSError):
                path.unlink()
        if isinstance(exc, OSError):
            raise _output_error(exc, current) from exc
        raise
    finally:
        for tmp_name, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
    return [path for path, _ in items]


def check_target(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Raise :class:`OutputError` now if ``path`` cannot be written, before any slow work."""
    path = Path(path)
    folder = path.parent
    try:
        os.stat(folder)
    except FileNotFoundError:
        raise OutputError(f"Cannot write {path}: the folder {folder} does not exist.") from None
    except OSError as exc:  # e.g. a parent folder the user may not enter
        raise _output_error(exc, path) from None
    if not folder.exists():
        raise OutputError(f"Cannot write {path}: the folder {folder} does not exist.")
    if not folder.is_dir():
        raise OutputError(f"Cannot write {path}: {folder} is not a folder.")
    if path.is_dir():
        raise OutputError(f"Cannot write {path}: it is a folder.")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it.")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"Cannot write {path}: the folder {folder} is not writable.")
    return path


def _output_error(exc: OSError, path: Path) -> OutputError:
    if exc.errno in _DISK_FULL:
        return OutputError(f"Cannot write {path}: the disk is full.")
    if exc.errno in _NOT_WRITABLE or isinstance(exc, PermissionError):
        return OutputError(f"Cannot write {path}: the folder {path.parent} is not writable.")
    return OutputError(f"Cannot write {path}: {exc.strerror or exc}.")


def _umask() -> int:
    # os.umask can only be read by setting it; /proc avoids that race on Linux.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
