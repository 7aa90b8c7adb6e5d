"""What training minimises and reports: the optimizer with its clipping, the loss, and the
accuracy metric (thresholded when the targets are a teacher's soft probabilities).

    compile_model(model, cfg)
"""

from __future__ import annotations

from rnncli.config.settings import RunConfig, distils


def compile_model(model, cfg: RunConfig, jit_compile: bool | None = None,
                  steps_per_execution: int | None = None, classes: int = 2) -> None:
    """`classes` > 2: a softmax over the labels, trained on their indexes (no teacher
    distils such a model: train/datasets.py refuses it)."""
    import keras

    t = cfg.train
    clip = {"clipnorm": t.clipnorm} if t.clipnorm else {}
    if t.clipvalue:
        clip = {"clipvalue": t.clipvalue}
    if classes > 2:
        # Named "accuracy" so that the history, the monitor and the display read the same
        # columns as a binary run's.
        loss, metrics = "sparse_categorical_crossentropy", [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    else:
        # Distilled targets are soft (0.7 x teacher + 0.3 x label): Keras's accuracy
        # compares them to 0/1 exactly, so both sides are thresholded at 0.5 instead.
        loss = "binary_crossentropy"
        metrics = [thresholded_accuracy] if distils(cfg) else ["accuracy"]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=t.learning_rate, **clip),
        loss=loss,
        metrics=metrics,
        jit_compile=t.jit_compile if jit_compile is None else jit_compile,
        steps_per_execution=steps_per_execution or t.steps_per_execution,
    )


def thresholded_accuracy(y_true, y_pred):
    from keras import ops

    # Labels arrive as [batch], outputs as [batch, 1]: compare them as flat vectors.
    y_true, y_pred = ops.reshape(y_true, (-1,)), ops.reshape(y_pred, (-1,))
    return ops.cast(ops.equal(y_true > 0.5, y_pred > 0.5), "float32")


thresholded_accuracy.__name__ = "accuracy"  # the history's column name, as plain Keras
