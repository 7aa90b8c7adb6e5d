"""Fit a model on a prepared dataset and write a complete, resumable run folder.

    result = train(resolve(preset="recipe"), home=data_home(), output=Path("artifacts"))

The run folder (runs.py) gets model.keras (the best validation epoch, or the last one with
restore_best off), best.keras, config.json, preprocessing.json, history.json/.csv,
curves.png, and, while the run is unfinished, `.backup/epoch-NNNN.keras` (the last finished
epoch with its optimizer state), which `--resume` continues from. A new run is written in
`.next/` and switched in once its first epoch has finished (then it writes in the folder
itself, each file as its epoch ends), so Ctrl-C never costs the folder's previous run.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnncli.config import run_files
from rnncli.config.settings import RunConfig, distils
from rnncli.data import store as dataset
from rnncli.errors import TrainingError, UsageError
from rnncli.fsutil import atomic_path, atomic_write_json, atomic_write_text, read_json
from rnncli.model import runtime as tf_runtime
from rnncli.text.preprocessing import Preprocessing
from rnncli.train import distributed, runs
from rnncli.train.batches import TrainingData
from rnncli.train.curves import save_png as save_curves
from rnncli.train.tracking import (
    EpochTracker,
    Reporter,
    RunState,
    keras_callback,
    weights_fingerprint,
)


@dataclass
class TrainResult:
    output: Path  # the run folder
    role: distributed.WorkerRole
    model: Path | None = None  # model.keras, if this process wrote one
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best: dict[str, float] = field(default_factory=dict)  # the best epoch's metrics
    kept_epoch: int | None = None  # the epoch whose weights the model holds
    interrupted: bool = False
    resumable: bool = False  # `--resume` continues it
    seconds: float = 0.0
    fingerprint: str = ""  # of the model's weights: the same on every worker of one run
    head: dict | None = None  # --ngram-head: ngram_head.attach_head's details
    curves: Path | None = None  # curves.png, where matplotlib drew it

    @classmethod
    def of_run(cls, output: Path, role: distributed.WorkerRole, state: RunState, *,
               model: Path | None, interrupted: bool, resumable: bool, seconds: float,
               head: dict | None, curves: Path | None = None) -> TrainResult:
        """The result of a run that has ended, however it ended: the one place it is made."""
        s = state
        best = {}
        if s.best_epoch:
            row = next(h for h in s.history if h["epoch"] == s.best_epoch)
            best = {k: v for k, v in row.items() if k != "epoch"}
        fingerprint = "" if s.kept_weights is None else weights_fingerprint(s.kept_weights)
        return cls(output=Path(output), role=role, model=model, history=s.history,
                   best_epoch=s.best_epoch, best=best, kept_epoch=s.kept_epoch,
                   interrupted=interrupted, resumable=resumable, seconds=seconds,
                   fingerprint=fingerprint, head=head, curves=curves or None)


def load_data(cfg: RunConfig, home: Path) -> TrainingData:
    """The train split encoded as configured, its validation share held out (whole movies,
    or the last share, as Keras's validation_split takes it), with that share's movies."""
    return TrainingData(*dataset.training_shares(home, cfg.data, groups=True))


def preprocessing_for(cfg: RunConfig, meta: dict, home: Path) -> Preprocessing:
    d = cfg.data
    vocab = dataset.load_vocabulary(home, d.dataset).truncated(d.num_words)
    # The labels and the dataset's name travel with the model: export and serving name
    # a prediction by them.
    return Preprocessing(vocabulary=vocab.words, num_words=d.num_words, maxlen=d.maxlen,
                         padding=d.padding, truncating=d.truncating, source=meta["source"],
                         labels=dataset.labels_of(meta))


def classes_of(meta: dict) -> int:
    """Labels of the dataset: 2 trains a binary model (one sigmoid), more a softmax."""
    return len(dataset.labels_of(meta))


def write_settings(folder: Path, cfg: RunConfig, meta: dict, home: Path,
                   derived: dict | None = None) -> None:
    """config.json (the settings, the data they ran on and, for a dataset of one's own, the
    defaults its statistics gave), config.toml and preprocessing.json."""
    prep = preprocessing_for(cfg, meta, home)
    record = {"source": meta["source"], "checksum": meta["checksum"],
              "tokenizer_version": meta["tokenizer_version"], "labels": prep.labels}
    atomic_write_json(folder / run_files.CONFIG, {**cfg.to_dict(), "dataset": record,
                                                  **({"derived": derived} if derived else {})})
    atomic_write_text(folder / run_files.CONFIG_TOML, cfg.to_toml())
    atomic_write_json(folder / run_files.PREPROCESSING, prep.to_dict())


def _flat(cfg: RunConfig) -> dict:
    return {k: v for section in cfg.to_dict().values() for k, v in section.items()}


def resume_settings(run: runs.RunFolder, cfg: RunConfig, requested: Collection[str],
                    meta: dict) -> tuple[RunConfig, int, RunState]:
    """The unfinished run's own settings, its last finished epoch and its state so far.

    Settings given now must match the run's, except a larger epoch count; the prepared
    data must be the data it was trained on.
    """
    from rnncli.train.datasets import check_resumed_dataset

    saved = read_json(run.work / run_files.CONFIG)
    check_resumed_dataset(saved, cfg, run.output)
    then = saved.get("dataset", {})
    if (then.get("checksum"), then.get("tokenizer_version")) != (
            meta["checksum"], meta["tokenizer_version"]):
        raise UsageError(
            f"The run in {run.output} was trained on other data ({then.get('source')}, "
            f"checksum {str(then.get('checksum'))[:12]}) than the data home holds "
            f"({meta['source']}, checksum {str(meta['checksum'])[:12]}): fetch that data "
            "again, or start a new run with --overwrite.")
    resumed = RunConfig.from_dict(saved)
    old, new = _flat(resumed), _flat(cfg)
    changed = [f"{k} {new[k]!r} (the run has {old[k]!r})" for k in sorted(requested)
               if k != "epochs" and new.get(k) != old.get(k)]
    if changed:
        raise UsageError(f"--resume continues the run in {run.output} with its own settings, "
                         f"and these differ: {', '.join(changed)}. Drop them, or start a new "
                         "run with --overwrite.")
    done, _ = runs.latest_checkpoint(run.work)
    if "epochs" in requested and cfg.train.epochs != resumed.train.epochs:
        if cfg.train.epochs <= done:
            raise UsageError(f"The run in {run.output} has finished {done} epochs: "
                             f"--epochs must be more than {done} to resume it.")
        resumed.train.epochs = cfg.train.epochs
        atomic_write_json(run.work / run_files.CONFIG, {**saved, **resumed.to_dict()})
        atomic_write_text(run.work / run_files.CONFIG_TOML, resumed.to_toml())
    t = resumed.train
    state = RunState(t.epochs, t.monitor, t.restore_best)
    for row in runs.read_history(run.work)[0]:
        if row["epoch"] <= done:
            state.record(row)
    return resumed, done, state


def train(cfg: RunConfig, home: Path, output: Path, *, overwrite: bool = False,
          resume: bool = False, requested: Collection[str] = (),
          reporter: Reporter | None = None, cpu_devices: int | None = None,
          derived: dict | None = None) -> TrainResult:
    """Train as `cfg` says and leave a run folder in `output` (on the chief worker only,
    which holds the folder's lock meanwhile: a second run or export there is refused).

    `requested`: the settings given explicitly (preset, file, options); on resume they
    are checked against the run's own. `derived`: the defaults an imported dataset's
    statistics gave (train/datasets.py), recorded in config.json.
    """
    tf_runtime.require_training_extra("Training")
    if cfg.model.ngram_head:
        tf_runtime.require_training_extra("--ngram-head", ("sklearn", "scipy"))
    from rnncli.train.datasets import check_classes

    meta = dataset.read_meta(home, cfg.data.dataset)
    check_classes(cfg, meta)
    role = distributed.worker_role(cfg.train.strategy)
    if resume and role.count > 1:
        raise UsageError("--resume does not work with --strategy multi-worker: start the run "
                         "again with --overwrite.")
    args = (cfg, home, output, overwrite, resume, requested, reporter, cpu_devices, role, meta,
            derived)
    if not role.chief:  # writes nothing, so takes no lock: workers never wait on it
        return _train(*args)
    with runs.locked(output):
        return _train(*args)


def _train(cfg: RunConfig, home: Path, output: Path, overwrite: bool, resume: bool,
           requested: Collection[str], reporter: Reporter | None, cpu_devices: int | None,
           role: distributed.WorkerRole, meta: dict, derived: dict | None) -> TrainResult:
    run = runs.open_run(output, overwrite, resume) if role.chief else None
    done = 0
    if run and run.resumed:
        cfg, done, state = resume_settings(run, cfg, requested, meta)
    else:
        state = RunState(cfg.train.epochs, cfg.train.monitor, cfg.train.restore_best)
    try:
        data = load_data(cfg, home)
    except MemoryError:
        raise TrainingError(f"Out of memory while loading the reviews: {output} is as it "
                            "was; lower --maxlen or --limit.") from None
    if cfg.model.ngram_head and min(len(np.unique(data.y)), len(np.unique(data.y_val))) < 2:
        # Checked before training: the head's fit needs two labels or more on each side.
        raise UsageError("--ngram-head needs reviews of at least two labels in both the "
                         "training and the validation share: use more reviews (--limit) "
                         "or a larger --validation-split.")

    t = cfg.train
    if t.teachers:  # what their files say, before the run starts
        from rnncli.train.teachers import check_teachers

        check_teachers(t.teachers, preprocessing_for(cfg, meta, home))
    jit = t.jit_compile and t.strategy == "default"
    tracker = EpochTracker(state, run, t.early_stopping, reporter)
    from rnncli.train.batches import plan_inputs  # numpy only: said before TensorFlow loads

    tracker.run_begin(len(data.y), len(data.y_val), plan_inputs(cfg, data).steps, done)
    started, interrupted = time.perf_counter(), False
    if run:
        runs.begin(run)
    try:  # from here on, whatever stops the run leaves the folder usable
        if run and not run.resumed:
            write_settings(run.work, cfg, meta, home, derived)
        tf = tf_runtime.import_tensorflow()
        distributed.split_cpu(tf, cpu_devices)
        with tf_runtime.seeded(t.seed, deterministic_ops=not jit):
            strategy = distributed.make_strategy(tf, t.strategy)
            checkpoint = runs.latest_checkpoint(run.work)[1] if done else None
            model = build_compiled(cfg, strategy, jit, checkpoint, classes_of(meta))
            if t.strategy == "multi-worker":
                distributed.fit_together(model, strategy, cfg, data, tracker)
            else:
                fit_keras(model, strategy, cfg, data, tracker, done,
                          teacher_for(cfg, meta, home, data))
    except KeyboardInterrupt:
        interrupted = True
    except BaseException as exc:
        if run and not run.resumed and state.kept_epoch is None:
            runs.discard(run)
        if not out_of_memory(exc):
            raise
        raise memory_error(exc, run, state, output) from None
    joined, head = None, None
    if run and cfg.model.ngram_head and not interrupted and state.kept_epoch is not None \
            and not state.nan_epoch:
        try:
            joined, head = join_head(run, state, cfg, data)
        except KeyboardInterrupt:  # the network is kept; --resume fits the head
            interrupted = True
    seconds = time.perf_counter() - started
    # An interrupted run keeps its checkpoint for --resume; a NaN one would only diverge
    # again from it.
    resumable = interrupted and not state.nan_epoch
    model = finish(run, state, resumable, joined)
    return TrainResult.of_run(output, role, state, model=model, interrupted=interrupted,
                              resumable=resumable and model is not None, seconds=seconds,
                              head=head, curves=_curves(run.output) if run and model else None)


def out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says the model or its batches did not fit in memory."""
    if isinstance(exc, MemoryError):
        return True
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None)
    return errors is not None and isinstance(exc, errors.ResourceExhaustedError)


SMALLER = "lower --batch-size, --units, --embedding-dim, --num-words or --maxlen"


def memory_error(exc: BaseException, run: runs.RunFolder | None, state: RunState,
                 output: Path) -> TrainingError:
    """The one line for a run that ran out of memory; what it had finished is kept."""
    where = f"in epoch {state.epoch}" if state.epoch else "while building the model"
    what = f"Out of memory {where} ({type(exc).__name__})"
    if run is None:
        return TrainingError(f"{what}: {SMALLER}.")
    if state.kept_epoch is None:
        return TrainingError(f"{what}: no model saved, and {output} is as it was (the "
                             f"unfinished run's {run_files.STAGING}/ is removed): {SMALLER}.")
    model = finish(run, state, resumable=True)
    return TrainingError(f"{what}: kept the model of epoch {state.kept_epoch} in {model}; "
                         f"{SMALLER}, and start again with --overwrite.")


def draw_curves(state: RunState, path: Path) -> None:
    """curves.png of the run's epochs, switched in with the model; none without matplotlib
    (the display then says so). A drawing that fails costs the picture, never the run."""
    try:
        if save_curves(state.history, path, state.best_epoch):
            return
    except Exception:  # matplotlib's failures share no base type
        pass
    path.unlink(missing_ok=True)  # never an older run's picture beside this model


def _curves(output: Path) -> Path | None:
    path = output / run_files.CURVES_PNG
    return path if path.exists() else None


def join_head(run: runs.RunFolder, state: RunState, cfg: RunConfig, data: TrainingData
              ) -> tuple[Path, dict]:
    """Fit the n-gram head on the training share (with --ngram-refit, on both shares, the
    join fitted on cross-fitted logits), join it to the kept network, write that model
    beside the run's files and its details to ngram_head.json; (the joined model's path,
    which finish() makes model.keras; the details)."""
    from rnncli.train.head import (
        FOLDS,
        attach_head,
        cross_fit,
        fit_head,
        head_windows,
        held_out_scores,
    )

    network = tf_runtime.load_keras_model(kept_model(run, state))
    width = network.output_shape[-1]  # 1 for two labels, else one per label

    def fit(x, y):
        return fit_head(x, y, cfg.data.num_words, cfg.train.seed,
                        classes=width if width > 2 else 2,
                        windows=head_windows(cfg.train.crop_prob),
                        weighting=cfg.model.ngram_weighting)

    held_out = run.work / run_files.HEAD_HELD_OUT
    held_out.unlink(missing_ok=True)
    seed = cfg.train.seed
    if cfg.model.ngram_refit:
        logits, biases = cross_fit(fit, data.x, data.y, data.x_val, data.y_val,
                                   data.groups_val, seed)
        head = fit(np.concatenate([data.x, data.x_val]), np.concatenate([data.y, data.y_val]))
        join = attach_head(network, cfg, head, data.x_val, data.y_val, seed, logits)
        join.details.update(refit_reviews=len(data.x) + len(data.x_val), cross_fit_folds=FOLDS)
        held = held_out_scores(join, biases)
        if held is not None:
            with atomic_path(held_out) as tmp, open(tmp, "wb") as f:
                np.savez(f, **held)
    else:
        join = attach_head(network, cfg, fit(data.x, data.y), data.x_val, data.y_val, seed)
    details = {**join.details, "weighting": cfg.model.ngram_weighting}
    path = run.work / ("head." + run_files.MODEL)
    with atomic_path(path) as tmp:
        join.model.save(tmp)
    atomic_write_json(run.work / run_files.HEAD_JSON, details)
    return path, details


def kept_model(run: runs.RunFolder, state: RunState) -> Path:
    """The checkpoint of the epoch the run keeps."""
    return (run.work / run_files.BEST if state.restore_best
            else runs.checkpoint_path(run.work, state.kept_epoch))


def build_compiled(cfg: RunConfig, strategy, jit: bool, checkpoint: Path | None,
                   classes: int = 2):
    from rnncli.model.build import build_model
    from rnncli.train.objective import compile_model

    with strategy.scope():
        model = build_model(cfg, classes=classes)
        # XLA and multi-step execution inside a multi-device strategy fail in TF 2.21's
        # MirroredStrategy (feeds go missing); one step per call is its supported path.
        compile_model(model, cfg, jit_compile=jit, classes=classes,
                      steps_per_execution=None if cfg.train.strategy == "default" else 1)
        if checkpoint:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(checkpoint)  # weights and optimizer state
    return model


def teacher_for(cfg: RunConfig, meta: dict, home: Path, data: TrainingData):
    """The run's teacher (models from --teacher, the n-gram teacher), or None."""
    if not distils(cfg):
        return None
    from rnncli.train.teachers import make_teacher

    return make_teacher(cfg, preprocessing_for(cfg, meta, home), data.x, data.y)


def fit_keras(model, strategy, cfg: RunConfig, data: TrainingData, tracker: EpochTracker,
              first_epoch: int, teacher) -> None:
    """model.fit for one device or a MirroredStrategy over local devices."""
    import keras

    from rnncli.config.settings import epoch_learning_rate
    from rnncli.train.batches import fit_arguments, plan_inputs

    t = cfg.train
    inputs = plan_inputs(cfg, data, teacher, strategy.num_replicas_in_sync)
    tracker.steps = inputs.steps
    args = fit_arguments(inputs, first_epoch)
    schedule = keras.callbacks.LearningRateScheduler(lambda e, _: epoch_learning_rate(t, e))
    model.fit(**args, epochs=t.epochs, initial_epoch=first_epoch, verbose=0,
              callbacks=[schedule, keras_callback(tracker)])


def finish(run: runs.RunFolder | None, state: RunState, resumable: bool,
           joined: Path | None = None) -> Path | None:
    """Write model.keras (the kept epoch's, or `joined`: it with the n-gram head) and switch
    the run in, or leave the folder as it was; model.keras's path, if written. `resumable`:
    the checkpoints stay for --resume."""
    s = state
    if run is None:
        return None  # another worker is the chief: it writes the run folder
    if s.kept_epoch is None:
        runs.discard(run)
        if s.nan_epoch:
            raise TrainingError(
                f"Loss became NaN in epoch {s.nan_epoch} before any epoch finished: no model "
                f"saved; {run.output} is as it was. Lower --learning-rate or turn on "
                "--clipnorm.")
        return None
    with runs.interrupts_held():
        if joined:
            joined.replace(run.work / run_files.MODEL)
        else:
            with atomic_path(run.work / run_files.MODEL) as tmp:
                shutil.copyfile(kept_model(run, s), tmp)
        if not resumable:
            shutil.rmtree(run.work / run_files.BACKUP, ignore_errors=True)
        atomic_write_text(run.work / run_files.LAST_RUN, f"{time.time():.0f}\n")
        draw_curves(s, run.work / run_files.CURVES_PNG)
        runs.switch_in(run)
    model = run.output / run_files.MODEL
    if s.nan_epoch:
        raise TrainingError(
            f"Loss became NaN in epoch {s.nan_epoch}: stopped; kept the model of epoch "
            f"{s.kept_epoch} in {model}. Lower --learning-rate or turn on --clipnorm.")
    return model
