"""`rnncli evaluate` of models of 2 or more labels: the metrics against numbers worked out by
hand, an imported dataset (--dataset) and a labelled file (--file), as a table and --json.
Keras is stubbed out except in the slow test, which trains a real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, one_line_error
from test_train_classes import SMALL, THREE, own_dataset

from rnncli import evaluate as evaluation
from rnncli.config import run_files
from rnncli.errors import ModelError
from rnncli.model import runtime as tf_runtime
from rnncli.serve import locate
from rnncli.text.preprocessing import Preprocessing


def test_class_metrics_match_a_worked_example():
    # True 0 0 1 1 2 2 2, predicted 0 1 1 1 2 0 2 (the most probable of each row).
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = [0, 1, 1, 1, 2, 0, 2]
    prob = np.full((7, 4), 0.1)
    prob[np.arange(7), pred] = 0.7
    r = evaluation.class_metrics(y, prob, ["a", "b", "c", "d"])
    assert r["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert r["accuracy"] == pytest.approx(5 / 7)
    # a: precision 1/2, recall 1/2, F1 1/2; b: 2/3, 1, 0.8; c: 1, 2/3, 0.8; d never occurs,
    # so it is left out of the mean: (0.5 + 0.8 + 0.8) / 3.
    assert r["macro_f1"] == pytest.approx(0.7)
    assert r["per_class"]["b"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert r["per_class"]["c"]["recall"] == pytest.approx(2 / 3)
    assert r["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["loss"] == pytest.approx(-np.log([0.7, 0.1, 0.7, 0.7, 0.7, 0.1, 0.7]).mean())


def test_binary_report_keeps_its_fields_and_adds_per_label_scores():
    # tn 1, fp 1, fn 0, tp 2: negative P 1, R 1/2, F1 2/3; positive P 2/3, R 1, F1 0.8.
    r = evaluation.binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.7, 0.8]),
                                  labels=["spam", "ham"])
    assert r["confusion_matrix"] == {"tn": 1, "fp": 1, "fn": 0, "tp": 2}
    assert r["precision"] == pytest.approx(2 / 3) and r["roc_auc"] == 1.0
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert r["per_class"]["spam"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})


def test_probabilities_of_another_shape_than_the_labels_are_refused():
    prep = Preprocessing(vocabulary=["a"], num_words=10, maxlen=5, labels=THREE)
    with pytest.raises(ModelError, match="gives one probability per review, and its "
                                         "preprocessing names 3 labels"):
        evaluation.metrics(np.array([0, 1]), np.array([0.2, 0.9]), prep, "m.onnx")


def three_label_run(folder: Path, source: str = "tickets") -> Path:
    """A run folder (a stand-in model, never loaded) of the THREE labels."""
    folder.mkdir()
    (folder / run_files.MODEL).write_bytes(b"a Keras model would be here")
    prep = Preprocessing(vocabulary=["refund", "crash", "login"], num_words=10, maxlen=20,
                         labels=THREE, source=source)
    (folder / run_files.PREPROCESSING).write_text(json.dumps(prep.to_dict()))
    return folder


@pytest.fixture
def stand_in(monkeypatch):
    """Keras stubbed out: the 'model' predicts label row % 3 for row number `row`, so the
    expected scores follow from the rows' order alone."""
    monkeypatch.setattr(tf_runtime, "require_training_extra", lambda *a, **k: None)
    monkeypatch.setattr(tf_runtime, "check_file_fits", lambda *a, **k: None)
    monkeypatch.setattr(evaluation, "load_keras", lambda ref, prep: None)

    def predict(model, x, on_batch=None):
        prob = np.full((len(x), 3), 0.1)
        prob[np.arange(len(x)), np.arange(len(x)) % 3] = 0.8
        return prob

    monkeypatch.setattr(evaluation, "predict_probabilities", predict)


