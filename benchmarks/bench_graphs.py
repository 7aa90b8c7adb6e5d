"""Every hand-built ONNX graph kind on a random-weight model of a given shape: size (float
and int8), parity with Keras, one short review and batch speed. No training, no data.

    python benchmarks/bench_graphs.py --cell gru --bidirectional --units 128 \\
        --pooling masked-max --num-words 30000 --maxlen 500
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="gru")
    ap.add_argument("--bidirectional", action="store_true")
    ap.add_argument("--units", type=int, default=64)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--pooling", default="masked-max")
    ap.add_argument("--num-words", type=int, default=30000)
    ap.add_argument("--maxlen", type=int, default=200)
    ap.add_argument("--embedding-dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=256, help="rows in the throughput batch")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from rnncli.config.settings import RunConfig, apply
    from rnncli.export.check import session
    from rnncli.export.graph import GRAPH_KINDS, build_graph
    from rnncli.export.quantize import quantize_weights
    from rnncli.model.build import build_model

    cfg = apply(RunConfig(), {k: v for k, v in vars(args).items() if k != "batch"})
    keras.utils.set_random_seed(0)
    model = build_model(cfg)
    rng = np.random.default_rng(0)
    T = cfg.data.maxlen
    lengths = rng.integers(10, T + 1, args.batch)
    x = np.zeros((args.batch, T), np.int32)
    for row, n in zip(x, lengths):
        row[T - n:] = rng.integers(3, cfg.data.num_words, n)
    reference = np.asarray(model.predict(x, batch_size=256, verbose=0))
    short = x[np.argmin(lengths)][None, T - lengths.min():]  # the shortest, trimmed
    print(f"{cfg.model.cell} x{cfg.model.layers} {'bi' if cfg.model.bidirectional else 'uni'} "
          f"{cfg.model.units} units, pooling {cfg.model.pooling}, {cfg.data.num_words} words, "
          f"maxlen {T}; short review: {short.shape[1]} tokens; batch {args.batch} rows")
    print(f"{'graph':14} {'MB':>6} {'int8 MB':>8} {'max|diff|':>10} {'int8 diff':>10} "
          f"{'short p50':>10} {'rows/s':>9}")
    for kind in GRAPH_KINDS:
        proto = build_graph(model, cfg, kind)
        quantized = copy.deepcopy(proto)
        quantize_weights(quantized)
        sess, q_sess = session(proto), session(quantized)
        diff = np.abs(sess.run(None, {"ids": x})[0] - reference).max()
        q_diff = np.abs(q_sess.run(None, {"ids": x})[0] - reference).max()
        for _ in range(10):
            sess.run(None, {"ids": short})
        samples = []
        for _ in range(100):
            t = time.perf_counter()
            sess.run(None, {"ids": short})
            samples.append(time.perf_counter() - t)
        t = time.perf_counter()
        sess.run(None, {"ids": x})
        rate = len(x) / (time.perf_counter() - t)
        print(f"{kind:14} {proto.ByteSize() / 1e6:6.1f} {quantized.ByteSize() / 1e6:8.1f} "
              f"{diff:10.2e} {q_diff:10.2e} {np.median(samples) * 1e6:8.0f} us {rate:9,.0f}")


if __name__ == "__main__":
    main()
