"""Training inputs, planned once for model.fit and the multi-worker loop: each epoch's
batches, the validation batches and the steps per epoch (numpy; Keras only to hand them over).

    inputs = plan_inputs(cfg, data, teacher=None)   # data: TrainingData
    inputs.epoch(0)        # [(x, y), ...] of the first epoch: fresh crops, buckets, order
    inputs.validation()    # [(x, y), ...] in order, the same every epoch
    inputs.steps           # batches per epoch
    model.fit(**fit_arguments(inputs, first_epoch=0), ...)   # the same, as Keras takes it

Crops replace a share of the reviews by a random window of their words, so the model also
learns from short text (what people type into `predict`). Buckets put reviews of similar
length in one batch and cut the batch to its longest review; that is exact only for models
that mask pad steps (pooling "masked-max"), so other models keep full-width batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from rnncli.config.settings import RunConfig, bucket_for
from rnncli.errors import UsageError
from rnncli.text import tokenizer as text

# Bucketed widths are rounded up to a multiple of this, so a compiled step is reused across
# batches instead of being built for every distinct length.
WIDTH_STEP = 32
# Reviews are sorted by length within windows of this many batches: similar lengths meet
# in a batch while the order of batches stays random.
SORT_WINDOW_BATCHES = 50
# Validation batches hold about this many reviews (a multiple of the batch size): they keep
# no gradients, so they can be larger than training batches.
VALIDATION_REVIEWS = 1024

Batches = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class BatchPlan:
    batch_size: int
    maxlen: int
    crop_prob: float = 0.0  # share of reviews replaced by a random window each epoch
    crop_min: int = 8  # shortest window, in words
    crop_max: int = 80  # longest window, in words
    bucket: bool = False  # cut each batch to its longest review (masked models only)

    @classmethod
    def for_training(cls, cfg: RunConfig, batch_size: int) -> BatchPlan:
        """The run's crops and buckets, for training batches of `batch_size`."""
        t = cfg.train
        return cls(batch_size, cfg.data.maxlen, t.crop_prob, t.crop_min, t.crop_max,
                   bucket_for(cfg))

    @classmethod
    def for_validation(cls, cfg: RunConfig, batch_size: int) -> BatchPlan:
        """No crops, but the run's buckets."""
        return cls(batch_size, cfg.data.maxlen, bucket=bucket_for(cfg))


