"""Every file `rnncli export onnx` can write, and the bundled model, pass onnx's own full
check (`onnx.checker.check_model(full_check=True)`) and strict shape inference, each in a
fresh process: onnx's inference can crash the process instead of raising (onnx 1.23
segfaulted on the text-input graph before its Tokenizer outputs were typed), and a crash
there must fail a test, not end the test run. The export itself refuses, in one line, a
graph that fails those checks.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, fetched_home, invoke, one_line_error, trained_run

from rnncli.errors import ExportError
from rnncli.text.preprocessing import Preprocessing

onnx = pytest.importorskip("onnx")

from rnncli.export import check, text_graph  # noqa: E402  (needs onnx)

# Run as `python -c CHECK path...`: a file that fails raises (exit 1), one that crashes onnx
# kills the process (a negative return code); "checking PATH" on stderr names the file.
CHECK = r"""
import sys
import onnx

def graphs(g):
    yield g
    for node in g.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from graphs(attr.g)
            yield from (s for sub in attr.graphs for s in graphs(sub))

for path in sys.argv[1:]:
    print("checking", path, file=sys.stderr, flush=True)
    onnx.checker.check_model(path, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(onnx.load(path), strict_mode=True,
                                                 check_type=True, data_prop=True)
    everything = list(graphs(inferred.graph))
    typed = {v.name for g in everything for v in (*g.input, *g.output, *g.value_info)
             if v.type.tensor_type.elem_type}
    typed |= {i.name for g in everything for i in g.initializer}
    untyped = [f"{n.op_type} {n.name}: {out}" for g in everything for n in g.node
               for out in n.output if out and out not in typed]
    if untyped:
        sys.exit(f"{path}: {len(untyped)} value(s) of unknown type, first {untyped[0]}")
"""


def run_checks(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHECK, *map(str, paths)], capture_output=True,
                          text=True, timeout=600)


def failure(res: subprocess.CompletedProcess) -> str:
    started = [line[len("checking "):] for line in res.stderr.splitlines()
               if line.startswith("checking ")]
    how = f"crashed (signal {-res.returncode})" if res.returncode < 0 else "failed"
    return f"onnx's checks {how} on {started[-1] if started else '?'}:\n{res.stderr[-3000:]}"


def assert_pass(paths: list[Path]) -> None:
    assert paths
    res = run_checks(paths)
    assert res.returncode == 0, failure(res)


def save(proto, path: Path) -> Path:
    onnx.save(proto, str(path))
    return path


# --- the bundled model and the text-input graph: no Keras needed ----------------------

def test_the_bundled_model_passes_beside_its_external_data(tmp_path):
    from rnncli.serve import locate

    data = list(locate.BUNDLED.parent.glob("*.data"))
    assert data, "the bundled model keeps its weights in a .data file"
    for f in [locate.BUNDLED, *data]:
        shutil.copy(f, tmp_path / f.name)
    path = tmp_path / locate.BUNDLED.name
    assert_pass([path])
    assert check.checker_problem(path) is None  # the export's own check agrees


def id_model(prep: Preprocessing, graph: str):
    """An id graph without Keras: sigmoid of a sum of per-id weights."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(1).normal(size=prep.num_words).astype(np.float32)
    nodes = [helper.make_node("Gather", ["w", "ids"], ["g"]),
             helper.make_node("ReduceSum", ["g", "axes"], ["s"], keepdims=1),
             helper.make_node("Sigmoid", ["s"], ["probability"])]
    proto = helper.make_model(helper.make_graph(
        nodes, "ids", [helper.make_tensor_value_info("ids", TensorProto.INT32,
                                                     ["batch", "steps"])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])],
        initializer=[numpy_helper.from_array(w, "w"),
                     numpy_helper.from_array(np.array([1], np.int64), "axes")]),
        opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 10
    helper.set_model_props(proto, {**prep.to_metadata(), "rnncli.graph": graph})
    return proto


def without_declared_types(proto):
    """The text graph as it was before its Tokenizer outputs were declared."""
    tokenizer_outputs = {out for n in proto.graph.node if n.op_type == "Tokenizer"
                         for out in n.output}
    kept = [v for v in proto.graph.value_info if v.name not in tokenizer_outputs]
    assert len(kept) < len(proto.graph.value_info)
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(kept)
    return proto


