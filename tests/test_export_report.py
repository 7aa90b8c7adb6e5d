"""What `rnncli export onnx` shows: a table that fits 80 columns, candidates beyond --atol as
"not chosen" with their difference, the int8 file's accuracy beside its difference, the
next command, progress on stderr only, and --verbose's reasons for the choice.

Most tests render a made-up report (export_onnx replaced), so they need no TensorFlow; the
last ones run the real export of the shared tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import invoke, own_run

from rnncli.config import run_files
from rnncli.export import onnx as onnx_export
from rnncli.export.onnx import Candidate, ExportReport
from rnncli.model import runtime as tf_runtime

LONG_REASON = ("tf2onnx could not convert it (ValueError: Cannot convert a symbolic "
               "tf.Tensor (while/lstm_cell/mul:0) to a numpy array. This error may indicate "
               "that you're trying to pass a Tensor to a NumPy call)")


def made_up_report(output) -> ExportReport:
    """Two valid graphs, one beyond --atol, one tf2onnx could not convert; an int8 file that
    moves accuracy; test metrics recorded, as their metadata strings."""
    nan = float("nan")
    return ExportReport(
        output=output, chosen="hybrid", reviews=25_000, real_reviews=True, atol=1e-5,
        size_bytes=34_000,
        candidates=[
            Candidate("hybrid", max_diff=5.96e-08, latency_us=17.0, throughput=798_595.0),
            Candidate("unrolled", max_diff=5.96e-08, latency_us=23.0, throughput=934_176.0),
            Candidate("native", status="mismatch", max_diff=2.31e-05,
                      error="max |ONNX - Keras| = 2.31e-05 on 25000 reviews exceeds --atol "
                            "1e-05"),
            Candidate("tf2onnx", status="rejected", max_diff=nan, error=LONG_REASON),
        ],
        quantized={"path": str(output.with_name("model.int8.onnx")), "size_bytes": 12_000,
                   "float_size_bytes": 34_000, "max_abs_diff": 0.259, "tensors": [{}],
                   "accuracy_float": 0.851, "accuracy_int8": 0.849},
        recorded={str(output): {"rnncli.test_accuracy": "0.851240",
                                "rnncli.test_reviews": "25000"}})


@pytest.fixture
def fake_export(tmp_path, monkeypatch):
    """`export onnx` of artifacts/ answers with made_up_report, after two progress notes."""
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / run_files.MODEL).write_bytes(b"")

    def export(ref, output, home, progress=None, **kwargs):
        if progress:
            progress("hybrid (1/4): building the graph")
            progress("hybrid (1/4): checking against Keras on 25,000 reviews")
        return made_up_report(output)

    monkeypatch.setattr(onnx_export, "export_onnx", export)
    # The export is a stand-in: a base install (tools/check_minimums.py) runs this too.
    monkeypatch.setattr(tf_runtime, "require_training_extra", lambda *a, **k: None)


def test_rejected_candidates_read_as_not_chosen_and_the_table_fits(fake_export):
    res = invoke("export", "onnx", "--atol", "1e-5")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), res.stdout
    row = {line.split()[0]: line for line in lines if line.split()}
    assert row["hybrid"].rstrip().endswith("chosen") and "5.96e-08" in row["hybrid"]
    assert "not chosen: max |diff| 2.31e-05 > --atol 1e-05" in row["native"]
    assert row["tf2onnx"].split(None, 1)[1].startswith("not chosen: rejected, tf2onnx could")
    assert "mismatch:" not in res.stdout and "exceeds" not in res.stdout
    assert "--verbose or --json shows it whole" in res.stderr  # the long reason was cut


def test_int8_difference_comes_with_its_accuracy_and_counts_have_separators(fake_export):
    res = invoke("export", "onnx")
    assert res.exit_code == 0, res.output
    assert ("int8: max |diff| 0.259, accuracy on 25,000 test reviews 0.8510 -> 0.8490"
            in res.stdout)
    assert "test accuracy 0.8512 on 25,000 reviews" in res.stdout
    assert "25000" not in res.stdout


def test_export_ends_with_the_next_command_on_stderr(fake_export):
    res = invoke("export", "onnx")
    assert res.exit_code == 0, res.output
    assert "next:" not in res.stdout
    assert "next: rnncli predict --model artifacts 'a wonderful, moving film'" in res.stderr
    res = invoke("export", "onnx", "--output", "elsewhere/m.onnx")
    assert "next: rnncli predict --model elsewhere/m.onnx" in res.stderr


@pytest.mark.parametrize("args", [[], ["--json"]])
def test_progress_goes_to_stderr_only(fake_export, args):
    res = invoke("export", "onnx", *args)
    assert res.exit_code == 0, res.output
    assert "export: hybrid (1/4): building the graph" in res.stderr
    assert "building" not in res.stdout
    if args:
        json.loads(res.stdout)  # nothing but the JSON


def test_verbose_explains_the_choice_on_stderr(fake_export):
    quiet = invoke("export", "onnx")
    assert "why hybrid" not in quiet.stderr + quiet.stdout
    res = invoke("export", "onnx", "--verbose")
    assert res.exit_code == 0, res.output
    assert "why" not in res.stdout
    why = " ".join(res.stderr.split())
    assert "why hybrid (--graph auto)" in why
    # hybrid: p50 best (17 µs), rate 798,595 / 934,176 = 0.85; unrolled: 17/23 = 0.74.
    assert "hybrid 0.85 (p50 1.00, rate 0.85)" in why
    assert "unrolled 0.74 (p50 0.74, rate 1.00)" in why
    assert "within 1.25x of the best score 0.85: hybrid, unrolled" in why
    assert "hybrid, native, native-folded, unrolled, tf2onnx wins" in why
    assert LONG_REASON in why  # whole, where the table cut it
    assert "native not chosen (mismatch)" in why
    res = invoke("export", "onnx", "--verbose", "--graph", "native")
    assert "--graph native asked for it" in " ".join(res.stderr.split())


PROBE = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from rnncli.export import onnx as onnx_export
from test_export_report import made_up_report
from rnncli.model import runtime
onnx_export.export_onnx = lambda ref, output, home, **kw: made_up_report(output)
runtime.require_training_extra = lambda *a, **k: None  # a stand-in export needs no extra
sys.argv = ["rnncli", "export", "onnx", "--verbose"]
from rnncli.cli import main
main()
"""


