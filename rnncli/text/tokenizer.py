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
from itertools import repeat

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


def _normalized(text: str) -> str:
    # Chained str.replace is ~50x faster than str.translate on these texts.
    return (text.lower().replace("_", " ").replace("\u2019", "'").replace("\u2018", "'")
            .replace("`", "'"))


def tokenize(text: str) -> list[str]:
    """Lower-cased words of `text`, markup such as `<br />` removed, punctuation dropped.

    The definition of a token. `tokenize_many` is the same function over many texts at once.
    """
    text = _normalized(text)
    if "<" in text:
        text = _MARKUP.sub(" ", text)
    return _WORD.findall(text)


# ---------------------------------------------------------------- many texts at once
#
# tokenize_many(texts) == [tokenize(t) for t in texts], found over one joined string with
# bytes.translate and str.split: about half the CPU of tokenize() per review on IMDB texts.
# Why each step keeps every text's words:
# 1. Texts are joined with " NUL " (a NUL inside a text is first made \x01, which plays the
#    same part: neither word, apostrophe nor markup character). Spaces and NUL are word
#    separators, so no word crosses a join.
# 2. lower() and the replacements map characters one by one, except capital sigma, whose
#    final form looks at cased neighbours; space and NUL are neither cased nor
#    case-ignorable, so they end that look-around exactly as a string end does.
# 3. Markup: the batch pattern cannot cross a NUL, and inside a text it matches as _MARKUP.
# 4. An apostrophe is inside a match of _WORD exactly when a word character is on each side
#    of it (the greedy match extends over every such one and over no other). So the words
#    are the maximal runs of word characters and those apostrophes; blanking the other
#    apostrophes and every non-ASCII non-word character changes no word.
# 5. What is left: ASCII word characters (after lower() and "_" -> " ", exactly [a-z0-9]),
#    non-ASCII word characters (whose UTF-8 bytes are all >= 0x80), kept apostrophes, NUL,
#    and ASCII separators. Blanking the separators' bytes leaves the words as the
#    whitespace-separated runs, and the texts' ends as NUL tokens.

SEP = "\x00"  # ends each text's tokens in a joined batch
_CHUNK = 1024  # texts joined at once
_JOIN = " \x00 "
_BATCH_MARKUP = re.compile(r"<[^>\x00]*>")
_NON_ASCII_NON_WORD = re.compile(r"[^\x00-\x7f\w]+")
_LONE_APOSTROPHE = re.compile(r"'(?:(?<!\w')|(?!\w))")
_KEEP = bytes(c if c >= 0x80 or chr(c) in "abcdefghijklmnopqrstuvwxyz0123456789'\x00" else 32
              for c in range(256))


def _marked_tokens(texts: Sequence[str]) -> list[str]:
    """The tokens of all `texts`, each text's followed by SEP."""
    s = _JOIN.join(texts) + _JOIN
    if s.count(SEP) != len(texts):
        s = _JOIN.join([t.replace(SEP, "\x01") for t in texts]) + _JOIN
    s = _normalized(s)
    if "<" in s:
        s = _BATCH_MARKUP.sub(" ", s)
    if not s.isascii():
        s = _NON_ASCII_NON_WORD.sub(" ", s)
    if "'" in s:
        s = _LONE_APOSTROPHE.sub(" ", s)
    return s.encode("utf-8").translate(_KEEP).decode("utf-8").split()


