"""Ctrl-C, --overwrite and --resume never lose a model and never claim one that is not there.

Ctrl-C is simulated by the progress display raising KeyboardInterrupt at a chosen point,
as the signal would inside model.fit.
"""

import json

import pytest
from conftest import TINY, TRAINS, synthetic_reviews, train_tiny, write_archive
from typer.testing import CliRunner

from rnncli.cli import app
from rnncli.cli.train_display import ProgressReporter
from rnncli.config import run_files

pytestmark = TRAINS

runner = CliRunner()


train = train_tiny


@pytest.fixture
def ctrl_c():
    """ctrl_c("batch") or ctrl_c("epoch", 1): Ctrl-C at the first step, or after that epoch;
    ctrl_c(None): no more."""
    monkeypatch = pytest.MonkeyPatch()  # its own, so undo() leaves the other fixtures alone

    def arm(where, epoch=None):
        monkeypatch.undo()
        if where == "batch":
            def batch_end(self, step):
                raise KeyboardInterrupt
            monkeypatch.setattr(ProgressReporter, "batch_end", batch_end)
        else:
            original = ProgressReporter.epoch_end

            def epoch_end(self, e, epochs, logs, seconds):
                original(self, e, epochs, logs, seconds)
                if e == epoch:
                    raise KeyboardInterrupt
            monkeypatch.setattr(ProgressReporter, "epoch_end", epoch_end)

    yield arm
    monkeypatch.undo()


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ctrl_c_before_the_first_epoch_claims_nothing_and_a_rerun_works(prepared, tmp_path,
                                                                        ctrl_c):
    ctrl_c("batch")
    res = train("--epochs", "2", "--output", "run")
    assert res.exit_code == 130, res.output
    assert "before the first epoch ended: no model was saved" in res.stderr
    assert "kept" not in res.stderr
    assert snapshot(tmp_path / "run") == {}
    assert not (tmp_path / "run" / run_files.STAGING).exists()

    ctrl_c(None)
    res = train("--output", "run", "--resume")
    assert res.exit_code == 2 and "Nothing to resume in run" in res.stderr
    res = train("--epochs", "1", "--output", "run")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / run_files.MODEL).exists()


def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_model(prepared, tmp_path, ctrl_c):
    assert train("--epochs", "1", "--output", "run").exit_code == 0
    folder = tmp_path / "run"
    (folder / run_files.ONNX).write_bytes(b"the old run's export")
    old = snapshot(folder)

    ctrl_c("batch")  # the new run is stopped before it has a model: the old one stays whole
    res = train("--epochs", "3", "--output", "run", "--overwrite")
    assert res.exit_code == 130 and "is as it was" in res.stderr, res.output
    assert snapshot(folder) == old

    ctrl_c("epoch", 1)  # now it has one: it replaces the old run, export included
    res = train("--epochs", "3", "--output", "run", "--overwrite", "--seed", "2")
    assert res.exit_code == 130, res.output
    assert f"kept the model of epoch 1 (the best so far) in {folder.name}/model.keras" \
        in res.stderr and "--resume" in res.stderr
    assert not (folder / run_files.ONNX).exists(), "a stale export would be served by mistake"
    assert not (folder / run_files.STAGING).exists()
    assert (folder / run_files.MODEL).read_bytes() != old[run_files.MODEL]
    assert json.loads((folder / run_files.CONFIG).read_text())["train"]["seed"] == 2
    history = json.loads((folder / run_files.HISTORY_JSON).read_text())
    assert [h["epoch"] for h in history["epochs"]] == [1]
    assert [p.name for p in (folder / run_files.BACKUP).iterdir()] == ["epoch-0001.keras"]


