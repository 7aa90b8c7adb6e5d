"""A model this onnxruntime is too old to read is named as such, with the version to install,
not called an invalid file: its IR version and opsets read from the file without onnx."""

from __future__ import annotations

import subprocess
import sys

import onnxruntime
import pytest
from conftest import invoke, one_line_error
from test_inference import save_model

from rnncli.errors import ModelError
from rnncli.serve import compat, locate, onnx_file
from rnncli.serve.onnx_model import OnnxModel

onnx = pytest.importorskip("onnx")


def stamped(path, ir_version=None, opset=None):
    """The test_inference graph, saved with another IR version or default-domain opset."""
    save_model(path)
    proto = onnx.load(str(path))
    if ir_version is not None:
        proto.ir_version = ir_version
    if opset is not None:
        proto.opset_import[0].version = opset
    path.write_bytes(proto.SerializeToString())  # onnx.save would refuse to check nothing,
    return path  # but serializing keeps whatever is stamped


@pytest.mark.parametrize("ir_version, opset, says", [
    (99, None, "its IR version 99 is newer than onnxruntime"),
    (None, 99, "its opset 99 is newer than onnxruntime"),
])
def test_a_model_too_new_for_this_onnxruntime_says_so(tmp_path, ir_version, opset, says):
    path = stamped(tmp_path / "new.onnx", ir_version, opset)
    with pytest.raises(ModelError) as err:
        OnnxModel(path)
    message = str(err.value)
    assert message == (f"Cannot load {path}: {says} {onnxruntime.__version__} reads: "
                       "pip install --upgrade onnxruntime.")
    one_line_error(invoke("predict", "great film", "--model", path), says)


@pytest.mark.parametrize("ir_version, opset, installed, what, need", [
    (10, 17, "1.17.3", "IR version 10", "1.18"),
    (11, 17, "1.22.1", "IR version 11", "1.23"),
    (9, 22, "1.20.1", "opset 22", "1.21"),
    (8, 20, "1.16.3", "opset 20", "1.17"),
    (10, 21, "1.17.0rc1", "IR version 10", "1.18"),  # the IR is named first
])
def test_an_older_onnxruntime_is_told_which_version_to_install(tmp_path, ir_version, opset,
                                                                installed, what, need):
    """The tables against an older runtime's version: which release first reads each IR
    version and opset (measured, see rnncli/serve/compat.py)."""
    path = stamped(tmp_path / "m.onnx", ir_version, opset)
    assert compat.needed_runtime(path, installed, "any failure at all") == (
        f"its {what} needs onnxruntime {need} or later (this is {installed}): "
        f'pip install "onnxruntime>={need}"')


def test_versions_the_runtime_reads_are_not_blamed(tmp_path):
    path = stamped(tmp_path / "m.onnx", 10, 17)
    assert compat.needed_runtime(path, "1.18.0", "some other failure") is None
    assert compat.needed_runtime(path, onnxruntime.__version__, "") is None
    # Above the tables, only onnxruntime's own words decide.
    new = stamped(tmp_path / "new.onnx", 42, 17)
    assert compat.needed_runtime(new, "9.0", "a broken graph") is None


def test_versions_are_read_from_the_file_as_onnx_reads_them(tmp_path):
    for path in (locate.BUNDLED, stamped(tmp_path / "m.onnx", 7, 21)):
        proto = onnx.load(str(path), load_external_data=False)
        assert onnx_file.read_versions(path) == (
            proto.ir_version, {o.domain: o.version for o in proto.opset_import})
    ml = save_model(tmp_path / "ml.onnx")
    proto = onnx.load(str(ml))
    proto.opset_import.append(onnx.helper.make_opsetid("ai.onnx.ml", 3))
    ml.write_bytes(proto.SerializeToString())
    assert onnx_file.read_versions(ml) == (proto.ir_version, {"": 17, "ai.onnx.ml": 3})


@pytest.mark.parametrize("content", [b"", b"\xff" * 64, b"not a model", b"\x08",
                                     b"\x3a\xff\xff\xff\xff\x0f", bytes(range(256)) * 8])
def test_a_file_that_is_no_model_is_still_called_invalid(tmp_path, content):
    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    onnx_file.read_versions(path)  # never raises, whatever the bytes
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        OnnxModel(path)


def test_serving_a_model_never_reads_its_versions():
    """The fast path is untouched: compat is imported only after onnxruntime fails."""
    code = ("import sys, rnncli; rnncli.load().predict(['great film']); "
            "print('rnncli.serve.compat' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_the_oldest_runtime_a_file_needs_is_the_later_of_its_ir_and_opset():
    assert compat.oldest_runtime(11, {"": 17}) == "1.23"  # IR 11 decides
    assert compat.oldest_runtime(9, {"": 22, "ai.onnx.ml": 3}) == "1.21"  # the opset decides
    # Below the tested floor, the floor: 1.18 reads IR 10 but fails some of its batches.
    assert compat.oldest_runtime(10, {"": 17}) == compat.TESTED_FLOOR == "1.19"
    assert compat.oldest_runtime(None, {}) == "1.19"
