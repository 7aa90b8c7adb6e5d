"""The n-gram head as ONNX nodes: the Keras layer's computation (model/layers.py) in every
hand-built graph kind.

    logit = onnx_head_logit(g, model, INPUT)   # [batch, 1], added to the network's logit
                                               # ([batch, K] for K > 2 labels)
"""

from __future__ import annotations

import numpy as np

from rnncli.model.ngram import LAYER
from rnncli.text.tokenizer import OOV

MIN_OPSET = 16  # ScatterElements and ScatterND with reduction="add"
# The head's one table, a row per key: its idf, then its weight (a weight per label for
# K > 2 labels); int8 with a scale per column (quantize.py). One row holds all a key needs,
# so a review's keys cost one cache miss each in a table of millions, not one per table:
# the two Gathers of separate tables took 61 ms of the bundled model's 2,048 test reviews.
TABLE = "ngram_table"
THIRD = "ngram_third"  # the node of each triple's third word: only a head with triples has it


def sorted_counts(g, values: str, rows: bool = False) -> tuple[str, str]:
    """(the distinct values of the int64 tensor `values`, ascending; how often each occurs):
    Unique(sorted=1)'s values and counts, computed by a sort (TopK of every element) and
    the places where the sorted values change. onnxruntime's Unique was three quarters of
    the head's time (0.27 of 0.36 CPU s on 3,000 test reviews); this takes the head from
    0.32 to 0.14 s with the same outputs. `rows`: `values` is a [reviews, keys] matrix
    whose values ascend from row to row (each review's keys offset by its row, zeros
    aside), sorted row by row: a review's few hundred keys sort in cache, the flat order
    is the same but for each row's zeros (a run of zeros per row, each counted apart; the
    head gives key 0 no weight), and TopK went from 98 to 78 ms of the bundled model's
    2,048 test reviews (one thread)."""
    from onnx import TensorProto

    axis0 = g.int64("ngram_axis0", [0])
    flat_shape = g.int64("ngram_flat", [-1])
    start, end = g.int64("ngram_0", [0]), g.int64("ngram_last", [-1])
    first, big = g.int64("ngram_1", [1]), g.int64("ngram_end", [np.iinfo(np.int64).max])
    if rows:
        width = g.one("Slice", [g.one("Shape", [values]), first, g.int64("ngram_2", [2]),
                                axis0])
        ordered = g.node("TopK", [values, width], "ngram_sorted", n_out=2, axis=1, largest=0,
                         sorted=1)[0]  # its indices are not optional in onnx, only unused
        ordered = g.one("Reshape", [ordered, flat_shape])
        n = g.one("Shape", [ordered], "ngram_n")
    else:
        n = g.one("Shape", [values], "ngram_n")
        ordered = g.node("TopK", [values, n], "ngram_sorted", n_out=2, axis=0, largest=0,
                         sorted=1)[0]
    step = g.one("Sub", [g.one("Slice", [ordered, first, big, axis0]),
                         g.one("Slice", [ordered, start, end, axis0])])
    changed = g.one("Concat", [g.const("ngram_true", np.array([True])),
                               g.one("Cast", [step], to=TensorProto.BOOL)], axis=0)
    starts = g.one("Reshape", [g.one("NonZero", [changed]), flat_shape])
    found = g.one("Gather", [ordered, starts], axis=0)
    ends = g.one("Concat", [starts, n], axis=0)
    counts = g.one("Sub", [g.one("Slice", [ends, first, big, axis0]), starts])
    return found, counts


