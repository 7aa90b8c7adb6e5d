"""What a student is distilled from: teacher runs (Keras models) and a linear n-gram teacher.

    teacher = make_teacher(cfg, prep, x, labels)   # x: the training reviews' padded ids
    teacher.predict_on_batch(x)                    # probabilities of padded id rows

The n-gram teacher (`--ngram-teacher W`) is TF-IDF + logistic regression on the words and
word pairs of the training reviews, fitted before the first epoch: the model that scores
best on short text here (benchmarks/bench_accuracy.py), which a recurrent student sees
through the same cropped batches as its recurrent teachers. Its weight W mixes it with
their mean. scikit-learn does the weighting and the fit (the [train] extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnncli.config.settings import RunConfig
from rnncli.errors import UsageError
from rnncli.model import runtime as tf_runtime
from rnncli.model.ngram import count_matrix
from rnncli.serve import locate
from rnncli.text.preprocessing import Preprocessing
from rnncli.text.tokenizer import OOV

MIN_REVIEWS = 2  # an n-gram in fewer training reviews is left out (as TF-IDF's min_df)
C = 4.0  # inverse L2 strength of the logistic regression (the bigram baseline's)


def load_teachers(folders: list[str], prep: Preprocessing) -> list:
    """Teacher models for distillation; each must read the student's ids the same way."""
    models = []
    for folder in folders:
        ref = locate.find_model(Path(folder))
        if ref.kind != "keras":
            raise UsageError(f"Teacher {folder} has no Keras model: give a run folder.")
        theirs = locate.keras_preprocessing(ref.path)
        if (theirs.vocabulary[: prep.num_words - 3] != prep.vocabulary
                or theirs.num_words < prep.num_words or theirs.maxlen != prep.maxlen):
            raise UsageError(f"Teacher {folder} reads reviews differently (vocabulary, "
                             "num_words or maxlen): train teachers on the same data settings.")
        model = tf_runtime.load_keras_model(ref.path)
        if model.get_layer("embedding").mask_zero is not True:
            raise UsageError(f"Teacher {folder} is not a masked-max model: distillation cuts "
                             "batches, which only masked models read exactly.")
        models.append(model)
    return models


def ngram_keys(row: np.ndarray, num_words: int) -> np.ndarray:
    """The words and word pairs of one id row as int64 keys (pads and the start marker
    dropped): word a is a * num_words, the pair (a, b) is a * num_words + b (b >= OOV > 0)."""
    ids = row[row >= OOV].astype(np.int64)
    return np.concatenate([ids * num_words, ids[:-1] * num_words + ids[1:]])


class NgramTeacher:
    """TF-IDF (sublinear counts, smoothed idf, L2 rows) + logistic regression on n-gram keys."""

    def __init__(self, rows, labels: np.ndarray, num_words: int):
        """Fitted on `rows` (id rows, padded or not: ngram_keys drops pads) and labels."""
        try:
            from sklearn.feature_extraction.text import TfidfTransformer
            from sklearn.linear_model import LogisticRegression
        except ImportError:
            raise UsageError('--ngram-teacher needs scikit-learn: pip install "rnncli[train]"'
                             ) from None
        self.num_words = num_words
        keys = [np.unique(ngram_keys(r, num_words)) for r in rows]
        found, reviews = np.unique(np.concatenate(keys), return_counts=True)
        self.keys = found[reviews >= MIN_REVIEWS]
        self.tfidf = TfidfTransformer(sublinear_tf=True)
        counts = self._counts(rows)
        self.model = LogisticRegression(C=C, max_iter=2000)
        self.model.fit(self.tfidf.fit_transform(counts), np.asarray(labels) > 0.5)

    def _counts(self, rows):
        cols = []
        for r in rows:
            k = ngram_keys(r, self.num_words)
            at = np.minimum(np.searchsorted(self.keys, k), len(self.keys) - 1)
            cols.append(at[self.keys[at] == k])
        return count_matrix(cols, len(self.keys))

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        counts = self._counts(list(np.asarray(x)))
        return self.model.predict_proba(self.tfidf.transform(counts))[:, 1].astype(np.float32)


class TeacherMix:
    """(1 - w) x the mean of the teacher models + w x the n-gram teacher (either alone when
    the other is absent)."""

    def __init__(self, models: list, ngram: NgramTeacher | None = None, weight: float = 0.0):
        self.models, self.ngram, self.weight = models, ngram, weight

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        parts = [np.asarray(m.predict_on_batch(x), np.float32).reshape(-1) for m in self.models]
        mean = np.mean(parts, axis=0) if parts else None
        if self.ngram is None:
            return mean
        linear = self.ngram.predict_on_batch(x)
        return linear if mean is None else (1 - self.weight) * mean + self.weight * linear


def make_teacher(cfg: RunConfig, prep: Preprocessing, x: np.ndarray,
                 labels: np.ndarray) -> TeacherMix:
    """The teacher of a run that distils (config.distils); `x` and `labels` are its training
    reviews (the n-gram teacher is fitted on them, never on the validation share)."""
    t = cfg.train
    models = load_teachers(t.teachers, prep) if t.teachers else []
    ngram = NgramTeacher(x, labels, cfg.data.num_words) if t.ngram_teacher > 0 else None
    return TeacherMix(models, ngram, t.ngram_teacher)
