"""The export room: Keras models to validated ONNX files.

The graph builder and its nodes (ops.py), the graph kinds (graph.py, unrolled.py), the
n-gram head's nodes (ngram.py), weights read from Keras (weights.py), validation against
Keras (check.py), int8 (quantize.py), the text-input graph (text_graph.py, text_export.py)
and the export command's driver (onnx.py).

Imports: serve (session options, the file's names), evaluate, data, model, text, config,
errors, fsutil. Nothing from train.
"""
