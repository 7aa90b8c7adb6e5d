"""A run folder in training: how a run enters it (staged, then switched in), its
checkpoints and its history. The names of its files are in config/run_files.py.

    run = open_run(Path("artifacts"), overwrite=False, resume=False)  # files go to run.work
    switch_in(run)                                                   # then replace the old run

A new run is written in `.next/` inside the run folder and switched in, file by file with
Ctrl-C held off, once its first epoch has finished: until then the folder's previous run
stays whole; from then on the run writes in the folder itself.

One process at a time writes a run folder: training and export hold an exclusive lock on
its LOCK file (`with locked(folder): ...`); a second one is refused at once, not left to
wait, and the lock goes with the process however it ends (the kernel drops it).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rnncli.config.run_files import (
    BACKUP,
    CONFIG,
    HISTORY_CSV,
    HISTORY_JSON,
    LOCK,
    ONNX,
    RUN_FILES,
    STAGING,
)
from rnncli.errors import TrainingError, UsageError
from rnncli.fsutil import atomic_write_json, atomic_write_text, exclusive_lock, read_json

_FLOCK = importlib.util.find_spec("fcntl") is not None  # Windows has none: no lock file


@dataclass
class RunFolder:
    output: Path  # the run folder the user named
    # Where this run writes: output/.next until switch_in, then the folder itself (or an
    # unfinished run's own folder).
    work: Path
    resumed: bool = False  # continues the run already in `work`

    @property
    def staged(self) -> bool:
        return self.work != self.output


def holds_run(folder: Path) -> bool:
    return (folder / CONFIG).exists() or any(folder.glob("*.keras"))


def latest_checkpoint(folder: Path) -> tuple[int, Path] | None:
    """(epoch, path) of the newest epoch checkpoint of an unfinished run, if any."""
    found = sorted((folder / BACKUP).glob("epoch-*.keras"))
    if not found or not (folder / CONFIG).exists():
        return None
    return int(found[-1].stem.split("-")[1]), found[-1]


def checkpoint_path(folder: Path, epoch: int) -> Path:
    return folder / BACKUP / f"epoch-{epoch:04d}.keras"


def drop_checkpoints_before(folder: Path, epoch: int) -> None:
    for old in (folder / BACKUP).glob("epoch-*.keras"):
        if int(old.stem.split("-")[1]) < epoch:
            old.unlink()


def in_use(folder: Path) -> str:
    """The message refusing a second writer of `folder`."""
    return (f"{folder} is in use by another rnncli process (training or exporting into it): "
            "wait for it to end, or choose another --output.")


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the run folder's lock (the folder is made if need be) or raise a one-line
    TrainingError at once when another process holds it.

    A folder made here that holds nothing but the lock at the end is removed again, so a
    refused or failed first run leaves no trace. (Removed while still locked: a process
    that opened the lock file just before could only lock the removed file, and finds it
    gone.)
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--output {folder} is a file: name a folder.")
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"Cannot write in {folder} ({exc.strerror}): "
                         "choose another --output.") from None
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(exclusive_lock(folder / LOCK))
        if _FLOCK and not (folder / LOCK).exists():  # its last holder removed it after
            raise BlockingIOError                    # we opened it: that one was in use
    except BlockingIOError:
        stack.close()
        raise TrainingError(in_use(folder)) from None
    except OSError as exc:
        stack.close()
        raise UsageError(f"Cannot write in {folder} ({exc.strerror}): "
                         "choose another --output.") from None
    with stack:
        try:
            yield
        finally:
            if made:
                _remove_if_bare(folder)


def _remove_if_bare(folder: Path) -> None:
    try:
        if [p.name for p in folder.iterdir()] == [LOCK]:
            (folder / LOCK).unlink()
            folder.rmdir()
    except OSError:
        pass  # something else appeared there: leave it all


def open_run(output: Path, overwrite: bool, resume: bool) -> RunFolder:
    """Check what `output` holds against the request and say where this run writes."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file: name a folder.")
    staging = output / STAGING
    if resume:
        for folder in (staging, output):
            if latest_checkpoint(folder):
                return RunFolder(output, folder, resumed=True)
        if (output / CONFIG).exists():
            raise UsageError(f"The run in {output} is complete: nothing to resume; "
                             "--overwrite starts it again.")
        raise UsageError(f"Nothing to resume in {output}: start a run with `rnncli train`.")
    if (holds_run(output) or latest_checkpoint(staging)) and not overwrite:
        raise UsageError(
            f"{output} already holds a run: pass --overwrite to replace it, --resume to "
            "continue it, or --output DIR for a new folder."
        )
    return RunFolder(output, staging)