def onnx_head_logit(g, model, ids: str) -> str:
    """The head's logit [batch, 1] ([batch, K] from a [keys, K] table, K > 2 labels) as
    nodes of GraphBuilder `g` reading int32 `ids`: the Keras layer's computation (Unique
    counts each review's keys, one Gather reads each key's row of TABLE, ScatterElements /
    ScatterND sum per review)."""
    from onnx import TensorProto, helper

    layer = model.get_layer(LAYER)
    weights, idf = (np.array(w, np.float32) for w in layer.get_weights())
    # Every entry that is not a key goes to flat index 0, key 0 of row 0, which the Keras
    # layer masks out; an idf of 0 there does the same without a mask per call.
    idf[0] = 0.0
    per_label = weights.ndim == 2  # K > 2 labels: [keys, K] weights
    table = np.concatenate([idf[:, None], weights.reshape(len(weights), -1)], axis=1)
    nw, size = layer.num_words, layer.num_words + layer.buckets
    INT64, FLOAT = TensorProto.INT64, TensorProto.FLOAT
    one = g.one
    x = one("Cast", [ids], "ngram_ids", to=INT64)
    real = one("GreaterOrEqual", [x, g.const("ngram_oov", np.array(OOV, np.int64))])
    axis1 = g.int64("ngram_axis1", [1])
    start, end = g.int64("ngram_0", [0]), g.int64("ngram_last", [-1])
    first, big = g.int64("ngram_1", [1]), g.int64("ngram_end", [np.iinfo(np.int64).max])
    left = one("Slice", [x, start, end, axis1])
    right = one("Slice", [x, first, big, axis1])
    num_words = g.const("ngram_num_words", np.array(nw, np.int64))
    buckets = g.const("ngram_buckets", np.array(layer.buckets, np.int64))
    pair = one("Add", [one("Mul", [left, num_words]), right])  # a * num_words + b
    kept_pair = one("GreaterOrEqual", [one("Min", [left, right]), "ngram_oov"])
    keys = [x, one("Add", [one("Mod", [pair, buckets]), num_words])]
    kept = [real, kept_pair]
    if layer.order > 2:  # (a * num_words + b) * num_words + c, per pair
        third = one("Slice", [x, g.int64("ngram_2", [2]), big, axis1], THIRD)
        triple = one("Add", [one("Mul", [one("Slice", [pair, start, end, axis1]), num_words]),
                             third])
        keys.append(one("Add", [one("Mod", [triple, buckets]), num_words]))
        kept.append(one("And", [one("Slice", [kept_pair, start, end, axis1]),
                                one("GreaterOrEqual", [third, "ngram_oov"])]))
    keys = one("Concat", keys, axis=1)
    kept = one("Concat", kept, axis=1)
    shape = one("Shape", [x])
    batch = one("Gather", [shape, g.const("ngram_zero", np.array(0, np.int64))])
    rows = one("Range", [g.const("ngram_r0", np.array(0, np.int64)), batch,
                         g.const("ngram_r1", np.array(1, np.int64))])
    rows = one("Mul", [one("Unsqueeze", [rows, axis1]),
                       g.const("ngram_size", np.array(size, np.int64))])
    flat = one("Where", [kept, one("Add", [rows, keys]), g.const("ngram_none",
                                                                 np.array(0, np.int64))])
    found, counts = sorted_counts(g, flat, rows=True)
    key = one("Mod", [found, "ngram_size"])
    row = one("Div", [found, "ngram_size"])
    tf_ = one("Add", [g.const("ngram_one", np.array(1, np.float32)),
                      one("Log", [one("Cast", [counts], to=FLOAT)])])
    looked_up = one("Gather", [g.const(TABLE, table), key])  # [keys, 1 + labels' weights]
    v = one("Mul", [tf_, one("Gather", [looked_up, g.const("ngram_c0", np.array(0, np.int64))],
                             axis=1)])
    batch_1d = one("Reshape", [batch, g.int64("ngram_1d", [1])])
    zero = helper.make_tensor("zero", FLOAT, [1], [0.0])
    zeros = one("ConstantOfShape", [batch_1d], value=zero)
    if per_label:  # a row of K weights per key, summed into its review's row
        weights = one("Slice", [looked_up, first, big, axis1])
        shape = one("Concat", [batch_1d, g.int64("ngram_classes", [table.shape[1] - 1])],
                    axis=0)
        dot = one("ScatterND", [one("ConstantOfShape", [shape], value=zero),
                                one("Unsqueeze", [row, axis1]),
                                one("Mul", [one("Unsqueeze", [v, axis1]), weights])],
                  reduction="add")
    else:
        weights = one("Gather", [looked_up, g.const("ngram_c1", np.array(1, np.int64))],
                      axis=1)
        dot = one("ScatterElements", [zeros, row, one("Mul", [v, weights])], reduction="add")
    norm = one("ScatterElements", [zeros, row, one("Mul", [v, v])], reduction="add")
    norm = one("Sqrt", [one("Max", [norm, g.const("ngram_tiny", np.array(1e-30, np.float32))])])
    if per_label:
        return one("Div", [dot, one("Unsqueeze", [norm, axis1])], "ngram_logit")
    return one("Unsqueeze", [one("Div", [dot, norm]), axis1], "ngram_logit")
