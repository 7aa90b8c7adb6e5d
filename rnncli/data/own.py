"""Importing a labelled dataset of one's own: a table or a folder of texts, 2 or more labels.

    result = import_dataset(Path("tickets.csv"), "tickets", test_share=0.2)
    result = import_dataset(Path("train.jsonl"), "tickets", test=Path("test.jsonl"),
                            text_columns=["subject", "body"], label_column="queue")
    result = import_dataset(Path("aclImdb"), "imdb-own")   # train/ and test/ of LABEL/*.txt

Sources: .csv, .tsv, .jsonl and .parquet (rnncli/text/tables.py reads them), or a folder
of LABEL/*.txt (each subfolder's name is a label), or a folder holding train/ and test/
folders of that layout, which then gives the test part. Without a test part (--test, or a
folder's test/) one is split off: `test_share` of each label's rows, drawn with `seed`, so
every label is on both sides.

Label index = the sorted order of the label names (numerically when every name is an
integer): 2 labels make a binary dataset as IMDB's, label 1 the "positive" one.

A bad row (an empty text, a missing label, bytes that are not UTF-8, a text over
archive.MAX_REVIEW_BYTES, a label the training part lacks, a label too rare to split) is
one DataError naming the file, the row and the column; with `skip_bad` it is left out and
counted by reason. The reading is bounded as a fetch is (rows, bytes; then prepare's token
and word limits), the import holds the data home's lock that `data fetch` takes, and the
dataset is written by store.store(): on any failure or Ctrl-C the previous one stays whole.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnncli import fsutil
from rnncli.data import archive, prepare
from rnncli.data import store as dataset
from rnncli.data.fetch import locked
from rnncli.errors import DataError, UsageError
from rnncli.text import tables

DEFAULT_SEED = prepare.SHUFFLE_SEED
DEFAULT_TEST_SHARE = 0.2
DEFAULT_LABEL_COLUMN = "label"
TEXT_SUFFIX = ".txt"  # the texts of a folder; anything else in it is not read
# Bounds on what an import reads into memory before tokenizing (prepare's MAX_* bound what
# tokenizing makes): texts of at most archive.MAX_REVIEW_BYTES each, archive.MAX_ARCHIVE_BYTES
# in all, and MAX_ROWS rows (a row costs about 150 bytes of bookkeeping besides its text).
MAX_ROWS = 2_000_000
_INTEGER = re.compile(r"[-+]?\d+")
_REFUSE = "refusing it; split the file or shorten its texts"
_NEXT = "fix the row, or pass --skip-bad to import the others"

# Why a row is bad, as counted with --skip-bad.
EMPTY_TEXT = "empty text"
MISSING_LABEL = "missing label"
NOT_A_LABEL = "label not a string or integer"
UNDECODABLE = "bytes not UTF-8"
TOO_LONG = "text over the size limit"
TEST_ONLY = "label not in the training part"
TOO_FEW = "label with too few rows to split"

Step = prepare.Step


@dataclass
class Row:
    raw: bytes  # the text, UTF-8
    label: str
    number: int  # 1-based data row of its file, or the file's place in its folder's listing
    where: str  # how an error names the row: "FILE, row N" or the text file's path
    label_at: str  # ... and its label: "FILE, row N, column 'label'" or the label folder


@dataclass
class Part:
    """What one source (a file, a folder, or a folder's train/ or test/) gave."""

    origin: Path
    rows: list[Row]
    digest: str


@dataclass
class Skipped:
    """Bad rows: refused at the first one, or counted by reason with skip_bad."""

    skip_bad: bool
    counts: Counter = field(default_factory=Counter)

    def bad(self, where: str, reason: str, why: str) -> None:
        if not self.skip_bad:
            raise DataError(f"{where}: {why}: {_NEXT}.")
        self.counts[reason] += 1


# ---------------------------------------------------------------- reading the sources


def _label_name(value: object) -> str | None:
    """A label's name: a string stripped, an integer as written; None when missing. Raises
    TypeError for anything else (a fraction, a list)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):  # a bool is an int to Python, not to the user
        return str(value).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if value != value:  # NaN: what pandas writes for a missing value
            return None
        if float(value).is_integer():  # an integer column that held a null became float
            return str(int(value))
    raise TypeError(type(value).__name__)


class _Budget:
    """The rows and bytes read so far, across the parts of one import."""

    def __init__(self) -> None:
        self.rows = self.bytes = 0

    def add(self, size: int, where: object) -> None:
        self.rows += 1
        self.bytes += size
        if self.rows > MAX_ROWS:
            raise DataError(f"{where} holds more than {MAX_ROWS:,} rows: {_REFUSE}.")
        if self.bytes > archive.MAX_ARCHIVE_BYTES:
            raise DataError(f"{where} holds more than {archive.MAX_ARCHIVE_BYTES:,} bytes of "
                            f"text: {_REFUSE}.")


def _columns_shown(columns: list[str]) -> str:
    return ("column " if len(columns) == 1 else "columns ") + ", ".join(map(repr, columns))


def _read_table(path: Path, text_columns: list[str], label_column: str, skipped: Skipped,
                budget: _Budget, step: Step | None) -> Part:
    table = tables.open_table(path, text_columns, keep_undecodable=True)
    if label_column not in table.columns:
        raise UsageError(f"{path} has no column {label_column!r}"
                         f"{tables.did_you_mean(label_column, table.columns)}: its columns "
                         f"are {', '.join(table.columns)}; name the label column with "
                         "--label-column.")
    if label_column in text_columns:
        raise UsageError(f"Column {label_column!r} of {path} is both the label and a text "
                         "column: name them apart with --label-column and --text-column.")
    text_at = _columns_shown(text_columns)
    rows: list[Row] = []
    number = 0
    for batch in table.batches():
        texts = table.texts(batch)
        for i, value in enumerate(batch[label_column]):
            number += 1
            row = f"{path}, row {number}"
            label_at = f"{row}, column {label_column!r}"
            bad = next((c for c in (*text_columns, label_column)
                        if tables.undecodable(batch[c][i])), None)
            if bad is not None:
                skipped.bad(f"{row}, column {bad!r}", UNDECODABLE,
                            "holds bytes that are not UTF-8")
                continue
            text = texts[i]
            if not text.strip():
                skipped.bad(f"{row}, {text_at}", EMPTY_TEXT, "the text is empty")
                continue
            raw = text.encode("utf-8")
            if len(raw) > archive.MAX_REVIEW_BYTES:
                skipped.bad(f"{row}, {text_at}", TOO_LONG,
                            f"the text is {len(raw):,} bytes, over the limit of "
                            f"{archive.MAX_REVIEW_BYTES:,} per row")
                continue
            try:
                label = _label_name(value)
            except TypeError as exc:
                skipped.bad(label_at, NOT_A_LABEL,
                            f"the label is a {exc}, not a string or an integer")
                continue
            if label is None:
                skipped.bad(label_at, MISSING_LABEL, "the label is missing")
                continue
            budget.add(len(raw), path)
            rows.append(Row(raw, label, number, row, label_at))
        if step:
            step("read", budget.rows, None)
    return Part(path, rows, _file_digest(path))


def _file_digest(path: Path) -> str:
    try:
        return archive.file_sha256(path)
    except OSError as exc:
        raise DataError(f"Cannot read {path} ({exc.strerror or exc}).") from None


def _subfolders(folder: Path) -> list[os.DirEntry]:
    """The folders in `folder`, by name; hidden ones (.git) are not labels."""
    entries = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            raise DataError(f"Link {entry.path} in the dataset folder: refusing it; copy the "
                            "real files in.")
        if entry.is_dir(follow_symlinks=False):
            entries.append(entry)
    return entries


def _read_label_folders(folder: Path, skipped: Skipped, budget: _Budget,
                        step: Step | None) -> Part:
    """Each subfolder of `folder` a label, each of its .txt files a text."""
    labels = _subfolders(folder)
    if not labels:
        raise UsageError(f"{folder} holds no label folders: lay it out as LABEL/*.txt (one "
                         "folder per label), or pass a .csv, .tsv, .jsonl or .parquet file.")
    digest = hashlib.sha256()
    rows: list[Row] = []
    number = 0
    for label_dir in labels:
        label = label_dir.name.strip()
        files = sorted((e for e in os.scandir(label_dir.path) if e.name.endswith(TEXT_SUFFIX)
                        and not e.name.startswith(".")), key=lambda e: e.name)
        for entry in files:
            if entry.is_symlink():
                raise DataError(f"Link {entry.path} in the dataset folder: refusing it; copy "
                                "the real files in.")
            if not entry.is_file(follow_symlinks=False):
                continue
            number += 1
            where = entry.path
            if entry.stat(follow_symlinks=False).st_size > archive.MAX_REVIEW_BYTES:
                skipped.bad(where, TOO_LONG, f"the text is over the limit of "
                                             f"{archive.MAX_REVIEW_BYTES:,} bytes per file")
                continue
            with open(entry.path, "rb") as f:
                raw = f.read(archive.MAX_REVIEW_BYTES + 1)  # the file may grow meanwhile
            digest.update(f"{label_dir.name}/{entry.name}\0{len(raw)}\0".encode())
            digest.update(raw)
            if len(raw) > archive.MAX_REVIEW_BYTES:
                skipped.bad(where, TOO_LONG, f"the text is over the limit of "
                                             f"{archive.MAX_REVIEW_BYTES:,} bytes per file")
                continue
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                skipped.bad(where, UNDECODABLE, "holds bytes that are not UTF-8")
                continue
            if not text.strip():
                skipped.bad(where, EMPTY_TEXT, "the text is empty")
                continue
            budget.add(len(raw), folder)
            rows.append(Row(text.encode("utf-8"), label, number, where,
                            f"{label_dir.path} (the label folder)"))
            if step and budget.rows % 1000 == 0:
                step("read", budget.rows, None)
    return Part(folder, rows, f"content-sha256:{digest.hexdigest()}")


def _split_folders(folder: Path) -> tuple[Path, Path] | None:
    """(train, test) where `folder` holds both, else None: the aclImdb layout."""
    train, test = folder / "train", folder / "test"
    return (train, test) if train.is_dir() and test.is_dir() else None


def _read(path: Path, text_columns: list[str], label_column: str, skipped: Skipped,
          budget: _Budget, step: Step | None) -> Part:
    try:
        if path.is_dir():
            return _read_label_folders(path, skipped, budget, step)
        return _read_table(path, text_columns, label_column, skipped, budget, step)
    except OSError as exc:
        raise DataError(f"Cannot read {exc.filename or path} ({exc.strerror or exc}): check "
                        "the path and its permissions.") from None


def _check_source(path: Path, what: str) -> Path:
    path = path.expanduser()
    if not path.exists():
        raise UsageError(f"No such file or folder: {path}; check the {what}.")
    if path.is_dir():
        return path
    if not path.is_file():  # a FIFO or a device would block or never end
        raise UsageError(f"{path} is not a regular file or folder: pass a .csv, .tsv, .jsonl "
                         "or .parquet file, or a folder of LABEL/*.txt.")
    if not tables.is_table(path):
        raise UsageError(f"{path} is not a file rnncli imports: use .csv, .tsv, .jsonl or "
                         ".parquet, or a folder of LABEL/*.txt.")
    return path


# ---------------------------------------------------------------- labels and the split


def label_order(names: set[str]) -> list[str]:
    """Labels by index: numerically when every one is an integer, else as strings."""
    if names and all(_INTEGER.fullmatch(n) for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def _drop_test_only(test: list[Row], known: set[str], origin: Path,
                    skipped: Skipped) -> list[Row]:
    kept = []
    for row in test:
        if row.label in known:
            kept.append(row)
        else:
            skipped.bad(row.label_at, TEST_ONLY,
                        f"the label {row.label!r} is not in the training part ({origin})")
    return kept


def _drop_rare(rows: list[Row], skipped: Skipped) -> list[Row]:
    """A stratified split puts at least one row of each label on each side."""
    counts = Counter(r.label for r in rows)
    kept = []
    for row in rows:
        if counts[row.label] >= 2:
            kept.append(row)
        else:
            skipped.bad(row.label_at, TOO_FEW,
                        f"the label {row.label!r} has only this row, and splitting off a "
                        "test part needs 2 or more rows of each label (or pass --test FILE)")
    return kept


def stratified_split(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Whether each row goes to the test part: `share` of each label's rows (rounded, at
    least 1 and at most all but 1), drawn with `seed`, so every label is on both sides."""
    rng = np.random.RandomState(seed)
    test = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        n = min(len(rows) - 1, max(1, round(share * len(rows))))
        test[rows[rng.permutation(len(rows))[:n]]] = True
    return test


def _check_labels(labels: list[str], origin: Path, label_column: str | None) -> None:
    where = f"column {label_column!r} of {origin}" if label_column else f"{origin}"
    if len(labels) < 2:
        shown = f" (only {labels[0]!r})" if labels else ""
        raise DataError(f"{where} holds {len(labels)} label{'' if len(labels) == 1 else 's'}"
                        f"{shown}: a classifier needs 2 or more; check --label-column, or "
                        "add rows of another label.")
    if len(labels) > dataset.MAX_CLASSES:
        raise DataError(f"{where} holds {len(labels):,} labels, over the limit of "
                        f"{dataset.MAX_CLASSES:,}: is it the label column? Name it with "
                        "--label-column.")


# ---------------------------------------------------------------- the import


def _existing(home: Path, name: str) -> dict | None:
    """The metadata of dataset `name` if there is one (damaged: {}), else None."""
    if not (home / dataset.OWN / name / "meta.json").exists():
        return None
    try:
        return dataset.read_meta(home, name)
    except DataError:
        return {}


def _refuse_existing(home: Path, name: str, force: bool) -> bool:
    """Whether a dataset `name` is there to be replaced; refused without force."""
    old = _existing(home, name)
    if old is not None and not force:
        origin = f" (imported from {old['origin']})" if old.get("origin") else ""
        raise UsageError(f"A dataset named {name!r} already exists in {home}{origin}: pass "
                         "--force to replace it, or choose another --name.")
    return old is not None


def _namer(parts: dict[str, list[Row]]) -> Callable[[str, int], str]:
    return lambda split, k: parts[split][k].where


def import_dataset(path: Path | str, name: str, home: Path | str | None = None, *,
                   test: Path | str | None = None, test_share: float | None = None,
                   seed: int = DEFAULT_SEED, text_columns: list[str] | None = None,
                   label_column: str = DEFAULT_LABEL_COLUMN, force: bool = False,
                   skip_bad: bool = False, step: Step | None = None,
                   workers: int | None = None) -> dict:
    """Import `path` as dataset `name` into the data home; returns what was stored (see
    `summary`)."""
    name = dataset.check_name(name)
    home = dataset.data_home(home)
    path = _check_source(Path(path), "FILE argument")
    if path.is_dir() and (text_columns or label_column != DEFAULT_LABEL_COLUMN):
        raise UsageError(f"{path} is a folder of LABEL/*.txt, whose folders are the labels and "
                         "files the texts: drop --text-column and --label-column, which name "
                         "a table's columns.")
    text_columns = list(text_columns or [tables.DEFAULT_TEXT_COLUMN])
    if test is not None and test_share is not None:
        raise UsageError("--test and --test-share are two ways to get a test part: give one.")
    if test_share is not None and not 0 < test_share < 1:
        raise UsageError(f"--test-share {test_share:g} is not a share: use a number between 0 "
                         "and 1 (0.2 keeps a fifth of each label's rows for testing).")
    halves = _split_folders(path) if path.is_dir() else None
    if halves and (test is not None or test_share is not None):
        raise UsageError(f"{path} holds its own test/ folder, which is the test part: drop "
                         f"{'--test' if test is not None else '--test-share'}.")
    test_path = _check_source(Path(test), "path given to --test") if test is not None else None
    _refuse_existing(home, name, force)  # before reading: a refusal should not wait for it

    with locked(home):
        fsutil.remove_temporaries(home / dataset.OWN / name)
        dataset.remove_unused_builds(home, name)
        replaced = _refuse_existing(home, name, force)  # another import may have finished
        skipped = Skipped(skip_bad)
        budget = _Budget()

        def read(source: Path) -> Part:
            return _read(source, text_columns, label_column, skipped, budget, step)

        if halves:
            train_part, test_part = read(halves[0]), read(halves[1])
        else:
            train_part = read(path)
            test_part = read(test_path) if test_path is not None else None
        table_column = None if path.is_dir() else label_column
        train_rows = train_part.rows
        if test_part is None:
            train_rows = _drop_rare(train_rows, skipped)
        labels = label_order({r.label for r in train_rows})
        _check_labels(labels, path, table_column)
        index = {label: i for i, label in enumerate(labels)}
        if test_part is None:
            share = DEFAULT_TEST_SHARE if test_share is None else test_share
            y = np.array([index[r.label] for r in train_rows], np.int64)
            in_test = stratified_split(y, share, seed)
            parts = {"train": [r for r, t in zip(train_rows, in_test) if not t],
                     "test": [r for r, t in zip(train_rows, in_test) if t]}
        else:
            share = None
            parts = {"train": train_rows, "test": _drop_test_only(
                test_part.rows, set(labels), train_part.origin, skipped)}
            if not parts["test"]:
                raise DataError(f"{test_part.origin} has no usable rows: the test part needs "
                                "rows of the training part's labels.")
        meta = _build(home, name, path, parts, labels, index, train_part, test_part, step,
                      workers, dict(text_columns=None if path.is_dir() else text_columns,
                                    label_column=table_column, test_share=share,
                                    seed=seed if test_part is None else None,
                                    skipped=dict(skipped.counts)))
    return summary(home, meta, replaced)


def _build(home: Path, name: str, path: Path, parts: dict[str, list[Row]], labels: list[str],
           index: dict[str, int], train_part: Part, test_part: Part | None, step: Step | None,
           workers: int | None, settings: dict) -> dict:
    reviews = (archive.Review(split, index[r.label], r.number, -1, r.raw)
               for split, rows in parts.items() for r in rows)
    tokenized = prepare.tokenize_reviews(reviews, step, workers, where=path,
                                         namer=_namer(parts), refuse=_REFUSE)
    vocab = prepare.build_vocabulary([(tokenized.words, tokenized.counts["train"])])
    if step:
        step("encode", 0, None)
    # Each split its own shuffle, as the IMDB sources' (train 113, test 114).
    splits = {s: prepare.assemble(tokenized, s, vocab, prepare.SHUFFLE_SEED + k, np.int16)
              for k, s in enumerate(archive.SPLITS)}
    del tokenized
    checksum = train_part.digest if test_part is None else (
        f"{train_part.digest}+{test_part.digest}")
    meta = {
        "source": name,
        "origin": str(path.resolve()),
        "test_origin": str(test_part.origin.resolve()) if test_part else None,
        "checksum": checksum,
        "labels": labels,
        "splits": {s: prepare.class_summary(a, len(labels)) for s, a in splits.items()},
        "non_utf8": 0,
        **settings,
    }
    return dataset.store(home, name, splits, vocab, meta)


def summary(home: Path, meta: dict, replaced: bool = False) -> dict:
    """What `data import` reports: rows and rows per label of each split, the vocabulary,
    the rows skipped by reason, where it is stored, and the command to run next."""
    labels = dataset.labels_of(meta)
    name = meta["source"]
    return {
        "name": name,
        "stored": str(home / dataset.OWN / name),
        "origin": meta["origin"],
        "test_origin": meta.get("test_origin"),
        "replaced": replaced,
        "labels": labels,
        "splits": {s: {"rows": c["reviews"], "tokens": c["tokens"],
                       "classes": dict(zip(labels, c["classes"]))}
                   for s, c in meta["splits"].items()},
        "vocab_size": meta["vocab_size"],
        "test_share": meta.get("test_share"),
        "seed": meta.get("seed"),
        "skipped": meta.get("skipped", {}),
        "next": f"rnncli train --dataset {name} --output run",
    }
