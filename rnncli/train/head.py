"""Fitting the n-gram head (`--ngram-head`) and joining it to a trained network.

    head = fit_head(x, y, num_words, seed)           # the training share's padded ids
    model, details = attach_head(model, cfg, head, x_val, y_val, seed)  # Keras, head inside

The head is TF-IDF (its idf scaled by naive Bayes log-count ratios with the "nb" weighting)
+ logistic regression on words, word pairs and triples (model/ngram.py's NgramModel with
hashed keys, its WEIGHTINGS entry giving C), fitted on the training reviews and WINDOWS
random windows of 8 to 80 words of each (so that short text scores as short text), each
window weighing the entry's window_weight against a review's 1. The recurrent network is
trained first, as it would be without the head; then the head is fitted, and the two logits
are weighed by a logistic regression on the validation share (whole reviews and one window
of each), the only data neither has seen.

With --ngram-refit the served head is fitted on the training and validation reviews
together, and the join is fitted on cross-fitted logits instead (cross_fit): the validation
share in FOLDS folds of whole movies, each fold scored by a head fitted on everything else.
Those heads have seen nearly what the served one has, so the join's weights and the
cascade's calibration (held_out_scores) fit the head that is served; a head of the training
share alone gives smaller logits than one of both shares (heads of 10,000 and 15,000
reviews: standard deviation 2.93 and 3.17 on the validation reviews).

For K > 2 labels the head is multinomial (a logit per label) and the join is
softmax(a x network logits + b x head logits + c): a and b shared by every label, c a bias
per label, fitted the same way (stack_weights_classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnncli.model.ngram import (
    BUCKETS,
    HEAD_ORDER,
    LAYER,
    WEIGHTINGS,
    NgramHead,
    NgramModel,
    require_sklearn,
)
from rnncli.text.padding import trimmed_batches

CROP = (8, 80)  # window lengths, in words, of the extra short rows the head is fitted on
# Random windows per training review. On the validation share (the "tfidf" head fitted on
# the training share), 1 / 5 / 8 windows scored 0.9048 / 0.9074 / 0.9076 on whole reviews and
# 0.7144 / 0.7236 / 0.7238 on windows of 8 to 30 words.
WINDOWS = 8


def fit_head(x: np.ndarray, y: np.ndarray, num_words: int, seed: int,
             classes: int = 2, windows: int = WINDOWS, weighting: str | None = None,
             buckets: int = BUCKETS, order: int = HEAD_ORDER, C: float | None = None,
             window_weight: float | None = None) -> NgramHead:
    """The n-gram model of hashed keys fitted on the training reviews `x` (padded ids) and
    `windows` random windows of each (which count for no key's idf: they repeat its words),
    as the table the Keras layer holds; `classes` > 2: multinomial, `y` label indexes.
    `weighting` unset: "nb" for two labels, "tfidf" for more (naive Bayes ratios tell two
    labels apart). `buckets` and `order`: the n-gram slots of the table and the longest
    n-gram (an existing graph's, to fit its head again). `C` and `window_weight` unset: the
    weighting's (WEIGHTINGS)."""
    require_sklearn("--ngram-head")
    from rnncli.train.batches import BatchPlan, crop, real_rows

    rows = real_rows(x)
    rng, plan = np.random.default_rng(seed), BatchPlan(1, x.shape[1], 1.0, *CROP)
    extra = [w for _ in range(windows) for w in crop(rows, plan, rng)]
    weighting = weighting or ("nb" if classes == 2 else "tfidf")
    entry = WEIGHTINGS[weighting]
    model = NgramModel(num_words, keys="hashed", order=order, C=entry.C if C is None else C,
                       max_iter=3000, classes=classes, weighting=weighting, buckets=buckets)
    return model.fit(rows, y, extra_rows=extra, extra_y=np.tile(np.asarray(y), windows),
                     extra_weight=entry.window_weight if window_weight is None
                     else window_weight).head()


def head_windows(crop_prob: float) -> int:
    """Windows per review the head is fitted on: WINDOWS where the network trains on crops
    too (short text matters), none where it reads whole reviews only. On 10,000 IMDB
    reviews binned by stars into 4 labels (benchmarks/bench_classes.py, no crops), the head
    scored 0.6555 on the validation share fitted on whole reviews against 0.6305 with 8
    windows each."""
    return WINDOWS if crop_prob > 0 else 0


def stack_fit(columns: np.ndarray, y: np.ndarray):
    """The join for two labels: a logistic regression of the labels (> 0.5: positive) on
    [rows, members] logits, nearly unregularised (a weight per member and a bias, fitted
    on held-out reviews)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1e4, max_iter=1000).fit(columns, np.asarray(y) > 0.5)


def stack_weights(network: np.ndarray, head: np.ndarray, y: np.ndarray
                  ) -> tuple[float, float, float]:
    """(a, b, c) of the join sigmoid(a x network logit + b x head logit + c)."""
    fit = stack_fit(np.stack([network, head], 1), y)
    return float(fit.coef_[0][0]), float(fit.coef_[0][1]), float(fit.intercept_[0])


# The join's L2 strength for K labels: nearly none, as stack_fit's C = 1e4, but it keeps
# the bias of a label the validation share lacks finite.
STACK_L2 = 1e-4


def stack_weights_classes(network: np.ndarray, head: np.ndarray, y: np.ndarray
                          ) -> tuple[float, float, np.ndarray]:
    """(a, b, c) minimising the cross-entropy of softmax(a x network + b x head + c) on
    held-out reviews (logits [rows, K], `y` label indexes), c one bias per label: K + 2
    numbers, so L-BFGS on the exact gradient converges in a few dozen steps."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    net, lin = np.asarray(network, np.float64), np.asarray(head, np.float64)
    n, k = net.shape
    onehot = np.eye(k)[np.asarray(np.round(y), np.int64)]

    def loss(p):
        a, b, c = p[0], p[1], p[2:]
        logp = log_softmax(a * net + b * lin + c, axis=1)
        err = (np.exp(logp) - onehot) / n  # d(mean cross-entropy) / d(logits)
        grad = np.concatenate([[(err * net).sum(), (err * lin).sum()], err.sum(0)])
        return -(onehot * logp).sum() / n + STACK_L2 * p @ p, grad + 2 * STACK_L2 * p

    start = np.concatenate([[1.0, 1.0], np.zeros(k)])
    p = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 1000}).x
    return float(p[0]), float(p[1]), p[2:]


