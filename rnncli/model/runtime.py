"""TensorFlow's process-level settings in one place, each one scoped and restored.

    with tf_runtime.quiet(hide_gpus=True):   # entered by the CLI around a library call
        export_onnx(...)

Library functions change no environment variable, logger level or file descriptor: the
command layer enters `quiet()` and everything it changed is put back when it exits. Seeds
and op determinism are scoped the same way (`seeded`), so one process can train twice.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path

from rnncli.errors import MissingExtraError, ModelError

TRAIN_EXTRA = 'pip install "rnncli[train]"'
KERAS_MODULES = ("tensorflow", "keras")
EXPORT_MODULES = ("tensorflow", "keras", "tf2onnx", "onnx")
# Loggers that write progress notes at INFO/WARNING during an export (tf2onnx goes through
# the root logger too); the commands print their own report instead.
NOISY_LOGGERS = ("tf2onnx", "onnxruntime", "")


def require_training_extra(what: str, modules: tuple[str, ...] = KERAS_MODULES) -> None:
    """Raise a one-line error when a module of the `[train]` extra is missing.

    Checked before anything is written, so a base install leaves no half-made run behind.
    """
    missing = [m for m in modules if _spec(m) is None]
    if missing:
        raise MissingExtraError(f"{what} needs the training extra ({', '.join(missing)} "
                                f"not installed): {TRAIN_EXTRA}")


def _spec(module: str):
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a broken package, or one blocked in sys.modules
        return None


def _put_env(values: dict[str, str | None]) -> None:
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@contextlib.contextmanager
def env_set(**values: str | None) -> Iterator[None]:
    """Environment variables set (or, with None, removed) for the block only."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        _put_env(values)
        yield
    finally:
        _put_env(saved)


@contextlib.contextmanager
def loggers_at(level: int, names: tuple[str, ...]) -> Iterator[None]:
    """Python loggers (\"\" is the root) raised to `level` for the block only."""
    loggers = [logging.getLogger(name or None) for name in names]
    saved = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(level)
        yield
    finally:
        for lg, old in zip(loggers, saved):
            lg.setLevel(old)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Keep TensorFlow's C++ log lines (CUDA probing, oneDNN and graph notes) off stderr.

    TensorFlow writes them straight to file descriptor 2 before its log level is read, so
    fd 2 goes to /dev/null while Python's own stderr (progress, errors, tracebacks) is moved
    to a copy of the real one; both are put back on exit.
    """
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


@contextlib.contextmanager
def quiet(hide_gpus: bool = False) -> Iterator[None]:
    """The scope a command runs TensorFlow in: its logs off stderr, GPUs hidden on request.

    `hide_gpus`: a visible GPU makes Keras LSTM/GRU trace to CudnnRNNV3, which tf2onnx
    cannot convert, so export runs on the CPU. RNNCLI_TF_LOGS=1 shows every log line.
    """
    with contextlib.ExitStack() as stack:
        if hide_gpus:
            stack.enter_context(env_set(CUDA_VISIBLE_DEVICES="-1"))
        if not os.environ.get("RNNCLI_TF_LOGS"):
            stack.enter_context(env_set(TF_CPP_MIN_LOG_LEVEL="3"))
            stack.enter_context(loggers_at(logging.ERROR, NOISY_LOGGERS))
            stack.enter_context(native_stderr_silenced())
        yield


def import_tensorflow(what: str = "Training"):
    """tensorflow, after checking the extra is there; its devices are probed once here."""
    require_training_extra(what)
    import tensorflow as tf

    tf.config.list_physical_devices()  # the CUDA probe logs here, inside the caller's scope
    return tf


def import_tf2onnx():
    """tf2onnx with its converter loaded; importing tf2onnx.convert sets TF_CPP_MIN_LOG_LEVEL
    for the whole process, which is put back here."""
    with env_set(TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL")):
        import tf2onnx
        import tf2onnx.convert  # noqa: F401  (loaded lazily otherwise, outside this scope)
    return tf2onnx


@contextlib.contextmanager
def seeded(seed: int, deterministic_ops: bool) -> Iterator[None]:
    """Keras's seeds (Python, numpy, TensorFlow) and, on request, deterministic ops.

    The Python and numpy generators and the op-determinism switch are restored on exit.
    Keras turns XLA off under op determinism; XLA's CPU kernels are deterministic
    themselves, so only the non-XLA path asks for it.
    """
    import keras
    import numpy as np
    from tensorflow.python.framework import config as tf_config

    py_state, np_state = random.getstate(), np.random.get_state()
    was_deterministic = tf_config.is_op_determinism_enabled()
    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf_config.enable_op_determinism()
    try:
        yield
    finally:
        if not was_deterministic:
            tf_config.disable_op_determinism()
        random.setstate(py_state)
        np.random.set_state(np_state)


def load_keras_model(model_path: Path):
    require_training_extra("Loading a Keras model")
    import keras

    from rnncli.model.layers import register_all

    register_all()  # the custom layers a file may name, from the registries
    try:
        return keras.models.load_model(model_path, compile=False)
    except Exception as exc:  # keras raises many types for a bad file
        raise ModelError(f"Cannot load {model_path} ({type(exc).__name__}): "
                         "retrain or re-export it.") from None


def check_fits(model, prep, model_path: Path, meta_path: Path) -> None:
    """Refuse a loaded Keras model that cannot read what its preprocessing (`prep`, read
    from `meta_path`) makes: rows of another width, or ids beyond its embedding. Such files
    come from copying one run's model or preprocessing.json over another's."""
    import keras

    shape = model.input_shape
    shape = shape[0] if isinstance(shape, list) else shape
    embeddings = [layer for layer in model.layers
                  if isinstance(layer, keras.layers.Embedding)]
    _check_shape(shape[1] if len(shape) == 2 else None,
                 embeddings[0].input_dim if embeddings else None, prep, model_path, meta_path)


def check_file_fits(model_path: Path, prep, meta_path: Path) -> None:
    """check_fits from the .keras file's own description (its config.json), before
    TensorFlow loads, so that a mismatch is refused at once; a file this cannot read is
    left to loading (and check_fits)."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(model_path) as archive:
            if archive.getinfo("config.json").file_size > 16 << 20:
                return  # no model of ours describes itself in 16 MB
            layers = json.loads(archive.read("config.json"))["config"]["layers"]
        inputs = [layer["config"]["batch_shape"] for layer in layers
                  if layer["class_name"] == "InputLayer"]
        rows = [layer["config"]["input_dim"] for layer in layers
                if layer["class_name"] == "Embedding"]
    except (OSError, zipfile.BadZipFile, KeyError, TypeError, ValueError, IndexError):
        return
    width = inputs[0][1] if len(inputs) == 1 and len(inputs[0]) == 2 else None
    _check_shape(width if isinstance(width, int) else None,
                 rows[0] if rows and isinstance(rows[0], int) else None, prep, model_path,
                 meta_path)


def _check_shape(width: int | None, rows: int | None, prep, model_path: Path,
                 meta_path: Path) -> None:
    """`width`: the model's input width (None: any, a masked model); `rows`: its
    embedding's."""
    fix = ("they come from different runs: retrain, or put back the preprocessing.json the "
           "model was trained with")
    if width is not None and width != prep.maxlen:
        raise ModelError(f"{meta_path} says maxlen {prep.maxlen}, {model_path} takes "
                         f"{width}: {fix}.")
    if rows is not None and rows < prep.num_words:
        raise ModelError(f"{meta_path} says num_words {prep.num_words:,}, {model_path}'s "
                         f"embedding has {rows:,} rows: {fix}.")
