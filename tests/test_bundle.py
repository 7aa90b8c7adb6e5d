"""Writing the bundled model: weights moved to a data file, probabilities unchanged, and a
model that loads after every step (tiny ONNX graphs from test_inference, no TensorFlow)."""

import numpy as np
import pytest
from test_inference import _graph, many_reviews, save_model

from rnncli.errors import ModelError
from rnncli.serve.onnx_model import OnnxModel
from tools import bundle

onnx = pytest.importorskip("onnx")


def reversed_table(rows):
    """The test graph with its table's rows in reverse order: other probabilities."""
    proto = _graph(table_rows=rows)
    table = next(t for t in proto.graph.initializer if t.name == "table")
    values = onnx.numpy_helper.to_array(table)
    table.CopyFrom(onnx.numpy_helper.from_array(np.ascontiguousarray(values[::-1]), "table"))
    return proto


def probabilities(path):
    return [p.probability for p in OnnxModel(path, workers=1).predict_texts(many_reviews(40))]


def external(path):
    proto = onnx.load(str(path), load_external_data=False)
    return {t.name: {e.key: e.value for e in t.external_data} for t in proto.graph.initializer
            if t.data_location == onnx.TensorProto.EXTERNAL}


def test_large_weights_go_to_a_data_file_and_probabilities_stay(tmp_path):
    source = save_model(tmp_path / "source.onnx", proto=_graph(table_rows=600))
    target = tmp_path / "bundled" / "model.onnx"
    data = bundle.bundle(source, target)
    assert data.parent == target.parent and data.name.startswith("model.")
    moved = external(target)
    assert set(moved) == {"table"} and moved["table"]["location"] == data.name
    assert target.stat().st_size < source.stat().st_size - 2000
    assert probabilities(target) == probabilities(source)
    assert OnnxModel(target).metadata == OnnxModel(source).metadata
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, data.name])


def test_a_new_bundle_replaces_the_old_pair_and_a_failed_one_keeps_it(tmp_path, monkeypatch):
    first = save_model(tmp_path / "first.onnx", proto=_graph(table_rows=600))
    second = save_model(tmp_path / "second.onnx", proto=reversed_table(600))
    target = tmp_path / "bundled" / "model.onnx"
    old = bundle.bundle(first, target)
    new = bundle.bundle(second, target)
    assert new != old and not old.exists()
    assert [p.name for p in target.parent.glob("*.data")] == [new.name]
    expected = probabilities(second)
    assert expected != probabilities(first)

    def interrupted(path, data):
        if path == target:
            raise KeyboardInterrupt
        return write(path, data)

    write = bundle.atomic_write_bytes
    monkeypatch.setattr(bundle, "atomic_write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bundle.bundle(first, target)
    assert probabilities(target) == expected, "the previous pair still loads, unchanged"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]


def test_a_file_without_rnncli_metadata_is_refused_before_anything_is_written(tmp_path):
    source = tmp_path / "plain.onnx"
    onnx.save(_graph(table_rows=600), str(source))
    target = tmp_path / "bundled" / "model.onnx"
    with pytest.raises(ModelError, match="no rnncli metadata"):
        bundle.bundle(source, target)
    assert not target.parent.exists() or not any(target.parent.iterdir())


def test_data_names_follow_the_bytes():
    assert bundle.data_name("model.onnx", b"a") == bundle.data_name("model.onnx", b"a")
    assert bundle.data_name("model.onnx", b"a") != bundle.data_name("model.onnx", b"b")
    assert bundle.data_name("model.onnx", b"a").startswith("model.")


def test_a_graph_file_moved_without_its_data_file_says_so(tmp_path):
    source = save_model(tmp_path / "source.onnx", proto=_graph(table_rows=600))
    target = tmp_path / "bundled" / "model.onnx"
    bundle.bundle(source, target)
    alone = tmp_path / "alone" / "model.onnx"
    alone.parent.mkdir()
    alone.write_bytes(target.read_bytes())
    with pytest.raises(ModelError, match="weights file is missing") as err:
        OnnxModel(alone)
    assert "\n" not in str(err.value)


def test_a_model_whose_tensors_are_all_small_is_bundled_whole(tmp_path):
    """Nothing reaches EXTERNAL_FROM bytes: the graph file holds it all, with no data file,
    and the data file of the previous bundle goes."""
    big = save_model(tmp_path / "big.onnx", proto=_graph(table_rows=600))
    small = save_model(tmp_path / "small.onnx")  # a 10-row table: 40 bytes
    target = tmp_path / "bundled" / "model.onnx"
    assert bundle.bundle(big, target) is not None
    assert bundle.bundle(small, target) is None
    assert external(target) == {}
    assert probabilities(target) == probabilities(small)
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def bundled_at(monkeypatch, target):
    """main() writes `target`, never the package's own bundled model, even in a version of
    bundle.py that binds its default target at import."""
    monkeypatch.setattr(bundle, "BUNDLED", target)
    monkeypatch.setattr(bundle.bundle, "__defaults__", (target,))


