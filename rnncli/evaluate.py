"""Scoring a model on a split or a labelled file: the same metrics for Keras and ONNX
models (numpy only).

    report = evaluate_model(find_model(None), home, split="test")
    report = evaluate_model(ref, home, source="tickets")       # an imported dataset
    report = evaluate_file(ref, Path("labelled.csv"), ["text"], "label")

A binary model gives one probability per review (of label 1), a model of K > 2 labels K
of them (softmax): `metrics` tells them apart by shape, [n] or [n, K]. Both reports hold
accuracy, macro-F1, per-label precision, recall, F1 and support, and a confusion matrix
(rows true, columns predicted); a binary one keeps its loss, precision, recall, F1 and ROC
AUC of the positive label, and its confusion as tn/fp/fn/tp.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from rnncli.data import store as dataset
from rnncli.errors import ModelError, UsageError
from rnncli.serve.locate import ModelRef

EPS = 1e-7  # Keras's epsilon: log(0) is clipped the same way


def binary_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5,
                   labels: list[str] | tuple[str, ...] = ("negative", "positive")) -> dict:
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
    per_class, macro_f1 = per_class_scores(np.array([[tn, fp], [fn, tp]]), list(labels))
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
        "macro_f1": macro_f1,
        "per_class": per_class,
    }


def per_class_scores(confusion: np.ndarray, labels: list[str]) -> tuple[dict, float]:
    """({label: precision, recall, f1, support}, macro-F1) of a confusion matrix (rows true,
    columns predicted). Macro-F1 averages the labels that occur, as truth or prediction (as
    scikit-learn's does): a file holding three labels of a model's ten is not scored on the
    seven it lacks. A label never predicted has precision 0, one absent recall 0."""
    cm = np.asarray(confusion, np.int64)
    tp, predicted, support = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
    per_class, f1s = {}, []
    for k, label in enumerate(labels):
        precision = tp[k] / predicted[k] if predicted[k] else 0.0
        recall = tp[k] / support[k] if support[k] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": float(precision), "recall": float(recall),
                            "f1": float(f1), "support": int(support[k])}
        if predicted[k] or support[k]:
            f1s.append(f1)
    return per_class, float(np.mean(f1s)) if f1s else 0.0


def class_metrics(y_true: np.ndarray, prob: np.ndarray, labels: list[str]) -> dict:
    """Metrics of a model of K > 2 labels: `prob` [n, K], each row a softmax; the
    prediction is the most probable label."""
    k = len(labels)
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(prob, np.float64).reshape(len(y), k)
    pred = p.argmax(axis=1)
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    chosen = np.clip(p[np.arange(len(y)), y], EPS, 1.0)
    per_class, macro_f1 = per_class_scores(cm, labels)
    return {
        "reviews": int(len(y)),
        "loss": float(-np.mean(np.log(chosen))) if len(y) else 0.0,
        "accuracy": float((pred == y).mean()) if len(y) else 0.0,
        "macro_f1": macro_f1,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def metrics(y_true: np.ndarray, prob: np.ndarray, prep, model: Path | str) -> dict:
    """binary_metrics or class_metrics, by the probabilities' shape, which must be the one
    the model's labels (`prep.labels`) call for."""
    prob = np.asarray(prob)
    k = prep.classes
    if prob.ndim == 1 and k == 2:
        report = binary_metrics(y_true, prob, prep.threshold, prep.labels)
    elif prob.ndim == 2 and prob.shape[1] == k > 2:
        report = class_metrics(y_true, prob, prep.labels)
    else:
        shape = "one probability" if prob.ndim == 1 else f"{prob.shape[1]} probabilities"
        raise ModelError(f"{model} gives {shape} per review, and its preprocessing names {k} "
                         "labels: they come from different runs; retrain or re-export it.")
    return {"labels": list(prep.labels), **report}


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
        parts.append(_per_review(score(items[start : start + chunk])))
        if on_batch:
            on_batch(min(start + chunk, n), n)
    return np.concatenate(parts) if parts else np.zeros(0, np.float64)


def _per_review(out) -> np.ndarray:
    """A model's output as [n] (binary: Keras gives [n, 1]) or [n, K] (K labels)."""
    p = np.asarray(out, np.float64)
    if p.ndim > 1:
        p = p.reshape(len(p), -1)
        if p.shape[1] == 1:
            p = p[:, 0]
    return p


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


def model_source(prep) -> str | None:
    """The dataset a model is scored on by default: the imported dataset it was trained on,
    where its preprocessing names one; else None, the current IMDB source."""
    source = prep.source
    return source if source and dataset.is_own(source) else None


def check_labels(prep, home: Path, source: str | None, model: Path | str) -> dict:
    """The dataset's meta, if its labels are the model's (by index): a model scored on
    another dataset's labels would count every review wrong, or right, by chance."""
    meta = dataset.read_meta(home, source)
    theirs = dataset.labels_of(meta)
    if theirs != list(prep.labels):
        raise UsageError(f"{model} tells {_listed(prep.labels)} apart, and dataset "
                         f"{meta['source']} has the labels {_listed(theirs)}: evaluate it on "
                         "the dataset it was trained on (--dataset), or on a labelled --file.")
    return meta


def _listed(labels, at_most: int = 8) -> str:
    shown = ", ".join(labels[:at_most])
    return shown + (f" (and {len(labels) - at_most} more)" if len(labels) > at_most else "")


def encode_split(prep, home: Path, split: str = "test", limit: int | None = None,
                 source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` reviews of `split` (all by default) of dataset `source` (default:
    model_source) as the model's input and labels.

    The stored ids serve when the model's vocabulary is the prepared dataset's; otherwise
    the original texts are encoded with the model's own vocabulary.
    """
    source = source or model_source(prep)
    data = dataset.load_split(home, split, source)
    if (dataset.load_vocabulary(home, source).truncated(prep.num_words).words
            == prep.vocabulary):
        x, y = dataset.load_encoded(data, prep.num_words, prep.maxlen, prep.padding,
                                    prep.truncating)
        return (x[:limit], y[:limit]) if limit else (x, y)
    n = min(limit or len(data), len(data))
    texts = data.texts(n)
    if texts is None:
        name = dataset.read_meta(home, source)["source"]
        raise ModelError(
            f"The model's vocabulary differs from the prepared {name} data, which kept "
            "no texts: `rnncli data fetch` the source the model came from."
        )
    x, _ = prep.encode(texts)
    return x, data.labels[:n].astype(np.float32)


def _text_split_probabilities(model, home: Path, split: str, limit: int | None,
                              on_batch: Progress | None, source: str | None = None
                              ) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of the first `limit` reviews of `split`, fed as text."""
    data = dataset.load_split(home, split, source)
    texts = data.texts(limit)
    if texts is None:
        name = dataset.read_meta(home, source)["source"]
        raise ModelError(f"A text-input model reads review texts, and the prepared {name} "
                         "data kept none: `rnncli data fetch` the aclImdb archive.")
    probs = in_chunks(lambda part: model.text_probabilities(part)[0], texts, on_batch)
    return data.labels[: len(texts)].astype(np.float32), probs


def _loaded(ref: ModelRef, model) -> tuple[object | None, object]:
    """(the OnnxModel, or None for a Keras model; the model's preprocessing)."""
    onnx = model or _onnx_model(ref)
    if onnx is not None:
        return onnx, onnx.preprocessing
    from rnncli.serve.locate import keras_preprocessing

    return None, keras_preprocessing(ref.path)


def _score_ids(ref: ModelRef, onnx, prep, x: np.ndarray, what: str,
               progress: Callable[[str], None] | None, on_batch: Progress | None
               ) -> np.ndarray:
    """Probabilities of id rows `x`: [n] for a binary model, [n, K] for K labels."""
    from rnncli.serve.onnx_model import check_probabilities

    if onnx is not None:
        # As many reviews per report as the model's threads take at once.
        chunk = 1024 * max(4, getattr(onnx, "workers", 1))
        return in_chunks(onnx.predict_ids, x, on_batch, chunk)
    from rnncli.config.run_files import PREPROCESSING
    from rnncli.model.runtime import check_file_fits, require_training_extra

    check_file_fits(ref.path, prep, ref.path.parent / PREPROCESSING)
    if progress:
        require_training_extra("Loading a Keras model")  # an error, not progress
        progress(f"Loading TensorFlow and {ref.path}, then scoring {len(x):,} {what}...")
    keras_model = load_keras(ref, prep)
    return check_probabilities(predict_probabilities(keras_model, x, on_batch=on_batch),
                               ref.path, "retrain it")


def evaluate_model(ref: ModelRef, home: Path, split: str = "test",
                   limit: int | None = None,
                   progress: Callable[[str], None] | None = None, model=None,
                   on_batch: Progress | None = None, source: str | None = None) -> dict:
    """Encode `split` of dataset `source` (default: model_source) with the model's own
    preprocessing, predict, and score.

    `progress` hears of the one long wait, loading TensorFlow for a Keras model;
    `on_batch` of the reviews scored so far, a few thousand at a time. `model`: the
    OnnxModel of `ref`, if the caller has loaded it already. A model whose outputs are not
    probabilities (NaN, infinite, outside [0, 1]) is refused with a ModelError rather than
    scored, and so is a Keras model that does not fit its preprocessing.json, and a dataset
    whose labels are not the model's."""
    onnx, prep = _loaded(ref, model)
    source = source or model_source(prep)
    meta = check_labels(prep, home, source, ref.path)
    if onnx is not None and onnx.takes_text:  # the graph tokenizes the texts itself
        y, prob = _text_split_probabilities(onnx, home, split, limit, on_batch, source)
    else:
        x, y = encode_split(prep, home, split, limit, source)
        prob = _score_ids(ref, onnx, prep, x, f"{split} reviews", progress, on_batch)
    return {"model": str(ref.path), "kind": ref.kind, "bundled": ref.bundled, "split": split,
            "dataset": meta["source"], **metrics(y, prob, prep, ref.path)}


def read_labelled(path: Path, text_columns: list[str] | None, label_column: str,
                  labels: list[str], limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """(texts, label indexes) of the first `limit` rows of a labelled table (csv, tsv, jsonl,
    Parquet); a label that is not one of `labels` (by name) is a UsageError naming its row."""
    from rnncli.text.tables import did_you_mean, open_table

    table = open_table(path, text_columns)
    if label_column not in table.columns:
        raise UsageError(f"{path} has no column {label_column!r}"
                         f"{did_you_mean(label_column, table.columns)}: its columns are "
                         f"{', '.join(table.columns)}; name the label column with "
                         "--label-column.")
    index = {name: i for i, name in enumerate(labels)}
    texts: list[str] = []
    ys: list[int] = []
    for batch in table.batches():
        for text, value in zip(table.texts(batch), batch[label_column]):
            key = value.strip() if isinstance(value, str) else (
                "" if value is None else str(value))
            if key not in index:
                raise UsageError(f"Row {len(texts) + 1} of {path} has the label {value!r}, "
                                 f"which is not one of the model's ({_listed(labels)}): fix "
                                 "the row, or evaluate a model trained on these labels.")
            texts.append(text)
            ys.append(index[key])
            if limit and len(texts) >= limit:
                return texts, np.array(ys, np.float32)
    return texts, np.array(ys, np.float32)


def evaluate_file(ref: ModelRef, path: Path, text_columns: list[str] | None = None,
                  label_column: str = "label", limit: int | None = None,
                  progress: Callable[[str], None] | None = None, model=None,
                  on_batch: Progress | None = None) -> dict:
    """Score the model on a labelled file: each row's text columns (joined) and its label's
    name in `label_column`. The file is read and its labels checked before the model is
    loaded (a Keras model loads TensorFlow: seconds)."""
    onnx, prep = _loaded(ref, model)
    texts, y = read_labelled(Path(path), text_columns, label_column, list(prep.labels), limit)
    if onnx is not None and onnx.takes_text:
        prob = in_chunks(lambda part: onnx.text_probabilities(part)[0], texts, on_batch)
    else:
        x, _ = prep.encode(texts)
        prob = _score_ids(ref, onnx, prep, x, f"reviews of {Path(path).name}", progress,
                          on_batch)
    return {"model": str(ref.path), "kind": ref.kind, "bundled": ref.bundled,
            "file": str(path), **metrics(y, prob, prep, ref.path)}
