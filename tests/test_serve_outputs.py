"""A model whose outputs are not probabilities (NaN, infinite, outside [0, 1]) is refused
on every path that serves or scores it, never labelled: tiny onnx.helper graphs carrying
the bundled model's metadata (its vocabulary, maxlen, labels), so no training is needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, keras_run, one_line_error

import rnncli
from rnncli import evaluate as evaluation
from rnncli.config import run_files
from rnncli.errors import ModelError
from rnncli.model import runtime as tf_runtime
from rnncli.serve import contract, locate
from rnncli.serve.onnx_model import OnnxModel, check_probabilities

onnx = pytest.importorskip("onnx")
helper, TensorProto = onnx.helper, onnx.TensorProto

# numerator / denominator of every output: 0/0 is NaN, 1/0 infinite, 3/2 = 1.5.
BROKEN = {"nan": (0.0, 0.0), "inf": (1.0, 0.0), "1.5": (3.0, 2.0), "-0.5": (-1.0, 2.0)}


def bundled_metadata() -> dict[str, str]:
    proto = onnx.load(str(locate.BUNDLED), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props if p.key.startswith(contract.PREFIX)}


def save(proto, path):
    helper.set_model_props(proto, bundled_metadata())
    onnx.save(proto, str(path))
    return path


def id_model(path, value: str):
    """ids int32 [batch, steps] -> Div(0 * sum + num, 0 * sum + den), one per review."""
    num, den = BROKEN[value]
    nodes = [
        helper.make_node("Cast", ["ids"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["x", "axes"], ["sum"], keepdims=1),
        helper.make_node("Mul", ["sum", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "num"], ["n"]),
        helper.make_node("Add", ["zeros", "den"], ["d"]),
        helper.make_node("Div", ["n", "d"], [contract.OUTPUT]),
    ]
    inits = [helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
             helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("num", TensorProto.FLOAT, [], [num]),
             helper.make_tensor("den", TensorProto.FLOAT, [], [den])]
    graph = helper.make_graph(
        nodes, "broken",
        [helper.make_tensor_value_info(contract.INPUT, TensorProto.INT32, ["batch", "steps"])],
        [helper.make_tensor_value_info(contract.OUTPUT, TensorProto.FLOAT, ["batch", 1])],
        inits)
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def text_model(path, value: str):
    """text string [batch] -> the same value for every review, and 0 known words."""
    num, den = BROKEN[value]
    nodes = [
        helper.make_node("Shape", [contract.TEXT_INPUT], ["n_reviews"]),
        helper.make_node("ConstantOfShape", ["n_reviews"], ["zeros"],
                         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])),
        helper.make_node("Add", ["zeros", "num"], ["n"]),
        helper.make_node("Add", ["zeros", "den"], ["d"]),
        helper.make_node("Div", ["n", "d"], [contract.OUTPUT]),
        helper.make_node("ConstantOfShape", ["n_reviews"], [contract.KNOWN_OUTPUT],
                         value=helper.make_tensor("k", TensorProto.INT64, [1], [0])),
    ]
    inits = [helper.make_tensor("num", TensorProto.FLOAT, [], [num]),
             helper.make_tensor("den", TensorProto.FLOAT, [], [den])]
    graph = helper.make_graph(
        nodes, "broken-text",
        [helper.make_tensor_value_info(contract.TEXT_INPUT, TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info(contract.OUTPUT, TensorProto.FLOAT, ["batch"]),
         helper.make_tensor_value_info(contract.KNOWN_OUTPUT, TensorProto.INT64, ["batch"])],
        inits)
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


MAKERS = {"ids": id_model, "text": text_model}


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("value", sorted(BROKEN))
def test_every_serving_path_refuses_outputs_that_are_not_probabilities(tmp_path, kind, value):
    path = MAKERS[kind](tmp_path / "broken.onnx", value)
    model = OnnxModel(path, workers=1)
    assert model.takes_text == (kind == "text")
    paths = {
        "few": lambda: model.predict_texts(["great film"]),
        "many": lambda: model.predict_texts(["great film", "dull"] * 20, batch_size=8),
        "stream": lambda: list(model.predict_stream(iter(["great film"] * 50), 8)),
        "api": lambda: rnncli.load(path).predict("a wonderful film"),
        "api stream": lambda: list(rnncli.load(path).predict_stream(["a", "b", "c"])),
    }
    if kind == "ids":
        paths["ids"] = lambda: model.predict_ids(np.ones((3, 5), np.int32))
    for name, call in paths.items():
        with pytest.raises(ModelError, match="as a probability, not a number between 0 and "
                                             "1: the model is broken") as err:
            call()
        assert str(path) in str(err.value) and "\n" not in str(err.value), name


@pytest.mark.parametrize("fmt", ["table", "jsonl", "csv"])
@pytest.mark.parametrize("value", ["nan", "1.5"])
def test_predict_refuses_them_in_one_line_naming_the_model(tmp_path, fmt, value):
    path = id_model(tmp_path / "broken.onnx", value)
    res = invoke("predict", "great film", "--model", path, "--format", fmt)
    one_line_error(res, f"{path} gave {value} as a probability")
    assert res.stdout == "", "no label, no row"


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_evaluate_refuses_them_instead_of_reporting_accuracy(prepared, tmp_path, kind):
    path = MAKERS[kind](tmp_path / "broken.onnx", "nan")
    res = invoke("evaluate", "--model", path, "--json")
    one_line_error(res, f"{path} gave nan as a probability")
    assert "accuracy" not in res.stdout


def test_evaluate_refuses_them_from_a_keras_model_too(prepared, tmp_path, monkeypatch):
    keras_run(tmp_path / "run")
    monkeypatch.setattr(tf_runtime, "require_training_extra", lambda *a, **k: None)
    outputs = np.linspace(0, 1, 48)
    outputs[7] = np.nan
    # The file itself is never read: the model and its outputs are stand-ins.
    monkeypatch.setattr(tf_runtime, "check_file_fits", lambda *a, **k: None)
    monkeypatch.setattr(evaluation, "load_keras", lambda ref, prep: object())
    monkeypatch.setattr(evaluation, "predict_probabilities",
                        lambda model, x, **k: outputs[:len(x)])
    res = invoke("evaluate", "--model", "run", "--json")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.stderr.splitlines()[-1].startswith(f"Error: {Path('run', run_files.MODEL)} gave nan")
    assert "retrain it" in res.stderr and res.stdout == ""


def test_the_check_passes_probabilities_through_unchanged():
    probs = np.array([0.0, 1e-9, 0.5, 1.0], np.float32)
    assert check_probabilities(probs, "m.onnx") is probs
    assert len(check_probabilities(np.zeros(0, np.float32), "m.onnx")) == 0
    for bad in (np.nan, np.inf, -np.inf, 1.0000001, -1e-7):
        with pytest.raises(ModelError, match=f"m.onnx gave {float(np.float64(bad))!r}"):
            check_probabilities(np.array([0.5, bad]), "m.onnx")


def test_a_broken_model_found_in_artifacts_is_still_one_line(prepared, tmp_path):
    (tmp_path / "artifacts").mkdir()
    path = id_model(tmp_path / "artifacts" / "model.onnx", "nan")
    for command in (["predict", "great film"], ["evaluate"]):
        res = invoke(*command)
        one_line_error(res, f"{path.relative_to(tmp_path)} gave nan as a probability")
