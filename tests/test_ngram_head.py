"""The n-gram head: its features against scikit-learn's TF-IDF, its fit, the weighing of its
logit against the network's, and its Keras layer against the numpy definition."""

import numpy as np
import pytest
from conftest import ORDER_NUM_WORDS, ORDER_WORDS, word_order_rows

from rnncli.model.ngram import BUCKETS, NgramHead, key_counts, row_keys
from rnncli.text import tokenizer as text
from rnncli.train.head import fit_head, stack_weights

pytest.importorskip("sklearn")
NUM_WORDS = ORDER_NUM_WORDS
A, B = ORDER_WORDS


def test_keys_are_words_then_hashed_pairs_without_pads_or_the_start_marker():
    keys = row_keys(np.array([0, 0, text.START, 5, 6, 5], np.int32), NUM_WORDS)
    pair = [NUM_WORDS + (5 * NUM_WORDS + 6) % BUCKETS, NUM_WORDS + (6 * NUM_WORDS + 5) % BUCKETS]
    assert keys.tolist() == [5, 6, 5, *pair]
    assert row_keys(np.array([0, text.START], np.int32), NUM_WORDS).tolist() == []


def test_order_3_adds_each_triple_hashed_and_exact():
    row = np.array([0, text.START, 5, 6, 5, 7], np.int32)
    n = NUM_WORDS
    triples = [(5 * n + 6) * n + 5, (6 * n + 5) * n + 7]
    hashed = row_keys(row, n, order=3)
    assert hashed[:-2].tolist() == row_keys(row, n).tolist()  # words and pairs first
    assert hashed[-2:].tolist() == [n + t % BUCKETS for t in triples]
    exact = row_keys(row, n, keys="exact", order=3)
    assert exact[-2:].tolist() == [n * n + t for t in triples]
    # Exact triples start above every pair (a * n + b < n * n), so no two n-grams share a key.
    assert exact[:-2].max() < n * n <= exact[-2:].min()
    assert len(set(exact.tolist())) == 8  # 3 words, 3 pairs, 2 triples
    # Fewer than 3 words: no triple.
    assert row_keys(np.array([text.START, 5, 6], np.int32), n, order=3).tolist() == \
        row_keys(np.array([text.START, 5, 6], np.int32), n).tolist()


def test_features_are_scikit_learns_tfidf():
    """Sublinear counts, smoothed idf, unit rows: TfidfTransformer's exact numbers."""
    from sklearn.feature_extraction.text import TfidfTransformer

    from rnncli.model.ngram import tfidf

    rows, _ = word_order_rows(50, seed=3)
    counts = key_counts(rows, NUM_WORDS)
    used = np.unique(counts.indices)
    reference = TfidfTransformer(sublinear_tf=True).fit(counts[:, used])
    idf = np.zeros(counts.shape[1])
    idf[used] = reference.idf_
    np.testing.assert_allclose(tfidf(counts, idf)[:, used].toarray(),
                               reference.transform(counts[:, used]).toarray(), atol=1e-12)


def test_word_order_is_learned_padding_and_rare_keys_do_not_count():
    rows, y = word_order_rows(400, seed=0)
    rows.append(np.array([text.START, 3, 4], np.int32))  # words 3 and 4: this review only
    y = np.append(y, 1.0)
    head = fit_head(text.pad_sequences(rows, 16, "pre", "pre"), y, NUM_WORDS, seed=0)
    test_rows, test_y = word_order_rows(100, seed=1)
    z = head.logits(test_rows)
    # Only the pairs decide: a model of word counts alone would be at chance.
    assert ((z > 0) == (test_y > 0.5)).mean() > 0.95
    np.testing.assert_allclose(head.logits(text.pad_sequences(test_rows, 16, "post", "post")),
                               z, rtol=1e-9)
    once = NUM_WORDS + (3 * NUM_WORDS + 4) % BUCKETS
    assert head.idf[[3, 4, once]].tolist() == [0, 0, 0]
    assert head.idf[A] > 0 and head.idf[: text.OOV].max() == 0


