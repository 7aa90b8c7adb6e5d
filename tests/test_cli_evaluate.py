"""`rnncli evaluate` of a Keras model says on stderr what the seconds of loading are for,
and keeps stdout to the result; TensorFlow is stubbed out, so this runs in a blink."""

import json
from pathlib import Path

import numpy as np
from conftest import invoke

from rnncli import evaluate as evaluation
from rnncli.config import run_files
from rnncli.model import runtime as tf_runtime
from rnncli.serve import locate
from rnncli.text.preprocessing import Preprocessing


def test_keras_evaluate_says_what_it_waits_for(prepared, tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / run_files.MODEL).write_bytes(b"a Keras model would be here")
    (run / run_files.PREPROCESSING).write_text(json.dumps(
        Preprocessing(vocabulary=["film", "great"], num_words=10, maxlen=20).to_dict()))
    monkeypatch.setattr(tf_runtime, "require_training_extra", lambda *a, **k: None)
    monkeypatch.setattr(evaluation, "predict_probabilities",
                        lambda ref, x: np.linspace(0, 1, len(x)))
    res = invoke("evaluate", "--model", "run", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert res.stderr == (f"Loading TensorFlow and {Path('run', run_files.MODEL)}, then scoring "
                          f"{report['reviews']} test reviews...\n")


def test_onnx_evaluate_has_no_loading_line(prepared):
    res = invoke("evaluate", "--model", str(locate.BUNDLED), "--limit", "2")
    assert res.exit_code == 0, res.output
    assert "Loading TensorFlow" not in res.stderr


def test_without_model_stderr_names_the_model_that_answered(prepared, tmp_path):
    from test_inference import save_model

    res = invoke("evaluate", "--limit", "4", "--json")
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == [
        f"No model in artifacts/: using the bundled model {locate.BUNDLED} (test accuracy "
        "0.9086)."]
    (tmp_path / "artifacts").mkdir()
    save_model(tmp_path / "artifacts" / "model.onnx", meta={"rnncli.test_accuracy": "0.5"})
    res = invoke("evaluate", "--json")
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == [
        f"Using {Path('artifacts', 'model.onnx')} (test accuracy 0.5000), found in artifacts/, "
        "not the bundled model: pass --model to choose."]
    assert json.loads(res.stdout)["model"] == str(Path("artifacts", "model.onnx"))
