"""The pooling registry: each reduction, written once against the ops interface, gives the same
numbers on numpy, as ONNX nodes (one time-major tensor, as the native graphs pool, or one
tensor per step, as the unrolled graph does) and as rnncli's Keras layer; split totals add
back up (the pad states); every custom layer is registered from the registry; masked-mean
end to end, on synthetic and on real reviews.

The graph kinds against Keras for every pooling are in test_export_matrix.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import NO_ARCHIVE, REAL_ARCHIVE, builder_session, fetched_home, invoke, trained_run

from rnncli.model import cells, poolings

REDUCED = [name for name, p in poolings.POOLINGS.items() if p.reduction is not None]
STEPS, ROWS, FEATURES = 7, 5, 3
HAND_BUILT = ("hybrid", "native-folded", "native", "unrolled")


def outputs_and_masks(seed: int = 0):
    """Time-major outputs [steps, rows, features] and masks [steps, rows, 1]: row 0 has
    every step real, row 1 none, the others a random mix."""
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(STEPS, ROWS, FEATURES))
    real = rng.random((STEPS, ROWS, 1)) < 0.5
    real[:, 0], real[:, 1] = True, False
    real[0, 2:] = True  # every other row has a real token
    return h, real


def numpy_pooled(name: str, h, real):
    pool = poolings.get_pooling(name)
    masks = real if pool.masked else None
    return pool.over_time(cells.NumpyOps(), h, masks, STEPS, any_real=real.any(axis=0))


def test_every_entry_is_whole_and_masked_mean_is_one_more():
    assert list(poolings.POOLINGS) == ["last", "max", "mean", "masked-max", "masked-mean"]
    for pool in poolings.POOLINGS.values():
        # The last state needs no layer; every reduction has one.
        assert (pool.reduction is None) is (pool.keras_layer is None), pool.name
        if pool.reduction:
            r = pool.reduction
            assert set(r.by) <= {"max", "sum"} and callable(r.keep) and callable(r.finish)
        # Masked poolings skip pads, which no keras.layers pooling does.
        assert pool.custom_layer is pool.masked, pool.name
    assert poolings.LOWEST == float(np.finfo(np.float32).min)


@pytest.mark.parametrize("name", REDUCED)
def test_numpy_definition_is_the_pooling_it_names(name):
    """Against plain numpy: pads are steps for max and mean, skipped for the masked ones,
    and a row without a real token gives zeros."""
    h, real = outputs_and_masks()
    got = numpy_pooled(name, h, real)
    expected = np.zeros((ROWS, FEATURES))
    for r in range(ROWS):
        steps = h[:, r] if not name.startswith("masked") else h[real[:, r, 0], r]
        if len(steps):
            expected[r] = steps.max(axis=0) if name.endswith("max") else steps.mean(axis=0)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    if name.startswith("masked"):
        assert np.all(got[1] == 0) and np.all(np.isfinite(got))


@pytest.mark.parametrize("name", REDUCED)
def test_numpy_and_onnx_backends_of_the_reduction_agree(name):
    """The native graphs' form (one [steps, rows, features] tensor) and the unrolled
    graph's (one tensor per step) in onnxruntime against numpy."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from rnncli.export.ops import GraphBuilder, OnnxOps

    pool = poolings.get_pooling(name)
    h, real = outputs_and_masks(1)
    g = GraphBuilder(17)
    ops = OnnxOps(g)
    masks = "real" if pool.masked else None
    stacked = pool.over_time(ops, "h", masks, STEPS, any_real="any_real")
    per_step = [g.one("Gather", ["h", g.int64(f"t{t}", t)]) for t in range(STEPS)]
    step_masks = [g.one("Gather", ["real", f"t{t}"]) for t in range(STEPS)] if masks else []
    listed = pool.over_time(ops, per_step, step_masks, STEPS, any_real="any_real")
    outs = [g.one("Identity", [stacked], "stacked"), g.one("Identity", [listed], "listed")]
    inputs = [helper.make_tensor_value_info("h", TensorProto.FLOAT, [STEPS, ROWS, FEATURES]),
              helper.make_tensor_value_info("real", TensorProto.BOOL, [STEPS, ROWS, 1]),
              helper.make_tensor_value_info("any_real", TensorProto.BOOL, [ROWS, 1])]
    sess = builder_session(
        g, "pool", inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [ROWS, FEATURES]) for o in outs])
    feed = {"h": h.astype(np.float32), "real": real, "any_real": real.any(axis=0)}
    expected = numpy_pooled(name, h.astype(np.float32).astype(np.float64), real)
    for got in sess.run(outs, feed):
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in REDUCED if not poolings.POOLINGS[n].masked])
def test_totals_of_skipped_steps_merge_into_the_rest(name):
    """What pad states rely on: the running totals of the first k steps (the same `keep`
    on numpy), merged into the totals of the rest, give the pooling of all steps."""
    pool, o = poolings.get_pooling(name), cells.NumpyOps()
    h, real = outputs_and_masks(2)
    whole = numpy_pooled(name, h, real)
    tables = [o.running_total(v, by) for v, by in zip(pool.reduction.keep(o, h, None),
                                                     pool.reduction.by)]
    assert all(t.shape == (STEPS + 1, ROWS, FEATURES) for t in tables)
    for k in range(STEPS):
        got = pool.over_time(o, h[k:], None, STEPS, skipped=[t[k] for t in tables])
        np.testing.assert_allclose(got, whole, atol=1e-12)


