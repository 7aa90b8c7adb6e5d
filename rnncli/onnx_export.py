"""Export a trained Keras model to ONNX, validated against Keras, preprocessing inside.

    report = export_onnx(find_model(Path("artifacts")), Path("artifacts/model.onnx"))

Candidates: tf2onnx's conversion (through `from_function`: `from_keras` fails on Keras 3,
tf2onnx issue 2448) and the native-op graphs of onnx_graph.py. Each is checked the same
way (output names, shapes, then values on real test reviews within `atol`) and timed; the
fastest valid one is written, via a temporary name, so a failed export leaves nothing at
the output path.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnncli import runs
from rnncli.config import RunConfig
from rnncli.errors import DataError, ExportError, ModelError
from rnncli.fsutil import atomic_path, read_json
from rnncli.onnx_graph import INPUT, OUTPUT, build_graph, trims_padding, unrolled_supported
from rnncli.preprocessing import Preprocessing

GRAPHS = ("auto", "hybrid", "unrolled", "native", "native-folded", "tf2onnx")
TRIMMING_GRAPHS = ("hybrid", "native", "native-folded")


@dataclass
class Candidate:
    name: str
    proto: object = None
    max_diff: float = float("nan")
    error: str | None = None
    latency_us: float = float("nan")  # one review, one thread, p50
    throughput: float = float("nan")  # reviews/s at batch 1024
    trims: bool = False  # accepts reviews without their leading pads


@dataclass
class ExportReport:
    output: Path
    chosen: str
    candidates: list[Candidate]
    reviews: int  # how many reviews the values were compared on
    real_reviews: bool
    atol: float
    size_bytes: int = 0
    quantized: dict = field(default_factory=dict)
    recorded: dict = field(default_factory=dict)  # path -> test metrics stored in metadata


def validation_inputs(prep: Preprocessing, home: Path,
                      n: int) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Up to `n` real test reviews encoded with the model's preprocessing, else random ids."""
    from rnncli.evaluation import encode_split

    try:
        x, y = encode_split(prep, home, "test", n)
        return x, y, True
    except (DataError, ModelError):
        pass  # no prepared data, or none this model can read
    rng = np.random.default_rng(0)
    x = rng.integers(0, prep.num_words, size=(min(n, 256), prep.maxlen), dtype=np.int32)
    return x, None, False


def _quiet_python_loggers() -> None:
    """tf2onnx and onnxruntime's quantizer log progress notes at INFO/WARNING through the
    root logger; the export prints its own report instead."""
    import logging

    for name in ("tf2onnx", "onnxruntime", "root"):
        logging.getLogger(name if name != "root" else None).setLevel(logging.ERROR)


