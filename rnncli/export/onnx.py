"""Export a trained Keras model to ONNX, validated against Keras, preprocessing inside.

    report = export_onnx(find_model(Path("artifacts")), Path("artifacts/model.onnx"))

Candidates: tf2onnx's conversion (through `from_function`: `from_keras` fails on Keras 3,
tf2onnx issue 2448) and the hand-built graphs of onnx_graph.py. Each is checked the same
way (output names, shapes, then values on real test reviews within `atol`, padded and
trimmed) and timed; one is chosen by a fixed rule (`choose`) and written via a temporary
name, so a failed export leaves nothing at the output path.

A candidate ends up valid, "mismatch" (its values differ from Keras), "rejected" (tf2onnx
could not convert the model, or its graph fails onnx's checker) or "unsupported" (a
hand-built kind refused the model, with its reason). Any other failure of a hand-built
graph, failing onnx's checker included, is a bug in rnncli and fails the export: it never
falls back quietly to another graph.

Every file an export writes (this module, quantize.py, text_export.py) first passes
text_graph.full_check: onnx's checker with full_check and strict shape inference, or the
export refuses it in one line and writes nothing.

An export takes from seconds to minutes: `progress`, when given, is called with a short
phrase at each stage ("native (3/5): checking against Keras"), for the command to show.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnncli.config import run_files
from rnncli.config.settings import RunConfig
from rnncli.errors import DataError, ExportError, GraphUnsupported, ModelError
from rnncli.export.cascade import BUDGET
from rnncli.export.check import check_outputs, checker_problem, full_check, session, time_graph
from rnncli.export.graph import GRAPH_KINDS, build_graph, serving_metadata
from rnncli.fsutil import atomic_path, exclusive_lock, read_json
from rnncli.model import runtime as tf_runtime
from rnncli.serve import contract, locate
from rnncli.serve.contract import INPUT, OUTPUT
from rnncli.text.preprocessing import Preprocessing

GRAPHS = ("auto", *GRAPH_KINDS, "tf2onnx")
# --graph auto: the first kind in this order whose score is within CHOICE_MARGIN of the
# best score; hybrid serves one review and large batches well, and a folded table is
# often larger than the embedding it replaces.
PREFERENCE = ("hybrid", "native", "native-folded", "unrolled", "tf2onnx")
CHOICE_MARGIN = 1.25
TRIMMED_CHECKS = 200  # reviews also fed without their padding, alone and in batches


@dataclass
class Candidate:
    name: str
    proto: object = None
    status: str = "valid"  # or "mismatch", "rejected", "unsupported" (module docstring)
    max_diff: float = float("nan")  # also for a "mismatch" beyond --atol, to report it
    error: str | None = None
    latency_us: float = float("nan")  # one review, one thread, p50
    throughput: float = float("nan")  # reviews/s at batch 1024
    score: float = float("nan")  # see choose()
    trims: bool = False  # accepts rows shorter than maxlen (padded to their longest)
    size_bytes: int = 0


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
    cascade: dict = field(default_factory=dict)  # path -> the cascade's figures, or skipped


class _Rejected(Exception):
    """tf2onnx could not convert the model."""


def validation_inputs(prep: Preprocessing, home: Path,
                      n: int) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Up to `n` real test reviews encoded with the model's preprocessing, else random ids."""
    from rnncli.evaluate import encode_split

    try:
        x, y = encode_split(prep, home, "test", n)
        return x, y, True
    except (DataError, ModelError):
        pass  # no prepared data, or none this model can read
    rng = np.random.default_rng(0)
    x = rng.integers(0, prep.num_words, size=(min(n, 256), prep.maxlen), dtype=np.int32)
    return x, None, False


def _tf2onnx_graph(model, width: int | None, opset: int):
    import tensorflow as tf

    tf2onnx = tf_runtime.import_tf2onnx()

    spec = [tf.TensorSpec([None, width], tf.int32, name=INPUT)]

    @tf.function(input_signature=spec)
    def serve(ids):
        return {OUTPUT: model(ids, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    return proto


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:160] if lines else ''}"


def _masked(model) -> bool:
    return bool(getattr(model.get_layer("embedding"), "mask_zero", False))


