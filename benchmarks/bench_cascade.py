"""The cascade's dial: what each budget costs and saves, measured in one run.

    python benchmarks/bench_cascade.py RUN [--model FILE] [--budgets 0.02,0.05,0.1,0.2]
    python benchmarks/bench_cascade.py RUN --validation-only

RUN is a run folder trained with `--ngram-head --ngram-refit` (it holds ngram_held_out.npz,
what heads that had not seen the validation reviews made of them); FILE is its exported
file with a cascade (default RUN/model.int8.onnx). For each budget (`rnncli export onnx
--cascade-budget POINTS`), the threshold the export would fit on the validation share, and:
- on the validation share (the cross-fitted heads): the share of reviews that stop at the
  head and the accuracy, with the cascade and with the network on every review;
- out of fold on the validation share: the cascade fitted by the same rule on 4 of 5 folds
  of whole movies and applied to the fifth, its cost there in expectation (the budget's
  measure) and counted against the labels, the mean over REPEATS random foldings. The
  threshold is the smallest whose in-sample cost fits the budget, so its in-sample cost
  flatters it; out of fold it meets reviews it was not chosen on, as a test split does;
- on the test split, through FILE with that threshold fed as its CASCADE_INPUT (the graph a
  user gets from that export): the share that stops, the accuracy on whole reviews and on
  each review's first sentence (benchmarks/short_text.py), and whole reviews scored per
  second by predict_stream (batches of 256), as a ratio to the network on every review.
Choose on the validation columns; the test columns report.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from short_text import first_sentences

from rnncli.config import run_files
from rnncli.config.settings import RunConfig
from rnncli.data import store as dataset
from rnncli.export.cascade import BUDGET, fit_cascade
from rnncli.fsutil import read_json
from rnncli.serve import contract
from rnncli.serve.onnx_model import OnnxModel


def scores(model: OnnxModel, texts: list[str], threshold: float) -> tuple[np.ndarray, float]:
    """Probabilities with the cascade's threshold set to `threshold`, and the seconds."""
    model.feeds = {**model.feeds,
                   contract.CASCADE_INPUT: np.array(threshold, np.float32)}
    started = time.perf_counter()
    p = np.array([r.probability for r in model.predict_stream(iter(texts), 256)], np.float64)
    return p, time.perf_counter() - started


REPEATS = 20  # random foldings of the validation movies
FOLDS = 5


def out_of_fold(held: dict, groups: np.ndarray, budget: float) -> tuple[float, float]:
    """(expected cost, cost against the labels) of the cascade on each fold of whole movies
    when fitted on the other folds, averaged over REPEATS foldings: accuracy, as a share."""
    head, joined, truth = held["head"], held["joined"], held["labels"] > 0.5
    names, movie = np.unique(groups, return_inverse=True)
    expected, counted = [], []
    for seed in range(REPEATS):
        fold = np.random.default_rng(seed).permutation(len(names))[movie] % FOLDS
        spent = lost = 0.0
        for k in range(FOLDS):
            out = fold == k
            c = fit_cascade(head[~out], joined[~out], truth[~out], budget)
            z = c.alpha * head[out] + c.beta
            differ = (np.abs(z) >= c.threshold) & ((z > 0) != (joined[out] > 0.5))
            p, t = joined[out][differ], truth[out][differ]
            spent += np.abs(2 * p - 1).sum()
            lost += ((p > 0.5) == t).sum() - ((p <= 0.5) == t).sum()
        expected.append(spent / len(truth))
        counted.append(lost / len(truth))
    return float(np.mean(expected)), float(np.mean(counted))


def validation_groups(run: Path, home: Path) -> np.ndarray:
    """The movie of each validation review of the run (store.training_shares' groups)."""
    cfg = RunConfig.from_dict(read_json(run / run_files.CONFIG))
    return dataset.training_shares(home, cfg.data, groups=True)[4]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--budgets", default="0,0.01,0.02,0.05,0.1,0.2",
                    help="points of validation accuracy, comma-separated")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--validation-only", action="store_true",
                    help="the validation columns only: no exported file, no test split")
    args = ap.parse_args()
    path = args.model or args.run / run_files.ONNX_INT8
    with np.load(args.run / run_files.HEAD_HELD_OUT) as f:
        held = {k: f[k] for k in ("head", "joined", "labels")}
    home = dataset.data_home(args.data_dir)
    groups = validation_groups(args.run, home)
    budgets = sorted(float(b) for b in args.budgets.split(","))
    rows = [(b, fit_cascade(held["head"], held["joined"], held["labels"], b / 100))
            for b in budgets]
    print(f"validation reviews {len(groups):,} of {len(np.unique(groups)):,} movies "
          f"(cross-fitted heads); out of fold: {FOLDS} folds of whole movies, "
          f"{REPEATS} foldings; costs in points")
    print(f"{'budget':>6} {'threshold':>9} {'val stop':>8} {'val acc':>7} "
          f"{'oof expected':>12} {'oof counted':>11}")
    for budget, c in rows:
        expected, counted = out_of_fold(held, groups, budget / 100)
        print(f"{budget:6g} {c.threshold:9.3f} {c.exit_share:8.1%} {c.accuracy:7.4f} "
              f"{100 * expected:12.3f} {100 * counted:11.3f}", flush=True)
    print(f"{'every review (--no-cascade)':>34} {rows[0][1].joined_accuracy:7.4f}")
    if args.validation_only:
        return
    test = dataset.load_split(home, "test")
    texts, y = test.texts(), test.labels > 0.5
    short, short_y = first_sentences(texts, y)
    model = OnnxModel(path)
    if not model.has_cascade:
        raise SystemExit(f"{path} has no cascade: export it without --no-cascade")
    # Threshold 0 gives every review the calibrated head's probability: its |z|.
    head_p, _ = scores(model, texts, 0.0)

    def margin(p):
        p = p.clip(1e-12, 1 - 1e-12)
        return np.abs(np.log(p / (1 - p)))

    z = margin(head_p)
    every, every_s = scores(model, texts, np.inf)
    every_short, _ = scores(model, short, np.inf)
    print(f"{path}: test reviews {len(texts):,}, first sentences {len(short):,}; validation "
          f"reviews {len(held['labels']):,} (cross-fitted heads); the export's default "
          f"budget {100 * BUDGET:g} point")
    print(f"{'budget':>6} {'threshold':>9} {'val stop':>8} {'val acc':>7} {'test stop':>9} "
          f"{'test acc':>8} {'first sent.':>11} {'reviews/s':>9} {'vs every':>8}")
    for budget, c in rows:
        p, seconds = scores(model, texts, c.threshold)
        p_short, _ = scores(model, short, c.threshold)
        print(f"{budget:6g} {c.threshold:9.3f} {c.exit_share:8.1%} {c.accuracy:7.4f} "
              f"{np.mean(z >= c.threshold):9.1%} {np.mean((p > 0.5) == y):8.4f} "
              f"{np.mean((p_short > 0.5) == short_y):11.4f} {len(texts) / seconds:9,.0f} "
              f"{every_s / seconds:7.2f}x", flush=True)
    print(f"{'every review (--no-cascade)':>34} {rows[0][1].joined_accuracy:7.4f} "
          f"{'0.0%':>9} {np.mean((every > 0.5) == y):8.4f} "
          f"{np.mean((every_short > 0.5) == short_y):11.4f} {len(texts) / every_s:9,.0f} "
          f"{1:7.2f}x")


if __name__ == "__main__":
    main()
