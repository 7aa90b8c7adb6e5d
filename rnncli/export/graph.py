"""Hand-built ONNX graphs for rnncli's Keras models, weights read from the layers by name.

    proto = build_graph(model, cfg, "hybrid", opset=17)

tf2onnx turns Keras recurrent layers into a generic `Loop` or one MatMul per time step.
The kinds built here (GRAPH_KINDS), for every cell, direction, depth and pooling mode:
- "native": ONNX's own RNN/LSTM/GRU node, one kernel per layer for the whole sequence;
  the fastest for a single review.
- "native-folded": the same, with the embedding table multiplied by the first layer's
  input kernel (plus bias) once, at export, so a lookup replaces the input projection.
- "unrolled": one small step per token (onnx_unrolled.py); onnxruntime's native RNN
  kernels are slow on large batches, this is not.
- "hybrid": an `If`: the native graph for up to HYBRID_SMALL_BATCH rows (and for rows
  shorter than maxlen when the native graph skips pads), the unrolled graph otherwise.

Every kind takes rows of any width up to maxlen, padded on the model's side: a batch padded
only to its own longest review gives the same outputs as padded to maxlen. Whether that
saves steps (skips_pad_steps) depends on the model:
- masked models (masked poolings): the native graph moves each row's real tokens to
  the front and passes `sequence_lens`, so pad steps never change the state nor enter the
  pooling; the unrolled graph keeps the state on pad steps (`where(mask, new, old)`).
- unmasked 'pre'-padded unidirectional models: the state left by k leading pads does not
  depend on the review, so the native graph starts from that precomputed state
  (pad_states), and the pooling's totals over the skipped pads are precomputed too.
- bidirectional or 'post'-padded unmasked models: no graph can skip pads (full_length_reason),
  so rows are padded back to maxlen inside the graph.
The unrolled graph always runs maxlen steps. Every kind pools with the pooling's own
reduction (model/poolings.py) on OnnxOps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnncli.config.settings import RunConfig
from rnncli.errors import GraphUnsupported
from rnncli.export.ngram import MIN_OPSET as HEAD_OPSET
from rnncli.export.ops import FLOAT, INT32, INT64, MIN_OPSET, GraphBuilder, OnnxOps, dense_head
from rnncli.export.weights import check_model, embedding_table, layer_weights, output_width
from rnncli.model.cells import NumpyOps, get_cell, run_steps
from rnncli.model.ngram import has_head
from rnncli.model.poolings import get_pooling
from rnncli.serve import contract
from rnncli.serve.contract import INPUT, OUTPUT

GRAPH_KINDS = ("hybrid", "unrolled", "native", "native-folded")
# Batches up to this size take the native branch of the hybrid graph.
HYBRID_SMALL_BATCH = 8


def input_mode(cfg: RunConfig) -> str:
    """How the native graph treats rows shorter than maxlen: "masked" (runs real tokens
    only), "pad-states" (starts from the state the skipped pads leave) or "full" (pads the
    rows back to maxlen)."""
    if get_pooling(cfg.model.pooling).masked:
        return "masked"
    if cfg.data.padding == "pre" and not cfg.model.bidirectional:
        return "pad-states"
    return "full"


def full_length_reason(cfg: RunConfig) -> str:
    """Why an unmasked model's graphs run every pad step."""
    if cfg.model.bidirectional:
        return ("its backward direction reads the leading pads last, from a state that "
                "depends on the review")
    return "with 'post' padding the pads follow the review, so their state depends on it"


def skips_pad_steps(kind: str, cfg: RunConfig) -> bool:
    """Whether a graph of this kind runs fewer steps for rows shorter than maxlen."""
    return kind in ("hybrid", "native", "native-folded") and input_mode(cfg) != "full"


