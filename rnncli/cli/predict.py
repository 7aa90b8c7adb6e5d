"""`rnncli predict`: sentiment of reviews with an ONNX model; loads no TensorFlow.

    $ rnncli predict "a wonderful, moving film" "a boring waste of time"
    $ rnncli predict --file reviews.txt --format jsonl > scores.jsonl
    $ cat reviews.txt | rnncli predict --format csv       # or: rnncli predict - < reviews.txt
    $ rnncli predict --file reviews.parquet --text-column body --output scores.parquet
    $ rnncli predict --engine spark --file reviews.parquet --output scored.parquet

Reviews come from exactly one place: the arguments, `--file PATH` (`-` is stdin), a lone
`-` argument, or stdin when it is not a terminal and nothing else is given (then it must
hold at least one line). Every input gives one output row, numbered by `line` (the
argument's position, or the line in the file): a blank line of a file gets label and
probability null (empty in csv, `-` in the table), so rows stay aligned with the input.
A line is a review of at most MAX_LINE_BYTES, read in bounded pieces.

A model of K > 2 labels prints the most probable label and its probability.
`--all-probabilities` adds every label's: a "probabilities" object {label: p} in JSON, one
`p_<label>` column per label in csv and Parquet, a `label=p` list in the table.

A .csv, .tsv, .jsonl or .parquet file is a table (rnncli/serve/tables.py): --text-column
names the review (repeated: joined by a space), every column is kept beside the scores, and
a null text gets nulls. --output writes .jsonl, .csv or .parquet by its suffix, under a
temporary name renamed at the end. `--engine spark` scores the file inside Spark
(rnncli/serve/spark.py) and writes a Parquet folder.

Texts are written as data, never as instructions to what reads them: csv quotes a field
holding a carriage return (a bare one ends a row for most readers) and starts a cell that a
spreadsheet would run as a formula (= + - @ tab, carriage return) with a single quote, as
OWASP advises for CSV injection; the table drops terminal escape sequences and control
characters. JSON escapes them all by itself.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Literal, NamedTuple

import typer

from rnncli.cli.common import (
    Command,
    NoCascade,
    OnnxModelPath,
    handle_errors,
    json_text,
    note,
    which_model,
)
from rnncli.errors import UsageError
from rnncli.serve import locate

app = typer.Typer(add_completion=False)

Format = Literal["table", "json", "jsonl", "csv"]
Engine = Literal["local", "spark"]
STDIN = "-"
# Large reads: each read lets the model's threads take the interpreter lock, and the
# reading thread then waits to get it back.
READ_BUFFER = 1 << 20
# The longest line read as one review: the data side's cap on a review file
# (rnncli.data.archive.MAX_REVIEW_BYTES, not imported: its module costs `predict` start-up
# time; a test checks that the two agree). A longer line, or an endless one (/dev/zero), is
# refused after reading this much of it, never held whole in memory.
MAX_LINE_BYTES = 1 << 20


class Row(NamedTuple):
    line: int
    text: str
    label: str | None  # None for a blank line
    probability: float | None
    known_words: int
    probabilities: dict[str, float] | None = None  # with --all-probabilities

    def as_dict(self, with_probabilities: bool = False) -> dict:
        p = None if self.probability is None else round(self.probability, 6)
        d = {"line": self.line, "text": self.text, "label": self.label, "probability": p,
             "known_words": self.known_words}
        if with_probabilities:
            d["probabilities"] = None if self.probabilities is None else {
                k: round(v, 6) for k, v in self.probabilities.items()}
        return d

    def jsonl(self, with_probabilities: bool = False) -> str:
        """json_text(self.as_dict()), written out directly: one line per review of a file
        is the loop that bounds `--format jsonl`."""
        p = self.probability
        p = "null" if p is None or not math.isfinite(p) else repr(round(p, 6))
        label = "null" if self.label is None else _json_string(self.label)
        every = ""
        if with_probabilities and self.probabilities is None:
            every = ', "probabilities": null'
        elif with_probabilities:
            every = ', "probabilities": {' + ", ".join(
                f"{_json_string(k)}: {round(v, 6)!r}" for k, v in self.probabilities.items()) + "}"
        return (f'{{"line": {self.line}, "text": {_json_string(self.text)}, "label": {label}, '
                f'"probability": {p}, "known_words": {self.known_words}{every}}}')


def _json_string(s: str) -> str:
    """A JSON string literal, as json_text writes it (ensure_ascii=False)."""
    # On ASCII text without DEL the ASCII encoder writes the same characters, in about half
    # the time.
    if s.isascii() and "\x7f" not in s:
        return json.encoder.encode_basestring_ascii(s)
    return json.encoder.encode_basestring(s)


def read_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, review) for every line of a file (`-` is stdin), streamed; a blank
    line is kept, as an empty review. The file is opened (and a closed stdin refused) at
    the call, before any model is loaded."""
    name = "stdin" if path == STDIN else path
    if path == STDIN:
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None or stream.closed:  # `rnncli predict - <&-`: Python sets stdin None
            raise UsageError("stdin is closed: pipe reviews in (rnncli predict - < "
                             "reviews.txt) or give them as arguments.")
    else:
        try:
            stream = open(path, "rb", READ_BUFFER)  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"Cannot read {path} ({exc.strerror}): check --file.") from None
    return _lines(stream, name)


