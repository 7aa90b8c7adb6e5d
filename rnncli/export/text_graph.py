"""rnncli/text.py as ONNX operators: a graph that takes review text instead of ids.

    proto = build_text_graph(onnx.load("model.onnx"))   # input "text" [batch], string

The id graph (input "ids") is kept whole; in front of it, standard operators every
onnxruntime build has do what `Preprocessing.encode` does:

- com.microsoft.Tokenizer finds, on the original text, markup (`<[^>]*>`) and words
  (`\\w+(?:'\\w+)*` with Python's own `\\w`, written out as ranges: RE2's `\\w` is ASCII
  only and its `\\pL`/`\\pN` follow a newer Unicode than Python's `str.isalnum`).
- StringNormalizer lower-cases each token (locale C.UTF-8: the C locale is ASCII only,
  and en_US.UTF-8 is missing from most containers).
- ai.onnx.ml.LabelEncoder looks words up (out-of-vocabulary and num_words in one table);
  its keys hold every spelling of an apostrophe (', U+2019, U+2018, `), since no core
  operator replaces characters. OOV tokens that start with '<' are markup and dropped.
- numeric operators add the start marker, pad and truncate to maxlen ('pre'/'post'), and
  with trim_padding feed only as many steps as the longest review needs.
- onnx has no schema for com.microsoft's Tokenizer: the graph declares its outputs' type
  and rank (declared_types), so onnx's checker and shape inference type every value.
  full_check (end of this file) runs those checks on every file an export writes.

Matching Python where lower-casing and splitting disagree, with no replace operator:
- Python lower-cases U+0130 (I with dot) to "i" + U+0307, and U+0307 is not `\\w`: the
  word ends there. The pattern ends a word after U+0130 and C.UTF-8 lowers it to "i".
- Python's capital sigma becomes final sigma by context; C.UTF-8 always gives "σ". Only
  a vocabulary holding σ or ς can tell them apart; text_export adds such words to its
  validation reviews, so an export for that vocabulary fails rather than drifts.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from rnncli.export.graph import HYBRID_SMALL_BATCH
from rnncli.export.ops import GraphBuilder
from rnncli.serve import contract
from rnncli.serve.contract import (
    INPUT,
    KNOWN_OUTPUT,
    LABEL_OUTPUT,
    LABELS_OUTPUT,
    OUTPUT,
    TEXT_INPUT,
)
from rnncli.text import tokenizer as text
from rnncli.text.preprocessing import Preprocessing

LOCALE = "C.UTF-8"
APOSTROPHES = "'\u2019\u2018`"  # what tokenize() turns into "'"
DOTTED_CAPITAL_I = "\u0130"
MIN_OPSET = 15  # Shape with start and end
_DROP = -1  # LabelEncoder value for tokens that are not words (padding, markup)
# Element type and rank of the outputs of each operator outside the standard domains: onnx
# knows no schema for them, and a value it cannot type crashes its shape inference further
# on (onnx 1.23 segfaults at the LabelEncoder fed from a Tokenizer; see declared_types).
CUSTOM_OUTPUTS = {("com.microsoft", "Tokenizer"): ("STRING", 2)}  # [rows, tokens]


def _code(ch: str) -> str:
    return f"\\x{{{ord(ch):x}}}"


@functools.lru_cache(maxsize=1)
def word_class() -> str:
    """An RE2 character class of what Python's `\\w` matches, less "_" (tokenize() turns it
    into a space) and U+0130 (see the module docstring), for this Python's Unicode."""
    ranges, start = [], None
    for cp in range(0x110001):
        inside = cp < 0x110000 and chr(cp).isalnum() and chr(cp) != DOTTED_CAPITAL_I
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            ranges.append(_code(chr(start)) + ("-" + _code(chr(cp - 1)) if cp - 1 > start else ""))
            start = None
    return "[" + "".join(ranges) + "]"


def token_pattern() -> str:
    """Markup, or a word: runs of word characters joined by single apostrophes, where a
    run may end in U+0130 and then ends the word. The Tokenizer runs RE2 leftmost-longest,
    Python's re leftmost-first with greedy repeats: on this pattern both take the longest
    match at each start, so they find the same tokens."""
    w, a = word_class(), "[" + "".join(_code(c) for c in APOSTROPHES) + "]"
    return f"<[^>]*>|(?:{w}+{a})*(?:{w}+|{w}*{_code(DOTTED_CAPITAL_I)})"


