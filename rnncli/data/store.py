"""Prepared datasets: stored compactly, loaded fast, checked on the way in.

    meta = read_meta(data_home())
    x, y = load_encoded(load_split(data_home(), "train"), num_words=1000, maxlen=80)

A prepared dataset is a folder `<home>/<source>/` holding `meta.json` and a build folder of
plain `.npy`-in-`.npz` arrays (ids as one flat int32 array plus offsets; no pickle). The
build is written first and `meta.json` is switched to it last, by an atomic rename, so an
interrupted fetch leaves the previous dataset as it was. Whatever is read back is checked
(keys, types, array shapes), so damage is reported as such, with the repair: `data fetch
--force`, which replaces a damaged dataset without reading it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnncli.data.archive import SPLITS
from rnncli.errors import DataError, NotPreparedError
from rnncli.fsutil import atomic_write_json, atomic_write_text, read_json, umask
from rnncli.text import tokenizer as text

SOURCES = ("aclimdb", "keras")
CURRENT = "current"  # <home>/current names the source reports and training use
# Datasets a user imports (`rnncli data import`) live apart from the sources above, so no
# name of theirs can meet one of ours (current, downloads, a lock file).
OWN = "datasets"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
IMDB_LABELS = ("negative", "positive")  # what label 0 and 1 of the IMDB sources mean
MAX_CLASSES = 1000  # labels are stored as int16
FORMAT_VERSION = 1
_META_TYPES = {"source": str, "origin": str, "checksum": str, "build": str, "created": str,
               "tokenizer_version": str, "vocab_size": int, "splits": dict}
_COUNTS = ("reviews", "pos", "neg", "tokens")
_OWN_COUNTS = ("reviews", "tokens")  # and "classes": reviews per label, in label order
_BUILD = re.compile(r"build-[\w-]+")
_BUILD_FILES = ("train.npz", "test.npz", "vocab.txt")
# What np.load raises on a damaged .npz: truncated (BadZipFile, EOFError), not an array
# (ValueError), a missing member (KeyError).
_NPZ_ERRORS = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
# Array name -> dtype; every one is 1-D.
_SPLIT_DTYPES = {"tokens": np.int32, "offsets": np.int64, "labels": np.int8,
                 "ratings": np.int8, "ids": np.int32}
_LABEL_DTYPES = (np.int8, np.int16)  # int16: an imported dataset with over 127 labels


def data_home(override: Path | str | None = None) -> Path:
    """`--data-dir`, else $RNNCLI_HOME, else the per-user cache folder."""
    if override:
        return Path(override).expanduser()
    if env := os.environ.get("RNNCLI_HOME"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "rnncli"


def damaged(folder: Path, why: str) -> DataError:
    return DataError(f"Prepared data in {folder} is damaged ({why}): "
                     "run `rnncli data fetch --force`.")


@dataclass
class Split:
    """One split of a prepared dataset: ragged ids (no start marker) plus per-review fields."""

    name: str
    tokens: np.ndarray  # int32, all reviews' ids end to end
    offsets: np.ndarray  # int64, review i is tokens[offsets[i]:offsets[i+1]]
    labels: np.ndarray  # int8 (or int16), the label's index in the dataset's labels
    ratings: np.ndarray  # int8 stars, -1 where the source has none
    ids: np.ndarray  # int32 review id within its label folder (or index)
    path: Path | None = None
    # int32 IMDb title number of each review's movie (-1 unknown: every review of an
    # imported dataset); None where the source stores none (Keras's imdb.npz, builds from
    # before it was kept)
    movies: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def review(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def texts(self, n: int | None = None, start: int = 0) -> list[str] | None:
        """`n` original texts from review `start` (all by default), or None where the
        source kept none."""
        if self.path is None:
            return None
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if "text_offsets" not in z.files:
                    return None
                blob, offsets = z["text"], z["text_offsets"]
        except _NPZ_ERRORS as exc:
            raise damaged(self.path.parent.parent, f"{self.path.name}: {exc}") from None
        if (blob.ndim != 1 or offsets.shape != (len(self) + 1,) or offsets[0] != 0
                or offsets[-1] != len(blob) or (np.diff(offsets) < 0).any()):
            raise damaged(self.path.parent.parent,
                          f"{self.path.name}: texts do not match their offsets")
        stop = len(self) if n is None else min(len(self), start + n)
        return [blob[offsets[i]:offsets[i + 1]].tobytes().decode("utf-8", errors="replace")
                for i in range(start, stop)]

    def text(self, i: int) -> str | None:
        """The review's original text, or None where the source kept none."""
        texts = self.texts(1, start=i)
        return texts[0] if texts else None


