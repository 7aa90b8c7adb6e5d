"""Turning reviews into a prepared split: tokenize in parallel, rank the vocabulary, assemble.

    fields, chunks = tokenize_reviews(iter_reviews(path))
    vocab = build_vocabulary((c[2], c[3]) for c in chunks["train"])
    arrays = assemble(fields["train"], chunks["train"], vocab, seed=SHUFFLE_SEED)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from rnncli.data.archive import Review
from rnncli.text import tokenizer as text

# Keras's imdb.load_data shuffles with seed 113; the train split uses it too, so review N
# is stable and the validation split (the last 20%, as Keras takes it) holds both labels.
# The test split uses SHUFFLE_SEED + 1 (see rnncli.fetch).
SHUFFLE_SEED = 113
_CHUNK = 2000

Step = Callable[[str, int, int | None], None]


def _tokenize_chunk(job: tuple[str, list[bytes]]) -> tuple:
    """Tokenize reviews with ids local to this chunk; the parent maps them to global ranks.

    Sending back small int arrays and the chunk's distinct words costs far less than
    sending every token string between processes.
    """
    split, raws = job
    bad = 0
    docs = []
    for raw in raws:
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError:
            s = raw.decode("utf-8", errors="replace")
            bad += 1
        docs.append(text.tokenize(s))
    flat = [w for doc in docs for w in doc]
    local = {w: i for i, w in enumerate(dict.fromkeys(flat))}
    ids = np.fromiter(map(local.__getitem__, flat), dtype=np.int32, count=len(flat))
    lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
    counts = np.bincount(ids, minlength=len(local)) if len(local) else np.zeros(0, np.int64)
    return split, ids, lengths, list(local), counts, bad


def _chunks(reviews: Iterable[Review], fields: dict) -> Iterator[tuple[str, list[bytes]]]:
    """Batches of one split each, in the order their reviews are recorded in `fields`."""
    batches: dict[str, list[bytes]] = {}
    for r in reviews:
        fields.setdefault(r.split, []).append((r.label, r.rating, r.id, r.raw))
        batch = batches.setdefault(r.split, [])
        batch.append(r.raw)
        if len(batch) == _CHUNK:
            yield r.split, batch
            batches[r.split] = []
    for split, batch in batches.items():
        if batch:
            yield split, batch


def _pool(workers: int):
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ctx.Pool(workers)


def tokenize_reviews(reviews: Iterable[Review], step: Step | None = None,
                     workers: int | None = None) -> tuple[dict[str, list], dict[str, list]]:
    """Tokenize every review across processes.

    Returns per-split review fields (label, rating, id, raw) and per-split chunk results,
    both in the same review order.
    """
    fields: dict[str, list] = {}
    results: dict[str, list] = {}
    workers = workers or int(os.environ.get("RNNCLI_WORKERS", 0)) or os.cpu_count() or 1
    chunks = _chunks(reviews, fields)
    done = 0
    with contextlib.ExitStack() as stack:
        if workers == 1:
            mapped = map(_tokenize_chunk, chunks)
        else:
            mapped = stack.enter_context(_pool(workers)).imap(_tokenize_chunk, chunks)
        for res in mapped:
            results.setdefault(res[0], []).append(res[1:])
            done += len(res[2])
            if step:
                step("tokenize", done, None)
    return fields, results


def build_vocabulary(words_counts: Iterable[tuple[list[str], np.ndarray]]) -> text.Vocabulary:
    """Rank words by train-split frequency; ties broken alphabetically so builds are stable."""
    totals: dict[str, int] = {}
    for words, counts in words_counts:
        get = totals.get
        for w, c in zip(words, counts.tolist()):
            totals[w] = get(w, 0) + c
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return text.Vocabulary([w for w, _ in ranked])


def assemble(fields: list, results: list, vocab: text.Vocabulary,
             seed: int = SHUFFLE_SEED) -> dict:
    """One split's arrays: global ids, offsets, fields and texts, in the stored (shuffled) order."""
    index = vocab.index
    parts, lengths, bad = [], [], 0
    for ids, lens, words, _counts, n_bad in results:
        mapping = np.fromiter((index.get(w, text.OOV) for w in words), np.int32, len(words))
        parts.append(mapping[ids] if len(ids) else ids)
        lengths.append(lens)
        bad += n_bad
    tokens = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    lens = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    labels = np.array([f[0] for f in fields], dtype=np.int8)
    ratings = np.array([f[1] for f in fields], dtype=np.int8)
    rids = np.array([f[2] for f in fields], dtype=np.int32)
    raws = [f[3] for f in fields]
    # Canonical order first (label, id) so the shuffle does not depend on archive order.
    order = np.lexsort((rids, labels))
    order = order[np.random.RandomState(seed).permutation(len(order))]
    starts, ends = offsets[:-1][order], offsets[1:][order]
    new_tokens = (np.concatenate([tokens[a:b] for a, b in zip(starts, ends)])
                  if len(order) else tokens)
    new_offsets = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
    raw_sorted = [raws[i] for i in order]
    text_offsets = np.concatenate([[0], np.cumsum([len(r) for r in raw_sorted])]).astype(np.int64)
    return {
        "tokens": new_tokens.astype(np.int32),
        "offsets": new_offsets,
        "labels": labels[order],
        "ratings": ratings[order],
        "ids": rids[order],
        "text": np.frombuffer(b"".join(raw_sorted), dtype=np.uint8),
        "text_offsets": text_offsets,
        "non_utf8": bad,
    }


def split_summary(arrays: dict) -> dict:
    labels = arrays["labels"]
    return {
        "reviews": int(len(labels)),
        "pos": int((labels == 1).sum()),
        "neg": int((labels == 0).sum()),
        "tokens": int(len(arrays["tokens"])),
    }

