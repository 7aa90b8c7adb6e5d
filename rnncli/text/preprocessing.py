"""What a model needs to turn raw text into its input: carried by every saved model.

    prep = Preprocessing.from_dict(json.load(open("artifacts/preprocessing.json")))
    ids, known = prep.encode(["a great film"])

Saved as `preprocessing.json` beside a Keras model and inside an ONNX file's
metadata_props, so `predict` and `evaluate` need nothing else. numpy only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from rnncli.errors import ModelError
from rnncli.text import tokenizer as text

LABELS = ("negative", "positive")
MAX_MAXLEN = 100_000  # far above any useful review length; bounds what a file can make us allocate
MAX_LABEL = 100
MAX_CLASSES = 1000  # the same bound as an imported dataset's (data/store.py)
FEW = 8  # up to this many reviews, encode() takes them one by one

RETRAIN = "retrain it with `rnncli train`"
REEXPORT = "re-export it with `rnncli export onnx`"


@dataclass
class Preprocessing:
    vocabulary: list[str]  # words by rank; the first has id 3
    num_words: int
    maxlen: int
    padding: str = "pre"
    truncating: str = "pre"
    tokenizer_version: str = text.TOKENIZER_VERSION
    # Label names by the model's output index: two (binary: one probability, of the second)
    # or more (one probability per label, softmax).
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    threshold: float = 0.5  # binary models only
    source: str = ""  # dataset the vocabulary came from
    # The graph also takes reviews padded only to the longest in the call (pre padding);
    # see rnncli.export.graph.pad_states.
    trim_padding: bool = False

    def __post_init__(self) -> None:
        self._vocab = text.Vocabulary(self.vocabulary)

    @property
    def classes(self) -> int:
        """How many labels the model tells apart: 2 is a binary model."""
        return len(self.labels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "Model preprocessing", remedy: str = RETRAIN,
                  key_prefix: str = "") -> Preprocessing:
        """Checked values from a saved model: a model file is untrusted input."""
        if not isinstance(d, dict):
            raise ModelError(f"{where} is not a mapping: {remedy}.")
        missing = [key_prefix + k for k in ("vocabulary", "num_words", "maxlen") if k not in d]
        if missing:
            raise ModelError(f"{where} lacks {', '.join(missing)}: {remedy}.")
        values = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        problem = _problem(values)
        if problem:
            raise ModelError(f"{where}: {key_prefix}{problem}: {remedy}.")
        if "labels" in values:
            values["labels"] = [_printable(label) for label in values["labels"]]
        prep = cls(**values)
        if prep.tokenizer_version != text.TOKENIZER_VERSION:
            raise ModelError(
                f"Model was made with tokenizer version {prep.tokenizer_version}, this rnncli "
                f"has {text.TOKENIZER_VERSION}: retrain it or use a matching rnncli."
            )
        return prep

    def to_metadata(self) -> dict[str, str]:
        """String key/values for ONNX metadata_props."""
        d = self.to_dict()
        return {f"rnncli.{k}": json.dumps(v) if not isinstance(v, str) else v
                for k, v in d.items()}

    @classmethod
    def from_metadata(cls, props: dict[str, str], where: str = "Model") -> Preprocessing:
        """The preprocessing in an ONNX file's metadata_props; `where` names the file."""
        d = {}
        for key, value in props.items():
            if key.startswith("rnncli."):
                name = key[len("rnncli."):]
                kind = cls.__dataclass_fields__.get(name)
                if kind is None:
                    continue
                if kind.type == "str":
                    d[name] = value
                    continue
                try:
                    d[name] = json.loads(value)
                except ValueError:
                    raise ModelError(f"{where} metadata: {key} is not JSON: {REEXPORT}.") from None
        return cls.from_dict(d, f"{where} metadata", REEXPORT, "rnncli.")

    def read_words(self) -> int:
        """How many of a long review's ids the model reads: the last maxlen ('pre'
        truncation) or the first maxlen - 1, after the start marker ('post')."""
        return self.maxlen if self.truncating == "pre" else self.maxlen - 1

    def encode_flat(self, reviews: Sequence[str]) -> Encoded:
        """Ids of `reviews` (no start marker), one review after another: of a long review
        only the ids the model reads, found by tokenizing only that end of its text."""
        need = self.read_words()
        texts, cut = list(reviews), []
        limit = need * text.CHARS_PER_WORD
        for i, review in enumerate(texts):
            if len(review) > limit:
                part = text.readable_part(review, need, self.truncating)
                if part is not None:
                    texts[i] = part
                    cut.append(i)
        ids, lengths = self._vocab.encode_many(texts, self.num_words)
        few = [i for i in cut if lengths[i] < need]
        if few:  # an unusually wordy end: tokenize those reviews whole
            segments = np.split(ids, np.cumsum(lengths)[:-1])
            redo_ids, redo_lengths = self._vocab.encode_many([reviews[i] for i in few],
                                                             self.num_words)
            for i, seg in zip(few, np.split(redo_ids, np.cumsum(redo_lengths)[:-1])):
                segments[i] = seg
            ids = np.concatenate(segments)
            lengths = np.array([len(seg) for seg in segments], np.int64)
        return Encoded(ids, lengths, self._known(ids, lengths))

    def _known(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Per review, how many of the ids the model reads are in its vocabulary."""
        counted = np.concatenate([[0], np.cumsum(ids != text.OOV)])
        ends = np.cumsum(lengths)
        read = np.minimum(lengths, self.read_words())
        if self.truncating == "pre":
            return counted[ends] - counted[ends - read]
        starts = ends - lengths
        return counted[starts + read] - counted[starts]

    def pad(self, encoded: Encoded, rows: np.ndarray | slice, width: int) -> np.ndarray:
        """Rows of `encoded` as the model's input: start marker, padded/truncated to width."""
        return text.pad_segments(encoded.ids, encoded.starts[rows], encoded.lengths[rows],
                                 width, self.padding, self.truncating)

    def encode_one(self, review: str) -> tuple[list[int], int]:
        """Ids of one review (no start marker) and how many of those the model reads it knows."""
        ids = self._vocab.encode(text.tokenize(review), self.num_words)
        n = self.read_words()
        read = ids if len(ids) <= n else ids[-n:] if self.truncating == "pre" else ids[:n]
        return ids, len(read) - read.count(text.OOV)

    def encode(self, reviews: Sequence[str],
               trim: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """A padded int32 matrix for `reviews` and the known-word count of each.

        With `trim`, rows are padded to the longest review in the call (start marker
        included) instead of maxlen; only for models with trim_padding.
        """
        if len(reviews) > FEW:
            enc = self.encode_flat(reviews)
            width = min(self.maxlen, 1 + int(enc.lengths.max())) if trim else self.maxlen
            return self.pad(enc, slice(None), width), enc.known
        # A few reviews one by one: less fixed cost than the batch path (the latency path).
        encoded = [self.encode_one(r) for r in reviews]
        seqs = [e[0] for e in encoded]
        known = np.array([e[1] for e in encoded], dtype=np.int64)
        longest = max(map(len, seqs), default=0)
        if trim and longest < self.maxlen:
            # Nothing to truncate: rows built as lists cost a few numpy calls less, which is
            # a tenth of a short review's latency.
            pre = self.padding == "pre"
            rows = [[text.PAD] * (longest - len(s)) + [text.START, *s] if pre
                    else [text.START, *s] + [text.PAD] * (longest - len(s)) for s in seqs]
            return np.array(rows, dtype=np.int32).reshape(len(seqs), longest + 1), known
        width = min(self.maxlen, 1 + longest) if trim else self.maxlen
        return text.pad_sequences(seqs, width, self.padding, self.truncating), known


@dataclass
class Encoded:
    """Reviews as ids, back to back: review i is ids[starts[i]:starts[i] + lengths[i]]."""

    ids: np.ndarray  # int32, no start marker
    lengths: np.ndarray  # int64
    known: np.ndarray  # int64, ids of the review that are not out-of-vocabulary

    @property
    def starts(self) -> np.ndarray:
        return np.cumsum(self.lengths) - self.lengths


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _problem(v: dict) -> str | None:
    """What is wrong with these preprocessing values, if anything."""
    vocab = v.get("vocabulary")
    if not isinstance(vocab, list) or not set(map(type, vocab)) <= {str}:
        return "vocabulary is not a list of words"
    for name, low, high in (("num_words", 1, None), ("maxlen", 1, MAX_MAXLEN)):
        n = v.get(name)
        if not _is_int(n) or n < low or (high is not None and n > high):
            bound = f"{low} to {high:,}" if high else f"{low} or more"
            return f"{name} is {n!r}, not an integer {bound}"
    for name in ("padding", "truncating"):
        if v.get(name, "pre") not in text.PADDING_SIDES:
            return f"{name} is {v[name]!r}, not 'pre' or 'post'"
    for name in ("tokenizer_version", "source"):
        if not isinstance(v.get(name, ""), str):
            return f"{name} is not a string"
    labels = v.get("labels", list(LABELS))
    if (not isinstance(labels, list) or not 2 <= len(labels) <= MAX_CLASSES
            or not all(isinstance(x, str) and 0 < len(_printable(x)) <= MAX_LABEL
                       for x in labels)
            or len({_printable(x) for x in labels}) != len(labels)):
        return (f"labels are not 2 to {MAX_CLASSES:,} distinct names of 1 to {MAX_LABEL} "
                "characters")
    t = v.get("threshold", 0.5)
    if not (isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
            and 0 <= t <= 1):
        return f"threshold is {t!r}, not a number from 0 to 1"
    if not isinstance(v.get("trim_padding", False), bool):
        return "trim_padding is not true or false"
    return None


def _printable(label: str) -> str:
    """The label without control or format characters: no escape sequence reaches a terminal."""
    return "".join(c for c in label if c.isprintable())
