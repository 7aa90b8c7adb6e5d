"""What `rnncli train` shows: progress while it trains, then the curves and what to run next.

    reporter = ProgressReporter()        # passed to training.train; stderr
    report(result, Path("artifacts"))    # chart on stdout; the model's place and next steps

It starts with one line saying what the run will do ("training: 20,000 reviews, ..."),
before TensorFlow loads. On a terminal, a bar per epoch follows: while the first steps
compile (with XLA, most of the first epoch's extra time in benchmarks/bench_train.py) it
says "compiling the model...", and "validating..." while validation runs; from the first
step on it shows when the run should end. Into a file or a pipe no bar is drawn (its
carriage returns would fill the file): a plain progress line every PLAIN_EVERY seconds
instead. Every epoch ends with one fixed-format line.
"""

from __future__ import annotations

import shlex
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from rnncli.cli.common import err, error_exit, out
from rnncli.train.curves import curves_figure, save_png

__all__ = ["ProgressReporter", "curves_chart", "curves_figure", "report", "save_png"]


class EtaClock:
    """Time left in the run, from the pace of the steps after compilation.

    The first steps of a process wait for the model to compile, and its first epoch also
    compiles validation, so neither counts towards the pace.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.epoch = self.epochs = self.steps = 0
        self.paced_from: tuple[float, int] | None = None  # (time, steps) at the first step
        self.last_step = (0.0, 0)
        self.epoch_seconds: list[float] = []  # finished epochs, the process's first left out
        self.first_epoch_seen = False

    def epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        self.epoch, self.epochs, self.steps, self.paced_from = epoch, epochs, steps, None

    def step(self, done: int) -> None:
        now = self.clock()
        if self.paced_from is None:
            self.paced_from = (now, done)
        self.last_step = (now, done)

    def epoch_end(self, seconds: float) -> None:
        if self.first_epoch_seen:
            self.epoch_seconds.append(seconds)
        self.first_epoch_seen = True

    def seconds_left(self) -> float | None:
        if self.paced_from is None or self.last_step[1] <= self.paced_from[1]:
            return None
        (t0, s0), (t1, s1) = self.paced_from, self.last_step
        per_step = (t1 - t0) / (s1 - s0)
        per_epoch = (statistics.median(self.epoch_seconds) if self.epoch_seconds
                     else per_step * self.steps)
        return per_step * (self.steps - s1) + per_epoch * (self.epochs - self.epoch)


def clock_text(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


PLAIN_EVERY = 30.0  # seconds between plain progress lines on a stderr that is no terminal


class ProgressReporter:
    """A rich bar per epoch on stderr that says what it waits for (compiling, validating)
    and when the run should end (plain lines instead where stderr is no terminal); then one
    fixed-format line per epoch."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 terminal: bool | None = None, notes: list[str] | None = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
                            console=err.real, transient=True)
        self.task = None
        self.eta = EtaClock(clock)
        self.clock = clock
        self.terminal = err.real.is_terminal if terminal is None else terminal
        self.compiled = False  # the first step of this process has run
        self.epoch_label = ""
        self.plain_at = 0.0  # when the last plain progress line was printed
        self.notes = notes or []  # printed as the run starts

    def run_begin(self, reviews: int, val_reviews: int, steps: int, epochs: int,
                  first_epoch: int = 0) -> None:
        """One line before anything loads, so a log shows at once what the run is doing."""
        for line in self.notes:
            err.print(line, markup=False)
        start = f", from epoch {first_epoch + 1}" if first_epoch else ""
        err.print(f"training: {reviews:,} reviews, {steps:,} steps per epoch, {epochs:,} "
                  f"epochs{start} ({val_reviews:,} reviews held out for validation); "
                  "loading TensorFlow...", markup=False)
        self.plain_at = self.clock()

    def epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        if self.task is None:
            if self.terminal:  # else the bar would write carriage returns into a file
                self.bar.start()
            self.task = self.bar.add_task("", total=steps, eta="")
        self.eta.epoch_begin(epoch, epochs, steps)
        self.epoch_label = f"epoch {epoch}/{epochs}"
        what = "" if self.compiled else " compiling the model..."
        self.bar.reset(self.task, total=steps, description=self.epoch_label + what)

    def batch_end(self, step: int) -> None:
        self.compiled = True
        self.eta.step(step)
        left = self.eta.seconds_left()
        eta = "" if left is None else f"run ends in ~{clock_text(left)}"
        self.bar.update(self.task, completed=step, description=self.epoch_label, eta=eta)
        if not self.terminal and self.clock() - self.plain_at >= PLAIN_EVERY:
            self.plain_at = self.clock()
            err.print(f"{self.epoch_label}: step {step:,}/{self.eta.steps:,}"
                      f"{', ' + eta if eta else ''}", markup=False)

    def validation_begin(self) -> None:
        self.bar.update(self.task, description=f"{self.epoch_label} validating...")
        if not self.terminal and self.clock() - self.plain_at >= PLAIN_EVERY:
            self.plain_at = self.clock()
            err.print(f"{self.epoch_label}: validating...", markup=False)

    def epoch_end(self, epoch: int, epochs: int, logs: dict, seconds: float) -> None:
        self.eta.epoch_end(seconds)
        err.print(format_epoch(epoch, epochs, logs, seconds), markup=False)
        self.plain_at = self.clock()

    def close(self) -> None:
        if self.task is not None and self.terminal:  # a bar never started prints a newline
            self.bar.stop()


