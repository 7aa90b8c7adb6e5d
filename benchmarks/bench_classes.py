"""Your own data with K labels: rnncli's defaults against TF-IDF + logistic regression, in one run.

    python benchmarks/bench_classes.py [--archive aclImdb_v1.tar.gz] [--train 10000]
        [--test 5000] [--bins 1-2,3-4,7-8,9-10] [--workdir DIR]

The data is a public multi-class set that works offline: the IMDB reviews by their stars,
binned (default: 4 labels, 1-2 / 3-4 / 7-8 / 9-10 stars; each review's stars are in its
file name in the aclImdb archive). A seeded stratified sample of `--train` train reviews
and `--test` test reviews is written to train.csv and test.csv, and then it goes the way a
user's files go:

    rnncli data import train.csv --test test.csv --name stars --label-column stars
    rnncli train --dataset stars --output run            # the dataset's own defaults
    rnncli evaluate --model run --dataset stars --json

Beside it, on the same split and the same tokens (rnncli's tokenizer): TF-IDF on words and
word pairs (seen at least twice, sublinear counts) + multinomial logistic regression, its C
chosen from 0.5 / 2 / 8 on the last 20% of the train part (the share rnncli validates on),
then refitted on the whole train part. Printed: accuracy, macro-F1 and training seconds of
each, and rnncli's accuracy as a ratio of the baseline's.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rnncli.data import archive

HERE = Path(__file__).resolve().parent
DEFAULT_ARCHIVE = HERE.parent.parent / "shared" / "data" / "aclImdb_v1.tar.gz"


def parse_bins(spec: str) -> dict[int, str]:
    """"1-2,3-4" -> {1: "1-2", 2: "1-2", 3: "3-4", 4: "3-4"}."""
    stars = {}
    for part in spec.split(","):
        low, _, high = part.partition("-")
        for s in range(int(low), int(high or low) + 1):
            stars[s] = part
    return stars


def sample(rows: list[tuple[str, str]], n: int, seed: int) -> list[tuple[str, str]]:
    """A stratified sample of `n` rows (label shares kept), in a seeded random order."""
    rng = np.random.default_rng(seed)
    labels = np.array([label for _, label in rows])
    picked = []
    for label in sorted(set(labels)):
        idx = np.flatnonzero(labels == label)
        k = round(n * len(idx) / len(rows))
        picked.extend(rng.choice(idx, size=min(k, len(idx)), replace=False).tolist())
    picked = rng.permutation(picked)
    return [rows[i] for i in picked]


def write_csvs(path: Path, bins: dict[int, str], n_train: int, n_test: int, seed: int,
               out: Path) -> dict[str, list[tuple[str, str]]]:
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    for r in archive.iter_reviews(path):
        if r.rating in bins:
            text = r.raw.decode("utf-8", errors="replace").replace("<br />", " ")
            splits[r.split].append((text, bins[r.rating]))
    chosen = {"train": sample(splits["train"], n_train, seed),
              "test": sample(splits["test"], n_test, seed + 1)}
    for split, rows in chosen.items():
        with open(out / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "stars"])
            w.writerows(rows)
    return chosen


def rnncli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RNNCLI_HOME": str(home)}
    res = subprocess.run([sys.executable, "-m", "rnncli", *args], env=env, text=True,
                         capture_output=True)
    if res.returncode:
        sys.exit(f"rnncli {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return res


def baseline(train: list[tuple[str, str]], test: list[tuple[str, str]]) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    from rnncli.text.tokenizer import tokenize

    started = time.perf_counter()
    texts = [t for t, _ in train]
    y = np.array([label for _, label in train])
    cut = len(texts) - round(0.2 * len(texts))

    def fit(xs, ys, c):
        vec = TfidfVectorizer(analyzer=lambda s: _pairs(tokenize(s)), min_df=2,
                              sublinear_tf=True)
        model = LogisticRegression(C=c, max_iter=2000).fit(vec.fit_transform(xs), ys)
        return vec, model

    scores = {}
    for c in (0.5, 2.0, 8.0):
        vec, model = fit(texts[:cut], y[:cut], c)
        scores[c] = accuracy_score(y[cut:], model.predict(vec.transform(texts[cut:])))
    best = max(scores, key=scores.get)
    vec, model = fit(texts, y, best)
    seconds = time.perf_counter() - started
    pred = model.predict(vec.transform([t for t, _ in test]))
    truth = [label for _, label in test]
    return {"accuracy": accuracy_score(truth, pred),
            "macro_f1": f1_score(truth, pred, average="macro"), "seconds": seconds, "C": best,
            "validation": scores}


def _pairs(words: list[str]) -> list[str]:
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, default=Path(
        os.environ.get("RNNCLI_TEST_ARCHIVE", DEFAULT_ARCHIVE)))
    ap.add_argument("--train", type=int, default=10_000)
    ap.add_argument("--test", type=int, default=5_000)
    ap.add_argument("--bins", default="1-2,3-4,7-8,9-10")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, help="keep the files here (default: a temp dir)")
    ap.add_argument("train_args", nargs="*", help="more `rnncli train` options, after --")
    a = ap.parse_args()

    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench-classes-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    chosen = write_csvs(a.archive, parse_bins(a.bins), a.train, a.test, a.seed, work)
    labels = sorted({label for _, label in chosen["train"]})
    print(f"{len(chosen['train']):,} train / {len(chosen['test']):,} test reviews, "
          f"{len(labels)} labels ({', '.join(labels)}) from {a.archive.name}; "
          f"{os.cpu_count()} cores")

    started = time.perf_counter()
    rnncli("data", "import", str(work / "train.csv"), "--test", str(work / "test.csv"),
           "--name", "stars", "--label-column", "stars", "--force", home=home)
    imported = time.perf_counter() - started
    started = time.perf_counter()
    res = rnncli("train", "--dataset", "stars", "--output", str(work / "run"), "--overwrite",
                 *a.train_args, home=home)
    trained = time.perf_counter() - started
    defaults = [line for line in res.stdout.splitlines() + res.stderr.splitlines()
                if line.startswith("dataset stars:")]
    report = json.loads(rnncli("evaluate", "--model", str(work / "run"), "--dataset", "stars",
                               "--json", home=home).stdout)
    base = baseline(chosen["train"], chosen["test"])

    print(*defaults, sep="\n")
    print(f"\n{'model':<44} {'accuracy':>8} {'macro-F1':>8} {'train s':>8}")
    print(f"{'rnncli train --dataset (its defaults)':<44} {report['accuracy']:>8.4f} "
          f"{report['macro_f1']:>8.4f} {trained:>8.0f}")
    print(f"{'TF-IDF words+pairs + LR (C=' + format(base['C'], 'g') + ')':<44} "
          f"{base['accuracy']:>8.4f} {base['macro_f1']:>8.4f} {base['seconds']:>8.0f}")
    print(f"\nrnncli / baseline accuracy: {report['accuracy'] / base['accuracy']:.3f}x "
          f"(import {imported:.0f} s; files in {work})")


if __name__ == "__main__":
    main()
