"""Every `--json` output is strict JSON: a NaN or infinity is written as null, never as the
invalid tokens NaN / Infinity that Python's json module emits by default."""

import json
from types import SimpleNamespace

import pytest
from conftest import invoke

from rnncli.cli.common import json_text
from rnncli.config import run_files
from rnncli.model import runtime as tf_runtime


def strict_loads(text: str):
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("args", [
    ["data", "info", "--json"],
    ["data", "info", "--json", "--num-words", "10"],
    ["data", "decode", "0", "--json"],
    ["data", "lengths", "--json", "--maxlen", "5"],
    ["evaluate", "--limit", "1", "--json"],  # one review: ROC AUC is undefined (NaN)
    ["evaluate", "--limit", "4", "--split", "train", "--json"],
    ["predict", "great film", "--format", "json"],
])
def test_json_outputs_parse_strictly(prepared, args):
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    data = strict_loads(res.stdout)
    if args[0] == "evaluate" and "1" in args:
        assert data["roc_auc"] is None


def test_jsonl_lines_parse_strictly(prepared):
    res = invoke("predict", "-", "--format", "jsonl", input="great film\n\nbad\n")
    assert res.exit_code == 0, res.output
    assert [strict_loads(line)["line"] for line in res.stdout.splitlines()] == [1, 2, 3]


def test_export_report_with_rejected_candidates_is_strict(monkeypatch, tmp_path):
    """A rejected graph has no difference, latency or throughput: NaN in the report."""
    import rnncli.export.onnx

    nan = float("nan")
    report = SimpleNamespace(
        output=tmp_path / "artifacts" / run_files.ONNX, chosen="native", size_bytes=10, reviews=8,
        real_reviews=True, atol=1e-5, quantized={}, recorded={}, cascade={},
        candidates=[SimpleNamespace(name="native", status="valid", max_diff=1e-7,
                                    latency_us=50.0, throughput=1e5, size_bytes=10, error=None),
                    SimpleNamespace(name="tf2onnx", status="rejected", max_diff=nan,
                                    latency_us=nan, throughput=float("inf"), size_bytes=0,
                                    error="did not convert")])
    monkeypatch.setattr(rnncli.export.onnx, "export_onnx", lambda *a, **k: report)
    # The export is a stand-in: a base install (tools/check_minimums.py) runs this too.
    monkeypatch.setattr(tf_runtime, "require_training_extra", lambda *a, **k: None)
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / run_files.MODEL).write_bytes(b"")
    res = invoke("export", "onnx", "--json")
    assert res.exit_code == 0, res.output
    rejected = strict_loads(res.stdout)["candidates"][1]
    assert rejected["max_abs_diff"] is None and rejected["reviews_per_s"] is None


def test_json_text_nests_and_converts_numpy_scalars():
    import numpy as np

    data = {"a": [1.5, float("nan"), {"b": np.float32("inf")}], "c": np.int64(3), "d": None}
    assert strict_loads(json_text(data)) == {"a": [1.5, None, {"b": None}], "c": 3, "d": None}