def test_resume_honours_more_epochs_and_refuses_other_changes(prepared, tmp_path, ctrl_c):
    ctrl_c("epoch", 1)
    assert train("--epochs", "2", "--output", "run").exit_code == 130
    ctrl_c(None)
    folder = tmp_path / "run"
    before = snapshot(folder)

    for args, message in [
        (["--cell", "gru", "--units", "5"],
         "these differ: cell 'gru' (the run has 'simple'), units 5 (the run has 4)"),
        (["--epochs", "1"], "has finished 1 epochs: --epochs must be more than 1"),
    ]:
        res = runner.invoke(app, ["train", "--output", "run", "--resume", *args])
        assert res.exit_code == 2 and message in res.stderr, res.output
        assert snapshot(folder) == before

    # Options equal to the run's own are fine: the command can be repeated as it was.
    res = runner.invoke(app, ["train", *TINY, "--output", "run", "--resume", "--epochs", "3"])
    assert res.exit_code == 0, res.output
    lines = [line.split()[1] for line in res.stderr.splitlines() if line.startswith("epoch ")]
    assert lines == ["2/3", "3/3"]
    history = json.loads((folder / run_files.HISTORY_JSON).read_text())
    assert [h["epoch"] for h in history["epochs"]] == [1, 2, 3]
    assert json.loads((folder / run_files.CONFIG).read_text())["train"]["epochs"] == 3
    assert not (folder / run_files.BACKUP).exists()
    res = runner.invoke(app, ["train", "--output", "run", "--resume"])
    assert res.exit_code == 2 and "is complete: nothing to resume" in res.stderr


def test_resume_refuses_other_data(prepared, tmp_path, ctrl_c):
    ctrl_c("epoch", 1)
    assert train("--epochs", "2", "--output", "run").exit_code == 130
    ctrl_c(None)
    other = write_archive(tmp_path / "other.tar.gz", synthetic_reviews(12, seed=5))
    assert runner.invoke(app, ["data", "fetch", "--from", str(other), "--force"]).exit_code == 0
    res = runner.invoke(app, ["train", "--output", "run", "--resume"])
    assert res.exit_code == 2, res.output
    assert "was trained on other data" in res.stderr and "--overwrite" in res.stderr


def test_keep_last_keeps_the_last_epoch_and_nan_keeps_the_best(prepared, tmp_path):
    res = train("--epochs", "3", "--keep-last", "--learning-rate", "0.05", "--output", "last")
    assert res.exit_code == 0, res.output
    assert "model (epoch 3, " in res.stdout
    history = json.loads((tmp_path / "last" / run_files.HISTORY_JSON).read_text())
    assert len(history["epochs"]) == 3
    # model.keras is epoch 3's checkpoint; best.keras the best epoch's.
    same = (tmp_path / "last" / run_files.MODEL).read_bytes() == \
        (tmp_path / "last" / run_files.BEST).read_bytes()
    assert same == (history["best_epoch"] == 3)


def test_nan_after_good_epochs_keeps_the_best_model(prepared, tmp_path, monkeypatch):
    from rnncli.train import tracking

    original = tracking.EpochTracker.batch_end

    def nan_in_epoch_3(self, step, loss):
        return original(self, step, float("nan") if self.state.epoch == 3 else loss)

    monkeypatch.setattr(tracking.EpochTracker, "batch_end", nan_in_epoch_3)
    res = train("--epochs", "4", "--output", "run")
    assert res.exit_code == 1, res.output
    history = json.loads((tmp_path / "run" / run_files.HISTORY_JSON).read_text())
    best = history["best_epoch"]
    assert [h["epoch"] for h in history["epochs"]] == [1, 2] and best in (1, 2)
    assert f"Loss became NaN in epoch 3: stopped; kept the model of epoch {best}" in res.stderr
    assert (tmp_path / "run" / run_files.MODEL).read_bytes() == \
        (tmp_path / "run" / run_files.BEST).read_bytes()
    assert not (tmp_path / "run" / run_files.BACKUP).exists()


def test_ctrl_c_while_the_ngram_head_is_fitted_keeps_the_network_and_resume_fits_it(
        prepared, tmp_path, monkeypatch):
    from rnncli.model import runtime as tf_runtime
    from rnncli.model.ngram import has_head
    from rnncli.train import head as train_head

    fit = train_head.fit_head

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_head, "fit_head", interrupted)
    assert train("--epochs", "1", "--output", "run", "--ngram-head").exit_code == 130
    folder = tmp_path / "run"
    assert not has_head(tf_runtime.load_keras_model(folder / run_files.MODEL))
    assert not (folder / run_files.HEAD_JSON).exists()
    monkeypatch.setattr(train_head, "fit_head", fit)
    res = runner.invoke(app, ["train", "--output", "run", "--resume"])
    assert res.exit_code == 0, res.output
    assert has_head(tf_runtime.load_keras_model(folder / run_files.MODEL))
    assert (folder / run_files.HEAD_JSON).exists() and not (folder / run_files.BACKUP).exists()
