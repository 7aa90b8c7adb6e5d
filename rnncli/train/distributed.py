"""Training on several devices or machines: the tf.distribute strategy, this process's role
in a cluster, and one model trained by every worker named in TF_CONFIG.

    role = worker_role("multi-worker")                  # read from TF_CONFIG
    fit_together(model, strategy, cfg, data, tracker)   # under MultiWorkerMirroredStrategy

Keras 3's model.fit does not run under MultiWorkerMirroredStrategy (keras-team/keras issue
20585: "Keras 3 does not work with tf.distribute.MultiWorkerMirroredStrategy"), so each
worker runs this loop instead. Every worker makes the same batches from the shared seed
(batches.plan_inputs, which model.fit's batches come from too) and takes its replicas'
share of each one; the gradients of the whole batch are summed over all replicas, clipped
as on one machine, and applied by each replica to its copy of the weights, which therefore
stay equal. Validation is shared out and summed the same way, so every worker sees the same
metrics and makes the same early-stopping and NaN decisions.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rnncli.config.settings import RunConfig, epoch_learning_rate
from rnncli.errors import TrainingError, UsageError


def split_cpu(tf, devices: int | None) -> None:
    """Show the CPU as `devices` logical devices (to try a mirrored strategy on one host)."""
    if not devices or devices < 2:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * devices)
    except RuntimeError:
        pass  # already initialised with its devices (a second run in one process)


@dataclass(frozen=True)
class WorkerRole:
    index: int  # this process's place among the workers
    count: int  # workers in the cluster
    chief: bool  # the one that writes the run folder


TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:23456", "host2:23456"]}, '
                     '"task": {"type": "worker", "index": 0}}')
JOBS = ("chief", "worker")  # the tasks that train; TensorFlow's "ps" and "evaluator" do not


def worker_role(strategy: str) -> WorkerRole:
    """This process's role, read from TF_CONFIG as tf.distribute reads it; a TF_CONFIG that
    TensorFlow would choke on (or wait on for ever) is refused here, in one line, before
    TensorFlow loads."""
    if strategy != "multi-worker":
        return WorkerRole(0, 1, True)
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        raise UsageError("--strategy multi-worker needs TF_CONFIG, naming every worker and "
                         f"this one's task, such as {TF_CONFIG_EXAMPLE} (docs/training.md); "
                         "to train on this machine alone use --strategy default or mirrored.")
    cluster, kind, index = _read_tf_config(raw)
    count = sum(len(cluster.get(job, [])) for job in JOBS)
    # As in TensorFlow's multi-worker guide: the "chief" task if the cluster names one,
    # else worker 0.
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    position = index + (len(cluster.get("chief", [])) if kind == "worker" else 0)
    return WorkerRole(position, count, chief)


def _read_tf_config(raw: str) -> tuple[dict[str, list[str]], str, int]:
    """(cluster, task type, task index) of a TF_CONFIG, each part checked."""
    try:
        tf_config = json.loads(raw)
        cluster, task = tf_config["cluster"], tf_config["task"]
        kind, index = task["type"], task["index"]
        jobs = dict(cluster)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"TF_CONFIG is not a valid cluster description ({type(exc).__name__}: {exc}): "
            f"set it to JSON such as {TF_CONFIG_EXAMPLE}.") from None
    for job, addresses in jobs.items():
        if job not in JOBS:
            raise UsageError(f"TF_CONFIG's cluster names a {job!r} job: multi-worker training "
                             "takes 'chief' and 'worker' tasks only; remove it.")
        if not isinstance(addresses, list) or not addresses:
            raise UsageError(f"TF_CONFIG's cluster gives {job!r} {addresses!r}: give a list of "
                             'host:port addresses, such as ["host1:23456", "host2:23456"].')
        for i, address in enumerate(addresses):
            host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
            if not host or not port.isdigit() or int(port) > 65535:
                raise UsageError(f"TF_CONFIG's {job} {i} is at {address!r}, not host:port with "
                                 "a port number (0 to 65535): write it as 127.0.0.1:23456.")
    if len(jobs.get("chief", [])) > 1:
        raise UsageError("TF_CONFIG's cluster names several chiefs: name one (or none: "
                         "worker 0 is then the chief).")
    if kind not in jobs:
        raise UsageError(f"TF_CONFIG's task type is {kind!r}, which its cluster does not name "
                         f"(it names {', '.join(map(repr, jobs)) or 'nothing'}): set task.type "
                         "to one of those.")
    if isinstance(index, bool) or not isinstance(index, int):
        raise UsageError(f"TF_CONFIG's task index is {index!r}: give a whole number, 0 for "
                         f"the first {kind}.")
    if not 0 <= index < len(jobs[kind]):
        raise UsageError(f"TF_CONFIG's task index {index} is outside its cluster, which names "
                         f"{len(jobs[kind])} {kind} task(s) (indices 0 to "
                         f"{len(jobs[kind]) - 1}): set task.index to this worker's place.")
    return jobs, kind, index


def peers() -> str:
    """The addresses of the other workers (for a line saying who is awaited)."""
    cluster, kind, index = _read_tf_config(os.environ.get("TF_CONFIG", ""))
    return ", ".join(address for job in JOBS for i, address in enumerate(cluster.get(job, []))
                     if (job, i) != (kind, index)) or "none"


# A supervised worker (see supervise) tells its parent through this pipe when it starts to
# wait for the other workers and when they have all joined.
PIPE_ENV = "RNNCLI_WORKER_PIPE"
JOINING, JOINED = b"j", b"r"


def announce(what: bytes) -> None:
    fd = os.environ.get(PIPE_ENV)
    if fd and fd.isdigit():
        try:
            os.write(int(fd), what)
        except OSError:
            pass  # no parent listens: nothing to tell


def make_strategy(tf, name: str):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    # Workers and this one's role come from TF_CONFIG, as tf.distribute documents. The
    # constructor waits there until every worker has joined, inside TensorFlow with the GIL
    # held: no Python signal handler runs meanwhile, which is why a parent process watches
    # this one (supervise).
    announce(JOINING)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except tf.errors.OpError as exc:
        cluster, kind, index = _read_tf_config(os.environ.get("TF_CONFIG", ""))
        address = cluster[kind][index]
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        if "Could not start gRPC server" in str(exc):
            raise TrainingError(f"Cannot listen at {address} (TF_CONFIG's {kind} {index}): "
                                "another process uses that port, or the address is not this "
                                "machine's; free the port or change TF_CONFIG.") from None
        raise TrainingError(f"Could not join the cluster as {kind} {index} at {address} "
                            f"({reason}): check TF_CONFIG on every worker.") from None
    announce(JOINED)
    return strategy


def lost_worker(exc: BaseException) -> bool:
    """Whether a TensorFlow error means another worker went away (its process ended or its
    connection broke) rather than a fault of this one."""
    import tensorflow as tf

    gone = (tf.errors.UnavailableError, tf.errors.CancelledError,
            tf.errors.DeadlineExceededError, tf.errors.AbortedError)
    return isinstance(exc, gone) or "Collective ops is aborted" in str(exc)


def _share(x, y):
    """This replica's rows of the global batch (shares differ by one row at most) and the
    global batch's size."""
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    n, k = tf.shape(x)[0], ctx.num_replicas_in_sync
    lo, hi = ctx.replica_id_in_sync_group * n // k, (ctx.replica_id_in_sync_group + 1) * n // k
    return x[lo:hi], y[lo:hi], tf.cast(n, tf.float32)


