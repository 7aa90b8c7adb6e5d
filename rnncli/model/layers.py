"""rnncli's own Keras layers, each made on first use (so importing this module imports no
Keras) and registered for loading under the package name "rnncli".

    register_all()                               # before keras.models.load_model
    pooling_layer(get_pooling("masked-mean"))    # a pooling's layer class
    ngram_layer()(num_words, name=LAYER)         # the n-gram head's logit
    ngram_layer()(num_words, classes=3, name=LAYER)   # its logit per label, K > 2 labels
"""

from __future__ import annotations

from rnncli.model.ngram import BUCKETS
from rnncli.model.poolings import PACKAGE, POOLINGS, Pooling
from rnncli.text.tokenizer import OOV


def register_all() -> None:
    """Make, and so register for loading, every rnncli layer a saved model may name: those
    the pooling registry names and the n-gram head's. Cells are keras.layers classes."""
    for pool in POOLINGS.values():
        if pool.custom_layer:
            pooling_layer(pool)
    ngram_layer()


def pooling_layer(pool: Pooling):
    """The Keras layer class of a pooling mode: a keras.layers class, or rnncli's layer
    computing the pooling's own reduction."""
    if pool.custom_layer:
        return _reduction_layer(pool)
    import keras

    return getattr(keras.layers, pool.keras_layer)


class _KerasOps:
    """The poolings' operations in keras.ops, on [batch, steps, features]: time is axis 1."""

    def __init__(self):
        from keras import ops

        self.k = ops

    def add(self, a, b):
        return self.k.add(a, b)

    def where(self, cond, a, b):
        return self.k.where(cond, a, b)

    def maximum(self, a, b):
        return self.k.maximum(a, b)

    def div(self, a, b):
        return self.k.divide(a, b)

    def total(self, v, by: str):
        return self.k.max(v, axis=1) if by == "max" else self.k.sum(v, axis=1)


_MADE: dict[str, type] = {}


def _reduction_layer(pool: Pooling):
    """The class registered as pool.keras_layer ("rnncli>Name"): pool.over_time on keras.ops."""
    registered = pool.keras_layer
    if registered in _MADE:
        return _MADE[registered]
    import keras
    from keras import ops

    class Pooled(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs, mask=None):
            # No mask (a model without one): every step counts.
            real = (ops.ones(ops.shape(inputs)[:2], "bool") if mask is None
                    else ops.cast(mask, "bool"))
            real = ops.expand_dims(real, -1)
            steps = ops.cast(ops.shape(inputs)[1], inputs.dtype)
            return pool.over_time(_KerasOps(), inputs, real, steps,
                                  any_real=ops.any(real, axis=1))

        def compute_mask(self, inputs, mask=None):
            return None  # one vector per review: nothing left to mask

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[2])

    # Keras saves and finds a layer by its class name, so the class takes the registry's.
    name = registered.partition(">")[2]
    Pooled.__name__ = Pooled.__qualname__ = name
    Pooled.__doc__ = f"Pooling {pool.name!r}: {pool.help}."
    _MADE[registered] = keras.saving.register_keras_serializable(package=PACKAGE)(Pooled)
    return _MADE[registered]


_LAYER_CLASS = None


def ngram_layer():
    """The Keras layer class of the head, registered for loading; made on first use so that
    importing this module does not import Keras. TensorFlow ops: it counts each review's
    distinct keys (tf.unique_with_counts), which Keras's backend-neutral ops cannot."""
    global _LAYER_CLASS
    if _LAYER_CLASS is not None:
        return _LAYER_CLASS
    import keras

    @keras.saving.register_keras_serializable(package="rnncli")
    class NgramLogit(keras.layers.Layer):
        """ids [batch, steps] -> the head's logit [batch, 1] (bias in the dense layer), or
        with `classes` K > 2 its logit per label [batch, K], from a [keys, K] table."""

        def __init__(self, num_words: int, buckets: int = BUCKETS, order: int = 2,
                     classes: int = 1, **kwargs):
            super().__init__(**kwargs)
            self.num_words, self.buckets, self.classes = num_words, buckets, classes
            self.order = order  # 2 where the config has none: a head made before triples
            size = num_words + buckets
            self.table = self.add_weight(shape=(size,) if classes == 1 else (size, classes),
                                         initializer="zeros", trainable=False,
                                         name="weights")
            self.idf = self.add_weight(shape=(size,), initializer="zeros",
                                       trainable=False, name="idf")

        def call(self, ids):
            import tensorflow as tf

            ids = tf.cast(ids, tf.int64)
            size = self.num_words + self.buckets
            real = ids >= OOV
            pair = ids[:, :-1] * self.num_words + ids[:, 1:]
            pair_kept = tf.logical_and(real[:, :-1], real[:, 1:])
            keys = [ids, self.num_words + pair % self.buckets]
            kept = [real, pair_kept]
            if self.order > 2:
                triple = pair[:, :-1] * self.num_words + ids[:, 2:]
                keys.append(self.num_words + triple % self.buckets)
                kept.append(tf.logical_and(pair_kept[:, :-1], real[:, 2:]))
            keys, kept = tf.concat(keys, 1), tf.concat(kept, 1)
            batch = tf.shape(ids, out_type=tf.int64)[0]
            rows = tf.range(batch)[:, None] * size
            # A key not kept becomes 0 (no kept key is 0: the pad id), which weighs nothing.
            flat = tf.reshape(tf.where(kept, rows + keys, tf.zeros_like(keys)), [-1])
            found, _, counts = tf.unique_with_counts(flat)
            key, row = found % size, found // size
            v = (1.0 + tf.math.log(tf.cast(counts, tf.float32))) * tf.gather(self.idf, key)
            v = v * tf.cast(found > 0, tf.float32)
            norm = tf.math.unsorted_segment_sum(v * v, row, batch)
            if self.classes > 1:
                dot = tf.math.unsorted_segment_sum(v[:, None] * tf.gather(self.table, key),
                                                   row, batch)
                return dot / tf.sqrt(tf.maximum(norm, 1e-30))[:, None]
            dot = tf.math.unsorted_segment_sum(v * tf.gather(self.table, key), row, batch)
            return tf.reshape(dot / tf.sqrt(tf.maximum(norm, 1e-30)), [-1, 1])

        def compute_output_shape(self, input_shape):
            return (input_shape[0], self.classes)

        def get_config(self):
            config = {**super().get_config(), "num_words": self.num_words,
                      "buckets": self.buckets}
            if self.classes > 1:  # a binary model's file stays loadable by older rnncli
                config["classes"] = self.classes
            if self.order != 2:
                config["order"] = self.order
            return config

    _LAYER_CLASS = NgramLogit
    return _LAYER_CLASS
