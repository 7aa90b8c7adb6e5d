"""Serving: an onnxruntime session plus the model's own preprocessing. Never imports TensorFlow.

    model = OnnxModel(Path("artifacts/model.onnx"))
    model.predict_texts(["a great film"])   # [Prediction(label='positive', ...)]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnncli.errors import ModelError
from rnncli.preprocessing import Preprocessing


@dataclass
class Prediction:
    text: str
    label: str
    probability: float  # of the positive class
    known_words: int


def session_options(threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
    opts.inter_op_num_threads = 1
    # Spinning threads burn a core between calls; a CLI process gains nothing from it.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class OnnxModel:
    """An rnncli ONNX model: its session and the preprocessing stored in its metadata."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise ModelError(f"No model at {path}: run `rnncli export onnx` first.")
        try:
            self.session = ort.InferenceSession(str(path), session_options(threads),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            raise ModelError(f"Cannot load {path}: not a valid ONNX model ({first}); "
                             "re-export it with `rnncli export onnx`.") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if not any(k.startswith("rnncli.") for k in props):
            raise ModelError(f"{path} has no rnncli metadata (vocabulary, maxlen): export it "
                             "with `rnncli export onnx`.")
        self.path = path
        self.metadata = dict(props)
        self.preprocessing = Preprocessing.from_metadata(props)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def predict_ids(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Probabilities for an already padded int32 id matrix."""
        run, name, out = self.session.run, self.input_name, [self.output_name]
        parts = [run(out, {name: x[i : i + batch_size]})[0].reshape(-1)
                 for i in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def predict_texts(self, texts: list[str], threshold: float | None = None) -> list[Prediction]:
        prep = self.preprocessing
        threshold = prep.threshold if threshold is None else threshold
        x, known = prep.encode(texts)
        probs = self.predict_ids(x, max(1, len(texts)))
        positive, negative = prep.labels[1], prep.labels[0]
        return [Prediction(t, positive if p >= threshold else negative, float(p), int(k))
                for t, p, k in zip(texts, probs.tolist(), known.tolist())]

    def predict_stream(self, texts: Iterable[str], batch_size: int = 256,
                       threshold: float | None = None) -> Iterator[Prediction]:
        """Predict an iterable of any length in batches: memory stays bounded."""
        batch: list[str] = []
        for t in texts:
            batch.append(t)
            if len(batch) == batch_size:
                yield from self.predict_texts(batch, threshold)
                batch = []
        if batch:
            yield from self.predict_texts(batch, threshold)
