"""Configuration: one dataclass per concern, every field with a default; presets; TOML files.

    cfg = resolve(preset="lstm", file=Path("run.toml"), overrides={"epochs": 3})

The resolved config is saved next to every model (`config.json`, and `config.toml`, which
`rnncli train --config` reads back), so any model can be rebuilt and any number traced to
the settings that made it. Values read from a file (config_file.py) are checked against
the field types.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnncli.errors import UsageError
from rnncli.model import cells, poolings
from rnncli.model.weightings import WEIGHTINGS

# Module-level imports stay light (no numpy): `rnncli train --help` and TAB completion read
# the choices and defaults below.
CELLS = tuple(cells.CELLS)  # the registries: one place per cell and pooling mode
POOLINGS = tuple(poolings.POOLINGS)
NGRAM_WEIGHTINGS = tuple(WEIGHTINGS)
# Masked models read a review the same whatever its padding: batches may be cut.
MASKED_POOLINGS = tuple(name for name, p in poolings.POOLINGS.items() if p.masked)
EMBEDDING_INITS = ("uniform", "normal")
PADDING_SIDES = ("pre", "post")  # the same as text.PADDING_SIDES (a test checks)
HOLD_OUTS = ("movies", "last")  # data.store.training_shares
MONITORS = ("val_accuracy", "val_loss")
STRATEGIES = ("default", "mirrored", "multi-worker")
KEYS_DOC = "docs/config.md, section \"Config file keys\""


def registry_help(what: str, registry: dict) -> str:
    """The help of --cell or --pooling, read from its registry so a new entry needs no
    change here: `what (name: its help; ...)`."""
    return f"{what} ({'; '.join(f'{name}: {entry.help}' for name, entry in registry.items())})"


def setting(default: Any, help: str) -> Any:
    """A field with its one-line meaning: the help of the option, the comment in
    `--print-config` and the key table in docs/config.md all read it. `list` as the default means
    an empty list."""
    if default is list:
        return field(default_factory=list, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class DataConfig:
    dataset: str | None = setting(None, "imported dataset to train on (`rnncli data import`), "
                                        "or aclimdb / keras; unset: the current IMDB source")
    num_words: int = setting(1000, "vocabulary cut: ids >= num_words become OOV (2)")
    maxlen: int = setting(80, "every review padded/truncated to this many tokens")
    padding: str = setting("pre", "where zeros go (pre or post), as Keras's pad_sequences")
    truncating: str = setting("pre", "which end of a long review is cut (pre or post)")
    validation_split: float = setting(0.2, "share of train held out for validation")
    hold_out: str = setting("movies", "what validation holds out: movies (every review of "
                                      "whole movies, none of them in training; reviews with "
                                      "no movie count as one each) or last (the last share)")
    hold_out_seed: int | None = setting(0, "the draw of whole movies for validation with "
                                           "hold_out movies, each movie as likely (unset: "
                                           "walking back from the last review, as runs saved "
                                           "before this key)")
    limit: int | None = setting(None, "train on the first N reviews only (unset: all)")


@dataclass
class ModelConfig:
    cell: str = setting("simple", registry_help("recurrent cell", cells.CELLS))
    units: int = setting(32, "recurrent units per layer (per direction)")
    layers: int = setting(1, "stacked recurrent layers")
    bidirectional: bool = setting(False, "read each review both ways")
    embedding_dim: int = setting(128, "Embedding output size")
    embedding_init: str = setting("uniform", "Embedding initializer: uniform (Keras's, +-0.05) "
                                             "or normal (standard normal)")
    embedding_dropout: float = setting(0.0, "dropout on each embedded token, drawn anew at "
                                            "every step")
    dropout: float = setting(0.0, "dropout on recurrent layer inputs")
    recurrent_dropout: float = setting(0.0, "dropout on the recurrent state (slower kernels)")
    pooling: str = setting("last", registry_help("what the dense layer reads",
                                                 poolings.POOLINGS))
    head_dropout: float = setting(0.0, "dropout between the pooled features and the dense layer")
    unroll: bool | None = setting(None, "unroll the time loop (unset: SimpleRNN, maxlen <= 100)")
    ngram_head: bool = setting(False, "add the logit of a TF-IDF linear model of words, "
                                      "word pairs and triples, fitted after training (needs "
                                      "scikit-learn)")
    ngram_weighting: str = setting("nb", registry_help("the n-gram head's features",
                                                       WEIGHTINGS))
    ngram_refit: bool = setting(False, "fit the n-gram head on the training and validation "
                                       "reviews together; the join's weights and the "
                                       "cascade are fitted on the validation reviews' "
                                       "logits from 5 heads that did not see them (folds of "
                                       "whole movies)")


@dataclass
class TrainConfig:
    batch_size: int = setting(32, "samples per gradient step")
    epochs: int = setting(10, "passes over the training reviews")
    learning_rate: float = setting(0.001, "Adam step size (Keras's default)")
    lr_schedule: str = setting("constant", "step size over the epochs: constant, or cosine "
                                           "(from learning_rate down towards 0 by the last "
                                           "epoch)")
    clipnorm: float = setting(1.0, "clip each gradient's norm; 0 turns it off")
    clipvalue: float = setting(0.0, "clip each gradient value instead; 0 turns it off")
    early_stopping: int | None = setting(
        None, "stop after this many epochs without improvement (unset: never)")
    monitor: str = setting("val_accuracy", "what best epoch means: val_accuracy or val_loss")
    restore_best: bool = setting(True, "model.keras holds the best epoch's weights; false: "
                                       "the last epoch's")
    seed: int = setting(1337, "weights, shuffling and dropout")
    strategy: str = setting("default", "distribution over devices (tf.distribute): default, "
                                        "mirrored or multi-worker")
    jit_compile: bool = setting(True, "XLA compilation: same math, fewer kernel launches")
    steps_per_execution: int = setting(25, "batches per compiled call: same updates, less "
                                           "overhead")
    crop_prob: float = setting(0.0, "share of training reviews replaced by a random window, "
                                    "each epoch")
    crop_min: int = setting(8, "shortest crop window, in words")
    crop_max: int = setting(80, "longest crop window, in words")
    bucket: bool | None = setting(None, "batches of similar length, cut to their longest "
                                        "review (unset: on with a masked pooling, "
                                        f"{' or '.join(MASKED_POOLINGS)}: the only models "
                                        "for which cutting is exact)")
    teachers: list[str] = setting(list, "run folders of masked-max models to distil from "
                                        "(repeat --teacher for several)")
    distill_weight: float = setting(0.7, "target = w x mean teacher probability + (1 - w) x "
                                         "label")
    ngram_teacher: float = setting(0.0, "weight of a TF-IDF + logistic regression teacher on "
                                        "words and word pairs (fitted to the training reviews "
                                        "first) beside the --teacher runs' mean; 0: none")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
LR_SCHEDULES = ("constant", "cosine")


def epoch_learning_rate(t: TrainConfig, epoch: int) -> float:
    """The step size of epoch `epoch` (0-based) of `t.epochs`: cosine runs from the full
    rate at the first epoch to a small fraction of it at the last, so late epochs settle
    instead of hopping around the best weights."""
    if t.lr_schedule == "constant":
        return t.learning_rate
    return t.learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / t.epochs))


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        from rnncli.config.file import to_toml

        return to_toml(self, settings(), KEYS_DOC)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        cfg = cls()
        if "model" in d and "ngram_weighting" not in d["model"]:
            cfg.model.ngram_weighting = "tfidf"  # what a run saved before the key fitted
        if "data" in d and "hold_out" not in d["data"]:
            cfg.data.hold_out = "last"  # what a run saved before the key held out
        if "data" in d and "hold_out_seed" not in d["data"]:
            cfg.data.hold_out_seed = None  # how a run saved before the key drew its movies
        apply(cfg, {k: v for name in SECTIONS for k, v in d.get(name, {}).items()})
        return cfg


@dataclass(frozen=True)
class Setting:
    section: str
    name: str
    type: Any  # the annotation, e.g. int or int | None
    default: Any
    help: str


@functools.cache
def settings() -> dict[str, Setting]:
    """Every config key, in file order: its section, type, default and meaning."""
    found = {}
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            found[f.name] = Setting(section, f.name, hints[f.name], default,
                                    f.metadata["help"])
    return found


PRESETS: dict[str, dict[str, Any]] = {
    # The reference recipe: Embedding(1000,128) -> SimpleRNN(32) -> Dense, maxlen 80.
    "recipe": {},
    "lstm": {"cell": "lstm"},
    "gru": {"cell": "gru"},
    # Accuracy: a larger vocabulary, longer reviews, a bidirectional GRU whose max runs over
    # real tokens only (batches cut to their longest review), unit-scale embeddings (less
    # memorising of the train split's titles and names), crops of half the reviews each
    # epoch (short text). `best` is the bundled model's shape; `--teacher DIR` (a `teacher`
    # run) distils it.
    "best": {"cell": "gru", "bidirectional": True, "units": 64, "num_words": 30000,
             "maxlen": 500, "embedding_dim": 128, "pooling": "masked-max",
             "embedding_init": "normal", "embedding_dropout": 0.2, "head_dropout": 0.3,
             "batch_size": 64, "epochs": 12, "early_stopping": 3, "crop_prob": 0.5,
             "jit_compile": False},
    # The same at twice the width: slower to serve, a teacher for `best`.
    "teacher": {"cell": "gru", "bidirectional": True, "units": 128, "num_words": 30000,
                "maxlen": 500, "embedding_dim": 128, "pooling": "masked-max",
                "embedding_init": "normal", "embedding_dropout": 0.2, "head_dropout": 0.3,
                "batch_size": 64, "epochs": 12, "early_stopping": 3, "crop_prob": 0.5,
                "jit_compile": False},
}
# `best` for distilling from several teachers (--teacher, repeated): the teachers' mean is a
# steadier target, so it trains longer, with a step size that settles; then the n-gram head
# joins it (what reads short text best here). The bundled model.
PRESETS["student"] = {**PRESETS["best"], "epochs": 20, "early_stopping": None,
                      "lr_schedule": "cosine", "ngram_head": True, "ngram_refit": True}


def _unknown(key: str, origin: str) -> UsageError:
    close = difflib.get_close_matches(key, list(settings()), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UsageError(f"Unknown setting {key!r} in {origin}{hint}: every key is listed in the "
                      f"{KEYS_DOC}, and `rnncli train --print-config` prints them all.")


def _fits(annotation: Any, value: Any) -> bool:
    if typing.get_origin(annotation) is list:
        item = typing.get_args(annotation)[0]
        return isinstance(value, list) and all(_fits(item, v) for v in value)
    allowed = [t for t in typing.get_args(annotation) or (annotation,) if t is not type(None)]
    if isinstance(value, bool):  # bool is an int to Python, never to a config file
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    return type(value) in allowed


def _checked(s: Setting, value: Any, origin: str) -> Any:
    """`value` as the field's type, or a UsageError naming the key and the type expected."""
    if not _fits(s.type, value):
        from rnncli.config.file import toml_value, type_name

        examples = {int: "3", float: "0.5", bool: "true", str: '"..."'}
        example = (toml_value(s.default) if s.default not in (None, [])
                   else '["runs/a", "runs/b"]' if typing.get_origin(s.type) is list
                   else examples[typing.get_args(s.type)[0]])
        raise UsageError(f"{s.name} = {toml_value(value)} in {origin}: expected "
                         f"{type_name(s.type)}, e.g. {s.name} = {example} (in [{s.section}]).")
    return float(value) if s.type is float else value