def vocabulary_keys(prep: Preprocessing) -> tuple[list[str], list[int]]:
    """(keys, ids) for the lookup: the words below num_words, each apostrophe in every
    spelling tokenize() folds into "'"."""
    keys, ids = [], []
    for word, i in text.Vocabulary(prep.vocabulary).truncated(prep.num_words).index.items():
        parts = word.split("'")
        for marks in itertools.product(APOSTROPHES, repeat=len(parts) - 1):
            keys.append(parts[0] + "".join(m + p for m, p in zip(marks, parts[1:])))
            ids.append(i)
    return keys, ids


class _TextGraph(GraphBuilder):
    """Node and constant names under "text/", apart from the id graph's."""

    def __init__(self):
        super().__init__(MIN_OPSET, "text/")

    def k(self, name: str, value) -> str:
        """A constant: strings as a string tensor, numbers as int64 unless given typed."""
        if isinstance(value, np.ndarray):
            arr = value
        elif isinstance(np.ravel(value)[0], str):
            arr = np.array(value, dtype=object)
        else:
            arr = np.array(value, np.int64)
        return self.const("text/" + name, arr)

    def column(self, like: str, value, name: str) -> str:
        """A [rows of `like`, 1] column filled with `value` (a 1x1 list)."""
        rows = self.one("Shape", [like], name + "_rows", start=0, end=1)
        shape = self.one("Concat", [rows, self.k("one_1d", [1])], name + "_shape", axis=0)
        return self.one("Expand", [self.k(name + "_value", value), shape], name)


def _tokens(g: _TextGraph) -> str:
    """[N, T + 1] tokens of each review (original case), "" after its last token."""
    toks = g.one("Tokenizer", [TEXT_INPUT], "tokenize", domain="com.microsoft", mark=0,
                 pad_value="", mincharnum=1, tokenexp=token_pattern())
    # One extra empty column keeps the width >= 1 when no review has a word.
    return g.one("Concat", [toks, g.column(TEXT_INPUT, [[""]], "blank")], "tokens", axis=1)


def _lookup(g: _TextGraph, tokens: str, prep: Preprocessing) -> str:
    """[N, T + 1] int64: a word's id, OOV, or _DROP for padding and markup."""
    low = g.one("StringNormalizer", [g.one("Reshape", [tokens, g.k("flat", [-1])], "flat")],
                "lower", case_change_action="LOWER", is_case_sensitive=1, locale=LOCALE)
    keys, ids = vocabulary_keys(prep)
    found = g.one("LabelEncoder", [low], "vocabulary", domain="ai.onnx.ml",
                  keys_strings=keys + [""], values_int64s=ids + [_DROP],
                  default_int64=text.OOV)
    # Markup is never a vocabulary word: only OOV tokens are checked for a leading '<'.
    is_oov = g.one("Equal", [found, g.k("oov", text.OOV)], "is_oov")
    oov_at = g.one("Reshape", [g.one("NonZero", [is_oov], "oov_where"), g.k("flat", [-1])],
                   "oov_at")
    # A trailing "" keeps the Tokenizer's input non-empty; its output is [K + 1, 0 or 1].
    oov = g.one("Concat", [g.one("Gather", [low, oov_at], "oov_tokens"), g.k("blank_1d", [""])],
                "oov_tokens_1", axis=0)
    lt = g.one("Tokenizer", [oov], "leading_lt", domain="com.microsoft", mark=0,
               pad_value="", mincharnum=1, tokenexp="^<")
    lt = g.one("Concat", [lt, g.column(oov, [[""]], "lt_blank")], "leading_lt_1", axis=1)
    first = g.one("Gather", [lt, g.k("zero", 0)], "leading_lt_first", axis=1)
    mapped = g.one("LabelEncoder", [first], "markup", domain="ai.onnx.ml",
                   keys_strings=["<"], values_int64s=[_DROP], default_int64=text.OOV)
    mapped = g.one("Slice", [mapped, g.k("zero_1d", [0]), g.k("minus_1d", [-1])], "markup_k")
    fixed = g.one("ScatterElements", [found, oov_at, mapped], "drop_markup", axis=0)
    return g.one("Reshape", [fixed, g.one("Shape", [tokens], "tokens_shape")], "token_ids")


def _width(g: _TextGraph, length: str, prep: Preprocessing, trim_small_only: bool) -> str:
    """Steps fed to the id graph: maxlen, or with trim_padding the longest review's."""
    m = g.k("maxlen", prep.maxlen)
    if not prep.trim_padding:
        return m
    width = g.one("Min", [m, g.one("ReduceMax", [length], "longest", keepdims=0)], "trimmed")
    if not trim_small_only:
        return width
    # A hybrid graph runs large full-length batches fastest (as predict_texts feeds it).
    batch = g.one("Shape", [TEXT_INPUT], "batch_size", start=0, end=1)
    large = g.one("Greater", [g.one("Squeeze", [batch], "batch"),
                              g.k("small", HYBRID_SMALL_BATCH)], "is_large")
    return g.one("Where", [large, m, width], "width")


