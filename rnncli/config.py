"""Configuration: one dataclass per concern, every field with a default; presets; TOML files.

    cfg = resolve(preset="lstm", file=Path("run.toml"), overrides={"epochs": 3})

The resolved config is saved next to every model (`config.json`), so any model can be
rebuilt and any number traced to the settings that made it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnncli import text
from rnncli.errors import UsageError

CELLS = ("simple", "lstm", "gru")
STRATEGIES = ("default", "mirrored", "multi-worker")
POOLINGS = ("last", "max", "mean", "masked-max")


@dataclass
class DataConfig:
    num_words: int = 1000  # vocabulary cut: ids >= num_words become OOV (2)
    maxlen: int = 80  # every review padded/truncated to this many tokens
    padding: str = "pre"  # where zeros go, as Keras's pad_sequences
    truncating: str = "pre"  # which end of a long review is cut
    validation_split: float = 0.2  # last share of train held out, as Keras's fit takes it
    limit: int | None = None  # train on the first N reviews only (quick runs)


@dataclass
class ModelConfig:
    cell: str = "simple"  # simple (SimpleRNN), lstm or gru
    units: int = 32  # recurrent units per layer (per direction)
    layers: int = 1  # stacked recurrent layers
    bidirectional: bool = False  # read each review both ways
    embedding_dim: int = 128  # Embedding output size
    dropout: float = 0.0  # dropout on recurrent layer inputs
    recurrent_dropout: float = 0.0  # dropout on recurrent state (disables fused kernels)
    pooling: str = "last"  # last (final state), max, mean, or masked-max (real tokens only)
    head_dropout: float = 0.0  # dropout between the pooled features and the dense layer
    unroll: bool | None = None  # unroll the time loop; None: SimpleRNN with maxlen <= 100


@dataclass
class TrainConfig:
    batch_size: int = 32  # samples per gradient step
    epochs: int = 10  # passes over the training reviews
    learning_rate: float = 0.001  # Adam step size (Keras's default)
    clipnorm: float = 1.0  # clip each gradient's norm; 0 turns it off
    clipvalue: float = 0.0  # clip each gradient value instead; 0 turns it off
    early_stopping: int | None = None  # stop after this many epochs without improvement
    monitor: str = "val_accuracy"  # what "best epoch" means
    seed: int = 1337  # weights, shuffling and dropout
    strategy: str = "default"  # tf.distribute: default, mirrored or multi-worker
    jit_compile: bool = True  # XLA: same math, fewer kernel launches
    steps_per_execution: int = 25  # batches per compiled call: same updates, less overhead
    crop_prob: float = 0.0  # share of training reviews replaced by a random window, each epoch
    crop_min: int = 8  # shortest crop window, in words
    crop_max: int = 80  # longest crop window, in words
    bucket: bool | None = None  # batches of similar length, cut to their longest review;
    # None: on for masked-max pooling, the only models for which cutting is exact
    teachers: list[str] = field(default_factory=list)  # run folders of masked-max models
    distill_weight: float = 0.7  # target = w x mean teacher probability + (1 - w) x label


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        cfg = cls()
        apply(cfg, {k: v for name in ("data", "model", "train")
                    for k, v in d.get(name, {}).items()})
        return cfg


PRESETS: dict[str, dict[str, Any]] = {
    # The reference recipe: Embedding(1000,128) -> SimpleRNN(32) -> Dense, maxlen 80.
    "recipe": {},
    "lstm": {"cell": "lstm"},
    "gru": {"cell": "gru"},
    # Accuracy: a larger vocabulary, longer reviews, a bidirectional GRU pooled over time.
    "best": {"cell": "gru", "bidirectional": True, "units": 64, "num_words": 30000,
             "maxlen": 500, "embedding_dim": 128, "pooling": "max", "dropout": 0.2,
             "batch_size": 64, "epochs": 4, "early_stopping": 1, "steps_per_execution": 1},
}


def _owner(cfg: RunConfig, key: str):
    for section in (cfg.data, cfg.model, cfg.train):
        if key in {f.name for f in dataclasses.fields(section)}:
            return section
    raise UsageError(f"Unknown setting {key!r}: see `rnncli train --help`.")


def apply(cfg: RunConfig, values: dict[str, Any]) -> RunConfig:
    for key, value in values.items():
        key = key.replace("-", "_")
        setattr(_owner(cfg, key), key, value)
    return cfg


def load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"No config file at {path}: check --config.") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"Invalid TOML in {path} ({exc}): fix the file.") from None
    # Sections ([data], [model], [train]) are optional; keys are unique across them.
    flat: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, dict):
            flat.update(v)
        else:
            flat[k] = v
    return flat


def resolve(preset: str | None = None, file: Path | None = None,
            overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults, then the preset, then the config file, then the command-line options."""
    cfg = RunConfig()
    if preset:
        if preset not in PRESETS:
            raise UsageError(f"Unknown preset {preset!r}: use one of {', '.join(PRESETS)}.")
        apply(cfg, PRESETS[preset])
    if file:
        apply(cfg, load_toml(file))
    apply(cfg, {k: v for k, v in (overrides or {}).items() if v is not None})
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    d, m, t = cfg.data, cfg.model, cfg.train
    checks = [
        (d.maxlen >= 1, f"--maxlen {d.maxlen} is too small: use 1 or more."),
        (d.num_words >= text.INDEX_FROM + 1,
         f"--num-words {d.num_words} leaves no word (ids 0-2 are reserved): use 4 or more."),
        (d.padding in text.PADDING_SIDES, f"--padding {d.padding!r}: use 'pre' or 'post'."),
        (d.truncating in text.PADDING_SIDES,
         f"--truncating {d.truncating!r}: use 'pre' or 'post'."),
        (0 < d.validation_split < 1,
         f"--validation-split {d.validation_split} must be between 0 and 1 (exclusive)."),
        (d.limit is None or d.limit >= 2, f"--limit {d.limit} is too small: use 2 or more."),
        (m.cell in CELLS, f"Unknown cell {m.cell!r}: use simple, lstm or gru."),
        (m.units >= 1 and m.layers >= 1 and m.embedding_dim >= 1,
         "--units, --layers and --embedding-dim must be 1 or more."),
        (0 <= m.dropout < 1 and 0 <= m.recurrent_dropout < 1,
         "--dropout and --recurrent-dropout must be in [0, 1)."),
        (m.pooling in POOLINGS, f"--pooling {m.pooling!r}: use {', '.join(POOLINGS)}."),
        (0 <= m.head_dropout < 1, "--head-dropout must be in [0, 1)."),
        (t.epochs >= 1, f"--epochs {t.epochs}: train for at least 1 epoch."),
        (t.batch_size >= 1, f"--batch-size {t.batch_size} must be 1 or more."),
        (t.learning_rate > 0, f"--learning-rate {t.learning_rate} must be positive."),
        (t.clipnorm >= 0 and t.clipvalue >= 0, "--clipnorm and --clipvalue must be 0 or more."),
        (not (t.clipnorm and t.clipvalue),
         "--clipnorm and --clipvalue are alternatives: set the other to 0."),
        (t.early_stopping is None or t.early_stopping >= 1,
         "--early-stopping needs a patience of 1 or more epochs."),
        (t.monitor in ("val_accuracy", "val_loss"), "--monitor: use val_accuracy or val_loss."),
        (t.strategy in STRATEGIES, f"Unknown strategy {t.strategy!r}: use "
                                   f"{', '.join(STRATEGIES)}."),
        (t.steps_per_execution >= 1, "--steps-per-execution must be 1 or more."),
        (0 <= t.crop_prob <= 1, f"--crop-prob {t.crop_prob} must be between 0 and 1."),
        (1 <= t.crop_min <= t.crop_max, "--crop-min must be 1 or more and <= --crop-max."),
        (0 <= t.distill_weight <= 1, "--distill-weight must be between 0 and 1."),
        (not t.teachers or t.strategy == "default",
         "--teacher trains on one device: use --strategy default."),
        (not t.bucket or m.pooling == "masked-max",
         "--bucket cuts batches, which is exact only with --pooling masked-max."),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


def unroll_for(cfg: RunConfig) -> bool:
    # Measured on 2 CPU cores with XLA: an unrolled SimpleRNN(32) over 80 steps ran epochs
    # in 2.5 s against 3.3-5.3 s as a loop, but an unrolled LSTM took 97 s to compile and
    # 20 s per epoch against 7 s as a loop; long sequences only bloat the graph.
    if cfg.model.unroll is not None:
        return cfg.model.unroll
    return cfg.model.cell == "simple" and cfg.data.maxlen <= 100


def bucket_for(cfg: RunConfig) -> bool:
    if cfg.train.bucket is not None:
        return cfg.train.bucket
    return cfg.model.pooling == "masked-max"
