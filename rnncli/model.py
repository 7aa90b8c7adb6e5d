"""Build the Keras model from a RunConfig: Embedding -> SimpleRNN/LSTM/GRU (stacked,
optionally bidirectional) -> [pooling over time] -> Dense(1, sigmoid).

    model = build_model(RunConfig())   # the reference recipe
"""

from __future__ import annotations

from rnncli.config import RunConfig, unroll_for

CELL_LAYERS = {"simple": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def build_model(cfg: RunConfig):
    import keras

    d, m = cfg.data, cfg.model
    inputs = keras.Input(shape=(d.maxlen,), dtype="int32", name="ids")
    x = keras.layers.Embedding(d.num_words, m.embedding_dim, name="embedding")(inputs)
    cell = getattr(keras.layers, CELL_LAYERS[m.cell])
    for i in range(m.layers):
        last = i == m.layers - 1
        layer = cell(
            m.units,
            return_sequences=not last or m.pooling != "last",
            dropout=m.dropout,
            recurrent_dropout=m.recurrent_dropout,
            unroll=unroll_for(cfg),
            name=f"rnn_{i}",
        )
        if m.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi_rnn_{i}")
        x = layer(x)
    if m.pooling == "max":
        x = keras.layers.GlobalMaxPooling1D(name="pool")(x)
    elif m.pooling == "mean":
        x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="dense")(x)
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
        metrics=["accuracy"],
        jit_compile=t.jit_compile if jit_compile is None else jit_compile,
        steps_per_execution=steps_per_execution or t.steps_per_execution,
    )
