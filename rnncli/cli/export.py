"""`rnncli export onnx`: the trained Keras model as a validated ONNX file.

    $ rnncli export onnx --model artifacts/ --output artifacts/model.onnx

The result (the candidates table, the files written) goes to stdout; what export is doing
(a line per stage: which graph is being built, checked or timed), the next command to run
and, with --verbose, why the graph was chosen go to stderr.
"""

from __future__ import annotations

import contextlib
import math
import shlex
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Literal

import typer

from rnncli.cli.common import (
    Command,
    DataDir,
    Group,
    Json,
    err,
    handle_errors,
    out,
    print_json,
)
from rnncli.config import run_files
from rnncli.serve import locate
from rnncli.train import runs

app = typer.Typer(cls=Group, add_completion=False, no_args_is_help=True,
                  help="Export a trained model.\n\nExample: rnncli export onnx --model artifacts/")

# onnx_export.GRAPHS, spelled out so that completing `--graph` imports no numpy (a test checks).
Graph = Literal["auto", "hybrid", "unrolled", "native", "native-folded", "tf2onnx"]
Verbose = Annotated[bool, typer.Option(
    "--verbose", help="Explain on stderr why this graph was chosen and why others were not.")]
# What `next:` suggests predicting, as the README's first example does.
EXAMPLE_REVIEW = "a wonderful, moving film"


def _points(value: float) -> float:
    # A callback, not min/max: the range would widen the help's type column past 80.
    if not 0.0 <= value <= 100.0:
        raise typer.BadParameter(f"{value:g} is not a share of accuracy in points: give 0 to "
                                 "100 (0.1 is the default).")
    return value


@app.command(cls=Command)
@handle_errors
def onnx(
    model: Annotated[Path, typer.Option(
        "--model", help="Run folder or .keras file to export (.onnx with --text-input).")]
    = run_files.DEFAULT_OUTPUT,
    output: Annotated[Path | None, typer.Option(
        "--output", show_default="model.onnx beside the model",
        help="ONNX file to write.")] = None,
    opset: Annotated[int, typer.Option("--opset", min=1, help="ONNX opset.")] = 17,
    atol: Annotated[float, typer.Option(
        "--atol", min=0, help="Largest |ONNX - Keras| accepted.")] = 1e-5,
    reviews: Annotated[int, typer.Option(
        "--reviews", min=1,
        help="Test reviews compared with Keras.")] = 25_000,
    graph: Annotated[Graph, typer.Option(
        "--graph", help="Graph kind; auto: the rule of the export guide in docs/ (fixed "
        "order, 1.25x margin).")]
    = "auto",
    quantize: Annotated[bool, typer.Option(
        "--quantize", help="Also write model.int8.onnx: int8 weights, float math.")] = False,
    record_test: Annotated[bool, typer.Option(
        "--record-test", help="Score on the test split; store it in the file.")] = False,
    text_input: Annotated[bool, typer.Option(
        "--text-input", help="Also write *.text.onnx: review text in, tokenizer inside, "
                             "checked against the Python tokenizer.")] = False,
    no_cascade: Annotated[bool, typer.Option(
        "--no-cascade", help="Write no cascade (by default a model of 2 labels with an n-gram "
        "head gets one: the head decides the reviews it is sure of, the network the rest).")]
    = False,
    # export/cascade.py's BUDGET in points, spelled out here so that the CLI's start imports
    # no numpy (tests/test_cascade.py checks the two agree).
    cascade_budget: Annotated[float, typer.Option(
        "--cascade-budget", metavar="POINTS", callback=_points,
        help="Validation accuracy, in points, the cascade is expected to cost: lower sends "
        "more reviews on to the network (slower, closer to --no-cascade).")] = 0.1,
    data_dir: DataDir = None,
    as_json: Json = False,
    verbose: Verbose = False,
) -> None:
    """Convert to ONNX, check it against Keras on real test reviews, and keep the fastest graph.

    The file carries its preprocessing (vocabulary, maxlen, padding) for `rnncli predict`.
    Progress, and with --verbose the reasons for the choice, go to stderr.

    Example: rnncli export onnx --model artifacts/ --quantize
    """
    from rnncli.data import store as dataset
    from rnncli.export.onnx import check_exportable, export_onnx, run_folder_locked
    from rnncli.export.text_export import export_text_graph
    from rnncli.model import runtime as tf_runtime

    if output is not None:
        runs.check_output_file(output)
    ref = locate.find_model(model)
    home = dataset.data_home(data_dir)
    if text_input and ref.kind == "onnx":  # wrap an exported file: no Keras model needed
        with progress_on_stderr() as say, run_folder_locked(
                ref, Path(output or ref.path.parent / run_files.ONNX_TEXT)):
            say("text input: building, checking against the Python tokenizer")
            text = export_text_graph(ref.path, home, output, atol=atol, n_reviews=reviews)
        if as_json:
            return print_json(text.to_dict())
        for line in text_lines(text):
            out.print(line, markup=False)
        return next_steps(text.output)
    output = output or ref.path.parent / run_files.ONNX
    # Before the lock: a refused export (a base install, say) leaves the folder as it was.
    check_exportable(ref, graph)
    # One lock over the id model and the text graph beside it, as training holds it.
    with progress_on_stderr() as say, tf_runtime.quiet(hide_gpus=True), \
            run_folder_locked(ref, Path(output)):
        report = export_onnx(ref, output, home, opset=opset, atol=atol,
                             n_reviews=reviews, graph=graph, quantize=quantize,
                             record_test=record_test, progress=say, hold_lock=False,
                             cascade=not no_cascade, cascade_budget=cascade_budget / 100)
        text = None
        if text_input:
            say("text input: building, checking against the Python tokenizer")
            text = export_text_graph(report.output, home, atol=atol, n_reviews=reviews)
    rows = [{"graph": c.name, "status": c.status, "max_abs_diff": c.max_diff,
             "latency_us": c.latency_us, "reviews_per_s": c.throughput,
             "size_bytes": c.size_bytes, "error": c.error} for c in report.candidates]
    what = "test reviews" if report.real_reviews else "random id sequences (no prepared data)"
    err.print(f"compared with Keras on {report.reviews:,} {what}, --atol {report.atol:g}",
              markup=False)
    if verbose:
        for line in explain_choice(report, graph):
            err.print(line, markup=False)
    if as_json:
        return print_json({"output": str(report.output), "chosen": report.chosen,
                           "size_bytes": report.size_bytes, "validated_reviews": report.reviews,
                           "real_reviews": report.real_reviews, "atol": report.atol,
                           "candidates": rows, "quantized": report.quantized,
                           "recorded": report.recorded, "cascade": report.cascade,
                           "text_input": text and text.to_dict()})
    width = max(out.width, 40)
    table, cut = candidates_table(report, width)
    for line in table:
        out.print(line, markup=False)
    if cut and not verbose:
        err.print("(a reason was cut to fit: --verbose or --json shows it whole)", markup=False)
    for line in result_lines(report, text):
        out.print(line, markup=False)
    next_steps(report.output, evaluate=not record_test)


