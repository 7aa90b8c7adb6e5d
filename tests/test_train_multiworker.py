"""`--strategy multi-worker`: two worker processes on 127.0.0.1 train one model together.

Both end with the same weights; the chief's run folder holds them; the other worker writes
nothing; and the two together compute what one worker computes over the same batches.
"""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import TRAINS

from rnncli.config import run_files

pytestmark = TRAINS

TINY = ["--maxlen", "20", "--num-words", "30", "--units", "4", "--embedding-dim", "8",
        "--batch-size", "8", "--epochs", "2", "--keep-last"]


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start(cwd, tf_config):
    cwd.mkdir()
    env = dict(os.environ, RNNCLI_TF_LOGS="")
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, "-m", "rnncli", "train", *TINY, "--strategy", "multi-worker",
         "--output", "run"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def finish(proc):
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    return out, err


def test_two_workers_train_one_model(prepared, tmp_path):
    from rnncli.model.runtime import load_keras_model
    from rnncli.train.tracking import weights_fingerprint

    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = [start(tmp_path / name, {"cluster": cluster, "task": {"type": "worker", "index": i}})
             for i, name in enumerate(("chief", "worker"))]
    # One worker alone, for the arithmetic.
    single = start(tmp_path / "single", {"cluster": {"worker": [f"127.0.0.1:{free_ports(1)[0]}"]},
                                         "task": {"type": "worker", "index": 0}})
    (chief_out, chief_err), (worker_out, _) = (finish(p) for p in procs)
    finish(single)

    fingerprints = [re.search(r"weights fingerprint (\w+)", out).group(1)
                    for out in (chief_out, worker_out)]
    assert fingerprints[0] == fingerprints[1], (chief_out, worker_out)
    assert "worker 1 of 2: trained 2 epochs with the chief" in worker_out
    assert "2 workers" in chief_out and "epoch 2/2" in chief_err

    folder = tmp_path / "chief" / "run"
    for name in (run_files.MODEL, run_files.BEST, run_files.CONFIG, run_files.PREPROCESSING,
                 run_files.HISTORY_JSON):
        assert (folder / name).exists(), name
    assert not (folder / run_files.STAGING).exists()
    assert list((tmp_path / "worker").iterdir()) == [], "only the chief writes"
    weights = load_keras_model(folder / run_files.MODEL).get_weights()
    assert weights_fingerprint(weights) == fingerprints[0]

    # Each worker computed half of every batch's gradient; summed, they are one worker's.
    alone = load_keras_model(tmp_path / "single" / "run" / run_files.MODEL).get_weights()
    for a, b in zip(weights, alone):
        np.testing.assert_allclose(a, b, atol=1e-6)
    together = json.loads((folder / run_files.HISTORY_JSON).read_text())["epochs"]
    one = json.loads((tmp_path / "single" / "run" / run_files.HISTORY_JSON).read_text())["epochs"]
    for a, b in zip(together, one):
        assert a["val_accuracy"] == b["val_accuracy"]
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)


def test_a_lost_worker_ends_the_run_in_one_line_and_other_errors_stay_themselves(monkeypatch):
    """What a worker sees when another's process ends mid-run (measured: the collective
    step raises this message); any other TensorFlow error is not disguised as it."""
    import tensorflow as tf

    from rnncli.errors import TrainingError
    from rnncli.train import distributed

    def raises(exc):
        def fit(*args):
            raise exc
        return fit

    monkeypatch.setattr(distributed, "_fit_together", raises(tf.errors.UnavailableError(
        None, None, "Graph execution error:\n\nCollective ops is aborted by: recvmsg:Connection "
                    "reset by peer\nAdditional GRPC error information from remote target")))
    with pytest.raises(TrainingError) as lost:
        distributed.fit_together(None, None, None, None, None)
    assert str(lost.value).startswith(
        "Lost another worker (Collective ops is aborted by: recvmsg:Connection reset by peer)")
    assert "\n" not in str(lost.value) and "--overwrite" in str(lost.value)
    monkeypatch.setattr(distributed, "_fit_together", raises(
        tf.errors.InvalidArgumentError(None, None, "shapes differ")))
    with pytest.raises(tf.errors.InvalidArgumentError):
        distributed.fit_together(None, None, None, None, None)


def test_a_worker_whose_peer_never_starts_ends_on_its_timeout_and_on_ctrl_c(prepared,
                                                                            tmp_path):
    """TensorFlow waits for the peer inside MultiWorkerMirroredStrategy() holding the GIL:
    Ctrl-C and SIGTERM used to do nothing there, and nothing limited the wait. Now the
    command's parent process ends it: at --worker-timeout, and on Ctrl-C, each in one line,
    with the run folder as it was."""
    import signal
    import time

    ports = free_ports(4)
    clusters = {"timed": {"worker": [f"127.0.0.1:{p}" for p in ports[:2]]},
                "waiting": {"worker": [f"127.0.0.1:{p}" for p in ports[2:]]}}

    def lone_worker(name, *extra):
        (tmp_path / name).mkdir()
        config = {"cluster": clusters[name], "task": {"type": "worker", "index": 0}}
        env = dict(os.environ, RNNCLI_TF_LOGS="", TF_CONFIG=json.dumps(config))
        return subprocess.Popen(
            [sys.executable, "-m", "rnncli", "train", *TINY, "--strategy", "multi-worker",
             "--output", "run", *extra], cwd=tmp_path / name, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    timed = lone_worker("timed", "--worker-timeout", "3")
    waiting = lone_worker("waiting")
    for line in iter(waiting.stderr.readline, ""):  # TensorFlow has loaded: it waits now
        if line.startswith("worker 0 of 2: waiting up to 300 s for the other workers"):
            break
    sent = time.monotonic()
    waiting.send_signal(signal.SIGINT)
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 130, err
    assert time.monotonic() - sent < 15
    assert err.splitlines() == [
        "Error: Interrupted while waiting for the other workers to join: worker 0 ended "
        "(its unfinished run removed: run is as it was)."]

    out, err = timed.communicate(timeout=120)
    assert timed.returncode == 1, err
    assert out == "" and "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"Error: Worker 0 of 2: the other workers ({clusters['timed']['worker'][1]}) did not "
        "all join "
        "within 3 s (its unfinished run removed: run is as it was): start the same command "
        "on each of them with its own TF_CONFIG, or raise --worker-timeout.")
    for name in ("timed", "waiting"):
        assert not (tmp_path / name / "run").exists(), "the folder was made for the run"
