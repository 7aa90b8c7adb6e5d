"""Serving speed of each model beside its floor, in one run, as a user meets it.

    python benchmarks/bench_serve.py --model artifacts/model.onnx --data-dir DIR
    python benchmarks/bench_serve.py                 # artifacts/model.onnx (if any) + bundled

For each model: onnxruntime's per-call floor (an Identity graph, same session options); one
short review in-process, tokenize to label (p50, one thread) and the model call alone;
`predict_stream` on the test reviews and on one-sentence reviews (benchmarks/short_text.py:
the first sentence of 4 words or more, as in bench_accuracy.py); the whole process
`rnncli predict --file FILE --format jsonl > /dev/null` on both (start-up included; the
cold-start target is bench_startup.py's); the CPU each stage costs per review (what bounds
the whole process on this machine's cores); and the stream's probabilities against the
plain padded path and, with model.keras beside the file, Keras.

Targets (2 cores): recipe model p50 <= 2.5x the Identity floor and >= 25,000 full reviews/s
whole process; bundled model p50 <= 1 ms, >= 1,500 full and >= 15,000 one-sentence reviews/s
whole process. A slow model is measured on as many reviews as --budget seconds allow.
"""

from __future__ import annotations

import argparse
import atexit
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
from bench_startup import compiled_env
from short_text import first_sentence

from rnncli.system import usable_cores

SHORT_REVIEW = "a wonderful, moving film"


