"""Write the text-input graph beside an id model, validated review by review against Python.

    report = export_text_graph(Path("artifacts/model.onnx"), home)   # -> model.text.onnx

Two checks, both on real test reviews plus EDGE_CASES (and the vocabulary's own risky
words, see risky_texts): the ids and known-word counts the graph computes equal
Preprocessing.encode's exactly, and its probabilities (every label's) and labels equal
OnnxModel's on the id model (the Python tokenizer) within atol, with batches of one review
and of many (a hybrid graph branches on the batch size). A mismatch raises ExportError and
writes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnncli.data import store as dataset
from rnncli.errors import DataError, ExportError, ModelError
from rnncli.export.check import full_check
from rnncli.export.check import session as _session
from rnncli.export.graph import HYBRID_SMALL_BATCH
from rnncli.export.text_graph import (
    DOTTED_CAPITAL_I,
    LOCALE,
    build_text_graph,
)
from rnncli.fsutil import atomic_path
from rnncli.serve import contract
from rnncli.serve.contract import LABEL_OUTPUT, OUTPUT, TEXT_INPUT
from rnncli.text.preprocessing import Preprocessing

SUFFIX = ".text.onnx"
BATCH = 256
ONE_BY_ONE = 64  # real reviews also fed one per call, as `predict "..."` does
MEGABYTE = 1 << 20

EDGE_CASES = [
    "A <br />great film<br /><br />Loved it!",
    '<i>Fine</i> acting, <a href="http://x.y/?a=1&b=2">a link</a><BR/>',
    "1 < 2 and the plot > the acting",
    "an unclosed <tag and then more words",
    "<<nested> tags> and <> empty ones <",
    "multi-line <br\n/> markup\r\nand\ttabs",
    "I don't think it's the director's fault, rock'n'roll",
    "I don\u2019t \u2018love\u2019 it, it`s fine ''quoted'' 'tis the ' lone one'",
    "snake_case and __dunder__ words_ _ x_y",
    "10/10, 2nd time in 3D, 1990s, \u00bd star, \u0663\u0664 \u2167",
    "\u6771\u4eac\u7269\u8a9e\u306f\u7d20\u6674\u3089\u3057\u3044\u6620\u753b\u3067\u3059 film",
    "A film \U0001F600\U0001F600 I loved \U0001F44D\U0001F3FD",
    "\U0001F600\U0001F600\U0001F600\U0001F600\U0001F600\U0001F600",
    "\u0647\u0630\u0627 \u0641\u064a\u0644\u0645 \u0631\u0627\u0626\u0639 great",
    "\u05d6\u05d4 \u05e1\u05e8\u05d8 \u05de\u05e6\u05d5\u05d9\u05df bad",
    "\u202eevil override\u202c and \u200fmarks\u200e",
    "",
    " ",
    "\t\n  \r\n",
    "\u0130STANBUL'DA \u00c7EK\u0130LD\u0130 a\u0130b \u0130'x x'\u0130 \u0130\u0130",
    "\u039f\u0394\u039f\u03a3 \u039f\u0394\u039f\u03a3.\u0391 \u0391\u03a31 \u03c3\u03c2",
    "Caf\u00e9 NA\u00cfVE D\u00c9J\u00c0 cafe\u0301 \u01c4\u01c5\u01c6 \u1e9e stra\u00dfe",
    "\U0001D401\U0001D428\U0001D425\U0001D41D \U00010400\U00010401 \U00020000\U00020001",
    "x\x00y \x7f z\u00a0w\u2028v",
    "\uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28 \uff54\uff45\uff58\uff54",
    "THE FILM WAS GREAT AND THE ACTORS WERE BRILLIANT",
    # Letters of Unicode 15 and later: RE2's \pL knows them, Python 3.11's \w does not.
    "a\U00031350b a\U00011F04b \U0002EBF0x \U0001E4D0",
]


def megabyte_review(prep: Preprocessing) -> str:
    """A 1 MiB review of vocabulary words in every case and apostrophe, with markup, ending
    in a tail that the model's last maxlen ids come from."""
    rng = np.random.default_rng(0)
    words = np.array(prep.vocabulary[: max(1, prep.num_words - 3)] or ["film"], object)
    n = MEGABYTE // 4
    chosen = words[rng.integers(0, len(words), n)]
    upper = rng.random(n) < 0.1
    seps = np.array([" ", " ", ", ", ". <br /><br />", "_", "<i>"], object)[
        rng.integers(0, 6, n)]
    marks = ["'", "\u2019", "`"]
    body = "".join(f"{w.upper() if up else w}{sep}".replace("'", marks[i % 3])
                   for i, (w, up, sep) in enumerate(zip(chosen, upper, seps)))
    tail = " \u2026THE END: don\u2019t <b>miss</b> it"
    return body[: MEGABYTE - len(tail)] + tail


