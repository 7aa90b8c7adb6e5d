"""`rnncli export onnx`, `rnncli predict` and `rnncli evaluate` of ONNX models, on a tiny model."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import TRAINS, fetched_home, invoke, own_run, trained_run

from rnncli.config import run_files

pytestmark = TRAINS


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory):
    """The shared tiny model, copied for this module's exports: (home, run folder)."""
    return own_run(tiny_run, tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def exported(trained):
    home, run = trained
    res = invoke("export", "onnx", "--model", str(run), "--data-dir", str(home),
                              "--json")
    assert res.exit_code == 0, res.output
    return home, run, json.loads(res.stdout)


def test_export_validates_every_candidate_and_keeps_metadata(exported):
    home, run, report = exported
    path = run / run_files.ONNX
    assert report["output"] == str(path) and path.exists()
    assert report["real_reviews"] and report["validated_reviews"] == 24
    by_name = {c["graph"]: c for c in report["candidates"]}
    assert set(by_name) == {"hybrid", "unrolled", "native", "native-folded", "tf2onnx"}
    for c in by_name.values():
        assert c["error"] is None, c
        assert c["max_abs_diff"] <= 1e-5
    assert report["chosen"] in by_name

    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["rnncli.maxlen"]) == 20
    assert json.loads(props["rnncli.num_words"]) == 40
    assert props["rnncli.padding"] == "pre" and props["rnncli.truncating"] == "pre"
    assert len(json.loads(props["rnncli.vocabulary"])) <= 37
    assert props["rnncli.graph"] == report["chosen"]
    # The oldest onnxruntime that runs it: IR 10 needs 1.18 to be read, and 1.18.1 fails
    # some batches, so 1.19.
    from rnncli.serve.compat import oldest_runtime

    proto = onnx.load(str(path))
    assert props["rnncli.min_onnxruntime"] == oldest_runtime(
        proto.ir_version, {o.domain: o.version for o in proto.opset_import})
    if proto.ir_version == 10:
        assert props["rnncli.min_onnxruntime"] == "1.19"


def test_onnx_agrees_with_keras_on_evaluate(exported):
    home, run, _ = exported
    scores = {}
    for model in (run / run_files.MODEL, run / run_files.ONNX):
        res = invoke("evaluate", "--model", str(model), "--data-dir", str(home),
                                  "--json")
        assert res.exit_code == 0, res.output
        scores[model.suffix] = json.loads(res.stdout)
    assert scores[".onnx"]["kind"] == "onnx"
    assert scores[".onnx"]["confusion_matrix"] == scores[".keras"]["confusion_matrix"]
    assert scores[".onnx"]["loss"] == pytest.approx(scores[".keras"]["loss"], abs=1e-5)


def test_failed_validation_leaves_no_model(trained, tmp_path, monkeypatch):
    from rnncli.export import onnx as onnx_export

    home, run = trained

    def mismatch(sess, x, reference, atol, **kwargs):
        raise onnx_export.ExportError("max |ONNX - Keras| = 0.5 on 24 reviews exceeds --atol")

    monkeypatch.setattr(onnx_export, "check_outputs", mismatch)
    target = tmp_path / "out.onnx"
    res = invoke("export", "onnx", "--model", str(run), "--output", str(target),
                              "--data-dir", str(home))
    assert res.exit_code == 1
    assert "No ONNX graph matched" in res.stderr and "exceeds --atol" in res.stderr
    assert not target.exists() and not list(tmp_path.glob(".*tmp*"))


def test_check_outputs_rejects_a_wrong_graph(exported):
    import onnx

    from rnncli.errors import ExportError
    from rnncli.export.check import check_outputs, session

    home, run, _ = exported
    sess = session(onnx.load(str(run / run_files.ONNX)))
    x = np.zeros((3, 20), np.int32)
    with pytest.raises(ExportError, match="output shape"):
        check_outputs(sess, x, np.zeros((3, 2)), 1e-5)
    with pytest.raises(ExportError, match="exceeds --atol"):
        check_outputs(sess, x, np.full((3, 1), 5.0), 1e-5)


