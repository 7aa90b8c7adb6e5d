"""tools/rehead.py: an exported int8 file's n-gram head fitted again on its own network, the
way training fits it, and then given its cascade by tools/cascade.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import invoke

pytest.importorskip("onnx")


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_rehead_joins_a_freshly_fitted_head_to_the_files_network(_isolated, tmp_path):
    import onnx
    import onnxruntime as ort
    from test_train_classes import SMALL, own_dataset

    from rnncli.data import store
    from rnncli.serve.onnx_model import OnnxModel
    from rnncli.train.head import fit_head
    from tools import cascade, rehead

    own_dataset(_isolated, "yesno", ["billing", "bugs"], per_label=80)
    res = invoke("train", "--dataset", "yesno", *SMALL, "--epochs", "2", "--batch-size", "16",
                 "--ngram-head", "--output", "run")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "ngram_head.json").read_text())["weighting"] == "nb"
    res = invoke("export", "onnx", "--model", "run", "--quantize", "--no-cascade",
                 "--graph", "native", "--reviews", "40")
    assert res.exit_code == 0, res.output
    source, out = tmp_path / "run" / "model.int8.onnx", tmp_path / "re" / "model.onnx"
    got = rehead.rehead(source, out, weighting="tfidf", seed=0)
    assert got["val_accuracy"]["both"]["whole"] >= 0.5

    # The file computes sigmoid(a x its old network logit + b x the new head's + c).
    served = OnnxModel(source)
    x, y, x_val, _ = store.training_shares(_isolated, _settings(served.preprocessing))
    proto = onnx.load(str(source))
    net_name, _ = rehead.join_inputs(proto)
    net = rehead.network_logits(source, net_name, x_val, served.preprocessing.padding)
    head = fit_head(x, y, served.preprocessing.num_words, 0, weighting="tfidf")
    want = 1 / (1 + np.exp(-(got["a"] * net + got["b"] * head.logits(x_val) + got["c"])))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    have = session.run(None, {session.get_inputs()[0].name: x_val})[0].ravel()
    np.testing.assert_allclose(have, want, atol=0.02)  # the tables are int8
    assert not np.allclose(have, served._run(x_val), atol=1e-3)  # a head of its own

    assert cascade.main([str(out)]) == 0
    assert OnnxModel(out).has_cascade
    with pytest.raises(SystemExit, match="has a cascade"):
        rehead.rehead(out, tmp_path / "again.onnx")


def _settings(prep):
    from types import SimpleNamespace

    return SimpleNamespace(dataset=prep.source or None, num_words=prep.num_words,
                           maxlen=prep.maxlen, padding=prep.padding,
                           truncating=prep.truncating, limit=None, validation_split=0.2)
