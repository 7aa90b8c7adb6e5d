"""Training on a dataset of one's own (`rnncli data import`): the defaults that suit it, and
what a model of more than two labels cannot do. numpy only: all of it is decided before
TensorFlow loads.

    meta = store.read_meta(home, "tickets")
    found = derived_defaults(home, meta)           # [] for the IMDB sources
    cfg = resolve(preset, file, overrides, derived=as_settings(found))
    check_classes(cfg, meta)                       # UsageError: --teacher with 3 labels

An imported dataset is not IMDB: its reviews may be ten words or a thousand, its vocabulary
a few hundred words or a million. So the vocabulary and review length come from its own
statistics, and the network is the accurate one (`best`'s) with early stopping, rather than
the reference recipe sized for IMDB. The preset, config file and options still override
every one of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnncli.config.settings import PRESETS, RunConfig
from rnncli.data import store
from rnncli.errors import UsageError
from rnncli.model.weightings import WEIGHTINGS
from rnncli.text import tokenizer as text

MAX_WORDS = 30_000  # best's vocabulary: more words than this add little but embedding rows
MIN_SEEN = 2  # a word seen once in train is a name or a typo more often than a signal
MAXLEN_RANGE = (16, 500)  # best's maxlen on top: longer reviews cost time for little
LENGTH_PERCENTILE = 95
# The accurate network (the `best` preset's shape), not its IMDB-sized vocabulary, length,
# crops or epochs.
NETWORK = ("cell", "bidirectional", "units", "embedding_dim", "pooling", "embedding_init",
           "embedding_dropout", "head_dropout", "jit_compile")
# Measured on 2 shared CPU cores: 10,000 rows of 10-30 words, 3 labels, this network at
# batch 64 (126 steps) took 7.2 s for the first epoch and 3-5 s for each later one; 20
# epochs at most is under two minutes, and early stopping usually ends it sooner. A large
# vocabulary (30,000 words) adds its embedding's Adam update to every step.
TRAINING = {"batch_size": 64, "epochs": 20, "early_stopping": 3, "restore_best": True}
# The n-gram head: on a few thousand rows a linear model of words and word pairs learns
# what the network has too little data for. 10,000 IMDB reviews binned by stars into 4
# labels (benchmarks/bench_classes.py): the network alone scored 0.6108 on the test part
# against TF-IDF + logistic regression's 0.6526.
HEAD_WHY = "a TF-IDF linear model of words, word pairs and triples joined to the network"


@dataclass(frozen=True)
class Derived:
    """One default that comes from the dataset: its key, value and why (one short phrase)."""

    key: str
    value: Any
    why: str


def derived_defaults(home: Path, meta: dict) -> list[Derived]:
    """The defaults that suit an imported dataset (none for the IMDB sources)."""
    if not store.is_own(meta["source"]):
        return []
    train = store.load_split(home, "train", source=meta["source"])
    counts = np.bincount(train.tokens, minlength=text.INDEX_FROM) if len(train.tokens) else (
        np.zeros(text.INDEX_FROM, np.int64))
    seen = int((counts[text.INDEX_FROM:] >= MIN_SEEN).sum())
    # Words are ranked by their count in train: those seen twice are the first `seen` ids.
    num_words = max(text.INDEX_FROM + 1, min(MAX_WORDS, text.INDEX_FROM + seen))
    lengths = train.lengths
    longest = float(np.percentile(lengths, LENGTH_PERCENTILE)) if len(lengths) else 0.0
    low, high = MAXLEN_RANGE
    maxlen = min(high, max(low, math.ceil(longest) + 1))  # + 1: the start marker
    best = PRESETS["best"]
    found = [
        Derived("num_words", num_words,
                f"{seen:,} words seen at least {MIN_SEEN} times in train + "
                f"{text.INDEX_FROM} reserved ids, at most {MAX_WORDS:,}"),
        Derived("maxlen", maxlen,
                f"{LENGTH_PERCENTILE}th percentile of train lengths ({longest:g} words) + 1, "
                f"within {low}..{high}"),
    ]
    found += [Derived(k, best[k], "the best preset's network") for k in NETWORK]
    found += [Derived(k, v, "for a dataset of its own") for k, v in TRAINING.items()]
    found.append(Derived("ngram_head", True, HEAD_WHY))
    if len(store.labels_of(meta)) > 2:
        found.append(Derived("ngram_weighting", "tfidf", "naive Bayes ratios tell two labels "
                                                         "apart, not more"))
    return found


def as_settings(found: list[Derived]) -> dict[str, Any]:
    return {d.key: d.value for d in found}


def describe(found: list[Derived], cfg: RunConfig, name: str) -> list[str]:
    """A line per reason, naming its defaults; a preset, file or option that overrode one
    is said beside it."""
    flat = {k: v for section in cfg.to_dict().values() for k, v in section.items()}
    groups: dict[str, list[str]] = {}
    for d in found:
        now = flat[d.key]
        over = "" if now == d.value else f" (overridden: {_shown(now)})"
        groups.setdefault(d.why, []).append(f"{d.key} {_shown(d.value)}{over}")
    lines = []
    for why, items in groups.items():
        if len(items) == 1:
            lines.append(f"dataset {name}: {items[0]} ({why})")
        else:
            lines.append(f"dataset {name}: {why}: {', '.join(items)}")
    return lines


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    return "unset" if value is None else str(value)


def check_classes(cfg: RunConfig, meta: dict) -> None:
    """Refuse, before TensorFlow loads, what works for two labels only, naming it."""
    labels = store.labels_of(meta)
    if len(labels) <= 2:
        return
    name, t = meta["source"], cfg.train
    has = f"dataset {name} has {len(labels)} labels"
    refusals = [
        (bool(t.teachers),
         f"--teacher distils one probability per review, and {has}: drop --teacher"),
        (t.ngram_teacher > 0,
         f"--ngram-teacher is a binary model, and {has}: drop --ngram-teacher"),
        (cfg.model.ngram_head and WEIGHTINGS[cfg.model.ngram_weighting].binary,
         f"--ngram-weighting {cfg.model.ngram_weighting} is for two labels, and {has}: use "
         "--ngram-weighting tfidf"),
        (t.strategy == "multi-worker",
         f"--strategy multi-worker trains with a binary step, and {has}: use --strategy "
         "default or mirrored"),
    ]
    for refused, message in refusals:
        if refused:
            raise UsageError(f"{message}.")


def check_resumed_dataset(saved: dict, cfg: RunConfig, output: Path) -> None:
    """Refuse to resume a run on another dataset than the one it was trained on."""
    data = saved.get("data")
    then = data.get("dataset") if isinstance(data, dict) else None
    if then == cfg.data.dataset:
        return

    def named(d: str | None) -> str:
        return f"dataset {d}" if d else "the current IMDB source"

    fix = f"pass --dataset {then}" if then else "leave --dataset out"
    raise UsageError(f"The run in {output} was trained on {named(then)}, and this asks for "
                     f"{named(cfg.data.dataset)}: {fix} to resume it, or start a new run "
                     "with --overwrite.")


def check_resume(output: Path, cfg: RunConfig) -> None:
    """check_resumed_dataset against the unfinished run in `output`, if its config.json
    reads, before the data it names is looked for (a run's own dataset may be all the data
    home holds). Anything else about the run is left to resuming it."""
    from rnncli.config.run_files import CONFIG, STAGING
    from rnncli.fsutil import read_json

    for folder in (Path(output) / STAGING, Path(output)):
        try:
            saved = read_json(folder / CONFIG)
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(saved, dict):
            check_resumed_dataset(saved, cfg, Path(output))
        return