def test_fit_head_takes_the_weighting_or_the_given_c_and_window_weight():
    """C and the windows' weight default to the weighting's entry; given, they are the
    regression's (what benchmarks/bench_head.py varies)."""
    from rnncli.model.ngram import WEIGHTINGS, NgramModel
    from rnncli.train.batches import BatchPlan, crop, real_rows
    from rnncli.train.head import CROP

    rows, y = word_order_rows(150, seed=4)
    x = text.pad_sequences(rows, 16, "pre", "pre")
    entry = WEIGHTINGS["nb"]
    default = fit_head(x, y, NUM_WORDS, seed=0, windows=2, buckets=1009)
    same = fit_head(x, y, NUM_WORDS, seed=0, windows=2, buckets=1009, C=entry.C,
                    window_weight=entry.window_weight)
    np.testing.assert_array_equal(default.weights, same.weights)
    other = fit_head(x, y, NUM_WORDS, seed=0, windows=2, buckets=1009, C=0.5,
                     window_weight=1.0)
    rng, plan = np.random.default_rng(0), BatchPlan(1, 16, 1.0, *CROP)
    real = real_rows(x)
    extra = [w for _ in range(2) for w in crop(real, plan, rng)]
    expected = NgramModel(NUM_WORDS, order=3, C=0.5, max_iter=3000, weighting="nb",
                          buckets=1009).fit(real, y, extra, np.tile(y, 2), 1.0).head()
    np.testing.assert_allclose(other.weights, expected.weights, rtol=1e-6)
    assert np.abs(other.weights - default.weights).max() > 1e-3


def test_stack_weights_recover_how_two_logits_combine():
    rng = np.random.default_rng(0)
    net, lin = rng.normal(0, 2, 20000), rng.normal(0, 2, 20000)
    truth = 0.5 * net + 1.5 * lin - 0.3
    y = (rng.random(20000) < 1 / (1 + np.exp(-truth))).astype(np.float32)
    a, b, c = stack_weights(net, lin, y)
    assert abs(a - 0.5) < 0.08 and abs(b - 1.5) < 0.15 and abs(c + 0.3) < 0.08


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
@pytest.mark.parametrize("buckets, order", [(BUCKETS, 2), (BUCKETS, 3), (1009, 3)])
def test_keras_layer_computes_the_numpy_head(buckets, order):
    """Repeated words, pairs and triples across pads, rows with no key, either padding side,
    the default table and a small one (triples collide in it)."""
    from rnncli.model import runtime as tf_runtime
    from rnncli.model.layers import ngram_layer

    tf_runtime.import_tensorflow()
    rng = np.random.default_rng(1)
    size = NUM_WORDS + buckets
    head = NgramHead(rng.normal(0, 1, size).astype(np.float32),
                     rng.uniform(1, 5, size).astype(np.float32), 0.0, NUM_WORDS, order)
    head.idf[: text.OOV] = 0
    layer = ngram_layer()(NUM_WORDS, buckets, order)
    layer.build((None, None))
    layer.set_weights([head.weights, head.idf])
    rows = [np.array([text.START, *rng.integers(2, 9, n)], np.int32) for n in (0, 1, 5, 11)]
    rows.append(np.array([text.START, 7, 7, 7, 7, 8, 7, 8], np.int32))
    for side in ("pre", "post"):
        x = text.pad_sequences(rows, 12, side, side)
        got = np.asarray(layer(x)).ravel()
        np.testing.assert_allclose(got, head.logits(x), atol=2e-5)
    assert got[0] == 0.0  # a review of no word has no key
    pairs_only = NgramHead(head.weights, head.idf, 0.0, NUM_WORDS, 2).logits(x)
    assert bool(np.abs(got - pairs_only).max() > 1e-3) is (order == 3)  # the triples count


