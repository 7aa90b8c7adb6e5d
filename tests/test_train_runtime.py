"""TensorFlow's process settings stay scoped: library calls leave the environment, the root
logger and file descriptor 2 as they found them; and a seed reproduces a run on the XLA path."""

import json
import logging
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rnncli.cli import app
from rnncli.config import run_files
from rnncli.model import runtime as tf_runtime
from rnncli.serve import locate
from rnncli.train import distributed

runner = CliRunner()
TINY = ["--maxlen", "20", "--num-words", "30", "--units", "4", "--embedding-dim", "8",
        "--batch-size", "8"]


def process_state():
    fd2 = os.fstat(2)
    return (dict(os.environ), logging.getLogger().level, logging.getLogger("tf2onnx").level,
            (fd2.st_dev, fd2.st_ino), sys.stderr)


def test_scopes_restore_what_they_change(monkeypatch):
    monkeypatch.delenv("RNNCLI_TF_LOGS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    before = process_state()
    with tf_runtime.quiet(hide_gpus=True):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "-1"
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
        assert logging.getLogger().level == logging.ERROR
        assert os.fstat(2).st_ino == os.stat(os.devnull).st_ino
    assert process_state() == before
    with pytest.raises(KeyError), tf_runtime.env_set(CUDA_VISIBLE_DEVICES=None):
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
        raise KeyError  # restored on the way out of an error too
    assert process_state() == before


@pytest.mark.parametrize("tf_config, role", [
    ({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, (0, 1, True)),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}},
     (0, 2, True)),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}},
     (1, 2, False)),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}},
     (1, 2, False)),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}},
     (0, 2, True)),
])
def test_worker_role_from_tf_config(monkeypatch, tf_config, role):
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    got = distributed.worker_role("multi-worker")
    assert (got.index, got.count, got.chief) == role
    assert distributed.worker_role("default").chief


WORKERS = ["127.0.0.1:23456", "127.0.0.1:23457"]


@pytest.mark.parametrize("tf_config, message", [
    (None, "--strategy multi-worker needs TF_CONFIG"),
    ("", "--strategy multi-worker needs TF_CONFIG"),
    ("{not json", "TF_CONFIG is not a valid cluster description (JSONDecodeError"),
    ({"cluster": {"worker": WORKERS}}, "TF_CONFIG is not a valid cluster description (KeyError"),
    ({"cluster": {"worker": WORKERS}, "task": {"type": "worker", "index": 2}},
     "TF_CONFIG's task index 2 is outside its cluster, which names 2 worker task(s) (indices 0 "
     "to 1)"),
    ({"cluster": {"worker": WORKERS}, "task": {"type": "worker", "index": -1}},
     "task index -1 is outside its cluster"),
    ({"cluster": {"worker": WORKERS}, "task": {"type": "worker", "index": "0"}},
     "TF_CONFIG's task index is '0': give a whole number"),
    ({"cluster": {"worker": WORKERS}, "task": {"type": "chief", "index": 0}},
     "TF_CONFIG's task type is 'chief', which its cluster does not name (it names 'worker')"),
    ({"cluster": {"worker": ["127.0.0.1:port", "b:2"]}, "task": {"type": "worker", "index": 0}},
     "TF_CONFIG's worker 0 is at '127.0.0.1:port', not host:port with a port number"),
    ({"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}},
     "not host:port with a port number"),
    ({"cluster": {"worker": ["a:70000"]}, "task": {"type": "worker", "index": 0}},
     "not host:port with a port number"),
    ({"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}},
     "TF_CONFIG's cluster gives 'worker' 'a:1': give a list"),
    ({"cluster": {"ps": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}},
     "TF_CONFIG's cluster names a 'ps' job"),
])
def test_bad_tf_config_is_one_line_before_anything_loads(monkeypatch, tf_config, message):
    """Refused in one line, without a prepared data home and without loading TensorFlow
    (a TF_CONFIG TensorFlow cannot use would otherwise be a traceback, or a wait for ever)."""
    from conftest import one_line_error

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config if isinstance(tf_config, str)
                           else json.dumps(tf_config))
    res = runner.invoke(app, ["train", "--strategy", "multi-worker", "--output", "run"])
    one_line_error(res, message, code=2)
    assert not (Path.cwd() / "run").exists()


@pytest.mark.slow
def test_library_train_and_export_change_no_process_state(prepared, tmp_path):
    pytest.importorskip("tf2onnx")
    import keras  # noqa: F401  (imports may set what they like; our calls may not)
    import tensorflow  # noqa: F401

    from rnncli.config import settings as config
    from rnncli.data import store as dataset
    from rnncli.export.onnx import export_onnx
    from rnncli.train.loop import train

    home = dataset.data_home(None)
    cfg = config.resolve(None, None, {"maxlen": 20, "num_words": 30, "units": 4,
                                      "embedding_dim": 8, "batch_size": 8, "epochs": 1,
                                      "jit_compile": False})
    before = process_state()
    py_rng, np_rng = random.getstate(), np.random.get_state()
    result = train(cfg, home, tmp_path / "run")
    assert random.getstate() == py_rng, "training restores the generators it seeds"
    assert np.array_equal(np.random.get_state()[1], np_rng[1])
    export_onnx(locate.find_model(tmp_path / "run"), tmp_path / "run" / run_files.ONNX, home,
                graph="tf2onnx")
    assert result.model and (tmp_path / "run" / run_files.ONNX).exists()
    after = process_state()
    changed = {k for k in set(before[0]) | set(after[0]) if before[0].get(k) != after[0].get(k)}
    assert changed == set()
    assert after[1:] == before[1:]

    from tensorflow.python.framework import config as tf_config

    assert not tf_config.is_op_determinism_enabled(), "the --no-jit run's switch stays on"
