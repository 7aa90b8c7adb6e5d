"""Fit a model on a prepared dataset and write a complete, resumable run folder.

    result = train(resolve(preset="recipe"), home=data_home(), output=Path("artifacts"))

Run folder: model.keras (best validation epoch), best.keras (the checkpoint, kept current
during training), config.json, preprocessing.json, history.json/.csv, and `.backup/` while
a run is unfinished (what `--resume` continues from). Every file is written atomically.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rnncli import dataset, runs
from rnncli.config import RunConfig, bucket_for
from rnncli.errors import TrainingError, UsageError
from rnncli.fsutil import atomic_path, atomic_write_json, atomic_write_text, read_json
from rnncli.preprocessing import Preprocessing
from rnncli.runs import quiet_tensorflow


class Reporter(Protocol):
    def epoch_begin(self, epoch: int, epochs: int, steps: int) -> None: ...
    def batch_end(self, step: int) -> None: ...
    def epoch_end(self, epoch: int, epochs: int, logs: dict, seconds: float) -> None: ...


@dataclass
class TrainResult:
    output: Path
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0


def split_validation(x: np.ndarray, y: np.ndarray, share: float):
    """The last `share` of the rows is validation, as Keras's validation_split takes it."""
    n_val = max(1, int(round(len(x) * share)))
    if n_val >= len(x):
        raise UsageError(f"--validation-split {share} leaves no training review: lower it.")
    return (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])


def prepare_output(output: Path, overwrite: bool, resume: bool) -> None:
    if resume:
        if not (output / runs.CONFIG).exists():
            raise UsageError(f"Nothing to resume in {output}: start a run with `rnncli train`.")
        if not (output / runs.BACKUP).exists():
            raise UsageError(f"The run in {output} is complete: nothing to resume; "
                             "--overwrite starts it again.")
        return
    if (output / runs.CONFIG).exists() or any(output.glob("*.keras")):
        if not overwrite:
            raise UsageError(
                f"{output} already holds a run: pass --overwrite to replace it, --resume to "
                "continue it, or --output DIR for a new folder."
            )
        for name in runs.RUN_FILES:
            target = output / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    output.mkdir(parents=True, exist_ok=True)


def setup_tensorflow(seed: int, cpu_devices: int | None = None, deterministic: bool = True):
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    if cpu_devices and cpu_devices > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
        except RuntimeError:
            pass  # already initialised with its devices (a second run in one process)
    keras.utils.set_random_seed(seed)
    if deterministic:
        # Keras turns XLA off under op determinism; XLA's CPU kernels are deterministic
        # themselves, so op determinism is only needed on the non-XLA path.
        tf.config.experimental.enable_op_determinism()
    return tf


def make_strategy(tf, name: str):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    # Workers and this one's role come from TF_CONFIG, as tf.distribute documents.
    return tf.distribute.MultiWorkerMirroredStrategy()