def _lines(stream, name: str) -> Iterator[tuple[int, str]]:
    with stream:
        for number in itertools.count(1):
            # At most one byte past the cap: a line is never read whole before it is judged.
            raw = stream.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            if len(raw) > MAX_LINE_BYTES and not (len(raw) == MAX_LINE_BYTES + 1
                                                  and raw.endswith(b"\n")):
                raise UsageError(f"Line {number} of {name} is longer than {MAX_LINE_BYTES:,} "
                                 "bytes, the most one review may hold: put one review per "
                                 "line.")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UsageError(f"Line {number} of {name} is not UTF-8: convert the file "
                                 "(e.g. iconv -t utf-8).") from None
            yield number, line.strip()


def _stdin_is_piped() -> bool:
    try:
        return sys.stdin is not None and not sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced
        return False


def choose_input(texts: list[str], file: str | None) -> Iterable[tuple[int, str]]:
    """The one source of reviews the arguments name (see the module docstring)."""
    if texts and file:
        raise UsageError("Give reviews as arguments or with --file, not both: put the "
                         "arguments in the file, or drop --file.")
    if texts == [STDIN]:
        return read_lines(STDIN)
    if texts:
        if STDIN in texts:
            raise UsageError("`-` (read stdin) must be the only argument: "
                             "rnncli predict - < reviews.txt")
        for i, t in enumerate(texts, start=1):
            if not t.strip():
                raise UsageError(f"Review {i} is empty: give some text to predict.")
        return list(enumerate(texts, start=1))
    if file:
        return read_lines(file)
    nothing = UsageError("Nothing to predict: give a review as an argument, --file PATH, or "
                         "pipe reviews on stdin (one per line).")
    if not _stdin_is_piped():
        raise nothing
    # Read only because nothing else was given: an empty stdin (a script run with
    # </dev/null) is more likely a mistake than an empty input, unlike an explicit `-`.
    lines = read_lines(STDIN)
    first = next(lines, None)
    if first is None:
        raise nothing
    return itertools.chain([first], lines)


def aligned(lines: Iterable[tuple[int, str]],
            predict: Callable[[Iterable[str]], Iterable]) -> Iterator[Row]:
    """One Row per input line, in input order: `predict` (Model.predict_stream) gives one
    prediction per text, with label and probability None for a blank one."""
    numbers: deque[int] = deque()

    def texts() -> Iterator[str]:
        for number, text in lines:
            numbers.append(number)
            yield text

    for p in predict(texts()):
        yield Row(numbers.popleft(), p.text, p.label, p.probability, p.known_words,
                  p.probabilities)


