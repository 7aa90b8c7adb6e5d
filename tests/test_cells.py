"""The cell and pooling registries, without TensorFlow: the one step function per cell gives
the same numbers on its numpy and ONNX backends, gate blocks map as ONNX orders them, and an
unknown cell or pooling is an error everywhere."""

import numpy as np
import pytest
from conftest import builder_session

from rnncli.config import settings as config
from rnncli.errors import UsageError
from rnncli.model import cells, poolings
from rnncli.model.build import unroll_for


def test_config_and_help_read_the_registries():
    assert config.CELLS == tuple(cells.CELLS) == ("simple", "lstm", "gru")
    assert config.POOLINGS == tuple(poolings.POOLINGS)
    from typer.testing import CliRunner

    from rnncli.cli import app

    help_text = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).stdout
    for name in (*cells.CELLS, *poolings.POOLINGS):
        assert name in help_text
    # The option help is written from the registries, not restated beside them.
    fields = config.settings()
    for key, registry in (("cell", cells.CELLS), ("pooling", poolings.POOLINGS)):
        for name, entry in registry.items():
            assert f"{name}: {entry.help}" in fields[key].help


@pytest.mark.parametrize("lookup, name", [(cells.get_cell, "rnn"), (poolings.get_pooling, "sum")])
def test_unknown_names_are_errors_not_fallbacks(lookup, name):
    with pytest.raises(UsageError, match=f"{name!r}: use "):
        lookup(name)


@pytest.mark.parametrize("field, value", [("cell", "rnn"), ("pooling", "sum")])
def test_config_refuses_unknown_names(field, value):
    with pytest.raises(UsageError, match=repr(value)):
        config.resolve(overrides={field: value})


def test_lstm_gate_blocks_follow_onnx_order():
    lstm = cells.get_cell("lstm")
    keras_blocks = np.repeat(np.arange(4), 2)[None, :]  # i i f f c c o o
    assert lstm.to_onnx(keras_blocks).tolist() == [[0, 0, 3, 3, 1, 1, 2, 2]]  # i o f c
    for name in ("simple", "gru"):
        m = np.arange(6 * cells.get_cell(name).gates).reshape(2, -1)
        assert np.array_equal(cells.get_cell(name).to_onnx(m), m)


@pytest.mark.parametrize("name", list(cells.CELLS))
def test_numpy_and_onnx_backends_of_the_step_agree(name):
    """Two steps of the cell from a random state, on numpy and as ONNX nodes in onnxruntime."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from rnncli.export.ops import GraphBuilder, OnnxOps

    cell = cells.get_cell(name)
    rng = np.random.default_rng(0)
    n, units, g_h = 5, 3, cell.gates * 3
    xw = rng.normal(size=(2, n, g_h)).astype(np.float32)
    state = tuple(rng.normal(size=(n, units)).astype(np.float32) for _ in range(cell.states))
    recurrent = rng.normal(size=(units, g_h)).astype(np.float32)
    recurrent_bias = rng.normal(size=g_h).astype(np.float32)

    o = cells.NumpyOps()
    expected = tuple(np.asarray(s, np.float64) for s in state)
    for t in range(2):
        expected = cell.step(o, xw[t].astype(np.float64), expected, recurrent, recurrent_bias)

    g = GraphBuilder(17)
    names = [f"s{k}" for k in range(cell.states)]
    current = tuple(names)
    for t in range(2):
        current = cell.step(OnnxOps(g), g.const(f"xw{t}", xw[t]), current,
                            g.const("R", recurrent), g.const("b", recurrent_bias))
    outs = [g.one("Identity", [c], f"out{k}") for k, c in enumerate(current)]
    sess = builder_session(
        g, "step", [helper.make_tensor_value_info(s, TensorProto.FLOAT, [n, units])
                    for s in names],
        [helper.make_tensor_value_info(o_, TensorProto.FLOAT, [n, units]) for o_ in outs])
    got = sess.run(outs, dict(zip(names, state)))
    for g_out, e in zip(got, expected):
        np.testing.assert_allclose(g_out, e, atol=1e-5)


def test_run_steps_starts_from_zeros_and_keeps_every_state():
    cell = cells.get_cell("gru")
    w = cells.CellWeights(np.ones((2, 6), np.float32), np.zeros((2, 6), np.float32),
                          np.zeros(6, np.float32), np.zeros(6, np.float32))
    run = cells.run_steps(cell, w, np.zeros((4, 2)))
    assert len(run) == 5 and all(np.array_equal(s[0], np.zeros(2)) for s in run)
    # zero input and weights: z = r = 0.5, candidate 0, so the state halves toward 0 from 1
    run = cells.run_steps(cell, w, np.zeros((2, 2)), (np.ones(2),))
    np.testing.assert_allclose([s[0][0] for s in run], [1.0, 0.5, 0.25])


def test_masked_poolings_are_the_ones_that_cut_batches():
    masked = [p.name for p in poolings.POOLINGS.values() if p.masked]
    assert masked == ["masked-max", "masked-mean"] == list(config.MASKED_POOLINGS)
    for name in masked:
        cfg = config.resolve(overrides={"pooling": name})
        assert config.bucket_for(cfg) and not unroll_for(cfg)
        assert config.resolve(overrides={"bucket": True, "pooling": name}).train.bucket
        with pytest.raises(UsageError, match="masked pooling on a bidirectional"):
            config.resolve(overrides={"pooling": name, "unroll": True, "bidirectional": True})
    for name in ("last", "max", "mean"):
        assert not config.bucket_for(config.resolve(overrides={"pooling": name}))
        with pytest.raises(UsageError, match="--bucket .* masked-max or masked-mean"):
            config.resolve(overrides={"bucket": True, "pooling": name})