def _sums(y, p):
    """(summed loss, correct answers) of one replica's rows."""
    import keras
    import tensorflow as tf

    losses = keras.losses.binary_crossentropy(y[:, None], p)
    correct = tf.cast(tf.equal(p[:, 0] > 0.5, y > 0.5), tf.float32)
    return tf.reduce_sum(losses), tf.reduce_sum(correct)


class ReplicaSteps:
    """The train and evaluation steps over one global batch: each replica takes its share of
    the rows, and the summed loss and correct answers come back added over all replicas."""

    def __init__(self, model, strategy, cfg: RunConfig, width: int | None):
        import tensorflow as tf

        self.model, self.strategy, self.t = model, strategy, cfg.train
        # `width` None: batches cut to their longest review have any width; others have
        # maxlen (which an unrolled layer needs to know).
        signature = [tf.TensorSpec([None, width], tf.int32), tf.TensorSpec([None], tf.float32)]
        # Compiled here, per instance: the graphs capture this model's variables and this
        # strategy, so they cannot be made once for the module.
        self.train = tf.function(self._train, input_signature=signature)
        self.evaluate = tf.function(self._evaluate, input_signature=signature)

    def _train(self, x, y):
        return self._summed(self._replica_train, x, y)

    def _evaluate(self, x, y):
        return self._summed(self._replica_eval, x, y)

    def _summed(self, fn, x, y):
        loss_sum, correct = self.strategy.run(fn, args=(x, y))
        return (self.strategy.reduce("SUM", loss_sum, axis=None),
                self.strategy.reduce("SUM", correct, axis=None))

    def _replica_train(self, x, y):
        import tensorflow as tf

        model, t = self.model, self.t
        x, y, n = _share(x, y)
        with tf.GradientTape() as tape:
            p = model(x, training=True)
            loss_sum, correct = _sums(y, p)
            loss = loss_sum / n  # this replica's part of the global batch's mean loss
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
        ctx = tf.distribute.get_replica_context()
        grads = ctx.all_reduce("sum", grads)  # the whole batch's gradient, as on one machine
        if t.clipnorm:
            grads = [tf.clip_by_norm(g, t.clipnorm) for g in grads]
        elif t.clipvalue:
            grads = [tf.clip_by_value(g, -t.clipvalue, t.clipvalue) for g in grads]
        # The optimizer sums the replicas' gradients once more before it applies them; its
        # own clipping then finds every gradient within bounds and changes nothing.
        grads = [g / ctx.num_replicas_in_sync for g in grads]
        model.optimizer.apply(grads, model.trainable_variables)
        return loss_sum, correct

    def _replica_eval(self, x, y):
        x, y, _ = _share(x, y)
        return _sums(y, self.model(x, training=False))