def test_quantize_and_record_test_metrics(trained, tmp_path):
    import onnx

    from rnncli.serve.onnx_model import OnnxModel

    home, run = trained
    target = tmp_path / "q.onnx"
    res = invoke("export", "onnx", "--model", str(run), "--output", str(target),
                              "--data-dir", str(home), "--graph", "hybrid", "--quantize",
                              "--record-test", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    q, q_path = report["quantized"], tmp_path / "q.int8.onnx"
    assert q["path"] == str(q_path) and q_path.exists()
    assert q["size_bytes"] < report["size_bytes"] == q["float_size_bytes"]
    assert [t["name"] for t in q["tensors"]] == ["embedding"]
    assert "accuracy_int8" in q
    float_meta, q_meta = OnnxModel(target).metadata, OnnxModel(q_path).metadata
    # The int8 file states its own parity, not the float model's.
    assert q_meta["rnncli.max_abs_diff"] == f"{q['max_abs_diff']:.3g}"
    assert q["max_abs_diff"] > float(float_meta["rnncli.max_abs_diff"])
    assert "weight-only int8" in q_meta["rnncli.quantization"]
    int8 = [i for i in onnx.load(str(q_path)).graph.initializer
            if i.data_type == onnx.TensorProto.INT8]
    assert [i.name for i in int8] == ["embedding/int8"]
    assert set(report["recorded"]) == {str(target), str(q_path)}
    ev = json.loads(invoke("evaluate", "--model", str(target), "--data-dir",
                                        str(home), "--json").stdout)
    assert float(float_meta["rnncli.test_accuracy"]) == pytest.approx(ev["accuracy"], abs=1e-6)
    assert float_meta["rnncli.test_reviews"] == "24" and float_meta["rnncli.graph"] == "hybrid"
    ok = invoke("predict", "great film", "--model", str(q_path))
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv"])
def test_predict_formats(exported, fmt):
    _, run, _ = exported
    res = invoke("predict", "great wonderful film", "awful boring waste",
                              "--model", str(run / run_files.ONNX), "--format", fmt)
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    if fmt == "json":
        rows = json.loads(res.stdout)
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in lines]
    elif fmt == "csv":
        assert lines[0] == "line,label,probability,known_words,text"
        rows = [dict(zip(["label", "probability", "known_words"], line.split(",")[1:4]))
                for line in lines[1:]]
    else:
        rows = [{"label": line.split()[1]} for line in lines]
    assert len(rows) == 2
    assert all(r["label"] in ("positive", "negative") for r in rows)


def test_predict_matches_keras_on_the_same_text(exported):
    from rnncli.model.runtime import load_keras_model
    from rnncli.serve.locate import keras_preprocessing
    from rnncli.serve.onnx_model import OnnxModel

    _, run, _ = exported
    texts = ["great wonderful film, loved it", "awful boring waste", "the plot"]
    onnx_probs = [p.probability for p in OnnxModel(run / run_files.ONNX).predict_texts(texts)]
    x, _ = keras_preprocessing(run / run_files.MODEL).encode(texts)
    keras_probs = load_keras_model(run / run_files.MODEL).predict(x, verbose=0).ravel()
    np.testing.assert_allclose(onnx_probs, keras_probs, atol=1e-5)