def test_the_layer_keeps_its_order_and_a_config_without_one_is_pairs():
    """A head's order is saved with the model; a file from before triples reads as 2."""
    from rnncli.model import runtime as tf_runtime
    from rnncli.model.layers import ngram_layer

    tf_runtime.import_tensorflow()
    cls = ngram_layer()
    config = cls(NUM_WORDS, 101, 3).get_config()
    assert (config["order"], cls.from_config(config).order) == (3, 3)
    config = cls(NUM_WORDS, 101, 2).get_config()
    assert "order" not in config  # as files made before triples
    assert cls.from_config(config).order == 2


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
@pytest.mark.parametrize("pooling, padding", [("masked-max", "pre"), ("last", "post")])
def test_the_joined_model_computes_the_weighed_sum_of_both_logits(pooling, padding):
    """a x network logit + b x head logit + c, folded into the dense and head weights, for a
    masked model (validation batches cut to their longest) and a full-width one."""
    from rnncli.config.settings import RunConfig, apply
    from rnncli.model import runtime as tf_runtime
    from rnncli.model.build import build_model
    from rnncli.train.head import attach_head

    tf_runtime.import_tensorflow()
    cfg = apply(RunConfig(), {"num_words": NUM_WORDS, "maxlen": 16, "units": 3,
                              "embedding_dim": 4, "pooling": pooling, "padding": padding,
                              "truncating": padding})
    network = build_model(cfg)
    rows, y = word_order_rows(300, seed=4)
    x = text.pad_sequences(rows, 16, padding, padding)
    head = fit_head(x[:200], y[:200], NUM_WORDS, seed=0)
    join = attach_head(network, cfg, head, x[200:], y[200:], seed=0)
    joined, details = join.model, join.details
    p = np.asarray(network(x[200:], training=False), np.float64).ravel()
    net = np.log(p) - np.log1p(-p)
    z = details["network_weight"] * net + details["head_weight"] * (head.logits(x[200:])
                                                                    - head.bias)
    import keras

    logit = keras.Model(joined.input, joined.get_layer("logit").output)
    bias = np.asarray(logit(x[200:]), np.float64).ravel() - z
    np.testing.assert_allclose(bias, bias[0], atol=1e-3)  # c + b x head bias, for every review
    got = np.asarray(joined(x[200:], training=False), np.float64).ravel()
    both = details["val_accuracy"]["both"]["whole"]
    assert both == ((got > 0.5) == (y[200:] > 0.5)).mean()
    assert details["val_accuracy"]["head"]["whole"] > 0.9  # word order: the head's to read


