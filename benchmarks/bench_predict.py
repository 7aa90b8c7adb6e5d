"""Serving speed: cold start, single-review latency and batch throughput, side by side.

    python benchmarks/bench_predict.py --model artifacts/  # run folder: model.keras + model.onnx

Measured in one run on this machine: `rnncli predict` as a whole process against
`python -c "import tensorflow"`; in-process latency of one short review (tokenize + run);
throughput over the full prepared test split with onnxruntime against Keras
`model.predict` on the same ids (both batch 1024). Targets: cold start <= 0.4 s and
<= 0.2x the TensorFlow import; p50 <= 50 us; >= 150,000 reviews/s and >= 5x Keras.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("artifacts"))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    onnx_path = args.model / "model.onnx" if args.model.is_dir() else args.model
    keras_path = onnx_path.with_name("model.keras")

    cold = wall([sys.executable, "-m", "rnncli", "predict", "great film", "--model",
                 str(onnx_path)], args.runs)
    tf_import = wall([sys.executable, "-c", "import tensorflow"], max(2, args.runs // 2))
    print(f"cold start `rnncli predict \"great film\"`: {cold:.3f} s   "
          f"import tensorflow: {tf_import:.3f} s   ratio {cold / tf_import:.2f}x "
          f"(targets <= 0.4 s, <= 0.2x)")

    from rnncli.data import store as dataset
    from rnncli.serve.onnx_model import OnnxModel

    single = OnnxModel(onnx_path, workers=1)
    review = ["a wonderful, moving film"]
    for _ in range(200):
        single.predict_texts(review)
    samples = []
    for _ in range(3000):
        t = time.perf_counter()
        single.predict_texts(review)
        samples.append(time.perf_counter() - t)
    samples.sort()
    print(f"one short review, tokenize + run, 1 thread: p50 {samples[1500] * 1e6:.1f} us, "
          f"p99 {samples[2970] * 1e6:.1f} us (target p50 <= 50 us)")

    batch = OnnxModel(onnx_path)
    prep = batch.preprocessing
    split = dataset.load_split(dataset.data_home(), "test")
    x, _ = dataset.load_encoded(split, prep.num_words, prep.maxlen, prep.padding,
                                prep.truncating)
    batch.predict_ids(x[:2048])
    t = time.perf_counter()
    batch.predict_ids(x, 1024)
    ort_rate = len(x) / (time.perf_counter() - t)
    texts = split.texts()
    t = time.perf_counter()
    batch.predict_texts(texts)
    text_rate = len(texts) / (time.perf_counter() - t)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from rnncli.model.runtime import load_keras_model

    model = load_keras_model(keras_path)
    model.predict(x[:2048], batch_size=1024, verbose=0)
    t = time.perf_counter()
    model.predict(x, batch_size=1024, verbose=0)
    keras_rate = len(x) / (time.perf_counter() - t)
    print(f"{len(x):,} test reviews, batch 1024, {os.cpu_count()} cores:")
    print(f"  onnxruntime on ids:     {ort_rate:12,.0f} reviews/s  (target >= 150,000)")
    print(f"  keras model.predict:    {keras_rate:12,.0f} reviews/s")
    print(f"  ratio onnx / keras:     {ort_rate / keras_rate:12.1f}x  (target >= 5x)")
    print(f"  onnx from raw text:     {text_rate:12,.0f} reviews/s  (tokenize + encode + run)")
    print(f"graph: {batch.metadata.get('rnncli.graph')}")


if __name__ == "__main__":
    main()
