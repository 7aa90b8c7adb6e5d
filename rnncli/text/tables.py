"""Reading tabular files of text: csv, tsv, jsonl and Parquet, a batch of rows at a time.

    table = open_table(Path("reviews.parquet"), ["title", "body"])   # text: "title body"
    for batch in table.batches():        # {column: [values]}, in the file's column order
        texts = table.texts(batch)       # each row's text columns joined by a space

Used by `rnncli predict --file` (serve/tables.py adds the writers) and by `rnncli data
import` and `evaluate --file` (labelled files). Parquet goes through pyarrow, a row group's
batch at a time (ParquetFile.iter_batches), never the whole file; pyarrow is imported only
here, when a Parquet file is read or written. Headers are read and checked when a table is
opened, before any model or tokenizer is loaded.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from rnncli.errors import MissingExtraError, UsageError

INPUT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
DEFAULT_TEXT_COLUMN = "text"
INSTALL = 'pip install "rnncli[spark]"'
BATCH_ROWS = 4096  # rows per batch read: a few model windows, a few MB of text
# A csv field may hold one whole review: the data side's cap (1 MiB) and then some.
MAX_FIELD = 1 << 22
# What surrogateescape makes of a byte that is not UTF-8: U+DC80..U+DCFF, which no UTF-8
# text holds.
_SURROGATE = re.compile("[\udc80-\udcff]")
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")

Batch = dict[str, list]


def is_table(path: str | Path) -> bool:
    return Path(path).suffix.lower() in INPUT_SUFFIXES


def pyarrow():
    """pyarrow and pyarrow.parquet, or one line naming what to install."""
    try:
        import pyarrow as pa
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise MissingExtraError(f"Parquet needs pyarrow, which is not installed: {INSTALL}"
                                ) from None
    return pa


def did_you_mean(name: str, columns: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(columns), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_columns(path, columns: list[str], text_columns: list[str],
                  reserved: Iterable[str] = ()) -> None:
    """The text columns exist and no input column is one of `reserved` (what a result
    would write)."""
    listed = ", ".join(columns) or "none"
    for name in text_columns:
        if name not in columns:
            raise UsageError(f"{path} has no column {name!r}{did_you_mean(name, columns)}: its "
                             f"columns are {listed}; name the review column with "
                             "--text-column.")
    for name in reserved:
        if name in columns:
            raise UsageError(f"{path} already has a column {name!r}, which the prediction "
                             "writes: rename or drop it first.")


def not_text(path, column: str, kind: str) -> UsageError:
    return UsageError(f"Column {column!r} of {path} holds {kind}, not review text: name the "
                      "review column with --text-column.")


class Table:
    """An opened tabular input: its columns and its batches (read when iterated)."""

    def __init__(self, path: Path, columns: list[str], text_columns: list[str],
                 batches: Callable[[], Iterator[Batch]], arrow_schema=None,
                 reserved: Iterable[str] = ()):
        self.path, self.columns, self.text_columns = path, columns, text_columns
        self._batches = batches
        self.arrow_schema = arrow_schema  # a Parquet input's, kept for a Parquet output
        self.reserved = tuple(reserved)

    def batches(self) -> Iterator[Batch]:
        empty = True
        for batch in self._batches():
            if batch and len(next(iter(batch.values()))):
                empty = False
                yield batch
        if empty:
            raise UsageError(f"{self.path} holds no rows: nothing to read.")

    def texts(self, batch: Batch) -> list[str]:
        """The review of each row: its text columns joined by a space (nulls left out)."""
        cols = [batch[c] for c in self.text_columns]
        if len(cols) == 1:
            return ["" if t is None else t for t in cols[0]]
        return [" ".join(t for t in row if t is not None) for row in zip(*cols)]


def open_table(path: str | Path, text_columns: list[str] | None = None,
               reserved: Iterable[str] = (), keep_undecodable: bool = False) -> Table:
    """The table at `path`, by its suffix; its header (or schema) is read and checked now,
    before any model is loaded. `reserved`: columns the input may not have (those a result
    writes). `keep_undecodable`: bytes of a csv, tsv or jsonl file that are not UTF-8 reach
    the values as lone surrogates (see `undecodable`) instead of failing the whole file, so
    that a caller can name the row and column that hold them."""
    path = Path(path)
    text_columns = list(text_columns or [DEFAULT_TEXT_COLUMN])
    suffix = path.suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise UsageError(f"{path}: a table is {', '.join(INPUT_SUFFIXES)}.")
    try:
        errors = "surrogateescape" if keep_undecodable else "strict"
        if suffix == ".parquet":  # Arrow strings are UTF-8 already
            return _parquet(path, text_columns, tuple(reserved))
        if suffix == ".jsonl":
            return _jsonl(path, text_columns, tuple(reserved), errors)
        return _csv(path, text_columns, "\t" if suffix == ".tsv" else ",", tuple(reserved),
                    errors)
    except FileNotFoundError:
        raise UsageError(f"Cannot read {path} (no such file): check --file.") from None


def undecodable(value: object) -> bool:
    """Whether a value read with keep_undecodable held bytes that are not UTF-8."""
    return isinstance(value, str) and _SURROGATE.search(value) is not None


def _csv(path: Path, text_columns: list[str], delimiter: str, reserved: tuple = (),
         errors: str = "strict") -> Table:
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD))
    with open(path, encoding="utf-8-sig", newline="", errors=errors) as f:
        try:
            header = next(csv.reader(f, delimiter=delimiter), None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise UsageError(f"Cannot read the header of {path} ({exc}).") from None
    if header is None:
        raise UsageError(f"{path} holds no rows: nothing to read.")
    if len(set(header)) != len(header) or "" in header:
        raise UsageError(f"{path}: the header row must name every column once "
                         f"({', '.join(header)}).")
    check_columns(path, header, text_columns, reserved)

    def batches() -> Iterator[Batch]:
        with open(path, encoding="utf-8-sig", newline="", errors=errors) as f:
            reader = csv.reader(f, delimiter=delimiter)
            next(reader)
            first = True
            while True:
                try:
                    rows = [r for _, r in zip(range(BATCH_ROWS), reader)]
                except UnicodeDecodeError:
                    raise UsageError(f"{path} is not UTF-8: convert the file "
                                     "(e.g. iconv -t utf-8).") from None
                except csv.Error as exc:
                    raise UsageError(f"{path}, line {reader.line_num}: {exc}.") from None
                if not rows:
                    return
                for r in rows:
                    if len(r) != len(header):
                        raise UsageError(f"{path}, row ending on line {reader.line_num}: "
                                         f"{len(r)} fields where the header has "
                                         f"{len(header)}.")
                batch = {c: list(v) for c, v in zip(header, zip(*rows))}
                if first:  # csv has no types: a column of numbers only is not the reviews
                    for c in text_columns:
                        values = [v for v in batch[c] if v.strip()]
                        if values and all(_NUMBER.fullmatch(v) for v in values):
                            raise not_text(path, c, "numbers")
                    first = False
                yield batch

    return Table(path, header, text_columns, batches, reserved=reserved)


def _jsonl(path: Path, text_columns: list[str], reserved: tuple = (),
           errors: str = "strict") -> Table:
    def records(f) -> Iterator[tuple[int, dict]]:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise UsageError(f"Line {number} of {path} is not JSON ({exc}).") from None
            if not isinstance(obj, dict):
                raise UsageError(f"Line {number} of {path} is not a JSON object: one "
                                 '{"column": value, ...} per line.')
            yield number, obj

    try:
        with open(path, encoding="utf-8", errors=errors) as f:
            first = next(records(f), None)
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8: convert the file.") from None
    if first is None:
        raise UsageError(f"{path} holds no rows: nothing to read.")
    columns = list(first[1])
    check_columns(path, columns, text_columns, reserved)
    known = set(columns)

    def batches() -> Iterator[Batch]:
        with open(path, encoding="utf-8", errors=errors) as f:
            rows: list[dict] = []
            for number, obj in records(f):
                extra = obj.keys() - known
                if extra:
                    raise UsageError(f"Line {number} of {path} has columns the first line has "
                                     f"not ({', '.join(sorted(extra))}): give every line the "
                                     "same keys.")
                for c in text_columns:
                    value = obj.get(c)
                    if value is not None and not isinstance(value, str):
                        kind = "numbers" if isinstance(value, (int, float)) else \
                            type(value).__name__ + " values"
                        raise not_text(path, c, kind)
                rows.append(obj)
                if len(rows) == BATCH_ROWS:
                    yield {c: [r.get(c) for r in rows] for c in columns}
                    rows = []
            if rows:
                yield {c: [r.get(c) for r in rows] for c in columns}

    return Table(path, columns, text_columns, batches, reserved=reserved)


def _parquet(path: Path, text_columns: list[str], reserved: tuple = ()) -> Table:
    pa = pyarrow()
    import pyarrow.parquet as pq

    if not path.exists():
        raise FileNotFoundError(path)
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise UsageError(f"Cannot read {path} as Parquet ({_first_line(exc)}).") from None
    schema = pf.schema_arrow
    columns = list(schema.names)
    check_columns(path, columns, text_columns, reserved)
    for c in text_columns:
        t = schema.field(c).type
        if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)
                or getattr(pa.types, "is_string_view", lambda _: False)(t)):
            kind = "numbers" if pa.types.is_integer(t) or pa.types.is_floating(t) \
                or pa.types.is_decimal(t) else f"{t} values"
            raise not_text(path, c, f"{kind} ({t})")

    def batches() -> Iterator[Batch]:
        # Opened again: the file is read when iterated, a batch at a time.
        with pq.ParquetFile(path) as f:
            for rb in f.iter_batches(batch_size=BATCH_ROWS):
                yield rb.to_pydict()

    return Table(path, columns, text_columns, batches, arrow_schema=schema,
                 reserved=reserved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
