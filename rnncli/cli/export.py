"""`rnncli export onnx`: the trained Keras model as a validated ONNX file.

    $ rnncli export onnx --model artifacts/ --output artifacts/model.onnx
"""

from __future__ import annotations

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
        help="Test reviews compared with Keras (all 25,000 by default).")] = 25_000,
    graph: Annotated[Graph, typer.Option(
        "--graph", help="Graph kind; auto: the rule in docs/export-and-serving.md (fixed order, "
        "1.25x margin).")]
    = "auto",
    quantize: Annotated[bool, typer.Option(
        "--quantize", help="Also write model.int8.onnx: int8 weights, float math.")] = False,
    record_test: Annotated[bool, typer.Option(
        "--record-test", help="Score on the test split; store it in the file.")] = False,
    text_input: Annotated[bool, typer.Option(
        "--text-input", help="Also write *.text.onnx: review text in, tokenizer inside, "
                             "checked against the Python tokenizer.")] = False,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Convert to ONNX, check it against Keras on real test reviews, and keep the fastest graph.

    The file carries its preprocessing (vocabulary, maxlen, padding) for `rnncli predict`.

    Example: rnncli export onnx --model artifacts/ --quantize
    """
    from rnncli.data import store as dataset
    from rnncli.export.onnx import export_onnx
    from rnncli.export.text_export import export_text_graph
    from rnncli.model import runtime as tf_runtime

    if output is not None:
        runs.check_output_file(output)
    ref = locate.find_model(model)
    home = dataset.data_home(data_dir)
    if text_input and ref.kind == "onnx":  # wrap an exported file: no Keras model needed
        text = export_text_graph(ref.path, home, output, atol=atol, n_reviews=reviews)
        return print_json(text.to_dict()) if as_json else out.print(text.summary())
    output = output or ref.path.parent / run_files.ONNX
    with tf_runtime.quiet(hide_gpus=True):
        report = export_onnx(ref, output, home, opset=opset, atol=atol,
                             n_reviews=reviews, graph=graph, quantize=quantize,
                             record_test=record_test)
    text = (export_text_graph(report.output, home, atol=atol, n_reviews=reviews)
            if text_input else None)
    rows = [{"graph": c.name, "status": c.status, "max_abs_diff": c.max_diff,
             "latency_us": c.latency_us, "reviews_per_s": c.throughput,
             "size_bytes": c.size_bytes, "error": c.error} for c in report.candidates]
    if as_json:
        return print_json({"output": str(report.output), "chosen": report.chosen,
                           "size_bytes": report.size_bytes, "validated_reviews": report.reviews,
                           "real_reviews": report.real_reviews, "atol": report.atol,
                           "candidates": rows, "quantized": report.quantized,
                           "recorded": report.recorded,
                           "text_input": text and text.to_dict()})
    what = "test reviews" if report.real_reviews else "random id sequences (no prepared data)"
    err.print(f"compared with Keras on {report.reviews:,} {what}, --atol {report.atol:g}")
    from rich.table import Table

    table = Table("graph", "max |diff|", "1 review p50", "batch 1024", "", box=None,
                  pad_edge=False)
    for c in report.candidates:
        if c.error:
            table.add_row(c.name, "-", "-", "-", f"{c.status}: {c.error}")
        else:
            table.add_row(c.name, f"{c.max_diff:.2e}", f"{c.latency_us:,.0f} µs",
                          f"{c.throughput:,.0f}/s", "chosen" if c.name == report.chosen else "")
    out.print(table)
    out.print(f"wrote {report.output} ({report.size_bytes / 1e6:.2f} MB, graph {report.chosen})")
    q = report.quantized
    if q.get("skipped"):
        out.print(f"no int8 file: {q['skipped']}")
    elif q:
        line = (f"wrote {q['path']} (int8 weights, float arithmetic: {q['size_bytes'] / 1e6:.2f} "
                f"MB vs {q['float_size_bytes'] / 1e6:.2f} MB; its own max |diff| "
                f"{q['max_abs_diff']:.3g}")
        if "accuracy_int8" in q:
            line += (f"; accuracy {q['accuracy_float']:.4f} -> {q['accuracy_int8']:.4f} on "
                     f"{report.reviews:,} reviews")
        out.print(line + ")")
    for path, metrics in report.recorded.items():
        out.print(f"recorded in {path}: test accuracy {metrics['rnncli.test_accuracy']} on "
                  f"{metrics['rnncli.test_reviews']} reviews")
    if text:
        out.print(text.summary())
