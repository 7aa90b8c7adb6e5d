"""A run that dies says so in one line and leaves its folder usable: out of memory while the
model is built removes the unfinished run (`.next/`); after an epoch, that epoch's model is
kept; and the run folder's lock is free again whichever way the run ended."""

import json
from pathlib import Path

import pytest
from conftest import train_tiny

from rnncli.config import run_files
from rnncli.train import runs

pytestmark = pytest.mark.slow


@pytest.fixture
def tf(training_extra):
    import tensorflow as tf

    return tf


def error_line(res) -> str:
    """The run's one error line (after its progress lines), with no traceback."""
    assert "Traceback" not in res.output, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and res.stderr.splitlines()[-1] == errors[0], res.stderr
    return errors[0]


@pytest.mark.parametrize("oom", ["MemoryError", "ResourceExhaustedError"])
def test_out_of_memory_while_building_leaves_the_folder_as_it_was(prepared, tmp_path, tf,
                                                                  monkeypatch, oom):
    from rnncli.model import build

    assert train_tiny("--epochs", "1", "--output", "run").exit_code == 0
    before = sorted(p.name for p in (tmp_path / "run").iterdir())

    def too_big(*args, **kwargs):
        if oom == "MemoryError":
            raise MemoryError
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(build, "build_model", too_big)
    for args in (["--overwrite", "--output", "run"], ["--output", "new"]):
        res = train_tiny("--epochs", "1", *args)
        assert res.exit_code == 1
        folder = args[-1]
        assert error_line(res) == (
            f"Error: Out of memory while building the model ({oom}): no model saved, and "
            f"{folder} is as it was (the unfinished run's .next/ is removed): lower "
            "--batch-size, --units, --embedding-dim, --num-words or --maxlen.")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
    assert not (tmp_path / "new").exists()
    with runs.locked(tmp_path / "run"):  # the lock went with the run
        pass


def test_out_of_memory_after_an_epoch_keeps_that_epochs_model(prepared, tmp_path, tf,
                                                              monkeypatch):
    from rnncli.train import tracking

    begin = tracking.EpochTracker.epoch_begin

    def second_epoch_too_big(self, epoch):
        begin(self, epoch)
        if epoch == 2:
            raise MemoryError

    monkeypatch.setattr(tracking.EpochTracker, "epoch_begin", second_epoch_too_big)
    res = train_tiny("--epochs", "3", "--output", "run")
    assert res.exit_code == 1
    assert error_line(res) == (
        f"Error: Out of memory in epoch 2 (MemoryError): kept the model of epoch 1 in "
        f"{Path('run', run_files.MODEL)}; lower --batch-size, --units, --embedding-dim, "
        "--num-words or --maxlen, and start again with --overwrite.")
    folder = tmp_path / "run"
    assert (folder / run_files.MODEL).exists() and not (folder / run_files.STAGING).exists()
    history = json.loads((folder / run_files.HISTORY_JSON).read_text())
    assert [h["epoch"] for h in history["epochs"]] == [1]


def test_the_lock_is_released_after_ctrl_c(prepared, tmp_path, tf):
    from rnncli.cli.train_display import ProgressReporter

    def ctrl_c(self, step):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:  # its own: the data home's stays
        patch.setattr(ProgressReporter, "batch_end", ctrl_c)
        assert train_tiny("--epochs", "1", "--output", "run").exit_code == 130
    assert not (tmp_path / "run").exists(), "a folder made for the run goes with it"
    assert train_tiny("--epochs", "1", "--output", "run").exit_code == 0
