"""What more members would add to the join: networks of other runs and other linear heads
beside the bundled kind, scored on the validation share only.

    python benchmarks/bench_join.py RUN [RUN ...] [--heads nb:3,nb:2,tfidf:3,tfidf:2]

Every RUN is a run folder of one validation share (`--hold-out movies`, one
`--hold-out-seed`); the first gives the share, its seed and the join's rows (each
validation review whole and one window of it, train/head.py's join_rows). Each RUN's network
logit is read on those rows; each head (WEIGHTING:ORDER, fit_head's other settings as
served) is fitted on the training share. Then each set of members is joined by a logistic
regression on their logits, as the head's join is, but cross-fitted: the validation share
in train/head.py's FOLDS folds of whole movies (folds_of, a window in its review's fold, as
--ngram-refit's cross_fit), each fold scored by a join fitted on the others, so a join of
more members cannot flatter itself by its extra weights. Printed: accuracy on whole
reviews / their windows, for

- the first head alone and each network with it (what `--ngram-head` serves),
- all the networks with it,
- the first network and the first head with each further head, then with all of them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rnncli.config.settings import RunConfig
from rnncli.data import store
from rnncli.fsutil import read_json
from rnncli.model import runtime as tf_runtime
from rnncli.train.head import FOLDS, fit_head, folds_of, join_rows, network_logits, stack_fit


def cross_fitted(columns: list[np.ndarray], y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Each row's joined logit from a join fitted on the other folds' rows."""
    x, z = np.stack(columns, 1), np.zeros(len(y))
    for k in np.unique(fold):
        fit = stack_fit(x[fold != k], y[fold != k])
        z[fold == k] = fit.decision_function(x[fold == k])
    return z


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--heads", default="nb:3,nb:2,tfidf:3,tfidf:2",
                    help="comma-separated WEIGHTING:ORDER; the first is the one joined to "
                         "every network")
    ap.add_argument("--data-dir", type=Path, default=None)
    a = ap.parse_args()

    tf_runtime.import_tensorflow()
    configs = [RunConfig.from_dict(read_json(run / "config.json")) for run in a.runs]
    d, seed = configs[0].data, configs[0].train.seed
    for run, cfg in zip(a.runs, configs):
        if (cfg.data.hold_out, cfg.data.hold_out_seed, cfg.data.maxlen) != (
                d.hold_out, d.hold_out_seed, d.maxlen):
            ap.error(f"{run} holds out another validation share or reads another maxlen "
                     f"than {a.runs[0]}")
    x, y, x_val, y_val, movies = store.training_shares(store.data_home(a.data_dir), d,
                                                      groups=True)
    rows, labels = join_rows(x_val, y_val, seed)
    fold = np.tile(folds_of(movies, FOLDS, seed), 2)  # a window is in its review's fold
    n, target = len(x_val), labels > 0.5
    nets = {str(run): network_logits(
        tf_runtime.load_keras_model(run / "model.keras"), cfg, rows, d.maxlen)
        for run, cfg in zip(a.runs, configs)}
    heads = {}
    for spec in a.heads.split(","):
        weighting, order = spec.split(":")
        heads[f"{weighting} {order}"] = fit_head(
            x, y, d.num_words, seed, weighting=weighting, order=int(order)).logits(rows)
    first_net, first_head = next(iter(nets)), next(iter(heads))
    print(f"validation share: {n:,} reviews (hold-out {d.hold_out}, seed "
          f"{d.hold_out_seed}); join cross-fitted in {FOLDS} folds of whole movies")
    extra = [h for h in heads if h != first_head]
    lines = ([[first_head]] + [[net, first_head] for net in nets]
             + ([[*nets, first_head]] if len(nets) > 1 else [])
             + [[first_net, first_head, head] for head in extra]
             + ([[first_net, *heads]] if len(extra) > 1 else []))
    width = max(len(" + ".join(names)) for names in lines)
    print(f"{'members':<{width}} {'whole':>7} {'windows':>8}")
    for names in lines:
        right = (cross_fitted([{**nets, **heads}[m] for m in names], target, fold) > 0) == target
        print(f"{' + '.join(names):<{width}} {right[:n].mean():7.4f} {right[n:].mean():8.4f}")


if __name__ == "__main__":
    main()
