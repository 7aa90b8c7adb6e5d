"""The n-gram head's ablation on one trained network: each head kind joined to it as
`rnncli train --ngram-head` joins it, chosen on the validation share, reported on the test
split.

    python benchmarks/bench_head.py RUN [--heads 2:4194301:8:16,3:8388593:8:16,...]

RUN is a run folder trained with the head (its `model.keras`, its config and
preprocessing; `--preset student`). Its network stays as it is: its logit (the dense layer's
output) is read once for every row, then each head (ORDER:SLOTS:C:W, W = 1/window weight)
is fitted by train/head.py's fit_head on the run's training share and its 8 windows of
each review, the join's a, b, c fitted on the validation reviews and one window of each
(join_rows), and the joined model scored with the network on every review (no cascade):

- head val: the head alone on the validation reviews;
- joined val: whole reviews / their windows (the join's own rows; what a choice reads);
- test, first sentence, crops: the test split and benchmarks/short_text.py's sets;
- slots kept: table slots with a key (idf not 0), what the int8 file holds.

With --validation-only the test split and the short-text sets are not read: a choice of
head made on this print has not seen them.

Lines marked "+ all train" fit the same head on the whole train split (training and
validation share) and join it with the weights of the head above it: the validation share
is then seen by the head, so only the test columns mean anything.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from short_text import crops, first_sentences

from rnncli.config.settings import RunConfig
from rnncli.data import store
from rnncli.fsutil import read_json
from rnncli.model import runtime as tf_runtime
from rnncli.serve import locate
from rnncli.train.batches import real_rows
from rnncli.train.head import fit_head, join_accuracies, join_rows, network_logits, stack_weights

DEFAULT_HEADS = "2:4194301:8:16,3:4194301:8:16,3:8388593:8:16,3:16777213:8:16," \
                "3:8388593:4:16,3:8388593:16:16,3:8388593:8:8"


def accuracy(z: np.ndarray, y: np.ndarray) -> float:
    return float(((z > 0) == (y > 0.5)).mean())


def scored_sets(home: Path, dataset: str) -> dict[str, tuple[list[str], np.ndarray]]:
    """The test split, its first sentences and its crops: texts and labels."""
    test = store.load_split(home, "test", dataset)
    texts, y_test = test.texts(), test.labels.astype(np.float64)
    return {"test": (texts, y_test), "first sentence": first_sentences(texts, y_test),
            "crops": (crops(texts), y_test)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--heads", default=DEFAULT_HEADS,
                    help="comma-separated ORDER:SLOTS:C:W (W: a window weighs 1/W)")
    ap.add_argument("--all-train", action="store_true",
                    help="also fit each head on the whole train split (test columns only)")
    ap.add_argument("--validation-only", action="store_true",
                    help="score the validation share only: choose without the test columns")
    ap.add_argument("--data-dir", type=Path, default=None)
    a = ap.parse_args()
    if a.validation_only and a.all_train:
        ap.error("--all-train scores the test split only; leave out --validation-only")

    tf_runtime.import_tensorflow()
    cfg = RunConfig.from_dict(read_json(a.run / "config.json"))
    d, seed, home = cfg.data, cfg.train.seed, store.data_home(a.data_dir)
    model = tf_runtime.load_keras_model(a.run / "model.keras")
    prep = locate.keras_preprocessing(a.run / "model.keras")
    x, y, x_val, y_val = store.training_shares(home, d)
    rows, labels = join_rows(x_val, y_val, seed)
    sets = {} if a.validation_only else scored_sets(home, d.dataset)
    # Each text's ids as `predict` encodes them (start marker, truncation), pads left out.
    set_rows = {name: real_rows(prep.encode(ts)[0]) for name, (ts, _) in sets.items()}
    started = time.perf_counter()
    net = network_logits(model, cfg, rows, d.maxlen)
    net_sets = {name: network_logits(model, cfg, r, d.maxlen) for name, r in set_rows.items()}
    print(f"run {a.run}: {len(x):,} training reviews, {len(x_val):,} validation "
          f"(hold-out {d.hold_out}), network logits in {time.perf_counter() - started:.0f} s")
    n = len(x_val)
    # The saved dense layer holds the join's a and c: its logit alone gets its own
    # calibration (a one-feature regression on the join's rows), as the head's join does.
    wa, _, wc = stack_weights(net, np.zeros_like(net), labels)
    print(f"network alone: val {accuracy(wa * net[:n] + wc, labels[:n]):.4f} / "
          f"{accuracy(wa * net[n:] + wc, labels[n:]):.4f}" + "".join(
              f"; {name} {accuracy(wa * net_sets[name] + wc, sets[name][1]):.4f}"
              for name in sets))
    widths = {"test": 7, "first sentence": 8, "crops": 7}
    print(f"{'head (order, slots, C, window)':<34} {'slots kept':>10} {'head val':>8} "
          f"{'joined val':>15} " + "".join(f"{name[:8]:>{widths[name]}} " for name in sets)
          + f"{'fit s':>6}")

    def columns(scores: dict[str, float]) -> str:
        return "".join(f"{scores[name]:{widths[name]}.4f} " for name in scores)

    x_all = np.concatenate([x, x_val])
    y_all = np.concatenate([y, y_val])
    for spec in a.heads.split(","):
        order, slots, c, w = spec.split(":")
        order, slots, c, weight = int(order), int(slots), float(c), 1 / int(w)
        name = f"{order} {slots:,} C {c:g} 1/{w}"
        for fit_on in (("share",) + (("all",) if a.all_train else ())):
            started = time.perf_counter()
            head = fit_head(*((x, y) if fit_on == "share" else (x_all, y_all)), d.num_words,
                            seed, weighting="nb", buckets=slots, order=order, C=c,
                            window_weight=weight)
            fit_s = time.perf_counter() - started
            if fit_on == "share":
                lin = head.logits(rows)
                wa, wb, wc = stack_weights(net, lin, labels)
                acc = join_accuracies(net, lin, wa * net + wb * lin + wc, labels)
            scores = {s: accuracy(wa * net_sets[s] + wb * head.logits(r) + wc, sets[s][1])
                      for s, r in set_rows.items()}
            kept = int((head.idf != 0).sum())
            if fit_on == "share":
                print(f"{name:<34} {kept:10,} {acc['head']['whole']:8.4f} "
                      f"{acc['both']['whole']:7.4f} / {acc['both']['windows']:.4f} "
                      f"{columns(scores)}{fit_s:6.0f}", flush=True)
            else:
                print(f"{'  + all train':<34} {kept:10,} {'-':>8} {'-':>15} "
                      f"{columns(scores)}{fit_s:6.0f}", flush=True)


if __name__ == "__main__":
    main()
