"""`rnncli predict`: sentiment of reviews with an ONNX model; loads no TensorFlow.

    $ rnncli predict "a wonderful, moving film" "a boring waste of time"
    $ rnncli predict --file reviews.txt --format jsonl > scores.jsonl
    $ cat reviews.txt | rnncli predict --format csv       # or: rnncli predict - < reviews.txt

Reviews come from exactly one place: the arguments, `--file PATH` (`-` is stdin), a lone
`-` argument, or stdin when it is not a terminal and nothing else is given (then it must
hold at least one line). Every input gives one output row, numbered by `line` (the
argument's position, or the line in the file): a blank line of a file gets label and
probability null (empty in csv, `-` in the table), so rows stay aligned with the input.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Literal, NamedTuple

import typer

from rnncli.cli.common import Command, ModelPath, handle_errors, json_text, note
from rnncli.config import run_files
from rnncli.errors import UsageError
from rnncli.serve import locate

app = typer.Typer(add_completion=False)

Format = Literal["table", "json", "jsonl", "csv"]
STDIN = "-"
# Large reads: each read lets the model's threads take the interpreter lock, and the
# reading thread then waits to get it back.
READ_BUFFER = 1 << 20


class Row(NamedTuple):
    line: int
    text: str
    label: str | None  # None for a blank line
    probability: float | None
    known_words: int

    def as_dict(self) -> dict:
        p = None if self.probability is None else round(self.probability, 6)
        return {"line": self.line, "text": self.text, "label": self.label, "probability": p,
                "known_words": self.known_words}

    def jsonl(self) -> str:
        """json_text(self.as_dict()), written out directly: one line per review of a file
        is the loop that bounds `--format jsonl`."""
        p = self.probability
        p = "null" if p is None or not math.isfinite(p) else repr(round(p, 6))
        label = "null" if self.label is None else _json_string(self.label)
        return (f'{{"line": {self.line}, "text": {_json_string(self.text)}, "label": {label}, '
                f'"probability": {p}, "known_words": {self.known_words}}}')


def _json_string(s: str) -> str:
    """A JSON string literal, as json_text writes it (ensure_ascii=False)."""
    # On ASCII text without DEL the ASCII encoder writes the same characters, in about half
    # the time.
    if s.isascii() and "\x7f" not in s:
        return json.encoder.encode_basestring_ascii(s)
    return json.encoder.encode_basestring(s)


def read_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, review) for every line of a file (`-` is stdin), streamed; a blank
    line is kept, as an empty review."""
    try:
        stream = sys.stdin.buffer if path == STDIN else open(path, "rb", READ_BUFFER)  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"Cannot read {path} ({exc.strerror}): check --file.") from None
    name = "stdin" if path == STDIN else path
    with stream:
        for number, raw in enumerate(stream, start=1):
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
    """One Row per input line, in input order: the model sees only the non-blank reviews,
    and blank lines are put back between its predictions."""
    pending: deque[tuple[int, str]] = deque()

    def reviews() -> Iterator[str]:
        for number, text in lines:
            pending.append((number, text))
            if text:
                yield text

    for p in predict(reviews()):
        while True:
            number, text = pending.popleft()
            if text:
                yield Row(number, text, p.label, p.probability, p.known_words)
                break
            yield Row(number, text, None, None, 0)
    for number, text in pending:  # blank lines after the last review
        yield Row(number, text, None, None, 0)


@app.command("predict", cls=Command)
@handle_errors
def predict(
    texts: Annotated[list[str] | None, typer.Argument(
        help="Reviews to score; `-` reads them from stdin, one per line.",
        show_default=False)] = None,
    file: Annotated[str | None, typer.Option(
        "--file", show_default="stdin when piped",
        help="One review per line; - reads stdin.")] = None,
    model: ModelPath = None,
    output_format: Annotated[Format, typer.Option(
        "--format", help="Output: an aligned table, a JSON array, JSON lines or CSV.")]
    = "table",
    threshold: Annotated[float | None, typer.Option(
        "--threshold", min=0, max=1, show_default="the model's, 0.5 unless recorded",
        help="Positive at or above this probability.")] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, help="Reviews per model call.")] = 256,
) -> None:
    """Predict the sentiment of reviews: label, probability and known-word count.

    Every input line gives one output row (`line` field); a blank line gets a null label.
    known_words counts the words the model read (the last maxlen of a longer review) that
    are in its vocabulary.

    Example: rnncli predict "a wonderful, moving film" --format json
    """
    from rnncli.serve.api import Model

    source = choose_input(list(texts or []), file)
    ref = locate.find_model(model, prefer="onnx")
    if ref.kind != "onnx":
        raise UsageError(f"{ref.path} is a Keras model; predict serves ONNX: run "
                         f"`rnncli export onnx --model {ref.path.parent}` first.")
    if ref.bundled:
        note(f"No model in {run_files.DEFAULT_OUTPUT}/: using the bundled model {ref.path}")
    served = Model(ref.path, bundled=ref.bundled)
    rows = aligned(source, lambda reviews: served.predict_stream(reviews, threshold,
                                                                 batch_size))
    write_rows(rows, output_format)


def write_rows(rows: Iterable[Row], output_format: str) -> None:
    write = sys.stdout.write
    if output_format == "jsonl":
        for r in rows:
            write(r.jsonl() + "\n")
    elif output_format == "json":
        write(json_text([r.as_dict() for r in rows], indent=2) + "\n")
    elif output_format == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["line", "label", "probability", "known_words", "text"])
        for r in rows:
            p = "" if r.probability is None else f"{r.probability:.6f}"
            writer.writerow([r.line, r.label or "", p, r.known_words, r.text])
    else:
        for r in rows:
            shown = r.text if len(r.text) <= 60 else r.text[:57] + "..."
            p = "     -" if r.probability is None else f"{r.probability:6.3f}"
            write(f"{r.line:>4}  {r.label or '-':<8} {p}  {r.known_words:>4} known  {shown}\n")
