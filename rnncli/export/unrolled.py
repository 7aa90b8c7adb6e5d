"""The unrolled graph: one small step per token, written out maxlen times per direction.

    unrolled(GraphBuilder(17), model, cfg, "probability")

The first layer looks its input projection up in a folded table (embedding x input kernel
+ bias, one per direction) when that table is no larger than the embedding, else projects
all steps with one MatMul; later layers project with one Gemm per step. Each step is the
cell's own step function (rnncli/cells.py) on the ONNX backend. onnxruntime runs these
small ops fast on large batches, where its native RNN kernels are slow. Rows shorter than
maxlen are padded back to maxlen first, so every row runs maxlen steps; for masked models a
pad step keeps the state (`where(mask, new, old)`) and never enters the pooling, the
pooling's own reduction (model/poolings.py) over the list of step outputs.
"""

from __future__ import annotations

import numpy as np

from rnncli.config.settings import RunConfig
from rnncli.export.ops import FLOAT, GraphBuilder, OnnxOps, dense_head
from rnncli.export.weights import embedding_table, layer_weights
from rnncli.model.cells import get_cell
from rnncli.model.poolings import get_pooling
from rnncli.serve.contract import INPUT


def unrolled(g: GraphBuilder, model, cfg: RunConfig, out: str) -> None:
    m, T = cfg.model, cfg.data.maxlen
    cell, pool = get_cell(m.cell), get_pooling(m.pooling)
    ops = OnnxOps(g)
    embedding = embedding_table(model, cfg)
    ids = g.pad_to(INPUT, T, cfg.data.padding)
    batch, _ = g.batch_and_width()
    ids_t = g.one("Transpose", [ids], "ids_time_major", perm=[1, 0])
    step_ids = [g.one("Gather", [ids_t, g.int64(f"t{t}", t)], f"ids_{t}") for t in range(T)]
    masks, any_real = [], ""
    if pool.masked:
        real = g.one("Not", [g.one("Equal", [ids_t, g.const("pad_id", np.array(0, np.int32))])])
        real_3d = g.unsqueeze(real, 2)  # [T, N, 1]
        masks = [g.one("Gather", [real_3d, f"t{t}"], f"real_{t}") for t in range(T)]
        count = g.reduce("ReduceSum", g.one("Cast", [real], to=FLOAT), 0)  # [N]
        any_real = g.unsqueeze(g.one("Greater", [count, g.const("zero_f", np.float32(0))]), 1)
    zeros = g.zeros(batch, m.units)
    # A folded table (embedding x input kernel + bias per direction) saves the input
    # projection, but is larger than the embedding when there are more gate units than
    # embedding features: then the embedding is looked up and projected.
    directions = 2 if m.bidirectional else 1
    fold = directions * cell.gates * m.units <= m.embedding_dim
    if not fold:
        looked_up = g.one("Gather", [g.const("embedding", embedding), ids_t], "lookup")
    inputs: list[str] = []  # the previous layer's output at each step
    for i, dirs in enumerate(layer_weights(model, cfg)):
        outputs, finals = [], []
        for d, w in enumerate(dirs):
            name = f"{i}_{d}"
            if i == 0 and fold:
                table = g.const(f"folded_table_{name}", embedding @ w.kernel + w.input_bias)
                xw = [g.one("Gather", [table, s], f"x_{name}_{t}")
                      for t, s in enumerate(step_ids)]
            elif i == 0:  # one MatMul projects every step at once
                projected = g.one("Add", [g.one("MatMul", [looked_up, g.const(f"kernel_{name}",
                                                                               w.kernel)]),
                                          g.const(f"input_bias_{name}", w.input_bias)])
                xw = [g.one("Gather", [projected, f"t{t}"], f"x_{name}_{t}") for t in range(T)]
            else:
                kernel = g.const(f"kernel_{name}", w.kernel)
                bias = g.const(f"input_bias_{name}", w.input_bias)
                xw = [g.one("Gemm", [x, kernel, bias], f"x_{name}_{t}")
                      for t, x in enumerate(inputs)]
            recurrent = g.const(f"recurrent_{name}", w.recurrent)
            # Cells with one bias keep it in the table; their step ignores this one.
            recurrent_bias = (g.const(f"recurrent_bias_{name}", w.recurrent_bias)
                              if cell.two_biases else "")
            state = (zeros,) * cell.states
            outs = [""] * T
            for t in (range(T) if d == 0 else reversed(range(T))):
                new = cell.step(ops, xw[t], state, recurrent, recurrent_bias)
                if masks:
                    new = tuple(g.one("Where", [masks[t], n, s]) for n, s in zip(new, state))
                state = new
                outs[t] = state[0]
            outputs.append(outs)
            finals.append(state[0])
        inputs = [g.one("Concat", list(step), axis=1) if len(step) > 1 else step[0]
                  for step in zip(*outputs)]
    if pool.reduction is None:
        pooled = finals
    else:
        pooled = [pool.over_time(ops, outs, masks, T, any_real=any_real) for outs in outputs]
    features = g.one("Concat", pooled, axis=1) if len(pooled) > 1 else pooled[0]
    dense_head(g, model, features, out)
