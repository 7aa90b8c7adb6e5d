"""The n-gram model (model/ngram.py's NgramModel): scikit-learn's estimator contract, its
keys, its TF-IDF against scikit-learn's, and the table it gives the head (no TensorFlow)."""

import numpy as np
import pytest
from conftest import ORDER_NUM_WORDS, word_order_rows

from rnncli.model.ngram import BUCKETS, NgramModel, count_matrix, nb_ratios, table_size
from rnncli.text import tokenizer as text

pytest.importorskip("sklearn")
NUM_WORDS = ORDER_NUM_WORDS
LEARNED = {"keys_", "idf_", "coef_", "intercept_"}


def learned(model) -> set[str]:
    return {name for name in vars(model) if name.endswith("_")}


@pytest.mark.parametrize("keys", ["exact", "hashed"])
def test_fit_returns_the_model_and_only_fit_sets_the_learned_attributes(keys):
    model = NgramModel(NUM_WORDS, keys=keys, C=2.0)
    assert learned(model) == set()
    rows, y = word_order_rows(200, seed=0)
    with pytest.raises(AttributeError, match="_"):
        model.predict_proba(rows)
    assert model.fit(rows, y) is model
    assert learned(model) == LEARNED
    assert (model.num_words, model.keys, model.order, model.C) == (NUM_WORDS, keys, 2, 2.0)
    # Features: the keys kept (exact), or the whole table where the others have idf 0.
    n = len(model.keys_) if keys == "exact" else table_size(NUM_WORDS)
    assert model.idf_.shape == model.coef_.shape == (n,) and isinstance(model.intercept_, float)
    assert (np.diff(model.keys_) > 0).all() and np.count_nonzero(model.idf_) == len(model.keys_)
    p = model.predict_proba(rows)
    assert p.shape == (200, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-model.decision_function(rows))))


def test_unknown_keys_are_refused_by_fit():
    model = NgramModel(NUM_WORDS, keys="hash")
    with pytest.raises(ValueError, match="keys must be one of"):
        model.fit(*word_order_rows(20, seed=0))


def test_exact_and_hashed_keys_agree_where_no_pair_collides():
    rows, y = word_order_rows(300, seed=2)
    exact = NgramModel(NUM_WORDS, keys="exact").fit(rows, y)
    hashed = NgramModel(NUM_WORDS, keys="hashed").fit(rows, y)
    # Exact word a * n is hashed word a; exact pair a * n + b is hashed n + (a * n + b), as
    # long as a * n + b < BUCKETS: no pair collides.
    assert exact.keys_.max() < BUCKETS
    as_hashed = np.where(exact.keys_ % NUM_WORDS == 0, exact.keys_ // NUM_WORDS,
                         NUM_WORDS + exact.keys_)
    order = np.argsort(as_hashed)
    np.testing.assert_array_equal(as_hashed[order], hashed.keys_)
    np.testing.assert_array_equal(exact.idf_[order], hashed.idf_[hashed.keys_])
    np.testing.assert_allclose(exact.coef_[order], hashed.coef_[hashed.keys_], rtol=1e-6,
                               atol=1e-9)
    test_rows, _ = word_order_rows(100, seed=3)
    np.testing.assert_allclose(exact.predict_proba(test_rows), hashed.predict_proba(test_rows),
                               rtol=1e-9, atol=1e-12)


def test_words_only_without_pairs():
    rows, y = word_order_rows(200, seed=0)
    model = NgramModel(NUM_WORDS, keys="exact", order=1).fit(rows, y)
    assert (model.keys_ % NUM_WORDS == 0).all()
    # The label is in the order of two words: words alone are near chance.
    test_rows, test_y = word_order_rows(200, seed=1)
    p = model.predict_proba(test_rows)[:, 1]
    assert ((p > 0.5) == (test_y > 0.5)).mean() < 0.7


