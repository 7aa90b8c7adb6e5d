"""The n-gram model: TF-IDF + logistic regression on a review's words and word pairs (and
triples), the one linear model of the project. With exact keys it is the n-gram teacher
(train/teachers.py) and the benchmark's baselines; with hashed keys, the n-gram head
(`--ngram-head`) whose logit the model adds to the recurrent network's.

    model = NgramModel(num_words, keys="exact").fit(rows, y)   # id rows, padded or not
    model.predict_proba(rows)[:, 1]                            # P(positive) per id row
    head = model.head()           # hashed keys: the table the Keras layer and graphs read
    head.logits(rows)             # the head's logit per id row, from that table
    NgramModel(num_words, classes=3).fit(rows, y)   # K > 2 labels: y holds 0..K-1

A review's keys are its words, its pairs of adjacent words and, at order 3 (the head's,
HEAD_ORDER), its triples (pads and the start marker left out). Exact keys tell every n-gram
apart: word a is a * num_words, pair (a, b) is a * num_words + b, triple (a, b, c) is
num_words^2 + (a * num_words + b) * num_words + c. Hashed keys index one fixed table: word a
is a, pair (a, b) is num_words + (a * num_words + b) mod BUCKETS, triple (a, b, c)
num_words + ((a * num_words + b) * num_words + c) mod BUCKETS. A key seen c times weighs
(1 + log c) x idf(key), and the vector is scaled to unit length (scikit-learn's
TfidfTransformer with sublinear counts). Keys of fewer than `min_reviews` training reviews
are left out (idf 0 in the head's table), so they never count. The head's computation runs
here (numpy, to fit), in the Keras layer (model/layers.py) and in every ONNX graph
(export/ngram.py); its fit is in train/head.py.

A weighting (WEIGHTINGS, one entry each) says what multiplies a key's idf: nothing
("tfidf"), or, for two labels, its naive Bayes log-count ratio ("nb": the NBSVM idea of Wang
& Manning, 2012, on TF-IDF features): log of the key's share of the positive reviews' keys
over its share of the negative ones', counting a key once per review. A key that tells the
labels apart then weighs more in the unit-length vector, whatever its frequency; the scaled
idf is signed, which neither the graphs nor the Keras layer mind (they square it for the
length).

For K > 2 labels the regression is multinomial: one weight per key and label (a [keys, K]
table), one logit per label (softmax over them); two labels keep one weight per key and one
logit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnncli.errors import UsageError
from rnncli.model.weightings import WEIGHTINGS
from rnncli.text.tokenizer import OOV

# A prime, so pair and triple keys spread over the whole table. 20,000 IMDB reviews have
# 340,000 exact words and pairs in 2 or more reviews; 1,048,573 slots kept 420,000, the rarer
# pairs colliding into slots that pass the 2-review floor. The "nb" head alone, validation
# share (whole movies held out) / test split: pairs in 4,194,301 slots 0.9128 / 0.9101
# (16,777,213: 0.9140 / 0.9104); with triples, 4,194,301 slots 0.9178 / 0.9148, 8,388,593
# 0.9182 / 0.9147, 16,777,213 0.9186 / 0.9161 (benchmarks/bench_head_table.py; an earlier
# hash of the triples gave 0.9152, 0.9190 and 0.9180 on validation, so 8,388,593 is where
# both hashes are at their best). A model keeps the table and order it was made with (the
# Keras layer's config, the graph).
BUCKETS = 8_388_593
HEAD_ORDER = 3  # words, pairs and triples: the head's keys (the exact teacher's stay at 2)
ORDERS = (1, 2, 3)
MIN_REVIEWS = 2  # a key in fewer training reviews is left out (TF-IDF's min_df)
LAYER = "ngram"  # the Keras layer; the graphs read its weights by this name
KEYS = ("hashed", "exact")
NB_ALPHA = 1.0  # the log-count ratio's smoothing: a count added for every key and label


def nb_ratios(counts, y: np.ndarray, alpha: float = NB_ALPHA) -> np.ndarray:
    """Each column's naive Bayes log-count ratio from a sparse [reviews, keys] count matrix
    and the reviews' labels (> 0.5: positive), each key counted once per review."""
    present = (counts > 0).astype(np.float64).tocsr()
    positive = np.asarray(y).ravel() > 0.5
    pos = np.asarray(present[positive].sum(0)).ravel() + alpha
    neg = np.asarray(present[~positive].sum(0)).ravel() + alpha
    return np.log(pos / pos.sum()) - np.log(neg / neg.sum())


