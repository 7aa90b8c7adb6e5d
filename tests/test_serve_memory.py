"""`rnncli predict --file` holds a bounded window of reviews: its peak memory does not grow
with the file's size (the figures for the real test split are in BENCHMARKS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def peak_rss_mb(args: list[str], cwd) -> float:
    """Peak resident memory of one `rnncli` process, read by tools/peak_rss.py: from this
    process, a child's figure would start at the test process's own size."""
    proc = subprocess.run([sys.executable, str(TOOLS / "peak_rss.py"), sys.executable, "-m",
                           "rnncli", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["returncode"] == 0, proc.stderr
    return got["rss_mb"]


def reviews(n: int, seed: int = 0, longest: int = 600) -> str:
    """`n` reviews of 5 to `longest` words (600: some longer than the bundled model's 500
    ids)."""
    rng = np.random.default_rng(seed)
    words = np.array("a great film the plot was boring and slow but the actors were "
                     "wonderful i would not watch it again".split())
    return "".join(" ".join(rng.choice(words, int(k))) + "\n"
                   for k in rng.integers(5, longest, n))


@pytest.mark.slow
def test_peak_memory_is_flat_in_the_file_size(tmp_path):
    # Both past the first windows, after which the process keeps a steady size (encoding
    # processes started, onnxruntime's and the allocator's arenas grown: 100,000 such
    # reviews reached 223 MB at the 30,000th and peaked at 229 MB).
    (tmp_path / "small.txt").write_text(reviews(30_000, longest=300))
    (tmp_path / "large.txt").write_text(reviews(90_000, seed=1, longest=300))
    small = peak_rss_mb(["predict", "--file", "small.txt", "--output", "s.jsonl"], tmp_path)
    large = peak_rss_mb(["predict", "--file", "large.txt", "--output", "l.jsonl"], tmp_path)
    assert sum(1 for _ in open(tmp_path / "l.jsonl")) == 90_000
    # Holding every review at once (their texts alone are 80 MB here, their ids, padded
    # rows and outputs several times that) would show as growth.
    assert large - small < 25, (small, large)
    assert large < 400, large
