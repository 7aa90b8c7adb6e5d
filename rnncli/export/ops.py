"""Building blocks of rnncli's hand-built ONNX graphs: nodes, constants, and the ONNX backend
of the cells' step functions.

    g = GraphBuilder(opset=17)
    h = get_cell("gru").step(OnnxOps(g), xw, (h,), g.const("R", r), g.const("b", b))[0]

The cells' step functions (model/cells.py) and the poolings' reductions (model/poolings.py)
are written against an ops interface; OnnxOps turns each operation into a node, as
cells.NumpyOps turns it into numpy arithmetic.
"""

from __future__ import annotations

import numpy as np

from rnncli.model.poolings import LOWEST
from rnncli.serve.contract import INPUT

MIN_OPSET = 15  # Shape's start/end attributes
FLOAT, INT32, INT64 = 1, 6, 7  # onnx.TensorProto element types, for Cast


class GraphBuilder:
    """Nodes and constants under construction. Node names carry the prefix; constants are
    shared by name (pass one dict to several builders) and a name reused for another value
    is a builder bug."""

    def __init__(self, opset: int, prefix: str = "", consts: dict | None = None):
        self.opset, self.prefix, self.nodes = opset, prefix, []
        self.consts: dict[str, np.ndarray] = {} if consts is None else consts
        self._count = 0
        self._shapes: dict[str, tuple[str, str]] = {}

    @property
    def inits(self) -> dict:
        """The constants as ONNX initializers, by name."""
        from onnx import numpy_helper

        return {k: numpy_helper.from_array(v, k) for k, v in self.consts.items()}

    def const(self, name: str, value) -> str:
        # Not np.ascontiguousarray: it turns a 0-d index into shape [1].
        value = np.array(value, order="C")
        old = self.consts.get(name)
        if old is not None and (old.shape != value.shape or old.dtype != value.dtype
                                or not np.array_equal(old, value)):
            raise ValueError(f"constant {name!r} defined twice with different values")
        self.consts[name] = value
        return name

    def node(self, op: str, inputs: list[str], name: str | None = None, n_out: int = 1,
             unused: tuple[int, ...] = (), **attrs) -> list[str]:
        """A node; the optional outputs numbered in `unused` are left out (named ""), which
        spares the kernel writing them."""
        from onnx import helper

        if name is None:
            self._count += 1
            name = f"{op.lower()}_{self._count}"
        name = self.prefix + name
        outs = ["" if i in unused else f"{name}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs

    def one(self, op: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        return self.node(op, inputs, name, **attrs)[0]

    def int64(self, name: str, values) -> str:
        return self.const(name, np.array(values, np.int64))

    def reduce(self, op: str, x: str, axis: int, keepdims: int = 0) -> str:
        """ReduceMax/Mean/Sum over one axis, in the form the opset wants."""
        axes_as_input = self.opset >= (13 if op == "ReduceSum" else 18)
        if axes_as_input:
            return self.one(op, [x, self.int64(f"axis_{axis}", [axis])], keepdims=keepdims)
        return self.one(op, [x], axes=[axis], keepdims=keepdims)

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.one("Unsqueeze", [x, self.int64(f"axis_{axis}", [axis])])

    def batch_and_width(self, x: str = INPUT) -> tuple[str, str]:
        """Shape [1] tensors: the batch size and the number of steps of `x`."""
        if x not in self._shapes:
            tag = f"{len(self._shapes)}" if self._shapes else ""
            self._shapes[x] = (self.one("Shape", [x], f"batch_1d{tag}", start=0, end=1),
                               self.one("Shape", [x], f"width_1d{tag}", start=1, end=2))
        return self._shapes[x]

    def pad_to(self, ids: str, maxlen: int, side: str) -> str:
        """Rows shorter than maxlen padded with 0 on `side`, as the model saw them."""
        _, width = self.batch_and_width(ids)
        missing = self.one("Sub", [self.int64("maxlen_1d", [maxlen]), width], "missing_steps")
        zero = self.int64("zero_1d", [0])
        parts = [zero, missing, zero, zero] if side == "pre" else [zero, zero, zero, missing]
        pads = self.one("Concat", parts, "pads", axis=0)
        return self.one("Pad", [ids, pads], "ids_maxlen")

    def zeros(self, batch_1d: str, units: int) -> str:
        """A float [batch, units] of zeros: the recurrent layers' first state."""
        from onnx import TensorProto, helper

        shape = self.one("Concat", [batch_1d, self.int64(f"units_{units}", [units])],
                         f"zeros_{units}_shape", axis=0)
        return self.one("ConstantOfShape", [shape], f"zeros_{units}",
                        value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))


class OnnxOps:
    """The step functions' operations as ONNX nodes of one builder."""

    def __init__(self, g: GraphBuilder):
        self.g = g

    def linear(self, h, weight, bias):  # h @ weight + bias, one Gemm
        return self.g.one("Gemm", [h, weight, bias])

    def add(self, a, b):
        return self.g.one("Add", [a, b])

    def sub(self, a, b):
        return self.g.one("Sub", [a, b])

    def mul(self, a, b):
        return self.g.one("Mul", [a, b])

    def sigmoid(self, v):
        return self.g.one("Sigmoid", [v])

    def tanh(self, v):
        return self.g.one("Tanh", [v])

    def split(self, v, n: int):  # n equal blocks of the last axis
        attrs = {"num_outputs": n} if self.g.opset >= 18 else {}
        return self.g.node("Split", [v], n_out=n, axis=-1, **attrs)

    # The poolings' reductions (poolings.py). Python numbers become float constants; time
    # is the first axis of a tensor, or a list holds one tensor per step.

    def where(self, cond, a, b):
        return self.g.one("Where", [cond, self.number(a), self.number(b)])

    def maximum(self, a, b):
        return self.g.one("Max", [self.number(a), self.number(b)])

    def div(self, a, b):
        return self.g.one("Div", [self.number(a), self.number(b)])

    def total(self, v, by: str):  # over time: "max" or "sum"
        if isinstance(v, list):
            return self.g.one("Max" if by == "max" else "Sum", v)
        return self.g.reduce("ReduceMax" if by == "max" else "ReduceSum", v, 0)

    def number(self, v):
        """A tensor name as it is; a Python number as a float constant."""
        if isinstance(v, str):
            return v
        value = np.float32(v)
        names = {np.float32(LOWEST): "lowest", 0.0: "zero_f", 1.0: "one_f"}
        return self.g.const(names.get(value, f"float_{value:g}"), value)


def dense_head(g: GraphBuilder, model, features: str, out: str) -> None:
    """The layer named "dense" on [batch, features], then its activation: Dense(1, sigmoid),
    Dense(1) plus the n-gram head's logit of the graph's input ids (train/head.py), or
    Dense(K, softmax) to [batch, K] for K > 2 labels (Dense(K) plus the head's logits per
    label, with the head)."""
    from onnx import helper

    from rnncli.export.ngram import onnx_head_logit
    from rnncli.model.ngram import has_head

    kernel, bias = (np.asarray(w, np.float32) for w in model.get_layer("dense").get_weights())
    logits = g.one("Gemm", [features, g.const("dense_kernel", kernel),
                            g.const("dense_bias", bias)], "dense")
    if has_head(model):
        logits = g.one("Add", [logits, onnx_head_logit(g, model, INPUT)], "logit")
    if kernel.shape[1] > 1:  # weights.output_width has checked it is a softmax
        g.nodes.append(helper.make_node("Softmax", [logits], [out], name=g.prefix + "softmax",
                                        axis=-1))
        return
    g.nodes.append(helper.make_node("Sigmoid", [logits], [out], name=g.prefix + "sigmoid"))
