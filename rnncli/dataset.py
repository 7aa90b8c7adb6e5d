"""Prepared datasets: build them from a source, store them compactly, load splits fast.

    meta = prepare_aclimdb(Path("aclImdb_v1.tar.gz"), data_home())
    x, y = load_encoded(load_split(data_home(), "train"), num_words=1000, maxlen=80)

A prepared dataset is a folder `<home>/<source>/` holding `meta.json` and a build folder of
plain `.npy`-in-`.npz` arrays (ids as one flat int32 array plus offsets; no pickle). The
build is written first and `meta.json` is switched to it last, by an atomic rename, so an
interrupted fetch leaves the previous dataset as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnncli import text
from rnncli.archive import SPLITS, Review
from rnncli.errors import DataError, NotPreparedError
from rnncli.fsutil import atomic_write_json, atomic_write_text, read_json

SOURCES = ("aclimdb", "keras")
FORMAT_VERSION = 1
# Keras's imdb.load_data shuffles with seed 113; we do the same, so review N is stable and
# the validation split (the last 20%, as Keras takes it) holds both labels.
SHUFFLE_SEED = 113
_CHUNK = 2000

Step = Callable[[str, int, int | None], None]


def data_home(override: Path | str | None = None) -> Path:
    """`--data-dir`, else $RNNCLI_HOME, else the per-user cache folder."""
    if override:
        return Path(override).expanduser()
    if env := os.environ.get("RNNCLI_HOME"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "rnncli"


@dataclass
class Split:
    """One split of a prepared dataset: ragged ids (no start marker) plus per-review fields."""

    name: str
    tokens: np.ndarray  # int32, all reviews' ids end to end
    offsets: np.ndarray  # int64, review i is tokens[offsets[i]:offsets[i+1]]
    labels: np.ndarray  # int8, 0 negative / 1 positive
    ratings: np.ndarray  # int8 stars, -1 where the source has none
    ids: np.ndarray  # int32 review id within its label folder (or index)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def review(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def sequences(self) -> Iterator[np.ndarray]:
        tokens, offsets = self.tokens, self.offsets
        return (tokens[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1))

    def texts(self, n: int | None = None, start: int = 0) -> list[str] | None:
        """`n` original texts from review `start` (all by default), or None where the
        source kept none."""
        if self.path is None:
            return None
        with np.load(self.path, allow_pickle=False) as z:
            if "text_offsets" not in z.files:
                return None
            blob, offsets = z["text"], z["text_offsets"]
        stop = len(self) if n is None else min(len(self), start + n)
        return [blob[offsets[i]:offsets[i + 1]].tobytes().decode("utf-8", errors="replace")
                for i in range(start, stop)]

    def text(self, i: int) -> str | None:
        """The review's original text, or None where the source kept none."""
        texts = self.texts(1, start=i)
        return texts[0] if texts else None


# ---------------------------------------------------------------- building (one pass, parallel)


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


# ---------------------------------------------------------------- storing and loading


def _source_dir(home: Path, source: str) -> Path:
    return home / source


def current_source(home: Path) -> str | None:
    try:
        name = (home / "current").read_text().strip()
    except OSError:
        return None
    return name if name in SOURCES else None


def read_meta(home: Path, source: str | None = None) -> dict:
    """Metadata of a prepared dataset; raises NotPreparedError when there is none."""
    source = source or current_source(home)
    path = _source_dir(home, source or "aclimdb") / "meta.json"
    if source is None or not path.exists():
        raise NotPreparedError(
            f"No prepared dataset in {home}: run `rnncli data fetch` first."
        )
    try:
        meta = read_json(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"Unreadable {path} ({exc}): run `rnncli data fetch --force`.") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path} is from another rnncli version: run `rnncli data fetch --force`.")
    return meta


def store(home: Path, source: str, splits: dict[str, dict], vocab: text.Vocabulary,
          meta: dict) -> dict:
    """Write a new build, then switch `meta.json` to it; older builds are removed after."""
    folder = _source_dir(home, source)
    folder.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix=f"build-{time.strftime('%Y%m%d-%H%M%S')}-", dir=folder))
    build = target.name
    try:
        for name, arrays in splits.items():
            np.savez(target / f"{name}.npz", **{k: v for k, v in arrays.items()
                                                if isinstance(v, np.ndarray)})
        atomic_write_text(target / "vocab.txt", vocab.to_text())
        meta = {**meta, "build": build, "format_version": FORMAT_VERSION,
                "tokenizer_version": text.TOKENIZER_VERSION, "vocab_size": len(vocab),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_json(folder / "meta.json", meta)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    store_current(home, source)
    for old in folder.glob("build-*"):
        if old.name != build:
            shutil.rmtree(old, ignore_errors=True)
    return meta


def store_current(home: Path, source: str) -> None:
    """Make `source` the dataset that reports and training use by default."""
    if current_source(home) != source:
        atomic_write_text(home / "current", source + "\n")


def load_vocabulary(home: Path, source: str | None = None) -> text.Vocabulary:
    meta = read_meta(home, source)
    path = _source_dir(home, meta["source"]) / meta["build"] / "vocab.txt"
    return text.Vocabulary.from_text(path.read_text(encoding="utf-8"))


def load_split(home: Path, split: str, source: str | None = None) -> Split:
    """Load one split's ids and fields (not its texts, which `Split.text` reads on demand)."""
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}: use 'train' or 'test'.")
    meta = read_meta(home, source)
    path = _source_dir(home, meta["source"]) / meta["build"] / f"{split}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("tokens", "offsets", "labels", "ratings", "ids")}
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"Prepared data at {path} is damaged ({exc}): "
                        "run `rnncli data fetch --force`.") from None
    return Split(name=split, path=path, **arrays)


def load_encoded(split: Split, num_words: int | None, maxlen: int, padding: str = "pre",
                 truncating: str = "pre") -> tuple[np.ndarray, np.ndarray]:
    """The split as a padded int32 matrix and float32 labels, with ids >= num_words as OOV."""
    tokens = split.tokens
    if num_words is not None:
        tokens = np.where(tokens < num_words, tokens, text.OOV).astype(np.int32)
    offsets = split.offsets
    seqs = [tokens[offsets[i] : offsets[i + 1]] for i in range(len(split))]
    x = text.pad_sequences(seqs, maxlen, padding, truncating)
    return x, split.labels.astype(np.float32)
