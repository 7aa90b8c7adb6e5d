"""Getting a corpus into the data home: download or local copy, verify, tokenize, store.

    meta = fetch("aclimdb", origin="aclImdb_v1.tar.gz", home=data_home())
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rnncli import archive, dataset, text
from rnncli.errors import DataError, NetworkError, NotPreparedError, UsageError

# Keras's preprocessed copy of the same corpus (the recipe's exact data); the checksum is the
# one keras.datasets.imdb pins.
KERAS_IMDB_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"
KERAS_IMDB_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"


def _is_url(origin: str) -> bool:
    return origin.startswith(("http://", "https://", "ftp://"))


def _existing(home: Path, source: str) -> dict | None:
    try:
        return dataset.read_meta(home, source)
    except (NotPreparedError, DataError):
        return None


def fetch(source: str = "aclimdb", origin: str | None = None, home: Path | None = None,
          force: bool = False, step: dataset.Step | None = None,
          workers: int | None = None) -> tuple[dict, bool]:
    """Prepare `source` in `home`. Returns (metadata, built) where built is False for a no-op."""
    home = dataset.data_home(home)
    if source not in dataset.SOURCES:
        raise UsageError(f"Unknown source {source!r}: use one of {', '.join(dataset.SOURCES)}.")
    if source == "keras":
        if origin:
            raise UsageError("--from is for --source aclimdb; Keras data comes from its cache.")
        return _fetch_keras(home, force)
    return _fetch_aclimdb(origin, home, force, step, workers)


def _fetch_aclimdb(origin, home, force, step, workers):
    if origin is None or _is_url(origin):
        url = origin or archive.ACLIMDB_URL
        official = url == archive.ACLIMDB_URL
        path = home / "downloads" / Path(url.split("?")[0]).name
        if not path.exists() or force:
            archive.download(url, path, progress=(lambda d, t: step("download", d, t))
                             if step else None,
                             size=archive.ACLIMDB_SIZE if official else None,
                             sha256=archive.ACLIMDB_SHA256 if official else None)
    else:
        path = Path(origin).expanduser()
        if not path.exists():
            raise DataError(f"No such file or folder: {path}; check the path given to --from.")
    checksum = archive.file_sha256(path) if path.is_file() else f"folder:{path.resolve()}"
    old = _existing(home, "aclimdb")
    if (old and not force and old.get("checksum") == checksum
            and old.get("tokenizer_version") == text.TOKENIZER_VERSION):
        dataset.store_current(home, "aclimdb")
        return old, False

    fields, by_split = dataset.tokenize_reviews(archive.iter_reviews(path), step, workers)
    missing = [s for s in archive.SPLITS if not fields.get(s)]
    if missing:
        raise DataError(
            f"{path} has no {' or '.join(missing)} reviews (expected aclImdb/"
            f"{missing[0]}/pos and neg): use the full aclImdb_v1.tar.gz."
        )
    vocab = dataset.build_vocabulary((r[2], r[3]) for r in by_split["train"])
    if step:
        step("encode", 0, None)
    # Each split gets its own shuffle, so review N of train and of test are unrelated.
    splits = {s: dataset.assemble(fields[s], by_split[s], vocab, dataset.SHUFFLE_SEED + k)
              for k, s in enumerate(archive.SPLITS)}
    meta = {
        "source": "aclimdb",
        "origin": str(origin or archive.ACLIMDB_URL),
        "checksum": checksum,
        "splits": {s: dataset.split_summary(a) for s, a in splits.items()},
        "non_utf8": sum(a["non_utf8"] for a in splits.values()),
    }
    return dataset.store(home, "aclimdb", splits, vocab, meta), True


def _fetch_keras(home: Path, force: bool) -> tuple[dict, bool]:
    """Keras's preprocessed imdb.npz and word index, through keras.datasets.imdb."""
    old = _existing(home, "keras")
    if old and not force:
        dataset.store_current(home, "keras")
        return old, False
    try:
        from keras.datasets import imdb
    except ImportError:
        raise UsageError(
            "--source keras needs Keras: pip install 'rnncli[train]'."
        ) from None
    try:
        # index_from=3 and no start marker: the same stored form as aclimdb (start added at load).
        word_index = imdb.get_word_index()
        # num_words=None would make Keras treat the highest id as out of range; keep them all.
        (x_train, y_train), (x_test, y_test) = imdb.load_data(
            num_words=max(word_index.values(), default=0) + text.INDEX_FROM + 1,
            start_char=None, oov_char=text.OOV, index_from=text.INDEX_FROM,
        )
    except Exception as exc:  # keras raises plain Exception for failed downloads
        raise NetworkError(
            f"Cannot get Keras's imdb.npz ({str(exc).splitlines()[0][:160]}); without "
            "internet, use the Stanford archive: `rnncli data fetch --from aclImdb_v1.tar.gz`."
        ) from None
    words = [w for w, _ in sorted(word_index.items(), key=lambda kv: kv[1])]
    vocab = text.Vocabulary(words)
    splits = {}
    for name, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
        lens = np.fromiter((len(x) for x in xs), np.int64, len(xs))
        tokens = (np.concatenate([np.asarray(x, np.int32) for x in xs])
                  if len(xs) else np.zeros(0, np.int32))
        splits[name] = {
            "tokens": tokens.astype(np.int32),
            "offsets": np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
            "labels": np.asarray(ys, np.int8),
            "ratings": np.full(len(xs), -1, np.int8),
            "ids": np.arange(len(xs), dtype=np.int32),
        }
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "imdb.npz"
    meta = {
        "source": "keras",
        "origin": KERAS_IMDB_URL,
        "checksum": KERAS_IMDB_SHA256,
        "cache": str(cache),
        "splits": {s: dataset.split_summary(a) for s, a in splits.items()},
        "non_utf8": 0,
    }
    return dataset.store(home, "keras", splits, vocab, meta), True
