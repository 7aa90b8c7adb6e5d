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

from rnncli import text
from rnncli.onnx_graph import HYBRID_SMALL_BATCH, INPUT, _Graph
from rnncli.preprocessing import Preprocessing

TEXT_INPUT = "text"
KNOWN_OUTPUT = "known_words"
LOCALE = "C.UTF-8"
APOSTROPHES = "'\u2019\u2018`"  # what tokenize() turns into "'"
DOTTED_CAPITAL_I = "\u0130"
MIN_OPSET = 13  # ReduceSum with axes as an input
_DROP = -1  # LabelEncoder value for tokens that are not words (padding, markup)


@functools.lru_cache(maxsize=1)
def word_class() -> str:
    """An RE2 character class of what Python's `\\w` matches, less "_" (tokenize() turns it
    into a space) and U+0130 (see the module docstring), for this Python's Unicode."""
    ranges, start = [], None
    for cp in range(0x110001):
        inside = cp < 0x110000 and chr(cp).isalnum() and cp != 0x130
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            ranges.append(f"\\x{{{start:x}}}" + (f"-\\x{{{cp - 1:x}}}" if cp - 1 > start else ""))
            start = None
    return "[" + "".join(ranges) + "]"


def token_pattern() -> str:
    """Markup, or a word: runs of word characters joined by single apostrophes, where a
    run may end in U+0130 and then ends the word (leftmost-longest, as the Tokenizer runs
    RE2)."""
    w, a = word_class(), "['\\x{2019}\\x{2018}`]"
    return f"<[^>]*>|(?:{w}+{a})*(?:{w}+|{w}*\\x{{130}})"


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


def _tokens(g: _Graph, c) -> str:
    """[N, T + 1] tokens of each review (original case), "" after its last token."""
    toks = g.one("Tokenizer", [TEXT_INPUT], "tokenize", domain="com.microsoft", mark=0,
                 pad_value="", mincharnum=1, tokenexp=token_pattern())
    # One extra empty column keeps the width >= 1 when no review has a word.
    n_1 = g.one("Shape", [TEXT_INPUT], "batch_1d")
    blank = g.one("Expand", [c("blank_2d", np.array([[""]], object)),
                             g.one("Concat", [n_1, c("one_1d", [1])], "blank_shape", axis=0)],
                  "blank_column")
    return g.one("Concat", [toks, blank], "tokens", axis=1)


def _lookup(g: _Graph, c, tokens: str, prep: Preprocessing) -> str:
    """[N, T + 1] int64: a word's id, OOV, or _DROP for padding and markup."""
    flat = g.one("Reshape", [tokens, c("flat", [-1])], "tokens_flat")
    low = g.one("StringNormalizer", [flat], "lower", case_change_action="LOWER",
                is_case_sensitive=1, locale=LOCALE)
    keys, ids = vocabulary_keys(prep)
    found = g.one("LabelEncoder", [low], "vocabulary", domain="ai.onnx.ml",
                  keys_strings=keys + [""], values_int64s=ids + [_DROP],
                  default_int64=text.OOV)
    # Markup never is a vocabulary word: only OOV tokens are checked for a leading '<'.
    oov_at = g.one("Reshape", [g.one("NonZero", [g.one("Equal", [found, c("oov", text.OOV)],
                                                       "is_oov")], "oov_where"),
                               c("flat_again", [-1])], "oov_at")
    oov = g.one("Concat", [g.one("Gather", [low, oov_at], "oov_tokens"),
                           c("blank_1d", np.array([""], object))], "oov_tokens_1", axis=0)
    lt = g.one("Tokenizer", [oov], "leading_lt", domain="com.microsoft", mark=0,
               pad_value="", mincharnum=1, tokenexp="^<")  # [K + 1, 0 or 1]
    k_1 = g.one("Shape", [oov], "oov_count")
    lt = g.one("Concat", [lt, g.one("Expand", [c("blank_2d_b", np.array([[""]], object)),
                                              g.one("Concat", [k_1, c("one_1d_b", [1])],
                                                    "lt_shape", axis=0)], "lt_blank")],
               "leading_lt_1", axis=1)
    first = g.one("Gather", [lt, c("zero", 0)], "leading_lt_first", axis=1)
    mapped = g.one("LabelEncoder", [first], "markup", domain="ai.onnx.ml",
                   keys_strings=["<"], values_int64s=[_DROP], default_int64=text.OOV)
    mapped = g.one("Slice", [mapped, c("s0", [0]), c("s_last", [-1])], "markup_k")
    fixed = g.one("ScatterElements", [found, oov_at, mapped], "drop_markup", axis=0)
    return g.one("Reshape", [fixed, g.one("Shape", [tokens], "tokens_shape")], "token_ids")