# --- what export shows ---------------------------------------------------------------


@contextlib.contextmanager
def progress_on_stderr() -> Iterator[Callable[[str], None]]:
    """A `say(what)` for the stages of an export: on a terminal one status line that
    changes in place and is gone at the end; elsewhere (a log, CI) one line per stage."""
    if not err.real.is_terminal:
        yield lambda what: err.print(f"export: {what}", markup=False, highlight=False)
        return
    from rich.markup import escape

    with err.real.status("export: starting") as status:
        yield lambda what: status.update(escape(f"export: {what}"))


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[:max(room - 1, 0)] + "…"


def candidates_table(report, width: int = 80) -> tuple[list[str], bool]:
    """The candidates as lines that fit `width` columns, and whether a reason was cut.
    A valid candidate shows its difference and speed; one that is out shows why, as "not
    chosen" (the export goes on with another): its difference beyond --atol, or the
    reason its graph could not be built."""
    name_w = max([len("graph")] + [len(c.name) for c in report.candidates])
    lines = [f"{'graph':<{name_w}}  {'max |diff|':>10}  {'1 review p50':>12}  "
             f"{'batch 1024':>11}"]
    cut = False
    for c in report.candidates:
        if c.status == "valid":
            mark = "  chosen" if c.name == report.chosen else ""
            lines.append(f"{c.name:<{name_w}}  {c.max_diff:>10.2e}  "
                         f"{f'{c.latency_us:,.0f} µs':>12}  {f'{c.throughput:,.0f}/s':>11}"
                         f"{mark}")
            continue
        if c.status == "mismatch" and math.isfinite(c.max_diff):
            why = f"not chosen: max |diff| {c.max_diff:.2e} > --atol {report.atol:g}"
        else:
            why = f"not chosen: {c.status}, {c.error}"
        room = width - name_w - 2
        cut = cut or len(why) > room
        lines.append(f"{c.name:<{name_w}}  {_cut(why, room)}")
    return lines, cut


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def text_lines(text) -> list[str]:
    what = "test reviews" if text.real_reviews else "made-up reviews"
    return [f"wrote {text.output} (text input, {_mb(text.size_bytes)}, max |diff| "
            f"{text.max_abs_diff:.2g})",
            f"text input: the Python tokenizer's ids on {text.reviews:,} {what} and "
            f"{text.edge_cases} edge cases"]


