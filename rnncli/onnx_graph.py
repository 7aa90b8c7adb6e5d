"""A hand-built ONNX graph for rnncli's Keras models, using ONNX's native RNN/LSTM/GRU ops.

    proto = build_native_graph(model, cfg, opset=17, fold=True)

tf2onnx turns Keras recurrent layers into a generic `Loop` or into one MatMul per time
step; onnxruntime runs a single native RNN/LSTM/GRU node far faster. The weights are read
from the layers, with Keras's gate order mapped to ONNX's. With `fold`, the embedding
table is multiplied by the first layer's input kernel (plus its bias) once, at export:
a lookup then replaces the per-token projection.
"""

from __future__ import annotations

import numpy as np

from rnncli.config import RunConfig

INPUT = "ids"
OUTPUT = "probability"


def _gate_blocks(matrix: np.ndarray, cell: str) -> np.ndarray:
    """Reorder the gate blocks of the last axis from Keras's order to ONNX's."""
    if cell != "lstm":
        return matrix  # SimpleRNN has one block; GRU is z, r, h in both
    i, f, c, o = np.split(matrix, 4, axis=-1)
    return np.concatenate([i, o, f, c], axis=-1)


def _cell_weights(rnn_layer, cell: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(kernel [in, gH], recurrent [H, gH], input bias [gH], recurrent bias [gH]), ONNX order."""
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
    return (_gate_blocks(kernel, cell), _gate_blocks(recurrent, cell),
            _gate_blocks(b_in, cell), _gate_blocks(b_rec, cell))


def _directions(layer):
    if type(layer).__name__ == "Bidirectional":
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


def build_native_graph(model, cfg: RunConfig, opset: int = 17, fold: bool = True):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d, m = cfg.data, cfg.model
    op = {"simple": "RNN", "lstm": "LSTM", "gru": "GRU"}[m.cell]
    inits, nodes = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op_type: str, inputs: list[str], name: str, n_out: int = 1, **attrs) -> list[str]:
        outs = [f"{name}_out{i}" for i in range(n_out)]
        nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs

    embedding = np.asarray(model.get_layer("embedding").embeddings.numpy(), np.float32)
    rnn_layers = [model.get_layer(f"bi_rnn_{i}" if m.bidirectional else f"rnn_{i}")
                  for i in range(m.layers)]

    x = None
    for i, layer in enumerate(rnn_layers):
        dirs = _directions(layer)
        weights = [_cell_weights(dl, m.cell) for dl in dirs]
        if i == 0:
            if fold:
                # One table per direction: embedding @ kernel + input bias, then an identity
                # input kernel. Directions are stacked along the features.
                tables = [embedding @ w[0] + w[2] for w in weights]
                table = np.concatenate(tables, axis=1)
                g_h = weights[0][0].shape[1]
                eye = np.eye(g_h, dtype=np.float32)
                W = np.stack([np.concatenate([eye if k == j else np.zeros_like(eye)
                                              for k in range(len(dirs))], axis=1)
                              for j in range(len(dirs))])
                b_in = [np.zeros(g_h, np.float32) for _ in dirs]
            else:
                table = embedding
                W = np.stack([w[0].T for w in weights])
                b_in = [w[2] for w in weights]
            gathered = node("Gather", [const("table", table), INPUT], "lookup")[0]
            x = node("Transpose", [gathered], "time_major", perm=[1, 0, 2])[0]
        else:
            W = np.stack([w[0].T for w in weights])
            b_in = [w[2] for w in weights]
        R = np.stack([w[1].T for w in weights])
        B = np.stack([np.concatenate([bi, w[3]]) for bi, w in zip(b_in, weights)])
        attrs = {"hidden_size": m.units,
                 "direction": "bidirectional" if len(dirs) == 2 else "forward"}
        if op == "GRU":
            attrs["linear_before_reset"] = 1
        y, y_h = node(op, [x, const(f"W{i}", W), const(f"R{i}", R), const(f"B{i}", B)],
                      f"{op.lower()}_{i}", n_out=2 if op != "LSTM" else 3, **attrs)[:2]
        last = i == len(rnn_layers) - 1
        if last and m.pooling == "last":
            # Y_h: [dirs, N, H] -> [N, dirs * H], forward then backward as Keras concatenates.
            t = node("Transpose", [y_h], f"state_{i}", perm=[1, 0, 2])[0]
            x = node("Reshape", [t, const("flat2", np.array([0, -1], np.int64))], "features")[0]
        else:
            # Y: [T, dirs, N, H] -> [T, N, dirs * H]
            t = node("Transpose", [y], f"seq_{i}", perm=[0, 2, 1, 3])[0]
            x = node("Reshape", [t, const(f"flat3_{i}", np.array([0, 0, -1], np.int64))],
                     f"seq_flat_{i}")[0]
    if m.pooling in ("max", "mean"):
        reduce = "ReduceMax" if m.pooling == "max" else "ReduceMean"
        if opset >= 18:
            x = node(reduce, [x, const("time_axis", np.array([0], np.int64))], "pool",
                     keepdims=0)[0]
        else:
            x = node(reduce, [x], "pool", axes=[0], keepdims=0)[0]

    dense = model.get_layer("dense")
    dk, db = (np.asarray(w, np.float32) for w in dense.get_weights())
    logits = node("Gemm", [x, const("dense_kernel", dk), const("dense_bias", db)], "dense")[0]
    nodes.append(helper.make_node("Sigmoid", [logits], [OUTPUT], name="sigmoid"))

    graph = helper.make_graph(
        nodes, "rnncli_native",
        [helper.make_tensor_value_info(INPUT, TensorProto.INT32, ["batch", d.maxlen])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 1])],
        initializer=inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="rnncli")
    proto.ir_version = min(proto.ir_version, 10)  # readable by older onnxruntime releases
    onnx.checker.check_model(proto)
    return proto