def test_predict_file_stdin_threshold_and_unknown_words(exported, tmp_path):
    _, run, _ = exported
    model = str(run / run_files.ONNX)
    (tmp_path / "r.txt").write_text("great film\n\n  \nzzzz qqqq xxxx\n")
    res = invoke("predict", "--file", "r.txt", "--model", model, "--format",
                              "jsonl", "--threshold", "0")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["great film", "", "", "zzzz qqqq xxxx"]
    assert [r["line"] for r in rows] == [1, 2, 3, 4]
    assert rows[3]["known_words"] == 0
    assert rows[1]["label"] is None and rows[2]["probability"] is None  # blank lines
    assert all(rows[i]["label"] == "positive" for i in (0, 3))  # threshold 0: all positive
    res = invoke("predict", "--file", "-", "--model", model, "--format", "jsonl",
                        input="great film\nawful film\n")
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["   "], "Review 1 is empty"),
        ([""], "Review 1 is empty"),
        ([], "Nothing to predict"),
        (["ok", "--format", "xml"], "'xml' is not one of"),
        (["ok", "--threshold", "2"], "between 0 and 1"),
        (["--file", "missing.txt"], "Cannot read missing.txt"),
    ],
)
def test_predict_bad_input(exported, args, message):
    _, run, _ = exported
    res = invoke("predict", *args, "--model", str(run / run_files.ONNX))
    assert res.exit_code != 0
    assert message in res.stderr and "Traceback" not in res.output


def test_predict_non_utf8_line_is_named(exported, tmp_path):
    _, run, _ = exported
    (tmp_path / "bad.txt").write_bytes(b"fine line\ncaf\xe9 au lait\n")
    res = invoke("predict", "--file", "bad.txt", "--model", str(run / run_files.ONNX))
    assert res.exit_code == 2
    assert "Line 2 of bad.txt is not UTF-8" in res.stderr