def fit_together(model, strategy, cfg: RunConfig, data, tracker) -> None:
    """Train `cfg.train.epochs` epochs in step with the other workers; the tracker records
    each one (and writes files only where it was given a folder: on the chief). A worker
    that goes away ends the run on the others with a TrainingError."""
    import tensorflow as tf

    try:
        _fit_together(model, strategy, cfg, data, tracker)
    except tf.errors.OpError as exc:
        if not lost_worker(exc):
            raise
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
        # TensorFlow's first line is often a bare "Graph execution error:".
        reason = next((line for line in lines if "Collective ops is aborted" in line), lines[0])
        raise TrainingError(f"Lost another worker ({reason}): a multi-worker run needs every "
                            "worker to the end; start them all again with --overwrite."
                            ) from None


def _fit_together(model, strategy, cfg: RunConfig, data, tracker) -> None:
    from rnncli.train.batches import plan_inputs

    t = cfg.train
    inputs = plan_inputs(cfg, data)
    steps = ReplicaSteps(model, strategy, cfg, inputs.width)
    val_batches = inputs.validation()
    tracker.steps = inputs.steps
    for epoch in range(1, t.epochs + 1):
        batches = inputs.epoch(epoch - 1)
        model.optimizer.learning_rate.assign(epoch_learning_rate(t, epoch - 1))
        tracker.epoch_begin(epoch)
        loss_sum = correct = 0.0
        for step, (x, y) in enumerate(batches, 1):
            batch_loss, batch_correct = (float(v) for v in steps.train(x, y))
            loss_sum, correct = loss_sum + batch_loss, correct + batch_correct
            if tracker.batch_end(step, batch_loss / len(y)):
                return
        tracker.validation_begin()
        val_loss = val_correct = 0.0
        for x, y in val_batches:
            batch_loss, batch_correct = (float(v) for v in steps.evaluate(x, y))
            val_loss, val_correct = val_loss + batch_loss, val_correct + batch_correct
        seen, val_seen = len(inputs.data.y), len(inputs.data.y_val)
        logs = {"loss": loss_sum / seen, "accuracy": correct / seen,
                "val_loss": val_loss / val_seen, "val_accuracy": val_correct / val_seen}
        if tracker.epoch_end(epoch, logs, model):
            return


# A supervised worker: `rnncli train --strategy multi-worker` runs the training in a child
# process and watches it from the parent, which TensorFlow never blocks.
CONFIG_ENV = "RNNCLI_WORKER_CONFIG"  # the child's resolved settings, as JSON
PARENT_ENV = "RNNCLI_WORKER_PARENT"  # the parent's pid: the child ends with it
DEFAULT_WORKER_TIMEOUT = 300.0  # seconds a worker waits for the others to join
# After a Ctrl-C is passed on: a worker still joining is blocked in TensorFlow and never
# sees it; a training one needs a moment to keep its last finished epoch.
GRACE_JOINING, GRACE_TRAINING = 2.0, 30.0
# SIGINT (2) and SIGTERM (15): what ended the worker, and the command's exit code.
STOPS = {2: ("Interrupted", 130), 15: ("Stopped by SIGTERM", 143)}


