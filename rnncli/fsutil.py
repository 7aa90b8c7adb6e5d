"""Atomic file writes and an exclusive folder lock.

    atomic_write_text(path, "...")          # written to a temporary file, then renamed
    with atomic_path(path) as tmp: save(tmp) # for writers that want a path
    with exclusive_lock(home / "fetch.lock"): ...   # BlockingIOError if someone holds it

A reader sees the old file or the new one, never half of one. Temporary files get random
names made with O_EXCL (tempfile.mkstemp) in the target folder: a name planted in advance,
a symlink included, is never opened or followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_file(path: Path) -> tuple[int, Path]:
    """A new, empty, exclusively created file beside `path`, as (fd, path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix last: Keras and numpy insist on it.
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=path.suffix, dir=path.parent)
    # mkstemp makes the file 0600; the result should carry the usual permissions.
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o666 & ~_umask())
    return fd, Path(name)


def _remove(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, else is removed."""
    path = Path(path)
    fd, tmp = _temp_file(path)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = _temp_file(path)
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if need be) without waiting.

    Raises BlockingIOError when another process (or another open of the file) holds it.
    The lock file is never removed: removing it would let two holders lock two files.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; builds still go to folders of their own
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)