# ---------------------------------------------------------------- reading back, checked


def _source_dir(home: Path, source: str) -> Path:
    return home / source if source in SOURCES else home / OWN / source


def is_own(source: str) -> bool:
    """Whether `source` names an imported dataset, not one of the IMDB sources."""
    return source not in SOURCES


def check_name(name: str) -> str:
    """`name` if it can name an imported dataset, else a UsageError saying what can."""
    from rnncli.errors import UsageError

    if not isinstance(name, str) or not NAME.fullmatch(name) or name in SOURCES:
        raise UsageError(f"Dataset name {name!r} is not usable: use 1 to 64 letters, digits, "
                         "'_', '-' or '.', starting with a letter or digit, and not "
                         f"{' or '.join(SOURCES)}.")
    return name


def labels_of(meta: dict) -> list[str]:
    """The dataset's label names, by label index: the IMDB sources' are negative, positive."""
    return list(meta.get("labels") or IMDB_LABELS)


def own_datasets(home: Path) -> list[str]:
    """Names of the imported datasets in `home` that have a meta.json, sorted."""
    folder = home / OWN
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if NAME.fullmatch(p.name) and (p / "meta.json").is_file())


def current_source(home: Path) -> str | None:
    try:
        name = (home / CURRENT).read_text().strip()
    except (OSError, ValueError):
        return None
    return name if name in SOURCES else None


def _meta_problem(meta: object, source: str) -> str | None:
    """What is wrong with a meta.json's content, or None."""
    if not isinstance(meta, dict):
        return f"meta.json holds a {type(meta).__name__}, not an object"
    wrong = [k for k, kind in _META_TYPES.items() if not isinstance(meta.get(k), kind)]
    if wrong:
        return "meta.json has no valid " + ", ".join(wrong)
    if meta["source"] != source or not _BUILD.fullmatch(meta["build"]):
        return "meta.json names another source or build"
    labels = meta.get("labels", list(IMDB_LABELS))
    if (not isinstance(labels, list) or not 2 <= len(labels) <= MAX_CLASSES
            or not all(isinstance(x, str) and x for x in labels)
            or len(set(labels)) != len(labels)):
        return "meta.json's labels are not 2 or more distinct names"
    own = is_own(source)
    for split in SPLITS:
        counts = meta["splits"].get(split)
        if not isinstance(counts, dict) or not all(isinstance(counts.get(k), int)
                                                   for k in (_OWN_COUNTS if own else _COUNTS)):
            return f"meta.json lacks the {split} counts"
        classes = counts.get("classes")
        if own and not (isinstance(classes, list) and len(classes) == len(labels)
                        and all(isinstance(c, int) for c in classes)):
            return f"meta.json lacks the {split} counts per label"
    return None