def test_the_text_graph_passes_and_fails_without_its_declared_types(tmp_path):
    prep = Preprocessing(vocabulary=["film", "great", "don't", "dull"], num_words=7, maxlen=6,
                         trim_padding=True)
    built = {(kind, whole): text_graph.build_text_graph(id_model(prep, kind), prep, whole)
             for kind, whole in itertools.product(("native", "hybrid"), (True, False))}
    assert_pass([save(p, tmp_path / f"{kind}-{whole}.text.onnx")
                 for (kind, whole), p in built.items()])
    for p in built.values():
        assert check.checker_problem(p) is None

    # Without the declared types onnx's checks fail (onnx 1.23.2: the process crashes).
    bare = without_declared_types(built["native", True])
    res = run_checks([save(bare, tmp_path / "bare.text.onnx")])
    assert res.returncode != 0, res.stderr
    assert "bare.text.onnx" in failure(res)  # a crash names the file it was checking
    # The export's own check refuses that graph in one line, and survives it.
    problem = check.checker_problem(bare)
    assert problem and "com.microsoft Tokenizer" in problem, problem
    with pytest.raises(ExportError, match="fails onnx's checker") as caught:
        check.full_check(bare, "The text-input graph", "a bug in rnncli.")
    assert len(str(caught.value).splitlines()) == 1


def test_a_graph_that_fails_strict_inference_is_refused():
    from onnx import helper

    proto = id_model(Preprocessing(vocabulary=["film"], num_words=4, maxlen=3), "native")
    assert check.checker_problem(proto) is None
    proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 2  # it computes [N, 1]
    assert "differ in dimension 1" in check.checker_problem(proto)
    wrong = helper.make_node("Tokenizer", ["s"], ["t"], domain="com.microsoft", mark=0,
                             pad_value="", mincharnum=1, tokenexp="a")
    proto.graph.node.append(wrong)
    assert "t (com.microsoft Tokenizer" in check.checker_problem(proto)


# --- every kind the export writes, from Keras models ------------------------------------

NUM_WORDS, MAXLEN = 30, 12
LAYOUTS = list(itertools.product(("uni", "bi"), (1, 2)))  # with every cell and pooling
HEAD_COMBOS = (("gru", "bi", "masked-max", 1, "pre"), ("simple", "uni", "last", 1, "post"),
               ("lstm", "uni", "max", 2, "pre"))


def keras_model(cell, direction, pooling, layers, padding="pre", ngram_head=False):
    import keras

    from rnncli.config.settings import RunConfig, apply
    from rnncli.model.build import build_model

    cfg = apply(RunConfig(), dict(cell=cell, bidirectional=direction == "bi", pooling=pooling,
                                  layers=layers, num_words=NUM_WORDS, maxlen=MAXLEN, units=3,
                                  embedding_dim=4, padding=padding, truncating=padding))
    keras.utils.set_random_seed(0)
    return build_model(cfg, ngram_head=ngram_head), cfg


@pytest.fixture(scope="module")
def keras_ready():
    pytest.importorskip("tensorflow")
    from rnncli.model import runtime as tf_runtime

    tf_runtime.import_tensorflow()


@pytest.mark.slow
@pytest.mark.usefixtures("keras_ready")
@pytest.mark.parametrize("kind", ["hybrid", "native", "native-folded", "unrolled"])
def test_every_cell_and_pooling_passes_in_every_hand_built_kind(tmp_path, kind):
    from rnncli.export.graph import build_graph
    from rnncli.model import cells, poolings

    paths = []
    for cell, pooling, (direction, layers) in itertools.product(cells.CELLS, poolings.POOLINGS,
                                                                LAYOUTS):
        model, cfg = keras_model(cell, direction, pooling, layers)
        proto = build_graph(model, cfg, kind)
        assert check.checker_problem(proto) is None
        paths.append(save(proto, tmp_path / f"{cell}-{pooling}-{direction}{layers}.onnx"))
    assert len(paths) == len(cells.CELLS) * len(poolings.POOLINGS) * len(LAYOUTS)
    assert_pass(paths)


