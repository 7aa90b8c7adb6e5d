"""Getting a corpus into the data home: download or local copy, verify, tokenize, store.

    meta, built = fetch("aclimdb", origin="aclImdb_v1.tar.gz", home=data_home())

One fetch at a time per data home: it holds an exclusive lock on `<home>/fetch.lock` and a
second one is refused at once, with a message, rather than left to wait. Holding it, a
fetch first removes what a killed one left (temporary files, unfinished builds).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from rnncli import fsutil
from rnncli.data import archive, download, keras_imdb, prepare
from rnncli.data import store as dataset
from rnncli.errors import DataError, NetworkError, UsageError
from rnncli.text import tokenizer as text

# Keras's preprocessed copy of the same corpus (the recipe's exact data).
KERAS_IMDB_URL = keras_imdb.NPZ_URL
KERAS_IMDB_SHA256 = keras_imdb.NPZ_SHA256


LOCK = "fetch.lock"

Note = Callable[[str], None]


def _is_url(origin: str) -> bool:
    return origin.startswith(("http://", "https://", "ftp://"))


@contextlib.contextmanager
def locked(home: Path) -> Iterator[None]:
    """One build (a fetch or an import) at a time per data home: a second one would delete
    the first's build."""
    if home.exists() and not home.is_dir():
        raise DataError(f"Data home {home} is a file, not a folder: pass another --data-dir.")
    stack = contextlib.ExitStack()
    try:
        home.mkdir(parents=True, exist_ok=True)
        stack.enter_context(fsutil.exclusive_lock(home / LOCK))
    except BlockingIOError:
        raise DataError(f"Another `rnncli data fetch` or `data import` is running on {home}: "
                        "wait for it to finish, then run this again.") from None
    except OSError as exc:
        raise DataError(f"Cannot write to the data home {home} ({exc.strerror or exc}): pass "
                        "a writable --data-dir.") from None
    with stack:
        yield


def clear_leftovers(home: Path) -> None:
    """Remove the temporary files and unfinished builds of fetches killed before they could
    (SIGKILL, a power cut). Only under the lock: then no other fetch is writing."""
    # The data home may be a folder of the user's (`--data-dir .`): there, only what a
    # fetch writes; the folders below are the fetch's own.
    fsutil.remove_temporaries(home, of=[dataset.CURRENT])
    for folder in (home / "downloads", *(home / s for s in dataset.SOURCES)):
        fsutil.remove_temporaries(folder)
    for source in dataset.SOURCES:
        dataset.remove_unused_builds(home, source)


def fetch(source: str = "aclimdb", origin: str | None = None, home: Path | None = None,
          force: bool = False, step: prepare.Step | None = None,
          workers: int | None = None, note: Note | None = None) -> tuple[dict, bool]:
    """Prepare `source` in `home`. Returns (metadata, built) where built is False for a no-op.

    `note` gets one line when the prepared dataset is kept for another reason than a
    matching checksum (the download to check it failed).
    """
    home = dataset.data_home(home)
    if source not in dataset.SOURCES:
        raise UsageError(f"Unknown source {source!r}: use one of {', '.join(dataset.SOURCES)}.")
    if source == "keras" and origin:
        raise UsageError("--from is for --source aclimdb; --source keras downloads Keras's "
                         "imdb.npz (or takes it from Keras's cache): drop --from.")
    with locked(home):
        clear_leftovers(home)
        if source == "keras":
            return _fetch_keras(home, force, step)
        if origin is not None and not _is_url(origin):
            return _prepare_aclimdb(home, Path(origin).expanduser(), origin, force, step, workers)
        return _fetch_url(home, origin or archive.ACLIMDB_URL, force, step, workers, note)


def _up_to_date(home: Path, source: str, force: bool) -> dict | None:
    """The prepared dataset's metadata if it is whole and made by this tokenizer."""
    old = None if force else dataset.existing_meta(home, source)
    return old if old and old.get("tokenizer_version") == text.TOKENIZER_VERSION else None


def _fetch_url(home, url, force, step, workers, note):
    official = url == archive.ACLIMDB_URL
    old = _up_to_date(home, "aclimdb", force)
    try:
        got = download.cached_download(
            url, home / "downloads", (lambda d, t: step("download", d, t)) if step else None,
            size=archive.ACLIMDB_SIZE if official else None,
            sha256=archive.ACLIMDB_SHA256 if official else None, force=force)
    except NetworkError as exc:
        # Offline with the dataset already prepared (from this URL, or any origin when none
        # was asked for): the command's aim is met; say so. Another URL asked for is not.
        if old is None or (not official and old["origin"] != url):
            raise
        dataset.store_current(home, "aclimdb")
        if note:
            note(f"Already prepared (aclimdb from {old['origin']}), kept as it is: "
                 f"{str(exc).split('; ')[0]}. `rnncli data fetch --force` re-fetches.")
        return old, False
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
    reviews, movies = None, {}
    if path.is_dir():
        reviews, checksum = archive.read_folder(path, movies)
    elif not path.is_file():  # a FIFO or a device would block or never end
        raise DataError(f"{path} is not a regular file: pass a .tar.gz or an extracted folder.")
    elif checksum is None:
        checksum = _file_checksum(path)
    old = _up_to_date(home, "aclimdb", force)
    # A build from before each review's movie was stored is made again.
    if old and old["checksum"] == checksum and "movies" in old:
        dataset.store_current(home, "aclimdb")
        return old, False

    source = reviews if reviews is not None else archive.iter_reviews(path, movies)
    tokenized = prepare.tokenize_reviews(source, step, workers, where=origin)
    _check_complete(tokenized.fields, path)
    vocab = prepare.build_vocabulary([(tokenized.words, tokenized.counts["train"])])
    if step:
        step("encode", 0, None)
    # Each split gets its own shuffle (train 113, test 114), so review N of train and of
    # test are unrelated.
    splits = {s: prepare.assemble(tokenized, s, vocab, prepare.SHUFFLE_SEED + k,
                                  movies=movies)
              for k, s in enumerate(archive.SPLITS)}
    del tokenized
    meta = {
        "source": "aclimdb",
        "origin": str(origin),
        "checksum": checksum,
        "splits": {s: prepare.split_summary(a) for s, a in splits.items()},
        "non_utf8": sum(a["non_utf8"] for a in splits.values()),
        # Train reviews whose movie the archive's urls_*.txt name (validation holds out
        # whole movies where they all have one).
        "movies": int((splits["train"]["movies"] >= 0).sum()),
    }
    return dataset.store(home, "aclimdb", splits, vocab, meta), True


def _fetch_keras(home: Path, force: bool, step: prepare.Step | None) -> tuple[dict, bool]:
    """Keras's preprocessed imdb.npz and word index, read as keras.datasets.imdb does."""
    old = None if force else dataset.existing_meta(home, "keras")
    if old:
        dataset.store_current(home, "keras")
        return old, False
    splits, vocab, npz_path = keras_imdb.load(
        home, (lambda d, t: step("download", d, t)) if step else None)
    meta = {
        "source": "keras",
        "origin": KERAS_IMDB_URL,
        "checksum": KERAS_IMDB_SHA256,
        "cache": str(npz_path),
        "splits": {s: prepare.split_summary(a) for s, a in splits.items()},
        "non_utf8": 0,
    }
    return dataset.store(home, "keras", splits, vocab, meta), True
