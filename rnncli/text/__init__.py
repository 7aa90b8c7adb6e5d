"""The text room: the one preprocessing code training and serving share.

The tokenizer and vocabulary (tokenizer.py), encoding and padding as a model saw it
(preprocessing.py, padding.py). numpy only.

Imports: errors, fsutil. Nothing else of the package.
"""
