"""The n-gram head's features (`--ngram-head`): a review's words and word pairs as keys of one
table, weighed by TF-IDF. The head is a linear model of them whose logit the model adds to
the recurrent network's.

    counts = key_counts(rows, num_words)          # sparse [reviews, table_size(num_words)]
    head.logits(rows)                             # an NgramHead's logit per id row

A review's keys are its words (id a >= OOV: key a) and its pairs of adjacent words (key
num_words + (a * num_words + b) mod BUCKETS); a key seen c times weighs (1 + log c) x
idf(key), and the vector is scaled to unit length. Keys of fewer than two training reviews
have idf 0, so they never count. The same computation runs here (numpy, to fit), in the
Keras layer (model/layers.py) and in every ONNX graph (export/ngram.py); the fit is in
train/head.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnncli.text.tokenizer import OOV

BUCKETS = 1_048_573  # a prime, so pair keys spread over the whole table
MIN_REVIEWS = 2  # a key in fewer training reviews gets idf 0 (TF-IDF's min_df)
LAYER = "ngram"  # the Keras layer; the graphs read its weights by this name


def table_size(num_words: int) -> int:
    return num_words + BUCKETS


def row_keys(row: np.ndarray, num_words: int) -> np.ndarray:
    """Table indices of one id row's words and word pairs (pads and start marker left out)."""
    ids = row[row >= OOV].astype(np.int64)
    pairs = num_words + (ids[:-1] * num_words + ids[1:]) % BUCKETS
    return np.concatenate([ids, pairs])


def count_matrix(columns: list[np.ndarray], width: int):
    """Sparse [rows, width] matrix counting each row's column indices (a repeated index
    adds up: an n-gram's count in its review)."""
    from scipy.sparse import csr_matrix

    cols = np.concatenate(columns) if columns else np.zeros(0, np.int64)
    of = np.repeat(np.arange(len(columns)), [len(c) for c in columns])
    m = csr_matrix((np.ones(len(cols), np.float64), (of, cols)), shape=(len(columns), width))
    m.sum_duplicates()
    return m


def key_counts(rows, num_words: int):
    """Sparse [reviews, table] matrix of key counts."""
    return count_matrix([row_keys(np.asarray(r), num_words) for r in rows],
                        table_size(num_words))


def tfidf(counts, idf: np.ndarray):
    """Rows of (1 + log count) x idf, scaled to unit length (rows with no key stay zero)."""
    from scipy.sparse import csr_matrix, diags

    m = counts.copy().astype(np.float64)
    m.data = 1.0 + np.log(m.data)
    m = csr_matrix(m @ diags(idf.astype(np.float64)))
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return csr_matrix(diags(1.0 / np.where(norms > 0, norms, 1.0)) @ m)


@dataclass
class NgramHead:
    weights: np.ndarray  # [table] float32
    idf: np.ndarray  # [table] float32, 0 for keys the head ignores
    bias: float
    num_words: int

    def logits(self, rows) -> np.ndarray:
        """The head's logit of each id row (padded or not), in float64."""
        return tfidf(key_counts(rows, self.num_words), self.idf) @ self.weights.astype(
            np.float64) + self.bias


def has_head(model) -> bool:
    return any(layer.name == LAYER for layer in model.layers)