def test_predict_bad_models(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    (tmp_path / "corrupt.onnx").write_bytes(b"\x00garbage" * 10)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "foreign.onnx"))
    for name, message in (("missing.onnx", "No model at missing.onnx"),
                          ("corrupt.onnx", "not a valid ONNX model"),
                          ("foreign.onnx", "has no rnncli metadata")):
        res = invoke("predict", "hello", "--model", name)
        assert res.exit_code == 1, name
        assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_predict_subprocess_imports_no_tensorflow(exported, tmp_path):
    _, run, _ = exported
    code = (
        "import sys\nfrom rnncli.cli import app\n"
        f"sys.argv = ['rnncli', 'predict', 'great film', '--model', {str(run / run_files.ONNX)!r},"
        " '--format', 'json']\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "sys.stderr.write('MODULES ' + ' '.join({m.split('.')[0] for m in sys.modules}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["label"] in ("positive", "negative")
    mods = set(res.stderr.rpartition("MODULES ")[2].split())
    assert "onnxruntime" in mods
    assert not mods & {"tensorflow", "keras", "tf2onnx", "onnx"}


@pytest.mark.parametrize("graph, trims", [("native", True), ("hybrid", True),
                                          ("unrolled", True), ("tf2onnx", False)])
def test_trimmed_padding_gives_the_padded_result(trained, tmp_path, graph, trims):
    from rnncli.serve.onnx_model import OnnxModel

    home, run = trained
    target = tmp_path / f"{graph}.onnx"
    res = invoke("export", "onnx", "--model", str(run), "--output", str(target),
                              "--data-dir", str(home), "--graph", graph)
    assert res.exit_code == 0, res.output
    model = OnnxModel(target)
    assert model.preprocessing.trim_padding is trims
    texts = ["great film", "awful boring waste of a film", "the"]
    full, _ = model.preprocessing.encode(texts)
    short, _ = model.preprocessing.encode(texts, trim=True)
    assert short.shape[1] < full.shape[1] == 20
    expected = model.predict_ids(full)
    got = [p.probability for p in model.predict_texts(texts)]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    if trims:
        np.testing.assert_allclose(model.predict_ids(short), expected, atol=1e-5)


def test_a_builder_crash_fails_the_export_instead_of_falling_back(trained, tmp_path,
                                                                  monkeypatch):
    from rnncli.export import onnx as onnx_export

    home, run = trained

    def crash(*args, **kwargs):
        raise IndexError("list index out of range")

    monkeypatch.setattr(onnx_export, "build_graph", crash)
    target = tmp_path / "out.onnx"
    res = invoke("export", "onnx", "--model", str(run), "--output", str(target),
                              "--data-dir", str(home))
    assert res.exit_code == 1
    assert "graph builder crashed" in res.stderr and "IndexError" in res.stderr
    assert "No ONNX graph matched" not in res.stderr  # not reported as a rejection
    assert not target.exists()


def test_metadata_says_what_serving_needs(trained, tmp_path):
    import onnx

    home, run = trained
    for graph, full_length in (("hybrid", "8"), ("unrolled", None), ("tf2onnx", None)):
        target = tmp_path / f"{graph}.onnx"
        res = invoke("export", "onnx", "--model", str(run), "--output",
                                  str(target), "--data-dir", str(home), "--graph", graph)
        assert res.exit_code == 0, res.output
        props = {p.key: p.value for p in onnx.load(str(target)).metadata_props}
        assert props["rnncli.graph"] == graph
        assert props["rnncli.trim_padding"] == ("false" if graph == "tf2onnx" else "true")
        assert props["rnncli.skips_pad_steps"] == ("true" if graph == "hybrid" else "false")
        assert props.get("rnncli.full_length_batch") == full_length


@pytest.fixture(scope="module")
def masked_trained(tmp_path_factory):
    """A tiny bidirectional GRU with masked max pooling, trained for one epoch."""
    root = tmp_path_factory.mktemp("masked")
    home = fetched_home(root)
    run = trained_run(root, home, "--maxlen", "20", "--num-words", "40", "--units", "3",
                      "--embedding-dim", "4", "--cell", "gru", "--bidirectional", "--pooling",
                      "masked-max", "--head-dropout", "0.3", "--batch-size", "8", "--epochs",
                      "1", "--no-jit")
    return home, run


def test_masked_model_exports_and_serves_trimmed_batches(masked_trained):
    from rnncli.model.runtime import load_keras_model
    from rnncli.serve.locate import keras_preprocessing
    from rnncli.serve.onnx_model import OnnxModel

    home, run = masked_trained
    res = invoke("export", "onnx", "--model", str(run), "--data-dir", str(home),
                              "--json")
    assert res.exit_code == 0, res.output
    by_name = {c["graph"]: c for c in json.loads(res.stdout)["candidates"]}
    for name in ("hybrid", "native-folded", "native", "unrolled"):
        assert by_name[name]["status"] == "valid", by_name[name]
    assert by_name["tf2onnx"]["status"] in ("valid", "rejected"), by_name["tf2onnx"]
    model = OnnxModel(run / run_files.ONNX)
    assert model.preprocessing.trim_padding
    texts = ["great", "awful boring waste of a film, hated it", "the plot was moving"]
    x, _ = keras_preprocessing(run / run_files.MODEL).encode(texts)
    keras_probs = load_keras_model(run / run_files.MODEL).predict(x, verbose=0).ravel()
    short, _ = model.preprocessing.encode(texts, trim=True)
    assert short.shape[1] < x.shape[1]
    np.testing.assert_allclose(model.predict_ids(short), keras_probs, atol=1e-5)
    np.testing.assert_allclose([p.probability for p in model.predict_texts(texts)],
                               keras_probs, atol=1e-5)


def test_quantize_says_when_there_is_nothing_to_quantize(masked_trained, tmp_path):
    home, run = masked_trained
    target = tmp_path / "m.onnx"
    res = invoke("export", "onnx", "--model", str(run), "--output", str(target),
                              "--data-dir", str(home), "--graph", "native", "--quantize")
    assert res.exit_code == 0, res.output
    assert "no int8 file: no float weight of 4,096 or more values" in res.stdout
    assert target.exists() and not (tmp_path / "m.int8.onnx").exists()
