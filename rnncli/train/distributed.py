"""Training on several devices or machines: the tf.distribute strategy, this process's role
in a cluster, and one model trained by every worker named in TF_CONFIG.

    role = worker_role("multi-worker")                  # read from TF_CONFIG
    fit_together(model, strategy, cfg, data, tracker)   # under MultiWorkerMirroredStrategy

Keras 3's model.fit does not run under MultiWorkerMirroredStrategy (keras-team/keras issue
20585: "Keras 3 does not work with tf.distribute.MultiWorkerMirroredStrategy"), so each
worker runs this loop instead. Every worker makes the same batches from the shared seed and
takes its replicas' share of each one; the gradients of the whole batch are summed over all
replicas, clipped as on one machine, and applied by each replica to its copy of the weights,
which therefore stay equal. Validation is shared out and summed the same way, so every
worker sees the same metrics and makes the same early-stopping and NaN decisions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from rnncli.config.settings import RunConfig, bucket_for, epoch_learning_rate
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


def worker_batches(cfg: RunConfig, x: np.ndarray, y: np.ndarray, epoch: int | None,
                  batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch's batches, identical on every worker; `epoch` None: validation (in order).

    The same batches as model.fit gets on one machine: fresh crops and length buckets
    when configured (rnncli.batches), else the padded rows shuffled.
    """
    t = cfg.train
    rng = None if epoch is None else np.random.default_rng([t.seed, epoch])
    bucket = bucket_for(cfg)
    if (rng is not None and t.crop_prob > 0) or bucket:
        from rnncli.train import batches

        plan = batches.BatchPlan.for_training(cfg, batch_size)
        return batches.epoch_batches(batches.real_rows(x), y, plan, rng, shuffle=rng is not None)
    order = np.arange(len(x)) if rng is None else rng.permutation(len(x))
    return [(x[i], y[i].astype(np.float32)) for i in
            (order[at: at + batch_size] for at in range(0, len(order), batch_size))]


def _steps(model, strategy, cfg: RunConfig):
    """(train step, evaluation step): compiled functions over one global batch."""
    import keras
    import tensorflow as tf

    t = cfg.train
    # Batches cut to their longest review have any width; others have maxlen (which an
    # unrolled layer needs to know).
    width = None if bucket_for(cfg) else cfg.data.maxlen
    signature = [tf.TensorSpec([None, width], tf.int32), tf.TensorSpec([None], tf.float32)]

    def share(x, y):
        # This replica's rows of the global batch; shares differ by one row at most.
        ctx = tf.distribute.get_replica_context()
        n, k = tf.shape(x)[0], ctx.num_replicas_in_sync
        lo, hi = ctx.replica_id_in_sync_group * n // k, (ctx.replica_id_in_sync_group + 1) * n // k
        return x[lo:hi], y[lo:hi], tf.cast(n, tf.float32)

    def sums(y, p):
        losses = keras.losses.binary_crossentropy(y[:, None], p)
        correct = tf.cast(tf.equal(p[:, 0] > 0.5, y > 0.5), tf.float32)
        return tf.reduce_sum(losses), tf.reduce_sum(correct)

    def replica_train(x, y):
        x, y, n = share(x, y)
        with tf.GradientTape() as tape:
            p = model(x, training=True)
            loss_sum, correct = sums(y, p)
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

    def replica_eval(x, y):
        x, y, _ = share(x, y)
        return sums(y, model(x, training=False))

    def over_replicas(fn):
        @tf.function(input_signature=signature)
        def step(x, y):
            loss_sum, correct = strategy.run(fn, args=(x, y))
            return (strategy.reduce("SUM", loss_sum, axis=None),
                    strategy.reduce("SUM", correct, axis=None))

        return step

    return over_replicas(replica_train), over_replicas(replica_eval)


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
    t = cfg.train
    train_step, eval_step = _steps(model, strategy, cfg)
    val_batch = t.batch_size * max(1, 1024 // t.batch_size)
    val_batches = worker_batches(cfg, data.x_val, data.y_val, None, val_batch)
    for epoch in range(1, t.epochs + 1):
        batches = worker_batches(cfg, data.x, data.y, epoch - 1, t.batch_size)
        tracker.steps = len(batches)
        model.optimizer.learning_rate.assign(epoch_learning_rate(t, epoch - 1))
        tracker.epoch_begin(epoch)
        loss_sum = correct = 0.0
        for step, (x, y) in enumerate(batches, 1):
            batch_loss, batch_correct = (float(v) for v in train_step(x, y))
            loss_sum, correct = loss_sum + batch_loss, correct + batch_correct
            if tracker.batch_end(step, batch_loss / len(y)):
                return
        tracker.validation_begin()
        val_loss = val_correct = 0.0
        for x, y in val_batches:
            batch_loss, batch_correct = (float(v) for v in eval_step(x, y))
            val_loss, val_correct = val_loss + batch_loss, val_correct + batch_correct
        seen, val_seen = sum(len(y) for _, y in batches), len(data.y_val)
        logs = {"loss": loss_sum / seen, "accuracy": correct / seen,
                "val_loss": val_loss / val_seen, "val_accuracy": val_correct / val_seen}
        if tracker.epoch_end(epoch, logs, model):
            return
