"""Training batches made fresh each epoch: random-window crops and length buckets (numpy).

    batches = epoch_batches(rows, y, plan, rng)   # [(x, y), ...] for one epoch

Crops replace a share of the reviews by a random window of their words, so the model also
learns from short text (what people type into `predict`). Buckets put reviews of similar
length in one batch and cut the batch to its longest review; that is exact only for models
that mask pad steps (pooling "masked-max"), so other models keep full-width batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnncli.config.settings import RunConfig, bucket_for
from rnncli.text import tokenizer as text

# Bucketed widths are rounded up to a multiple of this, so a compiled step is reused across
# batches instead of being built for every distinct length.
WIDTH_STEP = 32
# Reviews are sorted by length within windows of this many batches: similar lengths meet
# in a batch while the order of batches stays random.
SORT_WINDOW_BATCHES = 50


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
                  rng: np.random.Generator | None, shuffle: bool = True
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
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


def distilled(batches: list[tuple[np.ndarray, np.ndarray]], teacher, weight: float
              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Targets `weight` x teacher probability on the batch as cropped + the rest x label.

    Computed when an epoch's batches are made (between epochs, outside the input pipeline),
    so the teacher sees exactly the input the student is trained on.
    """
    out = []
    for x, y in batches:
        p = np.asarray(teacher.predict_on_batch(x), np.float32).reshape(-1)
        out.append((x, (weight * p + (1 - weight) * y).astype(np.float32)))
    return out


def keras_batches(rows: list[np.ndarray], y: np.ndarray, plan: BatchPlan, seed: int | None,
                  shuffle: bool = True, teacher=None,
                  distill_weight: float = 0.0, first_epoch: int = 0):
    """A keras PyDataset over epoch_batches, made anew after every epoch.

    `seed` None means no randomness at all (validation: no crops, fixed order). With
    a `teacher` (anything with predict_on_batch that takes any width: masked Keras models,
    rnncli.train.teachers.TeacherMix), targets are distilled.
    `first_epoch`: the epochs already done, so a resumed run sees the batches it would have.
    """
    import keras

    class EpochBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = first_epoch
            self._make()

        def _make(self):
            rng = None if seed is None else np.random.default_rng([seed, self.epoch])
            self.batches = epoch_batches(rows, y, plan, rng, shuffle)
            if teacher is not None:
                self.batches = distilled(self.batches, teacher, distill_weight)

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            return self.batches[index]

        def on_epoch_end(self):
            if seed is not None:
                self.epoch += 1
                self._make()

    return EpochBatches()
