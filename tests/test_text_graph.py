"""The text-input graph (`export onnx --text-input`) against rnncli/text.py, and its clients:
predict, evaluate and the Node.js example."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, own_run

from rnncli.config import run_files
from rnncli.errors import ExportError, ModelError
from rnncli.text import tokenizer as text
from rnncli.text.preprocessing import Preprocessing

onnx = pytest.importorskip("onnx")

from rnncli.export import text_export, text_graph  # noqa: E402  (needs onnx)
from rnncli.serve.onnx_model import OnnxModel, session_options  # noqa: E402

NODE_DIR = Path(__file__).resolve().parents[1] / "examples" / "node"
REVIEWS = ["A <br />GREAT film, don\u2019t miss it", "awful, boring waste", "",
           "\u0130stanbul caf\u00e9 NA\u00cfVE \U0001F600", "the plot<i>was</i>dull_and_slow"]


def vocabulary() -> list[str]:
    """Every word of the edge cases (so a wrong case or apostrophe changes an id), after a
    few common ones; the last words fall beyond num_words. Words with sigma are left out:
    a vocabulary holding them is refused (test_a_vocabulary_with_sigma_is_refused)."""
    seen = dict.fromkeys(["the", "film", "a", "great", "don't", "it's", "rock'n'roll"])
    for t in text_export.EDGE_CASES + REVIEWS:
        seen.update(dict.fromkeys(text.tokenize(t)))
    return [w for w in seen if "\u03c3" not in w and "\u03c2" not in w]


def make_prep(**kw) -> Preprocessing:
    words = vocabulary()
    return Preprocessing(**{"vocabulary": words, "num_words": len(words) - 2, "maxlen": 12,
                            **kw})


def id_model(prep: Preprocessing, graph: str = "native"):
    """An id graph without Keras: sigmoid of a sum of per-id weights (pads weigh 0)."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(1).normal(size=prep.num_words).astype(np.float32)
    w[text.PAD] = 0
    nodes = [helper.make_node("Gather", ["w", "ids"], ["g"]),
             helper.make_node("ReduceSum", ["g", "axes"], ["s"], keepdims=1),
             helper.make_node("Sigmoid", ["s"], ["probability"])]
    graph_proto = helper.make_graph(
        nodes, "fake", [helper.make_tensor_value_info("ids", TensorProto.INT32,
                                                      ["batch", "steps"])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])],
        initializer=[numpy_helper.from_array(w, "w"),
                     numpy_helper.from_array(np.array([1], np.int64), "axes")])
    proto = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 10
    helper.set_model_props(proto, {**prep.to_metadata(), "rnncli.graph": graph})
    return proto


def session(proto):
    import onnxruntime as ort

    return ort.InferenceSession(proto.SerializeToString(), session_options(),
                                providers=["CPUExecutionProvider"])


def mixed_texts(prep: Preprocessing, n: int = 60) -> list[str]:
    """Vocabulary words in random case, apostrophes and markup, of every length around maxlen."""
    rng = np.random.default_rng(2)
    extra = ["<br />", "<B>", "zzz", "_", "\u2019", "`", "'", "<", ">", "\u0130", "\u03a3"]
    out = []
    for i in range(n):
        words = rng.choice(prep.vocabulary + extra, size=i % (2 * prep.maxlen + 3))
        out.append(" ".join(w.upper() if rng.random() < 0.3 else w for w in words))
    return out


