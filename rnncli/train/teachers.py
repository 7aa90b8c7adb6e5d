"""What a student is distilled from: teacher runs (Keras models) and a linear n-gram teacher.

    teacher = make_teacher(cfg, prep, x, labels)   # x: the training reviews' padded ids
    teacher.predict_on_batch(x)                    # probabilities of padded id rows

The n-gram teacher (`--ngram-teacher W`) is TF-IDF + logistic regression on the words and
word pairs of the training reviews (model/ngram.py's NgramModel with exact keys), fitted
before the first epoch: the model that scores best on short text here
(benchmarks/bench_accuracy.py), which a recurrent student sees through the same cropped
batches as its recurrent teachers. Its weight W mixes it with their mean. scikit-learn does
the weighting and the fit (the [train] extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnncli.config import run_files
from rnncli.config.settings import RunConfig
from rnncli.errors import UsageError
from rnncli.model import runtime as tf_runtime
from rnncli.model.ngram import NgramModel, require_sklearn
from rnncli.serve import locate
from rnncli.text import tokenizer as text
from rnncli.text.preprocessing import Preprocessing


def check_teachers(folders: list[str], prep: Preprocessing) -> list[locate.ModelRef]:
    """The teachers' Keras models, refused before anything loads where their files say
    they read reviews otherwise than this run (`prep`) or are no masked model."""
    refs = []
    for folder in folders:
        ref = locate.find_model(Path(folder))
        if ref.kind != "keras":
            raise UsageError(f"Teacher {folder} has no Keras model: give a run folder.")
        theirs = locate.keras_preprocessing(ref.path)
        check_reads_alike(folder, theirs, prep)
        tf_runtime.check_file_fits(ref.path, theirs, ref.path.parent / run_files.PREPROCESSING)
        pooling = _pooling_of(ref.path.parent / run_files.CONFIG)
        if pooling is not None and not pooling.masked:
            raise UsageError(f"Teacher {folder} is not a masked-max model (its pooling is "
                             f"{pooling.name}): distillation cuts batches, which only masked "
                             "models read exactly.")
        refs.append(ref)
    return refs


def _pooling_of(config: Path):
    """The pooling a run's config.json names, or None where it names none we know."""
    from rnncli.fsutil import read_json
    from rnncli.model import poolings

    try:
        return poolings.POOLINGS.get(read_json(config)["model"]["pooling"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_teachers(folders: list[str], prep: Preprocessing) -> list:
    """Teacher models for distillation; each must read the student's ids the same way, and
    its model must be the one its own preprocessing.json describes."""
    models = []
    for folder, ref in zip(folders, check_teachers(folders, prep)):
        theirs = locate.keras_preprocessing(ref.path)
        model = tf_runtime.load_keras_model(ref.path)
        tf_runtime.check_fits(model, theirs, ref.path, ref.path.parent / run_files.PREPROCESSING)
        if model.get_layer("embedding").mask_zero is not True:
            raise UsageError(f"Teacher {folder} is not a masked-max model: distillation cuts "
                             "batches, which only masked models read exactly.")
        models.append(model)
    return models


def check_reads_alike(folder: str, theirs: Preprocessing, prep: Preprocessing) -> None:
    """Refuse a teacher that reads reviews otherwise than this run, naming both sides."""
    meta = Path(folder) / run_files.PREPROCESSING
    same = "train teachers with this run's data settings"
    # An empty source is a model that does not say (an older rnncli): its vocabulary decides.
    if theirs.source and prep.source and theirs.source != prep.source:
        raise UsageError(f"Teacher {folder} was trained on {theirs.source} ({meta} says "
                         f"source {theirs.source!r}), this run on {prep.source}: train "
                         f"teachers on the same dataset (--dataset {prep.source}).")
    if theirs.labels != prep.labels:
        raise UsageError(f"Teacher {folder} tells {', '.join(theirs.labels)} apart ({meta}), "
                         f"this run {', '.join(prep.labels)}: train teachers on the same "
                         "dataset.")
    if theirs.maxlen != prep.maxlen:
        raise UsageError(f"Teacher {folder} reads {theirs.maxlen} tokens ({meta} says maxlen "
                         f"{theirs.maxlen}), this run {prep.maxlen} (--maxlen): {same}.")
    if theirs.num_words < prep.num_words:
        raise UsageError(f"Teacher {folder} knows {theirs.num_words:,} word ids ({meta} says "
                         f"num_words {theirs.num_words:,}), this run {prep.num_words:,} "
                         f"(--num-words): {same}, or a smaller --num-words here.")
    ours, known = prep.vocabulary, theirs.vocabulary[: prep.num_words - text.INDEX_FROM]
    if known != ours:
        at = next((i for i, (a, b) in enumerate(zip(known, ours)) if a != b),
                  min(len(known), len(ours)))

        def word(words: list[str]) -> str:
            return repr(words[at]) if at < len(words) else "missing"

        raise UsageError(f"Teacher {folder} has another vocabulary: word {at + 1} is "
                         f"{word(known)} in {meta}, {word(ours)} in this run's prepared data: "
                         "train teachers on the same prepared data.")


def fit_ngram_teacher(rows, labels: np.ndarray, num_words: int) -> NgramModel:
    """The n-gram teacher: the n-gram model of exact keys fitted on `rows` (id rows, padded
    or not) and their labels."""
    require_sklearn("--ngram-teacher")
    return NgramModel(num_words, keys="exact").fit(rows, labels)


class TeacherMix:
    """(1 - w) x the mean of the teacher models + w x the n-gram teacher's probability
    (either alone when the other is absent)."""

    def __init__(self, models: list, ngram: NgramModel | None = None, weight: float = 0.0):
        self.models, self.ngram, self.weight = models, ngram, weight

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        parts = [np.asarray(m.predict_on_batch(x), np.float32).reshape(-1) for m in self.models]
        mean = np.mean(parts, axis=0) if parts else None
        if self.ngram is None:
            return mean
        linear = self.ngram.predict_proba(np.asarray(x))[:, 1].astype(np.float32)
        return linear if mean is None else (1 - self.weight) * mean + self.weight * linear


def make_teacher(cfg: RunConfig, prep: Preprocessing, x: np.ndarray,
                 labels: np.ndarray) -> TeacherMix:
    """The teacher of a run that distils (config.distils); `x` and `labels` are its training
    reviews (the n-gram teacher is fitted on them, never on the validation share)."""
    t = cfg.train
    models = load_teachers(t.teachers, prep) if t.teachers else []
    ngram = fit_ngram_teacher(x, labels, cfg.data.num_words) if t.ngram_teacher > 0 else None
    return TeacherMix(models, ngram, t.ngram_teacher)
