"""Serving paths and untrusted model files, on tiny ONNX graphs made with onnx.helper.

The test graph scores a review as sigmoid(0.05 * sum over positions of the prefix sums of
its token weights): each id's weight counts by its distance from the end of the row, and a
pad (weight 0) before the review adds nothing. So it takes rows of any width <= maxlen
(pre padding) and gives the padded result, like rnncli's trimming graphs, and a wrong row,
order, truncation or shift changes its output. No TensorFlow needed.
"""

import itertools
import json

import numpy as np
import pytest
from conftest import invoke

from rnncli.errors import ModelError
from rnncli.serve.onnx_model import OnnxModel, plan_batches
from rnncli.text import tokenizer as text
from rnncli.text.preprocessing import Preprocessing

onnx = pytest.importorskip("onnx")
TensorProto, helper = onnx.TensorProto, onnx.helper
MAXLEN = 12
WORDS = ["the", "film", "great", "awful", "plot", "don't", "amélie", "映画", "good", "bad"]
NUM_WORDS = 10  # "good" and "bad" (ids 11, 12) are beyond it: out of vocabulary
REVIEWS = [
    "great film", "awful awful plot", "", "the film the plot the film the plot the film "
    "the plot the film the plot great", "Don't miss Amélie", "映画 great 映画", "good bad",
    "zzz", "plot", "great " * 30, "THE FILM. <br />The plot!", "awful", "film film",
    "the the the the the the the the the the the", "great awful great awful",
]