def format_epoch(epoch: int, epochs: int, logs: dict, seconds: float) -> str:
    width = len(str(epochs))
    return (f"epoch {epoch:>{width}}/{epochs} loss {logs.get('loss', float('nan')):.4f} "
            f"acc {logs.get('accuracy', float('nan')):.4f} "
            f"val_loss {logs.get('val_loss', float('nan')):.4f} "
            f"val_acc {logs.get('val_accuracy', float('nan')):.4f} {seconds:6.1f}s")


def curves_chart(history: list[dict], best_epoch: int | None = None, height: int = 8) -> str:
    """Accuracy and validation accuracy per epoch as a small terminal chart."""
    series = {"acc": [h.get("accuracy", 0) for h in history],
              "val": [h.get("val_accuracy", 0) for h in history]}
    values = [v for s in series.values() for v in s]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    rows = []
    for r in range(height, -1, -1):
        level = lo + span * r / height
        cells = []
        for a, v in zip(series["acc"], series["val"]):
            ra, rv = round((a - lo) / span * height), round((v - lo) / span * height)
            cells.append("*" if ra == rv == r else "o" if ra == r else "x" if rv == r else " ")
        rows.append(f"{level:6.3f} |" + "  ".join(cells))
    rows.append("       +" + "-" * (3 * len(history) - 2))
    rows.append("        " + "".join(f"{h['epoch']:<3}" for h in history) + " epoch")
    epochs = [h["epoch"] for h in history]
    if best_epoch in epochs:
        rows.append("        " + " " * (3 * epochs.index(best_epoch)) + "^ best")
    rows.append("        o train accuracy   x validation accuracy   * both")
    return "\n".join(rows)


def report(result, output: Path) -> None:
    """The chart, where the model went and what to run next; an interruption exits 130."""
    if not result.role.chief:
        if result.interrupted:
            raise error_exit("Interrupted; the chief (worker 0) decides what the run folder "
                             "keeps.", 130)
        out.print(f"worker {result.role.index} of {result.role.count}: trained "
                  f"{len(result.history)} epochs with the chief, which wrote the run folder; "
                  f"weights fingerprint {result.fingerprint}")
        return
    if result.history:
        out.print(curves_chart(result.history, result.best_epoch), markup=False)
        if result.curves:  # drawn by the run, into its folder
            err.print(f"learning curves: {result.curves}", markup=False)
        else:
            err.print("learning curves: terminal chart only (curves.png needs matplotlib, "
                      "part of the [train] extra)", markup=False)
    if result.kept_epoch == result.best_epoch:
        which = "the best so far" if result.interrupted else "the best"
    else:
        which = "the last finished"
    if result.model:
        best = result.best
        out.print(f"best epoch {result.best_epoch}: val_accuracy {best['val_accuracy']:.4f} "
                  f"val_loss {best['val_loss']:.4f}; model (epoch {result.kept_epoch}, "
                  f"{which}) -> {result.model} ({result.seconds:.1f} s)", markup=False)
        if result.role.count > 1:
            out.print(f"{result.role.count} workers; weights fingerprint {result.fingerprint}")
        if result.head:
            val = result.head["val_accuracy"]
            out.print("n-gram head joined: validation accuracy, whole reviews / windows: "
                      + "; ".join(f"{name} {v['whole']:.4f} / {v['windows']:.4f}"
                                  for name, v in val.items()), markup=False)
    if result.interrupted:
        if result.model:
            raise error_exit(f"Interrupted; kept the model of epoch {result.kept_epoch} "
                             f"({which}) in {result.model}; `rnncli train --resume --output "
                             f"{shlex.quote(str(output))}` continues.", 130)
        raise error_exit(f"Interrupted before the first epoch ended: no model was saved and "
                         f"{output} is as it was; run the same command again to start over.",
                         130)
    if result.model:
        folder = shlex.quote(str(output))
        err.print(f"next: rnncli evaluate --model {folder}\n"
                  f"      rnncli export onnx --model {folder}", markup=False)
