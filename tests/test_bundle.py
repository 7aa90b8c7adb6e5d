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
