"""The n-gram head alone: how its validation share predicts the test split, and its table.

    python benchmarks/bench_head_table.py [--buckets 1048573,4194301,16777213] [--orders 2,3]

Needs `rnncli data fetch` (the IMDB archive, whose urls_*.txt name each review's movie).
For each hold-out (`--hold-out last`: the last 20% of the train split; `movies`: whole
movies, none in training) it prints how many validation reviews are about a movie of the
training share, then, for each n-gram order (2: words and pairs, 3: and triples) and table
size, the "nb" head (train/head.py's fit_head, as
`rnncli train --ngram-head` fits it: 30,000 words, reviews up to 500 tokens, seed 3) fitted
on the training share and scored alone on the validation share and the test split, with the
exact keys the table holds (seen in 2 or more training reviews) against the slots it keeps.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np

from rnncli.data import store
from rnncli.model.ngram import MIN_REVIEWS, row_keys
from rnncli.train.batches import real_rows
from rnncli.train.head import fit_head


def exact_keys(rows, order: int) -> int:
    """The distinct n-grams (up to `order`) of MIN_REVIEWS or more of the rows: what a table
    with no collision would keep."""
    per_row = [np.unique(row_keys(r, 30000, "exact", order)) for r in rows]
    _, reviews = np.unique(np.concatenate(per_row), return_counts=True)
    return int((reviews >= MIN_REVIEWS).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buckets", default="1048573,4194301,16777213")
    ap.add_argument("--hold-outs", default="last,movies")
    ap.add_argument("--orders", default="2,3")
    a = ap.parse_args()
    home = store.data_home(None)
    split = store.load_split(home, "train")
    if split.movies is None:
        raise SystemExit("Error: the prepared data has no movies: run `rnncli data fetch "
                         "--from aclImdb_v1.tar.gz` again.")
    x_test, y_test = store.load_encoded(store.load_split(home, "test"), 30000, 500, "pre",
                                        "pre")
    test_rows = real_rows(x_test)
    print("hold-out  val reviews  of a training movie  order  buckets     exact keys  "
          "slots kept  val acc  test acc  fit s")
    for hold in a.hold_outs.split(","):
        d = SimpleNamespace(dataset=None, num_words=30000, maxlen=500, padding="pre",
                            truncating="pre", limit=None, validation_split=0.2, hold_out=hold,
                            hold_out_seed=0)
        x, y, x_val, y_val = store.training_shares(home, d)
        held = (store.held_out(split.movies, split.labels, len(x_val), d.hold_out_seed)
                if hold == "movies" else np.arange(len(split)) >= len(x))
        seen = np.isin(split.movies[held], split.movies[~held]).mean()
        rows, val_rows = real_rows(x), real_rows(x_val)
        for order, buckets in ((int(o), int(b)) for o in a.orders.split(",")
                               for b in a.buckets.split(",")):
            exact = exact_keys(rows, order)
            t0 = time.perf_counter()
            head = fit_head(x, y, 30000, 3, weighting="nb", buckets=buckets, order=order)
            fit_s = time.perf_counter() - t0
            kept = int((head.idf != 0).sum())

            def acc(r, labels, head=head):
                return float(((head.logits(r) > 0) == (labels > 0.5)).mean())

            print(f"{hold:8}  {len(x_val):11,}  {seen:19.1%}  {order:5}  {buckets:10,}  "
                  f"{exact:10,}  {kept:10,}  {acc(val_rows, y_val):7.4f}  "
                  f"{acc(test_rows, y_test):8.4f}  {fit_s:5.0f}", flush=True)


if __name__ == "__main__":
    main()