def _build(name: str, model, cfg: RunConfig | None, maxlen: int, opset: int):
    """(proto, session, accepts trimmed rows). Raises GraphUnsupported or _Rejected for a
    candidate that is out; a failing hand-built graph raises ExportError for the export."""
    if name == "tf2onnx":
        masked = _masked(model)
        try:  # a masked model runs any width, so its conversion may too
            proto = _tf2onnx_graph(model, None if masked else maxlen, opset)
        except Exception as exc:  # tf2onnx's failures share no base type
            raise _Rejected(f"tf2onnx could not convert it ({_first_line(exc)})") from exc
        problem = checker_problem(proto)
        if problem:  # tf2onnx's graph is not ours to fix: another candidate may do
            raise _Rejected(f"tf2onnx's graph fails onnx's checker ({problem})")
        return proto, session(proto), masked
    if cfg is None:
        raise GraphUnsupported(f"no {run_files.CONFIG} beside the model to rebuild it from")
    try:
        proto = build_graph(model, cfg, name, opset)
        sess = session(proto)
    except GraphUnsupported:
        raise
    except Exception as exc:
        raise ExportError(f"The {name} graph builder crashed on this model "
                          f"({_first_line(exc)}): a bug in rnncli; `--graph tf2onnx` exports "
                          "without it.") from exc
    full_check(proto, f"The {name} graph", "a bug in rnncli; `--graph tf2onnx` exports "
               "without it.")
    return proto, sess, True


def choose(valid: list[Candidate]) -> Candidate:
    """The rule behind --graph auto. Each candidate's score is the worse of its two
    measures relative to the best candidate on each (one-review latency, batch
    throughput), so a graph fast at one and slow at the other loses to one good at both.
    Of the candidates scoring within CHOICE_MARGIN of the best, the first in PREFERENCE
    wins: timing noise smaller than the margin never changes the choice."""
    best_latency = min(c.latency_us for c in valid)
    best_rate = max(c.throughput for c in valid)
    for c in valid:
        c.score = min(best_latency / c.latency_us, c.throughput / best_rate)
    top = max(c.score for c in valid)
    close = [c for c in valid if c.score * CHOICE_MARGIN >= top]
    return min(close, key=lambda c: PREFERENCE.index(c.name))


def _candidate(name: str, model, cfg: RunConfig | None, prep: Preprocessing, opset: int,
               x: np.ndarray, reference: np.ndarray, atol: float,
               say: Callable[[str], None] = lambda what: None) -> Candidate:
    cand = Candidate(name)
    say("building the graph")
    try:
        cand.proto, sess, cand.trims = _build(name, model, cfg, prep.maxlen, opset)
    except GraphUnsupported as exc:
        cand.status, cand.error = "unsupported", str(exc)
        return cand
    except _Rejected as exc:
        cand.status, cand.error = "rejected", str(exc)
        return cand
    cand.size_bytes = cand.proto.ByteSize()
    say(f"checking against Keras on {len(x):,} reviews")
    try:
        # Names and shapes are checked here; the values against --atol below, so that a
        # candidate beyond it still reports by how much.
        cand.max_diff = check_outputs(sess, x, reference, math.inf,
                                      trimmed=TRIMMED_CHECKS if cand.trims else 0,
                                      padding=prep.padding)
    except ExportError as exc:  # names, shapes, or outputs that are not numbers (NaN)
        cand.status, cand.error = "mismatch", str(exc).replace("--atol inf", f"--atol {atol:g}")
        return cand
    if not cand.max_diff <= atol:
        cand.status = "mismatch"
        cand.error = (f"max |ONNX - Keras| = {cand.max_diff:.3g} on {len(x)} reviews exceeds "
                      f"--atol {atol:g}")
        return cand
    say("timing")
    cand.latency_us, cand.throughput = time_graph(sess, x)
    return cand


def graph_metadata(cand: Candidate, cfg: RunConfig | None) -> dict[str, str]:
    if cand.name == "tf2onnx":
        return {contract.GRAPH: cand.name,
                contract.SKIPS_PAD_STEPS: "true" if cand.trims else "false"}
    return serving_metadata(cand.name, cfg)


