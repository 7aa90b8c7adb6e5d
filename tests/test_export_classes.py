"""Exporting models of K > 2 labels: every graph kind against Keras, int8, the text graph.

Tiny Keras models built with build_model(cfg, classes=K) and random weights, no training.
Each graph gives "probability" [batch, K] and is checked on a batch padded to maxlen, a few
rows of it (the hybrid's native branch), and short reviews alone, without their padding.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TRAINS, invoke

from rnncli.config.settings import RunConfig, apply

pytestmark = TRAINS

NUM_WORDS, MAXLEN = 40, 12
ATOL = 1e-5
KINDS = ("hybrid", "unrolled", "native", "native-folded")
# (cell, bidirectional, pooling, padding, labels): both paddings, masked-max and last,
# a bidirectional GRU and a SimpleRNN.
COMBOS = [("gru", True, "masked-max", "pre", 3), ("simple", False, "last", "post", 4),
          ("lstm", False, "last", "pre", 3), ("gru", False, "masked-max", "post", 4)]


def combo_id(c) -> str:
    return f"{c[0]}-{'bi' if c[1] else 'uni'}-{c[2]}-{c[3]}-{c[4]}"


def make_config(cell, bidirectional, pooling, padding, embedding_dim=4) -> RunConfig:
    return apply(RunConfig(), dict(cell=cell, bidirectional=bidirectional, pooling=pooling,
                                   layers=1, num_words=NUM_WORDS, maxlen=MAXLEN, units=3,
                                   embedding_dim=embedding_dim, padding=padding,
                                   truncating=padding))


def random_model(cfg: RunConfig, classes: int, seed: int = 0):
    import keras

    from rnncli.model.build import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(cfg, classes=classes)
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.normal(0, 0.7, w.shape).astype(np.float32))
    return model


def rows(rng, lengths) -> list[np.ndarray]:
    return [np.concatenate([[1], rng.integers(2, NUM_WORDS, n - 1)]).astype(np.int32)
            for n in lengths]


def padded(reviews, width: int, padding: str) -> np.ndarray:
    x = np.zeros((len(reviews), width), np.int32)
    for i, r in enumerate(reviews):
        if padding == "pre":
            x[i, width - len(r):] = r
        else:
            x[i, :len(r)] = r
    return x


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_every_graph_kind_gives_every_label_probability_as_keras(combo):
    import onnxruntime as ort

    from rnncli.export.graph import build_graph

    *settings, classes = combo
    cfg = make_config(*settings)
    model = random_model(cfg, classes)
    rng = np.random.default_rng(1)
    reviews = rows(rng, [MAXLEN, *rng.integers(1, MAXLEN + 1, 15)])
    x = padded(reviews, MAXLEN, cfg.data.padding)
    want = np.asarray(model(x, training=False), np.float64)
    assert want.shape == (16, classes)
    worst = {}
    for kind in KINDS:
        sess = ort.InferenceSession(build_graph(model, cfg, kind).SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        out = sess.get_outputs()[0]
        assert (out.name, out.shape[1]) == ("probability", classes)

        def diff(ids, expected, sess=sess):
            got = sess.run(["probability"], {"ids": ids})[0]
            assert got.shape == expected.shape
            return float(np.max(np.abs(got - expected)))

        # Short rows alone, unpadded: the native graph's trimmed path (masked or pad states).
        short = [(i, r) for i, r in enumerate(reviews) if len(r) < MAXLEN][:4]
        worst[kind] = max(diff(x, want), diff(x[:3], want[:3]),
                          *(diff(padded([r], len(r), cfg.data.padding), want[[i]])
                            for i, r in short))
    assert max(worst.values()) <= ATOL, worst
    print(combo_id(combo), {k: f"{v:.2e}" for k, v in worst.items()})


def test_dense_of_another_shape_is_refused():
    import keras

    from rnncli.errors import GraphUnsupported
    from rnncli.export.weights import check_model

    cfg = make_config("gru", False, "last", "pre")
    two = random_model(cfg, 3)
    # Two softmax units would be a second way to write a binary model: refused.
    features = two.get_layer("rnn_0").output
    dense = keras.layers.Dense(2, activation="softmax", name="dense")(features)
    with pytest.raises(GraphUnsupported, match="Dense\\(K, softmax\\) for K > 2"):
        check_model(keras.Model(two.input, dense), cfg)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A run folder of a 4-label model (embedding large enough to quantize), exported with
    --quantize and --text-input through the CLI: (run folder, the --json report)."""
    from rnncli.config import run_files
    from rnncli.text.preprocessing import Preprocessing

    run = tmp_path_factory.mktemp("classes") / "run"
    run.mkdir()
    cfg = make_config("gru", True, "masked-max", "pre", embedding_dim=128)
    model = random_model(cfg, 4, seed=2)
    # Smaller weights, as after training: the random ones above saturate the softmax.
    for w in model.weights:
        w.assign(np.asarray(w) * 0.3)
    model.save(run / run_files.MODEL)
    (run / run_files.CONFIG).write_text(json.dumps(cfg.to_dict()))
    words = [f"w{i}" for i in range(NUM_WORDS)]
    prep = Preprocessing(vocabulary=words, num_words=NUM_WORDS, maxlen=MAXLEN,
                         labels=["sport", "politics", "arts", "science"])
    (run / run_files.PREPROCESSING).write_text(json.dumps(prep.to_dict()))
    # The graph pinned: left to choose by speed, export may pick native-folded, whose
    # folded weights are all under quantize's size floor, and then writes no int8 file.
    res = invoke("export", "onnx", "--model", run, "--quantize", "--text-input",
                 "--graph", "native", "--reviews", "300", "--json")
    assert res.exit_code == 0, res.output
    return run, json.loads(res.stdout)


