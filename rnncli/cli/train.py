"""`rnncli train`: fit a recurrent sentiment model on the prepared IMDB data.

    $ rnncli train                       # the reference recipe, 10 epochs
    $ rnncli train --cell lstm --epochs 3 --output artifacts/lstm
"""

from __future__ import annotations

from pathlib import Path

import typer

from rnncli import config, dataset, runs
from rnncli.cli.common import err, fail, handle_errors, out


class ProgressReporter:
    """A rich bar per epoch on stderr, then one fixed-format line per epoch."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err.real, transient=True)
        self.task = None

    def epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("", total=steps)
        self.bar.reset(self.task, total=steps, description=f"epoch {epoch}/{epochs}")

    def batch_end(self, step: int) -> None:
        self.bar.update(self.task, completed=step)

    def epoch_end(self, epoch: int, epochs: int, logs: dict, seconds: float) -> None:
        err.print(format_epoch(epoch, epochs, logs, seconds), markup=False)

    def close(self) -> None:
        if self.task is not None:
            self.bar.stop()


def format_epoch(epoch: int, epochs: int, logs: dict, seconds: float) -> str:
    width = len(str(epochs))
    return (f"epoch {epoch:>{width}}/{epochs} loss {logs.get('loss', float('nan')):.4f} "
            f"acc {logs.get('accuracy', float('nan')):.4f} "
            f"val_loss {logs.get('val_loss', float('nan')):.4f} "
            f"val_acc {logs.get('val_accuracy', float('nan')):.4f} {seconds:6.1f}s")


def curves_chart(history: list[dict], height: int = 8) -> str:
    """Accuracy and validation accuracy per epoch as a small terminal chart."""
    series = {"acc": [h.get("accuracy", 0) for h in history],
              "val": [h.get("val_accuracy", 0) for h in history]}
    values = [v for s in series.values() for v in s]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    rows = []
    for r in range(height, -1, -1):
        level = lo + span * r / height
        cells = []
        for a, v in zip(series["acc"], series["val"]):
            ra, rv = round((a - lo) / span * height), round((v - lo) / span * height)
            cells.append("*" if ra == rv == r else "o" if ra == r else "x" if rv == r else " ")
        rows.append(f"{level:6.3f} |" + "  ".join(cells))
    rows.append("       +" + "-" * (3 * len(history) - 2))
    rows.append("        " + "".join(f"{i + 1:<3}" for i in range(len(history))) + " epoch")
    rows.append("        o train accuracy   x validation accuracy   * both")
    return "\n".join(rows)


def save_png(history: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from rnncli.fsutil import atomic_path

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, ax in (("loss", ax1), ("accuracy", ax2)):
        ax.plot(epochs, [h[key] for h in history], "o-", label=f"train {key}")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], "x-", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True


@handle_errors
def train(
    preset: str = typer.Option(None, "--preset",
                               help=f"Named settings: {', '.join(config.PRESETS)}."),
    config_file: Path = typer.Option(None, "--config", help="TOML file; options override it."),
    cell: str = typer.Option(None, "--cell", help="simple, lstm or gru."),
    units: int = typer.Option(None, "--units", help="Recurrent units per layer [32]."),
    layers: int = typer.Option(None, "--layers", help="Stacked recurrent layers [1]."),
    bidirectional: bool = typer.Option(None, "--bidirectional/--unidirectional",
                                       help="Read reviews both ways."),
    embedding_dim: int = typer.Option(None, "--embedding-dim", help="Embedding size [128]."),
    pooling: str = typer.Option(None, "--pooling",
                                help="last, max, mean or masked-max over time [last]."),
    head_dropout: float = typer.Option(None, "--head-dropout",
                                       help="Dropout before the dense layer [0]."),
    num_words: int = typer.Option(None, "--num-words", help="Vocabulary cut [1000]."),
    maxlen: int = typer.Option(None, "--maxlen", help="Tokens per review [80]."),
    padding: str = typer.Option(None, "--padding", help="pre or post [pre]."),
    truncating: str = typer.Option(None, "--truncating", help="pre or post [pre]."),
    dropout: float = typer.Option(None, "--dropout", help="Input dropout of recurrent layers."),
    recurrent_dropout: float = typer.Option(None, "--recurrent-dropout",
                                            help="Dropout on the recurrent state."),
    batch_size: int = typer.Option(None, "--batch-size", help="Batch size [32]."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs [10]."),
    learning_rate: float = typer.Option(None, "--learning-rate", help="Adam learning rate."),
    clipnorm: float = typer.Option(None, "--clipnorm", help="Gradient norm clip [1.0]; 0 off."),
    clipvalue: float = typer.Option(None, "--clipvalue", help="Gradient value clip; 0 off."),
    validation_split: float = typer.Option(None, "--validation-split", help="Held out [0.2]."),
    early_stopping: int = typer.Option(None, "--early-stopping", metavar="PATIENCE",
                                       help="Stop after PATIENCE epochs without improvement."),
    monitor: str = typer.Option(None, "--monitor", help="val_accuracy or val_loss."),
    seed: int = typer.Option(None, "--seed", help="Random seed [1337]."),
    crop_prob: float = typer.Option(None, "--crop-prob",
                                    help="Share of reviews cropped to a random window [0]."),
    crop_min: int = typer.Option(None, "--crop-min", help="Shortest crop, in words [8]."),
    crop_max: int = typer.Option(None, "--crop-max", help="Longest crop, in words [80]."),
    bucket: bool = typer.Option(None, "--bucket/--no-bucket",
                                help="Batches of similar length [on for masked-max]."),
    teacher: list[Path] = typer.Option(None, "--teacher",
                                       help="Run folder of a masked-max model to distil from "
                                            "(repeat for several)."),
    distill_weight: float = typer.Option(None, "--distill-weight",
                                         help="Weight of the teachers in the target [0.7]."),
    limit: int = typer.Option(None, "--limit", help="Train on the first N reviews only."),
    strategy: str = typer.Option(None, "--strategy", help="default, mirrored or multi-worker."),
    jit: bool = typer.Option(None, "--jit/--no-jit", help="XLA compilation [on]."),
    unroll: bool = typer.Option(None, "--unroll/--no-unroll",
                                help="Unroll the time loop [SimpleRNN, maxlen <= 100]."),
    cpu_devices: int = typer.Option(None, "--cpu-devices", hidden=True,
                                    help="Split the CPU into N logical devices."),
    output: Path = typer.Option(runs.DEFAULT_OUTPUT, "--output", help="Run folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run in --output."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="RNNCLI_HOME", help="Data home."),
) -> None:
    """Train Embedding -> SimpleRNN/LSTM/GRU -> Dense on the prepared IMDB train split.

    Defaults are the reference recipe (num_words 1000, maxlen 80, SimpleRNN(32), adam,
    batch 32, 10 epochs, validation split 0.2) plus gradient clipping and best-epoch restore.

    Example: rnncli train --cell lstm --epochs 5 --output artifacts/lstm
    """
    from rnncli.training import train as run_training

    overrides = dict(cell=cell, units=units, layers=layers, bidirectional=bidirectional,
                     embedding_dim=embedding_dim, pooling=pooling, head_dropout=head_dropout,
                     crop_prob=crop_prob, crop_min=crop_min, crop_max=crop_max, bucket=bucket,
                     teachers=[str(p) for p in teacher] if teacher else None,
                     distill_weight=distill_weight,
                     num_words=num_words,
                     maxlen=maxlen, padding=padding, truncating=truncating, dropout=dropout,
                     recurrent_dropout=recurrent_dropout, batch_size=batch_size, epochs=epochs,
                     learning_rate=learning_rate, clipnorm=clipnorm, clipvalue=clipvalue,
                     validation_split=validation_split, early_stopping=early_stopping,
                     monitor=monitor, seed=seed, limit=limit, strategy=strategy,
                     jit_compile=jit, unroll=unroll)
    cfg = config.resolve(preset, config_file, overrides)
    home = dataset.data_home(data_dir)
    dataset.read_meta(home)  # fail fast, before TensorFlow loads
    reporter = ProgressReporter()
    try:
        with runs.native_stderr_silenced():
            result = run_training(cfg, home, output, overwrite=overwrite, resume=resume,
                                  reporter=reporter, cpu_devices=cpu_devices)
    finally:
        reporter.close()
    if result.history:
        out.print(curves_chart(result.history), markup=False)
        if save_png(result.history, output / runs.CURVES_PNG):
            err.print(f"learning curves: {output / runs.CURVES_PNG}")
    if result.best_epoch:
        best = result.best
        out.print(f"best epoch {result.best_epoch}: val_accuracy {best['val_accuracy']:.4f} "
                  f"val_loss {best['val_loss']:.4f}; model -> {output / runs.MODEL} "
                  f"({result.seconds:.1f} s)")
    if result.interrupted:
        raise fail(f"Interrupted; kept the best model so far in {output / runs.MODEL}; "
                   f"`rnncli train --resume --output {output}` continues.", 130)
