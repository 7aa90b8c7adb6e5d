"""Export's rules that need no model: the graph choice, and how trimmed rows are formed."""

import numpy as np
import pytest

from rnncli.export.check import max_diff
from rnncli.export.onnx import CHOICE_MARGIN, PREFERENCE, Candidate, choose
from rnncli.text.padding import trimmed_batches, trimmed_rows


def cand(name, latency_us, throughput):
    return Candidate(name, latency_us=latency_us, throughput=throughput)


def test_choice_prefers_the_first_kind_within_the_margin_whatever_the_order():
    close = [cand("unrolled", 100, 1000), cand("native", 95, 990), cand("hybrid", 105, 980)]
    for order in (close, close[::-1], close[1:] + close[:1]):
        assert choose(list(order)).name == "hybrid"
    assert PREFERENCE.index("hybrid") < PREFERENCE.index("native")


def test_a_clearly_better_graph_wins_over_the_preferred_one():
    far = [cand("hybrid", 100, 1000), cand("native", 100 / (CHOICE_MARGIN * 1.1), 1000)]
    assert choose(far).name == "native"
    # Good at one measure, bad at the other: the worse side is its score.
    lopsided = [cand("native", 10, 100), cand("unrolled", 40, 1000), cand("hybrid", 12, 900)]
    assert choose(lopsided).name == "hybrid"


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_trimmed_rows_and_batches(padding):
    x = np.array([[0, 0, 1, 5], [1, 4, 6, 7], [0, 0, 0, 0]], np.int32)
    if padding == "post":
        x = np.array([[1, 5, 0, 0], [1, 4, 6, 7], [0, 0, 0, 0]], np.int32)
    rows = trimmed_rows(x, padding)
    assert [r.tolist() for r in rows] == [[1, 5], [1, 4, 6, 7], [0]]
    batches = trimmed_batches(x, padding, size=2)
    assert [idx.tolist() for _, idx in batches] == [[2, 0], [1]]  # shortest first
    assert batches[0][0].tolist() == [[0, 0], [1, 5]]
    assert batches[1][0].tolist() == [[1, 4, 6, 7]]


class FakeSession:
    """Sums the ids of each row, so padding never changes the output."""

    def run(self, names, feeds):
        return [feeds["ids"].sum(axis=1, keepdims=True).astype(np.float32)]


def test_max_diff_covers_trimmed_batches_and_single_rows():
    x = np.array([[0, 1, 2], [1, 2, 3]], np.int32)
    ref = x.sum(axis=1, keepdims=True).astype(np.float64)
    assert max_diff(FakeSession(), x, ref, trimmed=2) == 0.0
    wrong = ref.copy()
    wrong[1] += 0.5
    assert max_diff(FakeSession(), x, wrong, trimmed=0) == 0.5


class WidthSession:
    """A graph that gets trimmed rows wrong: its output is the width it was fed."""

    def run(self, names, feeds):
        n, width = feeds["ids"].shape
        return [np.full((n, 1), width, np.float32)]


def test_max_diff_catches_a_graph_that_only_works_at_full_width():
    x = np.array([[0, 0, 1], [0, 1, 2]], np.int32)
    ref = np.full((2, 1), 3.0)
    assert max_diff(WidthSession(), x, ref) == 0.0
    assert max_diff(WidthSession(), x, ref, trimmed=2) == 2.0  # row 0 alone is 1 wide
