"""What a model needs to turn raw text into its input: carried by every saved model.

    prep = Preprocessing.from_dict(json.load(open("artifacts/preprocessing.json")))
    ids, known = prep.encode(["a great film"])

Saved as `preprocessing.json` beside a Keras model and inside an ONNX file's
metadata_props, so `predict` and `evaluate` need nothing else. numpy only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from rnncli import text
from rnncli.errors import ModelError

LABELS = ("negative", "positive")


@dataclass
class Preprocessing:
    vocabulary: list[str]  # words by rank; the first has id 3
    num_words: int
    maxlen: int
    padding: str = "pre"
    truncating: str = "pre"
    tokenizer_version: str = text.TOKENIZER_VERSION
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    threshold: float = 0.5
    source: str = ""  # dataset the vocabulary came from
    # The graph also takes reviews padded only to the longest in the call (pre padding);
    # see rnncli.onnx_graph.pad_states.
    trim_padding: bool = False

    def __post_init__(self) -> None:
        self._vocab = text.Vocabulary(self.vocabulary)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        try:
            prep = cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except TypeError as exc:
            raise ModelError(f"Model preprocessing metadata is incomplete ({exc}).") from None
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
    def from_metadata(cls, props: dict[str, str]) -> Preprocessing:
        d = {}
        for key, value in props.items():
            if key.startswith("rnncli."):
                name = key[len("rnncli."):]
                kind = cls.__dataclass_fields__.get(name)
                if kind is None:
                    continue
                d[name] = value if kind.type == "str" else json.loads(value)
        return cls.from_dict(d)

    def encode_one(self, review: str) -> tuple[list[int], int]:
        """Ids of one review (no start marker) and how many of its words the model knows."""
        ids = self._vocab.encode(text.tokenize(review), self.num_words)
        return ids, sum(1 for i in ids if i != text.OOV)

    def encode(self, reviews: Sequence[str],
               trim: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """A padded int32 matrix for `reviews` and the known-word count of each.

        With `trim`, rows are padded to the longest review in the call (start marker
        included) instead of maxlen; only for models with trim_padding.
        """
        encoded = [self.encode_one(r) for r in reviews]
        width = self.maxlen
        if trim and encoded:
            width = min(self.maxlen, 1 + max(len(e[0]) for e in encoded))
        x = text.pad_sequences([e[0] for e in encoded], width, self.padding, self.truncating)
        return x, np.array([e[1] for e in encoded], dtype=np.int64)
