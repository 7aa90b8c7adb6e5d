"""Pooling over time, each mode in one place: what Keras layer it is and what a graph computes.

    pool = get_pooling("masked-max")   # reduce "max", masked: pad steps never enter the max

numpy-free and Keras-free: config validation, model building and the ONNX graphs read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnncli.errors import UsageError


@dataclass(frozen=True)
class Pooling:
    name: str  # the --pooling value
    reduce: str  # over time: "last" (final state), "max" or "mean" of the outputs
    # Pad id 0 is masked from the embedding on: recurrent layers skip pad steps (their state
    # carries through) and the reduction sees real tokens only.
    masked: bool
    keras_layer: str | None  # the layer named "pool"; None when the last state is used
    help: str


POOLINGS: dict[str, Pooling] = {p.name: p for p in (
    Pooling("last", "last", False, None, "the final state"),
    Pooling("max", "max", False, "GlobalMaxPooling1D", "max over every step, pads included"),
    Pooling("mean", "mean", False, "GlobalAveragePooling1D",
            "mean over every step, pads included"),
    Pooling("masked-max", "max", True, "rnncli>MaskedGlobalMaxPooling1D",
            "max over real tokens, pad steps skipped"),
)}


def get_pooling(name: str) -> Pooling:
    try:
        return POOLINGS[name]
    except KeyError:
        raise UsageError(f"--pooling {name!r}: use {', '.join(POOLINGS)}.") from None
