"""Epoch time of the accuracy model: full-width batches against length buckets, one run.

    python benchmarks/bench_preset_epoch.py [--limit 6000] [--epochs 2]

The same hyperparameters each time (bidirectional GRU(64), 30,000 words, maxlen 500,
embedding 128, dropout 0.2, batch 64, adam): the earlier `best` preset as it was (max
pooling over all 500 steps, XLA), then masked-max pooling with batches cut to their longest
review, then that plus random-window crops on half the reviews. Printed: seconds of the
last epoch (the first carries compilation) and its ratio to the full-width one.
Needs a prepared dataset (`rnncli data fetch`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

COMMON = ["--cell", "gru", "--bidirectional", "--units", "64", "--num-words", "30000",
          "--maxlen", "500", "--embedding-dim", "128", "--dropout", "0.2", "--batch-size", "64"]
VARIANTS = {
    "full width, max pooling, XLA (earlier preset)": ["--pooling", "max", "--jit"],
    "masked-max, length buckets": ["--pooling", "masked-max", "--no-jit"],
    "masked-max, length buckets, crops 0.5": ["--pooling", "masked-max", "--no-jit",
                                              "--crop-prob", "0.5"],
}


def epoch_seconds(args: list[str], out: Path) -> list[float]:
    subprocess.run([sys.executable, "-m", "rnncli", "train", *COMMON, *args, "--output",
                    str(out)], check=True, capture_output=True)
    return [e["seconds"] for e in json.loads((out / "history.json").read_text())["epochs"]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args()
    extra = ["--limit", str(a.limit), "--epochs", str(a.epochs), "--seed", "1"]
    if a.data_dir:
        extra += ["--data-dir", a.data_dir]
    base = None
    print(f"{a.limit:,} reviews ({int(a.limit * 0.8):,} trained on), {a.epochs} epochs")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, args) in enumerate(VARIANTS.items()):
            seconds = epoch_seconds([*args, *extra], Path(tmp) / str(i))
            last = seconds[-1]
            base = base or last
            print(f"{name:<46} first {seconds[0]:6.1f} s  last {last:6.1f} s  "
                  f"ratio {last / base:.2f}x", flush=True)


if __name__ == "__main__":
    main()
