"""The n-gram head for K > 2 labels: the multinomial fit against scikit-learn's, the Keras
layer's [batch, K] logits against numpy, the join softmax(a x network + b x head + c),
every hand-built graph kind and int8 against Keras, and `train --dataset --ngram-head`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import invoke

from rnncli.model.ngram import BUCKETS, NgramHead, NgramModel
from rnncli.text import tokenizer as text

pytest.importorskip("sklearn")
NUM_WORDS, MAXLEN = 30, 12
FILLER = (10, NUM_WORDS)  # filler word ids; word 4 + c marks class c


def class_rows(n: int, classes: int, seed: int, noise: float = 0.2):
    """Id rows (start marker, then words) whose class shows in one marker word, which is
    another class's in a `noise` share of rows; (rows, label indexes as float32)."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for _ in range(n):
        c = int(rng.integers(classes))
        marker = int(rng.integers(classes)) if rng.random() < noise else c
        filler = rng.integers(*FILLER, size=int(rng.integers(2, 9)))
        at = int(rng.integers(0, len(filler) + 1))
        rows.append(np.array([text.START, *filler[:at], 4 + marker, *filler[at:]], np.int32))
        labels.append(c)
    return rows, np.array(labels, np.float32)


def test_multinomial_fit_is_scikit_learns_on_the_same_tfidf():
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    from rnncli.model.ngram import count_matrix, row_keys

    rows, y = class_rows(200, 3, seed=0)
    model = NgramModel(NUM_WORDS, keys="exact", classes=3).fit(rows, y)
    # The features built apart: every key seen in 2 reviews or more, scikit-learn's TF-IDF.
    counts = count_matrix([row_keys(r, NUM_WORDS, "exact") for r in rows], NUM_WORDS ** 2)
    kept = np.flatnonzero(np.asarray((counts > 0).sum(0)).ravel() >= 2)
    features = TfidfTransformer(sublinear_tf=True).fit_transform(counts[:, kept])
    reference = LogisticRegression(C=4.0, max_iter=2000).fit(features, y.astype(int))
    assert model.coef_.shape == (len(kept), 3) and model.intercept_.shape == (3,)
    np.testing.assert_allclose(model.predict_proba(rows), reference.predict_proba(features),
                               atol=1e-4)
    assert (model.predict_proba(rows).argmax(1) == y).mean() > 0.75

    # Hashed keys: the head's [table, 3] weights give the model's logits.
    hashed = NgramModel(NUM_WORDS, classes=3).fit(rows, y)
    head = hashed.head()
    assert head.weights.shape == (NUM_WORDS + BUCKETS, 3) and head.classes == 3
    np.testing.assert_allclose(head.logits(rows), hashed.decision_function(rows), atol=1e-5)


def test_a_label_the_training_rows_lack_gets_a_probability_near_zero():
    rows, y = class_rows(120, 2, seed=1)  # labels 0 and 1 of 4
    model = NgramModel(NUM_WORDS, classes=4).fit(rows, y)
    p = model.predict_proba(rows)
    assert p.shape == (120, 4) and p[:, 2:].max() < 1e-3
    assert (p.argmax(1) == y).mean() > 0.75
    with pytest.raises(ValueError, match="class indexes 0..3"):
        NgramModel(NUM_WORDS, classes=4).fit(rows, y + 3)


def test_stack_weights_classes_recover_how_logits_combine():
    from rnncli.train.head import stack_weights_classes

    rng = np.random.default_rng(0)
    net, lin = rng.normal(0, 2, (20000, 3)), rng.normal(0, 2, (20000, 3))
    truth = 0.5 * net + 1.5 * lin + np.array([0.4, -0.4, 0.0])
    p = np.exp(truth - truth.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p], np.float32)
    a, b, c = stack_weights_classes(net, lin, y)
    assert abs(a - 0.5) < 0.05 and abs(b - 1.5) < 0.1
    # The biases only count relative to each other (a softmax): compare their differences.
    np.testing.assert_allclose(c - c[2], [0.4, -0.4, 0.0], atol=0.08)


def random_head(classes: int, seed: int) -> NgramHead:
    rng = np.random.default_rng(seed)
    size = NUM_WORDS + BUCKETS
    idf = rng.uniform(1, 5, size).astype(np.float32)
    idf[: text.OOV] = 0
    return NgramHead(rng.normal(0, 1, (size, classes)).astype(np.float32), idf,
                     np.zeros(classes), NUM_WORDS)


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_keras_layer_gives_the_numpy_head_per_label():
    """Repeated words, pairs across pads, rows with no key, either padding side."""
    from rnncli.model import runtime as tf_runtime
    from rnncli.model.layers import ngram_layer

    tf_runtime.import_tensorflow()
    head = random_head(3, seed=1)
    layer = ngram_layer()(NUM_WORDS, classes=3)
    layer.build((None, None))
    layer.set_weights([head.weights, head.idf])
    rng = np.random.default_rng(2)
    rows = [np.array([text.START, *rng.integers(2, 9, n)], np.int32) for n in (0, 1, 5, 11)]
    rows.append(np.array([text.START, 7, 7, 7, 7, 8, 7, 8], np.int32))
    for side in ("pre", "post"):
        x = text.pad_sequences(rows, 12, side, side)
        got = np.asarray(layer(x))
        assert got.shape == (5, 3)
        np.testing.assert_allclose(got, head.logits(x), atol=2e-5)
    assert not got[0].any()  # a review of no word has no key
    assert layer.get_config()["classes"] == 3