def _tf2onnx_graph(model, maxlen: int, opset: int):
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec([None, maxlen], tf.int32, name=INPUT)]

    @tf.function(input_signature=spec)
    def serve(ids):
        return {OUTPUT: model(ids, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    return proto


def _session(proto):
    import onnxruntime as ort

    from rnncli.inference import session_options

    return ort.InferenceSession(proto.SerializeToString(), session_options(),
                                providers=["CPUExecutionProvider"])


def trimmed_rows(x: np.ndarray) -> list[np.ndarray]:
    """Each 'pre'-padded row without its leading pads, as predict feeds a single review."""
    return [row[int(np.argmax(row != 0)):] for row in x]


def check_outputs(sess, x: np.ndarray, reference: np.ndarray, atol: float,
                  trimmed: int = 0) -> float:
    """Names, then shapes, then values against the Keras outputs; returns the max |diff|.

    With `trimmed`, the first `trimmed` reviews are also fed one by one without their
    padding, the way `predict` feeds a graph that trims padding.
    """
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    if [i.name for i in inputs] != [INPUT] or [o.name for o in outputs] != [OUTPUT]:
        raise ExportError(f"graph has inputs {[i.name for i in inputs]} and outputs "
                          f"{[o.name for o in outputs]}, expected [{INPUT!r}] and [{OUTPUT!r}]")
    got = sess.run([OUTPUT], {INPUT: x})[0]
    if got.shape != reference.shape:
        raise ExportError(f"output shape {got.shape} differs from Keras's {reference.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - reference))) if len(x) else 0.0
    for row, ref in zip(trimmed_rows(x[:trimmed]), reference[:trimmed]):
        one = sess.run([OUTPUT], {INPUT: row[None, :]})[0]
        diff = max(diff, float(np.max(np.abs(one.astype(np.float64) - ref))))
    if not diff <= atol:
        raise ExportError(f"max |ONNX - Keras| = {diff:.3g} on {len(x)} reviews exceeds "
                          f"--atol {atol:g}")
    return diff


def time_graph(sess, x: np.ndarray, repeats: int = 200) -> tuple[float, float]:
    """(p50 microseconds for one review, reviews/s at batch 1024 on every core), measured
    the way `predict` runs the graph."""
    from rnncli.inference import default_workers, run_batches

    one = x[:1]
    for _ in range(20):
        sess.run([OUTPUT], {INPUT: one})
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run([OUTPUT], {INPUT: one})
        samples.append(time.perf_counter() - t)
    big = np.resize(x, (4096, x.shape[1]))
    run_batches(sess, big[:1024], 1024, 1, INPUT, OUTPUT)
    t = time.perf_counter()
    run_batches(sess, big, 1024, default_workers(), INPUT, OUTPUT)
    return statistics.median(samples) * 1e6, len(big) / (time.perf_counter() - t)


def choose(valid: list[Candidate]) -> Candidate:
    """The graph with the best worse-side of the two measures, each relative to the best
    candidate on it: a graph fast for one review but slow in batch (or the reverse) loses
    to one that is good at both."""
    best_latency = min(c.latency_us for c in valid)
    best_rate = max(c.throughput for c in valid)
    return max(valid, key=lambda c: min(best_latency / c.latency_us, c.throughput / best_rate))


def export_onnx(ref: runs.ModelRef, output: Path, home: Path, *, opset: int = 17,
                atol: float = 1e-5, n_reviews: int = 1000, graph: str = "auto",
                quantize: bool = False, record_test: bool = False) -> ExportReport:
    if ref.kind != "keras":
        raise ModelError(f"{ref.path} is already ONNX: export needs the Keras model "
                         "(a run folder or .keras file), or --text-input to wrap it.")
    if graph not in GRAPHS:
        raise ModelError(f"Unknown --graph {graph!r}: use one of {', '.join(GRAPHS)}.")
    prep = runs.keras_preprocessing(ref.path)
    cfg_path = ref.path.parent / runs.CONFIG
    cfg = RunConfig.from_dict(read_json(cfg_path)) if cfg_path.exists() else None
    # A visible GPU makes Keras LSTM/GRU trace to CudnnRNNV3, which tf2onnx cannot convert.
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    runs.quiet_tensorflow()
    _quiet_python_loggers()
    model = runs.load_keras_model(ref.path)

    x, y, real = validation_inputs(prep, home, n_reviews)
    reference = np.asarray(model.predict(x, batch_size=1024, verbose=0), np.float64)

    names = [g for g in GRAPHS[1:] if graph in ("auto", g)]
    candidates = []
    for name in names:
        cand = Candidate(name)
        try:
            if name == "tf2onnx":
                cand.proto = _tf2onnx_graph(model, prep.maxlen, opset)
            elif cfg is None:
                raise ExportError(f"no {runs.CONFIG} beside the model to rebuild it from")
            elif name in ("hybrid", "unrolled") and not unrolled_supported(cfg):
                raise ExportError("covers one unidirectional layer only")
            else:
                cand.proto = build_graph(model, cfg, name, opset)
            cand.trims = name in TRIMMING_GRAPHS and cfg is not None and trims_padding(cfg)
            sess = _session(cand.proto)
            cand.max_diff = check_outputs(sess, x, reference, atol,
                                          trimmed=min(len(x), 200) if cand.trims else 0)
            cand.latency_us, cand.throughput = time_graph(sess, x)
        except ExportError as exc:
            cand.error = str(exc)
        except Exception as exc:  # a converter failure is one candidate out, not the export
            cand.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        candidates.append(cand)
    valid = [c for c in candidates if c.error is None]
    if not valid:
        reasons = "; ".join(f"{c.name}: {c.error}" for c in candidates)
        raise ExportError(f"No ONNX graph matched the Keras model ({reasons}); nothing "
                          f"written to {output}.")
    best = choose(valid)
    prep.trim_padding = best.trims
    _write(best.proto, output, prep, {"rnncli.graph": best.name,
                                      "rnncli.max_abs_diff": f"{best.max_diff:.3g}",
                                      "rnncli.validated_reviews": str(len(x))})
    report = ExportReport(output, best.name, candidates, len(x), real, atol,
                          size_bytes=output.stat().st_size)
    if quantize:
        report.quantized = quantize_model(output, x, y, reference)
    if record_test:
        paths = [output] + ([Path(report.quantized["path"])] if quantize else [])
        report.recorded = {str(p): record_test_metrics(p, home) for p in paths}
    return report


SLICE = 2000  # reviews in the recorded slice that tests re-check


def record_test_metrics(path: Path, home: Path) -> dict:
    """Score the written model on the whole test split and on its first SLICE reviews, and
    store both in its metadata, so the numbers travel with the file."""
    import onnx

    from rnncli.evaluation import evaluate_model

    ref = runs.ModelRef(path, "onnx")
    full = evaluate_model(ref, home, "test")
    part = evaluate_model(ref, home, "test", limit=SLICE)
    props = {"rnncli.test_accuracy": f"{full['accuracy']:.6f}",
             "rnncli.test_loss": f"{full['loss']:.6f}",
             "rnncli.test_reviews": str(full["reviews"]),
             "rnncli.test_slice_reviews": str(part["reviews"]),
             "rnncli.test_slice_accuracy": f"{part['accuracy']:.6f}"}
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props},
                                        **props})
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return {**props, "roc_auc": full["roc_auc"], "f1": full["f1"]}