def labelled_csv(path: Path, labels: list[str]) -> Path:
    rows = ["text,label", *(f"row {i} words,{label}" for i, label in enumerate(labels))]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_file_scores_give_the_confusion_of_its_rows(tmp_path, stand_in):
    three_label_run(tmp_path / "run")
    # Predicted: billing bugs access billing bugs access (row % 3).
    truth = ["billing", "bugs", "bugs", "billing", "access", "access"]
    labelled_csv(tmp_path / "l.csv", truth)
    res = invoke("evaluate", "--model", "run", "--file", "l.csv", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["file"] == "l.csv" and r["reviews"] == 6 and r["labels"] == THREE
    assert r["confusion_matrix"] == [[2, 0, 0], [0, 1, 1], [0, 1, 1]]
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["macro_f1"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    res = invoke("evaluate", "--model", "run", "--file", "l.csv")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == f"keras model {Path('run', run_files.MODEL)} on 6 l.csv"
    assert any(line.split()[:2] == ["macro_f1", "0.6667"] for line in lines)
    assert "    billing      bugs    access" in res.stdout  # the confusion's header
    assert any(line.split() == ["bugs", "0", "1", "1"] for line in lines)


def test_file_with_several_text_columns_and_another_label_column(tmp_path, stand_in):
    three_label_run(tmp_path / "run")
    (tmp_path / "l.jsonl").write_text("\n".join(json.dumps(
        {"title": "t", "body": "b", "kind": k}) for k in THREE) + "\n")
    res = invoke("evaluate", "--model", "run", "--file", "l.jsonl", "--text-column", "title",
                 "--text-column", "body", "--label-column", "kind", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["accuracy"] == 1.0


@pytest.mark.parametrize("truth, args, text", [
    (["billing", "shipping"], [], "Row 2 of l.csv has the label 'shipping', which is not "
                                  "one of the model's (billing, bugs, access)"),
    (["billing"], ["--label-column", "kind"], "l.csv has no column 'kind'"),
])
def test_file_problems_are_one_line(tmp_path, stand_in, truth, args, text):
    three_label_run(tmp_path / "run")
    labelled_csv(tmp_path / "l.csv", truth)
    one_line_error(invoke("evaluate", "--model", "run", "--file", "l.csv", *args), text,
                   code=2)


def test_dataset_defaults_to_the_models_own(_isolated, tmp_path, stand_in):
    own_dataset(_isolated, "tickets", THREE, per_label=3, test_per_label=2)
    three_label_run(tmp_path / "run")
    res = invoke("evaluate", "--model", "run", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["dataset"] == "tickets" and r["reviews"] == 6
    assert np.sum(r["confusion_matrix"]) == 6
    assert [c["support"] for c in r["per_class"].values()] == [2, 2, 2]
    res = invoke("evaluate", "--model", "run", "--dataset", "tickets", "--split", "train")
    assert res.exit_code == 0, res.output
    assert "on 9 train reviews of tickets" in res.stdout


def test_a_dataset_of_other_labels_is_refused(_isolated, tmp_path, stand_in):
    own_dataset(_isolated, "other", ["x", "y", "z"], per_label=3, test_per_label=2)
    three_label_run(tmp_path / "run")
    one_line_error(invoke("evaluate", "--model", "run", "--dataset", "other"),
                   "tells billing, bugs, access apart, and dataset other has the labels "
                   "x, y, z", code=2)


def test_onnx_model_giving_k_probabilities_is_scored_as_k_labels(_isolated):
    own_dataset(_isolated, "tickets", THREE, per_label=3, test_per_label=4)

    class Fake:  # what OnnxModel gives for a model of K labels: [n, K]
        takes_text, workers = False, 1
        preprocessing = Preprocessing(vocabulary=["refund"], num_words=10, maxlen=20,
                                      labels=THREE, source="tickets")

        def predict_ids(self, x):
            return np.tile([0.2, 0.5, 0.3], (len(x), 1))

    r = evaluation.evaluate_model(locate.ModelRef(Path("m.onnx"), "onnx"), _isolated,
                                  model=Fake())
    assert r["confusion_matrix"] == [[0, 4, 0], [0, 4, 0], [0, 4, 0]]
    assert r["per_class"]["bugs"]["recall"] == 1.0
    assert r["macro_f1"] == pytest.approx(0.5 / 3)  # bugs: P 1/3, R 1, F1 1/2; others 0


def test_file_and_dataset_together_are_refused(tmp_path):
    one_line_error(invoke("evaluate", "--file", "x.csv", "--dataset", "tickets"),
                   "--file and --dataset", code=2)


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_trained_three_label_model_evaluates_on_its_dataset_and_a_file(_isolated, tmp_path):
    own_dataset(_isolated, "tickets", THREE, per_label=60, test_per_label=20)
    res = invoke("train", "--dataset", "tickets", *SMALL, "--epochs", "3", "--batch-size",
                 "16", "--learning-rate", "0.01", "--output", "run")
    assert res.exit_code == 0, res.output
    res = invoke("evaluate", "--model", "run", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["dataset"] == "tickets" and r["reviews"] == 60
    assert r["accuracy"] > 0.6 and r["macro_f1"] > 0.6  # chance: 1/3
    assert np.array(r["confusion_matrix"]).sum(axis=1).tolist() == [20, 20, 20]
    labelled_csv(tmp_path / "l.csv", ["billing", "bugs", "access"])
    (tmp_path / "l.csv").write_text("text,label\nrefund invoice billing,billing\n"
                                    "crash error freeze,bugs\nlogin password locked,access\n")
    res = invoke("evaluate", "--model", "run", "--file", "l.csv", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["accuracy"] == 1.0
