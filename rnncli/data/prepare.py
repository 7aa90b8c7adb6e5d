"""Turning reviews into a prepared split: tokenize in parallel, rank the vocabulary, assemble.

    tokens = tokenize_reviews(iter_reviews(path))
    vocab = build_vocabulary([(tokens.words, tokens.counts["train"])])
    arrays = assemble(tokens, "train", vocab, seed=SHUFFLE_SEED)

Memory follows what is counted, not only the archive's bytes: workers get chunks of at most
_CHUNK_BYTES of text, and the tokens, distinct words and tokens per review of a build are
capped (MAX_*), so a few MB of compressed "a a a ..." cannot grow a process to gigabytes.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from rnncli.data.archive import LABELS, Review
from rnncli.errors import DataError
from rnncli.system import usable_cores
from rnncli.text import tokenizer as text

# Keras's imdb.load_data shuffles with seed 113; the train split uses it too, so review N
# is stable and the validation split (the last 20%, as Keras takes it) holds both labels.
# The test split uses SHUFFLE_SEED + 1 (see rnncli.fetch).
SHUFFLE_SEED = 113
_CHUNK = 2000  # reviews sent to a worker at once (about 2.6 MB of real reviews)
_CHUNK_BYTES = 4 << 20  # ... or fewer: a worker holds 8-30 bytes per byte of its chunk

# Limits on what tokenizing makes, far above the real corpus (longest review 2,473 tokens;
# 11.5 million tokens and 110,000 distinct words in both splits), so memory stays bounded:
# ids take 4 bytes a token, words about 100 bytes each.
MAX_REVIEW_TOKENS = 100_000
MAX_TOKENS = 50_000_000  # both splits
MAX_WORDS = 2_000_000  # distinct words, both splits
_REFUSE = "refusing it; use the original aclImdb_v1.tar.gz"

Step = Callable[[str, int, int | None], None]


def _tokenize_chunk(job: tuple[str, list[bytes]]) -> tuple:
    """Tokenize reviews with ids local to this chunk; the parent maps them to the build's ids.

    Sending back small int arrays and the chunk's distinct words costs far less than
    sending every token string between processes.
    """
    split, raws = job
    bad = 0
    local: dict[str, int] = {}
    ids: list[np.ndarray] = []
    lengths = np.zeros(len(raws), np.int64)
    for i, raw in enumerate(raws):
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError:
            s = raw.decode("utf-8", errors="replace")
            bad += 1
        words = text.tokenize(s)
        # One review's words at a time: the chunk's tokens are never all strings at once.
        ids.append(np.fromiter((local.setdefault(w, len(local)) for w in words), np.int32,
                               len(words)))
        lengths[i] = len(words)
    flat = np.concatenate(ids) if ids else np.zeros(0, np.int32)
    counts = np.bincount(flat, minlength=len(local)) if len(local) else np.zeros(0, np.int64)
    return split, flat, lengths, list(local), counts, bad


def _chunks(reviews: Iterable[Review], fields: dict) -> Iterator[tuple[str, list[bytes]]]:
    """Batches of one split each, in the order their reviews are recorded in `fields`."""
    batches: dict[str, list[bytes]] = {}
    sizes: dict[str, int] = {}
    for r in reviews:
        fields.setdefault(r.split, []).append((r.label, r.rating, r.id, r.raw))
        batch = batches.setdefault(r.split, [])
        batch.append(r.raw)
        sizes[r.split] = sizes.get(r.split, 0) + len(r.raw)
        if len(batch) == _CHUNK or sizes[r.split] >= _CHUNK_BYTES:
            yield r.split, batch
            batches[r.split], sizes[r.split] = [], 0
    for split, batch in batches.items():
        if batch:
            yield split, batch


def _quiet_worker() -> None:
    """Ctrl-C and SIGTERM reach the whole process group; the parent stops the pool and
    reports once, so a worker ignores them rather than print a traceback each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _pool(workers: int):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    # A ProcessPoolExecutor, not a multiprocessing.Pool: when a worker dies (killed for
    # memory, say) its futures raise BrokenProcessPool, where a Pool waits forever.
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_quiet_worker)


