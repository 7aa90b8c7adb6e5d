"""On a base install (no `[train]` extra) the Keras commands say what to install, in one line,
and write nothing; TensorFlow is made unimportable for the test, as it is on such an install."""

import json
import sys

import pytest
from typer.testing import CliRunner

from rnncli.cli import app
from rnncli.config import run_files
from rnncli.serve import locate
from rnncli.text.preprocessing import Preprocessing

runner = CliRunner()
EXTRA = 'needs the training extra (tensorflow, keras not installed): pip install "rnncli[train]"'


@pytest.fixture
def base_install(monkeypatch):
    # None in sys.modules makes `import tensorflow` fail and find_spec report it missing.
    for name in ("tensorflow", "keras", "tf2onnx", "onnx"):
        monkeypatch.setitem(sys.modules, name, None)


def files_in(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) \
        if folder.exists() else []


def test_train_says_which_extra_and_leaves_no_run_behind(prepared, base_install, tmp_path):
    for attempt in range(2):  # the second attempt is not refused by a half-made first one
        res = runner.invoke(app, ["train", "--output", "run", "--epochs", "1"])
        assert res.exit_code == 1, (attempt, res.output)
        assert res.stderr.strip() == f"Error: Training {EXTRA}"
        assert files_in(tmp_path / "run") == []


def keras_run_folder(folder):
    folder.mkdir()
    (folder / run_files.MODEL).write_bytes(b"a Keras model would be here")
    (folder / run_files.PREPROCESSING).write_text(json.dumps(
        Preprocessing(vocabulary=["film", "great"], num_words=10, maxlen=20).to_dict()))
    return files_in(folder)


@pytest.mark.parametrize("command, what", [
    (["export", "onnx", "--model", "run"], "Exporting to ONNX"),
    (["evaluate", "--model", "run"], "Loading a Keras model"),
])
def test_keras_commands_say_which_extra(prepared, base_install, tmp_path, command, what):
    before = keras_run_folder(tmp_path / "run")
    res = runner.invoke(app, command)
    assert res.exit_code == 1, res.output
    message = res.stderr.strip()
    assert message.startswith(f"Error: {what} needs the training extra (")
    assert message.endswith('not installed): pip install "rnncli[train]"')
    assert "tensorflow" in message and "Traceback" not in res.output
    assert files_in(tmp_path / "run") == before


def test_onnx_models_still_evaluate_on_a_base_install(prepared, base_install):
    res = runner.invoke(app, ["evaluate", "--model", str(locate.BUNDLED), "--limit", "4",
                              "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["reviews"] == 4
