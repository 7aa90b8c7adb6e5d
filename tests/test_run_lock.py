"""One process at a time writes a run folder: a second `train`, `train --resume` or `export
onnx` into a folder in use is refused at once, in one line naming it; the lock goes with its
holder however that ends. No model is trained here: each refusal comes before TensorFlow."""

import importlib.util
import json
import subprocess
import sys

import pytest
from conftest import invoke, keras_run, one_line_error

from rnncli.config import run_files
from rnncli.train import runs

IN_USE = "run is in use by another rnncli process (training or exporting into it)"


def needs(*modules):
    """Skip without the [train] extra, which the commands check first; found, not imported
    (importing TensorFlow costs seconds, and these refusals come before it)."""
    for name in modules:
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed")


@pytest.mark.parametrize("command", [
    ["train", "--output", "run"],
    ["train", "--output", "run", "--overwrite"],
    ["train", "--output", "run", "--resume"],
    ["export", "onnx", "--model", "run"],
    ["export", "onnx", "--model", "run", "--output", "run/other.onnx"],
    ["export", "onnx", "--model", "run/model.onnx", "--text-input"],
])
def test_a_folder_in_use_is_refused_in_one_line(prepared, tmp_path, command):
    needs("tensorflow", "keras", "tf2onnx", "onnx")
    keras_run(tmp_path / "run")
    (tmp_path / "run" / run_files.ONNX).write_bytes(b"an exported model would be here")
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    with runs.locked(tmp_path / "run"):  # as a training in another process holds it
        res = invoke(*command)
    one_line_error(res, IN_USE)
    assert "wait for it to end" in res.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(
        [*before, run_files.LOCK])


def test_the_lock_is_one_file_for_training_and_export(tmp_path):
    with runs.locked(tmp_path / "run"):
        assert (tmp_path / "run" / run_files.LOCK).exists()
        with pytest.raises(Exception, match="in use by another rnncli process"), \
                runs.locked(tmp_path / "run"):
            pass
    with runs.locked(tmp_path / "run"):  # released on the way out, error or not
        pass


def test_another_process_holding_the_lock_refuses_then_frees_it(prepared, tmp_path):
    needs("tensorflow", "keras")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom rnncli.train import runs\n"
         "with runs.locked('run'):\n    print('held', flush=True)\n    sys.stdin.read()\n"],
        cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        one_line_error(invoke("train", "--output", "run"), IN_USE)
    finally:
        holder.kill()  # SIGKILL: no Python code of the holder runs; the kernel drops the lock
        holder.wait(timeout=60)
    with runs.locked(tmp_path / "run"):
        pass


def test_a_folder_made_for_a_run_that_failed_is_removed_again(prepared, tmp_path):
    """The lock makes the folder; a run refused after that (here: no review left) leaves
    neither the folder nor its lock file."""
    needs("tensorflow", "keras")
    res = invoke("train", "--output", "new/run", "--validation-split", "0.999")
    one_line_error(res, "leaves no training review", code=2)
    assert not (tmp_path / "new" / "run").exists()


def test_only_the_chief_takes_the_lock(prepared, tmp_path, monkeypatch):
    """Workers of one run on one machine (docs/training.md's two shells) share --output:
    the chief writes it and holds the lock; the others write nothing, so they never wait on
    it or are refused by it."""
    needs("tensorflow", "keras")
    from rnncli.config import settings
    from rnncli.data import store as dataset
    from rnncli.train import loop

    monkeypatch.setattr(loop, "_train", lambda *args: "trained")
    cfg = settings.resolve(None, None, {"strategy": "multi-worker"})
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    with runs.locked(tmp_path / "run"):
        for index, refused in ((1, False), (0, True)):
            monkeypatch.setenv("TF_CONFIG", json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}))
            if refused:
                with pytest.raises(Exception, match="in use"):
                    loop.train(cfg, dataset.data_home(None), tmp_path / "run")
            else:
                assert loop.train(cfg, dataset.data_home(None), tmp_path / "run") == "trained"


def test_the_lock_file_never_counts_as_a_run(tmp_path):
    with runs.locked(tmp_path / "run"):
        (tmp_path / "run" / run_files.HISTORY_JSON).write_text("{}")
    assert not runs.holds_run(tmp_path / "run")
    # The folder held a file of its own: it stays, with its lock.
    assert (tmp_path / "run" / run_files.LOCK).exists()


def test_the_text_graph_is_written_under_the_same_lock(prepared, tmp_path, monkeypatch):
    """`export onnx --text-input` writes model.text.onnx before it lets the folder go."""
    needs("tensorflow", "keras", "tf2onnx", "onnx")
    from types import SimpleNamespace

    from rnncli.export import onnx as onnx_export
    from rnncli.export import text_export

    keras_run(tmp_path / "run")
    held = []

    def text_graph(*args, **kwargs):
        with pytest.raises(Exception, match="in use by another rnncli process"), \
                runs.locked(tmp_path / "run"):
            pass
        held.append(True)
        raise KeyboardInterrupt  # nothing more to check: end the export here

    monkeypatch.setattr(onnx_export, "_export_onnx",
                        lambda *a, **k: SimpleNamespace(output=tmp_path / "run" / "model.onnx"))
    monkeypatch.setattr(text_export, "export_text_graph", text_graph)
    res = invoke("export", "onnx", "--model", "run", "--text-input")
    assert held == [True], res.output
