"""The epoch tracker and its typed state, without TensorFlow: best epoch, what the model keeps,
early stopping, NaN stops and the steps the display is given."""

import math

import numpy as np
import pytest

from rnncli.train.tracking import EpochTracker, RunState


class FakeModel:
    def __init__(self):
        self.version = 0

    def get_weights(self):
        return [np.full(2, self.version, np.float32)]


class Recorder:
    def __init__(self):
        self.steps, self.lines = [], []

    def epoch_begin(self, epoch, epochs, steps):
        pass

    def batch_end(self, step):
        self.steps.append(step)

    def validation_begin(self):
        pass

    def epoch_end(self, epoch, epochs, logs, seconds):
        self.lines.append(epoch)


def run_epochs(tracker, model, val_accuracies):
    stopped_at = None
    for epoch, acc in enumerate(val_accuracies, 1):
        model.version = epoch
        tracker.epoch_begin(epoch)
        if tracker.epoch_end(epoch, {"loss": 0.5, "val_accuracy": acc}, model):
            stopped_at = epoch
            break
    return stopped_at


@pytest.mark.parametrize("restore_best, kept", [(True, 2), (False, 4)])
def test_the_model_keeps_the_best_or_the_last_epoch(restore_best, kept):
    state = RunState(epochs=4, monitor="val_accuracy", restore_best=restore_best)
    tracker = EpochTracker(state, run=None, patience=None, reporter=None)
    assert run_epochs(tracker, FakeModel(), [0.6, 0.8, 0.8, 0.7]) is None
    assert (state.best_epoch, state.best) == (2, 0.8), "a tie is not an improvement"
    assert state.kept_epoch == kept and state.kept_weights[0][0] == kept
    assert [h["epoch"] for h in state.history] == [1, 2, 3, 4]


def test_early_stopping_counts_epochs_since_the_best():
    state = RunState(epochs=9, monitor="val_loss", restore_best=True)
    tracker = EpochTracker(state, run=None, patience=2, reporter=None)
    model = FakeModel()
    losses = [0.9, 0.7, 0.8, 0.75, 0.6]
    stopped = None
    for epoch, loss in enumerate(losses, 1):
        tracker.epoch_begin(epoch)
        if tracker.epoch_end(epoch, {"loss": 0.1, "val_loss": loss}, model):
            stopped = epoch
            break
    assert stopped == 4 and state.best_epoch == 2


def test_a_nan_batch_stops_and_its_epoch_is_not_recorded():
    reporter = Recorder()
    state = RunState(epochs=3, monitor="val_accuracy", restore_best=True)
    tracker = EpochTracker(state, run=None, patience=None, reporter=reporter)
    tracker.steps = 8
    model = FakeModel()
    run_epochs(tracker, model, [0.7])
    tracker.epoch_begin(2)
    assert tracker.batch_end(25, 0.4) is False
    assert reporter.steps == [8], "never past the epoch's steps"
    assert tracker.batch_end(26, math.nan) is True and state.nan_epoch == 2
    # Keras still ends the stopped epoch, with metrics that look fine.
    assert tracker.epoch_end(2, {"loss": 0.4, "val_accuracy": 0.9}, model) is True
    assert [h["epoch"] for h in state.history] == [1] and state.kept_epoch == 1
    assert reporter.lines == [1]


def test_replaying_a_history_restores_best_and_patience():
    state = RunState(epochs=5, monitor="val_accuracy", restore_best=True)
    for epoch, acc in enumerate([0.6, 0.9, 0.7], 1):
        state.record({"epoch": epoch, "val_accuracy": acc})
    assert (state.best_epoch, state.stale_epochs, state.kept_epoch) == (2, 1, 2)
    state.record({"epoch": 3, "val_accuracy": 0.95})  # an epoch run again replaces its row
    assert [h["epoch"] for h in state.history] == [1, 2, 3] and state.best_epoch == 3
