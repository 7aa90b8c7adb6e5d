"""Accuracy on long and short text, beside the linear baseline, measured in one run.

    python benchmarks/bench_accuracy.py artifacts/ rnncli/bundled/model.onnx [--data-dir D]

For each model (a run folder, a .keras or an .onnx file): accuracy on the whole test split,
and on two short-text sets built from the test split:
- first sentence: each review's first sentence of 4 words or more, with the review's label;
- crops: a random window of 8 to 30 words of each review (seed 0), with the review's label
(both from benchmarks/short_text.py, which bench_serve.py shares).
Beside them, TF-IDF + logistic regression (rnncli's NgramModel; scikit-learn, `pip install
scikit-learn`) trained on the train split, on words and on words + bigrams: the baseline to
beat; NBSVM on words + bigrams (Wang & Manning, 2012, with logistic regression: each
review's binarized n-grams scaled by their naive Bayes log-count ratios, C chosen on 5,000
train reviews held out at random, then fitted on all 25,000); and `rnncli train --ngram-teacher`'s
linear teacher (the same model) fitted on the whole train split's ids (30,000 words, maxlen
500), with its fit time, scored in batches of 64 as in training.
Test reviews are scored with the model's own preprocessing (rnncli's one tokenizer). An
ONNX model with a cascade is scored twice: as served, and with --no-cascade (the network
on every review), and the share of each set's reviews that stop at its head is printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from short_text import crops, first_sentences

from rnncli.data import store as dataset
from rnncli.evaluate import binary_metrics
from rnncli.model import runtime as tf_runtime
from rnncli.serve import locate
from rnncli.text import tokenizer as text


def keras_scorer(path: Path):
    model = tf_runtime.load_keras_model(path)
    prep = locate.keras_preprocessing(path)
    masked = model.get_layer("embedding").mask_zero is True

    def score(texts: list[str]) -> np.ndarray:
        ids = [prep.encode_one(t)[0] for t in texts]
        order = np.argsort([len(i) for i in ids], kind="stable")
        probs = np.zeros(len(texts), np.float32)
        for at in range(0, len(order), 256):
            chunk = order[at : at + 256]
            # Masked models read any width exactly: cut each sorted batch to its longest.
            width = prep.maxlen if not masked else min(
                prep.maxlen, 1 + max(len(ids[i]) for i in chunk))
            x = text.pad_sequences([ids[i] for i in chunk], width, prep.padding,
                                   prep.truncating)
            probs[chunk] = np.asarray(model.predict_on_batch(x)).reshape(-1)
        return probs

    return score


def onnx_scorer(path: Path, cascade: bool = True):
    from rnncli.serve.onnx_model import OnnxModel

    model = OnnxModel(path, cascade=cascade)

    def score(texts: list[str]) -> np.ndarray:
        return np.array([p.probability for p in model.predict_stream(iter(texts), 256)],
                        np.float32)

    return score


def onnx_cascade(path: Path) -> bool:
    from rnncli.serve.onnx_model import OnnxModel

    return OnnxModel(path, workers=1).has_cascade


def exit_shares(path: Path, sets: dict[str, list[str]]) -> str:
    """The share of each set's reviews that stop at the cascade's head: the calibrated
    head's probability for every review (threshold 0), against the stored threshold."""
    from rnncli.serve import contract
    from rnncli.serve.onnx_model import OnnxModel

    model = OnnxModel(path)
    threshold = json.loads(model.metadata[contract.CASCADE])["threshold"]
    model.feeds = {**model.feeds, contract.CASCADE_INPUT: np.array(0.0, np.float32)}
    shares = []
    for name, texts in sets.items():
        p = np.array([r.probability for r in model.predict_stream(iter(texts), 256)],
                     np.float64).clip(1e-12, 1 - 1e-12)
        shares.append(f"{name} {np.mean(np.abs(np.log(p / (1 - p))) >= threshold):.1%}")
    return f"stop at the head (|z| >= {threshold:.3f}): " + ", ".join(shares)


def scorer(spec: str):
    ref = locate.find_model(Path(spec), prefer="keras")
    return (keras_scorer if ref.kind == "keras" else onnx_scorer)(ref.path)


def linear_baselines(train_texts: list[str], train_y: np.ndarray) -> dict:
    """TF-IDF + logistic regression on words (C = 2) and on words + bigrams (C = 4): rnncli's
    NgramModel of exact keys on ids of every word of the train split, numbered in
    alphabetical order, so that its columns are those of scikit-learn's
    TfidfVectorizer(tokenizer=text.tokenize, min_df=2, sublinear_tf=True) in the same
    order; unknown test words count for nothing, as there."""
    from rnncli.model.ngram import NgramModel

    vocab = text.Vocabulary(sorted({w for ws in text.tokenize_many(train_texts) for w in ws}))
    num_words = text.INDEX_FROM + len(vocab)

    def rows(texts: list[str]) -> list[np.ndarray]:
        ids, lengths = vocab.encode_many(texts)
        return np.split(ids, np.cumsum(lengths)[:-1]) if len(texts) else []

    train_rows = rows(train_texts)
    made = {}
    for name, order, c in (("tfidf+lr words", 1, 2.0), ("tfidf+lr words+bigrams", 2, 4.0)):
        model = NgramModel(num_words, keys="exact", order=order, C=c).fit(train_rows, train_y)
        made[name] = lambda texts, m=model: m.predict_proba(rows(texts))[:, 1]
    made["nbsvm words+bigrams"] = nbsvm(rows, train_rows, train_y, num_words)
    return made


