"""Per-epoch training batches: crops, length buckets, distilled targets, masked-max models."""

import numpy as np
import pytest

from rnncli.text import tokenizer as text
from rnncli.train.batches import BatchPlan, crop, distilled, epoch_batches, pad_batch, real_rows


def _rows(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [np.concatenate([[text.START], rng.integers(3, 50, n)]).astype(np.int32)
            for n in lengths]


def test_real_rows_undo_pre_padding():
    rows = _rows([0, 3, 7])
    x = pad_batch(rows, 10)
    assert x.shape == (3, 10) and (x[0, :9] == 0).all()
    for got, want in zip(real_rows(x), rows):
        assert got.tolist() == want.tolist()


def test_crops_are_windows_of_the_words_with_the_start_marker():
    rows = _rows([200] * 400)
    plan = BatchPlan(batch_size=8, maxlen=500, crop_prob=0.5, crop_min=8, crop_max=20)
    out = crop(rows, plan, np.random.default_rng(1))
    cropped = [i for i, (a, b) in enumerate(zip(rows, out)) if len(a) != len(b)]
    assert 150 < len(cropped) < 250  # about half
    for i in cropped:
        window = out[i][1:].tolist()
        assert out[i][0] == text.START and 8 <= len(window) <= 20
        words = rows[i][1:].tolist()
        starts = [j for j in range(len(words)) if words[j : j + len(window)] == window]
        assert starts, "a crop is a contiguous window of the review"
    # Reviews shorter than the window are kept whole.
    short = crop(_rows([3] * 50), BatchPlan(8, 500, 1.0, 8, 20), np.random.default_rng(2))
    assert all(len(r) == 4 for r in short)


def test_crops_differ_between_epochs_and_repeat_with_the_seed():
    rows, y = _rows([100] * 64), np.zeros(64, np.float32)
    plan = BatchPlan(batch_size=16, maxlen=128, crop_prob=0.5, bucket=True)

    def epoch(seed, n):
        return epoch_batches(rows, y, plan, np.random.default_rng([seed, n]))

    a, b, again = epoch(1, 0), epoch(1, 1), epoch(1, 0)
    assert all((p[0] == q[0]).all() for p, q in zip(a, again))
    assert any(p[0].shape != q[0].shape or (p[0] != q[0]).any() for p, q in zip(a, b))


def test_buckets_cut_batches_and_keep_every_review_once():
    lengths = np.random.default_rng(3).integers(1, 300, 500)
    rows = _rows(lengths)
    y = np.arange(len(rows), dtype=np.float32)  # labels identify the reviews
    plan = BatchPlan(batch_size=32, maxlen=256, bucket=True)
    batches = epoch_batches(rows, y, plan, np.random.default_rng(0))
    seen = np.concatenate([b[1] for b in batches]).astype(int)
    assert sorted(seen.tolist()) == list(range(len(rows)))
    widths = [b[0].shape[1] for b in batches]
    assert all(w % 32 == 0 or w == 256 for w in widths) and max(widths[:1] + widths[2:]) == 256
    assert np.mean(widths) < 0.8 * 256  # similar lengths share a batch
    for x, ids in batches:
        for row, i in zip(x, ids.astype(int)):
            assert row[row != 0].tolist() == rows[i][-256:].tolist()


@pytest.mark.parametrize("lengths", [[20] * 64, list(range(1, 200, 3)) * 2])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_first_two_bucketed_batches_differ_in_width(lengths, seed):
    """Keras reads a dataset's shapes from its first two batches."""
    rows, y = _rows(lengths, seed), np.zeros(len(lengths), np.float32)
    plan = BatchPlan(batch_size=8, maxlen=300, crop_prob=0.5, bucket=True)
    batches = epoch_batches(rows, y, plan, np.random.default_rng(seed))
    assert batches[0][0].shape[1] != batches[1][0].shape[1]
    for x, _ in batches:
        assert all(row[row != 0].size <= 300 for row in x)
    val = epoch_batches(rows, y, BatchPlan(batch_size=8, maxlen=300, bucket=True), None,
                        shuffle=False)
    assert val[0][0].shape[1] != val[1][0].shape[1]


def test_without_buckets_batches_keep_full_width_and_order():
    rows, y = _rows([5, 50, 9]), np.array([0, 1, 0], np.float32)
    batches = epoch_batches(rows, y, BatchPlan(batch_size=2, maxlen=40), None, shuffle=False)
    assert [b[0].shape for b in batches] == [(2, 40), (1, 40)]
    assert np.concatenate([b[1] for b in batches]).tolist() == [0, 1, 0]


class _Teacher:
    def __init__(self, p):
        self.p, self.seen = p, []

    def predict_on_batch(self, x):
        self.seen.append(x)
        return np.full((len(x), 1), self.p, np.float32)


def test_distilled_targets_mix_the_teachers_mean_with_the_label():
    from rnncli.train.teachers import TeacherMix

    x = np.ones((4, 6), np.int32)
    y = np.array([1, 0, 1, 0], np.float32)
    t1, t2 = _Teacher(0.2), _Teacher(0.6)
    [(x_out, target)] = distilled([(x, y)], TeacherMix([t1, t2]), 0.7)
    assert x_out is x and t1.seen[0] is x and t2.seen[0] is x
    np.testing.assert_allclose(target, 0.7 * 0.4 + 0.3 * y, rtol=1e-6)


@pytest.mark.slow
def test_masked_max_model_output_does_not_depend_on_padding():
    pytest.importorskip("keras")
    from rnncli.config.settings import RunConfig, apply
    from rnncli.model.build import build_model

    cfg = apply(RunConfig(), {"cell": "gru", "bidirectional": True, "units": 3, "maxlen": 12,
                              "num_words": 30, "embedding_dim": 4, "pooling": "masked-max"})
    model = build_model(cfg)
    rows = _rows([2, 5, 10], seed=4)  # the longest, with its start marker, fills 11
    rows = [np.minimum(r, 29) for r in rows]
    full = model.predict(pad_batch(rows, 12), verbose=0)
    cut = model.predict(pad_batch(rows, 11), verbose=0)
    np.testing.assert_allclose(full, cut, atol=1e-6)
    alone = np.concatenate([model.predict(pad_batch([r], len(r)), verbose=0) for r in rows])
    np.testing.assert_allclose(full, alone, atol=1e-6)