def serving_metadata(kind: str, cfg: RunConfig) -> dict[str, str]:
    """What serving reads from the file besides the preprocessing."""
    props = {contract.GRAPH: kind,
             contract.SKIPS_PAD_STEPS: "true" if skips_pad_steps(kind, cfg) else "false"}
    if kind == "hybrid" and skips_pad_steps(kind, cfg):
        # Shorter rows take the native branch, fast for a few rows but not for many.
        props[contract.FULL_LENGTH_BATCH] = str(HYBRID_SMALL_BATCH)
    return props


@dataclass
class PadStates:
    states: list[tuple[np.ndarray, ...]]  # per layer and state: [maxlen + 1, units], row k
    # is the state after k pads; then, per value of the pooling's reduction (none for the
    # last state), its total over the last layer's outputs at k pads, [maxlen + 1, units]
    totals: list[np.ndarray]


def pad_states(model, cfg: RunConfig) -> PadStates:
    """The states that k = 0..maxlen leading pad tokens leave, for a unidirectional model.

    With 'pre' padding every review starts with pad tokens, and the state they leave does
    not depend on the review. So a review of n tokens gives the same output as its padded
    form when it starts from the state after maxlen - n pads: the graph then runs n steps
    instead of maxlen, which is most of a short review's latency.
    """
    cell = get_cell(cfg.model.cell)
    xs = np.repeat(embedding_table(model, cfg)[:1].astype(np.float64), cfg.data.maxlen, axis=0)
    states = []
    for (w,) in layer_weights(model, cfg):
        run = run_steps(cell, w, xs)
        states.append(tuple(np.array([s[k] for s in run], np.float32)
                            for k in range(cell.states)))
        xs = np.array([s[0] for s in run[1:]])
    pool, o = get_pooling(cfg.model.pooling), NumpyOps()
    totals = []
    if pool.reduction is not None and not pool.masked:  # masked models skip pads instead
        totals = [o.running_total(v, by).astype(np.float32)
                  for v, by in zip(pool.reduction.keep(o, xs, None), pool.reduction.by)]
    return PadStates(states, totals)


def _real_tokens_first(g: GraphBuilder) -> tuple[str, str, str, str]:
    """(ids with each row's real tokens moved to the front in order, their counts as int32
    sequence_lens (at least 1), a [steps, batch, 1] mask of real steps in that order,
    a [batch, 1] mask of rows with any real token)."""
    _, width = g.batch_and_width()
    real = g.one("Not", [g.one("Equal", [INPUT, g.const("pad_id", np.array(0, np.int32))])])
    counts = g.reduce("ReduceSum", g.one("Cast", [real], to=INT64), 1)  # int64 [N]
    wf = g.one("Cast", [width], to=FLOAT)
    steps = g.one("Range", [g.int64("zero", 0), g.one("Squeeze", [width]), g.int64("one", 1)])
    # Keys: real tokens above pads, earlier steps above later ones; all distinct.
    later = g.one("Sub", [g.one("Sub", [wf, g.const("one_f", np.float32(1))]),
                          g.one("Cast", [steps], to=FLOAT)])
    key = g.one("Add", [g.one("Mul", [g.one("Cast", [real], to=FLOAT), wf]), later])
    order = g.node("TopK", [key, width], "real_first", n_out=2, axis=1)[1]
    ids = g.one("GatherElements", [INPUT, order], "ids_real_first", axis=1)
    lens = g.one("Cast", [g.one("Max", [counts, g.int64("one", 1)])], "sequence_lens", to=INT32)
    is_real = g.one("Not", [g.one("Equal", [ids, "pad_id"])])
    mask = g.unsqueeze(g.one("Transpose", [is_real], perm=[1, 0]), 2)
    any_real = g.unsqueeze(g.one("Greater", [counts, g.int64("zero", 0)]), 1)
    return ids, lens, mask, any_real


