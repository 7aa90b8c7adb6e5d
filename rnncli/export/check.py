"""Checking an ONNX graph against its Keras model, and timing it the way serving runs it.

    diff = check_outputs(session, x, keras_outputs, atol=1e-5, trimmed=200)

Values are compared on rows padded to maxlen and, for graphs that accept them, on the same
reviews without their padding: alone, and in length-sorted batches padded only to their
longest, the way length-aware serving feeds a graph.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from rnncli.errors import ExportError
from rnncli.serve.contract import INPUT, OUTPUT
from rnncli.text.padding import trimmed_batches, trimmed_rows

CHECK_BATCH = 1024  # reviews per call when comparing with Keras


def run_sliced(sess, x: np.ndarray) -> np.ndarray:
    """The graph's output on `x`, CHECK_BATCH rows per call: one call on 25,000 reviews x
    500 steps would hold every step's state of every review at once (gigabytes)."""
    if not len(x):
        return sess.run([OUTPUT], {INPUT: x})[0]
    return np.concatenate([sess.run([OUTPUT], {INPUT: x[i : i + CHECK_BATCH]})[0]
                           for i in range(0, len(x), CHECK_BATCH)])


def max_diff(sess, x: np.ndarray, reference: np.ndarray, trimmed: int = 0,
             padding: str = "pre") -> float:
    """Max |ONNX - reference| on `x`; with `trimmed`, also on its first `trimmed` rows
    without their padding, in length-sorted batches and one by one."""
    got = run_sliced(sess, x)
    if got.shape != reference.shape:
        raise ExportError(f"output shape {got.shape} differs from Keras's {reference.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - reference))) if len(x) else 0.0
    part, ref = x[:trimmed], reference[:trimmed]
    checks = trimmed_batches(part, padding) if trimmed else []
    checks += [(row[None, :], [k]) for k, row in enumerate(trimmed_rows(part, padding))]
    for batch, idx in checks:
        out = sess.run([OUTPUT], {INPUT: batch})[0]
        diff = max(diff, float(np.max(np.abs(out.astype(np.float64) - ref[idx]))))
    return diff


def check_outputs(sess, x: np.ndarray, reference: np.ndarray, atol: float,
                  trimmed: int = 0, padding: str = "pre") -> float:
    """Names, then shapes, then values against the Keras outputs; returns the max |diff|."""
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    if [i.name for i in inputs] != [INPUT] or [o.name for o in outputs] != [OUTPUT]:
        raise ExportError(f"graph has inputs {[i.name for i in inputs]} and outputs "
                          f"{[o.name for o in outputs]}, expected [{INPUT!r}] and [{OUTPUT!r}]")
    diff = max_diff(sess, x, reference, trimmed, padding)
    if not diff <= atol:
        raise ExportError(f"max |ONNX - Keras| = {diff:.3g} on {len(x)} reviews exceeds "
                          f"--atol {atol:g}")
    return diff


def time_graph(sess, x: np.ndarray, repeats: int = 200) -> tuple[float, float]:
    """(p50 microseconds for one review, reviews/s at batch 1024 on every core), measured
    the way `predict` runs the graph."""
    from rnncli.serve.onnx_model import default_workers, run_batches

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


def session(proto):
    """An onnxruntime session on a model in memory, with serving's options."""
    import onnxruntime as ort

    from rnncli.serve.onnx_model import session_options

    return ort.InferenceSession(proto.SerializeToString(), session_options(),
                                providers=["CPUExecutionProvider"])


# onnx's own checks, run on every file an export writes (onnx.py, quantize.py,
# text_export.py); the text graph declares the types whose absence they refuse first.

def _graphs(graph):
    """A graph and every graph nested in its nodes' attributes (If branches, Loop bodies)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def undeclared_outputs(proto) -> list[str]:
    """Outputs of nodes whose operator onnx has no schema for (another domain's, such as
    com.microsoft's Tokenizer) that carry no declared element type. onnx cannot infer
    their type, and its shape inference may crash on what reads them instead of raising
    (onnx 1.23 segfaults at an ai.onnx.ml LabelEncoder fed from a Tokenizer; onnx/onnx#7298
    is one of that family): such a graph is refused before onnx's inference runs."""
    import onnx

    typed = {v.name for g in _graphs(proto.graph) for v in (*g.input, *g.output, *g.value_info)
             if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type
             or v.type.HasField("sequence_type") or v.type.HasField("map_type")}
    return [f"{out} ({node.domain or 'ai.onnx'} {node.op_type} {node.name})"
            for g in _graphs(proto.graph) for node in g.node
            if not onnx.defs.has(node.op_type, node.domain)
            for out in node.output if out and out not in typed]


def checker_problem(model) -> str | None:
    """Why onnx's own checks refuse `model` (a ModelProto, or the path of a saved one:
    needed for a model with external data or over 2 GB), in one line; None when it passes
    `onnx.checker.check_model(full_check=True)` and `onnx.shape_inference.infer_shapes`
    with strict_mode, check_type and data_prop, as tests/test_onnx_checker.py runs them on
    every file an export writes."""
    import onnx

    path = isinstance(model, (str, os.PathLike))
    proto = onnx.load(os.fspath(model)) if path else model
    undeclared = undeclared_outputs(proto)
    if undeclared:
        return (f"{len(undeclared)} output(s) of operators onnx has no schema for carry no "
                f"declared type, first {undeclared[0]}: onnx's shape inference can crash on "
                "such a graph")
    try:
        onnx.checker.check_model(os.fspath(model) if path else proto, full_check=True)
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True,
                                          data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        lines = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {lines[0][:160] if lines else ''}"
    return None


def full_check(model, what: str, next_step: str) -> None:
    """Raise ExportError, in one line, when `model` fails onnx's checks (checker_problem).
    Every writer of an exported file calls it before its atomic write."""
    problem = checker_problem(model)
    if problem:
        raise ExportError(f"{what} fails onnx's checker ({problem}); {next_step}")
