"""`rnncli export onnx`: the trained Keras model as a validated ONNX file.

    $ rnncli export onnx --model artifacts/ --output artifacts/model.onnx
"""

from __future__ import annotations

from pathlib import Path

import typer

from rnncli import dataset, runs
from rnncli.cli.common import err, handle_errors, out, print_json

app = typer.Typer(help="Export a trained model.", no_args_is_help=True)


@app.command()
@handle_errors
def onnx(
    model: Path = typer.Option(runs.DEFAULT_OUTPUT, "--model",
                                help="Run folder or .keras file (.onnx with --text-input)."),
    output: Path = typer.Option(None, "--output", help="ONNX file [model folder/model.onnx]."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset."),
    atol: float = typer.Option(1e-5, "--atol", help="Largest |ONNX - Keras| accepted."),
    reviews: int = typer.Option(1000, "--reviews", help="Test reviews compared with Keras."),
    graph: str = typer.Option("auto", "--graph",
                              help="auto (fastest valid), native-folded, native or tf2onnx."),
    quantize: bool = typer.Option(False, "--quantize", help="Also write a dynamic int8 model."),
    record_test: bool = typer.Option(False, "--record-test",
                                     help="Score on the test split; store it in the file."),
    text_input: bool = typer.Option(False, "--text-input",
                                    help="Also write *.text.onnx: review text in, tokenizer "
                                         "inside, checked against the Python tokenizer."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="RNNCLI_HOME", help="Data home."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Convert to ONNX, check it against Keras on real test reviews, and keep the fastest graph.

    The file carries its preprocessing (vocabulary, maxlen, padding) for `rnncli predict`.

    Example: rnncli export onnx --model artifacts/ --quantize
    """
    from rnncli.onnx_export import export_onnx
    from rnncli.text_export import export_text_graph

    ref = runs.find_model(model)
    home = dataset.data_home(data_dir)
    if text_input and ref.kind == "onnx":  # wrap an exported file: no Keras model needed
        text = export_text_graph(ref.path, home, output, atol=atol, n_reviews=reviews)
        return print_json(text.to_dict()) if as_json else out.print(text.summary())
    output = output or ref.path.parent / runs.ONNX
    with runs.native_stderr_silenced():
        report = export_onnx(ref, output, home, opset=opset, atol=atol,
                             n_reviews=reviews, graph=graph, quantize=quantize,
                             record_test=record_test)
    text = (export_text_graph(report.output, home, atol=atol, n_reviews=reviews)
            if text_input else None)
    rows = [{"graph": c.name, "max_abs_diff": c.max_diff, "latency_us": c.latency_us,
             "reviews_per_s": c.throughput, "error": c.error} for c in report.candidates]
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
            table.add_row(c.name, "-", "-", "-", f"rejected: {c.error}")
        else:
            table.add_row(c.name, f"{c.max_diff:.2e}", f"{c.latency_us:,.0f} µs",
                          f"{c.throughput:,.0f}/s", "chosen" if c.name == report.chosen else "")
    out.print(table)
    out.print(f"wrote {report.output} ({report.size_bytes / 1e6:.2f} MB, graph {report.chosen})")
    q = report.quantized
    if q:
        line = (f"wrote {q['path']} (int8, {q['size_bytes'] / 1e6:.2f} MB vs "
                f"{q['float_size_bytes'] / 1e6:.2f} MB; max |diff| {q['max_abs_diff']:.3g}")
        if "accuracy_int8" in q:
            line += (f"; accuracy {q['accuracy_float']:.4f} -> {q['accuracy_int8']:.4f} on "
                     f"{report.reviews:,} reviews")
        out.print(line + ")")
    for path, metrics in report.recorded.items():
        out.print(f"recorded in {path}: test accuracy {metrics['rnncli.test_accuracy']} on "
                  f"{metrics['rnncli.test_reviews']} reviews")
    if text:
        out.print(text.summary())
