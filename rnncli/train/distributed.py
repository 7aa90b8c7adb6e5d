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


def worker_role(strategy: str) -> WorkerRole:
    """This process's role, read from TF_CONFIG as tf.distribute reads it."""
    if strategy != "multi-worker" or not os.environ.get("TF_CONFIG"):
        return WorkerRole(0, 1, True)
    try:
        tf_config = json.loads(os.environ["TF_CONFIG"])
        cluster, task = tf_config["cluster"], tf_config["task"]
        kind, index = task["type"], int(task["index"])
        count = sum(len(cluster.get(job, [])) for job in ("chief", "worker"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"TF_CONFIG is not a valid cluster description ({type(exc).__name__}: {exc}): "
            'set it to JSON such as {"cluster": {"worker": ["host1:23456", "host2:23456"]}, '
            '"task": {"type": "worker", "index": 0}}.') from None
    # As in TensorFlow's multi-worker guide: the "chief" task if the cluster names one,
    # else worker 0.
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    position = index + (len(cluster.get("chief", [])) if kind == "worker" else 0)
    return WorkerRole(position, count, chief)


def make_strategy(tf, name: str):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    # Workers and this one's role come from TF_CONFIG, as tf.distribute documents.
    return tf.distribute.MultiWorkerMirroredStrategy()


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