def table_size(num_words: int, buckets: int = BUCKETS) -> int:
    return num_words + buckets


def row_keys(row: np.ndarray, num_words: int, keys: str = "hashed", order: int = 2,
             buckets: int = BUCKETS) -> np.ndarray:
    """The int64 keys of one id row's words, and at `order` 2 or 3 its word pairs and
    triples, pads and the start marker left out: hashed keys are table indices, exact ones
    tell every n-gram apart."""
    ids = np.asarray(row)
    ids = ids[ids >= OOV].astype(np.int64)
    if order == 1:
        return ids * num_words if keys == "exact" else ids
    pair = ids[:-1] * num_words + ids[1:]  # ids[1:] >= OOV > 0: no pair is a word's key
    grams = [ids * num_words, pair] if keys == "exact" else [ids, num_words + pair % buckets]
    if order == 3:
        triple = pair[:-1] * num_words + ids[2:]
        grams.append(num_words * num_words + triple if keys == "exact"
                     else num_words + triple % buckets)
    return np.concatenate(grams)


def count_matrix(columns: list[np.ndarray], width: int):
    """Sparse [rows, width] matrix counting each row's column indices (a repeated index
    adds up: an n-gram's count in its review)."""
    from scipy.sparse import csr_matrix

    cols = np.concatenate(columns) if columns else np.zeros(0, np.int64)
    of = np.repeat(np.arange(len(columns)), [len(c) for c in columns])
    m = csr_matrix((np.ones(len(cols), np.float64), (of, cols)), shape=(len(columns), width))
    m.sum_duplicates()
    return m


def key_counts(rows, num_words: int, buckets: int = BUCKETS, order: int = 2):
    """Sparse [reviews, table] matrix of hashed key counts."""
    return count_matrix([row_keys(r, num_words, order=order, buckets=buckets) for r in rows],
                        table_size(num_words, buckets))


def tfidf(counts, idf: np.ndarray):
    """Rows of (1 + log count) x idf, scaled to unit length (rows with no key stay zero):
    TfidfTransformer(sublinear_tf=True)'s features with this idf, to rounding."""
    from scipy.sparse import csr_matrix, diags

    m = counts.copy().astype(np.float64)
    m.data = 1.0 + np.log(m.data)
    m = csr_matrix(m @ diags(np.asarray(idf, np.float64)))
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return csr_matrix(diags(1.0 / np.where(norms > 0, norms, 1.0)) @ m)