def small_config(pooling: str = "masked-max", padding: str = "pre", **more):
    from rnncli.config.settings import RunConfig, apply

    return apply(RunConfig(), {"num_words": NUM_WORDS, "maxlen": MAXLEN, "units": 3,
                               "embedding_dim": 4, "pooling": pooling, "padding": padding,
                               "truncating": padding, **more})


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
@pytest.mark.parametrize("pooling, padding", [("masked-max", "pre"), ("last", "post")])
def test_the_joined_model_is_the_softmax_of_the_weighed_logits(pooling, padding):
    import keras

    from rnncli.model import runtime as tf_runtime
    from rnncli.model.build import build_model
    from rnncli.train.head import attach_head, fit_head

    tf_runtime.import_tensorflow()
    keras.utils.set_random_seed(0)
    cfg = small_config(pooling, padding)
    network = build_model(cfg, classes=3)
    rows, y = class_rows(300, 3, seed=4)
    x = text.pad_sequences(rows, MAXLEN, padding, padding)
    head = fit_head(x[:200], y[:200], NUM_WORDS, seed=0, classes=3)
    join = attach_head(network, cfg, head, x[200:], y[200:], seed=0)
    joined, details = join.model, join.details
    a, b, c = details["network_weight"], details["head_weight"], details["class_bias"]
    # The network's softmax gives its logits up to a constant per review, which no softmax
    # sees: compare logits centred per review.
    net = np.log(np.asarray(network(x[200:], training=False), np.float64))
    want = a * net + b * head.logits(x[200:]) + np.array(c)
    got = np.asarray(keras.Model(joined.input, joined.get_layer("logit").output)(x[200:]),
                     np.float64)

    def centred(z):
        return z - z.mean(1, keepdims=True)

    np.testing.assert_allclose(centred(got), centred(want), atol=1e-4)
    p = np.asarray(joined(x[200:], training=False), np.float64)
    np.testing.assert_allclose(p, np.exp(got) / np.exp(got).sum(1, keepdims=True), atol=1e-6)
    accuracy = details["val_accuracy"]
    assert accuracy["both"]["whole"] == (p.argmax(1) == y[200:]).mean()
    assert accuracy["head"]["whole"] > 0.7 and b > 0  # the marker word: the head's to read
    assert set(accuracy) == {"network", "head", "both"}


# (cell, bidirectional, pooling, padding, labels): both paddings, masked and unmasked.
EXPORT_COMBOS = [("gru", True, "masked-max", "pre", 3), ("simple", False, "last", "post", 4),
                 ("lstm", False, "max", "pre", 4), ("gru", False, "masked-mean", "post", 3)]
KINDS = ("hybrid", "unrolled", "native", "native-folded")
ATOL = 1e-5


def head_model(cell, bidirectional, pooling, padding, classes, seed=0):
    """A K-label model with the head, every weight random (small enough that the softmax
    does not saturate)."""
    import keras

    from rnncli.model.build import build_model

    cfg = small_config(pooling, padding, cell=cell, bidirectional=bidirectional)
    keras.utils.set_random_seed(seed)
    model = build_model(cfg, ngram_head=True, classes=classes)
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.normal(0, 0.5, w.shape).astype(np.float32))
    return model, cfg


def padded(rows, width: int, padding: str) -> np.ndarray:
    return text.pad_sequences(rows, width, padding, padding, start=None)


