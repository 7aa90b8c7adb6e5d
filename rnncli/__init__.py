"""rnncli: recurrent neural networks on text, from the IMDB corpus to a served ONNX model.

    $ rnncli data fetch --from aclImdb_v1.tar.gz && rnncli train && rnncli predict "great film"
"""

__version__ = "0.1.0"