def test_folds_keep_a_movies_reviews_together_and_are_near_equal():
    from rnncli.train.head import folds_of

    groups = np.repeat(np.arange(40), np.arange(40) % 5 + 1)  # 40 movies of 1 to 5 reviews
    fold = folds_of(groups, 5, seed=0)
    for g in range(40):
        assert len(set(fold[groups == g].tolist())) == 1
    sizes = np.bincount(fold, minlength=5)
    assert sizes.max() - sizes.min() <= 5  # each movie goes to the smallest fold
    assert not np.array_equal(fold, folds_of(groups, 5, seed=1))


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_cross_fitted_logits_come_from_heads_that_did_not_see_the_review():
    """Each validation row's logit (whole review and its window) is that of a head fitted on
    the training reviews and the other folds: refitting that head by hand gives it, and the
    served head, which has seen the row, gives another."""
    from rnncli.train.head import cross_fit, folds_of, join_rows

    rows, y = word_order_rows(300, seed=6)
    x = text.pad_sequences(rows, 16, "pre", "pre")
    groups = np.arange(100) // 4  # 25 movies of 4 reviews

    def fit(xs, ys):
        return fit_head(xs, ys, NUM_WORDS, seed=0)

    logits, biases = cross_fit(fit, x[:200], y[:200], x[200:], y[200:], groups, seed=3,
                               folds=3)
    fold = folds_of(groups, 3, seed=3)
    join = join_rows(x[200:], y[200:], seed=3)[0]
    k = fold[7]
    keep = fold != k
    head = fit(np.concatenate([x[:200], x[200:][keep]]), np.concatenate([y[:200], y[200:][keep]]))
    np.testing.assert_allclose(logits[[7, 107]], head.logits([join[7], join[107]]), atol=1e-9)
    assert biases[7] == biases[107] == head.bias
    served = fit(x, y)
    assert not np.allclose(served.logits(join), logits, atol=1e-3)


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_a_join_on_cross_fitted_logits_serves_the_head_fitted_on_everything():
    """--ngram-refit: the joined model holds the served head, weighed by the b fitted on the
    cross-fitted logits, and held_out_scores gives the graph's view of the cross-fitted head
    (b x logit less its bias) and the joined probability with it."""
    import keras

    from rnncli.config.settings import RunConfig, apply
    from rnncli.model import runtime as tf_runtime
    from rnncli.model.build import build_model
    from rnncli.model.ngram import LAYER
    from rnncli.train.head import attach_head, held_out_scores, join_rows, stack_weights

    tf_runtime.import_tensorflow()
    cfg = apply(RunConfig(), {"num_words": NUM_WORDS, "maxlen": 16, "units": 3,
                              "embedding_dim": 4, "pooling": "masked-max"})
    rows, y = word_order_rows(300, seed=5)
    x = text.pad_sequences(rows, 16, "pre", "pre")
    served = fit_head(x, y, NUM_WORDS, seed=0)
    other = fit_head(x[:200], y[:200], NUM_WORDS, seed=0)
    join_x = join_rows(x[200:], y[200:], seed=0)[0]
    crossed = other.logits(join_x) * 0.5  # stands for heads that did not see the rows
    join = attach_head(build_model(cfg), cfg, served, x[200:], y[200:], seed=0,
                       head_logits=crossed)
    a, b, c = stack_weights(join.network, crossed, join.labels)
    assert (join.a, join.b, join.c) == pytest.approx((a, b, c))
    head_out = keras.Model(join.model.input, join.model.get_layer(LAYER).output)
    np.testing.assert_allclose(np.asarray(head_out(x[200:]), np.float64).ravel(),
                               b * (served.logits(x[200:]) - served.bias), atol=1e-4)
    logit = keras.Model(join.model.input, join.model.get_layer("logit").output)
    np.testing.assert_allclose(np.asarray(logit(x[200:]), np.float64).ravel(),
                               a * join.network[:100] + b * served.logits(x[200:]) + c,
                               atol=1e-4)
    biases = np.full(len(crossed), 0.25)
    held = held_out_scores(join, biases)
    np.testing.assert_allclose(held["head"], b * (crossed[:100] - 0.25))
    np.testing.assert_allclose(held["joined"],
                               1 / (1 + np.exp(-(a * join.network[:100] + b * crossed[:100] + c))))
    np.testing.assert_array_equal(held["labels"], y[200:])


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
@pytest.mark.parametrize("pooling, padding", [("masked-max", "pre"), ("last", "post")])
def test_network_logits_read_rows_as_the_model_does(pooling, padding):
    """Rows keep their own start marker (none is added) and a masked model's cut batches
    give its full-width logits: what the head is weighed against."""
    import keras

    from rnncli.config.settings import RunConfig, apply
    from rnncli.model import runtime as tf_runtime
    from rnncli.model.build import build_model
    from rnncli.train.head import network_logits

    tf_runtime.import_tensorflow()
    cfg = apply(RunConfig(), {"num_words": NUM_WORDS, "maxlen": 16, "units": 3,
                              "embedding_dim": 4, "pooling": pooling, "padding": padding,
                              "truncating": padding})
    keras.utils.set_random_seed(0)
    joined = build_model(cfg, ngram_head=True)
    rows, _ = word_order_rows(40, seed=5)
    x = text.pad_sequences(rows, 16, padding, padding, start=None)
    dense = keras.Model(joined.input, joined.get_layer("dense").output)
    want = np.asarray(dense(x), np.float64).ravel()
    np.testing.assert_allclose(network_logits(joined, cfg, rows, 16), want, atol=1e-5)