class WorkerStopped(TrainingError):
    """The supervised worker was ended from outside (Ctrl-C, SIGTERM) or by its timeout."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def supervise(argv: list[str], env: dict[str, str], timeout: float, role: WorkerRole,
              cleanup: Callable[[], str] = lambda: "",
              say: Callable[[str], None] = lambda line: None) -> int:
    """Run `argv` (this worker's training) as a child process and return its exit code.

    The parent takes Ctrl-C and SIGTERM (those the command was not started ignoring): it
    passes a SIGINT on, and ends the child with SIGKILL when it does not stop within a
    grace period (a child waiting for the other workers is blocked inside TensorFlow and
    cannot). It also ends a child whose workers have not all joined `timeout` seconds after
    it started waiting. Then `cleanup()` tidies the run folder and says how it left it (""
    when there is nothing to say), and WorkerStopped carries the one line.
    """
    import signal
    import subprocess

    read_end, write_end = os.pipe()
    streams = _Streams()
    try:
        proc = subprocess.Popen(
            argv, env={**env, PIPE_ENV: str(write_end), PARENT_ENV: str(os.getpid())},
            pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=streams.stdout,
            stderr=streams.stderr, start_new_session=True)  # Ctrl-C reaches the parent only
    finally:
        os.close(write_end)
    streams.relay(proc)
    caught: list[int] = []
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            # A signal the command started ignoring (Ctrl-C for a script's background job)
            # stays ignored, as Python leaves it and the child inherits it: caught here and
            # passed on, it would end a child that cannot take it after the grace period.
            if signal.getsignal(sig) is not signal.SIG_IGN:
                handlers[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
    joined, deadline, passed_on, ended = False, None, None, None
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if caught and passed_on is None:
                proc.send_signal(signal.SIGINT)
                passed_on = now
            if passed_on is not None and (
                    len(caught) > 1 or now - passed_on > (GRACE_TRAINING if joined
                                                          else GRACE_JOINING)):
                ended = "signal"
            elif deadline is not None and now > deadline:
                ended = "timeout"
            if ended:
                proc.kill()
                break
            heard = _heard(read_end, 0.2)
            if JOINING in heard and JOINED not in heard and not joined:
                deadline = now + timeout
                say(f"worker {role.index} of {role.count}: waiting up to {timeout:g} s for the "
                    f"other workers ({peers()})...")
            if JOINED in heard:
                joined, deadline = True, None
        proc.wait()
    finally:
        if proc.poll() is None:  # the parent itself failed: never leave the child behind
            proc.kill()
            proc.wait()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        os.close(read_end)
        streams.close()
    if ended or (proc.returncode < 0 and not caught):
        left = cleanup()
        left = f" ({left})" if left else ""
    if ended == "timeout":
        raise WorkerStopped(
            f"Worker {role.index} of {role.count}: the other workers ({peers()}) did not all "
            f"join within {timeout:g} s{left}: start the same command on each of them with "
            "its own TF_CONFIG, or raise --worker-timeout.")
    if ended == "signal":
        what, code = STOPS.get(caught[0], STOPS[2])
        waiting = "training" if joined else "waiting for the other workers to join"
        raise WorkerStopped(f"{what} while {waiting}: worker {role.index} ended{left}.", code)
    if proc.returncode < 0 and not caught:  # killed from outside (the kernel's OOM killer)
        name = signal.Signals(-proc.returncode).name
        raise WorkerStopped(f"The training process was killed ({name}: out of memory, or "
                            f"ended from outside){left}: lower --batch-size or --units, or "
                            "find what ended it.")
    if caught and proc.returncode == STOPS[2][1]:  # it stopped itself, as for Ctrl-C
        return STOPS.get(caught[0], STOPS[2])[1]  # the exit code of the signal received
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode


def _heard(fd: int, wait: float) -> bytes:
    """What the child announced within `wait` seconds (b"" when nothing, or it is gone)."""
    import select

    try:
        ready, _, _ = select.select([fd], [], [], wait)
        data = os.read(fd, 64) if ready else b""
    except OSError:
        data = b""
    if ready and not data:  # the child closed its end: wait for it without spinning
        time.sleep(wait)
    return data


class _Streams:
    """The child writes straight to this process's stdout and stderr where they are files
    (a terminal keeps its progress bar); otherwise (a test runner's capture) its output is
    copied over line by line."""

    def __init__(self) -> None:
        import subprocess

        self.targets = [sys.stdout, sys.stderr]
        self.pipe = [not _has_fd(t) for t in self.targets]
        self.stdout, self.stderr = (subprocess.PIPE if p else None for p in self.pipe)
        self.threads: list[threading.Thread] = []

    def relay(self, proc) -> None:
        for source, target, piped in zip((proc.stdout, proc.stderr), self.targets, self.pipe):
            if piped:
                thread = threading.Thread(target=_copy, args=(source, target), daemon=True)
                thread.start()
                self.threads.append(thread)

    def close(self) -> None:
        for thread in self.threads:
            thread.join(timeout=5)


def _has_fd(stream) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def _copy(source, target) -> None:
    for line in iter(source.readline, b""):
        target.write(line.decode("utf-8", "replace"))
        target.flush()
    source.close()


def bind_to_parent() -> None:
    """In a supervised worker: end with the parent (Linux), so that a parent killed by
    SIGKILL leaves no worker behind; a parent already gone ends this one at once."""
    parent = os.environ.get(PARENT_ENV, "")
    if not parent.isdigit():
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the parent's own kill still ends this worker
    if os.getppid() != int(parent):
        os._exit(1)