def test_the_fit_is_scikit_learns_tfidf_and_logistic_regression():
    """TfidfTransformer(sublinear_tf=True) + LogisticRegression on the kept keys' counts:
    the same idf, features and weights (to rounding: the unit rows divide alike)."""
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    rows, y = word_order_rows(300, seed=4)
    model = NgramModel(NUM_WORDS, keys="exact", C=3.0).fit(rows, y)
    counts = model._counts([model._keys(r) for r in rows])
    reference = TfidfTransformer(sublinear_tf=True).fit(counts)
    np.testing.assert_array_equal(model.idf_, reference.idf_)
    features = reference.transform(counts)
    np.testing.assert_allclose(model.transform(rows).toarray(), features.toarray(), atol=1e-15)
    fit = LogisticRegression(C=3.0, max_iter=2000).fit(features, y > 0.5)
    np.testing.assert_allclose(model.coef_, fit.coef_[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.predict_proba(rows), fit.predict_proba(features),
                               rtol=1e-9, atol=1e-12)


def test_extra_rows_are_fitted_on_but_count_for_no_key():
    rows, y = word_order_rows(200, seed=0)
    extra = [np.array([text.START, 3, 4], np.int32)] * 5  # words 3 and 4: extra rows only
    alone = NgramModel(NUM_WORDS).fit(rows, y)
    model = NgramModel(NUM_WORDS).fit(rows, y, extra_rows=extra, extra_y=np.ones(5))
    np.testing.assert_array_equal(model.keys_, alone.keys_)
    np.testing.assert_array_equal(model.idf_, alone.idf_)  # the idf of 200 reviews
    assert model.intercept_ > alone.intercept_  # five more positive rows (of no known key)


def test_a_hashed_model_is_the_heads_table():
    rows, y = word_order_rows(200, seed=0)
    model = NgramModel(NUM_WORDS).fit(rows, y)
    head = model.head()
    assert head.weights.shape == head.idf.shape == (table_size(NUM_WORDS),)
    assert head.weights.dtype == head.idf.dtype == np.float32
    assert np.flatnonzero(head.idf).tolist() == model.keys_.tolist()
    np.testing.assert_array_equal(head.weights, model.coef_.astype(np.float32))
    assert head.bias == model.intercept_ and head.num_words == NUM_WORDS
    test_rows, _ = word_order_rows(50, seed=1)
    np.testing.assert_allclose(head.logits(test_rows), model.decision_function(test_rows),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="hashed"):
        NgramModel(NUM_WORDS, keys="exact").fit(rows, y).head()


def test_nb_ratios_count_a_key_once_per_review():
    # Keys 0..2 over 4 reviews, the first two positive. Key 0 twice in review 0: one review.
    counts = count_matrix([np.array([0, 0, 1]), np.array([0]), np.array([1, 2]),
                           np.array([2])], 3)
    r = nb_ratios(counts, np.array([1, 1, 0, 0]), alpha=1.0)
    pos, neg = np.array([2, 1, 0]) + 1.0, np.array([0, 1, 2]) + 1.0
    np.testing.assert_allclose(r, np.log(pos / pos.sum()) - np.log(neg / neg.sum()))
    assert r[0] > 0 > r[2] and r[1] == pytest.approx(0.0)


@pytest.mark.parametrize("keys", ["exact", "hashed"])
def test_nb_weighting_scales_each_kept_keys_idf_by_its_ratio(keys):
    rows, y = word_order_rows(300, seed=4)
    plain = NgramModel(NUM_WORDS, keys=keys).fit(rows, y)
    nb = NgramModel(NUM_WORDS, keys=keys, weighting="nb").fit(rows, y)
    np.testing.assert_array_equal(plain.keys_, nb.keys_)
    cols = plain.keys_ if keys == "hashed" else slice(None)
    counts = count_matrix([plain._keys(r) for r in rows], len(plain.idf_)) if keys == "hashed" \
        else plain._counts([plain._keys(r) for r in rows])
    np.testing.assert_allclose(nb.idf_[cols], plain.idf_[cols] * nb_ratios(counts, y)[cols])
    assert (nb.idf_[cols] < 0).any() and (nb.idf_[cols] > 0).any()  # signed, as the graphs take
    if keys == "hashed":  # the table gives the model's own logits, signed idf and all
        np.testing.assert_allclose(nb.head().logits(rows), nb.decision_function(rows),
                                   rtol=1e-4, atol=1e-4)
    # The word-order rows' label lives in which of two words comes first: pairs; NB keeps
    # it learnable (the fit is not degenerate).
    assert (nb.predict_proba(rows)[:, 1] > 0.5).mean() == pytest.approx(y.mean(), abs=0.2)


def test_nb_weighting_is_refused_for_k_labels():
    rows, _ = word_order_rows(30, seed=0)
    with pytest.raises(ValueError, match="for two labels"):
        NgramModel(NUM_WORDS, weighting="nb", classes=3).fit(rows, np.arange(30) % 3)
    with pytest.raises(ValueError, match="weighting must be one of"):
        NgramModel(NUM_WORDS, weighting="bm25").fit(rows, np.arange(30) % 2)


def test_extra_rows_weigh_as_asked():
    rows, y = word_order_rows(200, seed=5)
    extra, extra_y = word_order_rows(100, seed=6)
    alone = NgramModel(NUM_WORDS).fit(rows, y)
    none = NgramModel(NUM_WORDS).fit(rows, y, extra, extra_y, extra_weight=0.0)
    np.testing.assert_allclose(none.coef_, alone.coef_)
    light = NgramModel(NUM_WORDS).fit(rows, y, extra, extra_y, extra_weight=0.25)
    full = NgramModel(NUM_WORDS).fit(rows, y, extra, extra_y)
    # Weighted rows move the fit part of the way: between none and full weight.
    gap = np.abs(full.coef_ - alone.coef_).sum()
    assert 0 < np.abs(light.coef_ - alone.coef_).sum() < gap
    # Extra rows never change which keys count or their idf.
    np.testing.assert_array_equal(light.idf_, alone.idf_)


def test_a_table_of_other_size_hashes_pairs_into_it_and_its_head_reads_it_back():
    """`buckets`: the pair slots (the bundled model's older table is smaller than new ones);
    the head finds its size from its table and scores as the model does."""
    rows, y = word_order_rows(200, seed=1)
    small = NgramModel(NUM_WORDS, keys="hashed", C=2.0, buckets=101).fit(rows, y)
    assert small.idf_.shape == (table_size(NUM_WORDS, 101),)
    assert small.keys_.max() < NUM_WORDS + 101
    head = small.head()
    np.testing.assert_allclose(head.logits(rows), small.decision_function(rows), rtol=1e-4,
                               atol=1e-4)
    assert table_size(NUM_WORDS) == NUM_WORDS + BUCKETS