def _place(g: _TextGraph, ids: str, prep: Preprocessing, trim_small_only: bool) -> str:
    """[N, width] int32 model input: start marker + word ids, padded and truncated the way
    text.pad_sequences does it."""
    keep = g.one("Cast", [g.one("Greater", [ids, g.k("drop", _DROP)], "is_word")], "keep",
                 to=7)
    ones = g.column(TEXT_INPUT, [[text.START]], "start_column")
    seq = g.one("Concat", [ones, ids], "with_start", axis=1)  # index 0: the start marker
    kept = g.one("Concat", [ones, keep], "kept", axis=1)
    j = g.one("Sub", [g.one("CumSum", [kept, g.k("one", 1)], "cumsum"), g.k("one", 1)], "j")
    length = g.one("ReduceSum", [kept, g.k("one_1d", [1])], "length", keepdims=1)  # [N, 1]
    width = _width(g, length, prep, trim_small_only)
    gap = g.one("Sub", [width, length], "gap")  # < 0: the review is truncated
    pre_pad, pre_cut = prep.padding == "pre", prep.truncating == "pre"
    if pre_pad and pre_cut:
        offset = gap
    elif pre_pad:  # only a review that fits is shifted right
        offset = g.one("Max", [gap, g.k("zero", 0)], "offset")
    elif pre_cut:  # only a review that does not fit loses its head
        offset = g.one("Min", [gap, g.k("zero", 0)], "offset")
    else:
        offset = g.k("zero", 0)
    pos = g.one("Add", [j, offset], "position")
    in_row = g.one("And", [g.one("GreaterOrEqual", [pos, g.k("zero", 0)], "ge0"),
                           g.one("Less", [pos, width], "lt_width")], "in_row")
    placed = g.one("And", [g.one("Cast", [kept], "kept_bool", to=9), in_row], "placed")
    # Whatever is not placed goes, as 0, to one extra column that is cut off afterwards.
    target = g.one("Where", [placed, pos, width], "target")
    value = g.one("Where", [placed, seq, g.k("zero", 0)], "value")
    width_1d = g.one("Reshape", [width, g.k("one_1d", [1])], "width_1d")
    shape = g.one("Concat", [g.one("Shape", [TEXT_INPUT], "rows"),
                             g.one("Add", [width_1d, g.k("one_1d", [1])], "width_1")],
                  "canvas_shape", axis=0)
    canvas = g.one("ConstantOfShape", [shape], "canvas", value=_int64_tensor(0))
    scattered = g.one("ScatterElements", [canvas, target, value], "scatter", axis=1)
    cut = g.one("Slice", [scattered, g.k("zero_1d", [0]), width_1d, g.k("one_1d", [1])], "cut")
    return g.one("Cast", [cut], "ids_int32", to=6)


def _label(g: _TextGraph, prep: Preprocessing) -> str:
    """[N] the label predict would print: from the model's own threshold, or for K > 2
    labels the most probable one (ArgMax takes the first of equal ones, as numpy's does)."""
    if prep.classes > 2:
        best = g.one("ArgMax", [OUTPUT], "best", axis=1, keepdims=0)
        return g.one("Gather", [g.k("label_names", list(prep.labels)), best], "label")
    at = g.one("GreaterOrEqual", [OUTPUT, g.k("threshold", np.array(prep.threshold,
                                                                     np.float32))], "at")
    return g.one("Where", [g.one("Reshape", [at, g.k("flat", [-1])], "at_1d"),
                           g.k("positive", prep.labels[1]), g.k("negative", prep.labels[0])],
                 "label")


def _int64_tensor(v: int):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array([v], np.int64))


def declared_types(nodes) -> list:
    """value_info giving the type and rank of every output of a node in a non-standard
    domain (CUSTOM_OUTPUTS), so that onnx's checker and shape inference type the whole
    graph. An operator missing from the table is a bug here, raised as such."""
    from onnx import TensorProto, helper

    infos = []
    for node in nodes:
        if node.domain in ("", "ai.onnx", "ai.onnx.ml"):
            continue
        key = (node.domain, node.op_type)
        if key not in CUSTOM_OUTPUTS:
            raise RuntimeError(f"text graph node {node.name} ({node.domain} {node.op_type}) "
                               "has no declared output type: add it to CUSTOM_OUTPUTS")
        elem, rank = CUSTOM_OUTPUTS[key]
        infos += [helper.make_tensor_value_info(out, getattr(TensorProto, elem), [None] * rank)
                  for out in node.output if out]
    return infos