def apply(cfg: RunConfig, values: dict[str, Any], origin: str = "the settings") -> RunConfig:
    table = settings()
    for key, value in values.items():
        key = key.replace("-", "_")
        if key not in table:
            raise _unknown(key, origin)
        s = table[key]
        if value is not None:
            value = _checked(s, value, origin)
        setattr(getattr(cfg, s.section), key, value)
    return cfg


def resolve(preset: str | None = None, file: Path | None = None,
            overrides: dict[str, Any] | None = None,
            derived: dict[str, Any] | None = None) -> RunConfig:
    """Defaults, then `derived` (what suits an imported dataset: train/defaults.py), then
    the preset, then the config file, then the command-line options."""
    cfg = RunConfig()
    if derived:
        apply(cfg, derived, "the dataset's defaults")
    if preset:
        if preset not in PRESETS:
            raise UsageError(f"Unknown preset {preset!r}: use one of {', '.join(PRESETS)}.")
        apply(cfg, PRESETS[preset], f"preset {preset}")
    if file:
        apply(cfg, load_file(file), str(file))
    apply(cfg, {k: v for k, v in (overrides or {}).items() if v is not None}, "the options")
    validate(cfg)
    return cfg


def load_file(path: Path) -> dict[str, Any]:
    """The settings of a TOML file (or a run's config.json), flat, sections checked."""
    from rnncli.config.file import load_toml

    return load_toml(path, settings(), KEYS_DOC)


