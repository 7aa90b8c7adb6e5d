"""Scoring a model on a split: the same metrics for Keras and ONNX models (numpy only).

    report = evaluate_model(find_model(None), home, split="test")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from rnncli.data import store as dataset
from rnncli.errors import ModelError
from rnncli.serve.locate import ModelRef

EPS = 1e-7  # Keras's epsilon: log(0) is clipped the same way


def binary_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict:
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(prob, dtype=np.float64).ravel()
    pc = np.clip(p, EPS, 1 - EPS)
    loss = float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))) if len(y) else 0.0
    pred = (p >= threshold).astype(np.int64)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "reviews": int(len(y)),
        "loss": loss,
        "accuracy": (tp + tn) / len(y) if len(y) else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(y, p),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "threshold": threshold,
    }


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via ranks (Mann-Whitney U), ties sharing their mean rank."""
    n_pos = int((y == 1).sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(len(score), dtype=np.float64)
    # Mean rank for each run of equal scores.
    _, starts, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mean_ranks = starts + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_ranks, counts)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# Reviews scored between two progress reports: a multiple of every batch size used here
# (1024), so that the batches, and the probabilities, are those of one call on everything.
CHUNK = 4096

Progress = Callable[[int, int], None]  # (reviews scored, reviews in all)


def in_chunks(score: Callable, items, on_batch: Progress | None, chunk: int = CHUNK
              ) -> np.ndarray:
    """score(items) one chunk at a time, telling `on_batch` after each."""
    n, parts = len(items), []
    for start in range(0, n, chunk):
        parts.append(np.asarray(score(items[start : start + chunk]), np.float64).reshape(-1))
        if on_batch:
            on_batch(min(start + chunk, n), n)
    return np.concatenate(parts) if parts else np.zeros(0, np.float64)


def load_keras(ref: ModelRef, prep):
    """The Keras model `ref` names, checked against the preprocessing.json beside it."""
    from rnncli.config.run_files import PREPROCESSING
    from rnncli.model.runtime import check_fits, load_keras_model

    model = load_keras_model(ref.path)
    check_fits(model, prep, ref.path, ref.path.parent / PREPROCESSING)
    return model


def predict_probabilities(model, x: np.ndarray, batch_size: int = 1024,
                          on_batch: Progress | None = None) -> np.ndarray:
    """Probabilities of a Keras model for an id matrix (evaluate_model checks them, as
    serving checks an ONNX model's)."""
    return in_chunks(lambda rows: model.predict(rows, batch_size=batch_size, verbose=0), x,
                     on_batch)


def _onnx_model(ref: ModelRef):
    """The ONNX model `ref` names, loaded once, or None for a Keras model."""
    if ref.kind != "onnx":
        return None
    from rnncli.serve.onnx_model import OnnxModel

    return OnnxModel(ref.path)


def encode_split(prep, home: Path, split: str = "test",
                 limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` reviews of `split` (all by default) as the model's input and labels.

    The stored ids serve when the model's vocabulary is the prepared dataset's; otherwise
    the original texts are encoded with the model's own vocabulary.
    """
    data = dataset.load_split(home, split)
    if dataset.load_vocabulary(home).truncated(prep.num_words).words == prep.vocabulary:
        x, y = dataset.load_encoded(data, prep.num_words, prep.maxlen, prep.padding,
                                    prep.truncating)
        return (x[:limit], y[:limit]) if limit else (x, y)
    n = min(limit or len(data), len(data))
    texts = data.texts(n)
    if texts is None:
        source = dataset.read_meta(home)["source"]
        raise ModelError(
            f"The model's vocabulary differs from the prepared {source} data, which kept "
            "no texts: `rnncli data fetch` the source the model came from."
        )
    x, _ = prep.encode(texts)
    return x, data.labels[:n].astype(np.float32)


def _text_split_probabilities(model, home: Path, split: str, limit: int | None,
                              on_batch: Progress | None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of the first `limit` reviews of `split`, fed as text."""
    data = dataset.load_split(home, split)
    texts = data.texts(limit)
    if texts is None:
        source = dataset.read_meta(home)["source"]
        raise ModelError(f"A text-input model reads review texts, and the prepared {source} "
                         "data kept none: `rnncli data fetch` the aclImdb archive.")
    probs = in_chunks(lambda part: model.text_probabilities(part)[0], texts, on_batch)
    return data.labels[: len(texts)].astype(np.float32), probs


def evaluate_model(ref: ModelRef, home: Path, split: str = "test",
                   limit: int | None = None,
                   progress: Callable[[str], None] | None = None, model=None,
                   on_batch: Progress | None = None) -> dict:
    """Encode `split` with the model's own preprocessing, predict, and score.

    `progress` hears of the one long wait, loading TensorFlow for a Keras model;
    `on_batch` of the reviews scored so far, a few thousand at a time. `model`: the
    OnnxModel of `ref`, if the caller has loaded it already. A model whose outputs are not
    probabilities (NaN, infinite, outside [0, 1]) is refused with a ModelError rather than
    scored, and so is a Keras model that does not fit its preprocessing.json."""
    from rnncli.serve.onnx_model import check_probabilities

    onnx = model or _onnx_model(ref)
    if onnx is None:
        from rnncli.serve.locate import keras_preprocessing

        prep = keras_preprocessing(ref.path)
    else:
        prep = onnx.preprocessing
    if onnx is not None and onnx.takes_text:  # the graph tokenizes the texts itself
        y, prob = _text_split_probabilities(onnx, home, split, limit, on_batch)
    else:
        x, y = encode_split(prep, home, split, limit)
        if onnx is not None:
            # As many reviews per report as the model's threads take at once.
            chunk = 1024 * max(4, getattr(onnx, "workers", 1))
            prob = in_chunks(onnx.predict_ids, x, on_batch, chunk)
        else:
            from rnncli.config.run_files import PREPROCESSING
            from rnncli.model.runtime import check_file_fits, require_training_extra

            check_file_fits(ref.path, prep, ref.path.parent / PREPROCESSING)
            if progress:
                require_training_extra("Loading a Keras model")  # an error, not progress
                progress(f"Loading TensorFlow and {ref.path}, then scoring {len(y):,} "
                         f"{split} reviews...")
            keras_model = load_keras(ref, prep)
            prob = check_probabilities(predict_probabilities(keras_model, x, on_batch=on_batch),
                                       ref.path, "retrain it")
    return {"model": str(ref.path), "kind": ref.kind, "bundled": ref.bundled, "split": split,
            **binary_metrics(y, prob, prep.threshold)}