def require_sklearn(option: str) -> None:
    """A UsageError naming `option` where scikit-learn (the [train] extra) is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise UsageError(f'{option} needs scikit-learn: pip install "rnncli[train]"') from None


class NgramModel:
    """TF-IDF (sublinear counts, smoothed idf, unit rows) + L2 logistic regression on the
    keys of id rows, in scikit-learn's shape: `fit` returns the model, what it learns is in
    the attributes ending in "_". C is the inverse L2 strength (4: the bigram baseline's,
    benchmarks/bench_accuracy.py).

    The features: with exact keys, one per key kept (as TfidfVectorizer's vocabulary); with
    hashed keys, the whole table (as HashingVectorizer's fixed width), a key not kept
    having idf 0. Learned:
    keys_: int64, sorted, the keys of `min_reviews` training reviews or more;
    idf_: float64 [features], log((1 + reviews) / (1 + reviews with the key)) + 1, or 0;
      with weighting "nb", times the key's naive Bayes log-count ratio (signed);
    coef_: float64 [features], the logistic regression's weights; intercept_: float, its bias.
    With `classes` K > 2 (multinomial): coef_ [features, K], intercept_ [K].
    """

    def __init__(self, num_words: int, keys: str = "hashed", order: int = 2,
                 C: float = 4.0, min_reviews: int = MIN_REVIEWS, max_iter: int = 2000,
                 classes: int = 2, weighting: str = "tfidf", buckets: int = BUCKETS):
        self.num_words, self.keys, self.order, self.buckets = num_words, keys, order, buckets
        self.C, self.min_reviews, self.max_iter = C, min_reviews, max_iter
        self.classes, self.weighting = classes, weighting

    def fit(self, rows, y, extra_rows=(), extra_y=(), extra_weight: float = 1.0
            ) -> NgramModel:
        """Fitted on id rows (padded or not) and their labels (> 0.5: positive; with K > 2
        classes, label indexes 0..K-1). The `extra_rows` (labelled `extra_y`, e.g. windows
        of the reviews) are more rows to fit the regression on, each weighing
        `extra_weight` against a review's 1, which count for no key's reviews (idf,
        min_reviews and the naive Bayes ratios)."""
        from sklearn.linear_model import LogisticRegression

        if self.keys not in KEYS:
            raise ValueError(f"keys must be one of {KEYS}, not {self.keys!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, not {self.order!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {tuple(WEIGHTINGS)}, "
                             f"not {self.weighting!r}")
        if WEIGHTINGS[self.weighting].binary and self.classes > 2:
            raise ValueError(f"weighting {self.weighting!r} is for two labels")
        keys = [self._keys(r) for r in rows]
        found, reviews = np.unique(np.concatenate([np.zeros(0, np.int64)] + [
            np.unique(k) for k in keys]), return_counts=True)
        kept = reviews >= self.min_reviews
        self.keys_ = found[kept]
        idf = np.log((1.0 + len(keys)) / (1.0 + reviews[kept])) + 1.0  # scikit-learn's
        if self.keys == "hashed":
            self.idf_ = np.zeros(table_size(self.num_words, self.buckets))
            self.idf_[self.keys_] = idf
        else:
            self.idf_ = idf
        reviews = len(keys)
        if extra_weight > 0:  # at 0 the windows are left out
            keys += [self._keys(r) for r in extra_rows]
        labels = np.concatenate([np.asarray(y).ravel(), np.asarray(extra_y).ravel()])[
            :len(keys)]
        weights = np.concatenate([np.ones(reviews), np.full(len(keys) - reviews, extra_weight)])
        counts = self._counts(keys)  # the reviews' rows first: counted once for both uses
        if self.weighting == "nb":
            self.idf_ = self.idf_ * nb_ratios(counts[:reviews], y)
        features = tfidf(counts, self.idf_)
        # Hashed keys: the regression sees the kept keys' columns only. The others are zero
        # in every row (idf 0), so L2 holds their weights at 0 and leaving them out changes
        # nothing but the time (3 labels on 200 rows: 11.6 s on the whole table).
        kept = self.keys_ if self.keys == "hashed" else slice(None)
        if self.classes > 2:
            self._fit_classes(features[:, kept], labels, weights)
        else:
            fit = LogisticRegression(C=self.C, max_iter=self.max_iter)
            fit.fit(features[:, kept], labels > 0.5, sample_weight=weights)
            self.coef_, self.intercept_ = fit.coef_[0], float(fit.intercept_[0])
        if self.keys == "hashed":
            full = np.zeros((features.shape[1], *self.coef_.shape[1:]))
            full[self.keys_] = self.coef_
            self.coef_ = full
        return self

    def _fit_classes(self, features, labels: np.ndarray, weights: np.ndarray) -> NgramModel:
        """The multinomial fit (scikit-learn's for 3 or more labels): coef_ [features, K]."""
        from sklearn.linear_model import LogisticRegression

        labels = np.round(labels).astype(np.int64)
        if labels.min() < 0 or labels.max() >= self.classes:
            raise ValueError(f"labels must be class indexes 0..{self.classes - 1}")
        fit = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(features, labels,
                                                                       sample_weight=weights)
        seen = fit.classes_.astype(np.int64)
        coef, intercept = fit.coef_, fit.intercept_
        if len(seen) == 2:  # scikit-learn's binary form: one weight vector, for seen[1]
            coef, intercept = np.stack([-coef[0] / 2, coef[0] / 2]), intercept.repeat(2) * [
                -0.5, 0.5]
        self.coef_ = np.zeros((features.shape[1], self.classes))
        self.coef_[:, seen] = coef.T
        # A label no training row has gets no weight and a bias far below the others':
        # a probability near 0 rather than a guess.
        self.intercept_ = np.full(self.classes, intercept.min() - 10.0)
        self.intercept_[seen] = intercept
        return self

    def transform(self, rows):
        """Sparse [rows, features] TF-IDF of id rows (keys not kept count for nothing)."""
        return tfidf(self._counts([self._keys(r) for r in rows]), self.idf_)

    def decision_function(self, rows) -> np.ndarray:
        """The logit of each id row ([rows, K] for K > 2 classes), in float64."""
        return self.transform(rows) @ self.coef_ + self.intercept_

    def predict_proba(self, rows) -> np.ndarray:
        """[rows, 2] probabilities of the negative and the positive label ([rows, K] for
        K > 2 classes)."""
        from scipy.special import expit, softmax

        if self.classes > 2:
            return softmax(self.decision_function(rows), axis=1)
        p = expit(self.decision_function(rows))
        return np.stack([1 - p, p], axis=1)

    def head(self) -> NgramHead:
        """The fitted model (hashed keys) as the table the Keras layer and the graphs read."""
        if self.keys != "hashed":
            raise ValueError("only a model of hashed keys has a table")
        return NgramHead(self.coef_.astype(np.float32), self.idf_.astype(np.float32),
                         self.intercept_, self.num_words, self.order)

    def _keys(self, row) -> np.ndarray:
        return row_keys(row, self.num_words, self.keys, self.order, self.buckets)

    def _counts(self, keys: list[np.ndarray]):
        """Sparse [rows, features] counts of each row's keys (exact keys: those in keys_)."""
        if self.keys == "hashed":
            return count_matrix(keys, table_size(self.num_words, self.buckets))
        columns = []
        for k in keys:
            at = np.searchsorted(self.keys_, k)
            known = at < len(self.keys_)
            known[known] = self.keys_[at[known]] == k[known]
            columns.append(at[known])
        return count_matrix(columns, len(self.keys_))


@dataclass
class NgramHead:
    """A fitted NgramModel of hashed keys as a table (NgramModel.head()): what the Keras
    layer holds and the graphs read, in float32. K > 2 labels: a [table, K] weights table
    and a bias per label."""

    weights: np.ndarray  # [table] float32, or [table, K]
    idf: np.ndarray  # [table] float32, 0 for keys the head ignores
    bias: float | np.ndarray  # [K] for K > 2 labels
    num_words: int
    order: int = 2  # 2: words and pairs (heads made before triples), 3: and triples

    @property
    def classes(self) -> int:
        """Labels the head tells apart: 2 (one logit), or K (one logit per label)."""
        return 2 if self.weights.ndim == 1 else self.weights.shape[1]

    def logits(self, rows) -> np.ndarray:
        """The head's logit of each id row (padded or not), [rows] or [rows, K], in
        float64."""
        counts = key_counts(rows, self.num_words, len(self.idf) - self.num_words, self.order)
        return tfidf(counts, self.idf) @ self.weights.astype(np.float64) + self.bias


def has_head(model) -> bool:
    return any(layer.name == LAYER for layer in model.layers)
