"""Reading a Keras model's weights by the layer-name contract of rnncli/model.py.

    weights = layer_weights(model, cfg)   # per layer, per direction: CellWeights

Layer names: embedding, rnn_<i> or bi_rnn_<i>, pool, head_dropout, dense. Everything the
ONNX graphs rely on is checked here, so a model that does not match its config.json is
refused with the reason (GraphUnsupported) instead of exported wrong.
"""

from __future__ import annotations

import numpy as np

from rnncli.config.settings import RunConfig
from rnncli.errors import GraphUnsupported
from rnncli.model.cells import CellWeights, get_cell
from rnncli.model.ngram import has_head
from rnncli.model.poolings import get_pooling


def rnn_layers(model, cfg: RunConfig) -> list[list]:
    """Per recurrent layer, its Keras direction layers: [forward] or [forward, backward]."""
    result = []
    for i in range(cfg.model.layers):
        name = f"bi_rnn_{i}" if cfg.model.bidirectional else f"rnn_{i}"
        layer = _layer(model, name)
        if not cfg.model.bidirectional:
            result.append([layer])
            continue
        if type(layer).__name__ != "Bidirectional" or layer.merge_mode != "concat":
            raise GraphUnsupported(f"layer {name} is not a Bidirectional layer that "
                                   "concatenates its directions")
        result.append([layer.forward_layer, layer.backward_layer])
    return result


def _layer(model, name: str):
    try:
        return model.get_layer(name)
    except ValueError:
        raise GraphUnsupported(f"the model has no layer {name!r}: it does not match its "
                               "config.json") from None


def layer_weights(model, cfg: RunConfig) -> list[list[CellWeights]]:
    cell = get_cell(cfg.model.cell)
    return [[cell.weights(d) for d in dirs] for dirs in rnn_layers(model, cfg)]


def embedding_table(model, cfg: RunConfig) -> np.ndarray:
    layer = _layer(model, "embedding")
    table = np.asarray(layer.embeddings.numpy(), np.float32)
    expected = (cfg.data.num_words, cfg.model.embedding_dim)
    if table.shape != expected:
        raise GraphUnsupported(f"embedding has shape {table.shape}, config.json says {expected}")
    pool = get_pooling(cfg.model.pooling)
    if bool(getattr(layer, "mask_zero", False)) != pool.masked:
        raise GraphUnsupported(f"embedding mask_zero={layer.mask_zero} does not fit pooling "
                               f"{pool.name!r}")
    return table


def check_model(model, cfg: RunConfig) -> None:
    """Refuse, with the reason, a model the graphs would compute differently from Keras."""
    pool = get_pooling(cfg.model.pooling)
    embedding_table(model, cfg)
    layer_weights(model, cfg)
    if pool.masked and any(d.go_backwards and d.unroll for dirs in rnn_layers(model, cfg)
                           for d in dirs):
        # Measured on Keras 3.15: its outputs then depend on the padding, which no graph
        # here reproduces (nor should).
        raise GraphUnsupported("the backward layer is unrolled (unroll=True), and Keras's "
                               "unrolled loop misapplies the mask read backwards: retrain "
                               "without unroll")
    if pool.keras_layer:
        got = type(_layer(model, "pool")).__name__
        if got != pool.keras_layer.rpartition(">")[2]:
            raise GraphUnsupported(f"layer pool is a {got}, pooling {pool.name!r} needs "
                                   f"{pool.keras_layer}")
    output_width(model)


def output_width(model) -> int:
    """Probabilities per review: 1 (binary: Dense(1, sigmoid), or Dense(1) whose logit the
    n-gram head's is added to, train/head.py) or K (Dense(K, softmax), K > 2 labels, or
    Dense(K) plus the head's K logits, then a softmax)."""
    dense = _layer(model, "dense")
    activation = getattr(dense.activation, "__name__", "")
    head = has_head(model)
    if dense.units > 2 and activation == ("linear" if head else "softmax"):
        if head:
            _check_head_classes(model, dense.units)
        return dense.units
    wanted = "linear" if head else "sigmoid"
    if activation != wanted or dense.units != 1:
        with_head = " + the n-gram head" if head else ""
        raise GraphUnsupported(f"layer dense is {dense.units} {activation} unit(s), not "
                               f"Dense(1, {wanted}) (2 labels) nor Dense(K, "
                               f"{'linear' if head else 'softmax'}){with_head} for K > 2 "
                               "labels")
    return 1


def _check_head_classes(model, classes: int) -> None:
    """The head of a K-label model: a [keys, K] table and a softmax after the sum."""
    from rnncli.model.ngram import LAYER

    table = _layer(model, LAYER).table
    if tuple(table.shape[1:]) != (classes,):
        raise GraphUnsupported(f"the n-gram head's table has shape {tuple(table.shape)}, not "
                               f"[keys, {classes}] for the {classes} units of layer dense")
    activation = getattr(getattr(_layer(model, "output"), "activation", None), "__name__", "")
    if activation != "softmax":
        raise GraphUnsupported(f"layer output is {activation or 'not an activation'}, not "
                               f"the softmax over {classes} labels")
