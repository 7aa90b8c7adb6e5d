"""rnncli.load(): the Python API a user imports instead of running the command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import cli

import rnncli
from rnncli.errors import ModelError
from rnncli.serve import locate


def test_load_gives_the_bundled_model_and_one_prediction_per_text():
    model = rnncli.load()
    assert model.bundled and model.path == locate.BUNDLED
    texts = ["a wonderful, moving film", "a boring, awful waste of time", "great film"]
    got = model.predict(texts)
    assert [p.text for p in got] == texts
    assert [p.label for p in got[:2]] == ["positive", "negative"]
    for p in got:
        assert 0.0 <= p.probability <= 1.0 and p.known_words > 0
        assert p.label == model.labels[p.probability >= model.threshold]
    one = model.predict("great film")
    assert one.label == got[2].label and one.probability == pytest.approx(got[2].probability)
    assert model.predict([]) == []


def test_predict_matches_the_command_row_for_row():
    texts = ["a wonderful, moving film", "dull", "not bad at all, really"]
    rows = json.loads(cli("predict", *texts, "--format", "json").stdout)
    got = rnncli.load().predict(texts)
    assert [r["label"] for r in rows] == [p.label for p in got]
    assert [r["probability"] for r in rows] == [round(p.probability, 6) for p in got]
    assert [r["known_words"] for r in rows] == [p.known_words for p in got]


def test_a_threshold_moves_the_label_and_streams_keep_order():
    model = rnncli.load()
    texts = [f"film number {i} was {'great' if i % 2 else 'awful'}" for i in range(300)]
    streamed = list(model.predict_stream(iter(texts)))
    assert [p.text for p in streamed] == texts
    assert all(p.label == model.labels[1] for p in model.predict(texts[:5], threshold=0.0))


def test_load_refuses_what_it_cannot_serve(tmp_path):
    with pytest.raises(ModelError, match="No model at"):
        rnncli.load(tmp_path / "missing.onnx")
    (tmp_path / "model.keras").write_bytes(b"not really")
    with pytest.raises(ModelError, match="rnncli export onnx"):
        rnncli.load(tmp_path)


def test_the_api_imports_no_tensorflow():
    code = ("import sys, rnncli; rnncli.load().predict(['great film']); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'tf2onnx', 'sklearn') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("blank", ["", " ", "\t \n", "\u3000"])
def test_a_blank_text_gets_no_label_as_a_blank_line_does_in_the_command(blank):
    model = rnncli.load()
    one = model.predict(blank)
    assert (one.text, one.label, one.probability, one.known_words) == (blank, None, None, 0)
    texts = [blank, "a wonderful, moving film", blank, blank, "awful", blank]
    got = model.predict(texts)
    assert [p.text for p in got] == texts
    assert [p.label is None for p in got] == [t == blank for t in texts]
    assert [p.label for p in got if p.label] == ["positive", "negative"]
    streamed = list(model.predict_stream(iter(texts * 200), batch_size=7))
    assert [p.text for p in streamed] == texts * 200
    assert [p.probability is None for p in streamed] == [t == blank for t in texts * 200]
    assert [p.label for p in model.predict([blank] * 3)] == [None] * 3


def test_blank_texts_match_the_command_row_for_row(tmp_path):
    lines = ["great film", "", "   ", "awful"]
    (tmp_path / "r.txt").write_text("\n".join(lines) + "\n")
    rows = json.loads(cli("predict", "--file", "r.txt", "--format", "json").stdout)
    got = rnncli.load().predict(lines)
    assert [(r["label"], r["probability"]) for r in rows] == [
        (p.label, None if p.probability is None else round(p.probability, 6)) for p in got]


@pytest.mark.parametrize("kwargs, says", [
    ({"threshold": 1.5}, "threshold 1.5 is not a number between 0 and 1"),
    ({"threshold": float("nan")}, "threshold nan is not a number between 0 and 1"),
    ({"threshold": "0.5"}, "threshold '0.5' is not a number between 0 and 1"),
    ({"batch_size": 0}, "batch_size 0 is not a whole number of 1 or more"),
])
def test_the_api_checks_what_the_command_checks(kwargs, says):
    from rnncli.errors import UsageError

    model = rnncli.load()
    for call in (lambda: model.predict("great film", **kwargs),
                 lambda: model.predict(["great film"], **kwargs),
                 lambda: model.predict_stream(["great film"], **kwargs)):
        with pytest.raises(UsageError, match=says):
            call()
    with pytest.raises(UsageError, match="not bytes"):
        model.predict([b"great film"])
    with pytest.raises(UsageError, match="not one string"):
        model.predict_stream("great film")
