"""A stream of reviews cut into windows, each encoded ahead of the model; on large inputs
the encoding runs in worker processes, so tokenizing uses every core.

    for texts, encoded in encoded_windows(prep.encode_flat, windows(reviews, 4096), workers=2):
        ...  # windows come back in input order

Tokenizing is pure Python and holds the GIL, so threads would not help; onnxruntime
releases it, so the model runs in the parent's threads meanwhile.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from typing import TypeVar

T = TypeVar("T")

# Windows queued per worker: enough that no worker waits for the parent, few enough that
# memory stays bounded on an endless stdin.
PREFETCH = 2
# Tokenizing costs about 30 ns a character; the parent spends about 10 us on each review
# whatever its length (model, output). Below this many characters a review, workers would
# wait on the parent and only add the cost of sending them texts (measured: one-sentence
# reviews, ~110 characters, take more CPU and no less time with workers).
MIN_CHARS_PER_REVIEW = 256

_encode: Callable | None = None  # set in each worker process


def windows(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(texts)
    while chunk := list(islice(it, size)):
        yield chunk


def encoded_windows(encode: Callable[[list[str]], T], chunks: Iterable[list[str]],
                    workers: int) -> Iterator[tuple[list[str], T]]:
    """(window, encode(window)) for each window of reviews in `chunks`, in order.

    Worker processes start only when the input holds more than one window (a few reviews
    are encoded sooner than a process starts) of reviews long enough to be worth it, and
    on Linux, where fork shares the vocabulary with the workers at no cost (spawn would
    re-import everything, and fork is unsafe on macOS).
    """
    chunks = iter(chunks)
    head = list(islice(chunks, 2))
    if (len(head) < 2 or workers < 2 or not fork_is_safe()
            or sum(map(len, head[0])) < MIN_CHARS_PER_REVIEW * len(head[0])):
        for chunk in chain(head, chunks):
            yield chunk, encode(chunk)
        return
    import multiprocessing  # only here: its import costs a one-review `predict` ~4 ms

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_start_worker, initargs=(encode,)) as pool:
        pending: deque = deque()
        for chunk in chain(head, chunks):
            pending.append((chunk, pool.apply_async(_encode_in_worker, (chunk,))))
            if len(pending) >= workers * PREFETCH:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()


# Runtimes that keep thread pools with locks a forked child can inherit held (the
# `rnncli predict` process never loads them; a Python program or test that also trains may).
_FORK_UNSAFE = ("tensorflow", "torch", "jax")


def fork_is_safe() -> bool:
    return sys.platform.startswith("linux") and not any(
        sys.modules.get(m) is not None for m in _FORK_UNSAFE)


def _start_worker(encode: Callable) -> None:
    import signal

    # Ctrl-C is the parent's to handle (it stops the pool); a worker would only print a
    # traceback for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _encode
    _encode = encode


def _encode_in_worker(chunk: list[str]):
    return _encode(chunk)
