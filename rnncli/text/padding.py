"""Rows without their padding, and length-sorted batches padded only to their longest: the
way length-aware serving feeds a graph, and the way training and export check it.

    for batch, idx in trimmed_batches(x, "pre", size=256): ...
"""

from __future__ import annotations

import numpy as np

from rnncli.text import tokenizer as text


def trimmed_rows(x: np.ndarray, padding: str = "pre") -> list[np.ndarray]:
    """Each row without its pads (one pad left in a row with nothing else)."""
    rows = []
    for row in x:
        real = np.flatnonzero(row)
        if padding == "pre":
            rows.append(row[real[0] if len(real) else len(row) - 1:])
        else:
            rows.append(row[:real[-1] + 1 if len(real) else 1])
    return rows


def trimmed_batches(x: np.ndarray, padding: str, size: int = 32) -> list[tuple[np.ndarray,
                                                                               np.ndarray]]:
    """(batch, indices into x): rows sorted by length, in batches padded to their longest,
    the way length-aware serving feeds a graph."""
    rows = trimmed_rows(x, padding)
    order = np.argsort([len(r) for r in rows], kind="stable")
    out = []
    for i in range(0, len(order), size):
        idx = order[i:i + size]
        width = max(len(rows[k]) for k in idx)
        batch = text.pad_sequences([rows[k] for k in idx], width, padding, padding, start=None)
        out.append((batch, idx))
    return out
