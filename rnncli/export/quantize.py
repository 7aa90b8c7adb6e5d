"""Weight-only int8 quantization of an exported model: a smaller file, float arithmetic.

    result = quantize_model(Path("artifacts/model.onnx"), x, y, keras_outputs, 200, "pre")

Each float weight of MIN_ELEMENTS or more values is stored as int8 with one float scale
per channel (symmetric, zero point 0) and turned back into a float tensor of the same name
by Cast and Mul, placed in the graph that uses it (an If branch, a Loop body, or the main
graph), so every consumer reads it unchanged. onnxruntime folds those constant nodes when
it loads the file: the graph then runs on float weights with float activations, as fast
as the float model, and its outputs do not depend on a CPU's int8 instructions (as those of
onnxruntime's dynamic quantization do). A lookup table (read only by Gather) is not folded:
folding a 30,000-word embedding tripled the bundled model's load time. The Gather reads its int8
rows and their scales, and Cast and Mul turn just those rows into floats: the same float
values, bit for bit, for a few hundred multiplications per review. DequantizeLinear would
compute the same values, but onnxruntime fuses it with a following MatMul into an int8
kernel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnncli.export.ngram import TABLE as HEAD_TABLE
from rnncli.fsutil import atomic_path

MIN_ELEMENTS = 4096  # smaller weights are not worth a scale table


def _subgraphs(node):
    for attr in node.attribute:
        if attr.g.node:
            yield attr.g
        yield from attr.graphs


def _consumers(graph, name: str, found: list) -> list:
    """(graph, node) for every use of `name`, in nested graphs too."""
    for node in graph.node:
        if name in node.input:
            found.append((graph, node))
        for sub in _subgraphs(node):
            _consumers(sub, name, found)
    return found


def _is_row_lookup(node, name: str) -> bool:
    """Whether `node` looks up rows of the weight `name` (Gather on axis 0, its data)."""
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    return node.op_type == "Gather" and node.input[0] == name and list(
        node.input).count(name) == 1 and axis == 0


def _dequantize_rows(graph, node, q_name: str, s_name: str, per_row: bool) -> None:
    """Make the lookup `node` read int8 rows and their scales (or the table's one scale),
    then give floats under its own output name."""
    from onnx import TensorProto, helper

    out, indices = node.output[0], node.input[1]
    node.input[0], node.output[0] = q_name, out + "/int8"
    scale = out + "/scale" if per_row else s_name
    after = [
        helper.make_node("Gather", [s_name, indices], [scale], name=node.name + "/scales"),
    ] if per_row else []
    after += [
        helper.make_node("Cast", [out + "/int8"], [out + "/float"],
                         name=node.name + "/cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", [out + "/float", scale], [out],
                         name=node.name + "/dequantize"),
    ]
    at = list(graph.node).index(node) + 1
    for extra in reversed(after):
        graph.node.insert(at, extra)


def _symmetric_int8(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(int8 values, float32 scales shaped to broadcast along `axis`), w ~= q * scale."""
    others = tuple(a for a in range(w.ndim) if a != axis)
    scale = np.max(np.abs(w), axis=others, keepdims=True) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


def head_table_int8(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The n-gram head's TABLE ([keys, columns]: idf, weights) as int8 with one scale per
    column ([1, columns]), as the export stores it and tools/rehead.py rewrites it."""
    return _symmetric_int8(np.asarray(table, np.float32), 1)


def quantize_weights(proto) -> list[dict]:
    """Quantize the model's large float weights in place; returns one entry per weight
    (name, shape, scale axis), empty when there was nothing to quantize."""
    from onnx import TensorProto, helper, numpy_helper

    graph, done, restore = proto.graph, [], []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        w = numpy_helper.to_array(init)
        uses = _consumers(graph, init.name, [])
        lookup = bool(uses) and all(_is_row_lookup(node, init.name) for _, node in uses)
        if w.size < MIN_ELEMENTS or not uses or (w.ndim < 2 and not lookup):
            continue
        # One scale per row of a lookup table or per output unit of a kernel: the longest
        # axis (vocabulary rows, gate units). A vector has one scale. The n-gram head's
        # table (a row per key: its idf, its weight or K weights) has one per column: a
        # scale per key would weigh more than the key's int8 values.
        axis = int(np.argmax(w.shape))
        head_table = lookup and init.name == HEAD_TABLE
        if w.ndim == 1:
            q, scale = _symmetric_int8(w.reshape(1, -1), 0)
            q, scale = q.reshape(w.shape), scale.reshape(())
        elif head_table:
            q, scale = head_table_int8(w)
        else:
            q, scale = _symmetric_int8(w, axis)
        q_name, s_name = init.name + "/int8", init.name + "/scale"
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(q, q_name),
                                  numpy_helper.from_array(scale, s_name)])
        if axis == 0 and lookup:
            for where, node in uses:
                _dequantize_rows(where, node, q_name, s_name,
                                 per_row=w.ndim > 1 and not head_table)
            done.append({"name": init.name, "shape": list(w.shape), "scale_axis": axis,
                         "dequantized": "at lookup"})
            continue
        where = uses[0][0] if len({g.name for g, _ in uses}) == 1 else graph
        restore.append((where, [
            helper.make_node("Cast", [q_name], [q_name + "/float"], name=q_name + "/cast",
                             to=TensorProto.FLOAT),
            helper.make_node("Mul", [q_name + "/float", s_name], [init.name],
                             name=init.name + "/dequantize")]))
        done.append({"name": init.name, "shape": list(w.shape), "scale_axis": axis,
                     "dequantized": "at load"})
    for where, nodes in reversed(restore):  # first in its graph, so before every use
        for node in reversed(nodes):
            where.node.insert(0, node)
    return done


def quantize_model(output: Path, x: np.ndarray, y: np.ndarray | None,
                   reference: np.ndarray, trimmed: int, padding: str) -> dict:
    """The int8 file beside the float one, with its own parity against Keras (rows padded
    and, with `trimmed`, trimmed) and its accuracy (for K > 2 labels: of the most probable
    label, and how often it is the float model's); nothing written when nothing could be
    quantized or the file would not be smaller."""
    import onnx

    from rnncli.export.check import full_check, max_diff, run_sliced, session

    q_path = output.with_name(output.stem + ".int8.onnx")
    proto = onnx.load(str(output))
    tensors = quantize_weights(proto)
    float_size = output.stat().st_size
    result = {"path": None, "tensors": tensors, "float_size_bytes": float_size}
    if not tensors:
        result["skipped"] = (f"no float weight of {MIN_ELEMENTS:,} or more values: nothing "
                             "to quantize")
        return result
    sess = session(proto)
    diff = max_diff(sess, x, reference, trimmed, padding)
    got = run_sliced(sess, x).astype(np.float64)
    props = {p.key: p.value for p in proto.metadata_props}
    props.update({"rnncli.max_abs_diff": f"{diff:.3g}",
                  "rnncli.quantization": f"weight-only int8 ({len(tensors)} weights), float "
                                         "arithmetic"})
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    if proto.ByteSize() >= float_size:
        result["skipped"] = "the int8 file would not be smaller than the float one"
        return result
    full_check(proto, "The int8 graph", f"nothing written to {q_path} ({output} is written): "
               "a bug in rnncli; export without --quantize.")
    with atomic_path(q_path) as tmp:
        onnx.save(proto, str(tmp))
    result.update(path=str(q_path), size_bytes=q_path.stat().st_size, max_abs_diff=diff)
    if reference.shape[1] > 1:  # K labels: the most probable one
        # How often int8 picks the float model's label: its cost, with or without labels.
        result["argmax_agreement"] = float((reference.argmax(1) == got.argmax(1)).mean())
        y = None if y is None else np.asarray(y).reshape(-1)
        if y is not None and len(y) == len(got) and np.all(
                (y >= 0) & (y < got.shape[1]) & (y == np.round(y))):
            result["accuracy_float"] = float((reference.argmax(1) == y).mean())
            result["accuracy_int8"] = float((got.argmax(1) == y).mean())
    elif y is not None:
        ref, got = reference.ravel(), got.ravel()
        result["accuracy_float"] = float(((ref >= 0.5) == (y >= 0.5)).mean())
        result["accuracy_int8"] = float(((got >= 0.5) == (y >= 0.5)).mean())
    return result