@app.command("predict", cls=Command)
@handle_errors
def predict(
    texts: Annotated[list[str] | None, typer.Argument(
        help="Reviews to score; `-` reads them from stdin, one per line.",
        show_default=False)] = None,
    file: Annotated[str | None, typer.Option(
        "--file", metavar="<path>", show_default="stdin when piped",
        help="One review per line; - reads stdin.")] = None,
    model: OnnxModelPath = None,
    output_format: Annotated[Format, typer.Option(
        "--format", help="Output: an aligned table, a JSON array, JSON lines or CSV (where "
        "a cell starting with = + - @ gets a ' first, so no spreadsheet runs it).")]
    = "table",
    threshold: Annotated[float | None, typer.Option(
        "--threshold", min=0, max=1, show_default="the model's, 0.5 unless recorded",
        help="Positive at or above this probability.")] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, help="Reviews per model call.")] = 256,
    text_column: Annotated[list[str] | None, typer.Option(
        "--text-column", metavar="<name>", show_default="text",
        help="The review column of a .csv/.tsv/.jsonl/.parquet file; repeat to join "
        "several with a space. Every other column is kept in the output.")] = None,
    output: Annotated[str | None, typer.Option(
        "--output", metavar="<path>", show_default="stdout",
        help="Write .jsonl, .csv or .parquet (by the suffix) instead of stdout; with "
        "--engine spark, a Parquet folder.")] = None,
    engine: Annotated[Engine, typer.Option(
        "--engine", help="Score here, or inside Spark (pip install \"rnncli\\[spark]\").")]
    = "local",
    master: Annotated[str, typer.Option(
        "--master", metavar="<url>", help="Spark master for --engine spark.")] = "local[*]",
    verbose: Annotated[bool, typer.Option(
        "--verbose", help="Explain on stderr how the model is run: graph, batching, threads.")]
    = False,
    all_probabilities: Annotated[bool, typer.Option(
        "--all-probabilities", help="Also every label's probability: a probabilities object "
        "in JSON, p_<label> columns in csv and Parquet, label=p in the table.")] = False,
    no_cascade: NoCascade = False,
) -> None:
    """Predict the sentiment of reviews: label, probability and known-word count.

    Every input line gives one output row (`line` field); a blank line gets a null label.
    A model of more than 2 labels gives the most probable and its probability.
    known_words counts the words the model read (the last maxlen of a longer review) that
    are in its vocabulary. Without --model, stderr names the model that answered.

    Example: rnncli predict "a wonderful, moving film" --format json
    """
    if engine == "spark":
        if no_cascade:
            raise UsageError("--no-cascade is for local scoring; with --engine spark the "
                             "model's cascade runs as stored: drop one of them.")
        return predict_spark(list(texts or []), file, model, output, text_column, threshold,
                             master, all_probabilities)
    if file not in (None, STDIN) and _is_table(file):
        return predict_table(file, model, output_format, threshold, batch_size, text_column,
                             output, all_probabilities, not no_cascade)
    if text_column:
        raise UsageError("--text-column names a column of a .csv, .tsv, .jsonl or .parquet "
                         "file; reviews one a line have none: drop it.")
    if output is not None:
        from rnncli.serve import tables

        tables.check_output(output)
    source = choose_input(list(texts or []), file)
    ref, served = load_model(model, threshold, not no_cascade)
    if verbose:
        for line in explain(ref, served, batch_size):
            sys.stderr.write(line + "\n")
    rows = aligned(source, lambda reviews: served.predict_stream(reviews, threshold,
                                                                 batch_size, all_probabilities))
    if model is None:  # the user did not choose: say which model answers, every time
        rows = announced(rows, which_model(ref, served.metadata))
    labels = list(served.labels) if all_probabilities else None
    if output is not None:
        write_lines_file(rows, output, labels)
        return
    write_rows(rows, output_format, labels)


def _is_table(path: str) -> bool:
    return path.lower().endswith((".csv", ".tsv", ".jsonl", ".parquet"))  # tables.is_table


def load_model(model, threshold: float | None = None, cascade: bool = True):
    """(where the model is, the loaded Model), with --threshold checked against it;
    `cascade` False runs the network on every review."""
    from rnncli.serve.api import Model

    ref = locate.find_model(model, prefer="onnx")
    if ref.kind != "onnx":
        raise UsageError(f"{ref.path} is a Keras model; predict serves ONNX: run "
                         f"`rnncli export onnx --model {ref.path.parent}` first.")
    served = Model(ref.path, bundled=ref.bundled, cascade=cascade)
    served.onnx_model.check_threshold(threshold)  # before any output
    return ref, served


