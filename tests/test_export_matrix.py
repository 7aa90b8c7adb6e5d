"""Every hand-built graph kind against Keras, for every cell x direction x pooling x depth.

Tiny Keras models with random weights (biases included, so a swapped bias or gate block
shows), no training. Each graph is checked on a batch padded to maxlen (the hybrid's
unrolled branch), a few rows of it (its native branch), a batch of short reviews padded
only to their own longest (mixed lengths), and each short review alone. TensorFlow is
imported inside the fixtures, so collecting this module stays fast.
"""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest

from rnncli.config.settings import RunConfig, apply
from rnncli.model import cells, poolings

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                 reason="needs the [train] extra")]

NUM_WORDS, MAXLEN = 30, 12
KINDS = ("hybrid", "native-folded", "native", "unrolled")
COMBOS = list(itertools.product(cells.CELLS, ("uni", "bi"), poolings.POOLINGS, (1, 2)))
ATOL = 1e-5


def combo_id(combo) -> str:
    return "-".join(map(str, combo))


def make_config(cell, direction, pooling, layers, padding="pre") -> RunConfig:
    return apply(RunConfig(), dict(cell=cell, bidirectional=direction == "bi", pooling=pooling,
                                   layers=layers, num_words=NUM_WORDS, maxlen=MAXLEN, units=3,
                                   embedding_dim=4, padding=padding, truncating=padding))


def padded(rows: list[np.ndarray], width: int, padding: str) -> np.ndarray:
    x = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
        if len(r) and padding == "pre":
            x[i, width - len(r):] = r
        elif len(r):
            x[i, :len(r)] = r
    return x


def reviews(rng, lengths) -> list[np.ndarray]:
    """A start marker (1) then words (ids 2..NUM_WORDS-1), as the data pipeline encodes."""
    return [np.concatenate([[1], rng.integers(2, NUM_WORDS, n - 1)]).astype(np.int32)
            if n else np.zeros(0, np.int32) for n in lengths]


class Case:
    """A random-weight Keras model and its outputs on the batches every graph is fed."""

    def __init__(self, cfg: RunConfig, seed: int, ngram_head: bool | int = False):
        """`ngram_head` True: the head new models get; a number: a head of that order (2: a
        model from before triples)."""
        import keras

        from rnncli.model.build import build_model
        from rnncli.model.ngram import BUCKETS, HEAD_ORDER

        keras.utils.set_random_seed(seed)
        order = HEAD_ORDER if ngram_head is True else int(ngram_head)
        self.cfg, self.model = cfg, build_model(cfg, ngram_head=bool(ngram_head),
                                                head_table=(BUCKETS, order))
        rng = np.random.default_rng(seed)
        for w in self.model.weights:
            w.assign(rng.normal(0, 0.7, w.shape).astype(np.float32))
        pad = cfg.data.padding
        # 16 rows (more than the hybrid's small batch): one full, one with no token at all;
        # with NUM_WORDS words, rows repeat words and word pairs (the n-gram head counts them).
        long = reviews(rng, [MAXLEN, 0, *rng.integers(1, MAXLEN + 1, 14)])
        self.x = padded(long, MAXLEN, pad)
        self.short = reviews(rng, [1, 2, 7, 4, 5, 3])  # mixed lengths, all < MAXLEN
        self.x_trimmed = padded(self.short, 7, pad)
        self.expected = self.keras(self.x)
        self.expected_short = self.keras(padded(self.short, MAXLEN, pad))

    def keras(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(x, training=False), np.float64)


@pytest.fixture(scope="module")
def case():
    from rnncli.model import runtime as tf_runtime

    tf_runtime.import_tensorflow()
    made: dict[tuple, Case] = {}

    def get(*combo, padding="pre", ngram_head=False) -> Case:
        key = (*combo, padding, ngram_head)
        if key not in made:
            made[key] = Case(make_config(*combo, padding=padding), seed=len(made),
                             ngram_head=ngram_head)
        return made[key]

    return get


