"""Serving paths on exported Keras models: trimmed, sorted and parallel streams match Keras."""

import numpy as np
import pytest
from conftest import NO_ARCHIVE, REAL_ARCHIVE, TRAINS, cli, own_run, trained_run

from rnncli.config import run_files
from rnncli.text import tokenizer as text

pytestmark = TRAINS


def export_graphs(run, home, graphs):
    for graph in graphs:
        cli("export", "onnx", "--model", run, "--data-dir", home, "--graph", graph,
            "--output", run / f"{graph}.onnx")
    return run


def keras_reference(run, texts):
    """Keras on the plain path: each review tokenized alone and padded to maxlen."""
    from rnncli.model.runtime import load_keras_model
    from rnncli.serve.locate import keras_preprocessing

    prep = keras_preprocessing(run / run_files.MODEL)
    vocab = text.Vocabulary(prep.vocabulary)
    ids = [vocab.encode(text.tokenize(t), prep.num_words) for t in texts]
    x = text.pad_sequences(ids, prep.maxlen, prep.padding, prep.truncating)
    return load_keras_model(run / run_files.MODEL).predict(x, batch_size=1024, verbose=0).ravel()


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """A tiny recipe-shaped model and its graphs: two that trim padding, one that does not."""
    home, run = own_run(tiny_run, tmp_path_factory.mktemp("serve"))
    export_graphs(run, home, ("native", "hybrid", "unrolled"))
    return run


@pytest.mark.parametrize("graph, trims", [("native", True), ("hybrid", True),
                                          ("unrolled", True)])
def test_streams_match_keras_in_input_order(exported, graph, trims):
    from conftest import synthetic_reviews

    from rnncli.serve.onnx_model import OnnxModel

    texts = [r[4] for r in synthetic_reviews(40, seed=5)]
    texts += [" ".join(texts[i : i + 3]) for i in range(0, 60, 3)] + ["", "great", "zzz"]
    expected = keras_reference(exported, texts)
    for workers in (1, 2):
        model = OnnxModel(exported / f"{graph}.onnx", workers=workers)
        assert model.preprocessing.trim_padding is trims
        for window, batch_size in ((24, 4), (None, 256)):
            got = list(model.predict_stream(iter(texts), batch_size, window=window))
            assert [p.text for p in got] == texts
            np.testing.assert_allclose([p.probability for p in got], expected, atol=1e-5)
        got = model.predict_texts(texts, batch_size=16)
        np.testing.assert_allclose([p.probability for p in got], expected, atol=1e-5)


@pytest.mark.real_data
@pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason=NO_ARCHIVE)
def test_streams_match_keras_on_all_real_test_reviews(real_home, tmp_path):
    from rnncli.data import store as dataset
    from rnncli.serve.onnx_model import OnnxModel

    run = trained_run(tmp_path, real_home, "--epochs", "1", "--limit", "5000")
    export_graphs(run, real_home, ("hybrid",))
    texts = dataset.load_split(real_home, "test").texts()
    assert len(texts) == 25_000
    expected = keras_reference(run, texts)
    model = OnnxModel(run / "hybrid.onnx", workers=2)
    got = list(model.predict_stream(iter(texts)))
    assert [p.text for p in got] == texts
    np.testing.assert_allclose([p.probability for p in got], expected, atol=1e-5)
