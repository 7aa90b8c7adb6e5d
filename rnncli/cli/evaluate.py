"""`rnncli evaluate`: score a Keras or ONNX model on a split with its own preprocessing.

    $ rnncli evaluate --model artifacts/ --split test --json
    $ rnncli evaluate --model artifacts/ --dataset tickets       # an imported dataset
    $ rnncli evaluate --model artifacts/ --file labelled.csv --label-column label

Scoring 25,000 reviews takes a minute or more: stderr shows how far it is (a bar on a
terminal, a plain line every PLAIN_EVERY seconds otherwise); stdout holds the result only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rnncli.cli.common import (
    Command,
    DataDir,
    Json,
    Limit,
    ModelPath,
    NoCascade,
    Split,
    err,
    handle_errors,
    note,
    out,
    print_json,
    which_model,
)
from rnncli.errors import UsageError
from rnncli.serve import locate

app = typer.Typer(add_completion=False)

PLAIN_EVERY = 15.0  # seconds between plain progress lines where stderr is no terminal


class ScoringProgress:
    """How many reviews are scored, on stderr: a transient rich bar on a terminal; into a
    file or a pipe a plain line every PLAIN_EVERY seconds (none for a short job), never a
    carriage return."""

    def __init__(self, split: str, terminal: bool | None = None, clock=time.monotonic):
        self.split, self.clock = split, clock
        self.terminal = err.real.is_terminal if terminal is None else terminal
        self.bar = self.task = None
        self.last = clock()

    def __enter__(self):
        return self.update

    def update(self, done: int, total: int) -> None:
        if self.terminal:
            if self.bar is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

                self.bar = Progress(TextColumn(f"scoring {self.split} reviews"), BarColumn(),
                                    MofNCompleteColumn(), console=err.real, transient=True)
                self.bar.start()
                self.task = self.bar.add_task("", total=total)
            self.bar.update(self.task, completed=done)
        elif done < total and self.clock() - self.last >= PLAIN_EVERY:
            self.last = self.clock()
            note(f"scored {done:,} of {total:,} {self.split} reviews...")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command("evaluate", cls=Command)
@handle_errors
def evaluate(
    model: ModelPath = None,
    split: Split = "test",
    limit: Limit = None,
    dataset_name: Annotated[str | None, typer.Option(
        "--dataset", metavar="<name>", show_default="the model's own",
        help="Score this prepared dataset's split: an imported one (`rnncli data list`), or "
        "aclimdb / keras. Default: the imported dataset the model was trained on, else the "
        "current IMDB source.")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", metavar="<path>", show_default="none",
        help="Score a labelled file instead (.csv, .tsv, .jsonl, .parquet): its text "
        "column(s) and the label column.")] = None,
    text_columns: Annotated[list[str] | None, typer.Option(
        "--text-column", metavar="<name>", show_default="text",
        help="With --file: the column holding the text; repeat it to join several.")] = None,
    label_column: Annotated[str, typer.Option(
        "--label-column", metavar="<name>",
        help="With --file: the column holding each row's label, by name.")] = "label",
    data_dir: DataDir = None,
    as_json: Json = False,
    no_cascade: NoCascade = False,
) -> None:
    """Accuracy, macro-F1, per-label precision, recall and F1, and the confusion matrix;
    for a binary model also loss, ROC AUC and its positive label's precision, recall, F1.

    num_words, maxlen and padding come from the model's own metadata. Without --model,
    stderr names the model that answered.

    Example: rnncli evaluate --model artifacts/model.onnx --split test
    """
    from rnncli.data import store as dataset
    from rnncli.evaluate import evaluate_file, evaluate_model, model_source
    from rnncli.model import runtime as tf_runtime

    if file is not None and dataset_name is not None:
        raise UsageError("--file and --dataset are two things to score: give one of them.")
    if file is None and (text_columns or label_column != "label"):
        raise UsageError("--text-column and --label-column name columns of a --file: give "
                         "the file too.")
    home = dataset.data_home(data_dir)
    ref = locate.find_model(model)
    loaded = None
    if ref.kind == "onnx":
        from rnncli.serve.onnx_model import OnnxModel

        loaded = OnnxModel(ref.path, cascade=not no_cascade)
    if file is None:
        prep = loaded.preprocessing if loaded else locate.keras_preprocessing(ref.path)
        source = dataset_name or model_source(prep)
        dataset.read_meta(home, source)  # fail fast, before loading a model
    what = "labelled" if file is not None else split
    with tf_runtime.quiet(), ScoringProgress(what) as on_batch:
        if file is not None:
            report = evaluate_file(ref, file, text_columns, label_column, limit,
                                   progress=note, model=loaded, on_batch=on_batch)
        else:
            report = evaluate_model(ref, home, split, limit, progress=note, model=loaded,
                                    on_batch=on_batch, source=source)
    if model is None:  # the user did not choose: say which model answered, every time
        # (once it has: a model refused is then the one line on stderr, naming its path)
        note(which_model(ref, loaded.metadata if loaded else None))
    if as_json:
        return print_json(report)
    where = (f"{file}" if file is not None
             else f"{split} reviews of {report['dataset']}")
    out.print(f"{ref.kind} model {ref.path} on {report['reviews']:,} {where}", markup=False)
    render(report)


def render(report: dict) -> None:
    """The report as tables: the metrics, each label's scores, the confusion matrix."""
    from rich.table import Table

    binary = isinstance(report["confusion_matrix"], dict)
    keys = (("loss", "accuracy", "precision", "recall", "f1", "roc_auc", "macro_f1") if binary
            else ("loss", "accuracy", "macro_f1"))
    table = Table("metric", "value", box=None, pad_edge=False)
    for key in keys:
        table.add_row(key, f"{report[key]:.4f}")
    out.print(table)
    labels = report["labels"]
    per_class = Table("label", "precision", "recall", "f1", "support", box=None,
                      pad_edge=False)
    for label in labels:
        c = report["per_class"][label]
        per_class.add_row(escape(label), f"{c['precision']:.4f}", f"{c['recall']:.4f}",
                          f"{c['f1']:.4f}", f"{c['support']:,}")
    out.print(per_class)
    cm = report["confusion_matrix"]
    if binary:
        cm = [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]]
    width = max(8, *(len(label) for label in labels), *(len(f"{v:,}") for r in cm for v in r))
    lines = ["confusion (rows true, cols predicted):",
             " " * (width + 4) + "  ".join(f"{label:>{width}}" for label in labels)]
    lines += [f"  {label:<{width}}  " + "  ".join(f"{v:>{width},}" for v in row)
              for label, row in zip(labels, cm)]
    out.print("\n".join(lines), markup=False)
