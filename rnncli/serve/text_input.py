"""Serving a text-input model (`rnncli export onnx --text-input`): texts go in as they are,
the graph tokenizes them. numpy and onnxruntime only.

    probs, known = run_text_model(session, ["a great film", "dull"])

A call's token matrix is as wide as its longest review, so reviews are sorted by length
and fed in groups whose rows x longest review stays under CHAR_BUDGET characters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnncli.data import store as dataset
from rnncli.errors import ModelError
from rnncli.export.ops import OUTPUT
from rnncli.export.text_graph import KNOWN_OUTPUT, TEXT_INPUT

CHAR_BUDGET = 1 << 20
MAX_GROUP = 256
STRING_INPUT = "tensor(string)"


def _groups(texts: list[str]) -> list[np.ndarray]:
    order = np.argsort([len(t) for t in texts], kind="stable")
    groups, start = [], 0
    for stop in range(1, len(order) + 1):
        longest = len(texts[order[stop - 1]])
        if stop - start > MAX_GROUP or (stop - start) * max(longest, 1) > CHAR_BUDGET:
            groups.append(order[start : stop - 1])
            start = stop - 1
    if start < len(order):
        groups.append(order[start:])
    return groups


def run_text_model(session, texts: list[str], workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [n] float32, known-word counts [n] int64) for `texts`."""
    probs, known = np.zeros(len(texts), np.float32), np.zeros(len(texts), np.int64)
    if not texts:
        return probs, known  # the graph needs at least one review
    out_names = [OUTPUT, KNOWN_OUTPUT]
    groups = _groups(texts)

    def run(idx: np.ndarray) -> None:
        p, k = session.run(out_names, {TEXT_INPUT: np.array([texts[i] for i in idx], object)})
        probs[idx], known[idx] = p.reshape(-1), k

    if workers > 1 and len(groups) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(workers, len(groups))) as pool:
            list(pool.map(run, groups))
    else:
        for idx in groups:
            run(idx)
    return probs, known


def text_predictions(model, texts: list[str], threshold: float | None):
    """OnnxModel.predict_texts for a model whose input is the review text."""
    from rnncli.serve.onnx_model import Prediction

    prep = model.preprocessing
    threshold = prep.threshold if threshold is None else threshold
    probs, known = run_text_model(model.session, texts, model.workers)
    positive, negative = prep.labels[1], prep.labels[0]
    return [Prediction(t, positive if p >= threshold else negative, float(p), int(k))
            for t, p, k in zip(texts, probs.tolist(), known.tolist())]


def split_probabilities(model, home: Path, split: str,
                        limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of the first `limit` reviews of `split`, fed as text."""
    data = dataset.load_split(home, split)
    texts = data.texts(limit)
    if texts is None:
        source = dataset.read_meta(home)["source"]
        raise ModelError(f"A text-input model reads review texts, and the prepared {source} "
                         "data kept none: `rnncli data fetch` the aclImdb archive.")
    probs, _ = run_text_model(model.session, texts, model.workers)
    return data.labels[: len(texts)].astype(np.float32), probs