def test_tokens_match_python_on_every_code_point():
    """Tokenizer + StringNormalizer, as the graph runs them, split and lower every Unicode
    character as tokenize() does (apostrophes are spelt out in the lookup, not here)."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Tokenizer", ["x"], ["t"], domain="com.microsoft", mark=0,
                              pad_value="", mincharnum=1, tokenexp=text_graph.token_pattern()),
             helper.make_node("StringNormalizer", ["t"], ["y"], case_change_action="LOWER",
                              locale=text_graph.LOCALE)]
    proto = helper.make_model(helper.make_graph(
        nodes, "tok", [helper.make_tensor_value_info("x", TensorProto.STRING, [1])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, None)]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    sess = session(proto)
    # Capital sigma is left out: Python lowers it by context (test_a_vocabulary_with_sigma).
    chars = [chr(c) for c in range(1, 0x110000) if not 0xD800 <= c < 0xE000 and c != 0x3A3]
    for start in range(0, len(chars), 20000):
        chunk = chars[start : start + 20000]
        review = " ".join(f"x{c}Y {c}'{c} \u0130{c}" for c in chunk)
        got = sess.run(None, {"x": np.array([review], object)})[0][0].tolist()
        # The lookup drops markup (a leading '<') and spells apostrophes out in its keys.
        got = [t.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
               for t in got if not t.startswith("<")]
        assert got == text.tokenize(review), f"characters from U+{ord(chunk[0]):04X}"


def test_vocabulary_keys_spell_every_apostrophe():
    prep = Preprocessing(vocabulary=["film", "don't", "rock'n'roll", "cut"], num_words=6,
                         maxlen=5)
    keys, ids = text_graph.vocabulary_keys(prep)
    by_key = dict(zip(keys, ids))
    assert by_key["film"] == 3 and "cut" not in by_key  # id 6 is past num_words
    assert {k for k in keys if k.startswith("don")} == {"don't", "don\u2019t", "don\u2018t",
                                                         "don`t"}
    assert sum(k.startswith("rock") for k in keys) == 16
    assert by_key["rock`n\u2019roll"] == 5


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("trim, graph", [(False, "native"), (True, "native"),
                                         (True, "hybrid")])
def test_graph_ids_equal_encode(padding, truncating, trim, graph):
    prep = make_prep(padding=padding, truncating=truncating, trim_padding=trim)
    front = session(text_graph.build_text_graph(id_model(prep, graph), prep, with_model=False))
    texts = text_export.EDGE_CASES + REVIEWS + mixed_texts(prep)
    for size in (1, 3, text_export.HYBRID_SMALL_BATCH + 1, 64):
        text_export.check_ids(front, prep, graph == "hybrid", texts, size)  # raises on a diff
    ids, _ = front.run(None, {"text": np.array(["great film"] * 9, object)})
    # Nine reviews are a large batch for a hybrid graph: full rows, as predict feeds it.
    assert ids.shape == (9, 3 if trim and graph != "hybrid" else prep.maxlen)


def test_megabyte_review_and_labels(tmp_path):
    prep = make_prep()
    proto = id_model(prep)
    full = session(text_graph.build_text_graph(proto, prep))
    huge = text_export.megabyte_review(prep)
    assert len(huge) == text_export.MEGABYTE
    probability, known, label = full.run(None, {"text": np.array([huge, "great film"], object)})
    ref = session(proto).run(None, {"ids": prep.encode([huge, "great film"])[0]})[0]
    np.testing.assert_allclose(probability, ref, atol=1e-6)
    assert known.tolist() == prep.encode([huge, "great film"])[1].tolist()
    assert label.tolist() == ["positive" if p >= 0.5 else "negative" for p in ref.ravel()]


def write_id_model(path: Path, prep: Preprocessing, graph: str = "native") -> Path:
    onnx.save(id_model(prep, graph), str(path))
    return path


def test_export_then_predict_and_evaluate(prepared, tmp_path):
    from rnncli.data import store as dataset

    home = Path(os.environ["RNNCLI_HOME"])
    vocab = dataset.load_vocabulary(home)
    prep = Preprocessing(vocabulary=vocab.words, num_words=len(vocab) + 3, maxlen=20,
                         trim_padding=True)
    id_path = write_id_model(tmp_path / "model.onnx", prep, "hybrid")
    res = invoke("export", "onnx", "--model", str(id_path), "--text-input",
                              "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    text_path = tmp_path / "model.text.onnx"
    assert report["output"] == str(text_path) and report["real_reviews"]
    assert report["reviews"] == 24 and report["max_abs_diff"] <= 1e-5
    model = OnnxModel(text_path)
    assert model.takes_text and model.metadata["rnncli.text_locale"] == "C.UTF-8"
    assert model.metadata["rnncli.text_validated_reviews"] == "24"

    rows = {}
    for path in (id_path, text_path):
        res = invoke("predict", *REVIEWS[:2], REVIEWS[3], "--model", str(path),
                                  "--format", "jsonl")
        assert res.exit_code == 0, res.output
        rows[path] = [json.loads(line) for line in res.stdout.splitlines()]
    for a, b in zip(rows[id_path], rows[text_path]):
        assert (a["label"], a["known_words"]) == (b["label"], b["known_words"])
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)
    scores = [json.loads(invoke("evaluate", "--model", str(p), "--json").stdout)
              for p in (id_path, text_path)]
    assert scores[0]["confusion_matrix"] == scores[1]["confusion_matrix"]
    assert scores[0]["loss"] == pytest.approx(scores[1]["loss"], abs=1e-6)
    with pytest.raises(ModelError, match="takes review text"):
        model.predict_ids(np.zeros((1, 20), np.int32))
    res = invoke("export", "onnx", "--model", str(text_path), "--text-input")
    assert res.exit_code == 1 and "already takes text" in res.stderr
    code = ("import sys\nfrom rnncli.cli import app\n"
            f"sys.argv = ['rnncli', 'predict', 'great film', '--model', {str(text_path)!r}]\n"
            "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(' '.join({m.split('.')[0] for m in sys.modules}), file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert not set(res.stderr.split()) & {"tensorflow", "keras", "tf2onnx", "onnx"}


def no_dotted_i_rule(pattern=text_graph.token_pattern) -> str:
    return pattern().replace("\\x{130}", "\\x{131}")


@pytest.mark.parametrize("sabotage, value", [
    ("LOCALE", "C"),  # ASCII-only lower-casing
    ("word_class", lambda: "[\\pL\\pN]"),  # RE2's Unicode, not Python's
    ("token_pattern", no_dotted_i_rule),  # U+0130 as an ordinary letter
    ("APOSTROPHES", "'"),  # no curly or back-quote spellings in the lookup
])
def test_validation_catches_a_diverging_tokenizer(tmp_path, monkeypatch, sabotage, value):
    prep = make_prep()
    id_path = write_id_model(tmp_path / "model.onnx", prep)
    monkeypatch.setattr(text_graph, sabotage, value)
    with pytest.raises(ExportError, match="differ|counts"):
        text_export.export_text_graph(id_path, tmp_path / "no-home")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_a_vocabulary_with_sigma_is_refused(tmp_path):
    """Python lowers capital sigma by context, C.UTF-8 always to σ: only a vocabulary
    holding σ or ς can tell, and then the export must fail, not drift."""
    words = vocabulary()
    prep = Preprocessing(vocabulary=words + ["οδος"], num_words=len(words) + 4, maxlen=12)
    id_path = write_id_model(tmp_path / "model.onnx", prep)
    with pytest.raises(ExportError, match="ΟΔΟΣ"):
        text_export.export_text_graph(id_path, tmp_path / "no-home")
    assert not (tmp_path / "model.text.onnx").exists()


@pytest.mark.real_data
def test_graph_ids_equal_encode_on_all_imdb_reviews(real_home):
    """All 50,000 reviews, whole vocabulary: every id the graph computes is encode()'s."""
    from rnncli.data import store as dataset

    vocab = dataset.load_vocabulary(real_home)
    prep = Preprocessing(vocabulary=vocab.words, num_words=len(vocab) + 3, maxlen=200)
    front = session(text_graph.build_text_graph(id_model(prep), prep, with_model=False))
    for split in ("train", "test"):
        texts = dataset.load_split(real_home, split).texts()
        assert len(texts) == 25000
        text_export.check_ids(front, prep, False, texts, text_export.BATCH)