@pytest.mark.parametrize("columns", [80, 300])
def test_at_a_terminal_width_of_COLUMNS(tmp_path, columns):
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / run_files.MODEL).write_bytes(b"")
    tests = os.path.dirname(__file__)
    res = subprocess.run([sys.executable, "-c", PROBE.format(tests=tests)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COLUMNS": str(columns)})
    assert res.returncode == 0, res.stderr
    for line in res.stdout.splitlines() + res.stderr.splitlines():
        assert len(line) <= columns, line
    if columns > 80:
        assert LONG_REASON in res.stdout  # room enough: nothing cut


class FakeSession:
    """What check_outputs reads of an onnxruntime session: names, and outputs `offset`
    away from the reference."""

    def __init__(self, offset: float):
        self.offset = offset

    def get_inputs(self):
        return [SimpleNamespace(name="ids")]

    def get_outputs(self):
        return [SimpleNamespace(name="probability")]

    def run(self, names, feeds):
        return [np.full((len(feeds["ids"]), 1), 0.5 + self.offset, np.float32)]


@pytest.mark.parametrize("offset, status", [(2.5e-4, "mismatch"), (0.0, "valid")])
def test_a_candidate_beyond_atol_keeps_its_difference(monkeypatch, offset, status):
    monkeypatch.setattr(onnx_export, "_build", lambda *a: (SimpleNamespace(ByteSize=lambda: 9),
                                                           FakeSession(offset), False))
    monkeypatch.setattr(onnx_export, "time_graph", lambda sess, x: (10.0, 1000.0))
    said = []
    x = np.ones((8, 4), np.int32)
    cand = onnx_export._candidate("native", None, None, SimpleNamespace(maxlen=4, padding="pre"),
                                  17, x, np.full((8, 1), 0.5), 1e-5, said.append)
    assert cand.status == status
    assert cand.max_diff == pytest.approx(offset, abs=1e-7)
    if status == "mismatch":
        assert cand.error == "max |ONNX - Keras| = 0.00025 on 8 reviews exceeds --atol 1e-05"
        assert said == ["building the graph", "checking against Keras on 8 reviews"]
    else:
        assert said[-1] == "timing"


# --- the real export of the shared tiny model ---------------------------------------------


@pytest.fixture(scope="module")
def tiny_copy(tiny_run, tmp_path_factory):
    return own_run(tiny_run, tmp_path_factory.mktemp("report"))


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_real_export_says_what_it_builds_on_stderr(tiny_copy):
    home, run = tiny_copy
    res = invoke("export", "onnx", "--model", run, "--data-dir", home, "--json", "--quantize",
                 "--verbose")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    stages = [line for line in res.stderr.splitlines() if line.startswith("export: ")]
    for i, name in enumerate(("hybrid", "unrolled", "native", "native-folded", "tf2onnx"), 1):
        assert f"export: {name} ({i}/5): building the graph" in stages
        assert f"export: {name} ({i}/5): checking against Keras on 24 reviews" in stages
    assert "export: int8: quantizing the weights and checking against Keras" in stages
    assert f"why {report['chosen']} (--graph auto)" in res.stderr