def _in_order(jobs: Iterable, workers: int, stack: contextlib.ExitStack) -> Iterator:
    """_tokenize_chunk over `jobs` in `workers` processes, results in order; at most two jobs
    per worker are waiting, so reading the archive keeps only a little ahead of them."""
    from concurrent.futures.process import BrokenProcessPool

    pool = _pool(workers)
    # On any exit: cancel what has not started; workers finish their chunk (under a second)
    # and exit.
    stack.callback(pool.shutdown, wait=True, cancel_futures=True)
    waiting: collections.deque = collections.deque()
    try:
        for job in jobs:
            waiting.append(pool.submit(_tokenize_chunk, job))
            if len(waiting) >= 2 * workers:
                yield waiting.popleft().result()
        while waiting:
            yield waiting.popleft().result()
    except BrokenProcessPool:
        raise DataError("A tokenizer process ended abruptly (killed, perhaps for lack of "
                        "memory); nothing was stored: free some memory or set "
                        "RNNCLI_WORKERS=1, then run this again.") from None


@dataclass
class Tokenized:
    """A build's reviews, tokenized: per split, review fields (label, rating, id, raw) and
    token ids into `words` in chunks, both in review order; per split, each word's count."""

    fields: dict[str, list] = field(default_factory=dict)
    ids: dict[str, list[np.ndarray]] = field(default_factory=dict)
    lengths: dict[str, list[np.ndarray]] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    non_utf8: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    # How errors name a review (split, its index in the split) and say what to do: an
    # imported dataset names its file's row, not an aclImdb path.
    namer: Callable[[str, int], str] | None = None
    refuse: str = _REFUSE

    def reviews(self, split: str) -> int:
        return sum(len(n) for n in self.lengths.get(split, []))

    def review_name(self, split: str, k: int, where: object) -> str:
        """How an error names review `k` of `split`, which came from `where`."""
        if self.namer is not None:
            return self.namer(split, k)
        label, rating, rid, _ = self.fields[split][k]
        return f"Review 'aclImdb/{split}/{LABELS[label]}/{rid}_{rating}.txt' in {where}"


def _merge(out: Tokenized, index: dict[str, int], counted: dict[str, list], res: tuple,
           where: object) -> None:
    """Add one chunk's result to the build, checking the MAX_* limits as it grows."""
    split, ids, lengths, words, counts, bad = res
    if len(lengths) and lengths.max() > MAX_REVIEW_TOKENS:
        k = out.reviews(split) + int(lengths.argmax())
        raise DataError(f"{out.review_name(split, k, where)} holds "
                        f"{int(lengths.max()):,} tokens, over the limit of "
                        f"{MAX_REVIEW_TOKENS:,} per review: {out.refuse}.")
    out.tokens += len(ids)
    if out.tokens > MAX_TOKENS:
        raise DataError(f"{where} holds more than {MAX_TOKENS:,} tokens: {out.refuse}.")
    # setdefault's default is len(index) before the word is added: the next new id.
    mapping = np.fromiter((index.setdefault(w, len(index)) for w in words), np.int32,
                          len(words))
    if len(index) > MAX_WORDS:
        raise DataError(f"{where} holds more than {MAX_WORDS:,} distinct words: "
                        f"{out.refuse}.")
    out.ids.setdefault(split, []).append(mapping[ids] if len(ids) else ids)
    out.lengths.setdefault(split, []).append(lengths)
    counted.setdefault(split, []).append((mapping, counts))
    out.non_utf8[split] = out.non_utf8.get(split, 0) + bad


def tokenize_reviews(reviews: Iterable[Review], step: Step | None = None,
                     workers: int | None = None, where: object = "the archive",
                     namer: Callable[[str, int], str] | None = None,
                     refuse: str = _REFUSE) -> Tokenized:
    """Tokenize every review across processes; `where` names the source in errors, `namer`
    one review (its split, its index there) and `refuse` the way out of a limit."""
    out = Tokenized(namer=namer, refuse=refuse)
    index: dict[str, int] = {}
    counted: dict[str, list] = {}
    workers = workers or int(os.environ.get("RNNCLI_WORKERS", 0)) or usable_cores()
    chunks = _chunks(reviews, out.fields)
    done = 0
    with contextlib.ExitStack() as stack:
        results = (map(_tokenize_chunk, chunks) if workers == 1
                   else _in_order(chunks, workers, stack))
        for res in results:
            _merge(out, index, counted, res, where)
            done += len(res[2])
            if step:
                step("tokenize", done, None)
    out.words = list(index)
    for split, pairs in counted.items():
        total = np.zeros(len(index), np.int64)
        for mapping, counts in pairs:
            total[mapping] += counts  # a chunk's words are distinct: no index repeats
        out.counts[split] = total
    return out