def keys_table() -> str:
    """The documented table of config keys: `python -m rnncli.config` prints it."""
    from rnncli.config.file import keys_table

    return keys_table(settings())


def validate(cfg: RunConfig) -> None:
    from rnncli.text import tokenizer as text

    d, m, t = cfg.data, cfg.model, cfg.train
    checks = [
        (d.dataset is None or bool(d.dataset.strip()),
         "--dataset is empty: name an imported dataset (`rnncli data list`), or leave it "
         "unset for the current IMDB source."),
        (d.maxlen >= 1, f"--maxlen {d.maxlen} is too small: use 1 or more."),
        (d.num_words >= text.INDEX_FROM + 1,
         f"--num-words {d.num_words} leaves no word (ids 0-2 are reserved): use 4 or more."),
        (d.padding in PADDING_SIDES, f"--padding {d.padding!r}: use 'pre' or 'post'."),
        (d.truncating in PADDING_SIDES,
         f"--truncating {d.truncating!r}: use 'pre' or 'post'."),
        (0 < d.validation_split < 1,
         f"--validation-split {d.validation_split} must be between 0 and 1 (exclusive)."),
        (d.hold_out in HOLD_OUTS, f"--hold-out {d.hold_out!r}: use 'movies' or 'last'."),
        (d.limit is None or d.limit >= 2, f"--limit {d.limit} is too small: use 2 or more."),
        (m.cell in CELLS, f"Unknown cell {m.cell!r}: use {', '.join(CELLS)}."),
        (0 <= m.dropout < 1 and 0 <= m.recurrent_dropout < 1,
         "--dropout and --recurrent-dropout must be in [0, 1)."),
        (m.pooling in POOLINGS, f"--pooling {m.pooling!r}: use {', '.join(POOLINGS)}."),
        (0 <= m.head_dropout < 1, "--head-dropout must be in [0, 1)."),
        # Keras 3.15's unrolled loop applies the mask in the wrong order when it reads
        # backwards: the backward direction's outputs then depend on the padding.
        (not (m.unroll and m.bidirectional and m.pooling in POOLINGS
              and poolings.POOLINGS[m.pooling].masked),
         "unroll = true with a masked pooling on a bidirectional model gives wrong outputs "
         "in Keras: leave unroll unset."),
        (0 <= m.embedding_dropout < 1, "--embedding-dropout must be in [0, 1)."),
        (m.embedding_init in EMBEDDING_INITS,
         f"--embedding-init {m.embedding_init!r}: use {' or '.join(EMBEDDING_INITS)}."),
        (m.ngram_weighting in WEIGHTINGS, f"--ngram-weighting {m.ngram_weighting!r}: use "
                                          f"{' or '.join(WEIGHTINGS)}."),
        (t.epochs >= 1, f"--epochs {t.epochs}: train for at least 1 epoch."),
        (t.batch_size >= 1, f"--batch-size {t.batch_size} must be 1 or more."),
        (t.learning_rate > 0, f"--learning-rate {t.learning_rate} must be positive."),
        (t.lr_schedule in LR_SCHEDULES,
         f"--lr-schedule {t.lr_schedule!r}: use {' or '.join(LR_SCHEDULES)}."),
        (t.clipnorm >= 0 and t.clipvalue >= 0, "--clipnorm and --clipvalue must be 0 or more."),
        (not (t.clipnorm and t.clipvalue),
         "--clipnorm and --clipvalue are alternatives: set the other to 0."),
        (t.early_stopping is None or t.early_stopping >= 1,
         "--early-stopping needs a patience of 1 or more epochs."),
        (t.monitor in MONITORS, "--monitor: use val_accuracy or val_loss."),
        (t.strategy in STRATEGIES, f"Unknown strategy {t.strategy!r}: use "
                                   f"{', '.join(STRATEGIES)}."),
        (t.steps_per_execution >= 1, "steps_per_execution (a config key: no option sets it) "
                                      "must be 1 or more."),
        (0 <= t.crop_prob <= 1, f"--crop-prob {t.crop_prob} must be between 0 and 1."),
        (1 <= t.crop_min <= t.crop_max, "--crop-min must be 1 or more and <= --crop-max."),
        (0 <= t.distill_weight <= 1, "--distill-weight must be between 0 and 1."),
        (not t.teachers or t.strategy == "default",
         "--teacher trains on one device: use --strategy default."),
        (0 <= t.ngram_teacher <= 1, "--ngram-teacher must be between 0 and 1."),
        (not t.ngram_teacher or t.strategy == "default",
         "--ngram-teacher trains on one device: use --strategy default."),
        (not t.bucket or m.pooling not in POOLINGS or poolings.POOLINGS[m.pooling].masked,
         "--bucket cuts batches, which is exact only with a masked pooling: --pooling "
         f"{' or '.join(MASKED_POOLINGS)}."),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    check_ranges(cfg)


def ranges() -> dict[str, tuple[float, float]]:
    """The lowest and highest value of every numeric setting that the checks above do not
    bound on both sides: far beyond any useful run, low enough that a typo (`--units
    1000000000`) is refused here, before TensorFlow loads, rather than by the kernel."""
    from rnncli.text.preprocessing import MAX_MAXLEN  # what serving accepts from a file

    return {
        "num_words": (4, 10_000_000),
        "maxlen": (1, MAX_MAXLEN),
        "limit": (2, 1_000_000_000),
        "units": (1, 4096),
        "layers": (1, 16),
        "embedding_dim": (1, 4096),
        "batch_size": (1, 65_536),
        "epochs": (1, 100_000),
        "early_stopping": (1, 100_000),
        "learning_rate": (0, 10),  # Adam's step: above 10 every weight leaves its range
        "clipnorm": (0, 1e6),
        "clipvalue": (0, 1e6),
        "seed": (0, 2**32 - 1),  # what numpy's and TensorFlow's generators take
        "hold_out_seed": (0, 2**32 - 1),
        "steps_per_execution": (1, 10_000),
        "crop_min": (1, MAX_MAXLEN),
        "crop_max": (1, MAX_MAXLEN),
    }


def option_name(key: str) -> str:
    """How a user names setting `key` on the command line (or in a file, where no option
    sets it)."""
    if key == "steps_per_execution":
        return "steps_per_execution (a config key: no option sets it)"
    return "--" + key.replace("_", "-")


def check_ranges(cfg: RunConfig) -> None:
    """Refuse a numeric setting outside ranges(), NaN included, naming its option."""
    table = settings()
    for key, (low, high) in ranges().items():
        value = getattr(getattr(cfg, table[key].section), key)
        if value is None:
            continue  # unset: limit, early_stopping
        if not low <= value <= high:
            raise UsageError(f"{option_name(key)} {value} is out of range: use {_shown(low)} "
                             f"to {_shown(high)}.")


def _shown(bound: float) -> str:
    return f"{int(bound):,}" if float(bound).is_integer() else f"{bound:g}"


def distils(cfg: RunConfig) -> bool:
    """Whether the run trains on a teacher's probabilities (--teacher, --ngram-teacher)."""
    return bool(cfg.train.teachers) or cfg.train.ngram_teacher > 0


def bucket_for(cfg: RunConfig) -> bool:
    if cfg.train.bucket is not None:
        return cfg.train.bucket
    return poolings.get_pooling(cfg.model.pooling).masked