NBSVM_CS = (0.25, 0.5, 1.0, 2.0)


def nbsvm(rows, train_rows: list[np.ndarray], train_y: np.ndarray, num_words: int):
    """NBSVM-LR on exact word and pair keys: binarized features times the keys' naive Bayes
    log-count ratios (train split only), L2 logistic regression; a scorer of texts."""
    from scipy.sparse import diags
    from sklearn.linear_model import LogisticRegression

    from rnncli.model.ngram import count_matrix, nb_ratios, row_keys

    def keys(rs):
        return [row_keys(r, num_words, keys="exact") for r in rs]

    found = np.unique(np.concatenate(keys(train_rows)))

    def features(rs, ratios):
        columns = []
        for k in keys(rs):
            at = np.searchsorted(found, k)
            known = at < len(found)
            known[known] = found[at[known]] == k[known]
            columns.append(at[known])
        binary = count_matrix(columns, len(found)).sign()
        return binary @ diags(ratios)

    def fit(rs, y, c):
        ratios = nb_ratios(count_matrix([np.searchsorted(found, k) for k in keys(rs)],
                                        len(found)), y)
        return ratios, LogisticRegression(C=c, max_iter=2000).fit(features(rs, ratios), y)

    cut = len(train_rows) - 5000
    order = np.random.default_rng(0).permutation(len(train_rows))  # the split lists labels
    fit_part, val_part = order[:cut], order[cut:]  # in blocks: a shuffled held-out share
    val_rows = [train_rows[i] for i in val_part]
    scores = {}
    for c in NBSVM_CS:
        ratios, model = fit([train_rows[i] for i in fit_part], train_y[fit_part], c)
        scores[c] = model.score(features(val_rows, ratios), train_y[val_part])
    best = max(scores, key=scores.get)
    print("nbsvm: held-out accuracy by C: " + ", ".join(
        f"{c:g} {v:.4f}" for c, v in scores.items()) + f"; fitted on the train split at C {best:g}")
    ratios, model = fit(train_rows, train_y, best)
    return lambda texts: model.predict_proba(features(rows(texts), ratios))[:, 1]


def ngram_teacher(home: Path, num_words: int = 30000, maxlen: int = 500):
    """rnncli's --ngram-teacher as a model of its own: fitted on the whole train split's ids
    (a run fits it on its training share), texts encoded with the dataset's vocabulary."""
    from rnncli.text.preprocessing import Preprocessing
    from rnncli.train.teachers import TeacherMix, fit_ngram_teacher

    x, y = dataset.load_encoded(dataset.load_split(home, "train"), num_words, maxlen)
    started = time.perf_counter()
    teacher = TeacherMix([], fit_ngram_teacher(x, y, num_words), 1.0)
    fit = time.perf_counter() - started
    words = dataset.load_vocabulary(home).truncated(num_words).words
    prep = Preprocessing(vocabulary=words, num_words=num_words, maxlen=maxlen)

    def score(texts: list[str]) -> np.ndarray:
        ids, _ = prep.encode(texts, trim=False)
        return np.concatenate([teacher.predict_on_batch(ids[i : i + 64])
                               for i in range(0, len(ids), 64)] or [np.zeros(0, np.float32)])

    return f"--ngram-teacher alone (fit {fit:.1f} s)", score


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", help="run folders, .keras or .onnx files")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    home = dataset.data_home(args.data_dir)
    test = dataset.load_split(home, "test")
    test_texts, y = test.texts(), test.labels.astype(np.int64)
    short_texts, short_y = first_sentences(test_texts, y)
    crop_texts = crops(test_texts)
    print(f"test reviews {len(test_texts):,}; first sentences {len(short_texts):,} "
          f"(median {int(np.median([len(s.split()) for s in short_texts]))} words); "
          f"crops {len(crop_texts):,} (8-30 words)")
    scorers = {spec: scorer(spec) for spec in args.models}
    for spec in args.models:  # a model with a cascade: also with the network on every review
        ref = locate.find_model(Path(spec), prefer="keras")
        if ref.kind == "onnx" and onnx_cascade(ref.path):
            scorers[f"{spec} --no-cascade"] = onnx_scorer(ref.path, cascade=False)
    if not args.no_baseline:
        train = dataset.load_split(home, "train")
        scorers.update(linear_baselines(train.texts(), train.labels.astype(np.int64)))
        name, score = ngram_teacher(home)
        scorers[name] = score
    print(f"{'model':<44} {'test acc':>9} {'first sent.':>11} {'crops':>7} {'test s':>7}")
    for name, score in scorers.items():
        started = time.perf_counter()
        full = binary_metrics(y, score(test_texts))["accuracy"]
        seconds = time.perf_counter() - started
        first = binary_metrics(short_y, score(short_texts))["accuracy"]
        cropped = binary_metrics(y, score(crop_texts))["accuracy"]
        print(f"{name[-44:]:<44} {full:9.4f} {first:11.4f} {cropped:7.4f} {seconds:7.1f}",
              flush=True)
    for spec in args.models:
        ref = locate.find_model(Path(spec), prefer="keras")
        if ref.kind == "onnx" and onnx_cascade(ref.path):
            print(f"{spec}: " + exit_shares(ref.path, {
                "test": test_texts, "first sentence": short_texts, "crops": crop_texts}))


if __name__ == "__main__":
    main()
