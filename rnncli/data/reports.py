"""What `rnncli data info | decode | lengths | list` report, as plain dicts (the CLI renders
them).

    stats = length_report(load_split(home, "train"), maxlen=80)
    report = info_report(home, source="tickets")    # an imported dataset: counts per label

`source` is a dataset's name: an imported one, or aclimdb / keras; None is the current
IMDB source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnncli.data import store as dataset
from rnncli.errors import DataError, UsageError
from rnncli.text import tokenizer as text

PERCENTILES = (50, 90, 95, 99)


def _percentiles(lengths: np.ndarray) -> dict:
    if len(lengths) == 0:
        return {"min": 0, "mean": 0.0, "max": 0, **{f"p{p}": 0 for p in PERCENTILES}}
    values = np.percentile(lengths, PERCENTILES, method="higher")
    return {
        "min": int(lengths.min()),
        "mean": round(float(lengths.mean()), 1),
        **{f"p{p}": int(v) for p, v in zip(PERCENTILES, values)},
        "max": int(lengths.max()),
    }


def check_num_words(num_words: int | None) -> None:
    if num_words is not None and num_words < text.INDEX_FROM + 1:
        raise UsageError(
            f"--num-words {num_words} leaves no word (ids 0-2 are reserved): use 4 or more."
        )


def info_report(home: Path, num_words: int | None = None, source: str | None = None) -> dict:
    check_num_words(num_words)
    meta = dataset.read_meta(home, source)
    own = dataset.is_own(meta["source"])
    vocab_size = int(meta["vocab_size"])
    top_id = vocab_size + text.INDEX_FROM - 1
    report = {
        "source": meta["source"],
        "origin": meta["origin"],
        "checksum": meta["checksum"],
        "created": meta["created"],
        "tokenizer_version": meta["tokenizer_version"],
        "vocab_size": vocab_size,
        "num_words": num_words,
        "max_id": min(top_id, num_words - 1) if num_words else top_id,
        "non_utf8": meta.get("non_utf8", 0),
        "splits": {},
    }
    if own:  # the IMDB sources' report keeps its fields: scripts read them
        report["labels"] = dataset.labels_of(meta)
        report["skipped"] = meta.get("skipped") or {}
    for name in ("train", "test"):
        split = dataset.load_split(home, name, meta["source"])
        entry = dict(meta["splits"][name])
        if own:
            entry["classes"] = dict(zip(report["labels"], entry["classes"]))
        # "tokens" are the stored words (as `data lengths` counts them); lengths are as the
        # model sees them: the start marker counts there.
        entry["length"] = _percentiles(text.lengths_with_start(split.lengths))
        if num_words:
            entry["oov_share"] = round(float((split.tokens >= num_words).mean()), 4) \
                if len(split.tokens) else 0.0
        report["splits"][name] = entry
    return report


def decode_report(home: Path, index: int, split_name: str = "train",
                  num_words: int | None = None, source: str | None = None) -> dict:
    check_num_words(num_words)
    meta = dataset.read_meta(home, source)
    source = meta["source"]
    split = dataset.load_split(home, split_name, source)
    if not 0 <= index < len(split):
        raise UsageError(
            f"No review {index} in the {split_name} split: use 0 to {len(split) - 1}."
        )
    vocab = dataset.load_vocabulary(home, source)
    ids = [text.START] + split.review(index).tolist()
    if num_words:
        ids = [i if i < num_words else text.OOV for i in ids]
    known = vocab.truncated(num_words) if num_words else vocab
    rating = int(split.ratings[index])
    return {
        "index": index,
        "split": split_name,
        "dataset": source,
        "label": dataset.labels_of(meta)[int(split.labels[index])],
        "rating": rating if rating >= 0 else None,
        # An imported dataset's id is the row of its file (1-based), or the text file's place
        # in its folder.
        "review_id": int(split.ids[index]),
        "num_words": num_words,
        "ids": ids,
        "decoded": known.decode(ids),
        "text": split.text(index),
    }


def length_report(split: dataset.Split, maxlen: int = 80, padding: str = "pre",
                  truncating: str = "pre", bins: int = 20) -> dict:
    if maxlen < 1:
        raise UsageError(f"--maxlen {maxlen} is too small: use 1 or more.")
    for name, side in (("padding", padding), ("truncating", truncating)):
        if side not in text.PADDING_SIDES:
            raise UsageError(f"--{name} {side!r} is not known: use 'pre' or 'post'.")
    words = split.lengths
    lengths = text.lengths_with_start(words)  # as the model reads them
    n = len(lengths)
    # Tokens are the review's words, as `data info` and meta.json count them: the start
    # marker is not one. 'pre' truncation drops the marker before any word, 'post' keeps it.
    total = int(words.sum())
    kept = np.minimum(words, maxlen if truncating == "pre" else maxlen - 1)
    lost = total - int(kept.sum())
    keep = {f"p{p}": int(v) for p, v in
            zip(PERCENTILES, np.percentile(lengths, PERCENTILES, method="higher"))} if n else {}
    top = int(np.percentile(lengths, 99, method="higher")) if n else 1
    edges = np.linspace(0, max(top, maxlen, 1), bins + 1)
    counts, _ = np.histogram(np.minimum(lengths, edges[-1]), bins=edges)
    return {
        "split": split.name,
        "reviews": n,
        "maxlen": maxlen,
        "padding": padding,
        "truncating": truncating,
        "truncated_share": round(float((lengths > maxlen).mean()), 4) if n else 0.0,
        "padded_share": round(float((lengths < maxlen).mean()), 4) if n else 0.0,
        "exact_share": round(float((lengths == maxlen).mean()), 4) if n else 0.0,
        "tokens_total": total,
        "tokens_lost": lost,
        "tokens_lost_share": round(lost / total, 4) if total else 0.0,
        "lost_side": "start" if truncating == "pre" else "end",
        "pad_side": "start" if padding == "pre" else "end",
        "length": _percentiles(lengths),
        "maxlen_to_keep_whole": keep,
        "histogram": {"edges": [int(e) for e in edges], "counts": counts.tolist()},
    }


def list_report(home: Path) -> list[dict]:
    """The imported datasets, then the IMDB sources that are prepared, each with its labels,
    rows per split, vocabulary and origin; the current IMDB source is marked. A dataset
    that cannot be read is listed with the reason."""
    current = dataset.current_source(home)
    names = [*dataset.own_datasets(home),
             *(s for s in dataset.SOURCES if (home / s / "meta.json").exists())]
    rows = []
    for name in names:
        entry = {"name": name, "imported": dataset.is_own(name),
                 "current": name == current}
        try:
            meta = dataset.read_meta(home, name)
        except DataError as exc:
            rows.append({**entry, "problem": str(exc)})
            continue
        labels = dataset.labels_of(meta)
        rows.append({**entry, "labels": labels,
                     "train": meta["splits"]["train"]["reviews"],
                     "test": meta["splits"]["test"]["reviews"],
                     "vocab_size": meta["vocab_size"], "origin": meta["origin"],
                     "created": meta["created"]})
    return rows
