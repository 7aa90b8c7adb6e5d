"""The n-gram head's weightings (model/ngram.py): what multiplies each key's idf, one entry
each. Kept free of numpy so the settings (and `--help`) can list them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Weighting:
    """What multiplies each key's idf, and how the head is fitted with it (train/head.py):
    its regression's C, and the weight of each extra window (8 per review) against a whole
    review's 1. Chosen on IMDB's validation share with the bundled network (RESULTS.md)."""

    help: str
    C: float
    window_weight: float
    binary: bool  # two labels only


WEIGHTINGS: dict[str, Weighting] = {
    "tfidf": Weighting("TF-IDF", C=4.0, window_weight=1.0, binary=False),
    # The 8 windows of a review weigh half of it together: at 1 each they cost whole reviews
    # 0.9 point of the head's validation accuracy (0.9176 -> 0.9090 at C = 8); left out,
    # the joined model lost 0.9 point on windows of 8 to 80 words (0.8052 -> 0.7964, C = 16).
    # C = 16 since the head has triples: joined to the bundled network, validation whole /
    # windows 0.9272 / 0.8086 against 0.9262 / 0.8044 at C = 8 (benchmarks/bench_head.py).
    "nb": Weighting("TF-IDF times naive Bayes log-count ratios, two labels", C=16.0,
                    window_weight=1 / 16, binary=True),
}