def read_meta(home: Path, source: str | None = None) -> dict:
    """Metadata of a prepared dataset; raises NotPreparedError when there is none and
    DataError when it is damaged."""
    source = source or current_source(home)
    if source is not None and is_own(source):
        check_name(source)
    folder = _source_dir(home, source or "aclimdb")
    path = folder / "meta.json"
    if source is not None and is_own(source) and not path.exists():
        known = own_datasets(home)
        import difflib

        close = difflib.get_close_matches(source, known, n=1)
        hint = (f" (did you mean {close[0]!r}?)" if close
                else f" (imported: {', '.join(known)})" if known else "")
        raise NotPreparedError(f"No dataset named {source!r} in {home}{hint}: import it with "
                               f"`rnncli data import FILE --name {source}`, or see "
                               "`rnncli data list`.")
    if source is None or not path.exists():
        raise NotPreparedError(
            f"No prepared dataset in {home}: run `rnncli data fetch` first."
        )
    try:
        meta = read_json(path)
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise damaged(folder, f"meta.json unreadable: {exc}") from None
    if isinstance(meta, dict) and meta.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise DataError(f"{path} is from another rnncli version: run `rnncli data fetch --force`.")
    if problem := _meta_problem(meta, source):
        raise damaged(folder, problem)
    return meta


def existing_meta(home: Path, source: str) -> dict | None:
    """The prepared dataset's metadata if it looks whole (meta.json sound, its build's files
    present), else None: a damaged dataset is rebuilt, never read further."""
    try:
        meta = read_meta(home, source)
    except DataError:
        return None
    build = _source_dir(home, source) / meta["build"]
    return meta if all((build / name).is_file() for name in _BUILD_FILES) else None


def _split_problem(arrays: dict[str, np.ndarray], reviews: int, classes: int = 2
                   ) -> str | None:
    for name, dtype in _SPLIT_DTYPES.items():
        ok = arrays[name].dtype in _LABEL_DTYPES if name == "labels" else (
            arrays[name].dtype == dtype)
        if not ok or arrays[name].ndim != 1:
            return f"{name} is {arrays[name].dtype} of {arrays[name].ndim} dimensions"
    offsets, tokens = arrays["offsets"], arrays["tokens"]
    if any(len(arrays[k]) != reviews for k in ("labels", "ratings", "ids")):
        return f"not {reviews} reviews as meta.json says"
    if (len(offsets) != reviews + 1 or offsets[0] != 0 or offsets[-1] != len(tokens)
            or (np.diff(offsets) < 0).any()):
        return "offsets do not match the tokens"
    labels = arrays["labels"]
    if (len(tokens) and tokens.min() < 0) or (len(labels) and (
            labels.min() < 0 or labels.max() >= classes)):
        return "ids or labels out of range"
    return None


def _build_file(home: Path, source: str | None, name: str) -> tuple[dict, Path, Path]:
    """(meta, source folder, path of `name` in the build meta.json names). A fetch that
    finishes between reading meta.json and opening the file has removed the build it named:
    meta.json is read again, once, and names the new build."""
    meta = read_meta(home, source)
    if not (_source_dir(home, meta["source"]) / meta["build"] / name).is_file():
        meta = read_meta(home, source)
    folder = _source_dir(home, meta["source"])
    return meta, folder, folder / meta["build"] / name


