"""The serve room: running exported models with onnxruntime and numpy only.

Sessions with the model's own preprocessing (onnx_model.py), text-input models
(text_input.py), streaming in windows (windows.py), where models are found and the
bundled one (locate.py), the Python API (api.py, `rnncli.load()`), the names both sides
of an ONNX file agree on (contract.py), which export reads, and which onnxruntime a file
needs (compat.py, read only when onnxruntime refuses one).

Imports: text, config, errors, fsutil. Never train or export, never TensorFlow.
"""