def check_output_file(output: Path) -> None:
    """Refuse an --output that cannot become a file before any work is done: export
    would otherwise convert and validate for a minute, then fail on a temporary name."""
    if output.is_dir():
        raise UsageError(f"--output {output} is a folder: name the file to write, such as "
                         f"{output / ONNX}.")
    above = next((p for p in output.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise UsageError(f"--output {output}: {above} is a file, not a folder; choose "
                         "another --output.")


def begin(run: RunFolder) -> None:
    """Make the folder a new run writes to; nothing is written before this."""
    if run.resumed:
        return
    shutil.rmtree(run.work, ignore_errors=True)  # a run that never finished an epoch
    try:
        run.work.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(f"Cannot write in {run.output} ({exc.strerror}): "
                         "choose another --output.") from None


_holding = False


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C waits until the block is done, then interrupts as usual.

    The handler is swapped, not the signal mask: TensorFlow's threads would still take a
    blocked SIGINT and have Python raise it in the middle of the block.
    """
    global _holding
    if _holding or threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    _holding = True
    try:
        yield
    finally:
        _holding = False
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def switch_in(run: RunFolder) -> None:
    """Replace the run in `run.output` by the staged one; files of the old run that the new
    one lacks (exports, curves) go too. From then on the run writes in `run.output`."""
    if not run.staged:
        return
    with interrupts_held():
        for name in RUN_FILES:
            new, old = run.work / name, run.output / name
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            elif old.exists() or old.is_symlink():
                if not new.exists():
                    old.unlink()
            if new.exists():
                new.replace(old)
        shutil.rmtree(run.work, ignore_errors=True)
        run.work = run.output


def clear_staging(output: Path, made: bool) -> str:
    """After a training process was killed: remove the run it left in `.next/` before its
    first epoch ended (never one another process is writing: the lock says), and the folder
    too when that process `made` it and it holds nothing else; what the folder now is, in a
    phrase ("" when nothing was there)."""
    staging = Path(output) / STAGING
    if not staging.exists():
        return ""
    try:
        with locked(output):
            if latest_checkpoint(staging):
                return ""  # an older rnncli's unfinished run: --resume continues it
            shutil.rmtree(staging, ignore_errors=True)
            if made:
                _remove_if_bare(Path(output))
    except (TrainingError, UsageError):
        return ""  # another process writes there now: its staging is its own
    return f"its unfinished run removed: {output} is as it was"


def discard(run: RunFolder) -> None:
    """Forget a staged run that never finished an epoch: the folder is as it was."""
    if run.staged:
        shutil.rmtree(run.work, ignore_errors=True)


def write_history(folder: Path, history: list[dict], best_epoch: int | None,
                  best: float | None) -> None:
    atomic_write_json(folder / HISTORY_JSON, {"epochs": history, "best_epoch": best_epoch,
                                              "best": best})
    if history:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(history[-1]))
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(folder / HISTORY_CSV, buf.getvalue())


def read_history(folder: Path) -> tuple[list[dict], int | None, float | None]:
    """(epochs so far, best epoch, its monitored value) of a run; empty where none was written."""
    try:
        h = read_json(folder / HISTORY_JSON)
    except (OSError, ValueError):
        return [], None, None
    return h.get("epochs", []), h.get("best_epoch"), h.get("best")