def load_split(home: Path, split: str, source: str | None = None) -> Split:
    """Load one split's ids and fields (not its texts, which `Split.text` reads on demand)."""
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}: use 'train' or 'test'.")
    meta, folder, path = _build_file(home, source, f"{split}.npz")
    if not path.is_file():
        raise damaged(folder, f"{path.relative_to(folder)} is missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in _SPLIT_DTYPES}
            movies = z["movies"] if "movies" in z.files else None
    except _NPZ_ERRORS as exc:
        raise damaged(folder, f"{path.name}: {exc}") from None
    if problem := _split_problem(arrays, meta["splits"][split]["reviews"],
                                 len(labels_of(meta))):
        raise damaged(folder, f"{path.name}: {problem}")
    if movies is not None and (movies.dtype != np.int32 or movies.shape != arrays["ids"].shape):
        raise damaged(folder, f"{path.name}: movies is {movies.dtype} of shape {movies.shape}")
    return Split(name=split, path=path, movies=movies, **arrays)


def load_vocabulary(home: Path, source: str | None = None) -> text.Vocabulary:
    meta, folder, path = _build_file(home, source, "vocab.txt")
    try:
        vocab = text.Vocabulary.from_text(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise damaged(folder, f"{path.relative_to(folder)} is missing") from None
    except (OSError, ValueError) as exc:
        raise damaged(folder, f"vocab.txt unreadable: {exc}") from None
    if len(vocab) != meta["vocab_size"]:
        raise damaged(folder, f"vocab.txt holds {len(vocab):,} words, meta.json says "
                              f"{meta['vocab_size']:,}")
    return vocab


# ---------------------------------------------------------------- storing


def _make_room(folder: Path) -> None:
    """Clear what a damaged dataset may have left in the way of a new one (never read)."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        folder.unlink()
    meta = folder / "meta.json"
    if meta.is_dir() and not meta.is_symlink():
        shutil.rmtree(meta)


def store(home: Path, source: str, splits: dict[str, dict], vocab: text.Vocabulary,
          meta: dict) -> dict:
    """Write a new build, then switch `meta.json` to it; older builds are removed after.

    Callers hold the data home's lock (rnncli.fetch), so no other build is in progress.
    An imported dataset (`source` not one of SOURCES) is stored under OWN and its meta
    carries "labels"; it does not become the current source.
    """
    folder = _source_dir(home, source)
    try:
        _make_room(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = Path(tempfile.mkdtemp(prefix=f"build-{stamp}-", dir=folder))
        try:
            # mkdtemp makes 0700; a build is read by whoever may read the data home.
            target.chmod(0o777 & ~umask())
            for name, arrays in splits.items():
                np.savez(target / f"{name}.npz", **{k: v for k, v in arrays.items()
                                                    if isinstance(v, np.ndarray)})
            atomic_write_text(target / "vocab.txt", vocab.to_text())
            meta = {**meta, "build": target.name, "format_version": FORMAT_VERSION,
                    "tokenizer_version": text.TOKENIZER_VERSION, "vocab_size": len(vocab),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            atomic_write_json(folder / "meta.json", meta)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    except OSError as exc:
        raise DataError(f"Cannot write the prepared data to {folder} ({exc.strerror or exc}): "
                        "free some disk space or pass another --data-dir; the previous "
                        "dataset is unchanged.") from None
    if not is_own(source):  # an imported dataset is named where used, never the default
        store_current(home, source)
    _remove_builds(folder, keep=target.name)
    return meta


def _remove_builds(folder: Path, keep: str | None) -> None:
    for old in folder.iterdir():
        if old.name == keep or not _BUILD.fullmatch(old.name):
            continue
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def remove_unused_builds(home: Path, source: str) -> None:
    """Remove the builds meta.json does not name: earlier ones, and those of fetches killed
    while storing. Callers hold the data home's lock; with meta.json unreadable, which build
    is in use is unknown, and all are left to `data fetch --force`."""
    folder = _source_dir(home, source)
    if not folder.is_dir() or folder.is_symlink():
        return
    meta = folder / "meta.json"
    if meta.exists() or meta.is_symlink():
        try:
            keep = read_json(meta)["build"]
        except (OSError, ValueError, RecursionError, KeyError, TypeError):
            return
        if not isinstance(keep, str):
            return
    else:
        keep = None
    _remove_builds(folder, keep)


def store_current(home: Path, source: str) -> None:
    """Make `source` the dataset that reports and training use by default."""
    if current_source(home) != source:
        atomic_write_text(home / CURRENT, source + "\n")


def load_encoded(split: Split, num_words: int | None, maxlen: int, padding: str = "pre",
                 truncating: str = "pre") -> tuple[np.ndarray, np.ndarray]:
    """The split as a padded int32 matrix and float32 labels, with ids >= num_words as OOV."""
    tokens = split.tokens
    if num_words is not None:
        tokens = np.where(tokens < num_words, tokens, text.OOV).astype(np.int32)
    offsets = split.offsets
    seqs = [tokens[offsets[i] : offsets[i + 1]] for i in range(len(split))]
    x = text.pad_sequences(seqs, maxlen, padding, truncating)
    return x, split.labels.astype(np.float32)


def training_shares(home: Path, d, groups: bool = False) -> tuple[np.ndarray, ...]:
    """(x, y, x_val, y_val): the train split of dataset `d.dataset` encoded by the data
    settings `d` (config.settings.DataSettings), its first `d.limit` reviews when set, with
    a `d.validation_split` share held out for validation. `d.hold_out` "last": the last
    share, as Keras's validation_split takes it; "movies": whole movies (held_out), so no
    movie is on both sides, as between IMDB's train and test splits, where the split knows
    any review's movie (else the last share). Training and the
    export's cascade read the validation share from here alike. `groups`: a fifth array, the
    movie of each validation review (a review of no known movie a group of its own), so
    that folds of the share can keep a movie's reviews together."""
    from rnncli.errors import UsageError

    split = load_split(home, "train", d.dataset)
    x, y = load_encoded(split, d.num_words, d.maxlen, d.padding, d.truncating)
    movies = split.movies if getattr(d, "hold_out", "last") == "movies" else None
    if d.limit:
        x, y = x[: d.limit], y[: d.limit]
        movies = None if movies is None else movies[: d.limit]
    n_val = max(1, int(round(len(x) * d.validation_split)))
    if movies is None or not (movies >= 0).any():  # no movie known: the last share
        held = np.arange(len(x)) >= len(x) - n_val
    else:
        held = held_out(movies, y, n_val, getattr(d, "hold_out_seed", None))
        if not held.any():
            raise UsageError(f"--validation-split {d.validation_split} holds out no whole "
                             "movie of these reviews: raise it, or use --hold-out last.")
    if held.all():
        raise UsageError(f"--validation-split {d.validation_split} leaves no training review: "
                         "lower it.")
    shares = x[~held], y[~held], x[held], y[held]
    if not groups:
        return shares
    known = movies if movies is not None else np.full(len(x), -1)
    group = np.where(known >= 0, known.astype(np.int64), -1 - np.arange(len(x)))
    return (*shares, group[held])


def held_out(movies: np.ndarray, labels: np.ndarray, n: int, seed: int | None = None
             ) -> np.ndarray:
    """Boolean mask of the reviews of whole movies, about `n` of them with the labels in the
    split's proportions: movies are drawn in a random order (`seed`), each unless it would
    take a label past its share of `n` (most movies' reviews lean one way, so a share taken
    by movie alone can be far from the split's balance: 61% positive on IMDB). -1 (unknown)
    is a movie of one review. `seed` None: walking back from the last review instead, as runs
    saved before the draw did; a movie with more reviews is met sooner that way, and IMDB's
    share of 5,000 came out of movies of 21.7 reviews on average (review-weighted) against
    16.3 for the split, on which the n-gram head scored 0.919 against 0.902 to 0.912 on five
    random folds of whole movies."""
    groups = np.where(movies >= 0, movies.astype(np.int64), -1 - np.arange(len(movies)))
    _, inverse = np.unique(groups, return_inverse=True)
    classes = np.unique(labels, return_inverse=True)[1]
    per = np.zeros((inverse.max() + 1, classes.max() + 1), np.int64)
    np.add.at(per, (inverse, classes), 1)
    target = np.bincount(classes) * (n / len(labels))
    order = (inverse[::-1] if seed is None
             else np.random.default_rng(seed).permutation(len(per)))
    chosen, held = np.zeros(len(per), bool), np.zeros(per.shape[1])
    for g in order:
        if (held >= target - 0.5).all():
            break
        if not chosen[g] and (held + per[g] <= target + 0.5).all():
            chosen[g], held = True, held + per[g]
    return chosen[inverse]
