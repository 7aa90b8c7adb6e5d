"""Serving a text-input model (`rnncli export onnx --text-input`): texts go in as they are,
the graph tokenizes them. numpy and onnxruntime only.

    probs, known = run_text_model(session, ["a great film", "dull"])

A call's token matrix is as wide as its longest review, so reviews are sorted by length
and fed in groups whose rows x longest review stays under CHAR_BUDGET characters.
"""

from __future__ import annotations

import numpy as np

from rnncli.serve.contract import KNOWN_OUTPUT, OUTPUT, TEXT_INPUT

CHAR_BUDGET = 1 << 20
MAX_GROUP = 256


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


def run_text_model(session, texts: list[str], workers: int = 1, width: int = 1,
                   feeds: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities float32, [n] or for `width` > 1 labels' [n, width]; known-word counts
    [n] int64) for `texts`; `feeds`: other inputs, the same for every call."""
    probs = np.zeros((len(texts),) if width == 1 else (len(texts), width), np.float32)
    known = np.zeros(len(texts), np.int64)
    if not texts:
        return probs, known  # the graph needs at least one review
    out_names = [OUTPUT, KNOWN_OUTPUT]
    groups = _groups(texts)

    def run(idx: np.ndarray) -> None:
        p, k = session.run(out_names, {TEXT_INPUT: np.array([texts[i] for i in idx], object),
                                       **(feeds or {})})
        probs[idx], known[idx] = p.reshape((len(idx), *probs.shape[1:])), k

    if workers > 1 and len(groups) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(workers, len(groups))) as pool:
            list(pool.map(run, groups))
    else:
        for idx in groups:
            run(idx)
    return probs, known
