"""The files of a run folder, by name: what `train` writes, `export` adds, and `evaluate`,
`predict` and the Python API look for.

    folder / MODEL      # artifacts/model.keras
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_OUTPUT = Path("artifacts")
MODEL = "model.keras"
BEST = "best.keras"
CONFIG = "config.json"
CONFIG_TOML = "config.toml"  # the same settings, for `rnncli train --config`
PREPROCESSING = "preprocessing.json"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
CURVES_PNG = "curves.png"
LAST_RUN = "last_run"
BACKUP = ".backup"  # epoch-NNNN.keras: the last finished epoch, with optimizer state
STAGING = ".next"  # a run in progress, until it has a model
HEAD_JSON = "ngram_head.json"  # --ngram-head: its weights against the network's, val accuracy
# --ngram-refit: the cross-fitted heads' logit and the joined probability on each
# validation review (heads that had not seen it): what the export fits the cascade on.
HEAD_HELD_OUT = "ngram_held_out.npz"
ONNX = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
ONNX_TEXT = "model.text.onnx"  # `export onnx --text-input`
# The lock train and export hold on a run folder. Never removed while the folder holds
# anything: removing it would let two processes lock two files.
LOCK = ".rnncli.lock"
# What a new run replaces: a stale export beside a new model would be served by mistake.
RUN_FILES = (MODEL, BEST, CONFIG, CONFIG_TOML, PREPROCESSING, HISTORY_JSON, HISTORY_CSV,
             CURVES_PNG, LAST_RUN, BACKUP, HEAD_JSON, HEAD_HELD_OUT, ONNX, ONNX_INT8,
             ONNX_TEXT)