def lowercase_divergences() -> dict[str, str]:
    """Word characters that StringNormalizer (LOCALE) lowers otherwise than Python does,
    to what it gives: U+0130 is expected (the pattern closes it), others come from an older
    or newer Unicode in the C library."""
    from onnx import TensorProto, helper

    node = helper.make_node("StringNormalizer", ["x"], ["y"], case_change_action="LOWER",
                            locale=LOCALE)
    graph = helper.make_graph([node], "lower", [helper.make_tensor_value_info(
        "x", TensorProto.STRING, ["n"])], [helper.make_tensor_value_info(
            "y", TensorProto.STRING, ["n"])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = _session(proto)
    chars = [chr(c) for c in range(0x110000)
             if not 0xD800 <= c < 0xE000 and chr(c).isalnum() and chr(c).lower() != chr(c)]
    got = sess.run(None, {"x": np.array(chars, object)})[0]
    return {ch: g for ch, g in zip(chars, got.tolist()) if g != ch.lower()}


def risky_texts(prep: Preprocessing, divergent: dict[str, str]) -> list[str]:
    """Reviews that tell the graph from Python if this vocabulary can: its words written
    with each divergent capital, and words holding sigma in capitals (final sigma)."""
    texts = []
    for word in prep.vocabulary[: max(0, prep.num_words - 3)]:
        for ch in divergent:
            for low in {ch.lower(), divergent[ch]} - {""}:
                if ch != DOTTED_CAPITAL_I and low in word:
                    texts.append(word.replace(low, ch) + " film")
        if "\u03c3" in word or "\u03c2" in word:
            up = word.upper()
            texts.append(f"{up} {up}.\u0391 {up}1")
    return texts


def sample_reviews(prep: Preprocessing, home: Path, n: int) -> tuple[list[str], bool]:
    """Up to `n` real test reviews, else made-up ones from the vocabulary."""
    try:
        texts = dataset.load_split(home, "test").texts(n)
        if texts:
            return texts, True
    except DataError:
        pass
    rng = np.random.default_rng(0)
    words = prep.vocabulary[: max(1, prep.num_words)] + ["Zzyzx", "<br />", "Don\u2019t"]
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 60)))) for _ in range(n)], False


@dataclass
class TextExportReport:
    output: Path
    reviews: int  # real (or made-up) reviews compared
    real_reviews: bool
    edge_cases: int
    max_abs_diff: float
    atol: float
    size_bytes: int = 0

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "output": str(self.output)}

    def summary(self) -> str:
        what = "test reviews" if self.real_reviews else "made-up reviews (no prepared data)"
        return (f"wrote {self.output} (text input, {self.size_bytes / 1e6:.2f} MB; same as "
                f"the Python tokenizer on {self.reviews:,} {what} and {self.edge_cases} edge "
                f"cases, max |diff| {self.max_abs_diff:.2g})")


def text_path_for(id_path: Path) -> Path:
    return id_path.with_name(id_path.name.removesuffix(".onnx") + SUFFIX)


def _describe(texts: list[str], i: int) -> str:
    t = texts[i]
    return f"review {i} ({t[:40]!r}{'...' if len(t) > 40 else ''}, {len(t):,} chars)"


def check_ids(sess, prep: Preprocessing, hybrid: bool, texts: list[str],
              batch_size: int) -> None:
    """The graph's model input and known-word counts, id for id against encode()."""
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        trim = prep.trim_padding and (len(batch) <= HYBRID_SMALL_BATCH or not hybrid)
        want, want_known = prep.encode(batch, trim=trim)
        got, known = sess.run(None, {TEXT_INPUT: np.array(batch, object)})
        for i in range(len(batch)):
            if got.shape != want.shape or not np.array_equal(got[i], want[i]):
                raise ExportError(f"text graph ids differ from the Python tokenizer's on "
                                  f"{_describe(texts, start + i)}: {got[i][-8:].tolist()} "
                                  f"vs {want[i][-8:].tolist()} (last 8)")
            if known[i] != want_known[i]:
                raise ExportError(f"text graph counts {known[i]} known words, Python "
                                  f"{want_known[i]}, on {_describe(texts, start + i)}")


