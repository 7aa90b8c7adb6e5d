"""The tokenizer inside the graph against the Python one: parity, speed and size, one run.

    python benchmarks/bench_text_graph.py --model artifacts/ [--data-dir DIR]

Needs model.onnx and model.text.onnx (`rnncli export onnx --text-input`) and the prepared
aclImdb data. Measured on the same reviews:
- parity: probabilities of the text graph against the Python tokenizer + id graph on all
  50,000 reviews (train and test), and the labels;
- in-process: reviews/s over the 25,000 test reviews (rnncli's batching, every core) and
  one short review's p50 latency, 1 thread;
- whole process: `rnncli predict --file` over the 25,000 test reviews with each model,
  `rnncli predict` and `node examples/node/predict.js` on a few reviews given as arguments;
- file sizes; and a few reviews scored by Python and by Node side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "examples" / "node"
SHOWN = ["A wonderful, moving film. <br /><br />Don\u2019t miss it!",
         "Boring, AWFUL waste of time; the plot_makes no sense",
         "Not bad, not great: a 6/10 \U0001F610",
         "\u6771\u4eac\u7269\u8a9e is a masterpiece"]


def wall(cmd: list[str], runs: int = 3, cwd: Path | None = None) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=cwd).stdout
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def latency_us(model, review: list[str], n: int = 2000) -> float:
    for _ in range(100):
        model.predict_texts(review)
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        model.predict_texts(review)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6


def rate(model, texts: list[str]) -> float:
    model.predict_texts(texts[:512])
    t = time.perf_counter()
    for i in range(0, len(texts), 256):  # predict's batches
        model.predict_texts(texts[i : i + 256])
    return len(texts) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("artifacts"))
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args()
    from rnncli.data import store as dataset
    from rnncli.serve.onnx_model import OnnxModel

    id_path = args.model / "model.onnx" if args.model.is_dir() else args.model
    text_path = id_path.with_name(id_path.stem + ".text.onnx")
    home = dataset.data_home(args.data_dir)
    ids, texts_model = OnnxModel(id_path), OnnxModel(text_path)
    test = dataset.load_split(home, "test").texts()
    every = dataset.load_split(home, "train").texts() + test

    t = time.perf_counter()
    want = np.array([p.probability for p in ids.predict_texts(every)])
    py_s = time.perf_counter() - t
    t = time.perf_counter()
    got = np.array([p.probability for p in texts_model.predict_texts(every)])
    graph_s = time.perf_counter() - t
    diff = np.abs(got - want)
    print(f"parity on all {len(every):,} reviews: max |text graph - Python| {diff.max():.3g} "
          f"(atol 1e-5), labels differ on {int(((got >= 0.5) != (want >= 0.5)).sum())}; "
          f"one call each: Python {py_s:.2f} s, graph {graph_s:.2f} s")

    print(f"\nin-process, {len(test):,} test reviews in batches of 256, "
          f"{os.cpu_count()} cores:")
    r_py, r_graph = rate(ids, test), rate(texts_model, test)
    one = ["a wonderful, moving film"]
    ids_1, text_1 = OnnxModel(id_path, workers=1), OnnxModel(text_path, workers=1)
    print(f"  {'':28}{'reviews/s':>12}{'1 review p50':>15}")
    print(f"  {'Python tokenizer + ids':28}{r_py:12,.0f}{latency_us(ids_1, one):12,.0f} us")
    print(f"  {'tokenizer in the graph':28}{r_graph:12,.0f}{latency_us(text_1, one):12,.0f} us")
    print(f"  ratio graph / Python: {r_graph / r_py:.2f}x")

    print("\nwhole process (median of 3):")
    with tempfile.TemporaryDirectory() as tmp:
        reviews_file = Path(tmp) / "test.txt"
        reviews_file.write_text("\n".join(t.replace("\n", " ") for t in test) + "\n")
        for name, path in (("model.onnx", id_path), ("model.text.onnx", text_path)):
            s, _ = wall([sys.executable, "-m", "rnncli", "predict", "--file",
                         str(reviews_file), "--format", "jsonl", "--model", str(path)], 3)
            print(f"  rnncli predict --file ({len(test):,} reviews), {name:16} {s:6.2f} s "
                  f"({len(test) / s:,.0f} reviews/s)")
    few = test[:20]
    for name, path in (("model.onnx", id_path), ("model.text.onnx", text_path)):
        s, _ = wall([sys.executable, "-m", "rnncli", "predict", *few, "--format", "jsonl",
                     "--model", str(path)], 5)
        print(f"  rnncli predict, 20 reviews as arguments, {name:16} {s:6.3f} s")
    node = shutil.which("node") and (NODE_DIR / "node_modules").exists()
    if node:
        s, _ = wall(["node", "predict.js", "--model", str(text_path.resolve()), "--", *few], 5,
                    NODE_DIR)
        print(f"  node predict.js, 20 reviews as arguments, model.text.onnx  {s:6.3f} s")
    else:
        print("  node: skipped (run `npm ci` in examples/node first)")

    print(f"\nsizes: model.onnx {id_path.stat().st_size / 1e6:.2f} MB, model.text.onnx "
          f"{text_path.stat().st_size / 1e6:.2f} MB")

    python_rows = [p.probability for p in ids.predict_texts(SHOWN)]
    node_rows = ["-"] * len(SHOWN)
    if node:
        _, out = wall(["node", "predict.js", "--model", str(text_path.resolve()), "--",
                       *SHOWN], 1, NODE_DIR)
        node_rows = [f"{json.loads(line)['probability']:.6f}" for line in out.splitlines()]
    print("\n| review | Python (`rnncli predict`, model.onnx) | Node (`predict.js`, "
          "model.text.onnx) |\n|---|---|---|")
    for review, p, n in zip(SHOWN, python_rows, node_rows):
        print(f"| `{review}` | {p:.6f} | {n} |")


if __name__ == "__main__":
    main()