def _callbacks(output: Path, cfg: RunConfig, reporter: Reporter | None, steps: int,
               history: list[dict], state: dict):
    import keras

    t = cfg.train
    sign = 1 if t.monitor == "val_loss" else -1

    class Track(keras.callbacks.Callback):
        """Keep best.keras and history current after every epoch, atomically."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            if reporter:
                reporter.epoch_begin(epoch + 1, t.epochs, steps)

        def on_train_batch_end(self, batch, logs=None):
            if reporter:
                reporter.batch_end(batch + 1)

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            seconds = time.perf_counter() - self.started
            row = {"epoch": epoch + 1, **logs, "seconds": round(seconds, 3)}
            if not all(math.isfinite(v) for v in logs.values()):
                state["nan_epoch"] = epoch + 1
                self.model.stop_training = True
                return
            history[:] = [h for h in history if h["epoch"] < epoch + 1] + [row]
            value = logs.get(t.monitor)
            if value is not None and (state.get("best") is None
                                      or sign * value < sign * state["best"]):
                state.update(best=value, best_epoch=epoch + 1)
                with atomic_path(output / runs.BEST) as tmp:
                    self.model.save(tmp)
            runs.write_history(output, history, state)
            if reporter:
                reporter.epoch_end(epoch + 1, t.epochs, logs, seconds)

    class StopOnNaN(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                state["nan_epoch"] = state.get("epoch", 0)
                self.model.stop_training = True

        def on_epoch_begin(self, epoch, logs=None):
            state["epoch"] = epoch + 1

    callbacks = [StopOnNaN(), Track(),
                 keras.callbacks.BackupAndRestore(str(output / runs.BACKUP))]
    if t.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=t.monitor, patience=t.early_stopping,
            mode="min" if t.monitor == "val_loss" else "max"))
    return callbacks


def load_teachers(folders: list[str], prep: Preprocessing) -> list:
    """Teacher models for distillation; each must read the student's ids the same way."""
    models = []
    for folder in folders:
        ref = runs.find_model(Path(folder))
        if ref.kind != "keras":
            raise UsageError(f"Teacher {folder} has no Keras model: give a run folder.")
        theirs = runs.keras_preprocessing(ref.path)
        if (theirs.vocabulary[: prep.num_words - 3] != prep.vocabulary
                or theirs.num_words < prep.num_words or theirs.maxlen != prep.maxlen):
            raise UsageError(f"Teacher {folder} reads reviews differently (vocabulary, "
                             "num_words or maxlen): train teachers on the same data settings.")
        model = runs.load_keras_model(ref.path)
        if model.get_layer("embedding").mask_zero is not True:
            raise UsageError(f"Teacher {folder} is not a masked-max model: distillation cuts "
                             "batches, which only masked models read exactly.")
        models.append(model)
    return models


