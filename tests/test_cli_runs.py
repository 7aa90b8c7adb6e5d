"""`rnncli runs`: run folders found and read from their files (config.json, history.json,
the ONNX files' metadata), as a table that fits 80 columns or as JSON; no TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke, modules_loaded, one_line_error

from rnncli.cli import runs as runs_cli
from rnncli.config import run_files
from rnncli.serve.contract import recorded_accuracy
from rnncli.serve.onnx_file import MAX_ENTRY, read_metadata


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def onnx_bytes(metadata: dict[str, str], graph_bytes: int = 200_000) -> bytes:
    """A ModelProto as protobuf: ir_version, a big graph field to skip, opset_import, and
    metadata_props (field 14), which real exports write after the graph."""
    body = varint(1 << 3 | 0) + varint(10)
    body += field(7, b"\x00" * graph_bytes)
    body += field(8, field(1, b"") + varint(2 << 3) + varint(17))
    for key, value in metadata.items():
        body += field(14, field(1, key.encode()) + field(2, value.encode()))
    return body


def make_run(folder: Path, *, cell="gru", units=64, layers=1, bidirectional=False,
             maxlen=80, num_words=1000, epochs=10, ran=10, best_epoch=7,
             exports=("onnx",), accuracy="0.851240") -> Path:
    folder.mkdir(parents=True)
    (folder / run_files.MODEL).write_bytes(b"not read")
    (folder / run_files.CONFIG).write_text(json.dumps({
        "data": {"maxlen": maxlen, "num_words": num_words},
        "model": {"cell": cell, "units": units, "layers": layers,
                  "bidirectional": bidirectional},
        "train": {"epochs": epochs, "monitor": "val_accuracy"}}))
    history = [{"epoch": e, "val_accuracy": 0.5 + e / 100, "val_loss": 1 - e / 100}
               for e in range(1, ran + 1)]
    (folder / run_files.HISTORY_JSON).write_text(json.dumps(
        {"epochs": history, "best_epoch": best_epoch, "best": 0.5 + best_epoch / 100}))
    meta = {"rnncli.graph": "hybrid", "rnncli.vocabulary": json.dumps(["w"] * 40_000)}
    if accuracy is not None:
        meta.update({"rnncli.test_accuracy": accuracy, "rnncli.test_reviews": "25000"})
    for short in exports:
        (folder / runs_cli.EXPORTS[short]).write_bytes(onnx_bytes(meta))
    return folder


@pytest.fixture
def three_runs(tmp_path):
    make_run(tmp_path / "artifacts", cell="simple", units=32, exports=("onnx", "int8", "text"))
    make_run(tmp_path / "artifacts" / "best", cell="gru", units=64, bidirectional=True,
             layers=2, num_words=30_000, maxlen=500, epochs=12, ran=9, best_epoch=6,
             exports=(), accuracy=None)
    make_run(tmp_path / "lstm", cell="lstm", exports=("onnx",), accuracy=None)
    (tmp_path / "notes").mkdir()  # not a run
    (tmp_path / "notes" / "todo.txt").write_text("")
    return tmp_path


def test_runs_lists_each_run_with_settings_best_epoch_and_exports(three_runs):
    res = invoke("runs")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["run", "network", "maxlen", "words", "epochs", "best", "val",
                                "exports", "test", "acc"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"artifacts", "artifacts/best", "lstm"}
    assert rows["artifacts"] == ["artifacts", "simple", "32", "80", "1,000", "10", "0.570",
                                 "@7", "onnx", "int8", "text", "0.8512"]
    assert rows["artifacts/best"] == ["artifacts/best", "bi-gru", "64x2", "500", "30,000",
                                      "9/12", "0.560", "@6", "-", "-"]
    assert rows["lstm"][-2:] == ["onnx", "-"]  # exported, no test accuracy recorded
    assert all(len(line) <= 80 for line in lines), res.stdout


def test_runs_json(three_runs):
    res = invoke("runs", "--json")
    assert res.exit_code == 0, res.output
    by_folder = {r["folder"]: r for r in json.loads(res.stdout)}
    best = by_folder["artifacts/best"]
    assert (best["cell"], best["units"], best["layers"], best["bidirectional"]) == (
        "gru", 64, 2, True)
    assert (best["maxlen"], best["num_words"], best["epochs"], best["epochs_run"]) == (
        500, 30_000, 12, 9)
    assert best["best_epoch"] == 6 and best["best_val_accuracy"] == pytest.approx(0.56)
    assert best["best_val_loss"] == pytest.approx(0.94) and best["exports"] == {}
    art = by_folder["artifacts"]
    assert set(art["exports"]) == {"onnx", "int8", "text"}
    onnx = art["exports"]["onnx"]
    assert onnx["path"] == str(Path("artifacts") / run_files.ONNX)
    assert (onnx["test_accuracy"], onnx["test_reviews"], onnx["graph"]) == (0.85124, 25_000,
                                                                            "hybrid")
    assert art["test_accuracy"] == 0.85124
    assert by_folder["lstm"]["test_accuracy"] is None


def test_runs_of_the_folders_named(three_runs):
    res = invoke("runs", "lstm", "artifacts/best", "--json")
    assert res.exit_code == 0, res.output
    assert [r["folder"] for r in json.loads(res.stdout)] == ["lstm", "artifacts/best"]
    one_line_error(invoke("runs", "notes"), "notes holds no run", code=2)
    one_line_error(invoke("runs", "missing"), "No folder missing", code=2)


def test_runs_when_there_are_none(tmp_path):
    res = invoke("runs")
    assert res.exit_code == 0 and res.stdout == ""
    assert "`rnncli train` makes one" in res.stderr
    assert json.loads(invoke("runs", "--json").stdout) == []


def test_a_run_folder_itself_and_a_damaged_history(tmp_path, monkeypatch):
    run = make_run(tmp_path / "r", exports=())
    (run / run_files.HISTORY_JSON).write_text("{not json")
    monkeypatch.chdir(run)
    res = invoke("runs", "--json")
    assert res.exit_code == 0, res.output
    [found] = json.loads(res.stdout)
    assert found["folder"] == "." and found["best_epoch"] is None
    assert found["epochs_run"] == 0


def test_metadata_read_skips_the_graph_and_long_entries(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_bytes({"rnncli.test_accuracy": "0.9", "rnncli.vocabulary": "x" * 99_999,
                                 "a": ""}))
    assert read_metadata(path) == {"rnncli.test_accuracy": "0.9", "a": ""}
    path.write_bytes(b"\xff" * 64)  # no protobuf
    assert read_metadata(path) == {}
    assert read_metadata(tmp_path / "none.onnx") == {}
    for text, accuracy in (("0.5", 0.5), ("nan", None), ("2", None), ("high", None)):
        assert recorded_accuracy({"rnncli.test_accuracy": text}) == accuracy


def test_metadata_read_agrees_with_onnxruntime_on_the_bundled_model():
    import onnxruntime as ort

    from rnncli.serve import contract
    from rnncli.serve.locate import BUNDLED

    want = ort.InferenceSession(str(BUNDLED)).get_modelmeta().custom_metadata_map
    got = read_metadata(BUNDLED)
    assert got == {k: v for k, v in want.items() if len(k) + len(v) < MAX_ENTRY}
    assert 0.9 < float(got[contract.TEST_ACCURACY]) < 1


def test_runs_loads_no_tensorflow(three_runs):
    mods, out, err = modules_loaded(["runs"], cwd=three_runs)
    assert "artifacts/best" in out, err
    loaded = {m.split(".")[0] for m in mods}
    assert not loaded & {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy"}
