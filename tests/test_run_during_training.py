"""What a run folder holds while it trains (docs/training.md, "Nothing is lost on the way"):
after the first epoch the new run is the folder's, with its model so far, history and
checkpoint; and a second `rnncli train` into it meanwhile is refused, in one line, so both
runs' files cannot mix (two trainings used to both exit 0, leaving one's model and history
and neither's config.json)."""

import json
import os
import subprocess
import sys

from conftest import TINY, TRAINS, one_line_error, train_tiny

from rnncli.config import run_files

pytestmark = TRAINS


def files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_after_the_first_epoch_the_folder_holds_the_run_so_far(prepared, tmp_path,
                                                               monkeypatch):
    from rnncli.cli.train_display import ProgressReporter

    folder = tmp_path / "run"
    seen = {}
    begin = ProgressReporter.epoch_begin

    def look(self, epoch, epochs, steps):
        seen[epoch] = files(folder)
        if epoch == 2:
            seen["history"] = json.loads((folder / run_files.HISTORY_JSON).read_text())
        begin(self, epoch, epochs, steps)

    monkeypatch.setattr(ProgressReporter, "epoch_begin", look)
    res = train_tiny("--epochs", "2", "--output", "run")
    assert res.exit_code == 0, res.output
    assert all(name.startswith(run_files.STAGING + "/") or name.startswith(".rnncli")
               for name in seen[1]), "before an epoch ends, the run is staged"
    assert {run_files.MODEL, run_files.BEST, run_files.CONFIG, run_files.PREPROCESSING,
            run_files.HISTORY_JSON, run_files.HISTORY_CSV,
            f"{run_files.BACKUP}/epoch-0001.keras"} <= set(seen[2])
    assert not any(name.startswith(run_files.STAGING) for name in seen[2])
    assert [h["epoch"] for h in seen["history"]["epochs"]] == [1]
    # The run draws its curves into its folder; the command says where.
    assert (folder / run_files.CURVES_PNG).exists()
    assert f"learning curves: {folder.name}/{run_files.CURVES_PNG}" in res.stderr


def test_a_second_training_into_a_folder_in_use_is_refused(prepared, tmp_path):
    first = subprocess.Popen(
        [sys.executable, "-m", "rnncli", "train", *TINY, "--epochs", "2", "--output", "run"],
        cwd=tmp_path, env=dict(os.environ, RNNCLI_TF_LOGS=""), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        for line in iter(first.stderr.readline, ""):  # said once it holds the folder
            if line.startswith("training: "):
                break
        for args in (["--output", "run"], ["--output", "run", "--overwrite"]):
            one_line_error(train_tiny("--epochs", "1", "--seed", "9", *args),
                           "run is in use by another rnncli process")
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    folder = tmp_path / "run"
    for name in (run_files.MODEL, run_files.CONFIG, run_files.PREPROCESSING,
                 run_files.HISTORY_JSON):
        assert (folder / name).exists(), name
    assert json.loads((folder / run_files.CONFIG).read_text())["train"]["seed"] == 1337
    history = json.loads((folder / run_files.HISTORY_JSON).read_text())
    assert [h["epoch"] for h in history["epochs"]] == [1, 2]
