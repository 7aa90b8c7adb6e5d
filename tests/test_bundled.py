"""The model shipped in the package: predict works right after install, before any training."""

import json

import pytest
from conftest import NO_ARCHIVE, REAL_ARCHIVE, invoke

from rnncli.serve import locate
from rnncli.serve.onnx_model import OnnxModel


def test_bundled_model_loads_with_its_metadata():
    assert locate.BUNDLED.exists(), "rnncli/bundled/model.onnx is part of the package"
    files = [locate.BUNDLED, *locate.BUNDLED.parent.glob("*.data")]
    # 4.4 MB of network and 16.8 MB for the n-gram head's two int8 tables of 8.4 million
    # values (words, pairs and triples): the package's budget, the base install's 0.18 GB.
    assert sum(f.stat().st_size for f in files) <= 22_000_000
    model = OnnxModel(locate.BUNDLED)
    prep = model.preprocessing
    assert len(prep.vocabulary) == prep.num_words - 3
    assert prep.maxlen >= 80 and prep.padding in ("pre", "post")
    assert float(model.metadata["rnncli.test_accuracy"]) >= 0.85
    assert int(model.metadata["rnncli.test_reviews"]) == 25_000
    # Serving cuts every batch to its longest review: a one-sentence review runs its own
    # few steps, not maxlen.
    assert prep.trim_padding and model.metadata["rnncli.skips_pad_steps"] == "true"


def test_bundled_model_keeps_its_weights_in_one_packaged_data_file():
    """onnxruntime maps external data from disk instead of copying it out of the graph
    file: a faster start (rnncli/bundle.py)."""
    onnx = pytest.importorskip("onnx")
    import tomllib

    from tools.bundle import EXTERNAL_FROM

    proto = onnx.load(str(locate.BUNDLED), load_external_data=False)
    inline = [t.name for t in proto.graph.initializer
              if t.data_location != onnx.TensorProto.EXTERNAL and t.ByteSize() > 2 * EXTERNAL_FROM]
    assert not inline
    locations = {e.value for t in proto.graph.initializer for e in t.external_data
                 if e.key == "location"}
    assert len(locations) == 1 and (locate.BUNDLED.parent / locations.pop()).is_file()
    package = tomllib.loads((locate.BUNDLED.parents[2] / "pyproject.toml").read_text())
    assert "bundled/*.data" in package["tool"]["setuptools"]["package-data"]["rnncli"]


def test_bundled_model_computes_in_float():
    """Kernels that quantize activations at run time give results that differ by CPU
    (VNNI or not, x86-64 or ARM); weight-only int8 is turned into float at load."""
    onnx = pytest.importorskip("onnx")

    proto = onnx.load(str(locate.BUNDLED))
    ops = {n.op_type for n in proto.graph.node}
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.g.node:
                ops |= {n.op_type for n in attr.g.node}
    integer_math = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul",
                    "DynamicQuantizeLSTM", "QuantizeLinear", "MatMulIntegerToFloat"}
    assert not ops & integer_math, ops & integer_math


@pytest.mark.parametrize("text, label", [("a wonderful, moving film", "positive"),
                                         ("a boring, awful waste of time", "negative")])
def test_predict_uses_the_bundled_model_in_a_fresh_folder(text, label, tmp_path):
    assert not (tmp_path / "artifacts").exists()
    res = invoke("predict", text, "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["label"] == label
    assert "using the bundled model" in res.stderr


@pytest.mark.real_data
@pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason=NO_ARCHIVE)
def test_bundled_model_agrees_with_its_recorded_accuracy(real_home):
    model = OnnxModel(locate.BUNDLED)
    res = invoke("evaluate", "--data-dir", str(real_home), "--limit",
                              model.metadata["rnncli.test_slice_reviews"], "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["bundled"] and report["kind"] == "onnx"
    # Float arithmetic differs across CPUs only in the last bits (summation order of the
    # BLAS kernels): at most a review whose probability sits at 0.5 can flip.
    reviews = int(model.metadata["rnncli.test_slice_reviews"])
    assert report["accuracy"] == pytest.approx(
        float(model.metadata["rnncli.test_slice_accuracy"]), abs=1.01 / reviews)