def _start_from_pad_states(g: GraphBuilder, model, cfg: RunConfig):
    """(per layer, its initial states; per value of the pooling's reduction, its total over
    the skipped pads) for rows that start after maxlen - width leading pads."""
    batch, width = g.batch_and_width()
    pads = g.one("Sub", [g.int64("maxlen_1d", [cfg.data.maxlen]), width], "pads_skipped")
    units = cfg.model.units
    shape = g.one("Concat", [g.int64("one_1d", [1]), batch, g.int64(f"units_{units}", [units])],
                  axis=0)
    tables = pad_states(model, cfg)
    initial = [[g.one("Expand", [g.one("Gather", [g.const(f"pad_state{i}_{k}", s), pads]),
                                 shape]) for k, s in enumerate(layer_states)]
               for i, layer_states in enumerate(tables.states)]
    skipped = [g.one("Gather", [g.const(f"pad_total{j}", table), pads], f"pad_total{j}")
               for j, table in enumerate(tables.totals)]
    return initial, skipped


def _first_layer_input(g: GraphBuilder, cell, embedding: np.ndarray, dirs, ids: str,
                       fold: bool) -> tuple[str, np.ndarray, list[np.ndarray], str]:
    """(time-major input, ONNX W, input biases, constant-name tag) of the first layer."""
    b_in = [cell.to_onnx(w.input_bias) for w in dirs]
    W = np.stack([cell.to_onnx(w.kernel).T for w in dirs])
    table, tag = embedding, ""
    if fold:
        # One table per direction side by side; an identity input kernel then picks each
        # direction's block, and the input bias is in the table.
        table = np.concatenate([embedding @ cell.to_onnx(w.kernel) + b
                                for w, b in zip(dirs, b_in)], axis=1)
        eye = np.eye(W.shape[1], dtype=np.float32)
        W = np.stack([np.concatenate([eye if k == j else 0 * eye for k in range(len(dirs))],
                                     axis=1) for j in range(len(dirs))])
        b_in, tag = [0 * b for b in b_in], "_folded"
    # Ids are transposed before the lookup: fewer bytes to move than the vectors after it.
    ids_t = g.one("Transpose", [ids], "ids_time_major", perm=[1, 0])
    return g.one("Gather", [g.const("embedding" + tag, table), ids_t], "time_major"), W, b_in, tag


def _native(g: GraphBuilder, model, cfg: RunConfig, fold: bool, out: str) -> None:
    m, T = cfg.model, cfg.data.maxlen
    cell, pool, mode = get_cell(m.cell), get_pooling(m.pooling), input_mode(cfg)
    weights = layer_weights(model, cfg)
    ids, lens, mask, any_real, skipped = INPUT, "", None, None, None
    initial: list[list[str]] = [[] for _ in weights]
    if mode == "full":
        ids = g.pad_to(INPUT, T, cfg.data.padding)
    elif mode == "masked":
        ids, lens, mask, any_real = _real_tokens_first(g)
    else:
        initial, skipped = _start_from_pad_states(g, model, cfg)
    for i, dirs in enumerate(weights):
        if i == 0:
            x, W, b_in, tag = _first_layer_input(g, cell, embedding_table(model, cfg), dirs,
                                                 ids, fold)
        else:
            W, tag = np.stack([cell.to_onnx(w.kernel).T for w in dirs]), ""
            b_in = [cell.to_onnx(w.input_bias) for w in dirs]
        R = np.stack([cell.to_onnx(w.recurrent).T for w in dirs])
        B = np.stack([np.concatenate([b, cell.to_onnx(w.recurrent_bias)])
                      for b, w in zip(b_in, dirs)])
        inputs = [x, g.const(f"W{i}{tag}", W), g.const(f"R{i}", R), g.const(f"B{i}{tag}", B),
                  lens, *initial[i]]
        while inputs[-1] == "":  # optional inputs left out
            inputs.pop()
        # The last layer's sequence is not needed when only its final state is pooled.
        sequence = i + 1 < len(weights) or pool.reduction is not None
        y, y_h = g.node(cell.onnx_op, inputs, f"{cell.onnx_op.lower()}_{i}",
                        n_out=1 + cell.states, unused=() if sequence else (0,),
                        hidden_size=m.units,
                        direction="bidirectional" if len(dirs) == 2 else "forward",
                        **cell.onnx_attributes)[:2]
        if sequence:
            # Y: [T, dirs, N, H] -> [T, N, dirs * H], forward then backward as Keras
            # concatenates.
            x = g.one("Reshape", [g.one("Transpose", [y], perm=[0, 2, 1, 3]),
                                  g.int64("shape_3d", [0, 0, -1])], f"sequence_{i}")
    if pool.reduction is None and len(dirs) == 1:  # Y_h: [1, N, H]
        features = g.one("Reshape", [y_h, g.int64(f"rows_of_{m.units}", [-1, m.units])],
                         "last_state")
    elif pool.reduction is None:
        features = g.one("Reshape", [g.one("Transpose", [y_h], perm=[1, 0, 2]),
                                     g.int64("shape_2d", [0, -1])], "last_state")
    else:  # x: [steps, N, features]; the skipped pads' totals are merged in
        features = pool.over_time(OnnxOps(g), x, mask, T, skipped=skipped, any_real=any_real)
    dense_head(g, model, features, out)


