"""Training speed and accuracy: `rnncli train` against a plain Keras script, one run each.

    python benchmarks/bench_train.py [--epochs 10] [--cell simple]

Both use the recipe's hyperparameters (num_words 1000, maxlen 80, Embedding(1000,128) ->
RNN(32) -> Dense(1, sigmoid), adam, binary cross-entropy, batch 32, validation split 0.2),
on the same prepared data (run `rnncli data fetch` first). Printed: seconds per epoch
(median, and first epoch, which carries compilation), whole fit time, their ratios, and
test accuracy of each (rnncli restores its best validation epoch; plain Keras keeps the last).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN = r"""
import json, sys, time, numpy as np
from pathlib import Path
from rnncli.data.store import data_home, load_split, load_encoded
import keras
cell, epochs = sys.argv[1], int(sys.argv[2])
home = data_home()
x, y = load_encoded(load_split(home, "train"), 1000, 80)
xt, yt = load_encoded(load_split(home, "test"), 1000, 80)
keras.utils.set_random_seed(1337)
layer = {"simple": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
model = keras.Sequential([keras.Input((80,), dtype="int32"), keras.layers.Embedding(1000, 128),
                          layer(32), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
times = []
class T(keras.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None): self.t = time.perf_counter()
    def on_epoch_end(self, e, logs=None): times.append(time.perf_counter() - self.t)
t = time.perf_counter()
model.fit(x, y, batch_size=32, epochs=epochs, validation_split=0.2, verbose=0, callbacks=[T()])
fit_s = time.perf_counter() - t
loss, acc = model.evaluate(xt, yt, batch_size=1024, verbose=0)
print(json.dumps({"epochs": times, "fit": fit_s, "test_accuracy": acc, "test_loss": loss}))
"""


def run_plain(cell: str, epochs: int) -> dict:
    res = subprocess.run([sys.executable, "-c", PLAIN, cell, str(epochs)], check=True,
                         capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_rnncli(cell: str, epochs: int, out: Path) -> dict:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rnncli", "train", "--cell", cell, "--epochs",
                    str(epochs), "--output", str(out)], check=True, capture_output=True)
    wall = time.perf_counter() - started
    history = json.loads((out / "history.json").read_text())
    res = subprocess.run([sys.executable, "-m", "rnncli", "evaluate", "--model", str(out),
                          "--json"], check=True, capture_output=True, text=True)
    report = json.loads(res.stdout)
    return {"epochs": [h["seconds"] for h in history["epochs"]], "wall": wall,
            "best_epoch": history["best_epoch"], "test_accuracy": report["accuracy"],
            "test_loss": report["loss"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--cell", default="simple")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_rnncli(args.cell, args.epochs, Path(tmp) / "run")
    plain = run_plain(args.cell, args.epochs)
    o_med, p_med = statistics.median(ours["epochs"]), statistics.median(plain["epochs"])
    o_fit, p_fit = sum(ours["epochs"]), sum(plain["epochs"])
    print(f"cell {args.cell}, {args.epochs} epochs, recipe hyperparameters")
    print(f"{'':28}{'rnncli':>10}{'plain Keras':>14}{'ratio':>8}")
    print(f"{'median epoch (s)':28}{o_med:10.2f}{p_med:14.2f}{o_med / p_med:8.2f}")
    print(f"{'first epoch (s)':28}{ours['epochs'][0]:10.2f}{plain['epochs'][0]:14.2f}"
          f"{ours['epochs'][0] / plain['epochs'][0]:8.2f}")
    print(f"{'all epochs (s)':28}{o_fit:10.1f}{p_fit:14.1f}{o_fit / p_fit:8.2f}")
    print(f"{'test accuracy':28}{ours['test_accuracy']:10.4f}{plain['test_accuracy']:14.4f}")
    print(f"{'test loss':28}{ours['test_loss']:10.4f}{plain['test_loss']:14.4f}")
    print(f"rnncli best epoch: {ours['best_epoch']} (restored); plain Keras keeps epoch "
          f"{args.epochs}. Published recipe: accuracy 0.716, loss 0.856.")


if __name__ == "__main__":
    main()
