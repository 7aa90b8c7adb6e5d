"""Hand-built ONNX graphs for rnncli's Keras models, weights read from the layers.

    proto = build_graph(model, cfg, "hybrid", opset=17)

tf2onnx turns Keras recurrent layers into a generic `Loop` or one MatMul per time step.
Three faster shapes are built here:
- "native": ONNX's own RNN/LSTM/GRU node, one kernel for the whole sequence; the fastest
  for a single review (Keras's gate order is mapped to ONNX's).
- "native-folded": the same, with the embedding table multiplied by the first layer's
  input kernel (plus bias) once, at export, so a lookup replaces the input projection.
- "unrolled": one small step per token on the folded table (lookup, one Gemm, the gate
  activations); onnxruntime's native RNN kernels are slow on large batches, this is not.
- "hybrid": an `If` on the batch size: "native" for a few reviews, "unrolled" for more.
"""

from __future__ import annotations

import numpy as np

from rnncli.config import RunConfig

INPUT = "ids"
OUTPUT = "probability"
# Batches up to this size take the native-op branch of the hybrid graph.
HYBRID_SMALL_BATCH = 8
ONNX_OPS = {"simple": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _gate_blocks(matrix: np.ndarray, cell: str) -> np.ndarray:
    """Reorder the gate blocks of the last axis from Keras's order to ONNX's."""
    if cell != "lstm":
        return matrix  # SimpleRNN has one block; GRU is z, r, h in both
    i, f, c, o = np.split(matrix, 4, axis=-1)
    return np.concatenate([i, o, f, c], axis=-1)


def _cell_weights(rnn_layer) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(kernel [in, gH], recurrent [H, gH], input bias [gH], recurrent bias [gH]), Keras order."""
    c = rnn_layer.cell
    kernel = np.asarray(c.kernel.numpy(), np.float32)
    recurrent = np.asarray(c.recurrent_kernel.numpy(), np.float32)
    bias = np.asarray(c.bias.numpy(), np.float32) if c.use_bias else None
    g_h = kernel.shape[1]
    if bias is None:
        b_in, b_rec = np.zeros(g_h, np.float32), np.zeros(g_h, np.float32)
    elif bias.ndim == 2:  # GRU with reset_after: separate input and recurrent biases
        b_in, b_rec = bias[0], bias[1]
    else:
        b_in, b_rec = bias, np.zeros(g_h, np.float32)
    return kernel, recurrent, b_in, b_rec


def _directions(layer):
    if type(layer).__name__ == "Bidirectional":
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


class _Graph:
    """Nodes and initializers under construction; names are unique per builder."""

    def __init__(self, prefix: str = ""):
        self.prefix, self.nodes, self.inits = prefix, [], {}

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        # Not np.ascontiguousarray: it turns a 0-d index into shape [1].
        self.inits[name] = numpy_helper.from_array(np.array(value, order="C"), name)
        return name

    def node(self, op: str, inputs: list[str], name: str, n_out: int = 1, **attrs) -> list[str]:
        from onnx import helper

        name = self.prefix + name
        outs = [f"{name}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs

    def one(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        return self.node(op, inputs, name, **attrs)[0]


def _rnn_layers(model, cfg: RunConfig):
    m = cfg.model
    return [model.get_layer(f"bi_rnn_{i}" if m.bidirectional else f"rnn_{i}")
            for i in range(m.layers)]


def _head(g: _Graph, model, x: str, out: str) -> None:
    dense = model.get_layer("dense")
    dk, db = (np.asarray(w, np.float32) for w in dense.get_weights())
    logits = g.one("Gemm", [x, g.const("dense_kernel", dk), g.const("dense_bias", db)], "dense")
    from onnx import helper

    g.nodes.append(helper.make_node("Sigmoid", [logits], [out], name=g.prefix + "sigmoid"))


def trims_padding(cfg: RunConfig) -> bool:
    """Whether the native graph accepts reviews shorter than maxlen (see pad_states)."""
    m = cfg.model
    return cfg.data.padding == "pre" and not m.bidirectional and m.pooling == "last"


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def pad_states(model, cfg: RunConfig) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Per layer, the (h, c) state after k = 0..maxlen leading pad tokens.

    With 'pre' padding every review starts with pad tokens, and the state they leave does
    not depend on the review. So a review of n tokens gives the same output as its padded
    form when it starts from the state after maxlen - n pads: the graph then runs n steps
    instead of maxlen, which is most of a short review's latency.
    """
    m, T = cfg.model, cfg.data.maxlen
    x = np.asarray(model.get_layer("embedding").embeddings.numpy(), np.float64)[0]
    xs = np.repeat(x[None, :], T, axis=0)
    result = []
    for layer in _rnn_layers(model, cfg):
        kernel, R, b_in, b_rec = (w.astype(np.float64) for w in _cell_weights(layer))
        H = R.shape[0]
        h, c = np.zeros(H), np.zeros(H)
        hs, cs = [h], [c]
        for t in range(T):
            z = xs[t] @ kernel + b_in
            if m.cell == "simple":
                h = np.tanh(z + h @ R)
            elif m.cell == "lstm":
                i, f, g, o = np.split(z + h @ R + b_rec, 4)
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                h = _sigmoid(o) * np.tanh(c)
            else:
                xz, xr, xh = np.split(z, 3)
                rz, rr, rh = np.split(h @ R + b_rec, 3)
                zg, rg = _sigmoid(xz + rz), _sigmoid(xr + rr)
                hh = np.tanh(xh + rg * rh)
                h = zg * h + (1 - zg) * hh
            hs.append(h)
            cs.append(c)
        result.append((np.array(hs, np.float32),
                       np.array(cs, np.float32) if m.cell == "lstm" else None))
        xs = np.array(hs[1:])
    return result


def _initial_state(g: _Graph, table: np.ndarray, name: str, pads: str, batch_1d: str) -> str:
    """[1, N, H] rows of `table` at index `pads` (the number of pads not fed)."""
    row = g.one("Gather", [g.const(name, table), pads], name + "_row")  # [H]
    H = table.shape[1]
    shape = g.one("Concat", [g.const("one_1d", np.array([1], np.int64)), batch_1d,
                             g.const(f"h_{H}", np.array([H], np.int64))], name + "_shape",
                  axis=0)
    return g.one("Expand", [row, shape], name + "_init")


def _native(g: _Graph, model, cfg: RunConfig, opset: int, fold: bool, out: str) -> None:
    m = cfg.model
    op = ONNX_OPS[m.cell]
    embedding = np.asarray(model.get_layer("embedding").embeddings.numpy(), np.float32)
    x = ""
    layers = _rnn_layers(model, cfg)
    initial: list[list[str]] = [[] for _ in layers]
    if trims_padding(cfg):
        shape = g.one("Shape", [INPUT], "input_shape")
        batch_1d = g.one("Slice", [shape, g.const("zero_1d", np.array([0], np.int64)),
                                   g.const("one_1d", np.array([1], np.int64))], "batch_1d")
        steps = g.one("Gather", [shape, g.const("one", np.array(1, np.int64))], "steps")
        pads = g.one("Sub", [g.const("maxlen", np.array(cfg.data.maxlen, np.int64)), steps],
                     "pads_skipped")
        for i, (hs, cs) in enumerate(pad_states(model, cfg)):
            initial[i] = ["", _initial_state(g, hs, f"pad_h{i}", pads, batch_1d)]
            if cs is not None:
                initial[i].append(_initial_state(g, cs, f"pad_c{i}", pads, batch_1d))
    for i, layer in enumerate(layers):
        dirs = _directions(layer)
        weights = [_cell_weights(dl) for dl in dirs]
        if i == 0:
            if fold:
                # One table per direction, stacked along the features; an identity input
                # kernel then picks each direction's block.
                table = np.concatenate([embedding @ _gate_blocks(w[0], m.cell)
                                        + _gate_blocks(w[2], m.cell) for w in weights], axis=1)
                g_h = weights[0][0].shape[1]
                eye = np.eye(g_h, dtype=np.float32)
                W = np.stack([np.concatenate([eye if k == j else np.zeros_like(eye)
                                              for k in range(len(dirs))], axis=1)
                              for j in range(len(dirs))])
                b_in = [np.zeros(g_h, np.float32) for _ in dirs]
                table_name = "folded_table_onnx_order"
            else:
                table, table_name = embedding, "embedding"
                W = np.stack([_gate_blocks(w[0], m.cell).T for w in weights])
                b_in = [w[2] for w in weights]
            gathered = g.one("Gather", [g.const(table_name, table), INPUT], "lookup")
            x = g.one("Transpose", [gathered], "time_major", perm=[1, 0, 2])
        else:
            W = np.stack([_gate_blocks(w[0], m.cell).T for w in weights])
            b_in = [w[2] for w in weights]
        R = np.stack([_gate_blocks(w[1], m.cell).T for w in weights])
        B = np.stack([np.concatenate([_gate_blocks(bi, m.cell), _gate_blocks(w[3], m.cell)])
                      for bi, w in zip(b_in, weights)])
        attrs = {"hidden_size": m.units,
                 "direction": "bidirectional" if len(dirs) == 2 else "forward"}
        if op == "GRU":
            attrs["linear_before_reset"] = 1  # Keras's reset_after=True
        tag = "f" if fold else "n"
        # Optional inputs after B: sequence_lens (unused), initial_h, initial_c.
        y, y_h = g.node(op, [x, g.const(f"W{i}{tag}", W), g.const(f"R{i}", R),
                             g.const(f"B{i}{tag}", B), *initial[i]],
                        f"{op.lower()}_{i}", n_out=3 if op == "LSTM" else 2, **attrs)[:2]
        if i == len(layers) - 1 and m.pooling == "last":
            # Y_h: [dirs, N, H] -> [N, dirs * H], forward then backward as Keras concatenates.
            t = g.one("Transpose", [y_h], f"state_{i}", perm=[1, 0, 2])
            x = g.one("Reshape", [t, g.const("shape_2d", np.array([0, -1], np.int64))],
                      "features")
        else:
            # Y: [T, dirs, N, H] -> [T, N, dirs * H]
            t = g.one("Transpose", [y], f"seq_{i}", perm=[0, 2, 1, 3])
            x = g.one("Reshape", [t, g.const("shape_3d", np.array([0, 0, -1], np.int64))],
                      f"seq_flat_{i}")
    if m.pooling in ("max", "mean"):
        reduce = "ReduceMax" if m.pooling == "max" else "ReduceMean"
        if opset >= 18:
            x = g.one(reduce, [x, g.const("axis_0", np.array([0], np.int64))], "pool",
                      keepdims=0)
        else:
            x = g.one(reduce, [x], "pool", axes=[0], keepdims=0)
    _head(g, model, x, out)


def unrolled_supported(cfg: RunConfig) -> bool:
    return cfg.model.layers == 1 and not cfg.model.bidirectional


def _unrolled(g: _Graph, model, cfg: RunConfig, out: str) -> None:
    m, T = cfg.model, cfg.data.maxlen
    embedding = np.asarray(model.get_layer("embedding").embeddings.numpy(), np.float32)
    kernel, R, b_in, b_rec = _cell_weights(_rnn_layers(model, cfg)[0])
    table = g.const("folded_table", embedding @ kernel + b_in)  # Keras gate order
    rec = g.const("recurrent", R)
    ids_t = g.one("Transpose", [INPUT], "ids_time_major", perm=[1, 0])
    H = m.units
    h = c = pooled = ""
    if m.cell == "gru":
        b_rec_name = g.const("recurrent_bias", b_rec)
        split3 = g.const("split_3", np.array([H, H, H], np.int64))
    if m.cell == "lstm":
        split4 = g.const("split_4", np.array([H] * 4, np.int64))
    for t in range(T):
        s = f"_{t}"
        ids = g.one("Gather", [ids_t, g.const(f"t{t}", np.array(t, np.int64))], "ids" + s)
        x = g.one("Gather", [table, ids], "x" + s)  # [N, gates * H]: x @ kernel + bias
        if m.cell == "simple":
            a = g.one("Gemm", [h, rec, x], "a" + s) if h else x
            h = g.one("Tanh", [a], "h" + s)
        elif m.cell == "lstm":
            z = g.one("Gemm", [h, rec, x], "z" + s) if h else x
            zi, zf, zc, zo = g.node("Split", [z, split4], "gates" + s, n_out=4, axis=1)
            i_, o_ = g.one("Sigmoid", [zi], "i" + s), g.one("Sigmoid", [zo], "o" + s)
            cand = g.one("Mul", [i_, g.one("Tanh", [zc], "g" + s)], "ig" + s)
            c = g.one("Add", [g.one("Mul", [g.one("Sigmoid", [zf], "f" + s), c], "fc" + s),
                              cand], "c" + s) if c else cand
            h = g.one("Mul", [o_, g.one("Tanh", [c], "tc" + s)], "h" + s)
        else:  # GRU, reset_after: h' = z * h + (1 - z) * tanh(x_h + r * (h R_h + b_h))
            xz, xr, xh = g.node("Split", [x, split3], "xs" + s, n_out=3, axis=1)
            if h:
                rz, rr, rh = g.node("Split", [g.one("Gemm", [h, rec, b_rec_name], "rec" + s),
                                              split3], "rs" + s, n_out=3, axis=1)
            else:
                rz, rr, rh = g.node("Split", [b_rec_name, split3], "rs" + s, n_out=3, axis=0)
            zg = g.one("Sigmoid", [g.one("Add", [xz, rz], "zs" + s)], "z" + s)
            rg = g.one("Sigmoid", [g.one("Add", [xr, rr], "rsum" + s)], "r" + s)
            hh = g.one("Tanh", [g.one("Add", [xh, g.one("Mul", [rg, rh], "rh" + s)],
                                      "hs" + s)], "hh" + s)
            if h:
                diff = g.one("Sub", [h, hh], "d" + s)
                h = g.one("Add", [hh, g.one("Mul", [zg, diff], "zd" + s)], "h" + s)
            else:
                h = g.one("Sub", [hh, g.one("Mul", [zg, hh], "zh" + s)], "h" + s)
        if m.pooling == "max":
            pooled = g.one("Max", [pooled, h], "pool" + s) if pooled else h
        elif m.pooling == "mean":
            pooled = g.one("Add", [pooled, h], "pool" + s) if pooled else h
    if m.pooling == "mean":
        h = g.one("Div", [pooled, g.const("steps", np.array(T, np.float32))], "mean")
    elif m.pooling == "max":
        h = pooled
    _head(g, model, h, out)


def _finish(nodes, inits, opset: int, name: str, maxlen: int):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, name,
        # Length is symbolic: graphs that trim padding accept fewer than maxlen ids.
        [helper.make_tensor_value_info(INPUT, TensorProto.INT32, ["batch", "steps"])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 1])],
        initializer=list(inits.values()),
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="rnncli")
    proto.ir_version = min(proto.ir_version, 10)  # readable by older onnxruntime releases
    onnx.checker.check_model(proto)
    return proto