def test_masked_poolings_refuse_to_pool_without_their_masks():
    with pytest.raises(ValueError, match="needs the masks"):
        poolings.get_pooling("masked-mean").over_time(cells.NumpyOps(), np.zeros((2, 1, 1)),
                                                      None, 2)
    with pytest.raises(ValueError, match="last state"):
        poolings.get_pooling("last").over_time(cells.NumpyOps(), np.zeros((2, 1, 1)), None, 2)


# Below: Keras. TensorFlow is imported inside the tests, so collecting stays fast.


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
@pytest.mark.parametrize("name", REDUCED)
def test_keras_layer_matches_the_numpy_definition(name):
    import keras

    from rnncli.model.layers import pooling_layer

    pool = poolings.get_pooling(name)
    h, real = outputs_and_masks(3)
    layer = pooling_layer(pool)(name="pool")
    x = np.transpose(h, (1, 0, 2)).astype(np.float32)  # Keras: [rows, steps, features]
    expected = numpy_pooled(name, h.astype(np.float32).astype(np.float64), real)
    if pool.masked:
        mask = np.transpose(real[..., 0])
        got = layer(keras.ops.convert_to_tensor(x), mask=keras.ops.convert_to_tensor(mask))
        np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5)
        # Without a mask every step is real.
        everything = np.ones_like(real)
        np.testing.assert_allclose(np.asarray(layer(x)), numpy_pooled(name, h, everything),
                                   atol=1e-5)
    else:
        np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_register_all_registers_every_custom_layer_the_registry_names():
    import keras

    from rnncli.model.layers import ngram_layer, pooling_layer, register_all

    register_all()
    custom = [p for p in poolings.POOLINGS.values() if p.custom_layer]
    assert {p.name for p in custom} == {"masked-max", "masked-mean"}
    for pool in custom:
        cls = keras.saving.get_registered_object(pool.keras_layer)
        assert cls is pooling_layer(pool) and cls.__name__ == pool.keras_layer.split(">")[1]
    assert keras.saving.get_registered_object("rnncli>NgramLogit") is ngram_layer()


@pytest.fixture(scope="module")
def masked_mean_run(tmp_path_factory):
    """A tiny bidirectional GRU with masked-mean pooling, trained for one epoch."""
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("masked-mean")
    home = fetched_home(root)
    run = trained_run(root, home, "--maxlen", "20", "--num-words", "40", "--units", "3",
                      "--embedding-dim", "4", "--cell", "gru", "--bidirectional", "--pooling",
                      "masked-mean", "--batch-size", "8", "--epochs", "1", "--no-jit")
    return home, run


