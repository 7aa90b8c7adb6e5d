"""rnncli's own Keras layers, each made on first use (so importing this module imports no
Keras) and registered for loading under the package name "rnncli".

    keras_layer("rnncli>MaskedGlobalMaxPooling1D")   # a pooling's layer, by its registry name
    ngram_layer()(num_words, name=LAYER)             # the n-gram head's logit
"""

from __future__ import annotations

from rnncli.model.ngram import BUCKETS
from rnncli.text.tokenizer import OOV


def pooling_layer(name: str):
    """The Keras layer class of a pooling mode: a keras.layers name or one of rnncli's."""
    custom = {"rnncli>MaskedGlobalMaxPooling1D": masked_max_pooling}
    if name in custom:
        return custom[name]()
    import keras

    return getattr(keras.layers, name)


_MASKED_MAX = None


def masked_max_pooling():
    """The Keras layer class for max pooling over unmasked steps, registered for loading.

    Made on first use so that importing this module does not import Keras.
    """
    global _MASKED_MAX
    if _MASKED_MAX is not None:
        return _MASKED_MAX
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="rnncli")
    class MaskedGlobalMaxPooling1D(keras.layers.Layer):
        """Max over time of the steps whose mask is true; a row with none gives zeros."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs, mask=None):
            if mask is None:
                return ops.max(inputs, axis=1)
            keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
            lowest = ops.full_like(inputs, -3.0e38)
            pooled = ops.max(ops.where(keep, inputs, lowest), axis=1)
            return ops.where(ops.any(keep, axis=1), pooled, ops.zeros_like(pooled))

        def compute_mask(self, inputs, mask=None):
            return None  # one vector per review: nothing left to mask

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[2])

    _MASKED_MAX = MaskedGlobalMaxPooling1D
    return _MASKED_MAX


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
        """ids [batch, steps] -> the head's logit [batch, 1] (bias in the dense layer)."""

        def __init__(self, num_words: int, buckets: int = BUCKETS, **kwargs):
            super().__init__(**kwargs)
            self.num_words, self.buckets = num_words, buckets
            size = num_words + buckets
            self.table = self.add_weight(shape=(size,), initializer="zeros",
                                         trainable=False, name="weights")
            self.idf = self.add_weight(shape=(size,), initializer="zeros",
                                       trainable=False, name="idf")

        def call(self, ids):
            import tensorflow as tf

            ids = tf.cast(ids, tf.int64)
            size = self.num_words + self.buckets
            real = ids >= OOV
            pairs = self.num_words + (ids[:, :-1] * self.num_words + ids[:, 1:]) % self.buckets
            keys = tf.concat([ids, pairs], 1)
            kept = tf.concat([real, tf.logical_and(real[:, :-1], real[:, 1:])], 1)
            batch = tf.shape(ids, out_type=tf.int64)[0]
            rows = tf.range(batch)[:, None] * size
            # A key not kept becomes 0 (no kept key is 0: the pad id), which weighs nothing.
            flat = tf.reshape(tf.where(kept, rows + keys, tf.zeros_like(keys)), [-1])
            found, _, counts = tf.unique_with_counts(flat)
            key, row = found % size, found // size
            v = (1.0 + tf.math.log(tf.cast(counts, tf.float32))) * tf.gather(self.idf, key)
            v = v * tf.cast(found > 0, tf.float32)
            dot = tf.math.unsorted_segment_sum(v * tf.gather(self.table, key), row, batch)
            norm = tf.math.unsorted_segment_sum(v * v, row, batch)
            return tf.reshape(dot / tf.sqrt(tf.maximum(norm, 1e-30)), [-1, 1])

        def compute_output_shape(self, input_shape):
            return (input_shape[0], 1)

        def get_config(self):
            return {**super().get_config(), "num_words": self.num_words,
                    "buckets": self.buckets}

    _LAYER_CLASS = NgramLogit
    return _LAYER_CLASS