@contextlib.contextmanager
def run_folder_locked(ref: locate.ModelRef, output: Path) -> Iterator[None]:
    """Hold the lock of the model's run folder (and of the output's, when that is another
    run folder), as training does: an export never reads a model that a run is replacing,
    nor writes beside one. A folder this process cannot write takes no lock: nothing of
    ours is written there."""
    folders = [ref.path.parent]
    if output.parent.resolve() != ref.path.parent.resolve() and any(
            (output.parent / name).exists() for name in (run_files.CONFIG, run_files.LOCK)):
        folders.append(output.parent)
    with contextlib.ExitStack() as stack:
        for folder in folders:
            try:
                stack.enter_context(exclusive_lock(folder / run_files.LOCK))
            except BlockingIOError:
                raise ExportError(f"{folder} is in use by another rnncli process (training "
                                  "or exporting into it): wait for it to end, then export "
                                  "again.") from None
            except OSError:
                pass
        yield


def check_labels(model, prep: Preprocessing, path: Path) -> None:
    """Refuse a model whose outputs are not one per label of its preprocessing.json (one
    for 2 labels): the file would name its probabilities wrong."""
    shape = model.output_shape
    width = (shape[0] if isinstance(shape, list) else shape)[-1]
    want = 1 if prep.classes == 2 else prep.classes
    if width != want:
        raise ModelError(f"{path} gives {width} probabilities per review, but its "
                         f"{run_files.PREPROCESSING} names {prep.classes} labels "
                         f"({', '.join(prep.labels[:5])}{', ...' if prep.classes > 5 else ''}), "
                         f"which need {want}: they come from different runs; retrain, or put "
                         "back the preprocessing.json the model was trained with.")


def check_exportable(ref: locate.ModelRef, graph: str) -> None:
    """Refuse, before anything is locked or written, what export_onnx cannot do."""
    if ref.kind != "keras":
        raise ModelError(f"{ref.path} is already ONNX: export needs the Keras model "
                         "(a run folder or .keras file), or --text-input to wrap it.")
    if graph not in GRAPHS:
        raise ModelError(f"Unknown --graph {graph!r}: use one of {', '.join(GRAPHS)}.")
    tf_runtime.require_training_extra("Exporting to ONNX", tf_runtime.EXPORT_MODULES)


def export_onnx(ref: locate.ModelRef, output: Path, home: Path, *, opset: int = 17,
                atol: float = 1e-5, n_reviews: int = 25_000, graph: str = "auto",
                quantize: bool = False, record_test: bool = False,
                progress: Callable[[str], None] | None = None,
                hold_lock: bool = True, cascade: bool = True,
                cascade_budget: float = BUDGET) -> ExportReport:
    check_exportable(ref, graph)
    if not hold_lock:  # the caller holds run_folder_locked across more than this export
        return _export_onnx(ref, output, home, opset=opset, atol=atol, n_reviews=n_reviews,
                            graph=graph, quantize=quantize, record_test=record_test,
                            progress=progress, cascade=cascade,
                            cascade_budget=cascade_budget)
    with run_folder_locked(ref, Path(output)):
        return _export_onnx(ref, output, home, opset=opset, atol=atol, n_reviews=n_reviews,
                            graph=graph, quantize=quantize, record_test=record_test,
                            progress=progress, cascade=cascade,
                            cascade_budget=cascade_budget)


