"""What a run records as it goes: one typed state, and the tracker that fills it in.

    tracker = EpochTracker(RunState(epochs=10, monitor="val_accuracy", restore_best=True),
                           run=open_run(Path("artifacts"), False, False), patience=None,
                           reporter=None)
    tracker.run_begin(reviews=20_000, val_reviews=5_000, steps=625)
    model.fit(..., callbacks=[keras_callback(tracker)])   # or a custom loop calls it

The same tracker serves model.fit and the multi-worker loop, so history, best epoch,
checkpoints and stops mean the same whichever trained the model. After each finished epoch
the run folder holds its checkpoint, history.json/.csv, best.keras and model.keras (the
epoch the run keeps so far); after the first one, a new run is switched in from `.next/`.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from rnncli.config import run_files
from rnncli.fsutil import atomic_path
from rnncli.train import runs


class Reporter(Protocol):
    def run_begin(self, reviews: int, val_reviews: int, steps: int, epochs: int,
                  first_epoch: int) -> None: ...
    def epoch_begin(self, epoch: int, epochs: int, steps: int) -> None: ...
    def batch_end(self, step: int) -> None: ...
    def validation_begin(self) -> None: ...
    def epoch_end(self, epoch: int, epochs: int, logs: dict, seconds: float) -> None: ...


@dataclass
class RunState:
    """A run in progress: what the epoch tracker records and train() reads at the end."""

    epochs: int
    monitor: str  # the metric that defines the best epoch
    restore_best: bool  # the model is the best epoch's (else the last finished one's)
    history: list[dict] = field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    stale_epochs: int = 0  # finished since the best one (early stopping)
    kept_epoch: int | None = None
    kept_weights: list[np.ndarray] | None = None
    nan_epoch: int | None = None
    epoch: int = 0  # the one in progress, from 1

    def record(self, row: dict) -> bool:
        """Add a finished epoch's row; True when it is the new best."""
        epoch, value = row["epoch"], row.get(self.monitor)
        self.history = [h for h in self.history if h["epoch"] < epoch] + [row]
        sign = 1 if self.monitor == "val_loss" else -1
        improved = value is not None and (self.best is None or sign * value < sign * self.best)
        if improved:
            self.best, self.best_epoch, self.stale_epochs = value, epoch, 0
        else:
            self.stale_epochs += 1
        if improved or not self.restore_best:
            self.kept_epoch = epoch
        return improved


class EpochTracker:
    """Batch and epoch ends, the same under model.fit and the multi-worker loop: history,
    best epoch, checkpoints (only when given a run), NaN and early stops, progress."""

    def __init__(self, state: RunState, run: runs.RunFolder | None, patience: int | None,
                 reporter: Reporter | None):
        # `run` None: nothing is written (another worker is the chief, or a test).
        self.state, self.run, self.patience, self.reporter = state, run, patience, reporter
        self.steps = 0  # batches per epoch, set by whoever runs the epochs
        self.started = time.perf_counter()

    @property
    def folder(self) -> Path | None:
        return self.run.work if self.run else None

    def run_begin(self, reviews: int, val_reviews: int, steps: int, first_epoch: int = 0) -> None:
        """What the run is about to do, told before TensorFlow loads (it takes seconds)."""
        self.steps = steps
        if self.reporter and hasattr(self.reporter, "run_begin"):
            self.reporter.run_begin(reviews, val_reviews, steps, self.state.epochs, first_epoch)

    def epoch_begin(self, epoch: int) -> None:
        self.state.epoch, self.started = epoch, time.perf_counter()
        if self.reporter:
            self.reporter.epoch_begin(epoch, self.state.epochs, self.steps)

    def batch_end(self, step: int, loss: float | None) -> bool:
        """True when training must stop: the loss is no longer a number."""
        if loss is not None and not math.isfinite(float(loss)):
            self.state.nan_epoch = self.state.epoch
            return True
        if self.reporter:
            # Keras reports the last step a compiled call could have run (steps_per_execution
            # past the end of a short epoch), not the last one it ran.
            self.reporter.batch_end(min(step, self.steps) if self.steps else step)
        return False

    def validation_begin(self) -> None:
        if self.reporter:
            self.reporter.validation_begin()

    def epoch_end(self, epoch: int, logs: dict, model) -> bool:
        """Record the epoch and save its files; True when training must stop."""
        logs = {k: float(v) for k, v in logs.items()}
        seconds = time.perf_counter() - self.started
        if self.state.nan_epoch == epoch or not all(math.isfinite(v) for v in logs.values()):
            self.state.nan_epoch = epoch  # a stopped epoch is not a finished one
            return True
        improved = self.state.record({"epoch": epoch, **logs, "seconds": round(seconds, 3)})
        if self.state.kept_epoch == epoch:
            self.state.kept_weights = model.get_weights()
        if self.run:
            self._save(epoch, model, improved)
        if self.reporter:
            self.reporter.epoch_end(epoch, self.state.epochs, logs, seconds)
        return bool(self.patience) and self.state.stale_epochs >= self.patience

    def _save(self, epoch: int, model, improved: bool) -> None:
        folder, s = self.run.work, self.state
        # The checkpoint, best.keras, model.keras and history agree, and the run is switched
        # in whole.
        with runs.interrupts_held():
            checkpoint = runs.checkpoint_path(folder, epoch)
            with atomic_path(checkpoint) as tmp:
                model.save(tmp)
            runs.drop_checkpoints_before(folder, epoch)
            if improved:
                with atomic_path(folder / run_files.BEST) as tmp:
                    shutil.copyfile(checkpoint, tmp)
            if s.kept_epoch == epoch:  # the model so far, for evaluate during the run
                with atomic_path(folder / run_files.MODEL) as tmp:
                    shutil.copyfile(checkpoint, tmp)
            runs.write_history(folder, s.history, s.best_epoch, s.best)
            runs.switch_in(self.run)  # the first epoch of a new run: it replaces the old


def keras_callback(tracker: EpochTracker):
    """The tracker as a Keras callback, for model.fit."""
    import keras

    # Made here, not at module level: model.fit takes a subclass of Keras's Callback, and
    # keras may not be imported at module level (it costs seconds; a base install imports
    # this module).
    class TrackEpochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            tracker.epoch_begin(epoch + 1)

        def on_train_batch_end(self, batch, logs=None):
            if tracker.batch_end(batch + 1, (logs or {}).get("loss")):
                self.model.stop_training = True

        def on_test_begin(self, logs=None):
            tracker.validation_begin()

        def on_epoch_end(self, epoch, logs=None):
            if tracker.epoch_end(epoch + 1, logs or {}, self.model):
                self.model.stop_training = True

    return TrackEpochs()


def weights_fingerprint(weights: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for w in weights:
        digest.update(np.ascontiguousarray(w, np.float32).tobytes())
    return digest.hexdigest()[:16]