@pytest.mark.slow
@pytest.mark.usefixtures("keras_ready")
def test_the_ngram_head_and_int8_pass_in_every_kind_and_tf2onnx(tmp_path):
    """The n-gram head in every kind, tf2onnx's conversions (any width and fixed width), and
    each as int8 (the head's table is large enough to be quantized)."""
    from rnncli.export import onnx as onnx_export
    from rnncli.export.graph import GRAPH_KINDS, build_graph
    from rnncli.export.quantize import quantize_weights

    paths = []
    for *combo, padding in HEAD_COMBOS:
        model, cfg = keras_model(*combo, padding=padding, ngram_head=True)
        protos = {kind: build_graph(model, cfg, kind) for kind in GRAPH_KINDS}
        width = None if onnx_export._masked(model) else MAXLEN
        protos["tf2onnx"] = onnx_export._tf2onnx_graph(model, width, 17)
        for kind, proto in protos.items():
            name = "-".join(map(str, combo)) + f"-{padding}-{kind}"
            paths.append(save(proto, tmp_path / f"{name}.onnx"))
            assert quantize_weights(proto), name
            assert check.checker_problem(proto) is None, name
            paths.append(save(proto, tmp_path / f"{name}.int8.onnx"))
    assert_pass(paths)


# --- `rnncli export onnx` on a trained model --------------------------------------------

@pytest.fixture(scope="module")
def trained_head(tmp_path_factory):
    """A tiny model with the n-gram head, trained once: (data home, run folder)."""
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("head")
    home = fetched_home(root)
    return home, trained_run(root, home, *TINY, "--epochs", "1", "--ngram-head")


def export(run: Path, home: Path, *args: str):
    return invoke("export", "onnx", "--model", run, "--data-dir", home, "--json", *args)


@pytest.mark.slow
@pytest.mark.parametrize("graph", ["auto", "hybrid"])
def test_every_file_the_export_writes_passes(trained_head, tmp_path, graph):
    home, run = trained_head
    output = tmp_path / "model.onnx"
    res = export(run, home, "--output", str(output), "--graph", graph, "--quantize",
                 "--text-input", "--record-test")
    assert res.exit_code == 0, res.output
    written = sorted(tmp_path.glob("*.onnx"))
    assert [p.name for p in written] == ["model.int8.onnx", "model.onnx", "model.text.onnx"]
    assert_pass(written)


def declared_output_dim_2(proto):
    """A graph that computes [N, 1] and says [N, 2]: onnxruntime runs it (with a warning),
    onnx's strict inference refuses it."""
    proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 2
    return proto


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["native", "int8", "text"])
def test_the_export_refuses_a_file_that_fails_the_check(trained_head, tmp_path, monkeypatch,
                                                        writer):
    from rnncli.export import onnx as onnx_export
    from rnncli.export import quantize

    home, run = trained_head
    if writer == "native":
        build = onnx_export.build_graph
        monkeypatch.setattr(onnx_export, "build_graph",
                            lambda *a, **k: declared_output_dim_2(build(*a, **k)))
        refused, what = "model.onnx", "The native graph fails onnx's checker"
    elif writer == "int8":
        weights = quantize.quantize_weights

        def quantize_then_break(proto):
            done = weights(proto)
            declared_output_dim_2(proto)
            return done

        monkeypatch.setattr(quantize, "quantize_weights", quantize_then_break)
        refused, what = "model.int8.onnx", "The int8 graph fails onnx's checker"
    else:  # the Tokenizer's outputs undeclared: what crashed onnx, refused before it runs
        monkeypatch.setattr(text_graph, "declared_types", lambda nodes: [])
        refused, what = "model.text.onnx", "The text-input graph fails onnx's checker"
    res = export(run, home, "--output", str(tmp_path / "model.onnx"), "--graph", "native",
                 "--quantize", "--text-input")
    one_line_error(res, what, progress="export: ")
    assert not (tmp_path / refused).exists()
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


@pytest.mark.slow
def test_a_tf2onnx_graph_that_fails_the_check_is_rejected_not_written(trained_head, tmp_path,
                                                                       monkeypatch):
    """tf2onnx's output is not ours to fix: it is one rejected candidate, and another kind
    is written."""
    from rnncli.export import onnx as onnx_export

    home, run = trained_head
    convert = onnx_export._tf2onnx_graph
    monkeypatch.setattr(onnx_export, "_tf2onnx_graph",
                        lambda *a: declared_output_dim_2(convert(*a)))
    res = export(run, home, "--output", str(tmp_path / "model.onnx"))
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    tf = next(c for c in report["candidates"] if c["graph"] == "tf2onnx")
    assert tf["status"] == "rejected" and "fails onnx's checker" in tf["error"], tf
    assert report["chosen"] != "tf2onnx"
