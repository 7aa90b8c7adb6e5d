"""The recurrent cells rnncli knows, each in one place: adding a cell means adding one here.

    cell = get_cell("gru")
    w = cell.weights(keras_layer)              # kernel, recurrent kernel, biases, shapes checked
    states = run_steps(cell, w, xs)            # numpy, the same step the ONNX graphs unroll

A Cell holds its Keras layer class, its ONNX op and attributes, how Keras's gate blocks map
to ONNX's, how the Keras weights split, and one step function written against a small ops
interface: NumpyOps below computes pad states, export/ops.OnnxOps emits the unrolled graph's
nodes, so both come from the same definition. The poolings' reductions (poolings.py) use the
same interface. numpy is imported where it is used: config reads this registry for `--help`
and completion, which must stay light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rnncli.errors import GraphUnsupported, UsageError
from rnncli.model.poolings import LOWEST

if TYPE_CHECKING:
    import numpy as np


class NumpyOps:
    """The step functions' operations on numpy arrays (float64 for the pad states)."""

    def __init__(self):
        import numpy

        self.np = numpy

    def linear(self, h, weight, bias):  # h @ weight + bias
        return h @ weight + bias

    def add(self, a, b):
        return a + b

    def sub(self, a, b):
        return a - b

    def mul(self, a, b):
        return a * b

    def sigmoid(self, v):
        return 1.0 / (1.0 + self.np.exp(-v))

    def tanh(self, v):
        return self.np.tanh(v)

    def split(self, v, n: int):  # n equal blocks of the last axis
        return self.np.split(v, n, axis=-1)

    # The poolings' reductions (poolings.py); time is the first axis.

    def where(self, cond, a, b):
        return self.np.where(cond, a, b)

    def maximum(self, a, b):
        return self.np.maximum(a, b)

    def div(self, a, b):
        return a / b

    def total(self, v, by: str):  # over time: "max" or "sum"
        v = self.np.asarray(v)
        return v.max(axis=0) if by == "max" else v.sum(axis=0)

    def running_total(self, v, by: str):
        """Row k: the total over the first k steps; row 0 is the total's identity."""
        v = self.np.asarray(v, self.np.float64)
        if by == "max":
            return self.np.concatenate([self.np.full_like(v[:1], LOWEST),
                                        self.np.maximum.accumulate(v, axis=0)])
        return self.np.concatenate([self.np.zeros_like(v[:1]), self.np.cumsum(v, axis=0)])


def _simple_step(o, xw, state, recurrent, recurrent_bias):
    (h,) = state
    return (o.tanh(o.linear(h, recurrent, xw)),)


def _lstm_step(o, xw, state, recurrent, recurrent_bias):
    h, c = state
    i, f, g, out = o.split(o.linear(h, recurrent, xw), 4)  # Keras order: i, f, c, o
    c = o.add(o.mul(o.sigmoid(f), c), o.mul(o.sigmoid(i), o.tanh(g)))
    return o.mul(o.sigmoid(out), o.tanh(c)), c


def _gru_step(o, xw, state, recurrent, recurrent_bias):
    # reset_after: h' = z * h + (1 - z) * tanh(x_h + r * (h R_h + b_h)), gates z, r, h.
    (h,) = state
    xz, xr, xh = o.split(xw, 3)
    rz, rr, rh = o.split(o.linear(h, recurrent, recurrent_bias), 3)
    z = o.sigmoid(o.add(xz, rz))
    r = o.sigmoid(o.add(xr, rr))
    candidate = o.tanh(o.add(xh, o.mul(r, rh)))
    return (o.add(candidate, o.mul(z, o.sub(h, candidate))),)


@dataclass(frozen=True)
class CellWeights:
    """One direction of one layer, in Keras's gate order; float32."""

    kernel: np.ndarray  # [input, gates * units]
    recurrent: np.ndarray  # [units, gates * units]
    input_bias: np.ndarray  # [gates * units]
    recurrent_bias: np.ndarray  # [gates * units]; zeros for cells with one bias