@dataclass
class Join:
    """attach_head's result: the joined Keras model, the details ngram_head.json keeps, and
    what the join was fitted on (join_rows' rows: the network's logits, the head's, the
    labels) with its weights a, b, c."""

    model: object
    details: dict
    network: np.ndarray
    head: np.ndarray
    labels: np.ndarray
    a: float
    b: float
    c: float | np.ndarray


def attach_head(model, cfg, head: NgramHead, x_val: np.ndarray, y_val: np.ndarray,
                seed: int, head_logits: np.ndarray | None = None) -> Join:
    """A Keras model computing sigmoid(a x network logit + b x head logit + c) (K > 2
    labels: softmax of the same over the logits per label, c per label): the trained
    `model`'s layers and weights with `head` beside them, (a, b, c) fitted on the
    validation reviews and one random window of each (join_rows). `head_logits`: the head's
    logits on those rows from heads that have not seen them (cross_fit), where `head`
    itself was fitted on them too; unset, `head`'s own."""
    from rnncli.model.build import build_model

    classes = head.classes
    joined = build_model(cfg, ngram_head=True, classes=classes,
                         head_table=(len(head.idf) - head.num_words, head.order))
    for layer in model.layers:
        if layer.weights:
            joined.get_layer(layer.name).set_weights(layer.get_weights())
    rows, labels = join_rows(x_val, y_val, seed)
    net = network_logits(joined, cfg, rows, x_val.shape[1])
    lin = head.logits(rows) if head_logits is None else np.asarray(head_logits, np.float64)
    if classes > 2:
        a, b, c = stack_weights_classes(net, lin, labels)
    else:
        a, b, c = stack_weights(net, lin, labels)
    dense = joined.get_layer("dense")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * a, bias * a + c + b * head.bias])
    joined.get_layer(LAYER).set_weights([head.weights * b, head.idf])
    details = {"network_weight": a, "head_weight": b}
    if classes > 2:
        details["class_bias"] = [float(v) for v in c]
    details["val_accuracy"] = join_accuracies(net, lin, a * net + b * lin + c, labels)
    return Join(joined, details, net, lin, labels, a, b, c)


# --ngram-refit: the validation share's folds. Each fold's head is fitted on the training
# reviews and the other folds, so it has seen 4/5 of what the served head has (24,000 of
# 25,000 IMDB reviews, against 20,000 for the head on the training share alone).
FOLDS = 5


