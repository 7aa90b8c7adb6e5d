"""`--source keras`: Keras's imdb.npz and word index, fetched through rnncli's own downloader
and checked against the hashes Keras pins, read without Keras (so without TensorFlow's logs
or Keras's "Downloading data from ..." on stdout). A tiny imdb.npz stands in for the real
one; one slow test checks that Keras itself reads the same splits from it.
"""

import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, one_line_error

from rnncli.data import keras_imdb
from rnncli.data import store as dataset
from rnncli.text import tokenizer as text

ROOT = Path(__file__).resolve().parents[1]
WORD_INDEX = {"the": 1, "film": 2, "great": 3, "awful": 4, "plot": 5}
# Keras stores word ranks (1-based); the loader adds index_from (3).
X_TRAIN = [[1, 2, 3], [4, 2], [1, 1, 1, 5], [3], [2, 2, 4], [5, 1]]
Y_TRAIN = [1, 0, 1, 0, 0, 1]
X_TEST = [[2, 5], [1, 4, 4], [3, 3], [4]]
Y_TEST = [0, 1, 1, 0]


def _ragged(rows):
    arr = np.empty(len(rows), dtype=object)
    arr[:] = [list(r) for r in rows]
    return arr


def npz_bytes(x_train=X_TRAIN, y_train=Y_TRAIN, x_test=X_TEST, y_test=Y_TEST) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x_train=_ragged(x_train), y_train=np.array(y_train),
             x_test=_ragged(x_test), y_test=np.array(y_test))
    return buf.getvalue()


@pytest.fixture
def stand_in(monkeypatch):
    """The stand-in's bytes (npz, word index), pinned in place of the real files' hashes."""
    npz, index = npz_bytes(), json.dumps(WORD_INDEX).encode()
    monkeypatch.setattr(keras_imdb, "NPZ_SHA256", hashlib.sha256(npz).hexdigest())
    monkeypatch.setattr(keras_imdb, "WORD_INDEX_MD5", hashlib.md5(index).hexdigest())
    return npz, index


@pytest.fixture
def keras_cache(tmp_path, stand_in):
    folder = tmp_path / "keras" / "datasets"  # $KERAS_HOME/datasets (conftest sets it)
    folder.mkdir(parents=True)
    (folder / "imdb.npz").write_bytes(stand_in[0])
    (folder / "imdb_word_index.json").write_bytes(stand_in[1])
    return folder


@pytest.fixture
def server(monkeypatch):
    """Serves `files[name]` at the URLs the loader uses; `hits` lists what was asked."""
    files, hits = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            name = self.path.rsplit("/", 1)[1]
            hits.append(name)
            if name not in files:
                return self.send_error(404)
            self.send_response(200)
            self.send_header("Content-Length", str(len(files[name])))
            self.end_headers()
            self.wfile.write(files[name])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_port}/tf-keras-datasets/"
    monkeypatch.setattr(keras_imdb, "NPZ_URL", base + "imdb.npz")
    monkeypatch.setattr(keras_imdb, "WORD_INDEX_URL", base + "imdb_word_index.json")
    yield files, hits
    httpd.shutdown()
    httpd.server_close()


