"""`rnncli train` and `rnncli evaluate` on tiny synthetic data (a model trained for seconds)."""

import json
import subprocess
import sys

import pytest
from conftest import TINY, TRAINS, train_tiny
from typer.testing import CliRunner

from rnncli.cli import app
from rnncli.config import run_files
from rnncli.config import settings as config

pytestmark = TRAINS

runner = CliRunner()


train = train_tiny


def test_one_epoch_writes_every_artifact_and_evaluate_reads_them(prepared, tmp_path):
    res = train("--epochs", "2", "--output", "run")
    assert res.exit_code == 0, res.output
    folder = tmp_path / "run"
    for name in (run_files.MODEL, run_files.BEST, run_files.CONFIG, run_files.PREPROCESSING,
                 run_files.HISTORY_JSON, run_files.HISTORY_CSV):
        assert (folder / name).exists(), name
    assert not (folder / run_files.BACKUP).exists(), "a finished run leaves no backup"
    lines = [line for line in res.stderr.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and "val_acc" in lines[0]
    assert "best epoch" in res.stdout and "train accuracy" in res.stdout
    assert "next: rnncli evaluate --model run" in res.stderr

    saved = json.loads((folder / run_files.CONFIG).read_text())
    assert saved["model"]["cell"] == "simple" and saved["data"]["maxlen"] == 20
    prep = json.loads((folder / run_files.PREPROCESSING).read_text())
    assert prep["num_words"] == 30 and len(prep["vocabulary"]) <= 27 and prep["padding"] == "pre"
    history = json.loads((folder / run_files.HISTORY_JSON).read_text())
    assert [h["epoch"] for h in history["epochs"]] == [1, 2]
    assert history["best_epoch"] in (1, 2)

    # evaluate needs no restated num_words or maxlen: it reads them from the run.
    ev = runner.invoke(app, ["evaluate", "--model", "run", "--json"])
    assert ev.exit_code == 0, ev.output
    report = json.loads(ev.stdout)
    assert report["reviews"] == 24
    cm = report["confusion_matrix"]
    assert sum(cm.values()) == 24
    assert report["accuracy"] == pytest.approx((cm["tp"] + cm["tn"]) / 24)
    # The best epoch's validation accuracy is what model.keras holds.
    best = history["epochs"][history["best_epoch"] - 1]
    assert best["val_accuracy"] == max(h["val_accuracy"] for h in history["epochs"])
    for args in (["--model", "run/model.keras"], []):
        if not args:
            (tmp_path / "artifacts").symlink_to(folder)
        assert runner.invoke(app, ["evaluate", *args]).exit_code == 0


def test_refuses_to_overwrite_a_run(prepared):
    assert train("--epochs", "1", "--output", "run").exit_code == 0
    res = train("--epochs", "1", "--output", "run")
    assert res.exit_code == 2 and "already holds a run" in res.stderr
    assert train("--epochs", "1", "--output", "run", "--overwrite").exit_code == 0
    res = train("--output", "run", "--resume")
    assert res.exit_code == 2 and "is complete" in res.stderr


def test_interrupt_keeps_best_and_resume_continues(prepared, tmp_path, monkeypatch):
    from rnncli.cli import train as train_cli

    original = train_cli.ProgressReporter.epoch_end

    def stop_after_two(self, epoch, epochs, logs, seconds):
        original(self, epoch, epochs, logs, seconds)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_cli.ProgressReporter, "epoch_end", stop_after_two)
    res = train("--epochs", "4", "--output", "run")
    assert res.exit_code == 130, res.output
    assert "--resume" in res.stderr
    folder = tmp_path / "run"
    assert (folder / run_files.MODEL).exists() and (folder / run_files.BACKUP).exists()

    monkeypatch.setattr(train_cli.ProgressReporter, "epoch_end", original)
    res = runner.invoke(app, ["train", "--output", "run", "--resume"])
    assert res.exit_code == 0, res.output
    epochs = [line.split()[1] for line in res.stderr.splitlines() if line.startswith("epoch ")]
    # Epoch 2's checkpoint was written before the display saw the epoch end.
    assert epochs == ["3/4", "4/4"]
    history = json.loads((folder / run_files.HISTORY_JSON).read_text())["epochs"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert not (folder / run_files.BACKUP).exists()


def test_nan_loss_stops_with_a_clear_message(prepared, tmp_path, monkeypatch):
    from rnncli.config import settings

    # A step size no option accepts (--learning-rate stops at 10): weights overflow to
    # inf, and the loss to NaN, inside Keras itself.
    monkeypatch.setattr(settings, "epoch_learning_rate", lambda t, epoch: 1e38)
    res = train("--epochs", "3", "--clipnorm", "0", "--output", "run")
    assert res.exit_code == 1, res.output
    assert "Loss became NaN" in res.stderr
    assert len(res.stderr.strip().splitlines()[-1:]) == 1 and "Traceback" not in res.output


@pytest.mark.parametrize("path", [[], ["--jit"]], ids=["no-jit", "xla"])
def test_same_seed_same_metrics(prepared, tmp_path, path):
    """The README's claim, on both the op-determinism path and the default XLA path."""
    def history(out, seed):
        res = train(*path, "--epochs", "2", "--seed", str(seed), "--output", out)
        assert res.exit_code == 0, res.output
        rows = json.loads((tmp_path / out / run_files.HISTORY_JSON).read_text())["epochs"]
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    first = history("a", 7)
    assert first == history("b", 7)
    assert first != history("c", 8)


def test_mirrored_strategy_on_two_logical_cpus(prepared, tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "rnncli", "train", *TINY, "--epochs", "1", "--strategy",
         "mirrored", "--cpu-devices", "2", "--output", "mirrored"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "mirrored" / run_files.MODEL).exists()
    assert "epoch 1/1" in res.stderr


def test_config_file_preset_and_options(prepared, tmp_path):
    (tmp_path / "run.toml").write_text('[model]\ncell = "gru"\nunits = 6\n[train]\nepochs = 1\n')
    res = train("--config", "run.toml", "--units", "5", "--output", "run")
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "run" / run_files.CONFIG).read_text())
    assert saved["model"]["cell"] == "gru" and saved["model"]["units"] == 5
    cfg = config.resolve("lstm", None, {"epochs": 2})
    assert cfg.model.cell == "lstm" and cfg.train.epochs == 2 and cfg.data.maxlen == 80


