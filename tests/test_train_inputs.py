"""One builder plans a run's inputs (batches.plan_inputs): model.fit and the multi-worker loop
get the same batches, validation batches and steps from it, and a seed repeats them."""

import numpy as np
import pytest

from rnncli.config.settings import resolve
from rnncli.errors import UsageError
from rnncli.train.batches import (
    EPOCHS,
    KERAS,
    TF_DATA,
    TrainingData,
    fit_arguments,
    pad_batch,
    plan_inputs,
)
from rnncli.train.tracking import RunState

MAXLEN = 40
CROPS = {"crop_prob": 0.5, "crop_min": 2, "crop_max": 6}
MASKED = {"pooling": "masked-max", "cell": "gru"}  # buckets on by default
# Settings whose batches the builder makes anew each epoch, on one device and on many.
REPADDED = {"crops": CROPS, "buckets": MASKED, "crops+buckets": {**CROPS, **MASKED},
            "post-padded crops": {**CROPS, "padding": "post"}}


def data(n=70, n_val=13, padding="pre", seed=0) -> TrainingData:
    rng = np.random.default_rng(seed)
    rows = [np.concatenate([[1], rng.integers(3, 30, k)]).astype(np.int32)
            for k in rng.integers(1, MAXLEN, n + n_val)]
    x = pad_batch(rows, MAXLEN)
    if padding == "post":  # the same ids, pads after them
        x = np.stack([np.roll(r, -int((r == 0).sum())) for r in x])
    y = rng.integers(0, 2, n + n_val).astype(np.float32)
    return TrainingData(x[:n], y[:n], x[n:], y[n:])


def cfg(strategy="default", **settings):
    return resolve(None, None, {"maxlen": MAXLEN, "num_words": 30, "batch_size": 8,
                                "seed": 5, "strategy": strategy, **settings})


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        xa.shape == xb.shape and (xa == xb).all() and (ya == yb).all()
        for (xa, ya), (xb, yb) in zip(a, b))


@pytest.mark.parametrize("settings", REPADDED.values(), ids=REPADDED)
def test_model_fit_and_the_multi_worker_loop_get_the_same_batches(settings):
    d = data(padding=settings.get("padding", "pre"))
    one = plan_inputs(cfg(**settings), d)
    workers = plan_inputs(cfg("multi-worker", **settings), d)
    assert one.feed == workers.feed == EPOCHS
    assert one.steps == workers.steps == 9 and one.width == workers.width
    for epoch in range(3):
        assert same(one.epoch(epoch), workers.epoch(epoch))
        assert len(one.epoch(epoch)) == one.steps
    assert same(one.validation(), workers.validation())
    assert [len(y) for _, y in one.validation()] == [13]


@pytest.mark.parametrize("settings", REPADDED.values(), ids=REPADDED)
def test_a_seed_repeats_every_epochs_batches_and_another_changes_them(settings):
    d = data(padding=settings.get("padding", "pre"))
    first, again = plan_inputs(cfg(**settings), d), plan_inputs(cfg(**settings), d)
    other = plan_inputs(cfg(**settings, seed=6), d)
    for epoch in range(3):
        assert same(first.epoch(epoch), again.epoch(epoch))
        assert not same(first.epoch(epoch), other.epoch(epoch))
    assert not same(first.epoch(0), first.epoch(1))
    assert same(first.validation(), other.validation())  # in order, no crops
    seen = np.concatenate([y for _, y in first.epoch(0)])
    assert sorted(seen.tolist()) == sorted(d.y.tolist())


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_without_crops_or_buckets_the_padded_rows_are_batched_as_they_are(padding):
    d = data(padding=padding)
    one, workers = plan_inputs(cfg(padding=padding), d), plan_inputs(
        cfg("multi-worker", padding=padding), d)
    assert one.feed == KERAS and workers.feed == EPOCHS and not workers.repads
    order = np.random.default_rng([5, 2]).permutation(len(d.x))
    want = [(d.x[g], d.y[g]) for g in np.array_split(order, range(8, len(order), 8))]
    assert same(workers.epoch(2), want)
    assert same(one.validation(), [(d.x_val, d.y_val)])
    assert one.steps == workers.steps == 9 and workers.width == MAXLEN
    args = fit_arguments(one)
    assert args["x"] is d.x and args["batch_size"] == 8 and args["shuffle"]
    assert args["validation_batch_size"] == 1024


def test_mirrored_replicas_get_equal_shares():
    d = data()
    inputs = plan_inputs(cfg("mirrored", **CROPS), d, replicas=2)
    assert inputs.feed == TF_DATA and not inputs.repads  # no crops on this path
    assert inputs.steps == 70 // 8 and len(inputs.data.y_val) == 12
    with pytest.raises(UsageError, match="does not split over 3 devices"):
        plan_inputs(cfg("mirrored"), d, replicas=3)
    with pytest.raises(UsageError, match="larger than the training set"):
        plan_inputs(cfg("mirrored", batch_size=80), d, replicas=2)


class _Teacher:
    def predict_on_batch(self, x):
        return np.full((len(x), 1), 0.25, np.float32)


def test_a_teachers_targets_are_mixed_into_training_batches_only():
    d = data()
    plain = plan_inputs(cfg(), d)
    taught = plan_inputs(cfg(distill_weight=0.5), d, teacher=_Teacher())
    assert taught.feed == EPOCHS and taught.repads
    for (x, y), (tx, ty) in zip(plain.epoch(1), taught.epoch(1)):
        assert (x == tx).all()
        np.testing.assert_allclose(ty, 0.5 * 0.25 + 0.5 * y)
    assert same(plain.validation(), taught.validation())


def test_the_run_result_is_made_from_the_state():
    from pathlib import Path

    from rnncli.train.distributed import WorkerRole
    from rnncli.train.loop import TrainResult
    from rnncli.train.tracking import weights_fingerprint

    state = RunState(epochs=3, monitor="val_accuracy", restore_best=True)
    for epoch, acc in ((1, 0.5), (2, 0.75), (3, 0.6)):
        state.record({"epoch": epoch, "loss": 1.0 / epoch, "val_accuracy": acc})
    state.kept_weights = [np.ones(3, np.float32)]
    result = TrainResult.of_run("run", WorkerRole(0, 1, True), state, model=None,
                                interrupted=True, resumable=False, seconds=1.5, head=None)
    assert result.output == Path("run") and result.best_epoch == result.kept_epoch == 2
    assert result.best == {"loss": 0.5, "val_accuracy": 0.75}
    assert result.history == state.history and result.interrupted and not result.resumable
    assert result.fingerprint == weights_fingerprint(state.kept_weights)


@pytest.mark.slow
@pytest.mark.parametrize("first_epoch", [0, 2])
def test_model_fit_reads_the_planned_batches_epoch_after_epoch(first_epoch):
    """What Keras iterates is what the multi-worker loop runs, from a resumed epoch on."""
    pytest.importorskip("keras")
    d = data()
    settings = {**CROPS, **MASKED}
    args = fit_arguments(plan_inputs(cfg(**settings), d), first_epoch)
    workers = plan_inputs(cfg("multi-worker", **settings), d)
    train, val = args["x"], args["validation_data"]
    for epoch in range(first_epoch, first_epoch + 3):
        assert same([train[i] for i in range(len(train))], workers.epoch(epoch))
        assert same([val[i] for i in range(len(val))], workers.validation())
        train.on_epoch_end()
        val.on_epoch_end()