def build_graph(model, cfg: RunConfig, kind: str, opset: int = 17):
    """One of "native", "native-folded", "unrolled" or "hybrid" (see the module docstring)."""
    from onnx import TensorProto, helper

    if kind in ("unrolled", "hybrid") and not unrolled_supported(cfg):
        raise ValueError("the unrolled graph covers one unidirectional layer")
    maxlen = cfg.data.maxlen
    if kind in ("native", "native-folded"):
        g = _Graph()
        _native(g, model, cfg, opset, kind == "native-folded", OUTPUT)
        return _finish(g.nodes, g.inits, opset, "rnncli_" + kind, maxlen)
    if kind == "unrolled":
        g = _Graph()
        _unrolled(g, model, cfg, OUTPUT)
        return _finish(g.nodes, g.inits, opset, "rnncli_unrolled", maxlen)
    # Hybrid: both branches read their weights from the outer graph's initializers, so the
    # If node costs a branch selection per call, not a copy of the weights.
    small, large = _Graph("small/"), _Graph("large/")
    _native(small, model, cfg, opset, False, "small_probability")
    _unrolled(large, model, cfg, "large_probability")

    def branch(g: _Graph, out: str):
        return helper.make_graph(g.nodes, g.prefix.strip("/"), [], [
            helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", 1])])

    top = _Graph()
    n = top.one("Shape", [INPUT], "batch_size", start=0, end=1)
    big = top.one("Greater", [n, top.const("small_batch", np.array([HYBRID_SMALL_BATCH],
                                                                    np.int64))], "is_large")
    # The unrolled branch is built for exactly maxlen steps; shorter input (trimmed
    # padding) always takes the native branch, which accepts any length.
    t = top.one("Shape", [INPUT], "steps_1d", start=1, end=2)
    full = top.one("Equal", [t, top.const("maxlen_1d", np.array([maxlen], np.int64))],
                   "is_full_length")
    big = top.one("Squeeze", [top.one("And", [big, full], "use_unrolled")], "is_large_scalar")
    top.nodes.append(helper.make_node("If", [big], [OUTPUT], name="by_batch_size",
                                      then_branch=branch(large, "large_probability"),
                                      else_branch=branch(small, "small_probability")))
    inits = {**small.inits, **large.inits, **top.inits}
    return _finish(top.nodes, inits, opset, "rnncli_hybrid", maxlen)
