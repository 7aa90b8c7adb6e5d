"""Pooling over time, each mode in one place: its reduction, its pad handling, its Keras layer.

    pool = get_pooling("masked-mean")
    pooled = pool.over_time(NumpyOps(), outputs, masks, maxlen, any_real=rows_with_a_token)

A reduction is written once against the ops interface the cells' steps use (cells.NumpyOps,
export/ops.OnnxOps, layers.py's Keras ops), so the pad states, every graph kind and
rnncli's Keras layers all compute it from the same definition. numpy-free and Keras-free:
config validation, model building and the ONNX graphs read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rnncli.errors import UsageError

LOWEST = -3.4028234663852886e38  # float32's lowest: the identity of a max
PACKAGE = "rnncli"  # a keras_layer "rnncli>Name" is one of rnncli's layers (layers.py)


@dataclass(frozen=True)
class Reduction:
    """A reduction over time as totals that split at any step: each step gives values
    (`keep`), each value totals over steps by "max" or "sum" (`by`), and the pooled vector
    comes from the totals (`finish`). Splitting is what lets a graph skip steps whose totals
    are known beforehand: the native graph of a 'pre'-padded model merges the leading pads'
    totals (pad_states, the same `keep` run on numpy) into those of the steps it runs."""

    # (ops, outputs, mask or None) -> values. Elementwise, so one step [batch, features] or
    # all of them at once; a mask (bool, [..., 1]) is given to masked poolings only.
    keep: Callable[..., tuple]
    by: tuple[str, ...]  # how each value totals over steps: "max" or "sum"
    # (ops, totals, steps the model ran) -> the pooled vector [batch, features]
    finish: Callable[..., Any]


def _keep_outputs(o, h, mask):
    return (h,)


def _keep_real_outputs(o, h, mask):
    return (o.where(mask, h, LOWEST),)


def _first(o, totals, steps):
    return totals[0]


def _per_step(o, totals, steps):
    return o.div(totals[0], steps)


def _keep_real_sum_and_count(o, h, mask):
    return o.where(mask, h, 0.0), o.where(mask, 1.0, 0.0)


def _per_real_step(o, totals, steps):
    # At least 1: a row without a real token has a zero sum, and 0 / 0 would be NaN.
    total, count = totals
    return o.div(total, o.maximum(count, 1.0))


MAX = Reduction(_keep_outputs, ("max",), _first)
MEAN = Reduction(_keep_outputs, ("sum",), _per_step)
MASKED_MAX = Reduction(_keep_real_outputs, ("max",), _first)
MASKED_MEAN = Reduction(_keep_real_sum_and_count, ("sum", "sum"), _per_real_step)


@dataclass(frozen=True)
class Pooling:
    name: str  # the --pooling value
    reduction: Reduction | None  # over the outputs of every step; None: the final state
    # Pad id 0 is masked from the embedding on: recurrent layers skip pad steps (their state
    # carries through), the reduction sees real tokens only and a row without any pools to
    # zeros.
    masked: bool
    # The layer named "pool": a keras.layers class, or "rnncli>Name", rnncli's layer made
    # from `reduction` (layers.py); None when the last state is used.
    keras_layer: str | None
    help: str

    @property
    def custom_layer(self) -> bool:
        return bool(self.keras_layer) and self.keras_layer.startswith(PACKAGE + ">")

    def over_time(self, ops, steps, masks, steps_run, skipped=None, any_real=None):
        """The pooled vector of `steps`, the outputs: one array or tensor with time on the
        ops' time axis, masks alike, or lists of per-step ones (the unrolled graph).

        steps_run: how many steps the model ran, pads included (maxlen). skipped: per value,
        the totals of steps not in `steps` (leading pads), merged in. any_real (masked
        poolings): [batch, 1], false for a row without a real token, which pools to zeros.
        """
        r = self.reduction
        if r is None:
            raise ValueError(f"pooling {self.name!r} reads the last state, not the steps")
        if self.masked and (masks is None or any_real is None):
            raise ValueError(f"pooling {self.name!r} needs the masks and any_real")
        if isinstance(steps, list):
            kept = [r.keep(ops, h, m) for h, m in zip(steps, masks or [None] * len(steps))]
            values = [list(v) for v in zip(*kept)]
        else:
            values = r.keep(ops, steps, masks)
        totals = [ops.total(v, by) for v, by in zip(values, r.by)]
        if skipped is not None:
            totals = [ops.maximum(t, s) if by == "max" else ops.add(t, s)
                      for t, s, by in zip(totals, skipped, r.by)]
        pooled = r.finish(ops, totals, steps_run)
        if self.masked:
            pooled = ops.where(any_real, pooled, 0.0)
        return pooled


POOLINGS: dict[str, Pooling] = {p.name: p for p in (
    Pooling("last", None, False, None, "the final state"),
    Pooling("max", MAX, False, "GlobalMaxPooling1D", "max over every step, pads included"),
    Pooling("mean", MEAN, False, "GlobalAveragePooling1D",
            "mean over every step, pads included"),
    Pooling("masked-max", MASKED_MAX, True, "rnncli>MaskedGlobalMaxPooling1D",
            "max over real tokens, pad steps skipped"),
    Pooling("masked-mean", MASKED_MEAN, True, "rnncli>MaskedGlobalAveragePooling1D",
            "mean over real tokens, pad steps skipped"),
)}


def get_pooling(name: str) -> Pooling:
    try:
        return POOLINGS[name]
    except KeyError:
        raise UsageError(f"--pooling {name!r}: use {', '.join(POOLINGS)}.") from None