def build_text_graph(id_model, prep: Preprocessing | None = None, with_model: bool = True):
    """The id model behind a text front end: input "text" [batch] string, outputs
    "probability" [batch, 1] (or [batch, K] for K > 2 labels), "known_words" [batch] int64,
    "label" [batch] string and, for K > 2 labels, "labels" [K] string (the names by column).

    With `with_model=False` the graph stops at the model input ("ids" [batch, steps] int32)
    and "known_words": what validation compares id for id with Preprocessing.encode.
    """
    import onnx
    from onnx import TensorProto, helper

    props = {p.key: p.value for p in id_model.metadata_props}
    prep = prep or Preprocessing.from_metadata(props)
    opset = next(o.version for o in id_model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < MIN_OPSET:
        raise ValueError(f"the id model's opset {opset} is below {MIN_OPSET}")
    g = _TextGraph()
    placed = _place(g, _lookup(g, _tokens(g), prep), prep, props.get(contract.GRAPH) == "hybrid")
    # Known words among the ids the model reads (pad and start marker are below OOV).
    oov = g.k("oov_i32", np.array(text.OOV, np.int32))
    is_known = g.one("Cast", [g.one("Greater", [placed, oov], "is_known")], "known_i", to=7)
    outs = {KNOWN_OUTPUT: g.one("ReduceSum", [is_known, g.k("one_1d", [1])], "known",
                                keepdims=0),
            INPUT: placed}
    types = {KNOWN_OUTPUT: (TensorProto.INT64, ["batch"]),
             INPUT: (TensorProto.INT32, ["batch", "steps"]),
             LABEL_OUTPUT: (TensorProto.STRING, ["batch"])}
    g.nodes += [helper.make_node("Identity", [v], [k], name=f"text/{k}_out")
                for k, v in outs.items()]
    outputs = [helper.make_tensor_value_info(k, *types[k]) for k in outs if k != INPUT]
    if with_model:  # the id graph reads "ids"; after it, "label" reads its "probability"
        tail = _TextGraph()
        tail.nodes.append(helper.make_node("Identity", [_label(tail, prep)], [LABEL_OUTPUT],
                                           name="text/label_out"))
        src = id_model.graph
        outputs = [*src.output, *outputs, helper.make_tensor_value_info(
            LABEL_OUTPUT, *types[LABEL_OUTPUT])]
        if prep.classes > 2:
            tail.nodes.append(helper.make_node("Identity", [tail.k("label_names",
                                                                   list(prep.labels))],
                                               [LABELS_OUTPUT], name="text/labels_out"))
            outputs.append(helper.make_tensor_value_info(LABELS_OUTPUT, TensorProto.STRING,
                                                         [prep.classes]))
        nodes = g.nodes + list(src.node) + tail.nodes
        inits = list({**g.inits, **tail.inits}.values()) + list(src.initializer)
        value_info = [*src.value_info, *declared_types(g.nodes)]
    else:
        nodes, inits = g.nodes, list(g.inits.values())
        value_info = declared_types(g.nodes)
        outputs = [helper.make_tensor_value_info(INPUT, *types[INPUT]), *outputs]
    text_in = helper.make_tensor_value_info(TEXT_INPUT, TensorProto.STRING, ["batch"])
    # The id model's other inputs (the cascade's threshold, with its default) stay inputs.
    extra = [i for i in id_model.graph.input if i.name != INPUT] if with_model else []
    graph = helper.make_graph(nodes, "rnncli_text", [text_in, *extra], outputs,
                              initializer=inits, value_info=value_info)
    imports = {o.domain or "": o.version for o in id_model.opset_import}
    imports["ai.onnx.ml"] = max(imports.get("ai.onnx.ml", 2), 2)
    imports["com.microsoft"] = 1
    proto = helper.make_model(graph, producer_name="rnncli",
                              opset_imports=[helper.make_opsetid(d, v)
                                             for d, v in imports.items()])
    proto.ir_version = id_model.ir_version
    helper.set_model_props(proto, {**props, contract.INPUT_KIND: TEXT_INPUT,
                                   "rnncli.text_locale": LOCALE})
    onnx.checker.check_model(proto)
    return proto
