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
from rnncli.onnx_graph import HYBRID_SMALL_BATCH
from rnncli.preprocessing import Preprocessing


@dataclass
class Prediction:
    text: str
    label: str
    probability: float  # of the positive class
    known_words: int


def session_options(threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One thread per call: these graphs are chains of small ops that gain little from
    # intra-op threads; large inputs are split across calls instead (run_batches).
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Spinning threads burn a core between calls; a CLI process gains nothing from it.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def run_batches(session, x: np.ndarray, batch_size: int, workers: int, input_name: str,
                output_name: str) -> np.ndarray:
    """Run `x` in batches; with workers > 1, batches run concurrently (onnxruntime releases
    the GIL), which is how a batch job uses every core."""
    def run(chunk):
        return session.run([output_name], {input_name: chunk})[0].reshape(-1)

    if len(x) == 0:
        return np.zeros(0, np.float32)
    if len(x) <= batch_size:
        return run(x)  # the single-call case: predict's latency path
    chunks = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
    if workers == 1:
        return np.concatenate([run(c) for c in chunks])
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(workers, len(chunks))) as pool:
        return np.concatenate(list(pool.map(run, chunks)))


class OnnxModel:
    """An rnncli ONNX model: its session and the preprocessing stored in its metadata."""

    def __init__(self, path: Path, workers: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise ModelError(f"No model at {path}: run `rnncli export onnx` first.")
        try:
            self.session = ort.InferenceSession(str(path), session_options(),
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
        self.workers = workers or default_workers()
        self.metadata = dict(props)
        self.preprocessing = Preprocessing.from_metadata(props)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        # `export onnx --text-input` graphs tokenize in the graph (rnncli.text_input).
        self.takes_text = self.session.get_inputs()[0].type == "tensor(string)"

    def predict_ids(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Probabilities for an already padded int32 id matrix."""
        if self.takes_text:
            raise ModelError(f"{self.path} takes review text, not ids: use predict_texts.")
        return run_batches(self.session, x, batch_size, self.workers, self.input_name,
                           self.output_name)

    def predict_texts(self, texts: list[str], threshold: float | None = None) -> list[Prediction]:
        if self.takes_text:
            from rnncli.text_input import text_predictions

            return text_predictions(self, texts, threshold)
        prep = self.preprocessing
        threshold = prep.threshold if threshold is None else threshold
        # A hybrid graph runs large full-length batches on its unrolled branch; everything
        # else gains from running only as many steps as the longest review needs.
        trim = prep.trim_padding and (len(texts) <= HYBRID_SMALL_BATCH
                                      or self.metadata.get("rnncli.graph") != "hybrid")
        x, known = prep.encode(texts, trim=trim)
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
