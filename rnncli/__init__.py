"""rnncli: recurrent neural networks on text, from the IMDB corpus to a served ONNX model.

    $ rnncli data fetch && rnncli train && rnncli predict "great film"

    >>> import rnncli
    >>> rnncli.load().predict("a wonderful, moving film").label
    'positive'
"""

from __future__ import annotations

__version__ = "0.1.0"


def load(path=None, workers: int | None = None):
    """The model at `path` (a .onnx file or a run folder), or the bundled model: its
    `.predict(texts)` gives one Prediction (label, probability, known_words) per text.
    Imports onnxruntime, never TensorFlow (rnncli/serve/api.py)."""
    from rnncli.serve.api import load as load_model

    return load_model(path, workers)
