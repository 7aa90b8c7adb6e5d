"""What `rnncli train` shows: the phases the bar waits in, the time left, the curves with
their best epoch, and where the model went with the commands to run next."""

from pathlib import Path

import pytest
import typer

from rnncli.cli.train_display import (
    EtaClock,
    ProgressReporter,
    clock_text,
    curves_chart,
    curves_figure,
    report,
    save_png,
)
from rnncli.train.distributed import WorkerRole
from rnncli.train.loop import TrainResult

HISTORY = [{"epoch": e, "loss": 0.7 - 0.1 * e, "accuracy": 0.5 + 0.1 * e,
            "val_loss": 0.65 - 0.05 * e + (0.2 if e == 3 else 0),
            "val_accuracy": 0.55 + 0.05 * e - (0.2 if e == 3 else 0)} for e in (1, 2, 3)]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_eta_leaves_out_compilation_and_uses_finished_epochs():
    clock = FakeClock()
    eta = EtaClock(clock)

    def step_at(seconds, done):
        clock.now = seconds
        eta.step(done)

    eta.epoch_begin(1, 3, 10)
    step_at(18.0, 1)  # the first step lands after an 18 s compilation
    assert eta.seconds_left() is None  # no pace yet
    step_at(23.0, 6)  # 5 steps in 5 s: 1 s a step
    assert eta.seconds_left() == pytest.approx(4 * 1 + 2 * 10)
    eta.epoch_end(30.0)  # the first epoch carries compilation: not a measure
    eta.epoch_begin(2, 3, 10)
    step_at(31.0, 1)
    step_at(32.0, 3)  # 0.5 s a step, and no finished epoch to go by yet
    assert eta.seconds_left() == pytest.approx(7 * 0.5 + 10 * 0.5)
    eta.epoch_end(12.0)  # validation included: the next epochs are taken as 12 s
    eta.epoch_begin(3, 4, 10)
    step_at(40.0, 1)
    step_at(41.0, 5)
    assert eta.seconds_left() == pytest.approx(5 * 0.25 + 12.0)
    assert clock_text(24) == "0:24" and clock_text(3725) == "1:02:05"


def test_the_bar_says_compiling_then_validating_then_the_time_left():
    clock = FakeClock()
    reporter = ProgressReporter(clock)
    reporter.epoch_begin(1, 2, 10)
    task = reporter.bar.tasks[0]
    assert task.description == "epoch 1/2 compiling the model..."
    clock.now = 20.0
    reporter.batch_end(2)
    clock.now = 22.0
    reporter.batch_end(6)
    assert task.description == "epoch 1/2" and task.completed == 6
    assert task.fields["eta"] == "run ends in ~0:07"  # 4 steps + 10 steps at 0.5 s
    reporter.validation_begin()
    assert task.description == "epoch 1/2 validating..."
    reporter.epoch_end(1, 2, HISTORY[0], 23.0)
    reporter.epoch_begin(2, 2, 10)
    assert task.description == "epoch 2/2", "compiled once per process"
    reporter.close()


def test_chart_marks_the_best_epoch():
    chart = curves_chart(HISTORY, best_epoch=2)
    lines = chart.splitlines()
    axis = next(line for line in lines if line.rstrip().endswith("epoch"))
    marker = next(line for line in lines if "^ best" in line)
    assert marker.index("^") == axis.index("2")
    assert "^ best" not in curves_chart(HISTORY)


def test_png_has_labelled_axes_and_the_best_epoch(tmp_path):
    pytest.importorskip("matplotlib")
    fig = curves_figure(HISTORY, best_epoch=2)
    for ax, key in zip(fig.axes, ("loss", "accuracy")):
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", key)
        labels = [line.get_label() for line in ax.get_lines()]
        assert "best epoch (2)" in labels
        best = next(line for line in ax.get_lines() if line.get_label() == "best epoch (2)")
        assert list(best.get_xdata()) == [2, 2]
    assert save_png(HISTORY, tmp_path / "curves.png", 2)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("epochs", [2, 3, 7, 40])
def test_png_ticks_are_whole_epochs(epochs):
    pytest.importorskip("matplotlib")
    history = [{**HISTORY[0], "epoch": e} for e in range(1, epochs + 1)]
    fig = curves_figure(history, best_epoch=1)
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_into_a_file_the_run_says_what_it_does_at_once_then_plain_lines(capsys):
    """`rnncli train 2> log`: a line before TensorFlow loads, a plain line every PLAIN_EVERY
    seconds of a long epoch, the epoch lines; no bar and no carriage return."""
    from rnncli.cli import train_display

    clock = FakeClock()
    reporter = ProgressReporter(clock, terminal=False, notes=["note: a note"])
    reporter.run_begin(20_000, 5_000, 625, 10)
    reporter.epoch_begin(1, 10, 625)
    for step in range(1, 626):
        clock.now += 0.2  # 125 s for the epoch
        reporter.batch_end(step)
    reporter.validation_begin()
    reporter.epoch_end(1, 10, HISTORY[0], 130.0)
    reporter.close()
    out, err = capsys.readouterr()
    assert out == "" and "\r" not in err
    lines = err.splitlines()
    assert lines[:2] == ["note: a note", "training: 20,000 reviews, 625 steps per epoch, 10 "
                         "epochs (5,000 reviews held out for validation); loading "
                         "TensorFlow..."]
    progress = lines[2:-1]
    assert len(progress) == 125 // train_display.PLAIN_EVERY
    assert progress[0].startswith("epoch 1/10: step 15") and "run ends in ~" in progress[0]
    assert lines[-1].startswith("epoch  1/10 loss")


def result(**kw):
    defaults = dict(output=Path("runs/a b"), role=WorkerRole(0, 1, True), history=HISTORY,
                    best_epoch=2, kept_epoch=2, best=HISTORY[1], seconds=3.0,
                    model=Path("runs/a b/model.keras"))
    return TrainResult(**{**defaults, **kw})


def test_a_finished_run_says_where_the_model_went_and_what_next(capsys, monkeypatch):
    monkeypatch.setattr("rnncli.cli.train_display.save_png", lambda *a: False)
    report(result(), Path("runs/a b"))
    out, err = capsys.readouterr()
    assert "model (epoch 2, the best) -> runs/a b/model.keras" in out
    assert "next: rnncli evaluate --model 'runs/a b'" in err
    assert "rnncli export onnx --model 'runs/a b'" in err
    assert "terminal chart only" in err and "[train] extra" in err


def test_an_interrupted_run_says_what_it_kept(capsys, monkeypatch):
    monkeypatch.setattr("rnncli.cli.train_display.save_png", lambda *a: False)
    with pytest.raises(typer.Exit) as stop:
        report(result(interrupted=True, kept_epoch=3), Path("run"))
    assert stop.value.exit_code == 130
    err = capsys.readouterr().err
    assert "kept the model of epoch 3 (the last finished)" in err and "--resume" in err
    assert "next:" not in err
    with pytest.raises(typer.Exit):
        report(result(interrupted=True, model=None, history=[], best_epoch=None,
                      kept_epoch=None, best={}), Path("run"))
    err = capsys.readouterr().err
    assert "before the first epoch ended: no model was saved and run is as it was" in err


def test_a_worker_that_is_not_the_chief_says_who_wrote_the_run(capsys):
    report(result(role=WorkerRole(1, 2, False), model=None, fingerprint="abc123"), Path("run"))
    out, err = capsys.readouterr()
    assert out.strip() == ("worker 1 of 2: trained 3 epochs with the chief, which wrote the "
                           "run folder; weights fingerprint abc123")
    assert "next:" not in err
