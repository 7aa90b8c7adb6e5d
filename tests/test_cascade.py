"""The cascade (export/cascade.py): the n-gram head decides the reviews it is sure of and the
network runs on the rest, in one graph; the threshold input turns it off."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import invoke, one_line_error

from rnncli.export.cascade import BUDGET, calibrate, fit_cascade


def synthetic_scores(n: int = 4000, seed: int = 0):
    """Labels, a head logit that is right far from 0 and often wrong near it, and a joined
    model that is right more often near 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    head = (2 * y - 1) * rng.exponential(2.0, n) + rng.normal(0, 0.8, n)
    joined = np.where(rng.random(n) < 0.93, y, 1 - y) * 0.8 + 0.1
    return head, joined, y


def joined_scores(n: int = 4000, seed: int = 0):
    """Labels, a head logit as synthetic_scores', and a joined model that adds a network's
    logit to it: the two differ near the head's 0, where the joined model is unsure too."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    head = (2 * y - 1) * rng.exponential(2.0, n) + rng.normal(0, 0.8, n)
    net = (2 * y - 1) * 1.5 + rng.normal(0, 1.5, n)
    return head, 1 / (1 + np.exp(-(0.8 * head + 0.8 * net))), y


def test_calibration_recovers_a_logistic_model():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2, 50_000)
    y = rng.random(50_000) < 1 / (1 + np.exp(-(1.5 * x - 0.7)))
    alpha, beta = calibrate(x, y)
    assert alpha == pytest.approx(1.5, abs=0.06) and beta == pytest.approx(-0.7, abs=0.06)


def expected_cost(z: np.ndarray, joined: np.ndarray, t: float) -> float:
    """What stopping the reviews of margin >= t at the head costs, under the joined model's
    own probabilities: |2p - 1| where the two labels differ."""
    differ = (z > 0) != (joined > 0.5)
    return float(np.sum(np.where((np.abs(z) >= t) & differ, np.abs(2 * joined - 1), 0)) / len(z))


def test_the_threshold_is_the_smallest_within_the_expected_cost_budget():
    head, joined, y = joined_scores()
    c = fit_cascade(head, joined, y)
    z = c.alpha * head + c.beta
    sure = np.abs(z) >= c.threshold
    assert np.mean(np.where(sure, z > 0, joined > 0.5) == y) == pytest.approx(c.accuracy)
    assert c.exit_share == pytest.approx(sure.mean()) and 0.2 < c.exit_share < 1
    assert expected_cost(z, joined, c.threshold) <= BUDGET + 1e-12
    # The next smaller margin would spend more than the budget.
    below = np.abs(z)[np.abs(z) < c.threshold].max()
    assert expected_cost(z, joined, below) > BUDGET
    # A smaller budget sends fewer reviews to the head; almost none, when the head knows
    # nothing of the labels.
    assert fit_cascade(head, joined, y, budget=0.0).exit_share <= c.exit_share
    never = fit_cascade(np.random.default_rng(5).normal(0, 3, len(y)), joined, y)
    assert never.exit_share < 0.05


def test_labels_that_favour_the_head_by_luck_do_not_lower_the_threshold():
    """Where the head and the joined model differ, which one the label agrees with moves
    only the calibration: relabelling those reviews the head's way (luck a label count
    would spend) leaves the threshold where the joined model's confidence puts it."""
    head, joined, y = joined_scores(seed=2)
    c = fit_cascade(head, joined, y)
    differ = (head > 0) != (joined > 0.5)
    lucky = np.where(differ, head > 0, y).astype(np.int64)
    again = fit_cascade(head, joined, lucky)
    z = again.alpha * head + again.beta
    assert expected_cost(z, joined, again.threshold) <= BUDGET + 1e-12
    assert again.accuracy > again.joined_accuracy  # the labels now favour the head
    # A label count would let every review stop; the expected cost does not.
    assert again.exit_share < 0.99 and abs(again.exit_share - c.exit_share) < 0.05


