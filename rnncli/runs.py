"""The run folder's layout, its history files, and finding the model a command should use.

    model = find_model(None)   # artifacts/ model, else the bundled one
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rnncli.errors import ModelError
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
BACKUP = ".backup"
ONNX = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
ONNX_TEXT = "model.text.onnx"  # `export onnx --text-input`
# What --overwrite clears: a stale export beside a new model would be served by mistake.
RUN_FILES = (MODEL, BEST, CONFIG, CONFIG_TOML, PREPROCESSING, HISTORY_JSON, HISTORY_CSV,
             CURVES_PNG, LAST_RUN, BACKUP, ONNX, ONNX_INT8, ONNX_TEXT)
BUNDLED = Path(__file__).resolve().parent / "bundled" / "model.onnx"


def write_history(output: Path, history: list[dict], state: dict) -> None:
    atomic_write_json(output / HISTORY_JSON, {"epochs": history,
                                              "best_epoch": state.get("best_epoch"),
                                              "best": state.get("best")})
    if history:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(history[-1]))
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(output / HISTORY_CSV, buf.getvalue())


def read_history(output: Path) -> tuple[list[dict], dict]:
    """(epochs so far, {"best", "best_epoch"}) of a run, empty where none was written."""
    try:
        h = read_json(output / HISTORY_JSON)
    except (OSError, ValueError):
        return [], {}
    return h.get("epochs", []), {"best": h.get("best"), "best_epoch": h.get("best_epoch")}


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
    from rnncli.preprocessing import Preprocessing

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


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Keep TensorFlow's C++ log lines (CUDA probing, oneDNN and graph notes) off stderr.

    TensorFlow writes them straight to file descriptor 2 before its log level is read, so
    fd 2 goes to /dev/null while Python's own stderr (progress, errors, tracebacks) is moved
    to a copy of the real one. RNNCLI_TF_LOGS=1 shows everything.
    """
    if os.environ.get("RNNCLI_TF_LOGS"):
        yield
        return
    try:
        python_on_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        python_on_fd2 = False  # e.g. a test runner's captured stream
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    old_stderr = sys.stderr
    try:
        os.dup2(devnull, 2)
        if python_on_fd2:
            sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=old_stderr.encoding,
                              errors="backslashreplace")
        yield
    finally:
        if sys.stderr is not old_stderr:
            sys.stderr.close()
            sys.stderr = old_stderr
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe logs here, once
    return tf


def load_keras_model(model_path: Path):
    quiet_tensorflow()
    import keras

    from rnncli.model import masked_max_pooling

    masked_max_pooling()  # registers the custom layer before a file may name it
    try:
        return keras.models.load_model(model_path, compile=False)
    except Exception as exc:  # keras raises many types for a bad file
        raise ModelError(f"Cannot load {model_path} ({type(exc).__name__}): "
                         "retrain or re-export it.") from None
