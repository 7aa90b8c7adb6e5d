"""The one preprocessing code: tokenizer, vocabulary, encoding and padding (numpy only).

Data preparation, training, evaluation and `predict` all go through these functions, so a
model is fed exactly what it learned from.

    >>> vocab = Vocabulary(["the", "film", "great"])
    >>> vocab.encode(tokenize("A <br />great film!"), num_words=10)
    [2, 5, 4]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

# Bump when tokenize() changes: prepared datasets and models record it, and a mismatch
# means their ids no longer mean the same words.
TOKENIZER_VERSION = "1"

# Keras IMDB convention: ids 0-2 are reserved, the word of frequency rank r (1-based) is r + 2.
PAD = 0
START = 1
OOV = 2
INDEX_FROM = 3

PADDING_SIDES = ("pre", "post")

_MARKUP = re.compile(r"<[^>]*>")
# Letters and digits in any script; an apostrophe between two of them stays in the word
# ("don't", "director's"), any other punctuation splits or is dropped. `\w` also matches
# "_", which tokenize() turns into a space first: cheaper than a negated class here.
_WORD = re.compile(r"\w+(?:'\w+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased words of `text`, markup such as `<br />` removed, punctuation dropped."""
    # Chained str.replace is ~50x faster than str.translate on these texts.
    text = (text.lower().replace("_", " ").replace("\u2019", "'").replace("\u2018", "'")
            .replace("`", "'"))
    if "<" in text:
        text = _MARKUP.sub(" ", text)
    return _WORD.findall(text)


class Vocabulary:
    """Words ranked by frequency; the word at rank r (1-based) has id r + 2 (INDEX_FROM - 1 + r)."""

    def __init__(self, words: Sequence[str]):
        self.words = list(words)
        self.index = {w: i + INDEX_FROM for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def truncated(self, num_words: int) -> Vocabulary:
        """The words whose id stays below `num_words` (what a model trained on it knows)."""
        return Vocabulary(self.words[: max(0, num_words - INDEX_FROM)])

    def encode(self, tokens: Iterable[str], num_words: int | None = None) -> list[int]:
        """Ids of `tokens` (no start marker); unknown words and ids >= num_words become OOV."""
        get = self.index.get
        if num_words is None:
            return [get(w, OOV) for w in tokens]
        ids = [get(w, OOV) for w in tokens]
        return [i if i < num_words else OOV for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Words for `ids`, with `?` for the reserved ids and out-of-vocabulary."""
        words = self.words
        n = len(words)
        return " ".join(
            words[i - INDEX_FROM] if INDEX_FROM <= i < n + INDEX_FROM else "?" for i in ids
        )

    def to_text(self) -> str:
        return "\n".join(self.words)

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        return cls(text.split("\n") if text else [])


def check_padding(name: str, side: str) -> None:
    if side not in PADDING_SIDES:
        raise ValueError(f"{name} must be 'pre' or 'post', not {side!r}")


def pad_sequences(
    seqs: Iterable[Sequence[int] | np.ndarray],
    maxlen: int,
    padding: str = "pre",
    truncating: str = "pre",
    start: int | None = START,
) -> np.ndarray:
    """Pad/truncate id sequences to an int32 matrix of width `maxlen`, as Keras does.

    `start` is put in front of each sequence before truncating (Keras's start_char), so
    'pre' truncation of a long review drops it along with the first words.
    """
    check_padding("padding", padding)
    check_padding("truncating", truncating)
    if maxlen < 1:
        raise ValueError(f"maxlen must be at least 1, not {maxlen}")
    seqs = seqs if isinstance(seqs, list) else list(seqs)
    out = np.zeros((len(seqs), maxlen), dtype=np.int32)
    body = maxlen - (start is not None)
    for row, seq in zip(out, seqs):
        n = len(seq)
        if start is not None and n <= body:
            # The whole review fits with its start marker.
            k = n + 1
            at = maxlen - k if padding == "pre" else 0
            row[at] = start
            if n:
                row[at + 1 : at + k] = seq
            continue
        keep = min(n, maxlen)
        if truncating == "pre":
            part = seq[n - keep :]
        else:
            # 'post' truncation keeps the start marker and the first words.
            if start is not None:
                row[0] = start
                row[1:] = seq[: maxlen - 1]
                continue
            part = seq[:keep]
        at = maxlen - keep if padding == "pre" else 0
        row[at : at + keep] = part
    return out


def lengths_with_start(lengths: np.ndarray) -> np.ndarray:
    """Sequence lengths as the model sees them: the start marker counts as a token."""
    return np.asarray(lengths) + 1
