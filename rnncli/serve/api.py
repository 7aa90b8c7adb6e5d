"""The Python API: load a model, predict texts. onnxruntime and numpy only, no TensorFlow.

    import rnncli
    model = rnncli.load()                       # the bundled model
    model = rnncli.load("artifacts")            # a run folder, or a .onnx file
    for p in model.predict(["a wonderful, moving film", "a boring waste of time"]):
        print(p.label, round(p.probability, 3), p.known_words)
    model.predict("great film").label           # one text in, one prediction out

`predict` takes a list (one Prediction per text, in order) or one string (one Prediction),
as fastText's `load_model(...).predict(...)` does; `predict_stream` takes any iterable and
yields as it goes, with bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from rnncli.errors import ModelError
from rnncli.serve import locate
from rnncli.serve.onnx_model import OnnxModel, Prediction

__all__ = ["Model", "Prediction", "load"]


class Model:
    """A loaded ONNX model with its own preprocessing (vocabulary, maxlen, padding side,
    labels, threshold), all read from the file."""

    def __init__(self, path: Path, bundled: bool = False, workers: int | None = None):
        self._model = OnnxModel(path, workers)
        self.path, self.bundled = Path(path), bundled

    @property
    def labels(self) -> tuple[str, str]:
        """(negative, positive) label names."""
        return tuple(self._model.preprocessing.labels)

    @property
    def threshold(self) -> float:
        """Positive at or above this probability, unless predict is given another."""
        return self._model.preprocessing.threshold

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._model.metadata)

    def predict(self, texts: str | Iterable[str], threshold: float | None = None,
                batch_size: int = 256) -> Prediction | list[Prediction]:
        """One Prediction (text, label, probability of the positive class, known_words) per
        text, in input order; a single string gives a single Prediction."""
        if isinstance(texts, str):
            return self._model.predict_texts([texts], threshold, batch_size)[0]
        return list(self.predict_stream(texts, threshold, batch_size))

    def predict_stream(self, texts: Iterable[str], threshold: float | None = None,
                       batch_size: int = 256) -> Iterator[Prediction]:
        """Predictions of any number of texts, a window at a time, in input order."""
        return self._model.predict_stream(texts, batch_size, threshold)

    def __repr__(self) -> str:
        what = "bundled model" if self.bundled else str(self.path)
        return f"<rnncli.Model {what}, labels {self.labels}>"


def load(path: str | Path | None = None, workers: int | None = None) -> Model:
    """The model at `path` (a .onnx file or a run folder holding model.onnx), or the model
    bundled with the package when no path is given. `workers`: threads and processes a
    large input may use (default: the cores, up to 8)."""
    if path is None:
        return Model(locate.BUNDLED, bundled=True, workers=workers)
    ref = locate.find_model(Path(path), prefer="onnx")
    if ref.kind != "onnx":
        raise ModelError(f"{ref.path} is a Keras model; load() serves ONNX: run "
                         f"`rnncli export onnx --model {ref.path.parent}` first.")
    return Model(ref.path, workers=workers)


