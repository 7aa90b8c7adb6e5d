"""`rnncli evaluate`: score a Keras or ONNX model on a split with its own preprocessing.

    $ rnncli evaluate --model artifacts/ --split test --json
"""

from __future__ import annotations

from pathlib import Path

import typer

from rnncli import dataset, runs, tf_runtime
from rnncli.cli.common import err, handle_errors, out, print_json


@handle_errors
def evaluate(
    model: Path = typer.Option(None, "--model",
                               help="Run folder, .keras or .onnx [artifacts/, else bundled]."),
    split: str = typer.Option("test", "--split", help="train or test."),
    limit: int = typer.Option(None, "--limit", help="Score the first N reviews only."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="RNNCLI_HOME", help="Data home."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Loss, accuracy, precision, recall, F1, ROC AUC and the confusion matrix.

    num_words, maxlen and padding come from the model's own metadata.

    Example: rnncli evaluate --model artifacts/model.onnx --split test
    """
    from rnncli.evaluation import evaluate_model

    home = dataset.data_home(data_dir)
    dataset.read_meta(home)  # fail fast, before loading a model
    ref = runs.find_model(model)
    if ref.bundled:
        err.print(f"No model in {runs.DEFAULT_OUTPUT}/: using the bundled model {ref.path}")
    with tf_runtime.quiet():
        report = evaluate_model(ref, home, split, limit)
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