def _finish(nodes, inits: dict, opset: int, name: str, width: int):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, name,
        # Width is symbolic: every kind accepts rows shorter than maxlen.
        [helper.make_tensor_value_info(INPUT, TensorProto.INT32, ["batch", "steps"])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", width])],
        initializer=list(inits.values()),
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="rnncli")
    proto.ir_version = min(proto.ir_version, 10)  # readable by older onnxruntime releases
    onnx.checker.check_model(proto)
    return proto


def build_graph(model, cfg: RunConfig, kind: str, opset: int = 17):
    """One of GRAPH_KINDS (see the module docstring). Raises GraphUnsupported, with the
    reason, for a model it cannot reproduce; any other exception is a bug here."""
    from rnncli.export.unrolled import unrolled

    if kind not in GRAPH_KINDS:
        raise GraphUnsupported(f"unknown graph kind {kind!r}: use {', '.join(GRAPH_KINDS)}")
    if opset < MIN_OPSET:
        raise GraphUnsupported(f"hand-built graphs need --opset {MIN_OPSET} or later")
    check_model(model, cfg)
    outputs = output_width(model)  # 1, or K probabilities for K > 2 labels
    if has_head(model) and opset < HEAD_OPSET:
        raise GraphUnsupported(f"the n-gram head needs --opset {HEAD_OPSET} or later")
    consts: dict = {}
    if kind != "hybrid":
        g = GraphBuilder(opset, consts=consts)
        if kind == "unrolled":
            unrolled(g, model, cfg, OUTPUT)
        else:
            _native(g, model, cfg, kind == "native-folded", OUTPUT)
        return _finish(g.nodes, g.inits, opset, "rnncli_" + kind, outputs)
    from onnx import TensorProto, helper

    # Both branches read their weights from the outer graph's initializers, so the If node
    # costs a branch selection per call, not a copy of the weights.
    small = GraphBuilder(opset, "small/", consts)
    large = GraphBuilder(opset, "large/", consts)
    _native(small, model, cfg, False, "small_probability")
    unrolled(large, model, cfg, "large_probability")

    def branch(b: GraphBuilder, out: str):
        return helper.make_graph(b.nodes, b.prefix.strip("/"), [], [
            helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", outputs])])

    top = GraphBuilder(opset, consts=consts)
    batch, width = top.batch_and_width()
    large_batch = top.one("Greater", [batch, top.int64("small_batch", [HYBRID_SMALL_BATCH])])
    if skips_pad_steps("native", cfg):
        # Shorter rows run fewer steps on the native branch.
        full = top.one("Equal", [width, top.int64("maxlen_1d", [cfg.data.maxlen])])
        large_batch = top.one("And", [large_batch, full])
    use_unrolled = top.one("Squeeze", [large_batch], "use_unrolled")
    top.nodes.append(helper.make_node("If", [use_unrolled], [OUTPUT], name="by_batch_size",
                                      then_branch=branch(large, "large_probability"),
                                      else_branch=branch(small, "small_probability")))
    return _finish(top.nodes, top.inits, opset, "rnncli_hybrid", outputs)