def train(cfg: RunConfig, home: Path, output: Path, *, overwrite: bool = False,
          resume: bool = False, reporter: Reporter | None = None,
          cpu_devices: int | None = None) -> TrainResult:
    output = Path(output)
    prepare_output(output, overwrite, resume)
    if resume:
        cfg = RunConfig.from_dict(read_json(output / runs.CONFIG))
    d, t = cfg.data, cfg.train
    meta = dataset.read_meta(home)
    split = dataset.load_split(home, "train")
    x, y = dataset.load_encoded(split, d.num_words, d.maxlen, d.padding, d.truncating)
    if d.limit:
        x, y = x[: d.limit], y[: d.limit]
    (x_tr, y_tr), (x_val, y_val) = split_validation(x, y, d.validation_split)

    vocab = dataset.load_vocabulary(home).truncated(d.num_words)
    prep = Preprocessing(vocabulary=vocab.words, num_words=d.num_words, maxlen=d.maxlen,
                         padding=d.padding, truncating=d.truncating, source=meta["source"])
    atomic_write_json(output / runs.CONFIG, {**cfg.to_dict(), "dataset": {
        "source": meta["source"], "checksum": meta["checksum"],
        "tokenizer_version": meta["tokenizer_version"]}})
    atomic_write_text(output / runs.CONFIG_TOML, cfg.to_toml())
    atomic_write_json(output / runs.PREPROCESSING, prep.to_dict())

    jit = t.jit_compile and t.strategy == "default"
    tf = setup_tensorflow(t.seed, cpu_devices, deterministic=not jit)
    from rnncli.model import build_model, compile_model

    strategy = make_strategy(tf, t.strategy)
    with strategy.scope():
        model = build_model(cfg)
        # XLA and multi-step execution inside a multi-device strategy fail in TF 2.21's
        # MirroredStrategy (feeds go missing); one step per call is its supported path.
        compile_model(model, cfg, jit_compile=jit,
                      steps_per_execution=None if t.strategy == "default" else 1)

    history: list[dict]
    state: dict[str, Any]
    history, state = runs.read_history(output) if resume else ([], {})
    steps = math.ceil(len(x_tr) / t.batch_size)
    result = TrainResult(output=output)
    started = time.perf_counter()
    fit_extra: dict[str, Any] = {}
    bucket = bucket_for(cfg)
    if t.strategy == "default" and (t.crop_prob > 0 or bucket or t.teachers):
        from rnncli.batches import BatchPlan, keras_batches, real_rows

        plan = BatchPlan(t.batch_size, d.maxlen, t.crop_prob, t.crop_min, t.crop_max, bucket)
        teachers = load_teachers(t.teachers, prep)
        train_data = {"x": keras_batches(real_rows(x_tr), y_tr, plan, t.seed, teachers=teachers,
                                         distill_weight=t.distill_weight)}
        steps = len(train_data["x"])
        val_plan = BatchPlan(t.batch_size * max(1, 1024 // t.batch_size), d.maxlen,
                             bucket=bucket)
        fit_extra["validation_data"] = keras_batches(real_rows(x_val), y_val, val_plan, None,
                                                     shuffle=False)
    elif t.strategy == "default":
        train_data = {"x": x_tr, "y": y_tr, "batch_size": t.batch_size, "shuffle": True}
    else:
        # Replicas must get equal shares: a ragged last batch breaks the gradient all-reduce
        # of the embedding in TF 2.21, so the remainder (< 1 batch per epoch) is dropped.
        replicas = strategy.num_replicas_in_sync
        if t.batch_size % replicas:
            raise UsageError(f"--batch-size {t.batch_size} does not split over {replicas} "
                             f"devices: use a multiple of {replicas}.")
        steps = len(x_tr) // t.batch_size
        if steps == 0:
            raise UsageError(f"--batch-size {t.batch_size} is larger than the training set.")
        # Likewise every validation batch must split evenly: trim < `replicas` reviews.
        keep = len(x_val) - len(x_val) % replicas
        x_val, y_val = x_val[:keep], y_val[:keep]
        train_data = {"x": tf.data.Dataset.from_tensor_slices((x_tr, y_tr))
                      .shuffle(len(x_tr), seed=t.seed).batch(t.batch_size, drop_remainder=True)}
    try:
        fit_args = {"validation_data": (x_val, y_val),
                    "validation_batch_size": t.batch_size * max(1, 1024 // t.batch_size),
                    **fit_extra}
        if "validation_batch_size" in fit_args and fit_extra:
            del fit_args["validation_batch_size"]  # batches come from the dataset
        model.fit(**train_data, epochs=t.epochs, verbose=0, **fit_args,
                  callbacks=_callbacks(output, cfg, reporter, steps, history, state))
    except KeyboardInterrupt:
        result.interrupted = True
    result.seconds = time.perf_counter() - started
    result.history = history
    result.best_epoch, result.best = state.get("best_epoch"), {
        k: v for k, v in (history[state["best_epoch"] - 1] if state.get("best_epoch") else {}
                          ).items() if k != "epoch"}

    best_path = output / runs.BEST
    if state.get("nan_epoch"):
        shutil.rmtree(output / runs.BACKUP, ignore_errors=True)
        if best_path.exists():
            shutil.copyfile(best_path, output / runs.MODEL)
            raise TrainingError(
                f"Loss became NaN in epoch {state['nan_epoch']}: stopped; kept the model of "
                f"epoch {state['best_epoch']} in {output / runs.MODEL}. Lower --learning-rate "
                "or turn on --clipnorm.")
        raise TrainingError(
            f"Loss became NaN in epoch {state['nan_epoch']} before any epoch finished: no "
            "model saved. Lower --learning-rate or turn on --clipnorm.")
    if best_path.exists():
        # The best validation epoch is the model, not the last one.
        with atomic_path(output / runs.MODEL) as tmp:
            shutil.copyfile(best_path, tmp)
    if not result.interrupted:
        shutil.rmtree(output / runs.BACKUP, ignore_errors=True)
    atomic_write_text(output / runs.LAST_RUN, f"{time.time():.0f}\n")
    return result
