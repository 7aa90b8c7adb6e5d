"""`--source keras` goes through keras.datasets.imdb; a tiny imdb.npz stands in for the real one."""

import json

import numpy as np
import pytest
from conftest import invoke

from rnncli.data import store as dataset

# Keras (and TensorFlow under it) loads only when these tests run: collecting the fast
# suite stays free of it.
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _keras():
    return pytest.importorskip("keras")


def _ragged(rows):
    arr = np.empty(len(rows), dtype=object)
    arr[:] = [list(r) for r in rows]
    return arr


@pytest.fixture
def keras_cache(tmp_path, monkeypatch):
    folder = tmp_path / "keras" / "datasets"
    folder.mkdir(parents=True)
    # Keras stores word ranks (1-based); the loader adds index_from.
    x_train = _ragged([[1, 2, 3], [4, 2], [1, 1, 1, 5], [3]])
    x_test = _ragged([[2, 5], [1, 4, 4]])
    np.savez(folder / "imdb.npz", x_train=x_train, y_train=np.array([1, 0, 1, 0]),
             x_test=x_test, y_test=np.array([0, 1]))
    (folder / "imdb_word_index.json").write_text(
        json.dumps({"the": 1, "film": 2, "great": 3, "awful": 4, "plot": 5}))
    # Keras reads KERAS_HOME once, at import.
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(tmp_path / "keras"))
    # The stand-in cannot match the pinned checksum; everything else is keras's own path.
    monkeypatch.setattr("keras.src.utils.file_utils.validate_file", lambda *a, **k: True)
    return folder


def test_fetch_keras_source(keras_cache, _isolated):
    res = invoke("data", "fetch", "--source", "keras")
    assert res.exit_code == 0, res.output
    meta = dataset.read_meta(_isolated)
    assert meta["source"] == "keras"
    assert meta["splits"]["train"]["reviews"] == 4 and meta["splits"]["test"]["reviews"] == 2
    train = dataset.load_split(_isolated, "train")
    # Ids follow the Keras convention: rank + 3, and the decode reads back the word index.
    assert sorted(train.tokens.tolist()) == sorted(r + 3 for r in [1, 2, 3, 4, 2, 1, 1, 1, 5, 3])
    vocab = dataset.load_vocabulary(_isolated)
    assert vocab.words[:3] == ["the", "film", "great"]
    decoded = json.loads(invoke("data", "decode", "0", "--json").stdout)
    assert decoded["decoded"].startswith("? ") and decoded["text"] is None


def test_keras_source_offline_is_clean(monkeypatch):
    def offline(*a, **k):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None")

    monkeypatch.setattr("keras.src.datasets.imdb.get_file", offline)
    res = invoke("data", "fetch", "--source", "keras")
    assert res.exit_code == 1
    assert "Cannot get Keras's imdb.npz" in res.stderr and "--from" in res.stderr
