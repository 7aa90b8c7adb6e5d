"""`rnncli train`: fit a recurrent sentiment model on the prepared IMDB data.

    $ rnncli train                       # the reference recipe, 10 epochs
    $ rnncli train --cell lstm --epochs 3 --output artifacts/lstm
    $ rnncli train --preset best --print-config > best.toml   # then: --config best.toml
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from rnncli import config, config_file, runs
from rnncli.cli.common import (
    Command,
    DataDir,
    Limit,
    err,
    fail,
    handle_errors,
    out,
)

app = typer.Typer(add_completion=False)


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


Preset = Literal[tuple(config.PRESETS)]
Cell = Literal[config.CELLS]
Pooling = Literal[config.POOLINGS]
Side = Literal[config.PADDING_SIDES]
Monitor = Literal[config.MONITORS]
Strategy = Literal[config.STRATEGIES]
PANELS = {"data": "Data settings", "model": "Model settings", "train": "Training settings"}


def setting(key: str, *decls: str, **kw: Any) -> Any:
    """The option for config key `key`: its help and the default it shows come from the
    field in config.py, so --help, --print-config and the README say the same."""
    s = config.settings()[key]
    shown = ("unset" if s.default is None else "none" if s.default == []
             else config_file.toml_value(s.default).strip('"'))
    return typer.Option(*(decls or (f"--{key.replace('_', '-')}",)),
                        help=s.help[0].upper() + s.help[1:] + ".", show_default=shown,
                        rich_help_panel=PANELS[s.section], **kw)


@app.command("train", cls=Command)
@handle_errors
def train(
    preset: Annotated[Preset | None, typer.Option(
        "--preset", show_default="recipe", help="Named settings (config.py PRESETS).")] = None,
    config_file: Annotated[Path | None, typer.Option(
        "--config", show_default="none",
        help="TOML file, as --print-config writes it; options override it.")] = None,
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="Print the resolved settings as TOML and exit.")] = False,
    num_words: Annotated[int | None, setting("num_words")] = None,
    maxlen: Annotated[int | None, setting("maxlen")] = None,
    padding: Annotated[Side | None, setting("padding")] = None,
    truncating: Annotated[Side | None, setting("truncating")] = None,
    validation_split: Annotated[float | None, setting("validation_split")] = None,
    limit: Limit = None,
    cell: Annotated[Cell | None, setting("cell")] = None,
    units: Annotated[int | None, setting("units")] = None,
    layers: Annotated[int | None, setting("layers")] = None,
    bidirectional: Annotated[bool | None, setting(
        "bidirectional", "--bidirectional/--unidirectional")] = None,
    embedding_dim: Annotated[int | None, setting("embedding_dim")] = None,
    dropout: Annotated[float | None, setting("dropout")] = None,
    recurrent_dropout: Annotated[float | None, setting("recurrent_dropout")] = None,
    pooling: Annotated[Pooling | None, setting("pooling")] = None,
    head_dropout: Annotated[float | None, setting("head_dropout")] = None,
    unroll: Annotated[bool | None, setting("unroll", "--unroll/--no-unroll")] = None,
    batch_size: Annotated[int | None, setting("batch_size")] = None,
    epochs: Annotated[int | None, setting("epochs")] = None,
    learning_rate: Annotated[float | None, setting("learning_rate")] = None,
    clipnorm: Annotated[float | None, setting("clipnorm")] = None,
    clipvalue: Annotated[float | None, setting("clipvalue")] = None,
    early_stopping: Annotated[int | None, setting(
        "early_stopping", metavar="PATIENCE")] = None,
    monitor: Annotated[Monitor | None, setting("monitor")] = None,
    seed: Annotated[int | None, setting("seed")] = None,
    strategy: Annotated[Strategy | None, setting("strategy")] = None,
    jit_compile: Annotated[bool | None, setting("jit_compile", "--jit/--no-jit")] = None,
    crop_prob: Annotated[float | None, setting("crop_prob")] = None,
    crop_min: Annotated[int | None, setting("crop_min")] = None,
    crop_max: Annotated[int | None, setting("crop_max")] = None,
    bucket: Annotated[bool | None, setting("bucket", "--bucket/--no-bucket")] = None,
    teachers: Annotated[list[Path] | None, setting("teachers", "--teacher")] = None,
    distill_weight: Annotated[float | None, setting("distill_weight")] = None,
    cpu_devices: Annotated[int | None, typer.Option(
        "--cpu-devices", hidden=True, help="Split the CPU into N logical devices.")] = None,
    output: Annotated[Path, typer.Option("--output", help="Run folder.")] = runs.DEFAULT_OUTPUT,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a run in --output.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run in --output.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Train Embedding -> SimpleRNN/LSTM/GRU -> Dense on the prepared IMDB train split.

    Defaults: the reference recipe's hyperparameters (num_words 1000, maxlen 80,
    SimpleRNN(32), adam, batch 32, 10 epochs, validation split 0.2), plus gradient
    clipping and best-epoch restore. Each setting comes from the first of: the option
    given, the --config file, the --preset, the default.

    Example: rnncli train --cell lstm --epochs 5 --output artifacts/lstm
    """
    # Every option named after a config key overrides that key (None: not given).
    given = dict(locals(), teachers=[str(p) for p in teachers] if teachers else None)
    overrides = {k: v for k, v in given.items() if k in config.settings()}
    cfg = config.resolve(preset, config_file, overrides)
    if print_config:
        sys.stdout.write(cfg.to_toml())
        return
    from rnncli import dataset
    from rnncli.training import train as run_training

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