def result_lines(report, text=None) -> list[str]:
    """What was written, with the int8 file's cost in accuracy beside its difference."""
    lines = [f"wrote {report.output} ({_mb(report.size_bytes)}, graph {report.chosen})"]
    q = report.quantized
    if q.get("skipped"):
        lines.append(f"no int8 file: {q['skipped']}")
    elif q:
        lines.append(f"wrote {q['path']} ({_mb(q['size_bytes'])}: int8 weights, float "
                     "arithmetic)")
        int8 = f"int8: max |diff| {q['max_abs_diff']:.3g}"
        if "accuracy_int8" in q:
            # The reviews the export checks on: the first --reviews of the test split (the
            # cascade's lines below speak of the validation share).
            int8 += (f", accuracy on {report.reviews:,} test reviews "
                     f"{q['accuracy_float']:.4f} -> {q['accuracy_int8']:.4f}")
        elif "argmax_agreement" not in q:
            int8 += " (no labelled reviews to measure accuracy: `rnncli data fetch`)"
        if "argmax_agreement" in q:  # K > 2 labels: how often int8 keeps the float label
            int8 += f", same label as the float model on {q['argmax_agreement']:.2%} of rows"
        lines.append(int8)
    lines += cascade_lines(report.cascade)
    for path, metrics in report.recorded.items():
        accuracy = float(metrics["rnncli.test_accuracy"])
        lines.append(f"recorded in {path}: test accuracy {accuracy:.4f} on "
                     f"{int(metrics['rnncli.test_reviews']):,} reviews")
    if text:
        lines += text_lines(text)
    return lines


def cascade_lines(cascade: dict) -> list[str]:
    if "skipped" in cascade:
        return [f"no cascade: {cascade['skipped']}"]
    return [f"cascade in {Path(path).name}: {c['exit_share']:.1%} of {c['reviews']:,} "
            f"validation reviews stop at the n-gram head (|z| >= {c['threshold']:.2f}, "
            f"--cascade-budget {100 * c['budget']:g}); "
            f"validation accuracy {c['accuracy']:.4f}, {c['joined_accuracy']:.4f} with the "
            "network on every review" for path, c in cascade.items()]


def next_steps(output: Path, evaluate: bool = False) -> None:
    """What to run next, on stderr as `rnncli train` says it."""
    target = output.parent if output.name == run_files.ONNX else output
    lines = [f"rnncli predict --model {shlex.quote(str(target))} "
             f"{shlex.quote(EXAMPLE_REVIEW)}"]
    if evaluate:
        lines.append(f"rnncli evaluate --model {shlex.quote(str(output))}")
    err.print("next: " + "\n      ".join(lines), markup=False)


def explain_choice(report, graph: str = "auto") -> list[str]:
    """--verbose: the rule behind the choice, with this export's figures
    (docs/export-and-serving.md, "Graph kinds and the choice among them")."""
    from rnncli.export.onnx import CHOICE_MARGIN, PREFERENCE

    valid = [c for c in report.candidates if c.status == "valid"]
    lines = []
    if graph != "auto":
        lines.append(f"why {report.chosen}: --graph {graph} asked for it; it matched Keras "
                     f"within --atol {report.atol:g}, so it was kept without a timing "
                     "comparison.")
    else:
        best_latency = min(c.latency_us for c in valid)
        best_rate = max(c.throughput for c in valid)
        scores = {c.name: min(best_latency / c.latency_us, c.throughput / best_rate)
                  for c in valid}
        top = max(scores.values())
        close = [n for n in PREFERENCE if n in scores and scores[n] * CHOICE_MARGIN >= top]
        lines.append(f"why {report.chosen} (--graph auto): each graph that matched Keras "
                     f"within --atol {report.atol:g} scores the worse of its one-review p50 "
                     "and its batch rate, each relative to the best graph's:")
        for c in valid:
            lines.append(f"  {c.name:<14} {scores[c.name]:.2f}  (p50 "
                         f"{best_latency / c.latency_us:.2f}, rate "
                         f"{c.throughput / best_rate:.2f})")
        lines.append(f"  within {CHOICE_MARGIN:g}x of the best score {top:.2f}: "
                     f"{', '.join(close)}; the first in the fixed order "
                     f"{', '.join(PREFERENCE)} wins (timing noise under "
                     f"{CHOICE_MARGIN - 1:.0%} never changes the choice).")
    for c in report.candidates:
        if c.status != "valid":
            lines.append(f"  {c.name} not chosen ({c.status}): {c.error}")
    wrapped = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()))
        wrapped += textwrap.wrap(line, max(err.width, 40), subsequent_indent=indent or "  ")
    return wrapped