def session(proto):
    import onnxruntime as ort

    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def worst_diff(sess, c: Case) -> dict[str, float]:
    def diff(x, expected):
        got = sess.run(["probability"], {"ids": x})[0]
        assert got.shape == expected.shape
        return float(np.max(np.abs(got - expected)))

    pad = c.cfg.data.padding
    return {"padded batch": diff(c.x, c.expected),
            "small padded batch": diff(c.x[:3], c.expected[:3]),
            "trimmed batch": diff(c.x_trimmed, c.expected_short),
            "single trimmed reviews": max(diff(padded([r], len(r), pad), e[None])
                                          for r, e in zip(c.short, c.expected_short))}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_graph_matches_keras(case, combo, kind):
    from rnncli.export.graph import build_graph

    c = case(*combo)
    diffs = worst_diff(session(build_graph(c.model, c.cfg, kind)), c)
    assert max(diffs.values()) <= ATOL, diffs


@pytest.mark.parametrize("combo", [("simple", "uni", "last", 1), ("lstm", "bi", "max", 1),
                                   ("gru", "uni", "mean", 2), ("gru", "bi", "masked-max", 1),
                                   ("lstm", "uni", "masked-mean", 2),
                                   ("gru", "bi", "masked-mean", 1)],
                         ids=combo_id)
@pytest.mark.parametrize("kind", ["native", "unrolled"])
def test_post_padding_matches_keras(case, combo, kind):
    from rnncli.export.graph import build_graph

    c = case(*combo, padding="post")
    diffs = worst_diff(session(build_graph(c.model, c.cfg, kind)), c)
    assert max(diffs.values()) <= ATOL, diffs


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("combo", [("gru", "bi", "masked-max", 1), ("simple", "uni", "last", 1),
                                   ("lstm", "uni", "max", 2), ("simple", "bi", "masked-mean", 1)],
                         ids=combo_id)
@pytest.mark.parametrize("kind", KINDS)
def test_ngram_head_matches_keras(case, combo, kind, padding):
    """The n-gram head's logit (counts of repeated keys, pairs across pads) in every kind."""
    from rnncli.export.graph import build_graph

    c = case(*combo, padding=padding, ngram_head=True)
    diffs = worst_diff(session(build_graph(c.model, c.cfg, kind)), c)
    assert max(diffs.values()) <= ATOL, diffs
    with pytest.raises(Exception, match="n-gram head needs --opset 16"):
        build_graph(c.model, c.cfg, kind, opset=15)


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_a_head_of_words_and_pairs_exports_as_it_was_made(case, padding):
    """A model whose head predates triples keeps its keys in the graph (no triple node)."""
    from rnncli.export.graph import build_graph
    from rnncli.export.ngram import THIRD

    c = case("gru", "bi", "masked-max", 1, padding=padding, ngram_head=2)
    assert c.model.get_layer("ngram").order == 2
    proto = build_graph(c.model, c.cfg, "native")
    assert not any(n.name.endswith(THIRD) for n in proto.graph.node)
    diffs = worst_diff(session(proto), c)
    assert max(diffs.values()) <= ATOL, diffs
    new = case("gru", "bi", "masked-max", 1, padding=padding, ngram_head=True)
    assert any(n.name.endswith(THIRD) for n in build_graph(new.model, new.cfg,
                                                                   "native").graph.node)


@pytest.mark.parametrize("combo", COMBOS[::5], ids=combo_id)
def test_pad_steps_are_skipped_exactly_where_claimed(case, combo):
    """The native graph pads rows back to maxlen (a Pad node) only where it says it cannot
    skip them, with the reason; masked models never do."""
    from rnncli.export.graph import build_graph, full_length_reason, serving_metadata

    c = case(*combo)
    meta = serving_metadata("native", c.cfg)
    pads_back = any(n.op_type == "Pad" for n in build_graph(c.model, c.cfg, "native").graph.node)
    skips = meta["rnncli.skips_pad_steps"] == "true"
    assert skips is not pads_back
    masked, bi = poolings.get_pooling(combo[2]).masked, combo[1] == "bi"
    assert skips is (masked or not bi)
    if not skips:
        assert "backward direction" in full_length_reason(c.cfg)
    assert serving_metadata("unrolled", c.cfg)["rnncli.skips_pad_steps"] == "false"
    hybrid = serving_metadata("hybrid", c.cfg)
    assert ("rnncli.full_length_batch" in hybrid) is skips