def _write(proto, output: Path, prep: Preprocessing, extra: dict[str, str]) -> None:
    import onnx

    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {**prep.to_metadata(), **extra})
    with atomic_path(output) as tmp:
        onnx.save(proto, str(tmp))


def quantize_model(output: Path, x: np.ndarray, y: np.ndarray | None,
                   reference: np.ndarray) -> dict:
    """Dynamic int8 weights beside the float model; size and accuracy change reported."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    q_path = output.with_name(output.stem + ".int8.onnx")
    with atomic_path(q_path) as tmp:
        quantize_dynamic(str(output), str(tmp), weight_type=QuantType.QInt8)
        # quantize_dynamic keeps metadata_props on some versions only: copy them over.
        src, q = onnx.load(str(output)), onnx.load(str(tmp))
        onnx.helper.set_model_props(q, {p.key: p.value for p in src.metadata_props})
        onnx.save(q, str(tmp))
    from rnncli.inference import OnnxModel

    got = OnnxModel(q_path).predict_ids(x).astype(np.float64)
    ref = reference.ravel()
    result = {"path": str(q_path), "size_bytes": q_path.stat().st_size,
              "float_size_bytes": output.stat().st_size,
              "max_abs_diff": float(np.max(np.abs(got - ref))) if len(x) else 0.0}
    if y is not None:
        result["accuracy_float"] = float(((ref >= 0.5) == (y >= 0.5)).mean())
        result["accuracy_int8"] = float(((got >= 0.5) == (y >= 0.5)).mean())
    return result