@dataclass
class TrainingData:
    """Padded id rows ('pre' or 'post' as configured) and labels of both shares; the movie
    of each validation review where known (store.training_shares' groups), for the head's
    folds."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    groups_val: np.ndarray | None = None


def real_rows(x: np.ndarray) -> list[np.ndarray]:
    """The non-pad ids of each row of a padded matrix (start marker included)."""
    return [row[row != text.PAD] for row in x]


def crop(rows: list[np.ndarray], plan: BatchPlan, rng: np.random.Generator) -> list[np.ndarray]:
    """`rows` with a share `crop_prob` replaced by [start] + a random window of their words."""
    out = list(rows)
    chosen = np.flatnonzero(rng.random(len(rows)) < plan.crop_prob)
    sizes = rng.integers(plan.crop_min, plan.crop_max + 1, size=len(chosen))
    for i, k in zip(chosen.tolist(), sizes.tolist()):
        row = rows[i]
        words = row[1:] if len(row) and row[0] == text.START else row
        if len(words) > k:
            at = int(rng.integers(0, len(words) - k + 1))
            words = words[at : at + k]
        out[i] = np.concatenate([[text.START], words]).astype(np.int32)
    return out


def pad_batch(rows: list[np.ndarray], width: int) -> np.ndarray:
    """'pre'-padded int32 matrix; rows longer than `width` keep their last ids."""
    x = np.zeros((len(rows), width), np.int32)
    for r, row in zip(x, rows):
        row = row[-width:]
        if len(row):
            r[width - len(row):] = row
    return x


def batch_width(lengths: np.ndarray, plan: BatchPlan) -> int:
    if not plan.bucket:
        return plan.maxlen
    longest = int(lengths.max()) if len(lengths) else 1
    return min(plan.maxlen, -(-longest // WIDTH_STEP) * WIDTH_STEP)


def epoch_batches(rows: list[np.ndarray], y: np.ndarray, plan: BatchPlan,
                  rng: np.random.Generator | None, shuffle: bool = True) -> Batches:
    """One epoch of (x, y) batches; without `shuffle` the order is kept (validation)."""
    if rng is not None and plan.crop_prob > 0:
        rows = crop(rows, plan, rng)
    lengths = np.fromiter((min(len(r), plan.maxlen) for r in rows), np.int64, len(rows))
    order = rng.permutation(len(rows)) if shuffle and rng is not None else np.arange(len(rows))
    if plan.bucket:
        window = plan.batch_size * SORT_WINDOW_BATCHES
        order = np.concatenate([
            chunk[np.argsort(lengths[chunk], kind="stable")]
            for chunk in np.array_split(order, max(1, -(-len(order) // window)))
        ]) if len(order) else order
    groups = [order[i : i + plan.batch_size] for i in range(0, len(order), plan.batch_size)]
    if plan.bucket and shuffle and rng is not None:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    batches = [(pad_batch([rows[i] for i in g], batch_width(lengths[g], plan)),
                y[g].astype(np.float32)) for g in groups]
    if plan.bucket and len(batches) > 1 and batches[0][0].shape[1] == batches[1][0].shape[1]:
        # Keras fixes a dataset's shapes from its first two batches: two of one width would
        # make every later width an error. Extra leading pads change nothing for the masked
        # models that buckets are for.
        x, y1 = batches[1]
        batches[1] = (np.pad(x, ((0, 0), (WIDTH_STEP, 0))), y1)
    return batches


def distilled(batches: Batches, teacher, weight: float) -> Batches:
    """Targets `weight` x teacher probability on the batch as cropped + the rest x label.

    Computed when an epoch's batches are made (between epochs, outside the input pipeline),
    so the teacher sees exactly the input the student is trained on.
    """
    out = []
    for x, y in batches:
        p = np.asarray(teacher.predict_on_batch(x), np.float32).reshape(-1)
        out.append((x, (weight * p + (1 - weight) * y).astype(np.float32)))
    return out


# Who makes a run's training batches.
EPOCHS = "epochs"  # TrainingInputs.epoch, anew every epoch (crops, buckets, distillation)
KERAS = "keras"  # model.fit, shuffling the padded rows itself (one device, none of those)
TF_DATA = "tf.data"  # a shuffled tf.data pipeline that drops a ragged last batch (mirrored)


@dataclass
class TrainingInputs:
    """One run's training and validation input, decided once from its settings: model.fit
    (loop.py) and the multi-worker loop (distributed.py) both take theirs from here, so one
    seed gives the same batches in the same order whichever trains the model.

    epoch() gives the batches each epoch trains on where `feed` is EPOCHS; the KERAS and
    TF_DATA feeds hand the rows over to be batched alike but shuffled their own way.
    validation() is what every feed validates on.
    """

    data: TrainingData  # under mirrored, validation trimmed to split evenly over replicas
    plan: BatchPlan  # training batches: size, crops, buckets
    val_plan: BatchPlan  # validation batches: larger, no crops, the same buckets
    seed: int  # with the epoch's number, seeds its crops and order
    feed: str = EPOCHS  # EPOCHS, KERAS or TF_DATA
    teacher: object = None  # distils the targets: anything with predict_on_batch
    distill_weight: float = 0.0

    @property
    def repads(self) -> bool:
        """Whether batches are padded again from each review's words (crops, buckets and a
        teacher's targets need that); else the padded rows are batched as they are."""
        p = self.plan
        return p.crop_prob > 0 or p.bucket or self.teacher is not None

    @property
    def steps(self) -> int:
        """Batches per epoch."""
        n, size = len(self.data.y), self.plan.batch_size
        return n // size if self.feed == TF_DATA else -(-n // size)

    @property
    def width(self) -> int | None:
        """The batches' width; None when buckets cut them to their longest review."""
        return None if self.plan.bucket else self.plan.maxlen

    @cached_property
    def rows(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(training, validation) rows, as epoch_batches takes them."""
        d = self.data
        if self.repads:
            return real_rows(d.x), real_rows(d.x_val)
        return list(d.x), list(d.x_val)  # full width: batched as they are, padding side kept

    def epoch(self, epoch: int) -> Batches:
        """The batches of epoch `epoch` (from 0): the same on every worker and every call."""
        batches = epoch_batches(self.rows[0], self.data.y, self.plan,
                                np.random.default_rng([self.seed, epoch]))
        if self.teacher is not None:
            batches = distilled(batches, self.teacher, self.distill_weight)
        return batches

    def validation(self) -> Batches:
        """The validation batches, in order."""
        return epoch_batches(self.rows[1], self.data.y_val, self.val_plan, None, shuffle=False)


def plan_inputs(cfg: RunConfig, data: TrainingData, teacher=None,
                replicas: int = 1) -> TrainingInputs:
    """The run's inputs. `teacher`: distils the targets (one device only); `replicas`: the
    devices of a mirrored strategy, which each take an equal share of every batch."""
    t, maxlen = cfg.train, cfg.data.maxlen
    val_size = t.batch_size * max(1, VALIDATION_REVIEWS // t.batch_size)
    if t.strategy == "mirrored":
        # Replicas must get equal shares: a ragged last batch breaks the gradient
        # all-reduce of the embedding in TF 2.21, so the remainder (< 1 batch per epoch) is
        # dropped. This path has no crops or buckets.
        if t.batch_size % replicas:
            raise UsageError(f"--batch-size {t.batch_size} does not split over {replicas} "
                             f"devices: use a multiple of {replicas}.")
        if len(data.x) < t.batch_size:
            raise UsageError(f"--batch-size {t.batch_size} is larger than the training set.")
        # Likewise every validation batch must split evenly: trim < `replicas` reviews.
        keep = len(data.x_val) - len(data.x_val) % replicas
        data = TrainingData(data.x, data.y, data.x_val[:keep], data.y_val[:keep],
                            None if data.groups_val is None else data.groups_val[:keep])
        return TrainingInputs(data, BatchPlan(t.batch_size, maxlen), BatchPlan(val_size, maxlen),
                              t.seed, TF_DATA)
    inputs = TrainingInputs(data, BatchPlan.for_training(cfg, t.batch_size),
                            BatchPlan.for_validation(cfg, val_size), t.seed, EPOCHS, teacher,
                            t.distill_weight)
    if t.strategy == "default" and not inputs.repads:
        inputs.feed = KERAS  # model.fit batches and shuffles the arrays, no Python per batch
    return inputs


def fit_arguments(inputs: TrainingInputs, first_epoch: int = 0) -> dict:
    """model.fit's data arguments for `inputs`. `first_epoch`: the epochs already done, so a
    resumed run sees the batches it would have."""
    d, size, val_size = inputs.data, inputs.plan.batch_size, inputs.val_plan.batch_size
    if inputs.feed == KERAS:
        return {"x": d.x, "y": d.y, "batch_size": size, "shuffle": True,
                "validation_data": (d.x_val, d.y_val), "validation_batch_size": val_size}
    if inputs.feed == TF_DATA:
        import tensorflow as tf

        return {"x": (tf.data.Dataset.from_tensor_slices((d.x, d.y))
                      .shuffle(len(d.x), seed=inputs.seed)
                      .batch(size, drop_remainder=True)),
                "validation_data": (d.x_val, d.y_val), "validation_batch_size": val_size}
    train, validation = keras_epochs(inputs.epoch, first_epoch), inputs.validation()
    return {"x": train, "validation_data": keras_epochs(lambda _: validation, None)}


def keras_epochs(make: Callable[[int | None], Batches], epoch: int | None):
    """A keras PyDataset over `make(epoch)`, made anew for the next epoch after each one;
    `epoch` None: the same batches every epoch."""
    import keras

    # Made here, not at module level: Keras takes per-epoch batches only from a subclass of
    # its PyDataset, and keras may not be imported at module level (it costs seconds; a base
    # install imports this module).
    class EpochBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch, self.batches = epoch, make(epoch)

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            return self.batches[index]

        def on_epoch_end(self):
            if self.epoch is not None:
                self.epoch += 1
                self.batches = make(self.epoch)

    return EpochBatches()
