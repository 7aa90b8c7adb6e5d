"""Build the Keras model from a RunConfig: Embedding -> SimpleRNN/LSTM/GRU (stacked,
optionally bidirectional) -> [pooling over time] -> [dropout] -> Dense(1, sigmoid), or
Dense(K, softmax) for K > 2 labels. With the n-gram head the dense layer is linear, the
head's logit (or logits, one per label) is added ("logit") and the activation follows
("output").

    model = build_model(RunConfig())   # the reference recipe

A masked pooling (masked-max, masked-mean) masks the pad id 0 from the embedding on: the
recurrent layers skip pad steps (their state passes through unchanged) and the pooling runs
over real tokens only, so a review gives the same output whatever its padding, which is
what lets training and serving cut every batch to its longest review.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnncli.model.cells import get_cell
from rnncli.model.layers import ngram_layer, pooling_layer
from rnncli.model.ngram import BUCKETS, HEAD_ORDER, LAYER
from rnncli.model.poolings import get_pooling

if TYPE_CHECKING:  # the settings a model is built from; config/ imports the registries here
    from rnncli.config.settings import RunConfig

# Layer names are a contract with the ONNX graphs (model_weights.py reads weights by name):
# embedding, embedding_dropout, rnn_<i> or bi_rnn_<i>, pool, head_dropout, dense.


def build_model(cfg: RunConfig, ngram_head: bool = False, classes: int = 2,
                head_table: tuple[int, int] = (BUCKETS, HEAD_ORDER)):
    """The model of `cfg`; with `ngram_head`, the dense layer gives a logit to which the
    n-gram head's is added before the sigmoid (train/head.py fits and joins it), its table
    `head_table` (n-gram slots, longest n-gram). `classes` > 2: Dense(classes, softmax), one
    probability per label; with `ngram_head`, the head's logit per label is added before the
    softmax."""
    import keras

    d, m = cfg.data, cfg.model
    pool = get_pooling(m.pooling)
    # Masked models take any width up to maxlen: batches are cut to their longest review.
    inputs = keras.Input(shape=(None if pool.masked else d.maxlen,), dtype="int32", name="ids")
    # "normal" starts every word far apart, so a word seen in a few reviews (a title, a
    # name) moves little from noise: less to memorise about the movies of the train split.
    init = "uniform" if m.embedding_init == "uniform" else keras.initializers.RandomNormal(
        stddev=1.0)
    x = keras.layers.Embedding(d.num_words, m.embedding_dim, mask_zero=pool.masked,
                               embeddings_initializer=init, name="embedding")(inputs)
    if m.embedding_dropout:
        x = keras.layers.Dropout(m.embedding_dropout, name="embedding_dropout")(x)
    cell = getattr(keras.layers, get_cell(m.cell).keras_layer)
    for i in range(m.layers):
        last = i == m.layers - 1
        layer = cell(
            m.units,
            return_sequences=not last or pool.reduction is not None,
            dropout=m.dropout,
            recurrent_dropout=m.recurrent_dropout,
            unroll=unroll_for(cfg),
            name=f"rnn_{i}",
        )
        if m.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi_rnn_{i}")
        x = layer(x)
    if pool.keras_layer:
        x = pooling_layer(pool)(name="pool")(x)
    if m.head_dropout:
        x = keras.layers.Dropout(m.head_dropout, name="head_dropout")(x)
    if classes > 2 and not ngram_head:
        outputs = keras.layers.Dense(classes, activation="softmax", name="dense")(x)
        return keras.Model(inputs, outputs, name=f"rnncli_{m.cell}")
    if not ngram_head:
        outputs = keras.layers.Dense(1, activation="sigmoid", name="dense")(x)
        return keras.Model(inputs, outputs, name=f"rnncli_{m.cell}")
    if classes > 2:
        logit = keras.layers.Dense(classes, name="dense")(x)
        head = ngram_layer()(d.num_words, *head_table, classes=classes, name=LAYER)(inputs)
        activation = "softmax"
    else:
        logit = keras.layers.Dense(1, name="dense")(x)
        head = ngram_layer()(d.num_words, *head_table, name=LAYER)(inputs)
        activation = "sigmoid"
    logit = keras.layers.Add(name="logit")([logit, head])
    outputs = keras.layers.Activation(activation, name="output")(logit)
    return keras.Model(inputs, outputs, name=f"rnncli_{m.cell}")


def unroll_for(cfg: RunConfig) -> bool:
    # Measured on 2 CPU cores with XLA: an unrolled SimpleRNN(32) over 80 steps ran epochs
    # in 2.5 s against 3.3-5.3 s as a loop, but an unrolled LSTM took 97 s to compile and
    # 20 s per epoch against 7 s as a loop; long sequences only bloat the graph.
    if cfg.model.unroll is not None:
        return cfg.model.unroll
    # Masked models run batches of many widths, which an unrolled loop cannot share.
    return (cfg.model.cell == "simple" and cfg.data.maxlen <= 100
            and not get_pooling(cfg.model.pooling).masked)