def _graph(maxlen=MAXLEN, num_words=NUM_WORDS, steps="steps", table_rows=None,
           input_type=TensorProto.INT32, output_type=TensorProto.FLOAT, extra_input=False):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(table_rows or num_words, 1)).astype(np.float32)
    table[0] = 0.0  # pad
    nodes = [
        helper.make_node("Cast", ["ids"], ["index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "index"], ["emb"]),
        helper.make_node("CumSum", ["emb", "axis"], ["prefix"]),
        helper.make_node("ReduceSum", ["prefix", "axes"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "scale"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["sig"]),
        helper.make_node("Cast", ["sig"], ["probs"], to=output_type),
    ]
    inits = [helper.make_tensor("table", TensorProto.FLOAT, table.shape, table.ravel()),
             helper.make_tensor("axis", TensorProto.INT64, [], [1]),
             helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
             helper.make_tensor("scale", TensorProto.FLOAT, [], [0.05])]
    inputs = [helper.make_tensor_value_info("ids", input_type, ["batch", steps])]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.INT32, ["batch", steps]))
    graph = helper.make_graph(nodes, "scores", inputs,
                              [helper.make_tensor_value_info("probs", output_type, ["batch", 1])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def save_model(path, proto=None, trim=True, meta=None, **prep_fields):
    """An rnncli-shaped ONNX file: the test graph plus preprocessing metadata."""
    prep = Preprocessing(vocabulary=WORDS, num_words=NUM_WORDS, maxlen=MAXLEN,
                         trim_padding=trim, **prep_fields)
    proto = proto or _graph(steps="steps" if trim else MAXLEN)
    props = {**prep.to_metadata(), "rnncli.graph": "test", **(meta or {})}
    helper.set_model_props(proto, {k: v for k, v in props.items() if v is not None})
    onnx.save(proto, str(path))
    return path


def padded_reference(model, texts):
    """The plain path: tokenize and encode one review at a time, pad to maxlen, one call;
    known words are counted among the ids the model reads (pad and start are below OOV)."""
    prep = model.preprocessing
    vocab = text.Vocabulary(prep.vocabulary)
    ids = [vocab.encode(text.tokenize(t), prep.num_words) for t in texts]
    x = text.pad_sequences(ids, prep.maxlen, prep.padding, prep.truncating)
    probs = model.session.run(None, {"ids": x})[0].ravel()
    return probs, (x > text.OOV).sum(axis=1).tolist()


def many_reviews(n=150):
    rng = np.random.default_rng(3)
    words = [*WORDS, "zzz", "Film!", "<br />", "GREAT", "映画"]
    return [" ".join(rng.choice(words, size=rng.integers(0, 3 * MAXLEN))) for _ in range(n)]


def assert_same(predictions, texts, reference):
    probs, known = reference
    assert [p.text for p in predictions] == list(texts)
    np.testing.assert_allclose([p.probability for p in predictions], probs, atol=1e-5)
    assert [p.known_words for p in predictions] == known
    assert [p.label for p in predictions] == ["positive" if p >= 0.5 else "negative"
                                              for p in probs]


@pytest.fixture
def trimming(tmp_path):
    return save_model(tmp_path / "trim.onnx")


def test_the_test_graph_depends_on_order_and_trims_exactly(trimming):
    model = OnnxModel(trimming)
    x = text.pad_sequences([[3, 4, 5]], MAXLEN)
    run = lambda a: model.session.run(None, {"ids": a})[0].item()  # noqa: E731
    assert run(x) == run(x[:, -4:])  # trimmed rows give the padded result
    assert run(x) != pytest.approx(run(text.pad_sequences([[5, 4, 3]], MAXLEN)))


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("full_length_batch", [None, "3"])
def test_every_serving_path_gives_the_padded_result_in_input_order(tmp_path, workers,
                                                                   full_length_batch):
    path = save_model(tmp_path / "m.onnx", meta={"rnncli.full_length_batch": full_length_batch})
    model = OnnxModel(path, workers=workers)
    texts = REVIEWS + many_reviews()
    reference = padded_reference(model, texts)
    assert_same(model.predict_texts(texts, batch_size=7), texts, reference)
    assert_same(model.predict_texts(texts[:3]), texts[:3], padded_reference(model, texts[:3]))
    assert model.predict_texts([]) == [] and list(model.predict_stream(iter([]))) == []
    for window, batch_size in ((16, 4), (None, 5), (1000, 64)):
        got = list(model.predict_stream(iter(texts), batch_size, window=window))
        assert_same(got, texts, reference)


def test_a_graph_with_fixed_width_always_gets_full_rows(tmp_path, monkeypatch):
    model = OnnxModel(save_model(tmp_path / "fixed.onnx", trim=False), workers=1)
    widths = []
    run = model._run
    monkeypatch.setattr(model, "_run", lambda x: (widths.append(x.shape[1]), run(x))[1])
    texts = REVIEWS + many_reviews(40)
    assert_same(list(model.predict_stream(texts, 8, window=32)), texts,
                padded_reference(model, texts))
    assert model.predict_texts(["great"])[0].text == "great"
    assert set(widths) == {MAXLEN}


def test_streams_batch_similar_lengths_and_run_only_the_steps_needed(trimming, monkeypatch):
    model = OnnxModel(trimming, workers=1)
    calls = []
    run = model._run
    monkeypatch.setattr(model, "_run", lambda x: (calls.append(x.copy()), run(x))[1])
    short, long = ["great film"] * 8, ["the plot " * 10] * 8
    texts = [t for pair in zip(short, long) for t in pair]  # alternate: input order mixes them
    list(model.predict_stream(texts, batch_size=8))
    assert [c.shape for c in calls] == [(8, 3), (8, MAXLEN)]
    assert all((c[:, 0] != text.PAD).any() or c.shape[1] == MAXLEN for c in calls)


def test_plan_batches_covers_each_review_once():
    lengths = np.array([5, 0, 30, 2, 2, 11, 7, 1, 40, 3])
    plan = plan_batches(lengths, 3, maxlen=12, trim=True)
    rows = np.concatenate([r for r, _ in plan])
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    for r, width in plan:
        assert width == min(12, 1 + lengths[r].max())
    assert [w for _, w in plan] == sorted(w for _, w in plan)
    assert all(w == 12 for _, w in plan_batches(lengths, 3, 12, trim=True, full_length_batch=2))
    assert plan_batches(lengths, 4, 12, trim=False) == [(slice(0, 4), 12), (slice(4, 8), 12),
                                                        (slice(8, 10), 12)]


def test_a_batch_ends_where_padding_would_cost_more_than_another_call():
    from rnncli.serve.onnx_model import CALL_STEPS, PAD_SLACK

    lengths = np.array([3] * 50 + [60] + [4] * 30)
    plan = plan_batches(lengths, 64, maxlen=100, trim=True)
    # The long review is not padded into the short ones' batches, nor they up to it.
    assert [(len(r), w) for r, w in plan] == [(64, 5), (16, 5), (1, 61)]
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 400, 3000)
    plan = plan_batches(lengths, 256, maxlen=500, trim=True, max_tokens=10**9)
    for rows, width in plan:
        real = int(np.sum(lengths[rows] + 1))
        assert len(rows) * width - real <= CALL_STEPS + PAD_SLACK * real
    assert max(len(r) for r, _ in plan) == 256


@pytest.mark.parametrize("trim", [True, False])
def test_no_call_holds_more_ids_than_the_budget(trim):
    """A call's activations grow with rows x width: large batch sizes on long reviews are
    split so that memory stays bounded whatever --batch-size says."""
    lengths = np.random.default_rng(1).integers(1, 600, 5000)
    plan = plan_batches(lengths, 1024, maxlen=500, trim=trim, max_tokens=20_000)
    rows = np.concatenate([np.arange(len(lengths))[r] for r, _ in plan])
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    assert all(len(np.arange(len(lengths))[r]) * w <= 20_000 for r, w in plan)
    # Short reviews still share large calls: the budget cuts rows only where they are long.
    assert max(len(np.arange(len(lengths))[r]) for r, _ in plan) > (100 if trim else 39)


class _RecordingModel(OnnxModel):
    """Notes which process encoded each window."""

    def encode(self, texts):
        import os

        encoded = super().encode(texts)
        encoded.pid = os.getpid()
        return encoded

    def probabilities(self, encoded, batch_size=256):
        self.pids.append(encoded.pid)
        return super().probabilities(encoded, batch_size)


def test_large_inputs_are_encoded_in_worker_processes(trimming):
    import os

    model = _RecordingModel(trimming, workers=2)
    model.pids = []
    texts = [t + " the plot" * 30 for t in many_reviews(100)]  # long enough to pay
    assert_same(list(model.predict_stream(texts, 4, window=10)), texts,
                padded_reference(model, texts))
    assert len(model.pids) == 10 and os.getpid() not in model.pids
    model.pids = []  # one window: not worth starting processes
    list(model.predict_stream(texts[:10], 4, window=10))
    assert model.pids == [os.getpid()]
    model.pids = []  # short reviews: the parent's own work per review dominates
    list(model.predict_stream(["great film"] * 100, 4, window=10))
    assert model.pids == [os.getpid()] * 10


def test_no_worker_processes_beside_a_loaded_tensorflow(trimming, monkeypatch):
    """Forking a process whose TensorFlow thread pools hold locks can hang the child."""
    import os
    import sys
    import types

    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    model = _RecordingModel(trimming, workers=2)
    model.pids = []
    texts = [t + " the plot" * 30 for t in many_reviews(100)]
    assert_same(list(model.predict_stream(texts, 4, window=10)), texts,
                padded_reference(model, texts))
    assert model.pids == [os.getpid()] * 10


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stream_reads_its_input_as_it_goes(trimming, workers):
    model = OnnxModel(trimming, workers=workers)
    endless = itertools.cycle(["great film", "awful plot"])
    first = list(itertools.islice(model.predict_stream(endless, 4, window=8), 10))
    assert [p.text for p in first] == ["great film", "awful plot"] * 5


# ---------------------------------------------------------------- untrusted model files

@pytest.mark.parametrize(
    "key, value, says",
    [
        ("rnncli.maxlen", "0", "rnncli.maxlen is 0"),
        ("rnncli.maxlen", "10000000000", "rnncli.maxlen is 10000000000"),
        ("rnncli.maxlen", "12.5", "rnncli.maxlen is 12.5"),
        ("rnncli.vocabulary", "the film great", "rnncli.vocabulary is not JSON"),
        ("rnncli.vocabulary", '{"the": 3}', "rnncli.vocabulary is not a list of words"),
        ("rnncli.vocabulary", '["the", 4]', "rnncli.vocabulary is not a list of words"),
        ("rnncli.padding", "middle", "rnncli.padding is 'middle'"),
        ("rnncli.truncating", "", "rnncli.truncating is ''"),
        ("rnncli.num_words", '"10"', "rnncli.num_words is '10'"),
        ("rnncli.num_words", "true", "rnncli.num_words is True"),
        ("rnncli.threshold", "1.5", "rnncli.threshold is 1.5"),
        ("rnncli.threshold", "-0.1", "rnncli.threshold is -0.1"),
        ("rnncli.threshold", "NaN", "rnncli.threshold is nan"),
        ("rnncli.threshold", '"0.5"', "rnncli.threshold is '0.5'"),
        ("rnncli.labels", '["only one"]', "rnncli.labels are not 2 to 1,000 distinct names"),
        ("rnncli.labels", '["\\u001b", "pos"]', "rnncli.labels are not 2 to 1,000 distinct names"),
        ("rnncli.trim_padding", '"yes"', "rnncli.trim_padding is not true or false"),
        ("rnncli.maxlen", None, "lacks rnncli.maxlen"),
        ("rnncli.full_length_batch", "many", "rnncli.full_length_batch is 'many'"),
    ],
)
def test_bad_metadata_is_one_line_naming_the_value(tmp_path, key, value, says):
    path = tmp_path / "bad.onnx"
    save_model(path, meta={key: value})
    if value is None:  # drop the key
        proto = onnx.load(str(path))
        kept = [p for p in proto.metadata_props if p.key != key]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        onnx.save(proto, str(path))
    with pytest.raises(ModelError, match="re-export it with `rnncli export onnx`") as err:
        OnnxModel(path)
    assert says in str(err.value) and str(path) in str(err.value)
    res = invoke("predict", "great film", "--model", str(path))
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and says in res.stderr
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    "graph, says",
    [
        (dict(input_type=TensorProto.FLOAT), "takes tensor(float)"),
        (dict(input_type=TensorProto.INT64), "takes tensor(int64)"),
        (dict(extra_input=True), "takes tensor(int32) ['batch', 'steps'], tensor(int32)"),
        (dict(output_type=TensorProto.INT32), "gives tensor(int32)"),
        (dict(output_type=TensorProto.DOUBLE), "gives tensor(double)"),
        (dict(steps=MAXLEN + 3), f"takes {MAXLEN + 3} steps"),
    ],
)
def test_a_foreign_graph_with_rnncli_metadata_is_refused(tmp_path, graph, says):
    path = save_model(tmp_path / "foreign.onnx", proto=_graph(**graph))
    with pytest.raises(ModelError, match="re-export it with `rnncli export onnx`") as err:
        OnnxModel(path)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_fixed_width_graph_cannot_claim_to_trim(tmp_path):
    path = save_model(tmp_path / "claims.onnx", proto=_graph(steps=MAXLEN), trim=True)
    with pytest.raises(ModelError, match=f"takes {MAXLEN} steps.*and shorter rows"):
        OnnxModel(path)


def test_a_graph_that_fails_on_its_input_is_a_model_error(tmp_path):
    path = save_model(tmp_path / "small-table.onnx", proto=_graph(table_rows=4))
    res = invoke("predict", "great film", "--model", str(path))
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "failed on a batch" in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv"])
def test_labels_from_a_model_reach_the_terminal_without_control_characters(tmp_path, fmt):
    labels = ["\x1b[31mbad\x1b[0m\x07", "go\x1b]0;owned\x07od\u202e"]
    path = save_model(tmp_path / "ansi.onnx", labels=labels)
    assert OnnxModel(path).preprocessing.labels == ["[31mbad[0m", "go]0;ownedod"]
    res = invoke("predict", "great film", "awful", "--model", str(path),
                              "--format", fmt)
    assert res.exit_code == 0, res.output
    assert "[31mbad[0m" in res.stdout or "go]0;ownedod" in res.stdout
    assert not any(c in res.stdout for c in "\x1b\x07\u202e")
    if fmt == "json":
        assert {r["label"] for r in json.loads(res.stdout)} <= {"[31mbad[0m", "go]0;ownedod"}


@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_only_the_end_a_model_reads_is_tokenized_and_it_gives_the_same_input(
        tmp_path, monkeypatch, truncating, padding):
    model = OnnxModel(save_model(tmp_path / "m.onnx", truncating=truncating, padding=padding))
    prep = model.preprocessing
    wordy = "great film " * 40
    texts = [wordy, "!!!!!!!!!! " * 30 + "plot " * 3, "plot " * 3 + "?!?!?!?!? " * 30,
             "<a href='awful awful'>" + " the" * 40, *many_reviews(60)]
    seen = []
    encode_many = text.Vocabulary.encode_many
    monkeypatch.setattr(text.Vocabulary, "encode_many",
                        lambda self, ts, n=None: (seen.extend(ts), encode_many(self, ts, n))[1])
    enc = prep.encode_flat(texts)
    x = prep.pad(enc, slice(None), MAXLEN)
    full = text.pad_sequences([prep.encode_one(t)[0] for t in texts], MAXLEN, padding,
                              truncating)
    np.testing.assert_array_equal(x, full)
    assert enc.known.tolist() == (full > text.OOV).sum(axis=1).tolist()
    assert len(seen[0]) < len(wordy) / 2  # a long review: only its end was tokenized
    assert texts[1] in seen or texts[2] in seen  # a wordy end: tokenized whole after all