def _export_onnx(ref: locate.ModelRef, output: Path, home: Path, *, opset: int = 17,
                 atol: float = 1e-5, n_reviews: int = 25_000, graph: str = "auto",
                 quantize: bool = False, record_test: bool = False,
                 progress: Callable[[str], None] | None = None,
                 cascade: bool = True, cascade_budget: float = BUDGET) -> ExportReport:
    say = progress or (lambda what: None)
    prep = locate.keras_preprocessing(ref.path)
    cfg_path = ref.path.parent / run_files.CONFIG
    cfg = RunConfig.from_dict(read_json(cfg_path)) if cfg_path.exists() else None
    # The CLI runs this inside tf_runtime.quiet(hide_gpus=True): a visible GPU makes Keras
    # LSTM/GRU trace to CudnnRNNV3, which tf2onnx cannot convert.
    tf_runtime.check_file_fits(ref.path, prep, ref.path.parent / run_files.PREPROCESSING)
    say(f"loading {ref.path}")
    model = tf_runtime.load_keras_model(ref.path)
    tf_runtime.check_fits(model, prep, ref.path, ref.path.parent / run_files.PREPROCESSING)

    check_labels(model, prep, ref.path)
    x, y, real = validation_inputs(prep, home, n_reviews)
    say(f"running Keras on {len(x):,} {'test reviews' if real else 'random id rows'}")
    reference = np.asarray(model.predict(x, batch_size=1024, verbose=0), np.float64)

    names = [g for g in GRAPHS[1:] if graph in ("auto", g)]
    candidates = [_candidate(name, model, cfg, prep, opset, x, reference, atol,
                             lambda what, n=name, i=i: say(f"{n} ({i}/{len(names)}): {what}"))
                  for i, name in enumerate(names, start=1)]
    valid = [c for c in candidates if c.status == "valid"]
    if not valid:
        reasons = "; ".join(f"{c.name}: {c.error}" for c in candidates)
        raise ExportError(f"No ONNX graph matched the Keras model ({reasons}); nothing "
                          f"written to {output}.")
    best = choose(valid)
    prep.trim_padding = best.trims
    say(f"writing {output}")
    _write(best.proto, output, prep, {**graph_metadata(best, cfg),
                                      "rnncli.max_abs_diff": f"{best.max_diff:.3g}",
                                      "rnncli.validated_reviews": str(len(x))})
    report = ExportReport(output, best.name, candidates, len(x), real, atol,
                          size_bytes=output.stat().st_size)
    if quantize:
        from rnncli.export.quantize import quantize_model

        say("int8: quantizing the weights and checking against Keras")
        report.quantized = quantize_model(output, x, y, reference,
                                          TRIMMED_CHECKS if best.trims else 0, prep.padding)
    q_path = report.quantized.get("path")
    paths = [output] + ([Path(q_path)] if q_path else [])
    if cascade and best.name != "tf2onnx":
        from rnncli.export.cascade import cascade_exported

        report.cascade = cascade_exported(
            paths, model, cfg, prep, home, x, atol=atol, say=say,
            budget=cascade_budget,
            held_out=ref.path.parent / run_files.HEAD_HELD_OUT)
        if any(k != "skipped" for k in report.cascade):
            report.size_bytes = output.stat().st_size
            if q_path:
                report.quantized["size_bytes"] = Path(q_path).stat().st_size
    if record_test:
        for p in paths:
            say(f"scoring {p} on the test split")
            report.recorded[str(p)] = record_test_metrics(p, home)
    return report


SLICE = 2000  # reviews in the recorded slice that tests re-check


def record_test_metrics(path: Path, home: Path) -> dict:
    """Score the written model on the whole test split and on its first SLICE reviews, and
    store both in its metadata, so the numbers travel with the file."""
    import onnx

    from rnncli.evaluate import evaluate_model

    ref = locate.ModelRef(path, "onnx")
    full = evaluate_model(ref, home, "test")
    part = evaluate_model(ref, home, "test", limit=SLICE)
    # A loss is left out when the evaluation gives none (it may not, for K > 2 labels).
    loss = {} if full.get("loss") is None else {"rnncli.test_loss": f"{full['loss']:.6f}"}
    props = {contract.TEST_ACCURACY: f"{full['accuracy']:.6f}", **loss,
             contract.TEST_REVIEWS: str(full["reviews"]),
             "rnncli.test_slice_reviews": str(part["reviews"]),
             "rnncli.test_slice_accuracy": f"{part['accuracy']:.6f}"}
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props},
                                        **props})
    full_check(proto, str(path), "it is left without the test metrics: export without "
               "--record-test.")
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return {**props, **{k: full[k] for k in ("roc_auc", "f1", "macro_f1") if k in full}}


def _write(proto, output: Path, prep: Preprocessing, extra: dict[str, str]) -> None:
    import onnx

    from rnncli.serve.compat import oldest_runtime

    floor = oldest_runtime(proto.ir_version, {o.domain: o.version for o in proto.opset_import})
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {**prep.to_metadata(), **extra,
                                        contract.MIN_ONNXRUNTIME: floor})
    full_check(proto, f"The {extra.get(contract.GRAPH, 'chosen')} graph",
               f"nothing written to {output}: a bug in rnncli; `--graph` can choose another.")
    with atomic_path(output) as tmp:
        onnx.save(proto, str(tmp))
