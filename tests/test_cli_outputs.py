"""An --output that cannot be written is one line, before any model is built or loaded:
TensorFlow is made unimportable here, so reaching it would fail the test another way."""

import errno
import sys
from pathlib import Path

import pytest
from conftest import invoke, one_line_error

from rnncli.model import runtime as tf_runtime


@pytest.fixture
def no_tensorflow(monkeypatch):
    for name in ("tensorflow", "keras", "tf2onnx", "onnx"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(tf_runtime, "require_training_extra", lambda *a, **k: None)


def test_train_output_that_is_a_file(prepared, no_tensorflow, tmp_path):
    (tmp_path / "run").write_text("notes")
    one_line_error(invoke("train", "--output", "run"),
                   "--output run is a file: name a folder.", code=2)
    assert (tmp_path / "run").read_text() == "notes"


def test_train_output_in_a_read_only_folder(prepared, no_tensorflow, tmp_path, monkeypatch):
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if tmp_path / "ro" in (self.absolute(), *self.absolute().parents):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    one_line_error(invoke("train", "--output", "ro/run"),
                   "Cannot write in ro/run (Permission denied): choose another --output.", code=2)
    assert not (tmp_path / "ro").exists()


@pytest.mark.parametrize("output, message", [
    ("out", "--output out is a folder: name the file to write, such as out/model.onnx."),
    ("notes/model.onnx", "--output notes/model.onnx: notes is a file, not a folder"),
])
def test_export_output_that_cannot_be_a_file(no_tensorflow, tmp_path, output, message):
    (tmp_path / "out").mkdir()
    (tmp_path / "notes").write_text("notes")
    one_line_error(invoke("export", "onnx", "--output", output), message, code=2)
    assert (tmp_path / "notes").read_text() == "notes" and not list((tmp_path / "out").iterdir())
