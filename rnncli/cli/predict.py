"""`rnncli predict`: sentiment of reviews with an ONNX model; loads no TensorFlow.

    $ rnncli predict "a wonderful, moving film" "a boring waste of time"
    $ rnncli predict --file reviews.txt --format jsonl > scores.jsonl
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from rnncli import runs
from rnncli.cli.common import err, handle_errors
from rnncli.errors import UsageError

FORMATS = ("table", "json", "jsonl", "csv")


def read_lines(path: str) -> Iterator[str]:
    """Reviews from a file, one per line (`-` is stdin), streamed; blank lines skipped."""
    try:
        stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"Cannot read {path} ({exc.strerror}): check --file.") from None
    name = "stdin" if path == "-" else path
    with stream:
        for number, raw in enumerate(stream, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UsageError(f"Line {number} of {name} is not UTF-8: convert the file "
                                 "(e.g. iconv -t utf-8).") from None
            line = line.strip()
            if line:
                yield line


def check_texts(texts: list[str]) -> list[str]:
    for i, t in enumerate(texts, start=1):
        if not t.strip():
            raise UsageError(f"Review {i} is empty: give some text to predict.")
    return texts


@handle_errors
def predict(
    texts: list[str] = typer.Argument(None, help="Reviews to score."),
    file: str = typer.Option(None, "--file", help="One review per line; - reads stdin."),
    model: Path = typer.Option(None, "--model",
                               help="ONNX file or run folder [artifacts/, else bundled]."),
    output_format: str = typer.Option("table", "--format", help="table, json, jsonl or csv."),
    threshold: float = typer.Option(None, "--threshold", help="Positive at or above [0.5]."),
    batch_size: int = typer.Option(256, "--batch-size", help="Reviews per model call."),
) -> None:
    """Predict the sentiment of reviews: label, probability and known-word count.

    Example: rnncli predict "a wonderful, moving film" --format json
    """
    from rnncli.inference import OnnxModel

    if output_format not in FORMATS:
        raise UsageError(f"--format {output_format!r} is not known: use {', '.join(FORMATS)}.")
    if threshold is not None and not 0 <= threshold <= 1:
        raise UsageError(f"--threshold {threshold} must be between 0 and 1.")
    if batch_size < 1:
        raise UsageError(f"--batch-size {batch_size} must be 1 or more.")
    if not texts and not file:
        raise UsageError("Nothing to predict: give a review as an argument or --file PATH.")
    ref = runs.find_model(model, prefer="onnx")
    if ref.kind != "onnx":
        raise UsageError(f"{ref.path} is a Keras model; predict serves ONNX: run "
                         f"`rnncli export onnx --model {ref.path.parent}` first.")
    if ref.bundled:
        err.print(f"No model in {runs.DEFAULT_OUTPUT}/: using the bundled model {ref.path}")
    onnx_model = OnnxModel(ref.path)
    source = read_lines(file) if file else iter(check_texts(list(texts)))
    results = onnx_model.predict_stream(source, batch_size, threshold)
    write = sys.stdout.write
    if output_format == "jsonl":
        for r in results:
            write(json.dumps(_row(r), ensure_ascii=False) + "\n")
    elif output_format == "json":
        write(json.dumps([_row(r) for r in results], indent=2, ensure_ascii=False) + "\n")
    elif output_format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["label", "probability", "known_words", "text"])
        for r in results:
            writer.writerow([r.label, f"{r.probability:.6f}", r.known_words, r.text])
    else:
        for r in results:
            shown = r.text if len(r.text) <= 60 else r.text[:57] + "..."
            write(f"{r.label:<8} {r.probability:6.3f}  {r.known_words:>4} known  {shown}\n")


def _row(r) -> dict:
    return {"text": r.text, "label": r.label, "probability": round(r.probability, 6),
            "known_words": r.known_words}