def folds_of(groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each validation review's fold, 0..folds-1: a group's reviews (a movie's) all in one,
    the groups taken in a random order (`seed`), each to the fold with fewest reviews."""
    names, group, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    fold_of_group, filled = np.zeros(len(names), np.int64), np.zeros(folds, np.int64)
    for g in np.random.default_rng(seed).permutation(len(names)):
        fold_of_group[g] = k = int(np.argmin(filled))
        filled[k] += sizes[g]
    return fold_of_group[group]


def cross_fit(fit, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              groups: np.ndarray | None, seed: int, folds: int = FOLDS
              ) -> tuple[np.ndarray, np.ndarray]:
    """For a head fitted on the training and validation reviews together, logits on
    join_rows' rows (the validation reviews, then a window of each) from heads that have
    not seen them: each row's from the head `fit` makes of the training reviews and every
    fold but the row's own (folds_of; `groups` unset: each review a group). Returns
    (logits, each row's head bias), the logits [rows] or [rows, K]."""
    n = len(x_val)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    fold = folds_of(groups, min(folds, len(np.unique(groups))), seed)
    fold = np.concatenate([fold, fold])  # a window is in its review's fold
    rows = join_rows(x_val, y_val, seed)[0]
    logits = biases = None
    for k in np.unique(fold):
        keep = fold[:n] != k
        head = fit(np.concatenate([x, x_val[keep]]), np.concatenate([y, y_val[keep]]))
        at = np.flatnonzero(fold == k)
        z = head.logits([rows[i] for i in at])
        if logits is None:
            logits = np.zeros((len(rows), *z.shape[1:]))
            biases = np.zeros((len(rows), *np.shape(head.bias)))
        logits[at], biases[at] = z, head.bias
    return logits, biases


def held_out_scores(join: Join, biases: np.ndarray) -> dict[str, np.ndarray] | None:
    """What the export fits the cascade on when the served head has seen the validation
    reviews (--ngram-refit): for each whole validation review, the cross-fitted head's
    logit as the graph computes it (b x logit, less the bias the dense layer holds; its
    fold's bias, `biases`), the joined probability with that logit, and the label. None
    for K > 2 labels (no cascade)."""
    if join.head.ndim > 1:
        return None
    n = len(join.labels) // 2
    z = join.a * join.network[:n] + join.b * join.head[:n] + join.c
    return {"head": join.b * (join.head[:n] - biases[:n]), "joined": 1.0 / (1.0 + np.exp(-z)),
            "labels": np.asarray(join.labels[:n], np.float64)}


def join_rows(x_val: np.ndarray, y_val: np.ndarray, seed: int
              ) -> tuple[list[np.ndarray], np.ndarray]:
    """(id rows, labels) the join's weights are fitted on: the validation reviews, then one
    random window of each (seed + 1)."""
    from rnncli.train.batches import BatchPlan, crop, real_rows

    rows = real_rows(x_val)
    rows += crop(rows, BatchPlan(1, x_val.shape[1], 1.0, *CROP),
                 np.random.default_rng(seed + 1))
    return rows, np.concatenate([y_val, y_val])


def join_accuracies(net: np.ndarray, head: np.ndarray, both: np.ndarray,
                    labels: np.ndarray) -> dict:
    """Accuracy of the network's, the head's and the joined logits on join_rows' rows, on
    the whole reviews (first half) and on their windows (second half); logits [rows] or
    [rows, K]."""
    n = len(labels) // 2

    def accuracy(z, part):
        if z.ndim > 1:
            return float((z[part].argmax(1) == np.round(labels[part])).mean())
        return float(((z[part] > 0) == (labels[part] > 0.5)).mean())

    return {name: {"whole": accuracy(z, slice(0, n)), "windows": accuracy(z, slice(n, None))}
            for name, z in (("network", net), ("head", head), ("both", both))}


def network_logits(joined, cfg, rows: list[np.ndarray], width: int) -> np.ndarray:
    """The dense layer's output of a model with the head (the network's logit, before the
    head's is added: [rows], or [rows, K] for K > 2 labels) for id rows that already carry
    their start marker, 256 per call; a masked model reads them in length-sorted batches
    cut to their longest."""
    import keras

    from rnncli.text.tokenizer import pad_sequences

    x = pad_sequences(rows, width, cfg.data.padding, cfg.data.truncating, start=None)
    if joined.input_shape[1] is None:
        batches = trimmed_batches(x, cfg.data.padding, 256)
    else:
        batches = [(x[at : at + 256], np.arange(at, min(at + 256, len(x))))
                   for at in range(0, len(x), 256)]
    network = keras.Model(joined.input, joined.get_layer("dense").output)
    width = network.output_shape[-1]
    if width > 1:
        out = np.zeros((len(x), width))
        for batch, at in batches:
            out[at] = np.asarray(network.predict_on_batch(batch), np.float64)
        return out
    out = np.zeros(len(x))
    for batch, at in batches:
        out[at] = np.asarray(network.predict_on_batch(batch), np.float64).ravel()
    return out