def keras_probabilities(run, texts):
    """Keras on the plain path: each review padded to maxlen."""
    from rnncli.config import run_files
    from rnncli.model.runtime import load_keras_model
    from rnncli.serve.locate import keras_preprocessing

    x, _ = keras_preprocessing(run / run_files.MODEL).encode(texts)
    return load_keras_model(run / run_files.MODEL).predict(x, batch_size=1024, verbose=0).ravel()


def candidates(res) -> dict:
    assert res.exit_code == 0, res.output
    return {c["graph"]: c for c in json.loads(res.stdout)["candidates"]}


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_masked_mean_model_exports_every_graph_and_serves_trimmed_batches(masked_mean_run):
    from rnncli.config import run_files
    from rnncli.serve.onnx_model import OnnxModel

    home, run = masked_mean_run
    assert json.loads((run / run_files.CONFIG).read_text())["model"]["pooling"] == "masked-mean"
    by_name = candidates(invoke("export", "onnx", "--model", run, "--data-dir", home, "--json"))
    for name in HAND_BUILT:
        assert by_name[name]["status"] == "valid", by_name[name]
    model = OnnxModel(run / run_files.ONNX)
    assert model.preprocessing.trim_padding
    texts = ["great", "awful boring waste of a film, hated it", "the plot was moving", "zzz"]
    expected = keras_probabilities(run, texts)
    short, _ = model.preprocessing.encode(texts, trim=True)
    np.testing.assert_allclose(model.predict_ids(short), expected, atol=1e-5)
    np.testing.assert_allclose([p.probability for p in model.predict_texts(texts)], expected,
                               atol=1e-5)


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_a_saved_masked_mean_model_loads_in_a_fresh_process(masked_mean_run):
    """The loader registers the layer from the registry: no process that built the model."""
    from rnncli.config import run_files

    _, run = masked_mean_run
    texts = ["a moving film", "", "awful"]
    code = ("import json, pathlib, sys, numpy as np\n"
            "from rnncli.model.runtime import load_keras_model\n"
            "from rnncli.serve.locate import keras_preprocessing\n"
            "path = pathlib.Path(sys.argv[1])\n"
            "x, _ = keras_preprocessing(path).encode(json.loads(sys.argv[2]))\n"
            "m = load_keras_model(path)\n"
            "print(type(m.get_layer('pool')).__name__)\n"
            "print(json.dumps(np.asarray(m.predict(x, verbose=0)).ravel().tolist()))\n")
    res = subprocess.run([sys.executable, "-c", code, str(run / run_files.MODEL),
                          json.dumps(texts)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    name, probs = res.stdout.strip().splitlines()[-2:]
    assert name == "MaskedGlobalAveragePooling1D"
    np.testing.assert_allclose(json.loads(probs), keras_probabilities(run, texts), atol=1e-6)


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.usefixtures("training_extra")
@pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason=NO_ARCHIVE)
def test_masked_mean_matches_keras_on_real_reviews(real_home, tmp_path):
    """Every hand-built kind checked by the export on all 25,000 real test reviews (padded,
    and 200 trimmed), then the chosen file served on them in trimmed, sorted batches."""
    from rnncli.config import run_files
    from rnncli.data import store as dataset
    from rnncli.serve.onnx_model import OnnxModel

    run = trained_run(tmp_path, real_home, "--epochs", "1", "--limit", "5000", "--cell", "gru",
                      "--bidirectional", "--units", "8", "--pooling", "masked-mean")
    res = invoke("export", "onnx", "--model", run, "--data-dir", real_home, "--json")
    by_name = candidates(res)
    report = json.loads(res.stdout)
    assert report["validated_reviews"] == 25_000 and report["real_reviews"], report
    for name in HAND_BUILT:
        assert by_name[name]["status"] == "valid", by_name[name]
        assert by_name[name]["max_abs_diff"] <= 1e-5
    texts = dataset.load_split(real_home, "test").texts()
    model = OnnxModel(run / run_files.ONNX, workers=2)
    assert model.preprocessing.trim_padding
    got = list(model.predict_stream(iter(texts)))
    assert [p.text for p in got] == texts
    np.testing.assert_allclose([p.probability for p in got], keras_probabilities(run, texts),
                               atol=1e-5)