@dataclass(frozen=True)
class Cell:
    name: str  # the --cell value
    keras_layer: str  # keras.layers class
    onnx_op: str  # ONNX operator running the whole sequence
    onnx_gate_order: tuple[int, ...]  # for each ONNX gate block, its Keras block index
    states: int  # 1 (h) or 2 (h, c)
    step: Callable[..., tuple]  # (ops, x @ kernel + input bias, state, recurrent, recurrent bias)
    help: str
    onnx_attributes: dict[str, Any] = field(default_factory=dict)
    # Keras attributes the step function assumes; another value is refused, not guessed.
    keras_settings: dict[str, Any] = field(default_factory=dict)
    two_biases: bool = False  # Keras stores [input bias, recurrent bias] as a [2, gH] bias

    @property
    def gates(self) -> int:
        return len(self.onnx_gate_order)

    def to_onnx(self, matrix: np.ndarray) -> np.ndarray:
        """Reorder the gate blocks of the last axis from Keras's order to ONNX's."""
        import numpy as np

        blocks = np.split(matrix, self.gates, axis=-1)
        return np.concatenate([blocks[k] for k in self.onnx_gate_order], axis=-1)

    def weights(self, layer) -> CellWeights:
        """Split a Keras recurrent layer's weights, checking every setting and shape."""
        import numpy as np

        if type(layer).__name__ != self.keras_layer:
            raise GraphUnsupported(f"layer {layer.name} is a {type(layer).__name__}, expected "
                                   f"{self.keras_layer} for cell {self.name!r}")
        c = layer.cell
        for attr, want in self.keras_settings.items():
            got = getattr(c, attr, None)
            got = getattr(got, "__name__", got)  # activations are functions
            if got != want:
                raise GraphUnsupported(f"layer {layer.name} has {attr}={got!r}; the graphs "
                                       f"implement {attr}={want!r}")
        kernel = np.asarray(c.kernel.numpy(), np.float32)
        recurrent = np.asarray(c.recurrent_kernel.numpy(), np.float32)
        units, g_h = c.units, self.gates * c.units
        bias = np.asarray(c.bias.numpy(), np.float32) if c.use_bias else None
        expected = {"kernel": (kernel.shape[0], g_h), "recurrent kernel": (units, g_h)}
        got = {"kernel": kernel.shape, "recurrent kernel": recurrent.shape}
        if bias is not None:
            expected["bias"] = (2, g_h) if self.two_biases else (g_h,)
            got["bias"] = bias.shape
        for name, shape in expected.items():
            if tuple(got[name]) != shape:
                raise GraphUnsupported(f"layer {layer.name}: {name} has shape {got[name]}, "
                                       f"expected {shape} for a {self.keras_layer}({units})")
        zeros = np.zeros(g_h, np.float32)
        if bias is None:
            b_in, b_rec = zeros, zeros
        elif self.two_biases:
            b_in, b_rec = bias[0], bias[1]
        else:
            b_in, b_rec = bias, zeros
        return CellWeights(kernel, recurrent, b_in, b_rec)


_TANH = {"activation": "tanh"}
_GATED = {"activation": "tanh", "recurrent_activation": "sigmoid"}

CELLS: dict[str, Cell] = {c.name: c for c in (
    Cell("simple", "SimpleRNN", "RNN", (0,), 1, _simple_step, "SimpleRNN, the recipe's",
         keras_settings=_TANH),
    # ONNX's LSTM blocks are i, o, f, c; Keras's are i, f, c, o.
    Cell("lstm", "LSTM", "LSTM", (0, 3, 1, 2), 2, _lstm_step, "LSTM",
         keras_settings=_GATED),
    # Keras's reset_after=True (its default) applies the reset gate after the recurrent
    # matmul, which is ONNX's linear_before_reset=1; both order the gates z, r, h.
    Cell("gru", "GRU", "GRU", (0, 1, 2), 1, _gru_step, "GRU",
         onnx_attributes={"linear_before_reset": 1},
         keras_settings={**_GATED, "reset_after": True}, two_biases=True),
)}


def get_cell(name: str) -> Cell:
    try:
        return CELLS[name]
    except KeyError:
        raise UsageError(f"Unknown cell {name!r}: use {', '.join(CELLS)}.") from None


def run_steps(cell: Cell, w: CellWeights, xs: np.ndarray,
              state: tuple[np.ndarray, ...] | None = None) -> list[tuple[np.ndarray, ...]]:
    """The state after each row of `xs` ([steps, input]) from `state` (zeros), in float64;
    the first entry is the starting state."""
    import numpy as np

    o = NumpyOps()
    kernel, recurrent, b_in, b_rec = (np.asarray(a, np.float64) for a in
                                      (w.kernel, w.recurrent, w.input_bias, w.recurrent_bias))
    if state is None:
        state = tuple(np.zeros(recurrent.shape[0]) for _ in range(cell.states))
    out = [state]
    for x in xs:
        state = cell.step(o, np.asarray(x, np.float64) @ kernel + b_in, state, recurrent, b_rec)
        out.append(state)
    return out