def check_probabilities(sess, id_model, texts: list[str], batch_size: int,
                        atol: float) -> float:
    """Max |text graph - Python tokenizer + id graph| over `texts` (every label's
    probability), fed `batch_size` at a time; raises past atol, or when the graph's label
    is not Python's where no two labels' probabilities are within atol of each other."""
    worst = 0.0
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        if not batch:
            continue
        ref = id_model.scores(batch)[0].astype(np.float64).reshape(len(batch), -1)
        got, labels = sess.run([OUTPUT, LABEL_OUTPUT], {TEXT_INPUT: np.array(batch, object)})
        diff = np.abs(got.astype(np.float64).reshape(ref.shape) - ref).max(axis=1)
        if not diff.max() <= atol:
            i = int(np.argmax(diff))
            raise ExportError(f"text graph probability differs by {diff[i]:.3g} (> --atol "
                              f"{atol:g}) on {_describe(texts, start + i)}")
        worst = max(worst, float(diff.max()))
        want = id_model.labels_of(ref.reshape(-1) if ref.shape[1] == 1 else ref)
        for i, (label, p) in enumerate(zip(labels.tolist(), ref)):
            if label != want[i] and not _close_call(p, id_model.preprocessing, atol):
                raise ExportError(f"text graph labels {_describe(texts, start + i)} "
                                  f"{label!r}, Python {want[i]!r}")
    return worst


def _close_call(p: np.ndarray, prep: Preprocessing, atol: float) -> bool:
    """Whether a difference within atol could change the label of probabilities `p`."""
    if len(p) == 1:
        return abs(p[0] - prep.threshold) <= atol
    top = np.sort(p)[-2:]
    return top[1] - top[0] <= 2 * atol


def export_text_graph(id_path: Path, home: Path, output: Path | None = None, *,
                      atol: float = 1e-5, n_reviews: int = 1000) -> TextExportReport:
    """Build, validate and write the text-input graph of the id model at `id_path`."""
    import onnx

    from rnncli.serve.onnx_model import OnnxModel

    id_model = OnnxModel(id_path)
    if id_model.metadata.get(contract.INPUT_KIND) == TEXT_INPUT:
        raise ModelError(f"{id_path} already takes text: pass the id model it was made from.")
    output = output or text_path_for(id_path)
    prep = id_model.preprocessing
    proto = onnx.load(str(id_path))
    try:
        full, front = build_text_graph(proto, prep), build_text_graph(proto, prep, False)
    except ValueError as exc:
        raise ExportError(f"Cannot build a text graph for {id_path}: {exc}; re-export it "
                          "with --opset 17.") from None
    # The 1 MiB review goes alone: a batch is as wide as its longest review.
    edge = EDGE_CASES + risky_texts(prep, lowercase_divergences())
    huge = [megabyte_review(prep)]
    reviews, real = sample_reviews(prep, home, n_reviews)
    hybrid = id_model.metadata.get(contract.GRAPH) == "hybrid"
    front_sess, sess = _session(front), _session(full)
    diffs = []
    for texts, size in ((edge, HYBRID_SMALL_BATCH), (huge, 1), (reviews, BATCH),
                        (edge + reviews[:ONE_BY_ONE], 1)):
        check_ids(front_sess, prep, hybrid, texts, size)
        diffs.append(check_probabilities(sess, id_model, texts, size, atol))
    diff = max(diffs)
    edge += huge
    onnx.helper.set_model_props(full, {**{p.key: p.value for p in full.metadata_props},
                                       "rnncli.text_max_abs_diff": f"{diff:.3g}",
                                       "rnncli.text_validated_reviews": str(len(reviews)),
                                       "rnncli.text_edge_cases": str(len(edge))})
    full_check(full, "The text-input graph", f"nothing written to {output}: a bug in rnncli; "
               "export without --text-input.")
    with atomic_path(output) as tmp:
        onnx.save(full, str(tmp))
    return TextExportReport(output, len(reviews), real, len(edge), diff, atol,
                            output.stat().st_size)

