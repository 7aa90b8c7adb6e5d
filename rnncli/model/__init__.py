"""The model room: what a model is.

The registries (cells.py, poolings.py: one entry per cell or pooling mode), rnncli's Keras
layers (layers.py), the n-gram head's features (ngram.py), the Keras model built from a
config (build.py), and loading a Keras model with TensorFlow's settings scoped
(runtime.py). Keras and TensorFlow are imported inside the functions that need them.

Imports: text, errors, fsutil (config only for type annotations).
"""
