"""Atomic file writes and an exclusive folder lock.

    atomic_write_text(path, "...")          # written to a temporary file, then renamed
    with atomic_path(path) as tmp: save(tmp) # for writers that want a path
    with exclusive_lock(home / "fetch.lock"): ...   # BlockingIOError if someone holds it

A reader sees the old file or the new one, never half of one. Temporary files get random
names made with O_EXCL (tempfile.mkstemp) in the target folder: a name planted in advance,
a symlink included, is never opened or followed. Those a killed process left behind have a
recognisable name (`.<stem>.tmp-<8 random><suffix>`): `remove_temporaries(folder)`.

Permissions are what a plain write would give: a new file gets 0666 less the umask, a
replaced file keeps its mode (a 0600 file stays private).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

_TEMP_MARK = ".tmp-"
# _temp_file's names: mkstemp's 8 random characters between the mark and the suffix.
_TEMP_NAME = re.compile(r"\..*" + re.escape(_TEMP_MARK) + r"[a-z0-9_]{8}(?:\.[^.]*)?")


def umask() -> int:
    """The process's umask, read without changing it where Linux tells it."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """The permissions `path` should have once replaced: its own if it is a file now,
    else those of a new file."""
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):
        return stat.S_IMODE(st.st_mode) & 0o777
    return 0o666 & ~umask()


def _temp_file(path: Path) -> tuple[int, Path]:
    """A new, empty, exclusively created file beside `path`, as (fd, path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix last: Keras and numpy insist on it.
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}{_TEMP_MARK}", suffix=path.suffix,
                                dir=path.parent)
    # mkstemp makes the file 0600; the result should carry the permissions a plain write
    # would leave.
    if hasattr(os, "fchmod"):
        try:
            os.fchmod(fd, _mode_for(path))
        except BaseException:
            os.close(fd)
            _remove(Path(name))
            raise
    return fd, Path(name)


def remove_temporaries(folder: Path, of: Iterable[str] | None = None) -> list[Path]:
    """Remove the temporary files in `folder` that atomic writes of a killed process left
    (only those of the files named in `of`, if given); only for a caller that knows no
    other process is writing them (it holds a lock)."""
    if of is None:
        pattern = _TEMP_NAME
    else:
        pattern = re.compile("|".join(
            re.escape(f".{Path(name).stem}{_TEMP_MARK}") + "[a-z0-9_]{8}"
            + re.escape(Path(name).suffix) for name in of) or "(?!)")
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if pattern.fullmatch(entry.name):
            _remove(Path(entry.path))
            removed.append(Path(entry.path))
    return removed


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
    flags = os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        # 0666 less the umask, as for any new file: where a team shares the folder (umask
        # 002), each member can open the lock file another one made.
        fd = os.open(path, os.O_RDWR | flags, 0o666)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY | flags)  # flock needs no write access
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)
