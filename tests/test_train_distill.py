"""Crops, length buckets and distillation through `rnncli train`, on tiny synthetic data."""

import json

from conftest import TRAINS
from typer.testing import CliRunner

from rnncli.cli import app
from rnncli.config import run_files

pytestmark = TRAINS

runner = CliRunner()
MASKED = ["--maxlen", "20", "--num-words", "30", "--units", "3", "--embedding-dim", "4",
          "--batch-size", "8", "--no-jit", "--pooling", "masked-max", "--cell", "gru",
          "--bidirectional", "--crop-prob", "0.5", "--crop-min", "2", "--crop-max", "6",
          "--embedding-init", "normal", "--embedding-dropout", "0.1", "--head-dropout", "0.1"]


def train(*args):
    res = runner.invoke(app, ["train", *MASKED, *args])
    assert res.exit_code == 0, res.output
    return res


def test_student_trains_on_its_teachers_and_records_them(prepared, tmp_path):
    train("--epochs", "1", "--output", "teacher", "--seed", "1")
    train("--epochs", "2", "--output", "student", "--units", "2", "--teacher", "teacher",
          "--distill-weight", "0.5")
    saved = json.loads((tmp_path / "student" / run_files.CONFIG).read_text())
    assert saved["train"]["teachers"] == ["teacher"]
    assert saved["train"]["distill_weight"] == 0.5
    history = json.loads((tmp_path / "student" / run_files.HISTORY_JSON).read_text())["epochs"]
    # Train accuracy thresholds both sides, so soft targets still read as agreement.
    assert len(history) == 2 and all(h["accuracy"] > 0.2 for h in history)


def test_a_student_of_the_ngram_teacher_alone_or_beside_teacher_runs(prepared, tmp_path,
                                                                    monkeypatch):
    from rnncli.train import teachers

    mixes = []
    real = teachers.TeacherMix.predict_on_batch

    def spy(self, x):
        mixes.append((len(self.models), self.ngram is not None, self.weight))
        return real(self, x)

    monkeypatch.setattr(teachers.TeacherMix, "predict_on_batch", spy)
    train("--epochs", "1", "--output", "ngram", "--ngram-teacher", "0.4")
    train("--epochs", "1", "--output", "teacher", "--seed", "1")
    train("--epochs", "1", "--output", "both", "--teacher", "teacher", "--ngram-teacher", "0.4")
    assert {m for m in mixes} == {(0, True, 0.4), (1, True, 0.4)}
    saved = json.loads((tmp_path / "both" / run_files.CONFIG).read_text())["train"]
    assert saved["ngram_teacher"] == 0.4 and saved["teachers"] == ["teacher"]
    history = json.loads((tmp_path / "ngram" / run_files.HISTORY_JSON).read_text())["epochs"]
    assert history[0]["accuracy"] > 0.2  # thresholded: soft targets still read as agreement


def test_a_teacher_that_reads_padding_is_refused(prepared, tmp_path):
    res = runner.invoke(app, ["train", "--maxlen", "20", "--num-words", "30", "--units", "2",
                              "--embedding-dim", "4", "--batch-size", "8", "--no-jit",
                              "--epochs", "1", "--output", "plain"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", *MASKED, "--epochs", "1", "--teacher", "plain",
                              "--output", "student"])
    assert res.exit_code == 2
    assert "not a masked-max model" in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1


def test_thresholded_accuracy_compares_review_by_review():
    import numpy as np

    from rnncli.train.objective import thresholded_accuracy

    y_true = np.array([0.9, 0.2, 0.6, 0.4], np.float32)  # soft targets, [batch]
    y_pred = np.array([[0.8], [0.1], [0.3], [0.45]], np.float32)  # model output, [batch, 1]
    got = np.asarray(thresholded_accuracy(y_true, y_pred))
    assert got.tolist() == [1.0, 1.0, 0.0, 1.0]


def test_the_ngram_head_is_fitted_after_training_and_served_inside_the_model(prepared,
                                                                            tmp_path):
    import numpy as np

    from rnncli.model import runtime as tf_runtime
    from rnncli.model.ngram import LAYER, has_head

    res = train("--epochs", "1", "--output", "head", "--ngram-head")
    assert "n-gram head joined" in res.output
    run = tmp_path / "head"
    details = json.loads((run / run_files.HEAD_JSON).read_text())
    assert set(details["val_accuracy"]) == {"network", "head", "both"}
    model = tf_runtime.load_keras_model(run / run_files.MODEL)
    assert has_head(model) and not has_head(tf_runtime.load_keras_model(run / run_files.BEST))
    table, idf = model.get_layer(LAYER).get_weights()
    assert np.abs(table).max() > 0 and idf.max() > 0  # fitted, not the zeros it starts from
    res = runner.invoke(app, ["export", "onnx", "--model", "head", "--graph", "native",
                              "--quantize", "--text-input"])
    assert res.exit_code == 0, res.output
    got = []
    for model in ("head", str(run / run_files.ONNX_TEXT)):  # ids in, or text in (tokenizer inside)
        res = runner.invoke(app, ["predict", "--model", model, "--format", "json",
                                  "great film", "a dull, dull film"])
        assert res.exit_code == 0, res.output
        got.append([row["probability"] for row in json.loads(res.stdout)])
    assert np.allclose(got[0], got[1], atol=1e-5) and all(0 <= p <= 1 for p in got[0])


def test_ngram_head_without_both_labels_to_fit_on_is_refused_before_training(prepared,
                                                                             tmp_path):
    res = runner.invoke(app, ["train", *MASKED, "--epochs", "1", "--output", "one",
                              "--ngram-head", "--limit", "8", "--validation-split", "0.125"])
    assert res.exit_code == 2, res.output
    assert "--ngram-head needs reviews of at least two labels" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "one").exists()