def build_vocabulary(words_counts: Iterable[tuple[list[str], np.ndarray]]) -> text.Vocabulary:
    """Rank words by train-split frequency; ties broken alphabetically so builds are stable.
    Words counted 0 times (seen in the test split only) are left out."""
    totals: dict[str, int] = {}
    for words, counts in words_counts:
        get = totals.get
        for w, c in zip(words, counts.tolist()):
            if c:
                totals[w] = get(w, 0) + c
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return text.Vocabulary([w for w, _ in ranked])


def assemble(tokenized: Tokenized, split: str, vocab: text.Vocabulary,
             seed: int = SHUFFLE_SEED, label_dtype: type = np.int8,
             movies: dict | None = None) -> dict:
    """One split's arrays: vocabulary ids, offsets, fields and texts, in the stored (shuffled)
    order. `label_dtype`: int16 for an imported dataset, which may have over 127 labels.
    `movies` (archive.iter_reviews fills it): each review's movie is stored too ("movies",
    -1 where unknown), so that validation can hold out whole movies."""
    index = vocab.index
    words = tokenized.words
    mapping = np.fromiter((index.get(w, text.OOV) for w in words), np.int32, len(words))
    parts = tokenized.ids.get(split, [])
    tokens = mapping[np.concatenate(parts)] if parts else np.zeros(0, np.int32)
    lengths = tokenized.lengths.get(split, [])
    lens = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    fields = tokenized.fields.get(split, [])
    labels = np.array([f[0] for f in fields], dtype=label_dtype)
    ratings = np.array([f[1] for f in fields], dtype=np.int8)
    rids = np.array([f[2] for f in fields], dtype=np.int32)
    raws = [f[3] for f in fields]
    found = {label: ids for (s, label), ids in (movies or {}).items() if s == split}
    movie = np.array([found[f[0]][f[2]] if f[2] < len(found.get(f[0], ())) else -1
                      for f in fields], dtype=np.int32)
    # Canonical order first (label, id) so the shuffle does not depend on archive order.
    order = np.lexsort((rids, labels))
    order = order[np.random.RandomState(seed).permutation(len(order))]
    starts, ends = offsets[:-1][order], offsets[1:][order]
    new_tokens = (np.concatenate([tokens[a:b] for a, b in zip(starts, ends)])
                  if len(order) else tokens)
    del tokens  # one copy of a split's ids at a time
    new_offsets = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
    raw_sorted = [raws[i] for i in order]
    text_offsets = np.concatenate([[0], np.cumsum([len(r) for r in raw_sorted])]).astype(np.int64)
    return {
        "tokens": new_tokens.astype(np.int32, copy=False),
        "offsets": new_offsets,
        "labels": labels[order],
        "ratings": ratings[order],
        "ids": rids[order],
        "movies": movie[order],
        "text": np.frombuffer(b"".join(raw_sorted), dtype=np.uint8),
        "text_offsets": text_offsets,
        "non_utf8": tokenized.non_utf8.get(split, 0),
    }


def class_summary(arrays: dict, classes: int) -> dict:
    """An imported dataset's split counts: reviews per label index instead of pos/neg."""
    labels = arrays["labels"]
    return {
        "reviews": int(len(labels)),
        "tokens": int(len(arrays["tokens"])),
        "classes": np.bincount(labels.astype(np.int64), minlength=classes).tolist(),
    }


def split_summary(arrays: dict) -> dict:
    labels = arrays["labels"]
    return {
        "reviews": int(len(labels)),
        "pos": int((labels == 1).sum()),
        "neg": int((labels == 0).sum()),
        "tokens": int(len(arrays["tokens"])),
    }