def p50_us(fn, n: int = 3000) -> float:
    for _ in range(max(50, n // 10)):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6


def paired_p50_us(fn, floor_call, n: int = 3000, block: int = 100) -> tuple[float, float]:
    """p50 of `fn` and of the floor call, measured in alternating blocks of `block` calls:
    a busy moment of the machine slows both alike, so their ratio holds where two separate
    runs would drift apart, and within a block each call finds its own data in cache."""
    took, floor = [], []
    for call in (fn, floor_call):  # warm-up, untimed
        for _ in range(block):
            call()
    for _ in range(n // block):
        for samples, call in ((took, fn), (floor, floor_call)):
            for _ in range(block):
                t = time.perf_counter()
                call()
                samples.append(time.perf_counter() - t)
    return statistics.median(took) * 1e6, statistics.median(floor) * 1e6


def identity_floor():
    """onnxruntime's per-call floor: a call of an Identity graph, same session options."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from rnncli.serve.onnx_model import session_options

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "floor",
                              [helper.make_tensor_value_info("x", TensorProto.INT32, ["b", "t"])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, ["b", "t"])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(proto)
    sess = ort.InferenceSession(proto.SerializeToString(), session_options(),
                                providers=["CPUExecutionProvider"])
    x = np.ones((1, 6), np.int32)
    return lambda: sess.run(["y"], {"x": x})


def recurrent_node(path: Path, steps: int):
    """(op, call) running the model's first recurrent node alone, in a graph of its own, on
    one review of `steps` steps: what no graph around it can go below."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from rnncli.serve.onnx_model import session_options

    proto = onnx.load(str(path))
    node = next((n for n in proto.graph.node if n.op_type in ("RNN", "GRU", "LSTM")), None)
    if node is None:
        return None
    shapes = {i.name: tuple(i.dims) for i in proto.graph.initializer}
    shapes.update({k[: -len("/int8")]: v for k, v in shapes.items() if k.endswith("/int8")})
    w_shape, r_shape = shapes[node.input[1]], shapes[node.input[2]]
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(0.1 * rng.normal(size=shape).astype(np.float32), name)
             for name, shape in (("W", w_shape), ("R", r_shape))]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    alone = helper.make_node(node.op_type, ["X", "W", "R"], ["", "Y_h"], **attrs)
    graph = helper.make_graph(
        [alone], "alone", [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = ort.InferenceSession(model.SerializeToString(), session_options(),
                                providers=["CPUExecutionProvider"])
    x = rng.normal(size=(steps, 1, w_shape[2])).astype(np.float32)
    return node.op_type, lambda: sess.run(["Y_h"], {"X": x})


# Commands run with compiled bytecode, as after `pip install`: modules are compiled once
# into a cache of this run's own, so no timed run compiles a module edited since its last
# __pycache__ entry (as in bench_startup.py).
_PYCACHE = tempfile.mkdtemp(prefix="bench-serve-pycache-")
atexit.register(shutil.rmtree, _PYCACHE, True)
COMPILED = compiled_env(_PYCACHE)


def wall(cmd: list[str], runs: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user + sys, the process and its workers),
    after one untimed run (bytecode, file cache)."""
    import resource

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": COMPILED}
    subprocess.run(cmd, check=True, **quiet)
    times, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, **quiet)
        times.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(times), statistics.median(cpus)


def affordable(texts: list[str], rate_probe, budget: float) -> list[str]:
    """As many texts as `budget` seconds allow at the rate a 500-review probe shows."""
    t = time.perf_counter()
    rate_probe(texts[:500])
    rate = 500 / (time.perf_counter() - t)
    return texts[: max(500, min(len(texts), int(rate * budget)))]


def cpu_per_review_us(fn, n: int) -> float:
    t = time.process_time()
    fn()
    return (time.process_time() - t) / n * 1e6


def plain_padded(model, texts: list[str]) -> np.ndarray:
    """The reference path: each review tokenized alone, padded to maxlen."""
    from rnncli.text import tokenizer as text

    prep = model.preprocessing
    vocab = text.Vocabulary(prep.vocabulary)
    ids = [vocab.encode(text.tokenize(t), prep.num_words) for t in texts]
    x = text.pad_sequences(ids, prep.maxlen, prep.padding, prep.truncating)
    return x


def bench_model(path: Path, full: list[str], sentences: list[str], floor, args,
                tmp: Path) -> None:
    from rnncli.serve import locate
    from rnncli.serve.onnx_model import OnnxModel

    bundled = path.resolve() == locate.BUNDLED.resolve()
    single = OnnxModel(path, workers=1)
    model = OnnxModel(path)
    prep = model.preprocessing
    meta = model.metadata
    print(f"\nmodel {path}{' (bundled)' if bundled else ''}: graph {meta.get('rnncli.graph')}, "
          f"maxlen {prep.maxlen}, trims padding: {prep.trim_padding}, full_length_batch: "
          f"{meta.get('rnncli.full_length_batch', '-')}")
    review = [SHORT_REVIEW]
    p50, fl = paired_p50_us(lambda: single.predict_texts(review), floor)
    x1, _ = prep.encode(review, trim=prep.trim_padding)
    inputs = {single.session.get_inputs()[0].name: x1}
    run_only, fl_run = paired_p50_us(lambda: single.session.run(None, inputs), floor)
    target = "target <= 1,000 us" if bundled else "target <= 2.5x"
    print(f"  one short review, tokenize to label, p50    {p50:9.1f} us  {p50 / fl:5.1f}x "
          f"floor   {target}   (floor {fl:.1f} us alongside)")
    print(f"    the model call alone on its {x1.shape[1]} ids, p50  {run_only:9.1f} us  "
          f"{run_only / fl_run:5.1f}x floor")
    node = recurrent_node(path, x1.shape[1])
    if node:
        node_us, fl_node = paired_p50_us(node[1], floor)
        print(f"    its {node[0]} node alone, {x1.shape[1]} steps, p50 {'':>8}{node_us:9.1f} us  "
              f"{node_us / fl_node:5.1f}x floor")

    def stream(texts):
        return list(model.predict_stream(iter(texts)))

    sets = {}
    for name, texts in (("full", full), ("one-sentence", sentences)):
        texts = affordable(texts, stream, args.budget)
        sets[name] = texts
        stream(texts[:2000])
        t = time.perf_counter()
        got = stream(texts)
        rate = len(texts) / (time.perf_counter() - t)
        print(f"  predict_stream, {len(texts):,} {name} reviews {'':>{13 - len(name)}}"
              f"{rate:9,.0f} reviews/s")
        probs = np.array([p.probability for p in got])
        reference = model.predict_ids(plain_padded(model, texts))
        diff = np.abs(probs - reference).max()
        print(f"    max |stream - plain padded path|             {diff:.2e}")
        keras = path.with_name("model.keras")
        if name == "full" and args.keras and keras.exists():
            from rnncli.model.runtime import load_keras_model

            ref = load_keras_model(keras).predict(plain_padded(model, texts), batch_size=1024,
                                                  verbose=0).ravel()
            print(f"    max |stream - Keras| on {len(texts):,} reviews         "
                  f"{np.abs(probs - ref).max():.2e}")

    cli = [sys.executable, "-m", "rnncli", "predict", "--model", str(path)]
    start, start_cpu = wall([*cli, "great film"], args.runs)
    # The cold-start target has its own benchmark (bench_startup.py), which interleaves the
    # floor with each command: here the start-up only enters the CPU bound below.
    print(f"  start-up `rnncli predict \"great film\"`       {start:9.3f} s   "
          f"CPU {start_cpu:.2f} s")
    for name, texts in sets.items():
        file = tmp / f"{name}.txt"
        file.write_text("\n".join(texts) + "\n", encoding="utf-8")
        seconds, cpu = wall([*cli, "--file", str(file), "--format", "jsonl"], args.runs)
        rate = len(texts) / seconds
        goal = (25_000 if name == "full" else None) if not bundled else \
            (1_500 if name == "full" else 15_000)
        tail = f"   {rate / goal:5.2f}x target {goal:,}/s" if goal else ""
        print(f"  `rnncli predict --file`, {len(texts):,} {name} {'':>{12 - len(name)}}"
              f"{seconds:7.2f} s {rate:9,.0f} reviews/s{tail}")
        # A bound that load from other processes cannot move: start-up as measured, the
        # rest of this run's CPU spread evenly over idle cores.
        cores = usable_cores()
        ideal = start + max(0.0, cpu - start_cpu) / cores
        print(f"    CPU {cpu:.2f} s (user + system, process and workers), "
              f"{cpu / len(texts) * 1e6:,.0f} us per review; spread over {cores} idle cores: "
              f"at most {len(texts) / ideal:,.0f} reviews/s")

    # Where a whole-process run spends CPU, per review, one thread each stage.
    texts = sets["full"][:5000]
    serial = OnnxModel(path, workers=1)
    enc_us = cpu_per_review_us(lambda: serial.preprocessing.encode(texts), len(texts))
    if hasattr(serial, "probabilities"):
        encoded = serial.encode(texts)
        run_us = cpu_per_review_us(lambda: serial.probabilities(encoded), len(texts))
    else:  # an rnncli without length-aware batches
        x, _ = serial.preprocessing.encode(texts)
        run_us = cpu_per_review_us(lambda: serial.predict_ids(x, 256), len(texts))
    preds = serial.predict_texts(texts)
    out_us = cpu_per_review_us(lambda: [json.dumps(
        {"text": p.text, "label": p.label, "probability": round(p.probability, 6),
         "known_words": p.known_words}, ensure_ascii=False) for p in preds], len(texts))
    print(f"  CPU per full review, one thread: encode {enc_us:.1f} us, model {run_us:.1f} us, "
          f"jsonl row {out_us:.1f} us")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, action="append",
                    help="ONNX file or run folder; repeat for several [artifacts/, bundled]")
    ap.add_argument("--data-dir", type=Path, default=None, help="data home with the test split")
    ap.add_argument("--runs", type=int, default=3, help="whole-process runs (median)")
    ap.add_argument("--budget", type=float, default=10.0,
                    help="seconds per throughput measurement: a slow model gets fewer reviews")
    ap.add_argument("--limit", type=int, default=None, help="first N test reviews only")
    ap.add_argument("--keras", action=argparse.BooleanOptionalAction, default=True,
                    help="compare with model.keras when it sits beside the ONNX file")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from rnncli.config import run_files
    from rnncli.data import store as dataset
    from rnncli.serve import locate

    models = []
    for m in args.model or [Path(run_files.DEFAULT_OUTPUT), locate.BUNDLED]:
        m = m / run_files.ONNX if m.is_dir() else m
        if m.exists():
            models.append(m)
    home = args.data_dir or dataset.data_home()
    full = [t.replace("\n", " ").strip() for t in dataset.load_split(home, "test").texts()]
    full = full[: args.limit] if args.limit else full
    sentences = [s for s in map(first_sentence, full) if s]
    import onnxruntime

    floor = identity_floor()
    print(f"{os.cpu_count()} cores ({usable_cores()} usable), onnxruntime "
          f"{onnxruntime.__version__}, python {sys.version.split()[0]}; {len(full):,} test "
          f"reviews, {len(sentences):,} one-sentence")
    print(f"floor: onnxruntime per call (Identity graph), p50 {p50_us(floor):.1f} us; each "
          "ratio below divides by the floor measured in blocks alternating with it")
    with tempfile.TemporaryDirectory() as tmp:
        for path in models:
            bench_model(path, full, sentences, floor, args, Path(tmp))


if __name__ == "__main__":
    main()
