"""The model shipped in the package: predict works right after install, before any training."""

import json

import pytest
from conftest import REAL_ARCHIVE
from typer.testing import CliRunner

from rnncli import runs
from rnncli.cli import app
from rnncli.inference import OnnxModel

runner = CliRunner()


def test_bundled_model_loads_with_its_metadata():
    assert runs.BUNDLED.exists(), "rnncli/bundled/model.onnx is part of the package"
    assert runs.BUNDLED.stat().st_size <= 5_000_000
    model = OnnxModel(runs.BUNDLED)
    prep = model.preprocessing
    assert len(prep.vocabulary) == prep.num_words - 3
    assert prep.maxlen >= 80 and prep.padding in ("pre", "post")
    assert float(model.metadata["rnncli.test_accuracy"]) >= 0.85
    assert int(model.metadata["rnncli.test_reviews"]) == 25_000


@pytest.mark.parametrize("text, label", [("a wonderful, moving film", "positive"),
                                         ("a boring, awful waste of time", "negative")])
def test_predict_uses_the_bundled_model_in_a_fresh_folder(text, label, tmp_path):
    assert not (tmp_path / "artifacts").exists()
    res = runner.invoke(app, ["predict", text, "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["label"] == label
    assert "using the bundled model" in res.stderr


@pytest.mark.real_data
@pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason="real archive not present")
def test_bundled_model_agrees_with_its_recorded_accuracy(real_home):
    model = OnnxModel(runs.BUNDLED)
    res = runner.invoke(app, ["evaluate", "--data-dir", str(real_home), "--limit",
                              model.metadata["rnncli.test_slice_reviews"], "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["bundled"] and report["kind"] == "onnx"
    assert report["accuracy"] == pytest.approx(
        float(model.metadata["rnncli.test_slice_accuracy"]), abs=1e-6)