def write_lines_file(rows: Iterable[Row], output: str, labels: list[str] | None = None) -> None:
    """Rows of a .txt input (or arguments) written to --output by its suffix; with
    `labels`, every label's probability too."""
    from pathlib import Path

    from rnncli.serve import tables

    base = ["line", "text", "label", "probability", "known_words"]
    columns = base + tables.probability_columns(labels, tables.spreads(Path(output).suffix))

    def batches():
        for chunk in iter(lambda: list(itertools.islice(rows, tables.BATCH_ROWS)), []):
            batch = {c: [getattr(r, c) for r in chunk] for c in base}
            if labels is not None:
                tables.add_probabilities(batch, [r.probabilities for r in chunk], labels)
            yield batch

    n = tables.write_file(Path(output), columns, batches(), csv_cell)
    note(f"Wrote {n:,} rows to {output}.")


def predict_table(file: str, model, output_format: str, threshold: float | None,
                  batch_size: int, text_column: list[str] | None, output: str | None,
                  all_probabilities: bool = False, cascade: bool = True) -> None:
    """A .csv/.tsv/.jsonl/.parquet file: its columns kept, its text column scored."""
    from pathlib import Path

    from rnncli.serve import tables

    if output is not None:
        tables.check_output(output)
    table = tables.open_table(file, text_column)  # header and columns checked first
    ref, served = load_model(model, threshold, cascade)
    labels = list(served.labels) if all_probabilities else None
    if labels is not None:
        tables.check_clash(table.columns, labels, file)
    batches = tables.score(table, lambda reviews: served.predict_stream(
        reviews, threshold, batch_size, all_probabilities), labels)
    if model is None:
        batches = announced(batches, which_model(ref, served.metadata))
    columns = tables.result_columns(table.columns, labels, tables.spreads(
        Path(output).suffix if output is not None else output_format))
    if output is not None:
        n = tables.write_file(Path(output), columns, batches, csv_cell, table.arrow_schema)
        note(f"Wrote {n:,} rows to {output}.")
    elif output_format == "table":
        write = sys.stdout.write
        number = 0
        for batch in batches:
            every = batch.get(tables.PROBABILITIES) or itertools.repeat(None)
            for text, label, p, known, ps in zip(table.texts(batch), batch["label"],
                                                 batch["probability"], batch["known_words"],
                                                 every):
                number += 1
                write(table_line(number, label, p, known, text, ps, labels))
    else:
        writer = tables.stdout_writer(output_format, columns, csv_cell)
        for batch in batches:
            writer.write(batch)
        writer.close()


def predict_spark(texts: list[str], file: str | None, model, output: str | None,
                  text_column: list[str] | None, threshold: float | None,
                  master: str, all_probabilities: bool = False) -> None:
    """`--engine spark`: the file scored inside Spark, written as a Parquet folder."""
    from rnncli.serve import spark

    if texts or file in (None, STDIN):
        raise UsageError("--engine spark reads a file or folder: give --file PATH (.parquet, "
                         ".csv, .tsv, .jsonl or .txt), not arguments or stdin.")
    if output is None:
        raise UsageError("--engine spark writes a Parquet folder: give --output PATH.")
    n = spark.predict_file(file, output, model, text_column, threshold, master,
                           all_probabilities=all_probabilities)
    note(f"Wrote {n:,} rows to {output} (Parquet, with Spark on {master}).")


def announced(rows: Iterable[Row], message: str) -> Iterator[Row]:
    """`rows`, with `message` noted on stderr once the first one is ready (or the input
    is found empty): a bad first line or a broken model is then the one line on stderr."""
    rows = iter(rows)
    first = next(rows, None)
    note(message)
    if first is not None:
        yield first
        yield from rows


