"""`rnncli evaluate`: score a Keras or ONNX model on a split with its own preprocessing.

    $ rnncli evaluate --model artifacts/ --split test --json

Scoring 25,000 reviews takes a minute or more: stderr shows how far it is (a bar on a
terminal, a plain line every PLAIN_EVERY seconds otherwise); stdout holds the result only.
"""

from __future__ import annotations

import time

import typer

from rnncli.cli.common import (
    Command,
    DataDir,
    Json,
    Limit,
    ModelPath,
    Split,
    err,
    handle_errors,
    note,
    out,
    print_json,
    which_model,
)
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
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Loss, accuracy, precision, recall, F1, ROC AUC and the confusion matrix.

    num_words, maxlen and padding come from the model's own metadata. Without --model,
    stderr names the model that answered.

    Example: rnncli evaluate --model artifacts/model.onnx --split test
    """
    from rnncli.data import store as dataset
    from rnncli.evaluate import evaluate_model
    from rnncli.model import runtime as tf_runtime

    home = dataset.data_home(data_dir)
    dataset.read_meta(home)  # fail fast, before loading a model
    ref = locate.find_model(model)
    loaded = None
    if ref.kind == "onnx":
        from rnncli.serve.onnx_model import OnnxModel

        loaded = OnnxModel(ref.path)
    with tf_runtime.quiet(), ScoringProgress(split) as on_batch:
        report = evaluate_model(ref, home, split, limit, progress=note, model=loaded,
                                on_batch=on_batch)
    if model is None:  # the user did not choose: say which model answered, every time
        # (once it has: a model refused is then the one line on stderr, naming its path)
        note(which_model(ref, loaded.metadata if loaded else None))
    if as_json:
        return print_json(report)
    out.print(f"{ref.kind} model {ref.path} on {report['reviews']:,} {split} reviews")
    from rich.table import Table

    table = Table("metric", "value", box=None, pad_edge=False)
    for key in ("loss", "accuracy", "precision", "recall", "f1", "roc_auc"):
        table.add_row(key, f"{report[key]:.4f}")
    out.print(table)
    cm = report["confusion_matrix"]
    out.print(f"confusion (rows true, cols predicted):\n"
              f"              negative  positive\n"
              f"  negative  {cm['tn']:>8,}  {cm['fp']:>8,}\n"
              f"  positive  {cm['fn']:>8,}  {cm['tp']:>8,}")
