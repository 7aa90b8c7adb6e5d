"""Serving models of K > 2 labels: `rnncli predict`, rnncli.load() and the text graph.

Hand-made ONNX graphs (no Keras): each id adds a row of a table of K logits, then a
softmax; the metadata names the labels. The export of real Keras models is in
test_export_classes.py.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from conftest import invoke, one_line_error

from rnncli.text import tokenizer as text
from rnncli.text.preprocessing import Preprocessing

WORDS = ["goal", "match", "vote", "party", "film", "actor", "team", "law", "song", "great"]
LABELS = ["sport", "politics", "arts"]
REVIEWS = ["a goal in the match", "the party won the vote", "a film with a great actor",
           "team goal goal"]


def make_prep(labels=LABELS, **kw) -> Preprocessing:
    return Preprocessing(vocabulary=WORDS, num_words=len(WORDS) + 3, maxlen=8,
                         labels=list(labels), **kw)


def classes_graph(prep: Preprocessing, width: int | None = None, last: str = "Softmax"):
    """ids -> sum of per-id rows of `width` logits (pads add 0) -> `last` -> probability.
    Built with onnx, which a base install (tools/check_minimums.py) lacks: skipped there."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    width = width or prep.classes
    w = np.random.default_rng(3).normal(0, 2, size=(prep.num_words, width)).astype(np.float32)
    w[text.PAD] = 0
    nodes = [helper.make_node("Gather", ["w", "ids"], ["g"]),
             helper.make_node("ReduceSum", ["g", "axes"], ["s"], keepdims=0),
             helper.make_node(last, ["s"], ["probability"])]
    graph = helper.make_graph(
        nodes, "fake", [helper.make_tensor_value_info("ids", TensorProto.INT32,
                                                      ["batch", "steps"])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", width])],
        initializer=[numpy_helper.from_array(w, "w"),
                     numpy_helper.from_array(np.array([1], np.int64), "axes")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 10
    helper.set_model_props(proto, {**prep.to_metadata(), "rnncli.graph": "native"})
    return proto


def save(proto, path):
    import onnx

    onnx.save(proto, str(path))
    return path


@pytest.fixture
def model_path(tmp_path):
    return save(classes_graph(make_prep()), tmp_path / "model.onnx")


def jsonl_rows(res) -> list[dict]:
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_predict_prints_the_most_probable_label_and_its_probability(model_path):
    from rnncli.serve.onnx_model import OnnxModel

    rows = jsonl_rows(invoke("predict", "--model", model_path, *REVIEWS, "--format", "jsonl"))
    probs, _ = OnnxModel(model_path).scores(REVIEWS)
    assert probs.shape == (len(REVIEWS), 3)
    assert [r["label"] for r in rows] == [LABELS[i] for i in probs.argmax(1)]
    assert [r["probability"] for r in rows] == pytest.approx(probs.max(1).tolist(), abs=1e-6)
    assert list(rows[0]) == ["line", "text", "label", "probability", "known_words"]
    # The labels are not all the same, so the argmax is really per row.
    assert len({r["label"] for r in rows}) > 1


def test_all_probabilities_in_json_jsonl_csv_and_the_table(model_path):
    args = ["predict", "--model", model_path, *REVIEWS, "--all-probabilities", "--format"]
    rows = jsonl_rows(invoke(*args, "jsonl"))
    for r in rows:
        assert list(r["probabilities"]) == LABELS
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert r["probabilities"][r["label"]] == r["probability"]
    res = invoke(*args, "json")
    assert res.exit_code == 0 and json.loads(res.stdout) == rows
    res = invoke(*args, "csv")
    got = list(csv.DictReader(io.StringIO(res.stdout)))
    assert list(got[0]) == ["line", "label", "probability", "known_words", "p_sport",
                            "p_politics", "p_arts", "text"]
    for g, r in zip(got, rows):
        assert [float(g[f"p_{k}"]) for k in LABELS] == pytest.approx(
            list(r["probabilities"].values()), abs=1e-6)
    res = invoke(*args, "table")
    first = res.stdout.splitlines()[0]
    assert first.split()[1] == rows[0]["label"]
    p = rows[0]["probabilities"]
    assert f"sport={p['sport']:.3f} politics={p['politics']:.3f} arts={p['arts']:.3f}" in first


def test_all_probabilities_from_files_stdin_and_tables(model_path, tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    (tmp_path / "in.txt").write_text("\n".join([REVIEWS[0], "", REVIEWS[1]]) + "\n")
    rows = jsonl_rows(invoke("predict", "--model", model_path, "--file", tmp_path / "in.txt",
                             "--all-probabilities", "--format", "jsonl"))
    assert rows[1]["probabilities"] is None and rows[1]["label"] is None  # a blank line
    piped = jsonl_rows(invoke("predict", "--model", model_path, "-", "--all-probabilities",
                              "--format", "jsonl", input=(tmp_path / "in.txt").read_text()))
    assert piped == rows
    res = invoke("predict", "--model", model_path, "--file", tmp_path / "in.txt",
                 "--all-probabilities", "--output", tmp_path / "out.parquet")
    assert res.exit_code == 0, res.output
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert table[0]["p_arts"] == pytest.approx(rows[0]["probabilities"]["arts"], abs=1e-6)
    assert table[1]["p_arts"] is None and table[1]["label"] is None
    # A table in, each format out: its columns kept, every label's probability added.
    (tmp_path / "in.csv").write_text("id,text\n7," + REVIEWS[2] + "\n8,\n")
    res = invoke("predict", "--model", model_path, "--file", tmp_path / "in.csv",
                 "--all-probabilities", "--format", "jsonl")
    want = json.loads(res.stdout.splitlines()[0])
    assert list(want["probabilities"]) == LABELS
    for suffix in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"scored.{suffix}"
        res = invoke("predict", "--model", model_path, "--file", tmp_path / "in.csv",
                     "--all-probabilities", "--output", out)
        assert res.exit_code == 0, res.output
        if suffix == "csv":
            got = list(csv.DictReader(out.open()))
            assert list(got[0]) == ["id", "text", "label", "probability", "known_words",
                                    "p_sport", "p_politics", "p_arts"]
            assert got[1]["p_sport"] == ""
            first = {k: float(got[0][f"p_{k}"]) for k in LABELS}
        elif suffix == "jsonl":
            got = [json.loads(line) for line in out.read_text().splitlines()]
            assert got[1]["probabilities"] is None
            first = got[0]["probabilities"]
        else:
            got = pq.read_table(out).to_pylist()
            assert got[1]["p_sport"] is None
            first = {k: got[0][f"p_{k}"] for k in LABELS}
        assert first == pytest.approx(want["probabilities"], abs=1e-6)
        assert got[0]["label"] == want["label"] == max(first, key=first.get)


def test_an_input_column_the_probabilities_would_overwrite_is_refused(model_path, tmp_path):
    (tmp_path / "in.csv").write_text("p_arts,text\n1,a film\n")
    res = invoke("predict", "--model", model_path, "--file", tmp_path / "in.csv",
                 "--all-probabilities")
    one_line_error(res, "already has a column 'p_arts'", code=2)


def test_threshold_is_refused_for_more_than_two_labels(model_path, tmp_path):
    import rnncli
    from rnncli.errors import UsageError

    res = invoke("predict", "--model", model_path, "a film", "--threshold", "0.3")
    one_line_error(res, "--threshold is for a model of 2 labels", code=2)
    assert "sport, politics, arts" in res.stderr and res.stdout == ""
    with pytest.raises(UsageError, match="drop --threshold"):
        rnncli.load(model_path).predict(["a film"], threshold=0.3)


def test_a_graph_whose_width_disagrees_with_its_labels_is_refused(tmp_path):
    path = save(classes_graph(make_prep(), width=4), tmp_path / "wide.onnx")
    res = invoke("predict", "--model", path, "a film")
    one_line_error(res, "gives 4 probabilities per review, but its metadata names 3 labels")
    # A binary graph ([batch, 1]) whose metadata names 3 labels: refused the same way.
    binary = save(classes_graph(make_prep(), width=1, last="Sigmoid"), tmp_path / "one.onnx")
    one_line_error(invoke("predict", "--model", binary, "a film"), "gives 1 probabilities")


def test_rows_that_do_not_sum_to_one_are_refused(tmp_path):
    # K sigmoids: each in [0, 1], but no distribution over the labels.
    path = save(classes_graph(make_prep(), last="Sigmoid"), tmp_path / "sigmoids.onnx")
    res = invoke("predict", "--model", path, "goal match vote")
    one_line_error(res, "summing to")


def test_the_python_api_returns_every_label(model_path):
    import rnncli

    model = rnncli.load(model_path)
    assert model.labels == tuple(LABELS)
    p = model.predict(REVIEWS[1])
    assert p.label in LABELS and p.probabilities is None
    every = model.predict(REVIEWS, all_probabilities=True)
    for q in every:
        assert list(q.probabilities) == LABELS
        assert q.probability == max(q.probabilities.values())
        assert q.label == max(q.probabilities, key=q.probabilities.get)
    assert model.predict("  ", all_probabilities=True).probabilities is None
    inner = model.onnx_model
    x, _ = inner.preprocessing.encode(REVIEWS)
    ids = inner.predict_ids(x)
    assert ids.shape == (4, 3) and inner.predict_ids(x[:0]).shape == (0, 3)
    np.testing.assert_allclose(ids.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(ids.max(1), [q.probability for q in every], atol=1e-6)


def test_binary_models_keep_their_outputs_and_give_both_probabilities(tmp_path):
    from test_text_graph import id_model
    from test_text_graph import make_prep as binary_prep

    path = save(id_model(binary_prep()), tmp_path / "binary.onnx")
    plain = jsonl_rows(invoke("predict", "--model", path, "a film", "--format", "jsonl"))
    assert list(plain[0]) == ["line", "text", "label", "probability", "known_words"]
    every = jsonl_rows(invoke("predict", "--model", path, "a film", "--format", "jsonl",
                              "--all-probabilities"))
    assert every[0] == {**plain[0], "probabilities": {
        "negative": round(1 - plain[0]["probability"], 6), "positive": plain[0]["probability"]}}
    res = invoke("predict", "--model", path, "a film", "--threshold", "0.9")
    assert res.exit_code == 0 and res.stdout.split()[1] == "negative"


def text_model(tmp_path):
    """(the id model, its text graph) for LABELS, written beside each other."""
    from rnncli.export.text_graph import build_text_graph

    id_proto = classes_graph(make_prep())
    save(id_proto, tmp_path / "model.onnx")
    return tmp_path / "model.onnx", save(build_text_graph(id_proto), tmp_path / "model.text.onnx")


def test_the_text_graph_gives_every_probability_and_the_label_name(tmp_path):
    from rnncli.serve.onnx_model import OnnxModel

    ids_path, text_path = text_model(tmp_path)
    ids, texts = OnnxModel(ids_path), OnnxModel(text_path)
    reviews = REVIEWS + ["GOAL! Goal, <br />the TEAM", "nothing known here"]
    want, want_known = ids.scores(reviews)
    got, known = texts.text_probabilities(reviews)
    assert got.shape == (len(reviews), 3)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert known.tolist() == want_known.tolist()
    out = texts.session.run(["label", "labels"], {"text": np.array(reviews, object)})
    assert out[0].tolist() == [LABELS[i] for i in want.argmax(1)]
    assert out[1].tolist() == LABELS
    assert [p.label for p in texts.predict_texts(reviews)] == out[0].tolist()


@pytest.mark.slow
def test_the_node_client_prints_the_label_and_every_probability(tmp_path):
    from test_text_graph import node, node_client

    node_client()
    ids_path, text_path = text_model(tmp_path)
    reviews = REVIEWS[:3]
    res = node("--model", str(text_path), *reviews, "", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    got = [json.loads(line) for line in res.stdout.splitlines()]
    want = jsonl_rows(invoke("predict", "--model", ids_path, *reviews, "--all-probabilities",
                             "--format", "jsonl"))
    for g, w in zip(got, want):
        assert list(g) == list(w)
        assert (g["label"], g["known_words"]) == (w["label"], w["known_words"])
        assert g["probability"] == pytest.approx(w["probability"], abs=1e-5)
        assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-5)
    assert got[3] == {"line": 4, "text": "", "label": None, "probability": None,
                      "known_words": 0, "probabilities": None}


@pytest.mark.spark
def test_spark_gives_the_label_and_every_probability(model_path, tmp_path):
    pytest.importorskip("pyspark")
    import pyarrow.parquet as pq

    from rnncli.serve.spark import java_missing

    if java_missing():
        pytest.skip("no Java: Spark cannot start")
    path = tmp_path / "in.csv"
    path.write_text("id,text\n1," + REVIEWS[0] + "\n2,\n3," + REVIEWS[1] + "\n")
    res = invoke("predict", "--engine", "spark", "--master", "local[1]", "--file", path,
                 "--output", tmp_path / "out.parquet", "--model", model_path,
                 "--all-probabilities")
    assert res.exit_code == 0, res.output
    got = sorted(pq.read_table(tmp_path / "out.parquet").to_pylist(), key=lambda r: r["id"])
    want = jsonl_rows(invoke("predict", "--model", model_path, REVIEWS[0], REVIEWS[1],
                             "--all-probabilities", "--format", "jsonl"))
    assert [r["label"] for r in got] == [want[0]["label"], None, want[1]["label"]]
    for g, w in zip([got[0], got[2]], want):
        assert {k: g[f"p_{k}"] for k in LABELS} == pytest.approx(w["probabilities"], abs=1e-6)
    assert got[1]["p_arts"] is None
    res = invoke("predict", "--engine", "spark", "--file", path, "--output",
                 tmp_path / "again.parquet", "--model", model_path, "--threshold", "0.4")
    one_line_error(res, "--threshold is for a model of 2 labels", code=2)