def explain(ref, served, batch_size: int) -> list[str]:
    """What --verbose says: which model, and how its graph is fed (all from its metadata)."""
    from rnncli.serve import contract

    meta, inner = served.metadata, served.onnx_model
    lines = [f"model: {ref.path}" + (" (the bundled model)" if ref.bundled else "")]
    if inner.takes_text:
        lines.append("graph: takes review text and tokenizes it in the graph; reviews are "
                     "grouped by length")
    else:
        trims = inner.trim
        lines.append(f"graph: {meta.get(contract.GRAPH, 'unknown kind')}; "
                     + ("batches of similar length, each cut to its longest review"
                        if trims else "every row padded to maxlen")
                     + (f" ({inner.preprocessing.padding}-padded, maxlen "
                        f"{inner.preprocessing.maxlen})"))
        if meta.get(contract.SKIPS_PAD_STEPS) == "true":
            lines.append("graph: shorter rows run fewer recurrent steps")
        if inner.full_length_batch is not None:
            lines.append(f"graph: batches over {inner.full_length_batch} rows run at full "
                         "length (the faster branch for many rows)")
    lines.append(f"batches: up to {batch_size} reviews per call, {inner.workers} thread(s) "
                 "and, for large inputs, as many tokenizer processes")
    floor = meta.get(contract.MIN_ONNXRUNTIME)
    if floor:
        import onnxruntime

        lines.append(f"onnxruntime {onnxruntime.__version__} (the file needs {floor} or later)")
    return lines


def write_rows(rows: Iterable[Row], output_format: str,
               labels: list[str] | None = None) -> None:
    """`rows` to stdout; with `labels`, every label's probability too."""
    write = sys.stdout.write
    every = labels is not None
    if output_format == "jsonl":
        for r in rows:
            write(r.jsonl(every) + "\n")
    elif output_format == "json":
        write(json_text([r.as_dict(every) for r in rows], indent=2) + "\n")
    elif output_format == "csv":
        rows = iter(rows)
        first = next(rows, None)  # a model refused on the first batch leaves stdout empty
        per_label = "".join("," + csv_cell(f"p_{label}") for label in labels or [])
        write(f"line,label,probability,known_words{per_label},text\n")
        for r in itertools.chain([] if first is None else [first], rows):
            p = "" if r.probability is None else f"{r.probability:.6f}"
            ps = "".join("," + ("" if r.probabilities is None else
                                f"{r.probabilities[label]:.6f}") for label in labels or [])
            write(f"{r.line},{csv_cell(r.label or '')},{p},{r.known_words}{ps},"
                  f"{csv_cell(r.text)}\n")
    else:
        for r in rows:
            write(table_line(r.line, r.label, r.probability, r.known_words, r.text,
                             r.probabilities, labels))


def table_line(number: int, label: str | None, p: float | None, known: int, text: str,
               probabilities: dict[str, float] | None = None,
               labels: list[str] | None = None) -> str:
    """One row of the terminal table; with `labels`, every label's probability as a
    compact label=p list before the text."""
    text = terminal_text(text)
    shown = text if len(text) <= 60 else text[:57] + "..."
    p = "     -" if p is None else f"{p:6.3f}"
    every = ""
    if labels is not None:
        every = (" ".join(f"{k}={v:.3f}" for k, v in probabilities.items())
                 if probabilities is not None else "-") + "  "
    return f"{number:>4}  {label or '-':<8} {p}  {known:>4} known  {every}{shown}\n"


# Cells a spreadsheet reads as a formula (OWASP, "CSV Injection"): prefixed with ' .
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# What makes a CSV field need quotes. The csv module quotes \n, but \r only when its own
# line terminator holds one: with "\n" rows it writes a bare \r, which ends the row for
# most readers (Python's csv among them, and spreadsheets).
_CSV_SPECIAL = re.compile(r'[",\r\n]')


def csv_cell(text: str) -> str:
    """`text` as one CSV field (RFC 4180 quoting) that no spreadsheet runs as a formula."""
    if text.startswith(FORMULA_START):
        text = "'" + text
    if _CSV_SPECIAL.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


# ECMA-48 escape sequences: CSI (ESC [ or 0x9B ... final byte), OSC/DCS/SOS/PM/APC strings
# (up to BEL or ST), and two-character escapes. Removed whole, so no leftover parameters
# ("[31m") reach the table.
_ESCAPE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
                     r"|(?:\x1b[]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
                     r"|\x1b[ -/]*[0-~]?")


def terminal_text(text: str) -> str:
    """`text` for one row of the table: escape sequences removed, tabs and line breaks as
    spaces, other control and format characters (bidi overrides, zero-width) dropped."""
    if text.isprintable():
        return text
    text = _ESCAPE.sub("", text)
    return "".join(c if c.isprintable() else " " if c.isspace() else "" for c in text)
