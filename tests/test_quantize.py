"""Weight-only quantization on small hand-made graphs (no TensorFlow): weights inside If
branches are quantized too, the file shrinks, and onnxruntime runs float arithmetic."""

import numpy as np
import pytest

pytest.importorskip("onnx")

INT8_KERNELS = {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul",
                "MatMulNBits", "QGemm", "QLinearMatMul", "MatMulIntegerToFloat",
                "DequantizeLinear", "QuantizeLinear"}


def graph_with_a_branch(rng, vocab=600, units=600):
    """ids -> Gather(table) -> mean over steps -> If(batch > 2: MatMul(w_large), else
    MatMul(w_small)), the weights read from the outer graph as the hybrid graph does."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = rng.normal(size=(vocab, 8)).astype(np.float32)  # 4,800 values: quantized
    w_large = rng.normal(size=(8, units)).astype(np.float32)
    w_small = rng.normal(size=(8, 3)).astype(np.float32)  # too small to quantize

    def branch(name, weight):
        node = helper.make_node("MatMul", ["pooled", weight], [name + "_out"])
        sum_node = helper.make_node("ReduceSum", [name + "_out", "axes"], [name + "_y"],
                                    keepdims=1)
        return helper.make_graph([node, sum_node], name, [], [
            helper.make_tensor_value_info(name + "_y", TensorProto.FLOAT, ["batch", 1])])

    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["rows"]),
        helper.make_node("ReduceMean", ["rows"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("Shape", ["ids"], ["n"], start=0, end=1),
        helper.make_node("Greater", ["n", "two"], ["big_1d"]),
        helper.make_node("Squeeze", ["big_1d"], ["big"]),
        helper.make_node("If", ["big"], ["probability"],
                         then_branch=branch("large", "w_large"),
                         else_branch=branch("small", "w_small")),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT32, ["batch", 5])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])],
        initializer=[numpy_helper.from_array(table, "table"),
                     numpy_helper.from_array(w_large, "w_large"),
                     numpy_helper.from_array(w_small, "w_small"),
                     numpy_helper.from_array(np.array([2], np.int64), "two"), axes])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 10
    onnx.checker.check_model(proto)
    return proto


def run(proto, x, optimized_to=None):
    import onnxruntime as ort

    from rnncli.serve.onnx_model import session_options

    opts = session_options()
    if optimized_to:
        opts.optimized_model_filepath = str(optimized_to)
    sess = ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(["probability"], {"ids": x})[0]


def _dequantized(q, name):
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    return (inits[name + "/int8"].astype(np.float32) * inits[name + "/scale"]).astype(np.float32)


def test_weights_in_branches_are_quantized_and_run_as_float(tmp_path):
    import copy

    import onnx
    from onnx import numpy_helper

    from rnncli.export.quantize import quantize_weights

    rng = np.random.default_rng(0)
    proto = graph_with_a_branch(rng)
    q = copy.deepcopy(proto)
    done = quantize_weights(q)
    assert {d["name"]: d["dequantized"] for d in done} == {"table": "at lookup",
                                                           "w_large": "at load"}
    assert q.ByteSize() < proto.ByteSize() / 2
    int8 = {i.name for i in q.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    assert int8 == {"table/int8", "w_large/int8"}
    # The float model with the dequantized weights: the int8 file must give its outputs
    # bit for bit, whether a weight is turned into floats at load or row by row at lookup.
    same = copy.deepcopy(proto)
    for init in same.graph.initializer:
        if init.name in ("table", "w_large"):
            init.CopyFrom(numpy_helper.from_array(_dequantized(q, init.name), init.name))
    x = rng.integers(0, 600, size=(4, 5)).astype(np.int32)
    for rows in (x, x[:2]):  # both branches
        got, want = run(q, rows, tmp_path / "optimized.onnx"), run(proto, rows)
        assert np.max(np.abs(got - want)) < 0.05 * np.max(np.abs(want))
        np.testing.assert_array_equal(got, run(same, rows))
        optimized = onnx.load(str(tmp_path / "optimized.onnx"))
        nodes = list(optimized.graph.node)
        for node in optimized.graph.node:
            for attr in node.attribute:
                nodes += attr.g.node
        ops = {n.op_type for n in nodes}
        assert not ops & INT8_KERNELS  # float arithmetic whatever the CPU
        # w_large's dequantizing nodes were folded at load; the table's rows are cast
        # after the lookup, not the whole table.
        assert [list(n.input) for n in nodes if n.op_type == "Cast"] == [["rows/int8"]]
        assert "table/int8" in [n.input[0] for n in nodes if n.op_type == "Gather"]


def test_nothing_to_quantize_is_said():
    import copy

    from rnncli.export.quantize import quantize_weights

    proto = graph_with_a_branch(np.random.default_rng(1), vocab=500, units=500)  # 4,000 each
    q = copy.deepcopy(proto)
    assert quantize_weights(q) == []
    assert q == proto


def test_a_table_of_one_value_per_key_gets_one_scale_at_lookup():
    """As the n-gram head's weights: a 1-D table read by Gather is int8 with one scale,
    turned into floats after the lookup; a 1-D weight read otherwise stays float."""
    import copy

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from rnncli.export.quantize import quantize_weights

    rng = np.random.default_rng(2)
    table = rng.normal(size=5000).astype(np.float32)
    offsets = rng.normal(size=5000).astype(np.float32)  # added, not looked up: stays float
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["values"], name="lookup"),
         helper.make_node("Gather", ["offsets_all", "ids"], ["shifted"], name="shift"),
         helper.make_node("Add", ["shifted", "offsets_first"], ["summed"]),
         helper.make_node("Add", ["values", "summed"], ["both"]),
         helper.make_node("ReduceSum", ["both", "axes"], ["probability"], keepdims=1)],
        "g", [helper.make_tensor_value_info("ids", TensorProto.INT32, ["batch", 5])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])],
        initializer=[numpy_helper.from_array(table, "table"),
                     numpy_helper.from_array(offsets, "offsets_all"),
                     numpy_helper.from_array(offsets[:5], "offsets_first"),
                     numpy_helper.from_array(np.array([1], np.int64), "axes")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 10
    q = copy.deepcopy(proto)
    done = quantize_weights(q)
    assert [(d["name"], d["dequantized"]) for d in done] == [("table", "at lookup"),
                                                             ("offsets_all", "at lookup")]
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    assert inits["table/scale"].shape == () and inits["table/int8"].dtype == np.int8
    assert inits["offsets_first"].dtype == np.float32  # 5 values: not worth quantizing
    same = copy.deepcopy(proto)
    for init in same.graph.initializer:
        if init.name in ("table", "offsets_all"):
            init.CopyFrom(numpy_helper.from_array(_dequantized(q, init.name), init.name))
    x = rng.integers(0, 5000, size=(3, 5)).astype(np.int32)
    np.testing.assert_array_equal(run(q, x), run(same, x))
    assert np.max(np.abs(run(q, x) - run(proto, x))) < 0.05
    onnx.checker.check_model(q)