def take_segments(flat: np.ndarray, lengths: np.ndarray,
                  order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The segments of `flat` (consecutive, of `lengths`) rearranged in `order`."""
    starts = np.cumsum(lengths) - lengths
    lengths = lengths[order]
    shift = np.repeat(starts[order] - (np.cumsum(lengths) - lengths), lengths)
    return flat[np.arange(len(shift)) + shift], lengths


def tokenize_many(texts: Sequence[str]) -> list[list[str]]:
    """[tokenize(t) for t in texts], in about half the time on large batches."""
    out: list[list[str]] = []
    words: list[str] = []
    for w in _marked_tokens(texts):
        if w == SEP:
            out.append(words)
            words = []
        else:
            words.append(w)
    return out


# ---------------------------------------------------------------- the part a model reads
#
# A model reads only the last maxlen ids of a longer review ('pre' truncation) or its first
# ones ('post'), so only that end of a long text needs tokenizing. A text is cut at an ASCII
# space that no markup tag spans: no token crosses a space, markup matches on either side
# are the same as in the whole text (the pattern has no look-around and cannot start before
# the cut and end after it), and lower-casing's one context rule (final sigma) stops at a
# space as at the string's end. So the part's tokens are exactly the whole text's tokens at
# that end, as long as there are enough of them (the caller checks the count).

# A part holds this many characters per word needed: IMDB reviews average under 6, and at 8
# none of the first 10,000 test reviews fell short of 80 words (at 6, one in six did).
CHARS_PER_WORD = 8
_CUT_TRIES = 8  # spaces tried before giving up and tokenizing the whole text


def readable_part(review: str, words: int, side: str) -> str | None:
    """About `words` x CHARS_PER_WORD characters at the end of `review` a model reads ('pre':
    the end, 'post': the start), cut where its tokens are the whole review's tokens there;
    None when the review is not longer than that or no safe cut is near."""
    size = words * CHARS_PER_WORD
    if words < 1 or len(review) <= size:
        return None
    at = len(review) - size if side == "pre" else size
    for _ in range(_CUT_TRIES):
        q = review.find(" ", at)
        if q < 0:
            return None
        opened = review.rfind("<", 0, q)
        if opened < 0 or review.rfind(">", opened, q) >= 0:
            return review[q:] if side == "pre" else review[:q]
        at = q + 1
    return None


class Vocabulary:
    """Words ranked by frequency; the word at rank r (1-based) has id r + 2 (INDEX_FROM - 1 + r)."""

    def __init__(self, words: Sequence[str]):
        self.words = list(words)
        self.index = dict(zip(self.words, range(INDEX_FROM, INDEX_FROM + len(self.words))))
        self._lookups: dict[int | None, dict[str, int]] = {}

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

    def encode_many(self, texts: Sequence[str],
                    num_words: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All ids of `texts`, one int32 array, and each text's number of ids: the same ids
        as self.encode(tokenize(t), num_words) for each text, in order."""
        if len(texts) > _CHUNK:
            # Chunks keep the joined strings and token lists small enough to reuse freed
            # memory; one large batch makes the kernel map fresh pages (measured +15% CPU).
            parts = [self.encode_many(texts[i : i + _CHUNK], num_words)
                     for i in range(0, len(texts), _CHUNK)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        lookup = self._lookup(num_words)

        def encode_group(group: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
            tokens = _marked_tokens(group)
            ids = np.fromiter(map(lookup.get, tokens, repeat(OOV)), np.int32, len(tokens))
            ends = np.flatnonzero(ids < 0)
            return ids[ids >= 0], np.diff(ends, prepend=-1) - 1

        # One non-ASCII character makes every string operation on the joined batch slower
        # (wider characters): ASCII texts go apart, then back into input order.
        plain = [i for i, t in enumerate(texts) if t.isascii()]
        if len(plain) in (0, len(texts)):
            return encode_group(texts)
        other = [i for i, t in enumerate(texts) if not t.isascii()]
        parts = [encode_group([texts[i] for i in rows]) for rows in (plain, other)]
        return take_segments(np.concatenate([p[0] for p in parts]),
                             np.concatenate([p[1] for p in parts]),
                             np.argsort(np.array(plain + other)))

    def _lookup(self, num_words: int | None) -> dict[str, int]:
        """Word -> id for the ids below num_words, and SEP -> -1; built once per num_words."""
        if num_words not in self._lookups:
            lookup = {w: i for w, i in self.index.items() if num_words is None or i < num_words}
            lookup[SEP] = -1
            self._lookups[num_words] = lookup
        return self._lookups[num_words]

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


def pad_segments(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, maxlen: int,
                 padding: str = "pre", truncating: str = "pre") -> np.ndarray:
    """pad_sequences (start marker included) of the rows flat[starts[i]:starts[i] + lengths[i]],
    in a few numpy operations instead of a Python loop over rows."""
    check_padding("padding", padding)
    check_padding("truncating", truncating)
    lengths = np.asarray(lengths, np.int64)
    out = np.zeros((len(lengths), maxlen), dtype=np.int32)
    full = lengths + 1  # with the start marker
    keep = np.minimum(full, maxlen)
    skip = full - keep if truncating == "pre" else np.zeros_like(keep)  # dropped from the front
    first_col = maxlen - keep if padding == "pre" else np.zeros_like(keep)
    step = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)
    rows = np.repeat(np.arange(len(lengths)), keep)
    pos = np.repeat(skip, keep) + step  # position in [START] + ids
    values = np.full(len(pos), START, np.int32)
    body = pos > 0
    values[body] = flat[np.repeat(np.asarray(starts, np.int64) - 1, keep)[body] + pos[body]]
    out[rows, np.repeat(first_col, keep) + step] = values
    return out


def lengths_with_start(lengths: np.ndarray) -> np.ndarray:
    """Sequence lengths as the model sees them: the start marker counts as a token."""
    return np.asarray(lengths) + 1