@pytest.fixture(scope="module")
def head_graphs():
    """Tiny random-weight Keras models with the head, as every hand-built graph kind."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    from test_export_matrix import Case, make_config

    from rnncli.export.graph import build_graph
    from rnncli.model import runtime as tf_runtime

    tf_runtime.import_tensorflow()
    made = {}
    for i, combo in enumerate([("gru", "bi", "masked-max", 1), ("lstm", "uni", "last", 1)]):
        c = Case(make_config(*combo), seed=i, ngram_head=True)
        for kind in ("hybrid", "native-folded", "native", "unrolled"):
            made[combo[0], kind] = (c, build_graph(c.model, c.cfg, kind))
    return made


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hybrid", "native-folded", "native", "unrolled"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_both_paths_of_every_graph_kind(head_graphs, cell, kind):
    from rnncli.export.cascade import Cascade, add_cascade, check_cascade, head_model
    from rnncli.export.check import full_check, session

    c, proto = head_graphs[cell, kind]
    model, head = session(proto), session(head_model(proto))
    x = np.concatenate([c.x, c.x[::-1]])
    logit = head.run(None, {"ids": x})[0].ravel()
    # A threshold in the middle of the margins: some reviews stop, some go on.
    cascade = Cascade(alpha=1.3, beta=0.2, threshold=float(np.median(np.abs(1.3 * logit + 0.2))),
                      exit_share=0.5, accuracy=0.0, joined_accuracy=0.0, head_accuracy=0.0,
                      reviews=0)
    cascaded = add_cascade(proto, cascade)
    full_check(cascaded, "the cascade", "")
    sess = session(cascaded)
    assert check_cascade(model, head, sess, x, cascade) <= 1e-5
    joined = c.keras(x)
    off = sess.run(["probability"], {"ids": x, "cascade_threshold": np.array(np.inf, np.float32)})
    assert np.abs(off[0] - joined).max() <= 1e-5
    z = 1.3 * logit + 0.2
    for rows in ([0], [int(np.argmax(np.abs(z)))], list(range(len(x)))):  # one, all sure, all
        got = sess.run(["probability"], {"ids": x[rows]})[0].ravel()
        want = np.where(np.abs(z[rows]) >= cascade.threshold, 1 / (1 + np.exp(-z[rows])),
                        joined[rows].ravel())
        assert np.abs(got - want).max() <= 1e-5
    meta = {p.key: p.value for p in cascaded.metadata_props}
    assert json.loads(meta["rnncli.cascade"])["threshold"] == pytest.approx(cascade.threshold)


@pytest.mark.slow
def test_a_graph_without_the_head_has_no_cascade(head_graphs):
    from test_export_matrix import Case, make_config

    from rnncli.errors import GraphUnsupported
    from rnncli.export.cascade import add_cascade, split_graph
    from rnncli.export.graph import build_graph

    c = Case(make_config("gru", "uni", "last", 1), seed=7)
    proto = build_graph(c.model, c.cfg, "native")
    with pytest.raises(GraphUnsupported, match="n-gram head"):
        split_graph(proto.graph)
    with pytest.raises(GraphUnsupported, match="n-gram head"):
        add_cascade(proto, fit_cascade(*synthetic_scores()))


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_export_adds_the_cascade_and_serving_can_turn_it_off(_isolated, tmp_path):
    """A binary dataset of one's own, the head trained with the network: export fits the
    cascade on the validation share into the float, int8 and text files; predict and
    evaluate use it, and --no-cascade gives the joined model's probabilities."""
    from test_train_classes import SMALL, own_dataset

    from rnncli.config import run_files
    from rnncli.serve.onnx_model import OnnxModel

    own_dataset(_isolated, "yesno", ["billing", "bugs"], per_label=80)
    res = invoke("train", "--dataset", "yesno", *SMALL, "--epochs", "2", "--batch-size", "16",
                 "--ngram-head", "--output", "run")
    assert res.exit_code == 0, res.output
    res = invoke("export", "onnx", "--model", "run", "--quantize", "--text-input",
                 "--reviews", "40", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    run = tmp_path / "run"
    assert set(report["cascade"]) == {"run/model.onnx", "run/model.int8.onnx"}
    for figures in report["cascade"].values():
        assert figures["reviews"] == 32  # the last 20% of 160 training rows
        assert figures["joined_accuracy"] - figures["accuracy"] <= BUDGET + 1e-9
    reviews = ["refund the charge please", "the app crashed again", "invoice", "crash"]
    for path in (run / run_files.ONNX, run / "model.int8.onnx", run / run_files.ONNX_TEXT):
        on, off = OnnxModel(path), OnnxModel(path, cascade=False)
        assert on.has_cascade
        p_on = [p.probability for p in on.predict_texts(reviews)]
        p_off = [p.probability for p in off.predict_texts(reviews)]
        res = invoke("predict", "--model", path, *reviews, "--format", "jsonl", "--no-cascade")
        assert res.exit_code == 0, res.output
        got = [json.loads(line)["probability"] for line in res.stdout.splitlines()]
        assert got == pytest.approx(p_off, abs=1e-6)
        assert len(p_on) == len(reviews)
    res = invoke("evaluate", "--model", run / run_files.ONNX, "--no-cascade", "--json")
    assert res.exit_code == 0, res.output
    res = invoke("export", "onnx", "--model", "run", "--no-cascade", "--reviews", "40", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["cascade"] == {}
    assert not OnnxModel(run / run_files.ONNX).has_cascade


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_a_head_fitted_again_on_validation_gets_the_cascade_of_the_held_out_head(_isolated,
                                                                               tmp_path):
    """--ngram-refit: the run keeps what the cross-fitted heads made of the validation
    reviews, and the export fits the cascade on that, not on the head that has seen them; a
    run trained again without it leaves no such file behind."""
    from test_train_classes import SMALL, own_dataset

    from rnncli.config import run_files
    from rnncli.fsutil import read_json
    from rnncli.serve import contract
    from rnncli.serve.onnx_model import OnnxModel
    from rnncli.train.head import FOLDS

    own_dataset(_isolated, "yesno", ["billing", "bugs"], per_label=80)
    train = ["train", "--dataset", "yesno", *SMALL, "--epochs", "1", "--batch-size", "16",
             "--ngram-head", "--output", "run"]
    res = invoke(*train, "--ngram-refit")
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    details = read_json(run / run_files.HEAD_JSON)
    assert details["refit_reviews"] == 160 and details["cross_fit_folds"] == FOLDS
    with np.load(run / run_files.HEAD_HELD_OUT) as f:
        held = {k: f[k] for k in f.files}
    assert len(held["labels"]) == 32
    res = invoke("export", "onnx", "--model", "run", "--reviews", "40", "--json")
    assert res.exit_code == 0, res.output
    figures = json.loads(res.stdout)["cascade"]["run/model.onnx"]
    want = fit_cascade(held["head"], held["joined"], held["labels"])
    assert figures["alpha"] == pytest.approx(want.alpha, rel=1e-6)
    assert figures["threshold"] == pytest.approx(want.threshold, rel=1e-6)
    assert figures["budget"] == pytest.approx(BUDGET)
    # A budget of its own, in points: the threshold of that budget, stored in the file.
    res = invoke("export", "onnx", "--model", "run", "--reviews", "40", "--json",
                 "--cascade-budget", "0")
    assert res.exit_code == 0, res.output
    figures = json.loads(res.stdout)["cascade"]["run/model.onnx"]
    tight = fit_cascade(held["head"], held["joined"], held["labels"], budget=0.0)
    assert figures["threshold"] == pytest.approx(tight.threshold, rel=1e-6)
    assert figures["budget"] == 0.0
    stored = json.loads(OnnxModel(run / run_files.ONNX).metadata[contract.CASCADE])
    assert stored["threshold"] == pytest.approx(tight.threshold, rel=1e-6)
    (run / run_files.HEAD_HELD_OUT).write_bytes(b"not an npz")  # damaged: no cascade, no crash
    res = invoke("export", "onnx", "--model", "run", "--reviews", "40", "--json")
    assert res.exit_code == 0, res.output
    assert "cannot be read" in json.loads(res.stdout)["cascade"]["skipped"]
    res = invoke(*train, "--overwrite")
    assert res.exit_code == 0, res.output
    assert not (run / run_files.HEAD_HELD_OUT).exists()
    assert "cross_fit_folds" not in read_json(run / run_files.HEAD_JSON)


def test_the_cli_budget_is_the_exports_in_points():
    import inspect

    from rnncli.cli.export import onnx

    default = inspect.signature(onnx).parameters["cascade_budget"].default
    assert default == pytest.approx(100 * BUDGET)


@pytest.mark.parametrize("budget", ["-0.1", "101", "lots"])
def test_a_budget_out_of_range_is_refused_before_any_work(tmp_path, budget):
    res = invoke("export", "onnx", "--model", tmp_path, "--cascade-budget", budget)
    assert res.exit_code == 2
    assert "--cascade-budget" in res.output and "Traceback" not in res.output


def test_no_cascade_with_spark_is_refused(tmp_path):
    (tmp_path / "r.txt").write_text("great film\n")
    res = invoke("predict", "--engine", "spark", "--file", "r.txt", "--output", "o.parquet",
                 "--no-cascade")
    one_line_error(res, "--no-cascade is for local scoring", code=2)