def test_export_writes_k_probabilities_and_int8_keeps_the_label(exported):
    import onnx

    from rnncli.config import run_files

    run, report = exported
    assert {c["graph"]: c["status"] for c in report["candidates"]}["native"] == "valid"
    for c in report["candidates"]:
        if c["status"] == "valid":
            assert c["max_abs_diff"] <= ATOL, c
    print({c["graph"]: c["max_abs_diff"] for c in report["candidates"]})
    proto = onnx.load(str(run / run_files.ONNX))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["rnncli.labels"]) == ["sport", "politics", "arts", "science"]
    q = report["quantized"]
    assert q["path"].endswith("model.int8.onnx") and q["max_abs_diff"] < 0.05
    assert q["argmax_agreement"] >= 0.9


def test_text_graph_and_predict_give_the_label_names(exported, tmp_path):
    from rnncli.config import run_files
    from rnncli.serve.onnx_model import OnnxModel

    run, report = exported
    assert report["text_input"]["max_abs_diff"] <= ATOL
    labels = ["sport", "politics", "arts", "science"]
    reviews = ["w5 w9 w17 w3", "w30 w31", "W12 w12 w12 w2 w8 w4 w4 w39 w20"]
    ids, texts = OnnxModel(run / run_files.ONNX), OnnxModel(run / run_files.ONNX_TEXT)
    want, _ = ids.scores(reviews)
    got, _ = texts.text_probabilities(reviews)
    np.testing.assert_allclose(got, want, atol=ATOL)
    label = texts.session.run(["label"], {"text": np.array(reviews, object)})[0]
    assert label.tolist() == [labels[i] for i in want.argmax(1)]
    for model in (run / run_files.ONNX, run / "model.int8.onnx", run / run_files.ONNX_TEXT):
        res = invoke("predict", "--model", model, *reviews, "--format", "jsonl",
                     "--all-probabilities")
        assert res.exit_code == 0, res.output
        out = [json.loads(line) for line in res.stdout.splitlines()]
        assert all(r["label"] in labels and list(r["probabilities"]) == labels for r in out)
