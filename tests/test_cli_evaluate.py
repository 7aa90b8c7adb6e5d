"""`rnncli evaluate` of a Keras model says on stderr what the seconds of loading are for,
and keeps stdout to the result; TensorFlow is stubbed out, so this runs in a blink."""

import json
from pathlib import Path

import numpy as np
from conftest import bundled_accuracy, invoke, keras_run

from rnncli import evaluate as evaluation
from rnncli.config import run_files
from rnncli.model import runtime as tf_runtime
from rnncli.serve import locate


def test_keras_evaluate_says_what_it_waits_for(prepared, tmp_path, monkeypatch):
    keras_run(tmp_path / "run")
    monkeypatch.setattr(tf_runtime, "require_training_extra", lambda *a, **k: None)
    monkeypatch.setattr(evaluation, "load_keras", lambda ref, prep: None)
    monkeypatch.setattr(evaluation, "predict_probabilities",
                        lambda model, x, on_batch=None: np.linspace(0, 1, len(x)))
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
        f"{bundled_accuracy()})."]
    (tmp_path / "artifacts").mkdir()
    save_model(tmp_path / "artifacts" / "model.onnx", meta={"rnncli.test_accuracy": "0.5"})
    res = invoke("evaluate", "--json")
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == [
        f"Using {Path('artifacts', 'model.onnx')} (test accuracy 0.5000), found in artifacts/, "
        "not the bundled model: pass --model to choose."]
    assert json.loads(res.stdout)["model"] == str(Path("artifacts", "model.onnx"))


def test_scoring_progress_is_a_bar_on_a_terminal_and_a_few_plain_lines_in_a_file(
        capsys, monkeypatch):
    """evaluate of 25,000 reviews takes a minute or more: stderr says how far it is, never
    with carriage returns into a file, and stdout keeps the result only."""
    from rnncli.cli import evaluate as evaluate_cli

    now = [0.0]
    plain = evaluate_cli.ScoringProgress("test", terminal=False, clock=lambda: now[0])
    with plain as on_batch:
        for done in range(4096, 25_000, 4096):  # a chunk every 5 s: a line every 15 s
            now[0] += 5.0
            on_batch(done, 25_000)
        on_batch(25_000, 25_000)
    out, err = capsys.readouterr()
    assert out == "" and "\r" not in err
    assert err.splitlines() == ["scored 12,288 of 25,000 test reviews...",
                                "scored 24,576 of 25,000 test reviews..."]

    bar = evaluate_cli.ScoringProgress("test", terminal=True)
    with bar as on_batch:
        on_batch(4096, 25_000)
        task = bar.bar.tasks[0]
        assert (task.completed, task.total) == (4096, 25_000)
    assert not bar.bar.live.is_started


def test_scoring_reports_every_chunk_and_scores_as_one_call():
    seen = []
    probs = evaluation.in_chunks(lambda rows: rows[:, 0] / 10_000, np.arange(10_000)[:, None],
                                 lambda done, total: seen.append((done, total)))
    assert seen == [(4096, 10_000), (8192, 10_000), (10_000, 10_000)]
    np.testing.assert_array_equal(probs, np.arange(10_000) / 10_000)
    assert evaluation.CHUNK % 1024 == 0, "the batches are those of one call"


def test_onnx_evaluate_with_progress_on_keeps_stdout_pure_json(prepared, monkeypatch):
    from rnncli.cli import evaluate as evaluate_cli

    monkeypatch.setattr(evaluate_cli, "PLAIN_EVERY", 0.0)  # a line for every chunk
    res = invoke("evaluate", "--model", str(locate.BUNDLED), "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)  # pure JSON
    assert report["reviews"] == 24
    assert "\r" not in res.stderr
