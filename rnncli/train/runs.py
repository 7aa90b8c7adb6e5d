"""The run folder: its layout, how a run enters it, its history, and finding a model in it.

    run = open_run(Path("artifacts"), overwrite=False, resume=False)  # files go to run.work
    switch_in(run)                                                   # then replace the old run
    model = find_model(None)   # artifacts/ model, else the bundled one

A new run is written in `.next/` inside the run folder and switched in, file by file with
Ctrl-C held off, once it has a model: until then the folder's previous run stays whole.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rnncli.errors import ModelError, UsageError
from rnncli.fsutil import atomic_write_json, atomic_write_text, read_json

DEFAULT_OUTPUT = Path("artifacts")
MODEL = "model.keras"
BEST = "best.keras"
CONFIG = "config.json"
CONFIG_TOML = "config.toml"  # the same settings, for `rnncli train --config`
PREPROCESSING = "preprocessing.json"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
CURVES_PNG = "curves.png"
LAST_RUN = "last_run"
BACKUP = ".backup"  # epoch-NNNN.keras: the last finished epoch, with optimizer state
STAGING = ".next"  # a run in progress, until it has a model
HEAD_JSON = "ngram_head.json"  # --ngram-head: its weights against the network's, val accuracy
ONNX = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
ONNX_TEXT = "model.text.onnx"  # `export onnx --text-input`
# What a new run replaces: a stale export beside a new model would be served by mistake.
RUN_FILES = (MODEL, BEST, CONFIG, CONFIG_TOML, PREPROCESSING, HISTORY_JSON, HISTORY_CSV,
             CURVES_PNG, LAST_RUN, BACKUP, HEAD_JSON, ONNX, ONNX_INT8, ONNX_TEXT)
BUNDLED = Path(__file__).resolve().parents[1] / "bundled" / "model.onnx"


@dataclass(frozen=True)
class RunFolder:
    output: Path  # the run folder the user named
    work: Path  # where this run writes: output/.next, or an unfinished run's own folder
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
    one lacks (exports, curves) go too."""
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


@dataclass
class ModelRef:
    path: Path  # the .keras or .onnx file
    kind: str  # "keras" or "onnx"
    bundled: bool = False


def _model_in(folder: Path, prefer: str) -> ModelRef | None:
    for name in ((MODEL, ONNX) if prefer == "keras" else (ONNX, MODEL)):
        if (folder / name).exists():
            return ModelRef(folder / name, "keras" if name == MODEL else "onnx")
    return None


def find_model(path: Path | None, prefer: str = "keras") -> ModelRef:
    """Resolve --model: a run folder, a .keras or .onnx file; default artifacts/, then bundled."""
    if path is None:
        found = _model_in(DEFAULT_OUTPUT, prefer)
        if found is None and BUNDLED.exists():
            found = ModelRef(BUNDLED, "onnx", bundled=True)
        if found is None:
            raise ModelError(f"No model in {DEFAULT_OUTPUT}/: run `rnncli train` first.")
        return found
    path = Path(path)
    if path.is_dir():
        found = _model_in(path, prefer)
        if found is None:
            raise ModelError(f"No {MODEL} or {ONNX} in {path}: "
                             f"run `rnncli train --output {path}`.")
        return found
    if not path.exists():
        raise ModelError(f"No model at {path}: check --model.")
    if path.suffix == ".keras":
        return ModelRef(path, "keras")
    if path.suffix == ".onnx":
        return ModelRef(path, "onnx")
    raise ModelError(f"{path} is neither a .keras nor an .onnx model: pass one of those.")


def keras_preprocessing(model_path: Path):
    """The preprocessing saved beside a Keras model."""
    from rnncli.text.preprocessing import Preprocessing

    meta = model_path.parent / PREPROCESSING
    if not meta.exists():
        raise ModelError(
            f"No {PREPROCESSING} beside {model_path}: it was not saved by `rnncli train`; "
            "retrain it with rnncli."
        )
    try:
        return Preprocessing.from_dict(read_json(meta))
    except ValueError as exc:
        raise ModelError(f"Unreadable {meta} ({exc}): retrain the model.") from None
