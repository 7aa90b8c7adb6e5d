"""Build the Keras model from a RunConfig: Embedding -> SimpleRNN/LSTM/GRU (stacked,
optionally bidirectional) -> [pooling over time] -> [dropout] -> Dense(1, sigmoid).

    model = build_model(RunConfig())   # the reference recipe

Pooling "masked-max" masks the pad id 0 from the embedding on: the recurrent layers skip
pad steps (their state passes through unchanged) and the max runs over real tokens only,
so a review gives the same output whatever its padding, which is what lets training and
serving cut every batch to its longest review.
"""

from __future__ import annotations

from rnncli.config.settings import RunConfig, distils, unroll_for
from rnncli.model.cells import get_cell
from rnncli.model.layers import ngram_layer, pooling_layer
from rnncli.model.ngram import LAYER
from rnncli.model.poolings import get_pooling

# Layer names are a contract with the ONNX graphs (model_weights.py reads weights by name):
# embedding, embedding_dropout, rnn_<i> or bi_rnn_<i>, pool, head_dropout, dense.


def build_model(cfg: RunConfig, ngram_head: bool = False):
    """The model of `cfg`; with `ngram_head`, the dense layer gives a logit to which the
    n-gram head's is added before the sigmoid (ngram_head.py fits and joins it)."""
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
            return_sequences=not last or pool.reduce != "last",
            dropout=m.dropout,
            recurrent_dropout=m.recurrent_dropout,
            unroll=unroll_for(cfg),
            name=f"rnn_{i}",
        )
        if m.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi_rnn_{i}")
        x = layer(x)
    if pool.keras_layer:
        x = pooling_layer(pool.keras_layer)(name="pool")(x)
    if m.head_dropout:
        x = keras.layers.Dropout(m.head_dropout, name="head_dropout")(x)
    if not ngram_head:
        outputs = keras.layers.Dense(1, activation="sigmoid", name="dense")(x)
        return keras.Model(inputs, outputs, name=f"rnncli_{m.cell}")
    logit = keras.layers.Dense(1, name="dense")(x)
    head = ngram_layer()(d.num_words, name=LAYER)(inputs)
    logit = keras.layers.Add(name="logit")([logit, head])
    outputs = keras.layers.Activation("sigmoid", name="output")(logit)
    return keras.Model(inputs, outputs, name=f"rnncli_{m.cell}")


def compile_model(model, cfg: RunConfig, jit_compile: bool | None = None,
                  steps_per_execution: int | None = None) -> None:
    import keras

    t = cfg.train
    clip = {"clipnorm": t.clipnorm} if t.clipnorm else {}
    if t.clipvalue:
        clip = {"clipvalue": t.clipvalue}
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=t.learning_rate, **clip),
        loss="binary_crossentropy",
        # Distilled targets are soft (0.7 x teacher + 0.3 x label): Keras's accuracy compares
        # them to 0/1 exactly, so both sides are thresholded at 0.5 instead.
        metrics=[thresholded_accuracy] if distils(cfg) else ["accuracy"],
        jit_compile=t.jit_compile if jit_compile is None else jit_compile,
        steps_per_execution=steps_per_execution or t.steps_per_execution,
    )


def thresholded_accuracy(y_true, y_pred):
    from keras import ops

    # Labels arrive as [batch], outputs as [batch, 1]: compare them as flat vectors.
    y_true, y_pred = ops.reshape(y_true, (-1,)), ops.reshape(y_pred, (-1,))
    return ops.cast(ops.equal(y_true > 0.5, y_pred > 0.5), "float32")


thresholded_accuracy.__name__ = "accuracy"  # the history's column name, as plain Keras
