"""Tabular input and output for `rnncli predict`: csv, tsv, jsonl and Parquet, streamed.

    table = open_table(Path("reviews.parquet"), ["title", "body"])   # text: "title body"
    with open_output(Path("scores.csv"), table.columns) as out:
        for batch in score(table, model.predict_stream):
            out.write(batch)

A batch is a dict of equal-length lists, one per column, in the input's column order; the
scored batch adds `label`, `probability` and `known_words`. Every column is kept, so ids
travel with their scores. A null or blank text gets label and probability null, as a blank
line of a .txt file does. Parquet goes through pyarrow, a row group's batch at a time
(ParquetFile.iter_batches), never the whole file; pyarrow is imported only here, when a
Parquet file is read or written.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
import re
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from rnncli.errors import MissingExtraError, UsageError
from rnncli.fsutil import atomic_path

INPUT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
OUTPUT_SUFFIXES = (".jsonl", ".csv", ".parquet")
RESULT_COLUMNS = ("label", "probability", "known_words")
DEFAULT_TEXT_COLUMN = "text"
INSTALL = 'pip install "rnncli[spark]"'
BATCH_ROWS = 4096  # rows per batch read: a few model windows, a few MB of text
# A csv field may hold one whole review: the data side's cap (1 MiB) and then some.
MAX_FIELD = 1 << 22
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


def check_columns(path, columns: list[str], text_columns: list[str]) -> None:
    """The text columns exist and no input column would be overwritten by a result."""
    listed = ", ".join(columns) or "none"
    for name in text_columns:
        if name not in columns:
            raise UsageError(f"{path} has no column {name!r}{did_you_mean(name, columns)}: its "
                             f"columns are {listed}; name the review column with "
                             "--text-column.")
    for name in RESULT_COLUMNS:
        if name in columns:
            raise UsageError(f"{path} already has a column {name!r}, which the prediction "
                             "writes: rename or drop it first.")


def not_text(path, column: str, kind: str) -> UsageError:
    return UsageError(f"Column {column!r} of {path} holds {kind}, not review text: name the "
                      "review column with --text-column.")


class Table:
    """An opened tabular input: its columns and its batches (read when iterated)."""

    def __init__(self, path: Path, columns: list[str], text_columns: list[str],
                 batches: Callable[[], Iterator[Batch]], arrow_schema=None):
        self.path, self.columns, self.text_columns = path, columns, text_columns
        self._batches = batches
        self.arrow_schema = arrow_schema  # a Parquet input's, kept for a Parquet output

    def batches(self) -> Iterator[Batch]:
        empty = True
        for batch in self._batches():
            if batch and len(next(iter(batch.values()))):
                empty = False
                yield batch
        if empty:
            raise UsageError(f"{self.path} holds no rows: nothing to predict.")

    def texts(self, batch: Batch) -> list[str]:
        """The review of each row: its text columns joined by a space (nulls left out)."""
        cols = [batch[c] for c in self.text_columns]
        if len(cols) == 1:
            return ["" if t is None else t for t in cols[0]]
        return [" ".join(t for t in row if t is not None) for row in zip(*cols)]


def open_table(path: str | Path, text_columns: list[str] | None = None) -> Table:
    """The table at `path`, by its suffix; its header (or schema) is read and checked now,
    before any model is loaded."""
    path = Path(path)
    text_columns = list(text_columns or [DEFAULT_TEXT_COLUMN])
    suffix = path.suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise UsageError(f"{path}: a table is {', '.join(INPUT_SUFFIXES)}.")
    try:
        if suffix == ".parquet":
            return _parquet(path, text_columns)
        if suffix == ".jsonl":
            return _jsonl(path, text_columns)
        return _csv(path, text_columns, "\t" if suffix == ".tsv" else ",")
    except FileNotFoundError:
        raise UsageError(f"Cannot read {path} (no such file): check --file.") from None


def _csv(path: Path, text_columns: list[str], delimiter: str) -> Table:
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD))
    with open(path, encoding="utf-8-sig", newline="") as f:
        try:
            header = next(csv.reader(f, delimiter=delimiter), None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise UsageError(f"Cannot read the header of {path} ({exc}).") from None
    if header is None:
        raise UsageError(f"{path} holds no rows: nothing to predict.")
    if len(set(header)) != len(header) or "" in header:
        raise UsageError(f"{path}: the header row must name every column once "
                         f"({', '.join(header)}).")
    check_columns(path, header, text_columns)

    def batches() -> Iterator[Batch]:
        with open(path, encoding="utf-8-sig", newline="") as f:
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

    return Table(path, header, text_columns, batches)


def _jsonl(path: Path, text_columns: list[str]) -> Table:
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
        with open(path, encoding="utf-8") as f:
            first = next(records(f), None)
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8: convert the file.") from None
    if first is None:
        raise UsageError(f"{path} holds no rows: nothing to predict.")
    columns = list(first[1])
    check_columns(path, columns, text_columns)
    known = set(columns)

    def batches() -> Iterator[Batch]:
        with open(path, encoding="utf-8") as f:
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

    return Table(path, columns, text_columns, batches)


def _parquet(path: Path, text_columns: list[str]) -> Table:
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
    check_columns(path, columns, text_columns)
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

    return Table(path, columns, text_columns, batches, arrow_schema=schema)


def score(table: Table, predict_stream: Callable[[Iterable[str]], Iterable]
          ) -> Iterator[Batch]:
    """Each batch of `table` with its predictions added, in input order. `predict_stream`
    (rnncli.Model.predict_stream) sees one stream of texts, so its windows and look-ahead
    span batches."""
    pending: deque[tuple[Batch, int]] = deque()

    def texts() -> Iterator[str]:
        for batch in table.batches():
            t = table.texts(batch)
            pending.append((batch, len(t)))
            yield from t

    got: list = []
    for p in predict_stream(texts()):
        got.append(p)
        if len(got) == pending[0][1]:
            batch, _ = pending.popleft()
            batch["label"] = [q.label for q in got]
            batch["probability"] = [q.probability for q in got]
            batch["known_words"] = [q.known_words for q in got]
            got = []
            yield batch


def result_columns(columns: list[str]) -> list[str]:
    return [*columns, *RESULT_COLUMNS]


class _Writer:
    def __init__(self, stream, columns: list[str]):
        self.stream, self.columns = stream, columns

    def close(self) -> None:
        pass


def _rows(batch: Batch, columns: list[str]) -> Iterator[tuple]:
    return zip(*(batch[c] for c in columns))


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class JsonlWriter(_Writer):
    def write(self, batch: Batch) -> None:
        write, cols = self.stream.write, self.columns
        for row in _rows(batch, cols):
            d = dict(zip(cols, map(_json_value, row)))
            p = d.get("probability")
            if isinstance(p, float):
                d["probability"] = round(p, 6)
            write(json.dumps(d, ensure_ascii=False, allow_nan=False, default=str) + "\n")


class JsonArrayWriter(JsonlWriter):
    """A JSON array, streamed: the layout json.dumps(rows, indent=2) gives."""

    def __init__(self, stream, columns):
        super().__init__(stream, columns)
        self.first = True

    def write(self, batch: Batch) -> None:
        cols = self.columns
        for row in _rows(batch, cols):
            d = dict(zip(cols, map(_json_value, row)))
            if isinstance(d.get("probability"), float):
                d["probability"] = round(d["probability"], 6)
            text = json.dumps(d, indent=2, ensure_ascii=False, allow_nan=False, default=str)
            self.stream.write(("[\n" if self.first else ",\n")
                              + "\n".join("  " + line for line in text.splitlines()))
            self.first = False

    def close(self) -> None:
        self.stream.write("[]\n" if self.first else "\n]\n")


class CsvWriter(_Writer):
    """RFC 4180 rows; every text cell goes through `cell` (the CLI's guard against
    spreadsheet formulas)."""

    def __init__(self, stream, columns, cell: Callable[[str], str]):
        super().__init__(stream, columns)
        self.cell = cell
        stream.write(",".join(cell(c) for c in columns) + "\n")

    def write(self, batch: Batch) -> None:
        cell, write = self.cell, self.stream.write
        for row in _rows(batch, self.columns):
            write(",".join(_csv_value(v, cell) for v in row) + "\n")


def _csv_value(v, cell) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6f}" if math.isfinite(v) else ""
    if isinstance(v, (bool, int)):
        return str(v)
    return cell(v if isinstance(v, str) else str(v))


class ParquetWriter(_Writer):
    """Parquet through pyarrow, one row group per batch; the schema is the input's (a
    Parquet input) or what the first batch holds, plus the result columns."""

    def __init__(self, path: Path, columns, arrow_schema=None):
        super().__init__(None, columns)
        self.pa = pyarrow()
        self.path, self.schema, self.writer = path, None, None
        if arrow_schema is not None:
            self.schema = self._with_results(arrow_schema)

    def _with_results(self, schema):
        pa = self.pa
        fields = [pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
                  for f in schema if f.name in self.columns]
        return pa.schema([*fields, pa.field("label", pa.string()),
                          pa.field("probability", pa.float64()),
                          pa.field("known_words", pa.int64())])

    def write(self, batch: Batch) -> None:
        import pyarrow.parquet as pq

        pa = self.pa
        data = {c: batch[c] for c in self.columns}
        if self.schema is None:
            inferred = pa.Table.from_pydict({c: data[c] for c in self.columns[:-3]}).schema
            self.schema = self._with_results(inferred)
        try:
            table = pa.Table.from_pydict(data, schema=self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise UsageError(f"A column changes type part way through the input "
                             f"({_first_line(exc)}): write .jsonl or .csv instead.") from None
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is None:  # no rows: still a valid, empty file
            import pyarrow.parquet as pq

            pq.write_table(self.schema.empty_table() if self.schema else
                           self.pa.table({c: [] for c in self.columns}), self.path)
        else:
            self.writer.close()


def check_output(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"--output {path}: write {', '.join(OUTPUT_SUFFIXES)} "
                         "(the format follows the suffix).")
    if path.is_dir():
        raise UsageError(f"--output {path} is a folder: name a file.")
    if path.suffix.lower() == ".parquet":
        pyarrow()
    return path


def write_file(path: Path, columns: list[str], batches: Iterable[Batch],
               cell: Callable[[str], str], arrow_schema=None) -> int:
    """Write `batches` to `path` by its suffix, under a temporary name renamed at the end
    (a failure leaves no half-written file); the number of rows written."""
    suffix = path.suffix.lower()
    n = 0
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            writer = ParquetWriter(tmp, columns, arrow_schema)
            stream = None
        else:
            stream = open(tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115
            writer = CsvWriter(stream, columns, cell) if suffix == ".csv" else \
                JsonlWriter(stream, columns)
        try:
            for batch in batches:
                writer.write(batch)
                n += len(batch[columns[0]])
            writer.close()
        finally:
            if stream is not None:
                stream.close()
    return n


def stdout_writer(output_format: str, columns: list[str], cell: Callable[[str], str]):
    if output_format == "csv":
        return CsvWriter(sys.stdout, columns, cell)
    if output_format == "json":
        return JsonArrayWriter(sys.stdout, columns)
    return JsonlWriter(sys.stdout, columns)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
