"""The Python API: load a model, predict texts. onnxruntime and numpy only, no TensorFlow.

    import rnncli
    model = rnncli.load()                       # the bundled model
    model = rnncli.load("artifacts")            # a run folder, or a .onnx file
    for p in model.predict(["a wonderful, moving film", "a boring waste of time"]):
        print(p.label, round(p.probability, 3), p.known_words)
    model.predict("great film").label           # one text in, one prediction out

A model of K > 2 labels predicts the most probable label, and `probability` is that label's;
`all_probabilities=True` adds every label's, as `Prediction.probabilities` {label: p}:

    model = rnncli.load("runs/topics")
    p = model.predict("a goal in the last minute", all_probabilities=True)
    p.label, p.probability, p.probabilities     # 'sport', 0.91, {'news': 0.05, ...}

`predict` takes a list (one Prediction per text, in order) or one string (one Prediction),
as fastText's `load_model(...).predict(...)` does; `predict_stream` takes any iterable and
yields as it goes, with bounded memory. A blank text (empty, or only whitespace) gets label
and probability None and known_words 0, as a blank line does in `rnncli predict`: there is
nothing to judge, and a label made from no words would be the model's bias.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from rnncli.errors import ModelError, UsageError
from rnncli.serve import locate
from rnncli.serve.onnx_model import OnnxModel, Prediction

__all__ = ["Model", "Prediction", "load"]


class Model:
    """A loaded ONNX model with its own preprocessing (vocabulary, maxlen, padding side,
    labels, threshold), all read from the file. Outputs that are not probabilities (NaN,
    infinite, outside [0, 1]) raise ModelError instead of giving a label."""

    def __init__(self, path: Path, bundled: bool = False, workers: int | None = None,
                 cascade: bool = True):
        self._model = OnnxModel(path, workers, cascade)
        self.path, self.bundled = Path(path), bundled

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label name, by the model's output index: (negative, positive) for a
        binary model."""
        return tuple(self._model.preprocessing.labels)

    @property
    def threshold(self) -> float:
        """Positive at or above this probability, unless predict is given another (binary
        models; one of K > 2 labels predicts the most probable)."""
        return self._model.preprocessing.threshold

    @property
    def onnx_model(self) -> OnnxModel:
        """The session and preprocessing underneath, for what the API does not wrap."""
        return self._model

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._model.metadata)

    def predict(self, texts: str | Iterable[str], threshold: float | None = None,
                batch_size: int = 256,
                all_probabilities: bool = False) -> Prediction | list[Prediction]:
        """One Prediction (text, label, probability of the positive class or, for K > 2
        labels, of the label predicted, known_words; with `all_probabilities` every label's
        probability) per text, in input order; a single string gives a single Prediction.
        A blank text gets label and probabilities None. `threshold` is for binary models."""
        self._check(threshold, batch_size)
        if isinstance(texts, str):
            if not texts.strip():
                return Prediction(texts, None, None, 0)
            return self._model.predict_texts([texts], threshold, batch_size,
                                             all_probabilities)[0]
        return list(self.predict_stream(texts, threshold, batch_size, all_probabilities))

    def predict_stream(self, texts: Iterable[str], threshold: float | None = None,
                       batch_size: int = 256,
                       all_probabilities: bool = False) -> Iterator[Prediction]:
        """Predictions of any number of texts, a window at a time, in input order; a blank
        text gets label and probabilities None."""
        self._check(threshold, batch_size)
        if isinstance(texts, str):
            raise UsageError("predict_stream takes an iterable of texts, not one string: "
                             "wrap it in a list, or call predict.")
        return self._stream(texts, threshold, batch_size, all_probabilities)

    def _check(self, threshold: float | None, batch_size: int) -> None:
        _check(threshold, batch_size)
        self._model.check_threshold(threshold)

    def _stream(self, texts: Iterable[str], threshold: float | None,
                batch_size: int, all_probabilities: bool) -> Iterator[Prediction]:
        # The model sees only the texts with words; blank ones are put back in their places.
        pending: deque[tuple[str, bool]] = deque()  # (text, blank), read and not given back

        def worded() -> Iterator[str]:
            for text in texts:
                if not isinstance(text, str):
                    raise UsageError(f"Texts must be strings, not {type(text).__name__}: "
                                     "decode bytes first.")
                blank = not text.strip()
                pending.append((text, blank))
                if not blank:
                    yield text

        for p in self._model.predict_stream(worded(), batch_size, threshold,
                                            all_probabilities=all_probabilities):
            text, blank = pending.popleft()
            while blank:
                yield Prediction(text, None, None, 0)
                text, blank = pending.popleft()
            yield p
        for text, _ in pending:  # blank texts after the last one with words
            yield Prediction(text, None, None, 0)

    def __repr__(self) -> str:
        what = "bundled model" if self.bundled else str(self.path)
        return f"<rnncli.Model {what}, labels {self.labels}>"


def _check(threshold: float | None, batch_size: int) -> None:
    """The bounds `rnncli predict` puts on --threshold and --batch-size."""
    if threshold is not None and not (isinstance(threshold, (int, float))
                                      and math.isfinite(threshold) and 0 <= threshold <= 1):
        raise UsageError(f"threshold {threshold!r} is not a number between 0 and 1.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size {batch_size!r} is not a whole number of 1 or more.")


def load(path: str | Path | None = None, workers: int | None = None,
         cascade: bool = True) -> Model:
    """The model at `path` (a .onnx file or a run folder holding model.onnx), or the model
    bundled with the package when no path is given. `workers`: threads and processes a
    large input may use (default: the cores, up to 8). `cascade` False runs the network on
    every review of a model whose cascade lets its n-gram head decide the easy ones."""
    if path is None:
        return Model(locate.BUNDLED, bundled=True, workers=workers, cascade=cascade)
    ref = locate.find_model(Path(path), prefer="onnx")
    if ref.kind != "onnx":
        raise ModelError(f"{ref.path} is a Keras model; load() serves ONNX: run "
                         f"`rnncli export onnx --model {ref.path.parent}` first.")
    return Model(ref.path, workers=workers, cascade=cascade)