def reviews(rng, lengths) -> list[np.ndarray]:
    """A start marker then words: with NUM_WORDS words, rows repeat words and pairs."""
    return [np.array([text.START, *rng.integers(2, NUM_WORDS, n - 1)], np.int32)
            for n in lengths]


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
@pytest.mark.parametrize("combo", EXPORT_COMBOS, ids=lambda c: "-".join(map(str, c)))
def test_every_graph_kind_and_int8_give_keras_probabilities(combo):
    import onnxruntime as ort

    from rnncli.export.graph import build_graph
    from rnncli.export.ngram import TABLE
    from rnncli.export.quantize import quantize_weights
    from rnncli.model import runtime as tf_runtime

    tf_runtime.import_tensorflow()
    *settings, classes = combo
    model, cfg = head_model(*settings, classes)
    pad = cfg.data.padding
    rng = np.random.default_rng(1)
    long = reviews(rng, [MAXLEN, 1, *rng.integers(2, MAXLEN + 1, 14)])
    x = padded(long, MAXLEN, pad)
    want = np.asarray(model(x, training=False), np.float64)
    assert want.shape == (16, classes) and want.max() < 0.999  # not saturated
    short = [(i, r) for i, r in enumerate(long) if len(r) < MAXLEN][:5]

    def worst(proto) -> float:
        sess = ort.InferenceSession(proto.SerializeToString(),
                                    providers=["CPUExecutionProvider"])

        def diff(ids, expected):
            got = sess.run(["probability"], {"ids": ids})[0]
            assert got.shape == expected.shape
            return float(np.max(np.abs(got - expected)))

        # The full batch (the hybrid's unrolled branch), a few rows (its native branch),
        # and short rows alone, unpadded.
        return max(diff(x, want), diff(x[:3], want[:3]),
                   *(diff(padded([r], len(r), pad), want[[i]]) for i, r in short))

    diffs = {}
    for kind in KINDS:
        proto = build_graph(model, cfg, kind)
        assert proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value == classes
        diffs[kind] = worst(proto)
        if kind == "native":
            done = {t["name"]: t for t in quantize_weights(proto)}
            assert done[TABLE]["dequantized"] == "at lookup"
            inits = {i.name: i for i in proto.graph.initializer}
            # A row per key (its idf, its K weights), a scale per column.
            assert list(inits[TABLE + "/int8"].dims) == [NUM_WORDS + BUCKETS, 1 + classes]
            assert list(inits[TABLE + "/scale"].dims) == [1, 1 + classes]
            diffs["native int8"] = worst(proto)
    print(combo, {k: f"{v:.1e}" for k, v in diffs.items()})
    assert diffs.pop("native int8") < 0.02
    assert max(diffs.values()) <= ATOL, diffs
    with pytest.raises(Exception, match="n-gram head needs --opset 16"):
        build_graph(model, cfg, "native", opset=15)


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_a_head_that_does_not_fit_the_labels_is_refused():
    import keras

    from rnncli.errors import GraphUnsupported
    from rnncli.export.weights import check_model
    from rnncli.model import runtime as tf_runtime
    from rnncli.model.layers import ngram_layer
    from rnncli.model.ngram import LAYER

    tf_runtime.import_tensorflow()
    model, cfg = head_model("gru", False, "last", "pre", 3)
    check_model(model, cfg)
    dense = model.get_layer("dense").output
    # A binary head's [batch, 1] logit broadcast over 3 labels: not the same computation.
    binary = ngram_layer()(NUM_WORDS, name=LAYER)(model.input)
    logit = keras.layers.Add(name="logit")([dense, binary])
    softmax = keras.layers.Activation("softmax", name="output")(logit)
    with pytest.raises(GraphUnsupported, match="not \\[keys, 3\\]"):
        check_model(keras.Model(model.input, softmax), cfg)
    sigmoid = keras.layers.Activation("sigmoid", name="output")(model.get_layer("logit").output)
    with pytest.raises(GraphUnsupported, match="not the softmax over 3 labels"):
        check_model(keras.Model(model.input, sigmoid), cfg)


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_train_with_the_head_on_three_labels_then_export_and_predict(_isolated, tmp_path):
    from test_train_classes import SMALL, THREE, own_dataset

    from rnncli.config import run_files
    from rnncli.model.ngram import LAYER
    from rnncli.model.runtime import load_keras_model

    own_dataset(_isolated, "tickets", THREE, per_label=50)
    res = invoke("train", "--dataset", "tickets", *SMALL, "--epochs", "2", "--batch-size",
                 "16", "--learning-rate", "0.01", "--ngram-head", "--output", "run")
    assert res.exit_code == 0, res.output
    assert "n-gram head joined" in res.stdout
    run = tmp_path / "run"
    details = json.loads((run / run_files.HEAD_JSON).read_text())
    print("val_accuracy", details["val_accuracy"])
    assert len(details["class_bias"]) == 3
    for name in ("network", "head", "both"):
        assert set(details["val_accuracy"][name]) == {"whole", "windows"}
    # The class words give each label away: the head reads them from 50 tickets a label.
    assert details["val_accuracy"]["head"]["whole"] > 0.6
    model = load_keras_model(run / run_files.MODEL)
    assert model.output_shape == (None, 3)
    assert model.get_layer(LAYER).get_weights()[0].shape[1] == 3
    res = invoke("export", "onnx", "--model", "run", "--quantize", "--text-input",
                 "--reviews", "60", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    print({c["graph"]: (c["status"], c.get("max_abs_diff")) for c in report["candidates"]})
    valid = [c for c in report["candidates"] if c["status"] == "valid"]
    assert {"hybrid", "native", "native-folded", "unrolled"} <= {c["graph"] for c in valid}
    assert all(c["max_abs_diff"] <= ATOL for c in valid)
    assert report["text_input"]["max_abs_diff"] <= ATOL
    assert report["quantized"]["argmax_agreement"] >= 0.9
    reviews = ["refund the charge please", "my login is locked again", "crash error today"]
    got = []
    for path in (run / run_files.ONNX, run / "model.int8.onnx", run / run_files.ONNX_TEXT):
        res = invoke("predict", "--model", path, *reviews, "--format", "jsonl",
                     "--all-probabilities")
        assert res.exit_code == 0, res.output
        out = [json.loads(line) for line in res.stdout.splitlines()]
        assert all(list(r["probabilities"]) == THREE for r in out)
        got.append([r["label"] for r in out])
    assert got[0] == got[2]
