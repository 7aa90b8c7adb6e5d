"""The short-text sets the benchmarks share, built from IMDB test reviews.

- first_sentence: a review's first sentence of 4 words or more (markup removed), what a
  person typing one line into `rnncli predict` looks like; first_sentences: those of many
  reviews with their labels;
- crops: a random window of 8 to 30 words of each review (seeded).
"""

from __future__ import annotations

import re

import numpy as np

from rnncli.text import tokenizer as text

_MARKUP = re.compile(r"<[^>]*>")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def first_sentence(review: str) -> str | None:
    """The first sentence of 4 words or more, on one line; None if there is none."""
    for sentence in _SENTENCE_END.split(_MARKUP.sub(" ", review)):
        if len(text.tokenize(sentence)) >= 4:
            return " ".join(sentence.split())
    return None


def first_sentences(reviews: list[str], labels: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Each review's first sentence and its label, reviews without one left out."""
    pairs = [(first_sentence(r), label) for r, label in zip(reviews, labels)]
    pairs = [(s, label) for s, label in pairs if s]
    return [s for s, _ in pairs], np.array([label for _, label in pairs])


def crops(reviews: list[str], seed: int = 0, lo: int = 8, hi: int = 30) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for review in reviews:
        words = _MARKUP.sub(" ", review).split()
        k = int(rng.integers(lo, hi + 1))
        at = int(rng.integers(0, max(1, len(words) - k + 1)))
        out.append(" ".join(words[at : at + k]))
    return out
