"""`rnncli train`: fit a recurrent text classifier on the prepared IMDB data or a dataset
of one's own.

    $ rnncli train                       # the reference recipe, 10 epochs
    $ rnncli train --dataset tickets     # an imported dataset, defaults from its statistics
    $ rnncli train --cell lstm --epochs 3 --output artifacts/lstm
    $ rnncli train --preset best --print-config > best.toml   # then: --config best.toml
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from rnncli.cli.common import Command, DataDir, Limit, handle_errors, note
from rnncli.cli.train_display import ProgressReporter, report
from rnncli.config import file as config_file
from rnncli.config import run_files
from rnncli.config import settings as config
from rnncli.errors import UsageError

app = typer.Typer(add_completion=False)


def requested_settings(preset: str | None, file: Path | None,
                       overrides: dict[str, Any]) -> set[str]:
    """The settings given explicitly, by preset, file or option (a resume checks them)."""
    keys = {k for k, v in overrides.items() if v is not None}
    keys |= set(config.PRESETS.get(preset or "", {}))
    if file:
        keys |= set(config.load_file(file))
    return {k.replace("-", "_") for k in keys}


Preset = Literal[tuple(config.PRESETS)]
Cell = Literal[config.CELLS]
Pooling = Literal[config.POOLINGS]
Weighting = Literal[config.NGRAM_WEIGHTINGS]
Side = Literal[config.PADDING_SIDES]
HoldOut = Literal[config.HOLD_OUTS]
Monitor = Literal[config.MONITORS]
Strategy = Literal[config.STRATEGIES]
LrSchedule = Literal[config.LR_SCHEDULES]
PANELS = {"data": "Data settings", "model": "Model settings", "train": "Training settings"}


def setting(key: str, *decls: str, **kw: Any) -> Any:
    """The option for config key `key`: its help and the default it shows come from the
    field in rnncli/config/settings.py, so --help, --print-config and docs/config.md say
    the same."""
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
        "--preset", show_default="recipe",
        help="Named settings (best: the bundled model's network; --print-config shows what "
        "a preset sets).")] = None,
    config_file: Annotated[Path | None, typer.Option(
        "--config", show_default="none",
        help="TOML file, as --print-config writes it; options override it.")] = None,
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="Print the resolved settings as TOML and exit.")] = False,
    dataset: Annotated[str | None, setting("dataset", metavar="<name>")] = None,
    num_words: Annotated[int | None, setting("num_words")] = None,
    maxlen: Annotated[int | None, setting("maxlen")] = None,
    padding: Annotated[Side | None, setting("padding")] = None,
    truncating: Annotated[Side | None, setting("truncating")] = None,
    validation_split: Annotated[float | None, setting("validation_split")] = None,
    hold_out: Annotated[HoldOut | None, setting("hold_out")] = None,
    hold_out_seed: Annotated[int | None, setting("hold_out_seed")] = None,
    limit: Limit = None,
    cell: Annotated[Cell | None, setting("cell")] = None,
    units: Annotated[int | None, setting("units")] = None,
    layers: Annotated[int | None, setting("layers")] = None,
    bidirectional: Annotated[bool | None, setting(
        "bidirectional", "--bidirectional/--unidirectional")] = None,
    embedding_dim: Annotated[int | None, setting("embedding_dim")] = None,
    embedding_init: Annotated[str | None, setting("embedding_init")] = None,
    embedding_dropout: Annotated[float | None, setting("embedding_dropout")] = None,
    dropout: Annotated[float | None, setting("dropout")] = None,
    recurrent_dropout: Annotated[float | None, setting("recurrent_dropout")] = None,
    pooling: Annotated[Pooling | None, setting("pooling")] = None,
    head_dropout: Annotated[float | None, setting("head_dropout")] = None,
    unroll: Annotated[bool | None, setting("unroll", "--unroll/--no-unroll")] = None,
    ngram_head: Annotated[bool | None, setting(
        "ngram_head", "--ngram-head/--no-ngram-head")] = None,
    ngram_weighting: Annotated[Weighting | None, setting("ngram_weighting")] = None,
    ngram_refit: Annotated[bool | None, setting(
        "ngram_refit", "--ngram-refit/--no-ngram-refit")] = None,
    batch_size: Annotated[int | None, setting("batch_size")] = None,
    epochs: Annotated[int | None, setting("epochs")] = None,
    learning_rate: Annotated[float | None, setting("learning_rate")] = None,
    lr_schedule: Annotated[LrSchedule | None, setting("lr_schedule")] = None,
    clipnorm: Annotated[float | None, setting("clipnorm")] = None,
    clipvalue: Annotated[float | None, setting("clipvalue")] = None,
    early_stopping: Annotated[int | None, setting("early_stopping")] = None,
    monitor: Annotated[Monitor | None, setting("monitor")] = None,
    restore_best: Annotated[bool | None, setting(
        "restore_best", "--restore-best/--keep-last")] = None,
    seed: Annotated[int | None, setting("seed")] = None,
    strategy: Annotated[Strategy | None, setting("strategy")] = None,
    jit_compile: Annotated[bool | None, setting("jit_compile", "--jit/--no-jit")] = None,
    crop_prob: Annotated[float | None, setting("crop_prob")] = None,
    crop_min: Annotated[int | None, setting("crop_min")] = None,
    crop_max: Annotated[int | None, setting("crop_max")] = None,
    bucket: Annotated[bool | None, setting("bucket", "--bucket/--no-bucket")] = None,
    teachers: Annotated[list[Path] | None, setting("teachers", "--teacher")] = None,
    distill_weight: Annotated[float | None, setting("distill_weight")] = None,
    ngram_teacher: Annotated[float | None, setting("ngram_teacher")] = None,
    cpu_devices: Annotated[int | None, typer.Option(
        "--cpu-devices", hidden=True, help="Split the CPU into N logical devices.")] = None,
    output: Annotated[Path, typer.Option(
        "--output", help="Run folder.")] = run_files.DEFAULT_OUTPUT,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a run in --output.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run in --output.")] = False,
    worker_timeout: Annotated[float, typer.Option(
        "--worker-timeout", min=1, max=86_400, rich_help_panel=PANELS["train"],
        help="With --strategy multi-worker: seconds to wait for every worker to join "
        "before giving up.")] = 300.0,
    data_dir: DataDir = None,
) -> None:
    """Train Embedding -> SimpleRNN/LSTM/GRU -> Dense on the prepared IMDB train split.

    Defaults: the reference recipe's hyperparameters (num_words 1000, maxlen 80,
    SimpleRNN(32), adam, batch 32, 10 epochs, validation split 0.2), plus gradient
    clipping (--clipnorm 0 turns it off) and best-epoch restore (--keep-last turns it
    off). Each setting comes from the first of: the option given, the --config file, the
    --preset, the default.

    --dataset NAME trains on a dataset of your own (`rnncli data import`), of 2 or more
    labels; its vocabulary size and maxlen then default to what its statistics suit, the
    network to the best preset's, with early stopping (each printed as the run starts).

    Example: rnncli train --cell lstm --epochs 5 --output artifacts/lstm
    """
    # Every option named after a config key overrides that key (None: not given).
    given = dict(locals(), teachers=[str(p) for p in teachers] if teachers else None)
    overrides = {k: v for k, v in given.items() if k in config.settings()}
    cfg = config.resolve(preset, config_file, overrides)
    from rnncli.data import store as dataset
    from rnncli.train.datasets import (
        as_settings,
        check_classes,
        check_resume,
        derived_defaults,
        describe,
    )

    home = dataset.data_home(data_dir)
    derived, notes = [], []
    if cfg.data.dataset and dataset.is_own(cfg.data.dataset) and not resume:
        # A dataset of one's own: its statistics give the defaults that the preset, file
        # and options then override (read before TensorFlow loads: numpy only).
        derived = derived_defaults(home, dataset.read_meta(home, cfg.data.dataset))
        cfg = config.resolve(preset, config_file, overrides, as_settings(derived))
        notes = describe(derived, cfg, cfg.data.dataset)
    if print_config:
        sys.stdout.write(cfg.to_toml())
        return
    from rnncli.model import runtime as tf_runtime
    from rnncli.train import distributed
    from rnncli.train.loop import train as run_training

    supervised = os.environ.get(distributed.CONFIG_ENV)
    if supervised:  # the child of supervise_worker: its parent resolved the settings
        distributed.bind_to_parent()
        cfg = config.RunConfig.from_dict(json.loads(supervised))
        config.validate(cfg)
    if resume:
        check_resume(output, cfg)
    role = distributed.worker_role(cfg.train.strategy)  # TF_CONFIG, before anything loads
    meta = dataset.read_meta(home, cfg.data.dataset)  # fail fast, before TensorFlow loads
    check_classes(cfg, meta)  # before a multi-worker run hands over to its child too
    if resume and role.count > 1:
        raise UsageError("--resume does not work with --strategy multi-worker: start the run "
                         "again with --overwrite.")
    requested = requested_settings(preset, config_file, overrides) if resume else set()
    if cfg.train.strategy == "multi-worker" and not supervised:
        return supervise_worker(cfg, role, home, output, overwrite, worker_timeout,
                                cpu_devices)
    # Said as the run starts, once every check has passed.
    reporter = ProgressReporter(notes=[] if resume else notes + unused_words(cfg, meta))
    try:
        with tf_runtime.quiet():
            result = run_training(cfg, home, output, overwrite=overwrite, resume=resume,
                                  requested=requested, reporter=reporter,
                                  cpu_devices=cpu_devices, derived=as_settings(derived))
    finally:
        reporter.close()
    report(result, output)


def unused_words(cfg: config.RunConfig, meta: dict) -> list[str]:
    """A note (not an error: the run works) when --num-words asks for more ids than the
    prepared vocabulary has words: the embedding's extra rows are never used."""
    from rnncli.text.tokenizer import INDEX_FROM

    words = meta.get("vocab_size")
    if not isinstance(words, int) or cfg.data.num_words <= words + INDEX_FROM:
        return []
    return [f"note: --num-words {cfg.data.num_words:,} is more than the prepared vocabulary "
            f"gives ({words:,} words + {INDEX_FROM} reserved ids = {words + INDEX_FROM:,}); "
            "the embedding's other rows are never used: a smaller --num-words trains the "
            "same model faster."]


def supervise_worker(cfg: config.RunConfig, role, home: Path, output: Path, overwrite: bool,
                     timeout: float, cpu_devices: int | None) -> None:
    """Train this worker in a child process that this one watches (distributed.supervise):
    Ctrl-C, SIGTERM and --worker-timeout end it even while TensorFlow blocks."""
    from rnncli.train import distributed, runs

    argv = [sys.executable, "-m", "rnncli", "train", "--output", str(output),
            "--data-dir", str(home), *(["--overwrite"] if overwrite else []),
            *(["--cpu-devices", str(cpu_devices)] if cpu_devices else [])]
    env = {**os.environ, distributed.CONFIG_ENV: json.dumps(cfg.to_dict())}
    made = not output.exists()
    code = distributed.supervise(
        argv, env, timeout, role, say=note,
        # Only the chief writes the run folder; another worker's run there is not its own.
        cleanup=(lambda: runs.clear_staging(output, made)) if role.chief else (lambda: ""))
    if code:
        raise typer.Exit(code)
