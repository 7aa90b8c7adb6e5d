"""The n-gram head (`--ngram-head`): a TF-IDF linear model of a review's words and word pairs
whose logit the model's output adds to the recurrent network's.

    head = fit_head(x, y, num_words, seed)           # the training share's padded ids
    model, details = attach_head(model, cfg, head, x_val, y_val, seed)  # Keras, head inside

Features, computed the same way here (numpy, to fit), in Keras (to train and evaluate
against) and in every ONNX graph: a review's keys are its words (id a >= OOV: key a) and
its pairs of adjacent words (key num_words + (a * num_words + b) mod BUCKETS); a key seen
c times weighs (1 + log c) x idf(key), and the vector is scaled to unit length. Keys
of fewer than two training reviews have idf 0, so they never count. The head's logit is
the weights' dot product with that vector: TF-IDF + logistic regression (the bigram
baseline of benchmarks/bench_accuracy.py), fitted on the training reviews and WINDOWS
random windows of 8 to 80 words of each (so that short text scores as short text). The
recurrent network is trained first, as it would be without the head; then the head is
fitted, and the two logits are weighed by a logistic regression on the validation share
(whole reviews and one window of each), the only data neither has seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnncli.errors import UsageError
from rnncli.text.tokenizer import OOV

BUCKETS = 1_048_573  # a prime, so pair keys spread over the whole table
# Inverse L2 strength of the logistic regression, the bigram baseline's. On the validation
# share, C = 2 scored 0.9060 on whole reviews and 0.7268 on windows, against 0.9076, 0.7238.
C = 4.0
MIN_REVIEWS = 2  # a key in fewer training reviews gets idf 0 (TF-IDF's min_df)
CROP = (8, 80)  # window lengths, in words, of the extra short rows the head is fitted on
# Random windows per training review. On the validation share (the head fitted on the
# training share), 1 / 5 / 8 windows scored 0.9048 / 0.9074 / 0.9076 on whole reviews and
# 0.7144 / 0.7236 / 0.7238 on windows of 8 to 30 words.
WINDOWS = 8
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


def fit_head(x: np.ndarray, y: np.ndarray, num_words: int, seed: int) -> NgramHead:
    """TF-IDF + logistic regression on the training reviews `x` (padded ids) and WINDOWS
    random windows of each."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise UsageError('--ngram-head needs scikit-learn: pip install "rnncli[train]"'
                         ) from None
    from scipy.sparse import vstack

    from rnncli.train.batches import BatchPlan, crop, real_rows

    rows = real_rows(x)
    rng, plan = np.random.default_rng(seed), BatchPlan(1, x.shape[1], 1.0, *CROP)
    counts = key_counts(rows, num_words)
    # idf from whole reviews only: the windows repeat their words.
    reviews = np.asarray((counts > 0).sum(axis=0)).ravel()
    idf = np.log((1.0 + len(rows)) / (1.0 + reviews)) + 1.0  # scikit-learn's smoothed idf
    idf[reviews < MIN_REVIEWS] = 0.0
    windows = [key_counts(crop(rows, plan, rng), num_words) for _ in range(WINDOWS)]
    features = tfidf(vstack([counts, *windows]), idf)
    labels = np.tile(np.asarray(y), WINDOWS + 1) > 0.5
    model = LogisticRegression(C=C, max_iter=3000).fit(features, labels)
    return NgramHead(model.coef_[0].astype(np.float32), idf.astype(np.float32),
                     float(model.intercept_[0]), num_words)