def offline(monkeypatch):
    import urllib.error

    def fail(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", fail)


def expected_split(xs, ys, order):
    """What keras.datasets.imdb.load_data(start_char=None, index_from=3) gives, by hand."""
    return [[w + text.INDEX_FROM for w in xs[i]] for i in order], [ys[i] for i in order]


def keras_orders():
    rng = np.random.RandomState(113)  # one generator: train first, then test
    train = np.arange(len(X_TRAIN))
    rng.shuffle(train)
    test = np.arange(len(X_TEST))
    rng.shuffle(test)
    return {"train": train, "test": test}


def stored(home, split):
    s = dataset.load_split(home, split)
    return [s.review(i).tolist() for i in range(len(s))], s.labels.tolist()


def test_fetch_keras_from_keras_cache_without_network(keras_cache, _isolated, monkeypatch):
    offline(monkeypatch)
    res = invoke("data", "fetch", "--source", "keras")
    assert res.exit_code == 0, res.output
    assert res.stdout == "keras: train 6 reviews, test 4 reviews, vocabulary 5 words\n"
    meta = dataset.read_meta(_isolated)
    assert meta["source"] == "keras" and meta["origin"] == keras_imdb.NPZ_URL
    assert meta["cache"] == str(keras_cache / "imdb.npz")
    orders = keras_orders()
    for split, xs, ys in (("train", X_TRAIN, Y_TRAIN), ("test", X_TEST, Y_TEST)):
        assert stored(_isolated, split) == expected_split(xs, ys, orders[split])
    assert dataset.load_vocabulary(_isolated).words == list(WORD_INDEX)
    decoded = json.loads(invoke("data", "decode", "0", "--json").stdout)
    assert decoded["decoded"].startswith("? ") and decoded["text"] is None
    assert "Already prepared" in invoke("data", "fetch", "--source", "keras").stderr


def test_fetch_keras_downloads_with_the_pinned_checksums(server, stand_in, tmp_path, _isolated):
    files, hits = server
    files["imdb.npz"], files["imdb_word_index.json"] = stand_in
    # A copy in Keras's cache that does not match the pinned hash is not used.
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    (tmp_path / "keras" / "datasets" / "imdb.npz").write_bytes(npz_bytes(y_train=[0] * 6))
    res = invoke("data", "fetch", "--source", "keras")
    assert res.exit_code == 0, res.output
    assert sorted(hits) == ["imdb.npz", "imdb_word_index.json"]
    assert stored(_isolated, "train") == expected_split(X_TRAIN, Y_TRAIN,
                                                        keras_orders()["train"])
    # Cached in the data home, checked, and reused.
    assert invoke("data", "fetch", "--source", "keras", "--force").exit_code == 0
    assert len(hits) == 2
    assert not any(n.name.startswith(".") for n in (_isolated / "downloads").iterdir())


@pytest.mark.parametrize("bad", ["imdb.npz", "imdb_word_index.json"])
def test_a_download_that_does_not_match_its_hash_is_refused(server, stand_in, _isolated, bad):
    files, _ = server
    files["imdb.npz"], files["imdb_word_index.json"] = stand_in
    files[bad] = files[bad] + b" "
    res = invoke("data", "fetch", "--source", "keras")
    url = keras_imdb.NPZ_URL if bad == "imdb.npz" else keras_imdb.WORD_INDEX_URL
    one_line_error(res, f"Checksum mismatch for {url}")
    assert res.stdout == ""
    assert not (_isolated / "keras").exists()
    assert not [p for p in (_isolated / "downloads").iterdir() if bad in p.name]


class Gadget:
    """Unpickled, it would create a file: what a hostile pickle does with a callable."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_that_builds_more_than_arrays_is_refused(keras_cache, monkeypatch, tmp_path):
    marker = tmp_path / "ran"
    rows = np.empty(1, dtype=object)
    rows[0] = Gadget(marker)
    buf = io.BytesIO()
    np.savez(buf, x_train=rows, y_train=np.array([1]), x_test=rows, y_test=np.array([0]))
    (keras_cache / "imdb.npz").write_bytes(buf.getvalue())
    monkeypatch.setattr(keras_imdb, "NPZ_SHA256", hashlib.sha256(buf.getvalue()).hexdigest())
    offline(monkeypatch)
    # Which global the pickle names first depends on numpy's pickle protocol (getattr or
    # pathlib.Path.touch): either way it is refused before anything runs.
    res = invoke("data", "fetch", "--source", "keras")
    one_line_error(res, "Cannot read Keras's imdb.npz (")
    assert "is not part of a numpy array" in res.stderr
    assert not marker.exists()


def test_from_is_refused_with_the_keras_source():
    one_line_error(invoke("data", "fetch", "--source", "keras", "--from", "x.tar.gz"),
                   "--from is for --source aclimdb", code=2)


OFFLINE_FETCH = """
import sys
from rnncli.cli import app
try:
    app(["data", "fetch", "--source", "keras"], prog_name="rnncli")
finally:
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    open(sys.argv[1], "w").write(" ".join(heavy))
"""


def test_keras_source_offline_prints_one_line_and_loads_no_tensorflow(tmp_path):
    # Every download goes through a proxy that is not there: offline, deterministically.
    proxy = "http://127.0.0.1:9"
    env = {**os.environ, "RNNCLI_HOME": str(tmp_path / "home"),
           "KERAS_HOME": str(tmp_path / "keras"), "https_proxy": proxy, "HTTPS_PROXY": proxy,
           "http_proxy": proxy, "HTTP_PROXY": proxy, "no_proxy": "", "NO_PROXY": "",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", OFFLINE_FETCH, str(tmp_path / "modules")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(
        f"Error: Cannot get Keras's imdb.npz (Cannot download {keras_imdb.NPZ_URL} (")
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "--from aclImdb_v1.tar.gz" in done.stderr
    assert (tmp_path / "modules").read_text() == ""


@pytest.mark.slow
def test_keras_reads_the_same_splits(keras_cache, _isolated, monkeypatch):
    """keras.datasets.imdb.load_data on the same files: the same ids, order and labels."""
    pytest.importorskip("keras")
    from keras.datasets import imdb

    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(keras_cache.parent))
    # The stand-in cannot match Keras's own pinned hashes.
    monkeypatch.setattr("keras.src.utils.file_utils.validate_file", lambda *a, **k: True)
    assert invoke("data", "fetch", "--source", "keras").exit_code == 0
    num_words = max(WORD_INDEX.values()) + text.INDEX_FROM + 1
    (x_train, y_train), (x_test, y_test) = imdb.load_data(
        num_words=num_words, start_char=None, oov_char=text.OOV, index_from=text.INDEX_FROM)
    for split, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
        assert stored(_isolated, split) == ([list(map(int, x)) for x in xs],
                                            [int(y) for y in ys])
    assert imdb.get_word_index() == WORD_INDEX
