"""`--strategy multi-worker` trains in a child process that the command watches: Ctrl-C,
SIGTERM and --worker-timeout end it promptly, in one line, even while the child is blocked
where no Python signal handler runs (TensorFlow waiting for peers that never start). The
children here stand in for TensorFlow: they announce as a worker does, then ignore SIGINT and
SIGTERM as a blocked one does; the real one is in test_train_multiworker.py."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rnncli.train import distributed
from rnncli.train.distributed import WorkerRole

CLUSTER = {"cluster": {"worker": ["127.0.0.1:23456", "127.0.0.1:23457"]},
           "task": {"type": "worker", "index": 0}}

# A worker that starts to wait for its peers and never returns: signals do nothing to it.
BLOCKED = """
import os, signal, sys, time
from rnncli.train import distributed
distributed.bind_to_parent()
open(sys.argv[1], "w").write(str(os.getpid()))
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
distributed.announce(distributed.JOINING)
time.sleep(600)
"""
# A worker whose peers joined, that keeps its work on Ctrl-C and says so itself.
TRAINING = """
import os, sys, time
from rnncli.train import distributed
distributed.bind_to_parent()
open(sys.argv[1], "w").write(str(os.getpid()))
distributed.announce(distributed.JOINING)
distributed.announce(distributed.JOINED)
print("epoch 1/9", file=sys.stderr, flush=True)
try:
    time.sleep(600)
except KeyboardInterrupt:
    print("Error: Interrupted; kept the model of epoch 1", file=sys.stderr)
    sys.exit(130)
"""
# The command, started as from a terminal: with Ctrl-C as Python's KeyboardInterrupt, what a
# script's background job or a runner started from one lacks (SIGINT ignored); IGNORE_SIGINT
# in its environment starts it as such a job.
DRIVER = """
import os, signal, sys
from rnncli.train import distributed
signal.signal(signal.SIGINT, signal.SIG_IGN if os.environ.get("IGNORE_SIGINT")
              else signal.default_int_handler)
role = distributed.WorkerRole(0, 2, True)
try:
    code = distributed.supervise([sys.executable, "-c", sys.argv[1], sys.argv[2]],
                                 dict(os.environ), float(sys.argv[3]), role,
                                 cleanup=lambda: "run is as it was",
                                 say=lambda line: sys.stderr.write(line + "\\n"))
except distributed.WorkerStopped as exc:
    sys.stderr.write(f"Error: {exc}\\n")
    sys.exit(exc.exit_code)
sys.exit(code)
"""


@pytest.fixture
def tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(CLUSTER))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone but for its parent's wait
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def gone(pid: int, within: float = 10.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def driver(tmp_path, child: str, timeout: float = 300, ignore_sigint: bool = False):
    env = {**os.environ, **({"IGNORE_SIGINT": "1"} if ignore_sigint else {})}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, child, str(tmp_path / "pid"),
                             str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    line = proc.stderr.readline()  # the parent's own line: the child is waiting
    return proc, line


def test_a_worker_whose_peers_never_join_ends_at_its_timeout(tf_config, tmp_path):
    started = time.monotonic()
    with pytest.raises(distributed.WorkerStopped) as stopped:
        distributed.supervise([sys.executable, "-c", BLOCKED, str(tmp_path / "pid")],
                              dict(os.environ), 1.0, WorkerRole(0, 2, True),
                              cleanup=lambda: "run is as it was")
    assert time.monotonic() - started < 15
    assert str(stopped.value) == (
        "Worker 0 of 2: the other workers (127.0.0.1:23457) did not all join within 1 s (run "
        "is as it was): start the same command on each of them with its own TF_CONFIG, or "
        "raise --worker-timeout.")
    assert stopped.value.exit_code == 1
    assert gone(int((tmp_path / "pid").read_text()))


@pytest.mark.parametrize("sig, code, what", [
    (signal.SIGINT, 130, "Interrupted"),
    (signal.SIGTERM, 143, "Stopped by SIGTERM"),
])
def test_ctrl_c_and_sigterm_end_a_blocked_worker_promptly(tf_config, tmp_path, sig, code,
                                                           what):
    proc, waiting = driver(tmp_path, BLOCKED)
    assert waiting.startswith("worker 0 of 2: waiting up to 300 s for the other workers "
                              "(127.0.0.1:23457)"), waiting
    child = int((tmp_path / "pid").read_text())
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code
    assert time.monotonic() - sent < distributed.GRACE_JOINING + 5
    assert err.splitlines() == [f"Error: {what} while waiting for the other workers to join: "
                                "worker 0 ended (run is as it was)."]
    assert gone(child)


def test_a_training_worker_stops_itself_on_ctrl_c(tf_config, tmp_path):
    """Passed on once, Ctrl-C reaches a worker that is not blocked: it keeps its work and
    says so in its own line, which is the only one."""
    proc, line = driver(tmp_path, TRAINING)
    while line != "epoch 1/9\n":  # the parent may have said it waited, as it does
        assert line.startswith("worker 0 of 2: waiting"), line
        line = proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    # The parent polls the child's signals 5 times a second: its waiting line can come
    # after the child's first epoch line, but once at most.
    lines = err.splitlines()
    waited = [k for k in lines if k.startswith("worker 0 of 2: waiting")]
    assert len(waited) <= 1
    assert [k for k in lines if k not in waited] == [
        "Error: Interrupted; kept the model of epoch 1"]


def test_a_command_started_ignoring_ctrl_c_keeps_ignoring_it(tf_config, tmp_path):
    """A script's background job starts with SIGINT ignored: the parent and its worker both
    go on training, and the worker still ends with its parent."""
    proc, line = driver(tmp_path, TRAINING, ignore_sigint=True)
    while line != "epoch 1/9\n":
        line = proc.stderr.readline()
    for _ in range(2):  # caught, a second Ctrl-C would end the worker at once
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)  # the parent looks at its signals 5 times a second
    assert proc.poll() is None
    child = int((tmp_path / "pid").read_text())
    assert alive(child)
    proc.kill()
    proc.wait(timeout=30)
    assert gone(child)


def test_a_worker_ends_with_its_parent(tf_config, tmp_path):
    """SIGKILL of the command (no handler of it runs) still ends the worker."""
    proc, _ = driver(tmp_path, BLOCKED)
    child = int((tmp_path / "pid").read_text())
    proc.kill()
    proc.wait(timeout=30)
    assert gone(child)


def test_a_worker_killed_from_outside_is_one_line(tf_config, tmp_path):
    killed = ("import os, signal\nfrom rnncli.train import distributed\n"
              "distributed.announce(distributed.JOINED)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    with pytest.raises(distributed.WorkerStopped) as stopped:
        distributed.supervise([sys.executable, "-c", killed], dict(os.environ), 5.0,
                              WorkerRole(0, 2, True), cleanup=lambda: "")
    assert str(stopped.value).startswith("The training process was killed (SIGKILL: out of "
                                         "memory, or ended from outside): ")


def test_the_workers_output_reaches_a_captured_stdout(tf_config, capsys):
    """Under a test runner's capture (no file descriptor) the child's lines are copied."""
    code = distributed.supervise(
        [sys.executable, "-c", "import sys\nprint('result')\nprint('progress', file=sys.stderr)"
         "\nsys.exit(3)"], dict(os.environ), 5.0, WorkerRole(0, 2, True))
    out, err = capsys.readouterr()
    assert (code, out, err) == (3, "result\n", "progress\n")