# --- a trained tiny model, the CLI export, and the Node.js client -----------------------

@pytest.fixture(scope="module")
def exported_text(tiny_run, tmp_path_factory):
    home, run = own_run(tiny_run, tmp_path_factory.mktemp("text"))
    root = run.parent
    res = invoke("export", "onnx", "--model", str(root / "run"), "--data-dir",
                              str(home), "--text-input", "--json")
    assert res.exit_code == 0, res.output
    return root / "run", json.loads(res.stdout)


@pytest.mark.slow
def test_export_text_input_beside_the_id_model(exported_text):
    run, report = exported_text
    text_report = report["text_input"]
    assert text_report["output"] == str(run / run_files.ONNX_TEXT)
    assert text_report["real_reviews"] and text_report["max_abs_diff"] <= 1e-5
    ids, texts = OnnxModel(run / run_files.ONNX), OnnxModel(run / run_files.ONNX_TEXT)
    assert texts.metadata["rnncli.graph"] == report["chosen"]
    want = [p.probability for p in ids.predict_texts(REVIEWS)]
    got = [p.probability for p in texts.predict_texts(REVIEWS)]
    np.testing.assert_allclose(got, want, atol=1e-5)


def node_client() -> Path:
    """examples/node with `npm ci` done, cached in its git-ignored node_modules."""
    required = os.environ.get("RNNCLI_REQUIRE_NODE") == "1"
    give_up = pytest.fail if required else pytest.skip
    if not (shutil.which("node") and shutil.which("npm")):
        give_up("node and npm are needed for the Node.js client test")
    lock = hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()
    stamp = NODE_DIR / "node_modules" / ".rnncli-lock-sha256"
    if not stamp.exists() or stamp.read_text() != lock:
        res = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                             capture_output=True, text=True, timeout=600,
                             env={**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"})
        if res.returncode != 0:
            give_up(f"npm ci failed in {NODE_DIR}: {res.stderr.strip()[-300:]}")
        stamp.write_text(lock)
    return NODE_DIR


def node(*args: str, cwd: Path, stdin: str | None = None, env: dict | None = None):
    """`node examples/node/predict.js ARGS`, run from `cwd` (not the client's folder)."""
    return subprocess.run(["node", str(NODE_DIR / "predict.js"), *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def rnncli_jsonl(*args: str, stdin: str | None = None) -> list[dict]:
    python = subprocess.run([sys.executable, "-m", "rnncli", "predict", *args, "--format",
                             "jsonl"], input=stdin, capture_output=True, text=True, timeout=120)
    assert python.returncode == 0, python.stderr
    return [json.loads(line) for line in python.stdout.splitlines()]


def same_rows(got: list[dict], want: list[dict]) -> None:
    """Rows as rnncli predict --format jsonl writes them: every field, in its order."""
    assert [list(g) for g in got] == [list(w) for w in want]
    assert [g["text"] for g in got] == [w["text"] for w in want]
    for g, w in zip(got, want):
        assert (g["line"], g["label"], g["known_words"]) == (w["line"], w["label"],
                                                             w["known_words"])
        assert g["probability"] == pytest.approx(w["probability"], abs=1e-5)


@pytest.mark.slow
def test_node_client_prints_what_rnncli_predict_prints(exported_text, tmp_path):
    run, _ = exported_text
    node_client()
    reviews = [r for r in REVIEWS if r.strip()] + ["\u6771\u4eac \U0001F600 film",
                                                   "\u05d6\u05d4 \u05e1\u05e8\u05d8 bad"]
    # Run from another folder than the client's: the model path is the user's.
    res = node("--model", str(run / run_files.ONNX_TEXT), "--", *reviews, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    got = [json.loads(line) for line in res.stdout.splitlines()]
    assert [g["text"] for g in got] == reviews
    same_rows(got, rnncli_jsonl(*reviews, "--model", str(run / run_files.ONNX)))
    assert [g["line"] for g in got] == list(range(1, len(reviews) + 1))


@pytest.mark.slow
def test_node_client_reads_stdin_and_answers_blank_reviews_with_null(exported_text, tmp_path):
    run, _ = exported_text
    node_client()
    model = str(run / run_files.ONNX_TEXT)
    # Lines as rnncli reads them: stripped, CRLF too; a blank line keeps its place.
    stdin = "a GREAT film\n\n   \n  awful, boring waste \r\nthe plot<i>was</i>dull"
    for args in ([], ["-"]):
        res = node("--model", model, *args, cwd=tmp_path, stdin=stdin)
        assert res.returncode == 0, res.stderr
        got = [json.loads(line) for line in res.stdout.splitlines()]
        same_rows(got, rnncli_jsonl("-", "--model", str(run / run_files.ONNX), stdin=stdin))
        assert [g["label"] is None for g in got] == [False, True, True, False, False]
    # An empty argument is a blank review too: nulls, as rnncli.load().predict("") gives.
    res = node("--model", model, "great", "", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert rows[1] == {"line": 2, "text": "", "label": None, "probability": None,
                       "known_words": 0}
    res = node("--model", model, cwd=tmp_path, stdin="")  # as rnncli: more likely a mistake
    assert res.returncode == 2 and "nothing to predict" in res.stderr, res.stderr


@pytest.mark.slow
def test_node_client_help_and_its_default_model(tmp_path):
    node_client()
    res = node("--help", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("usage: node predict.js"), res.stderr
    assert "--model" in res.stdout and "stdin" in res.stdout
    # Without --model: the repository's artifacts/, found from the script, not the cwd.
    default = NODE_DIR.parents[1] / "artifacts" / run_files.ONNX_TEXT
    res = node("great film", cwd=tmp_path, env={"RNNCLI_TEXT_MODEL": ""})
    if default.exists():  # a checkout that has exported one
        assert res.returncode == 0, res.stderr
    else:
        assert res.returncode == 1 and len(res.stderr.splitlines()) == 1, res.stderr
        assert f"No model at {default}" in res.stderr and "--model" in res.stderr
    for args, message in ((["--model"], "--model needs a file"),
                          (["--model", str(tmp_path / "none.onnx"), "x"], "No model at"),
                          (["--colour", "x"], "unknown option --colour")):
        res = node(*args, cwd=tmp_path)
        assert res.returncode in (1, 2) and message in res.stderr, res.stderr
        assert len(res.stderr.splitlines()) == 1, res.stderr  # one line, no stack trace