def stack_weights(network: np.ndarray, head: np.ndarray, y: np.ndarray
                  ) -> tuple[float, float, float]:
    """(a, b, c) of a logistic regression of the labels on a x network logit + b x head
    logit + c, nearly unregularised: three numbers fitted on held-out reviews."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=1e4, max_iter=1000).fit(np.stack([network, head], 1), y > 0.5)
    return float(fit.coef_[0][0]), float(fit.coef_[0][1]), float(fit.intercept_[0])


def attach_head(model, cfg, head: NgramHead, x_val: np.ndarray, y_val: np.ndarray,
                seed: int):
    """A Keras model computing sigmoid(a x network logit + b x head logit + c): the
    trained `model`'s layers and weights with `head` beside them, (a, b, c) fitted on the
    validation reviews and one random window of each. Returns (model, details)."""
    from rnncli.model.build import build_model
    from rnncli.train.batches import BatchPlan, crop, real_rows

    joined = build_model(cfg, ngram_head=True)
    for layer in model.layers:
        if layer.weights:
            joined.get_layer(layer.name).set_weights(layer.get_weights())
    rows = real_rows(x_val)
    rows += crop(rows, BatchPlan(1, x_val.shape[1], 1.0, *CROP),
                 np.random.default_rng(seed + 1))
    labels = np.concatenate([y_val, y_val])
    net = network_logits(joined, cfg, rows, x_val.shape[1])
    lin = head.logits(rows)
    a, b, c = stack_weights(net, lin, labels)
    dense = joined.get_layer("dense")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * a, bias * a + c + b * head.bias])
    joined.get_layer(LAYER).set_weights([head.weights * b, head.idf])
    n = len(y_val)

    def accuracy(z, part):
        return float(((z[part] > 0) == (labels[part] > 0.5)).mean())

    both = a * net + b * lin + c
    details = {"network_weight": a, "head_weight": b, "val_accuracy": {
        name: {"whole": accuracy(z, slice(0, n)), "windows": accuracy(z, slice(n, None))}
        for name, z in (("network", net), ("head", lin), ("both", both))}}
    return joined, details


def network_logits(joined, cfg, rows: list[np.ndarray], width: int) -> np.ndarray:
    """The dense layer's output of a model with the head (the network's logit, before the
    head's is added) for id rows that already carry their start marker, 256 per call; a
    masked model reads them in length-sorted batches cut to their longest."""
    import keras

    from rnncli.export.check import trimmed_batches
    from rnncli.text.tokenizer import pad_sequences

    x = pad_sequences(rows, width, cfg.data.padding, cfg.data.truncating, start=None)
    if joined.input_shape[1] is None:
        batches = trimmed_batches(x, cfg.data.padding, 256)
    else:
        batches = [(x[at : at + 256], np.arange(at, min(at + 256, len(x))))
                   for at in range(0, len(x), 256)]
    network = keras.Model(joined.input, joined.get_layer("dense").output)
    out = np.zeros(len(x))
    for batch, at in batches:
        out[at] = np.asarray(network.predict_on_batch(batch), np.float64).ravel()
    return out


_LAYER_CLASS = None


def ngram_layer():
    """The Keras layer class of the head, registered for loading; made on first use so that
    importing this module does not import Keras. TensorFlow ops: it counts each review's
    distinct keys (tf.unique_with_counts), which Keras's backend-neutral ops cannot."""
    global _LAYER_CLASS
    if _LAYER_CLASS is not None:
        return _LAYER_CLASS
    import keras

    @keras.saving.register_keras_serializable(package="rnncli")
    class NgramLogit(keras.layers.Layer):
        """ids [batch, steps] -> the head's logit [batch, 1] (bias in the dense layer)."""

        def __init__(self, num_words: int, buckets: int = BUCKETS, **kwargs):
            super().__init__(**kwargs)
            self.num_words, self.buckets = num_words, buckets
            size = num_words + buckets
            self.table = self.add_weight(shape=(size,), initializer="zeros",
                                         trainable=False, name="weights")
            self.idf = self.add_weight(shape=(size,), initializer="zeros",
                                       trainable=False, name="idf")

        def call(self, ids):
            import tensorflow as tf

            ids = tf.cast(ids, tf.int64)
            size = self.num_words + self.buckets
            real = ids >= OOV
            pairs = self.num_words + (ids[:, :-1] * self.num_words + ids[:, 1:]) % self.buckets
            keys = tf.concat([ids, pairs], 1)
            kept = tf.concat([real, tf.logical_and(real[:, :-1], real[:, 1:])], 1)
            batch = tf.shape(ids, out_type=tf.int64)[0]
            rows = tf.range(batch)[:, None] * size
            # A key not kept becomes 0 (no kept key is 0: the pad id), which weighs nothing.
            flat = tf.reshape(tf.where(kept, rows + keys, tf.zeros_like(keys)), [-1])
            found, _, counts = tf.unique_with_counts(flat)
            key, row = found % size, found // size
            v = (1.0 + tf.math.log(tf.cast(counts, tf.float32))) * tf.gather(self.idf, key)
            v = v * tf.cast(found > 0, tf.float32)
            dot = tf.math.unsorted_segment_sum(v * tf.gather(self.table, key), row, batch)
            norm = tf.math.unsorted_segment_sum(v * v, row, batch)
            return tf.reshape(dot / tf.sqrt(tf.maximum(norm, 1e-30)), [-1, 1])

        def compute_output_shape(self, input_shape):
            return (input_shape[0], 1)

        def get_config(self):
            return {**super().get_config(), "num_words": self.num_words,
                    "buckets": self.buckets}

    _LAYER_CLASS = NgramLogit
    return _LAYER_CLASS