def _place(g: _Graph, c, ids: str, prep: Preprocessing, trim_small_only: bool) -> str:
    """[N, width] int32 model input: start marker + word ids, padded and truncated the way
    text.pad_sequences does it."""
    keep = g.one("Cast", [g.one("Greater", [ids, c("drop", _DROP)], "is_word")], "keep",
                 to=7)
    n_1 = g.one("Shape", [TEXT_INPUT], "batch_1d_b")
    ones = g.one("Expand", [c("one_2d", [[1]]), g.one("Concat", [n_1, c("one_1d_c", [1])],
                                                         "ones_shape", axis=0)], "ones")
    seq = g.one("Concat", [ones, ids], "with_start", axis=1)  # index 0: start marker
    kept = g.one("Concat", [ones, keep], "kept", axis=1)
    j = g.one("Sub", [g.one("CumSum", [kept, c("axis1", 1)], "cumsum"), c("one", 1)], "j")
    length = g.one("ReduceSum", [kept, c("axes1", [1])], "length", keepdims=1)  # [N, 1]
    m = c("maxlen", prep.maxlen)
    width = m
    if prep.trim_padding:
        longest = g.one("ReduceMax", [length], "longest", keepdims=0)
        width = g.one("Min", [m, longest], "trimmed_width")
        if trim_small_only:  # a hybrid graph runs large full-length batches fastest
            large = g.one("Greater", [g.one("Squeeze", [n_1], "batch"),
                                      c("small", HYBRID_SMALL_BATCH)], "is_large")
            width = g.one("Where", [large, m, width], "width")
    gap = g.one("Sub", [width, length], "gap")  # < 0: the review is truncated
    pre_pad, pre_cut = prep.padding == "pre", prep.truncating == "pre"
    if pre_pad and pre_cut:
        offset = gap
    elif pre_pad:
        offset = g.one("Max", [gap, c("zero_b", 0)], "offset")
    elif pre_cut:
        offset = g.one("Min", [gap, c("zero_c", 0)], "offset")
    else:
        offset = c("zero_d", 0)
    pos = g.one("Add", [j, offset], "position")
    inside = g.one("And", [g.one("Cast", [kept], "kept_bool", to=9),
                           g.one("And", [g.one("GreaterOrEqual", [pos, c("zero_e", 0)], "ge0"),
                                         g.one("Less", [pos, width], "lt_width")], "in_row")],
                   "placed")
    # Everything not placed goes to one extra column, with value 0, cut off afterwards.
    target = g.one("Where", [inside, pos, width], "target")
    value = g.one("Where", [inside, seq, c("zero_f", 0)], "value")
    shape = g.one("Concat", [n_1, g.one("Reshape", [g.one("Add", [width, c("one_b", 1)],
                                                          "width_1"), c("flat_w", [1])],
                                        "width_1d")], "canvas_shape", axis=0)
    canvas = g.one("ConstantOfShape", [shape], "canvas",
                   value=_int64_tensor(0))
    placed = g.one("ScatterElements", [canvas, target, value], "scatter", axis=1)
    cut = g.one("Slice", [placed, c("s0_b", [0]), g.one("Reshape", [width, c("flat_w2", [1])],
                                                        "width_end"), c("axis1_1d", [1])],
                "cut")
    return g.one("Cast", [cut], "ids_int32", to=6)


def _int64_tensor(v: int):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array([v], np.int64))


def build_text_graph(id_model, prep: Preprocessing | None = None, with_model: bool = True):
    """The id model behind a text front end: input "text" [batch] string, outputs
    "probability" [batch, 1] and "known_words" [batch] int64.

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
    g = _Graph("text/")

    def c(name: str, value) -> str:
        arr = np.array(value, dtype=object if isinstance(value, np.ndarray)
                       and value.dtype == object else np.int64)
        return g.const("text/" + name, arr)

    ids = _lookup(g, c, _tokens(g, c), prep)
    known = g.one("ReduceSum", [g.one("Cast", [g.one("Greater", [ids, c("oov_b", text.OOV)],
                                                     "is_known")], "known_i", to=7),
                                c("axes1_b", [1])], "known", keepdims=0)
    g.nodes.append(helper.make_node("Identity", [known], [KNOWN_OUTPUT], name="text/known_out"))
    model_input = _place(g, c, ids, prep, props.get("rnncli.graph") == "hybrid")
    g.nodes.append(helper.make_node("Identity", [model_input], [INPUT], name="text/ids_out"))

    text_in = helper.make_tensor_value_info(TEXT_INPUT, TensorProto.STRING, ["batch"])
    known_out = helper.make_tensor_value_info(KNOWN_OUTPUT, TensorProto.INT64, ["batch"])
    inits = list(g.inits.values())
    if with_model:
        src = id_model.graph
        nodes, outputs = g.nodes + list(src.node), [*src.output, known_out]
        inits += list(src.initializer)
        value_info = list(src.value_info)
    else:
        nodes, value_info = g.nodes, []
        outputs = [helper.make_tensor_value_info(INPUT, TensorProto.INT32, ["batch", "steps"]),
                   known_out]
    graph = helper.make_graph(nodes, "rnncli_text", [text_in], outputs, initializer=inits,
                              value_info=value_info)
    imports = {o.domain or "": o.version for o in id_model.opset_import}
    imports["ai.onnx.ml"] = max(imports.get("ai.onnx.ml", 2), 2)
    imports["com.microsoft"] = 1
    proto = helper.make_model(graph, producer_name="rnncli",
                              opset_imports=[helper.make_opsetid(d, v)
                                             for d, v in imports.items()])
    proto.ir_version = id_model.ir_version
    helper.set_model_props(proto, {**props, "rnncli.input": TEXT_INPUT,
                                   "rnncli.text_locale": LOCALE})
    onnx.checker.check_model(proto)
    return proto