@pytest.mark.parametrize(
    "args, message",
    [
        (["--maxlen", "0"], "--maxlen 0 is too small"),
        (["--num-words", "3"], "use 4 or more"),
        (["--cell", "transformer"], "'transformer' is not one of 'simple', 'lstm', 'gru'"),
        (["--epochs", "-1"], "--epochs -1"),
        (["--validation-split", "0"], "between 0 and 1"),
        (["--validation-split", "1.5"], "between 0 and 1"),
        (["--preset", "huge"], "'huge' is not one of 'recipe', 'lstm', 'gru', 'best', 'teacher'"),
        (["--clipvalue", "0.5"], "alternatives"),
        (["--config", "missing.toml"], "No config file"),
    ],
)
def test_bad_training_input(prepared, args, message):
    res = runner.invoke(app, ["train", *args])
    assert res.exit_code == 2
    assert message in res.stderr and "Traceback" not in res.output


def test_train_and_evaluate_before_fetch(tmp_path):
    for args in (["train"], ["evaluate"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 1
        assert "run `rnncli data fetch` first" in res.stderr


def test_evaluate_bad_models(prepared, tmp_path):
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "model.keras").write_bytes(b"not a model")
    res = runner.invoke(app, ["evaluate", "--model", "bare"])
    assert res.exit_code == 1 and "No preprocessing.json beside" in res.stderr
    (tmp_path / "bare" / "preprocessing.json").write_text(json.dumps(
        {"vocabulary": ["the"], "num_words": 10, "maxlen": 5}))
    res = runner.invoke(app, ["evaluate", "--model", "bare"])
    assert res.exit_code == 1 and "Cannot load" in res.stderr
    res = runner.invoke(app, ["evaluate", "--model", "nowhere.keras"])
    assert res.exit_code == 1 and "No model at nowhere.keras" in res.stderr


def test_cosine_schedule_sets_each_epochs_step_size(prepared, tmp_path):
    res = train("--epochs", "3", "--lr-schedule", "cosine", "--output", "cos")
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "cos" / run_files.HISTORY_JSON).read_text())["epochs"]
    t = config.resolve(None, None, {"lr_schedule": "cosine", "epochs": 3}).train
    assert [r["learning_rate"] for r in rows] == pytest.approx(
        [config.epoch_learning_rate(t, e) for e in range(3)], rel=1e-6)
    assert rows[-1]["learning_rate"] < 0.5 * t.learning_rate