def onnx_head_logit(g, model, ids: str) -> str:
    """The head's logit [batch, 1] as nodes of GraphBuilder `g` reading int32 `ids`: the
    Keras layer's computation (Unique counts each review's keys, ScatterElements sums
    per review)."""
    from onnx import TensorProto, helper

    layer = model.get_layer(LAYER)
    table, idf = (np.array(w, np.float32) for w in layer.get_weights())
    # Every entry that is not a key goes to flat index 0, key 0 of row 0, which the Keras
    # layer masks out; an idf of 0 there does the same without a mask per call.
    idf[0] = 0.0
    nw, size = layer.num_words, layer.num_words + layer.buckets
    INT64, FLOAT = TensorProto.INT64, TensorProto.FLOAT
    one = g.one
    x = one("Cast", [ids], "ngram_ids", to=INT64)
    real = one("GreaterOrEqual", [x, g.const("ngram_oov", np.array(OOV, np.int64))])
    axis1 = g.int64("ngram_axis1", [1])
    start, end = g.int64("ngram_0", [0]), g.int64("ngram_last", [-1])
    first, big = g.int64("ngram_1", [1]), g.int64("ngram_end", [np.iinfo(np.int64).max])
    left = one("Slice", [x, start, end, axis1])
    right = one("Slice", [x, first, big, axis1])
    pair = one("Mul", [left, g.const("ngram_num_words", np.array(nw, np.int64))])
    pair = one("Mod", [one("Add", [pair, right]),
                       g.const("ngram_buckets", np.array(layer.buckets, np.int64))])
    pair = one("Add", [pair, "ngram_num_words"])
    kept_pair = one("GreaterOrEqual", [one("Min", [left, right]), "ngram_oov"])
    keys = one("Concat", [x, pair], axis=1)
    kept = one("Concat", [real, kept_pair], axis=1)
    shape = one("Shape", [x])
    batch = one("Gather", [shape, g.const("ngram_zero", np.array(0, np.int64))])
    rows = one("Range", [g.const("ngram_r0", np.array(0, np.int64)), batch,
                         g.const("ngram_r1", np.array(1, np.int64))])
    rows = one("Mul", [one("Unsqueeze", [rows, axis1]),
                       g.const("ngram_size", np.array(size, np.int64))])
    flat = one("Where", [kept, one("Add", [rows, keys]), g.const("ngram_none",
                                                                 np.array(0, np.int64))])
    flat = one("Reshape", [flat, g.int64("ngram_flat", [-1])])
    found, _, _, counts = g.node("Unique", [flat], n_out=4, unused=(1, 2), sorted=1)
    key = one("Mod", [found, "ngram_size"])
    row = one("Div", [found, "ngram_size"])
    tf_ = one("Add", [g.const("ngram_one", np.array(1, np.float32)),
                      one("Log", [one("Cast", [counts], to=FLOAT)])])
    v = one("Mul", [tf_, one("Gather", [g.const("ngram_idf", idf), key])])
    zeros = one("ConstantOfShape", [one("Reshape", [batch, g.int64("ngram_1d", [1])])],
                value=helper.make_tensor("zero", FLOAT, [1], [0.0]))
    dot = one("ScatterElements", [zeros, row, one("Mul", [v, one(
        "Gather", [g.const("ngram_weights", table), key])])], reduction="add")
    norm = one("ScatterElements", [zeros, row, one("Mul", [v, v])], reduction="add")
    norm = one("Sqrt", [one("Max", [norm, g.const("ngram_tiny", np.array(1e-30, np.float32))])])
    return one("Unsqueeze", [one("Div", [dot, norm]), axis1], "ngram_logit")


MIN_OPSET = 16  # ScatterElements with reduction="add"


def has_head(model) -> bool:
    return any(layer.name == LAYER for layer in model.layers)

