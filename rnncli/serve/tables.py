"""Tabular input and output for `rnncli predict`: csv, tsv, jsonl and Parquet, streamed.

    table = open_table(Path("reviews.parquet"), ["title", "body"])   # text: "title body"
    with open_output(Path("scores.csv"), table.columns) as out:
        for batch in score(table, model.predict_stream):
            out.write(batch)

A batch is a dict of equal-length lists, one per column, in the input's column order; the
scored batch adds `label`, `probability` and `known_words` and, with every label's
probability asked for (`labels`), both `probabilities` (a {label: p} dict per row, what JSON
writes) and one `p_<label>` column per label (what csv and Parquet write). Every column is
kept, so ids travel with their scores. A null or blank text gets label and probability
null, as a blank line of a .txt file does. Reading is text/tables.py's; the writers are here.
"""

from __future__ import annotations

import json
import math
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from rnncli.errors import UsageError
from rnncli.fsutil import atomic_path
from rnncli.text import tables as _reading
from rnncli.text.tables import (  # noqa: F401  (predict and spark read them from here)
    BATCH_ROWS,
    DEFAULT_TEXT_COLUMN,
    INPUT_SUFFIXES,
    Batch,
    Table,
    _first_line,
    did_you_mean,
    is_table,
    pyarrow,
)

OUTPUT_SUFFIXES = (".jsonl", ".csv", ".parquet")
RESULT_COLUMNS = ("label", "probability", "known_words")
PROBABILITIES = "probabilities"  # every label's, as one JSON object
LABEL_PREFIX = "p_"  # a label's probability as a column of its own: p_<label>


def label_columns(labels: Iterable[str]) -> list[str]:
    return [LABEL_PREFIX + label for label in labels]


def probability_columns(labels: Iterable[str] | None, spread: bool) -> list[str]:
    """What every label's probability adds: nothing without `labels`, else one p_<label>
    column each (`spread`: csv, Parquet) or one `probabilities` object (JSON)."""
    if labels is None:
        return []
    return label_columns(labels) if spread else [PROBABILITIES]


def spreads(output_format_or_suffix: str) -> bool:
    """Whether a format writes one column per label rather than a JSON object."""
    return output_format_or_suffix.lower().lstrip(".") in ("csv", "tsv", "parquet")


def check_clash(columns: Iterable[str], labels: Iterable[str], path: str | Path) -> None:
    """Refuse an input column that a label's probability would overwrite."""
    taken = set(columns) & {PROBABILITIES, *label_columns(labels)}
    if taken:
        raise UsageError(f"{path} already has a column {sorted(taken)[0]!r}, which "
                         "--all-probabilities writes: rename or drop it, or drop "
                         "--all-probabilities.")


def open_table(path: str | Path, text_columns: list[str] | None = None) -> Table:
    """The table at `path` to predict: checked now (header, text columns), before any model
    is loaded; an input column that a result would overwrite is refused."""
    return _reading.open_table(path, text_columns, reserved=RESULT_COLUMNS)


def score(table: Table, predict_stream: Callable[[Iterable[str]], Iterable],
          labels: list[str] | None = None) -> Iterator[Batch]:
    """Each batch of `table` with its predictions added, in input order. `predict_stream`
    (rnncli.Model.predict_stream) sees one stream of texts, so its windows and look-ahead
    span batches. With `labels`, the predictions carry every label's probability (asked
    with all_probabilities), added as `probabilities` and p_<label> columns."""
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
            if labels is not None:
                add_probabilities(batch, [q.probabilities for q in got], labels)
            got = []
            yield batch


def add_probabilities(batch: Batch, rows: list[dict | None], labels: list[str]) -> None:
    """Every label's probability of each row (None for a blank text), in both forms."""
    batch[PROBABILITIES] = rows
    for label, column in zip(labels, label_columns(labels)):
        batch[column] = [None if r is None else r[label] for r in rows]


def result_columns(columns: list[str], labels: list[str] | None = None,
                   spread: bool = False) -> list[str]:
    return [*columns, *RESULT_COLUMNS, *probability_columns(labels, spread)]


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


def _json_row(cols: list[str], row: tuple) -> dict:
    d = dict(zip(cols, map(_json_value, row)))
    if isinstance(d.get("probability"), float):
        d["probability"] = round(d["probability"], 6)
    if isinstance(d.get(PROBABILITIES), dict):
        d[PROBABILITIES] = {k: round(v, 6) for k, v in d[PROBABILITIES].items()}
    return d


# predict's own rows: written by _plain_lines, json.dumps' bytes at a fifth of its cost
# (25,000 rows: 0.33 s of a 1.3 s `predict --file` of one-sentence reviews).
PLAIN_COLUMNS = ["line", "text", "label", "probability", "known_words"]


def _plain_lines(batch: Batch) -> list[str]:
    """The lines json.dumps(_json_row(...), ensure_ascii=False) gives for PLAIN_COLUMNS
    rows of an int line, str text, str-or-None label, float-or-None probability and int
    known_words; None where a row is anything else, for the general path."""
    from json.encoder import encode_basestring as quoted

    lines = []
    for n, text, label, p, known in zip(*(batch[c] for c in PLAIN_COLUMNS)):
        if (type(n) is not int or type(text) is not str or type(known) is not int
                or not (label is None or type(label) is str)
                or not (p is None or (type(p) is float and math.isfinite(p)))):
            return None
        lines.append(f'{{"line": {n}, "text": {quoted(text)}, "label": '
                     f'{"null" if label is None else quoted(label)}, "probability": '
                     f'{"null" if p is None else repr(round(p, 6))}, "known_words": {known}}}\n')
    return lines


class JsonlWriter(_Writer):
    def write(self, batch: Batch) -> None:
        write, cols = self.stream.write, self.columns
        if cols == PLAIN_COLUMNS and (lines := _plain_lines(batch)) is not None:
            write("".join(lines))
            return
        for row in _rows(batch, cols):
            write(json.dumps(_json_row(cols, row), ensure_ascii=False, allow_nan=False,
                             default=str) + "\n")


class JsonArrayWriter(JsonlWriter):
    """A JSON array, streamed: the layout json.dumps(rows, indent=2) gives."""

    def __init__(self, stream, columns):
        super().__init__(stream, columns)
        self.first = True

    def write(self, batch: Batch) -> None:
        cols = self.columns
        for row in _rows(batch, cols):
            text = json.dumps(_json_row(cols, row), indent=2, ensure_ascii=False,
                              allow_nan=False, default=str)
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

    def _inputs(self) -> list[str]:
        """The columns before the results (p_<label> columns come after them)."""
        return self.columns[:self.columns.index(RESULT_COLUMNS[0])]

    def _with_results(self, schema):
        pa = self.pa
        inputs = self._inputs()
        fields = [pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
                  for f in schema if f.name in inputs]
        per_label = self.columns[len(inputs) + len(RESULT_COLUMNS):]
        return pa.schema([*fields, pa.field("label", pa.string()),
                          pa.field("probability", pa.float64()),
                          pa.field("known_words", pa.int64()),
                          *(pa.field(c, pa.float64()) for c in per_label)])

    def write(self, batch: Batch) -> None:
        import pyarrow.parquet as pq

        pa = self.pa
        data = {c: batch[c] for c in self.columns}
        if self.schema is None:
            inferred = pa.Table.from_pydict({c: data[c] for c in self._inputs()}).schema
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