def test_main_says_what_it_wrote_in_one_line(tmp_path, monkeypatch, capsys):
    target = tmp_path / "bundled" / "model.onnx"
    bundled_at(monkeypatch, target)
    assert bundle.main([str(save_model(tmp_path / "small.onnx"))]) == 0
    assert capsys.readouterr().out.strip() == (
        f"{target} ({target.stat().st_size:,} bytes) (no data file: every tensor is under "
        f"{bundle.EXTERNAL_FROM:,} bytes)")
    assert bundle.main([str(tmp_path / "missing.onnx")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_ctrl_c_while_writing_is_one_line_and_leaves_the_old_pair(tmp_path, monkeypatch,
                                                                  capsys):
    first = save_model(tmp_path / "first.onnx", proto=_graph(table_rows=600))
    second = save_model(tmp_path / "second.onnx", proto=reversed_table(600))
    target = tmp_path / "bundled" / "model.onnx"
    bundled_at(monkeypatch, target)
    before = bundle.bundle(first, target)
    expected = probabilities(target)
    write = bundle.atomic_write_bytes

    def interrupted(path, data):
        if path == target:  # the new data file is written by now
            raise KeyboardInterrupt
        return write(path, data)

    monkeypatch.setattr(bundle, "atomic_write_bytes", interrupted)
    try:
        code = bundle.main([str(second)])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main(): a traceback, not one line")
    assert code == 130
    err = capsys.readouterr().err
    assert err.startswith("Interrupted: nothing half-written is left") and err.count("\n") == 1
    assert probabilities(target) == expected
    assert sorted(p.name for p in target.parent.iterdir()) == [before.name, target.name], (
        "neither the new data file nor a staging folder stays behind")


def test_what_a_killed_run_left_is_removed_by_the_next(tmp_path):
    """SIGKILL runs no cleanup: its staging folder, its temporary files and a data file no
    graph points to are removed at the next run; a running one's folder is left alone."""
    from rnncli.fsutil import exclusive_lock

    source = save_model(tmp_path / "source.onnx", proto=_graph(table_rows=600))
    target = tmp_path / "bundled" / "model.onnx"
    old = bundle.bundle(source, target)
    killed = target.parent / ".bundle-k1ll3d"
    killed.mkdir()
    (killed / "model.onnx").write_bytes(b"half a graph")
    (killed / bundle.LOCK).touch()
    leftovers = [killed, target.parent / ".model.tmp-abc123.onnx",
                 target.parent / "model.0123456789ab.data"]
    for path in leftovers[1:]:
        path.write_bytes(b"partial")
    running = target.parent / ".bundle-running"
    running.mkdir()
    with exclusive_lock(running / bundle.LOCK):
        assert bundle.remove_leftovers(target) == [killed]
        assert running.exists() and all(p.exists() for p in leftovers[1:])
    data = bundle.bundle(source, target)
    assert data == old
    assert sorted(p.name for p in target.parent.iterdir()) == [data.name, target.name]
    assert probabilities(target) == probabilities(source)


def test_a_run_killed_with_sigkill_is_cleaned_up_by_the_next(tmp_path):
    """The real thing: a bundle killed while its copy is staged leaves its folder behind
    (nothing runs on SIGKILL); the next bundle removes it."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    source = save_model(tmp_path / "source.onnx", proto=_graph(table_rows=600))
    target = tmp_path / "bundled" / "model.onnx"
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "from pathlib import Path\n"
        "from tools import bundle\n"
        "from rnncli.serve import onnx_model\n"
        "real = onnx_model.OnnxModel.predict_texts\n"
        "calls = []\n"
        "def staged(self, *args, **kwargs):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 2:  # the staged copy's check\n"
        "        print('staged', flush=True)\n"
        "        time.sleep(120)\n"
        "    return real(self, *args, **kwargs)\n"
        "onnx_model.OnnxModel.predict_texts = staged\n"
        f"bundle.bundle(Path({str(source)!r}), Path({str(target)!r}))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "staged"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    left = list(target.parent.glob(f"{bundle.STAGING}*"))
    assert len(left) == 1 and (left[0] / "model.onnx").exists()
    data = bundle.bundle(source, target)
    assert sorted(p.name for p in target.parent.iterdir()) == [data.name, target.name]