def test_refusals_name_their_reason(case):
    from rnncli.errors import GraphUnsupported
    from rnncli.export.graph import build_graph

    c = case("gru", "uni", "last", 1)
    lstm_cfg = make_config("lstm", "uni", "last", 1)
    with pytest.raises(GraphUnsupported, match="layer rnn_0 is a GRU, expected LSTM"):
        build_graph(c.model, lstm_cfg, "native")
    with pytest.raises(GraphUnsupported, match="no layer 'rnn_1'"):
        build_graph(c.model, make_config("gru", "uni", "last", 2), "native")
    with pytest.raises(GraphUnsupported, match="no layer 'pool'"):
        build_graph(c.model, make_config("gru", "uni", "max", 1), "native")
    with pytest.raises(GraphUnsupported, match="--opset 15 or later"):
        build_graph(c.model, c.cfg, "native", opset=13)
    with pytest.raises(GraphUnsupported, match="unknown graph kind 'loop'"):
        build_graph(c.model, c.cfg, "loop")


def test_keras_settings_the_step_does_not_implement_are_refused():
    import keras

    from rnncli.errors import GraphUnsupported

    gru = cells.get_cell("gru")
    layer = keras.layers.GRU(3, reset_after=False)
    layer.build((None, 5, 4))
    with pytest.raises(GraphUnsupported, match="reset_after=False"):
        gru.weights(layer)
    relu = keras.layers.SimpleRNN(3, activation="relu")
    relu.build((None, 5, 4))
    with pytest.raises(GraphUnsupported, match="activation='relu'"):
        cells.get_cell("simple").weights(relu)


def test_unrolled_backward_masked_layers_are_refused(case):
    """Keras's unrolled loop misapplies the mask read backwards; such a model is refused."""
    from rnncli.errors import GraphUnsupported
    from rnncli.export.graph import build_graph
    from rnncli.model.build import build_model

    cfg = make_config("simple", "bi", "masked-max", 1)
    cfg.model.unroll = True
    with pytest.raises(GraphUnsupported, match="unroll"):
        build_graph(build_model(cfg), cfg, "native")


@pytest.mark.parametrize("cell, pooling", [("simple", "max"), ("lstm", "mean"), ("gru", "max"),
                                           ("gru", "mean")])
def test_pad_states_follow_the_keras_layer(case, cell, pooling):
    """The numpy step run over pad tokens gives the Keras layer's own states, and the
    pooling's totals over k pads are its reduction's totals over the first k outputs."""
    from rnncli.export.graph import pad_states

    c = case(cell, "uni", pooling, 2)
    tables = pad_states(c.model, c.cfg)
    pads = np.zeros((1, MAXLEN), np.int32)
    import keras

    seq = keras.Model(c.model.input, c.model.get_layer("rnn_1").output)(pads)
    outputs = np.asarray(seq)[0]
    np.testing.assert_allclose(tables.states[1][0][1:], outputs, atol=1e-6)
    (table,) = tables.totals
    assert table.shape == (MAXLEN + 1, outputs.shape[1])
    total = np.max if pooling == "max" else np.sum
    for k in (1, 5, MAXLEN):
        np.testing.assert_allclose(table[k], total(outputs[:k], axis=0), atol=1e-5)
    # No pad skipped: the identity, which leaves the steps' own total as it is.
    assert np.all(table[0] == (np.finfo(np.float32).min if pooling == "max" else 0))
    # k pads' totals merged into the later steps' give Keras's pooling of all of them.
    pooled = np.asarray(c.model.get_layer("pool")(seq))[0]
    pool = poolings.get_pooling(pooling)
    for k in (0, 5, MAXLEN - 1):
        got = pool.over_time(cells.NumpyOps(), outputs[k:], None, MAXLEN, skipped=[table[k]])
        np.testing.assert_allclose(got, pooled, atol=1e-5)
