"""Getting a corpus into the data home: download or local copy, verify, tokenize, store.

    meta, built = fetch("aclimdb", origin="aclImdb_v1.tar.gz", home=data_home())

One fetch at a time per data home: it holds an exclusive lock on `<home>/fetch.lock` and a
second one is refused at once, with a message, rather than left to wait.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rnncli import fsutil
from rnncli.data import archive, download, prepare
from rnncli.data import store as dataset
from rnncli.errors import DataError, NetworkError, UsageError
from rnncli.text import tokenizer as text

# Keras's preprocessed copy of the same corpus (the recipe's exact data); the checksum is the
# one keras.datasets.imdb pins.
KERAS_IMDB_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"
KERAS_IMDB_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"


LOCK = "fetch.lock"


def _is_url(origin: str) -> bool:
    return origin.startswith(("http://", "https://", "ftp://"))


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One fetch at a time per data home: a second one would delete the first's build."""
    if home.exists() and not home.is_dir():
        raise DataError(f"Data home {home} is a file, not a folder: pass another --data-dir.")
    stack = contextlib.ExitStack()
    try:
        home.mkdir(parents=True, exist_ok=True)
        stack.enter_context(fsutil.exclusive_lock(home / LOCK))
    except BlockingIOError:
        raise DataError(f"Another `rnncli data fetch` is running on {home}: wait for it to "
                        "finish, then run this again.") from None
    except OSError as exc:
        raise DataError(f"Cannot write to the data home {home} ({exc.strerror or exc}): pass "
                        "a writable --data-dir.") from None
    with stack:
        yield


def fetch(source: str = "aclimdb", origin: str | None = None, home: Path | None = None,
          force: bool = False, step: prepare.Step | None = None,
          workers: int | None = None) -> tuple[dict, bool]:
    """Prepare `source` in `home`. Returns (metadata, built) where built is False for a no-op."""
    home = dataset.data_home(home)
    if source not in dataset.SOURCES:
        raise UsageError(f"Unknown source {source!r}: use one of {', '.join(dataset.SOURCES)}.")
    if source == "keras" and origin:
        raise UsageError("--from is for --source aclimdb; Keras data comes from its cache.")
    with _locked(home):
        if source == "keras":
            return _fetch_keras(home, force)
        if origin is not None and not _is_url(origin):
            return _prepare_aclimdb(home, Path(origin).expanduser(), origin, force, step, workers)
        return _fetch_url(home, origin or archive.ACLIMDB_URL, force, step, workers)


def _fetch_url(home, url, force, step, workers):
    official = url == archive.ACLIMDB_URL
    got = download.cached_download(
        url, home / "downloads", (lambda d, t: step("download", d, t)) if step else None,
        size=archive.ACLIMDB_SIZE if official else None,
        sha256=archive.ACLIMDB_SHA256 if official else None, force=force)
    try:
        return _prepare_aclimdb(home, got.path, url, force, step, workers, got.sha256)
    except DataError:
        download.forget(got.path)  # not a whole aclImdb archive: not worth keeping
        raise
    finally:
        if not got.verified:
            download.forget(got.path)


def _file_checksum(path: Path) -> str:
    try:
        return archive.file_sha256(path)
    except OSError as exc:
        raise DataError(f"Cannot read {path} ({exc.strerror or exc}): check the path given "
                        "to --from.") from None


def _check_complete(fields: dict[str, list], path: Path) -> None:
    """Both labels in both splits: a source without them is cut short or not aclImdb."""
    present = {(split, row[0]) for split, rows in fields.items() for row in rows}
    missing = [f"{split}/{name}" for split in archive.SPLITS
               for label, name in enumerate(archive.LABELS) if (split, label) not in present]
    if missing:
        raise DataError(f"{path} has no {', '.join(missing)} reviews (every split needs pos "
                        "and neg): use the full aclImdb_v1.tar.gz.")


def _prepare_aclimdb(home, path, origin, force, step, workers, checksum=None):
    if not path.exists():
        raise DataError(f"No such file or folder: {path}; check the path given to --from.")
    reviews = None
    if path.is_dir():
        reviews, checksum = archive.read_folder(path)
    elif not path.is_file():  # a FIFO or a device would block or never end
        raise DataError(f"{path} is not a regular file: pass a .tar.gz or an extracted folder.")
    elif checksum is None:
        checksum = _file_checksum(path)
    old = None if force else dataset.existing_meta(home, "aclimdb")
    if (old and old["checksum"] == checksum
            and old["tokenizer_version"] == text.TOKENIZER_VERSION):
        dataset.store_current(home, "aclimdb")
        return old, False

    source = reviews if reviews is not None else archive.iter_reviews(path)
    fields, by_split = prepare.tokenize_reviews(source, step, workers)
    _check_complete(fields, path)
    vocab = prepare.build_vocabulary((r[2], r[3]) for r in by_split["train"])
    if step:
        step("encode", 0, None)
    # Each split gets its own shuffle (train 113, test 114), so review N of train and of
    # test are unrelated.
    splits = {s: prepare.assemble(fields[s], by_split[s], vocab, prepare.SHUFFLE_SEED + k)
              for k, s in enumerate(archive.SPLITS)}
    meta = {
        "source": "aclimdb",
        "origin": str(origin),
        "checksum": checksum,
        "splits": {s: prepare.split_summary(a) for s, a in splits.items()},
        "non_utf8": sum(a["non_utf8"] for a in splits.values()),
    }
    return dataset.store(home, "aclimdb", splits, vocab, meta), True


def _fetch_keras(home: Path, force: bool) -> tuple[dict, bool]:
    """Keras's preprocessed imdb.npz and word index, through keras.datasets.imdb."""
    old = None if force else dataset.existing_meta(home, "keras")
    if old:
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
        "splits": {s: prepare.split_summary(a) for s, a in splits.items()},
        "non_utf8": 0,
    }
    return dataset.store(home, "keras", splits, vocab, meta), True
