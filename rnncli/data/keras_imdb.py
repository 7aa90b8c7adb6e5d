"""Keras's preprocessed IMDB (imdb.npz and its word index), read without Keras.

    splits, vocab, npz_path = load(home, progress=None)  # {"train": arrays, "test": ...}

The same files and pinned hashes as `keras.datasets.imdb`, fetched through rnncli's own
downloader (cached in `<home>/downloads/`, progress on the command's bar), or taken from
Keras's cache (`$KERAS_HOME/datasets/`, else `~/.keras/datasets/`) when a copy there
matches. Importing Keras for this would load TensorFlow, whose C++ logs and Keras's
"Downloading data from ..." line (on stdout) would wrap every message. The ragged arrays
in imdb.npz are pickled object arrays: they are read only after their SHA-256 matched, and
even then through an unpickler that can build nothing but numpy arrays (as Keras does).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np

from rnncli.data import download
from rnncli.data.archive import Progress
from rnncli.errors import NetworkError
from rnncli.text import tokenizer as text

_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
NPZ_URL = _FOLDER + "imdb.npz"
NPZ_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_URL = _FOLDER + "imdb_word_index.json"
WORD_INDEX_MD5 = "bfafd718b763782e994055a2d397834f"  # Keras pins this file by MD5
SEED = 113  # keras.datasets.imdb.load_data's shuffle
_MAX_BYTES = 100 << 20  # a Keras cache file larger than this is not ours (imdb.npz: 17 MB)
_OFFLINE = ("try again, or without internet use a copy of the Stanford archive: `rnncli "
            "data fetch --from aclImdb_v1.tar.gz`")
# All an object array's pickle needs (numpy 1 and 2 spellings).
_NUMPY_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"),
                  ("numpy.core.multiarray", "_reconstruct"),
                  ("numpy._core.multiarray", "_reconstruct")}


def keras_cache() -> Path:
    """Where Keras keeps its datasets."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def _digest(data: bytes, algorithm: str) -> str:
    if algorithm == "md5":
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    return hashlib.sha256(data).hexdigest()


def _from_keras_cache(name: str, digest: str, algorithm: str) -> tuple[bytes, Path] | None:
    path = keras_cache() / name
    try:
        if not path.is_file() or path.stat().st_size > _MAX_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return (data, path) if _digest(data, algorithm) == digest else None


def _file(home: Path, url: str, digest: str, algorithm: str,
          progress: Progress | None) -> tuple[bytes, Path]:
    """The bytes of one of Keras's files, checked against the hash Keras pins, and where
    they were read."""
    name = url.rsplit("/", 1)[1]
    if found := _from_keras_cache(name, digest, algorithm):
        return found
    try:
        got = download.cached_download(url, home / "downloads", progress,
                                       sha256=digest if algorithm == "sha256" else None)
    except NetworkError as exc:
        reason = str(exc).split("; ")[0]
        raise NetworkError(f"Cannot get Keras's {name} ({reason}); {_OFFLINE}.") from None
    data = got.path.read_bytes()
    # Checked again on the bytes that are used: the cached file could change in between.
    if _digest(data, algorithm) != digest:
        download.forget(got.path)
        raise NetworkError(f"Checksum mismatch for {url}; {_OFFLINE}.")
    if not got.verified:
        download.forget(got.path)
    return data, got.path


class _NumpyOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a numpy array")


def _array(data: bytes) -> np.ndarray:
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    else:  # 2.0 and 3.0 share the header layout
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    if not dtype.hasobject:
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)
    return _NumpyOnly(f).load()


def _arrays(data: bytes) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return {k: _array(z.read(f"{k}.npy"))
                    for k in ("x_train", "y_train", "x_test", "y_test")}
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        # Only reached with Keras's own file (its hash matched): a numpy that cannot read it.
        raise NetworkError(f"Cannot read Keras's imdb.npz ({exc}); {_OFFLINE}.") from None


def _split(xs, ys, num_words: int) -> dict:
    # Keras's load_data(start_char=None, oov_char=2, index_from=3, num_words=num_words):
    # the stored form of aclimdb too (the start marker is added when loading).
    rows = [np.asarray(x, np.int64) + text.INDEX_FROM for x in xs]
    lens = np.fromiter(map(len, rows), np.int64, len(rows))
    tokens = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    tokens = np.where(tokens < num_words, tokens, text.OOV).astype(np.int32)
    return {
        "tokens": tokens,
        "offsets": np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
        "labels": np.asarray(ys, np.int8),
        "ratings": np.full(len(rows), -1, np.int8),
        "ids": np.arange(len(rows), dtype=np.int32),
    }


def load(home: Path, progress: Progress | None = None) -> tuple[dict[str, dict],
                                                                 text.Vocabulary, Path]:
    """The train and test splits as keras.datasets.imdb.load_data gives them (shuffled with
    seed 113, ids = rank + 3), the vocabulary of its word index, and where imdb.npz was."""
    import json

    npz_bytes, npz_path = _file(home, NPZ_URL, NPZ_SHA256, "sha256", progress)
    npz = _arrays(npz_bytes)
    del npz_bytes
    word_index = json.loads(_file(home, WORD_INDEX_URL, WORD_INDEX_MD5, "md5", progress)[0])
    words = [w for w, _ in sorted(word_index.items(), key=lambda kv: kv[1])]
    # num_words=None would make Keras treat the highest id as out of range; keep them all.
    num_words = max(word_index.values(), default=0) + text.INDEX_FROM + 1
    rng = np.random.RandomState(SEED)  # one generator: train first, then test
    splits = {}
    for name in ("train", "test"):
        xs, ys = npz[f"x_{name}"], npz[f"y_{name}"]
        order = np.arange(len(xs))
        rng.shuffle(order)
        splits[name] = _split(xs[order], ys[order], num_words)
    return splits, text.Vocabulary(words), npz_path
