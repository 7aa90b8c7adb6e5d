"""`rnncli data ...`: get the IMDB corpus and look at it.

    $ rnncli data fetch --from aclImdb_v1.tar.gz
    $ rnncli data lengths --maxlen 80
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from rnncli import dataset, reports
from rnncli.cli.common import err, handle_errors, out, print_json
from rnncli.errors import UsageError

app = typer.Typer(help="Get the IMDB corpus and inspect it.", no_args_is_help=True)

DataDir = typer.Option(None, "--data-dir", envvar="RNNCLI_HOME",
                       help="Data home (default: the per-user cache folder).")
Json = typer.Option(False, "--json", help="Print the result as JSON.")


@app.command()
@handle_errors
def fetch(
    source: str = typer.Option("aclimdb", "--source", help="aclimdb (Stanford archive) or keras."),
    origin: str = typer.Option(None, "--from",
                               help="Local .tar.gz, extracted aclImdb/ folder, or URL."),
    data_dir: Path = DataDir,
    force: bool = typer.Option(False, "--force", help="Rebuild even if already prepared."),
) -> None:
    """Download (or copy) the corpus, tokenize it and store it in the data home.

    Example: rnncli data fetch --from ../shared/data/aclImdb_v1.tar.gz
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from rnncli.fetch import fetch as do_fetch

    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.fields[shown]}"),
                  TimeElapsedColumn(), console=err.real, transient=True) as bar:
        tasks: dict[str, int] = {}

        def step(stage: str, done: int, total: int | None) -> None:
            # Downloads count bytes; tokenizing counts reviews.
            shown = (f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if stage == "download" and total
                     else f"{done:,} reviews" if stage == "tokenize" else "")
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, shown=shown)
            bar.update(tasks[stage], completed=done, total=total, shown=shown)

        meta, built = do_fetch(source, origin, data_dir, force=force, step=step)
    home = dataset.data_home(data_dir)
    seconds = time.perf_counter() - started
    if built:
        err.print(f"Prepared {meta['source']} in {seconds:.1f} s -> {home / meta['source']}")
    else:
        err.print(f"Already prepared ({meta['source']}, same checksum); --force rebuilds.")
    splits = meta["splits"]
    out.print(
        f"{meta['source']}: train {splits['train']['reviews']:,} reviews, "
        f"test {splits['test']['reviews']:,} reviews, vocabulary {meta['vocab_size']:,} words"
    )


@app.command()
@handle_errors
def info(
    num_words: int = typer.Option(None, "--num-words", help="Vocabulary cut, as training uses it."),
    data_dir: Path = DataDir,
    as_json: bool = Json,
) -> None:
    """Reviews per split and label, vocabulary size and length percentiles.

    Example: rnncli data info --num-words 1000
    """
    report = reports.info_report(dataset.data_home(data_dir), num_words)
    if as_json:
        return print_json(report)
    out.print(f"source {report['source']}  ({report['origin']})")
    out.print(f"vocabulary {report['vocab_size']:,} words; max id "
              f"{report['max_id']:,}" + (f" under --num-words {num_words}" if num_words else ""))
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 1),
                  title="length in tokens (start marker included)")
    for name in ("split", "reviews", "pos", "neg", "tokens", "p50", "p90", "p95", "p99", "max",
                 *(["OOV"] if num_words else [])):
        table.add_column(name, no_wrap=True, justify="left" if name == "split" else "right")
    for name, s in report["splits"].items():
        length = s["length"]
        table.add_row(name, f"{s['reviews']:,}", f"{s['pos']:,}", f"{s['neg']:,}",
                      f"{s['tokens']:,}", *(str(length[k]) for k in ("p50", "p90", "p95", "p99",
                                                                     "max")),
                      *([f"{s['oov_share']:.1%}"] if num_words else []))
    out.print(table, soft_wrap=False)
    if report["non_utf8"]:
        out.print(f"{report['non_utf8']} reviews were not UTF-8 (decoded with replacement).")


@app.command()
@handle_errors
def decode(
    index: str = typer.Argument(..., help="Review number within the split (0-based)."),
    split: str = typer.Option("train", "--split", help="train or test."),
    num_words: int = typer.Option(None, "--num-words", help="Show words beyond this cut as ?."),
    data_dir: Path = DataDir,
    as_json: bool = Json,
) -> None:
    """Decode an encoded review back to words, with its label, rating and original text.

    Example: rnncli data decode 0 --split test --num-words 1000
    """
    try:
        n = int(index)
    except ValueError:
        raise UsageError(f"Review number {index!r} is not a number: use e.g. 0.") from None
    report = reports.decode_report(dataset.data_home(data_dir), n, split, num_words)
    if as_json:
        return print_json(report)
    rating = f", rating {report['rating']}/10" if report["rating"] is not None else ""
    out.print(f"[bold]{split} review {n}[/bold]: {report['label']}{rating} "
              f"(review id {report['review_id']}, {len(report['ids'])} ids)")
    out.print("[bold]decoded:[/bold] ", end="")
    out.print(report["decoded"], markup=False)
    if report["text"] is not None:
        out.print("[bold]original:[/bold] ", end="")
        out.print(report["text"], markup=False)


@app.command()
@handle_errors
def lengths(
    maxlen: int = typer.Option(80, "--maxlen", help="Length every review is padded/truncated to."),
    padding: str = typer.Option("pre", "--padding", help="pre or post: where padding goes."),
    truncating: str = typer.Option("pre", "--truncating", help="pre or post: which end is cut."),
    split: str = typer.Option("train", "--split", help="train or test."),
    data_dir: Path = DataDir,
    as_json: bool = Json,
) -> None:
    """Show what padding/truncating to --maxlen does to the reviews.

    Example: rnncli data lengths --maxlen 80 --truncating pre
    """
    report = reports.length_report(dataset.load_split(dataset.data_home(data_dir), split),
                                   maxlen, padding, truncating)
    if as_json:
        return print_json(report)
    n = report["reviews"]
    out.print(f"{split}: {n:,} reviews padded/truncated to {maxlen} tokens "
              f"(start marker included; padding {padding}, truncating {truncating})")
    out.print(f"  truncated: {report['truncated_share']:.1%} of reviews lose words at the "
              f"{report['lost_side']}; {report['tokens_lost']:,} of {report['tokens_total']:,} "
              f"tokens lost ({report['tokens_lost_share']:.1%})")
    out.print(f"  padded:    {report['padded_share']:.1%} of reviews get zeros at the "
              f"{report['pad_side']}; {report['exact_share']:.1%} fit exactly")
    length = report["length"]
    out.print("  length:    " + "  ".join(f"{k} {v}" for k, v in length.items()))
    out.print("  maxlen that keeps reviews whole: " + "  ".join(
        f"{k[1:]}% -> {v}" for k, v in report["maxlen_to_keep_whole"].items()))
    _histogram(report)


def _histogram(report: dict, width: int = 40) -> None:
    edges, counts = report["histogram"]["edges"], report["histogram"]["counts"]
    peak = max(counts) or 1
    maxlen = report["maxlen"]
    for lo, hi, c in zip(edges, edges[1:], counts):
        bar = "█" * round(width * c / peak)
        mark = " ◀ maxlen" if lo < maxlen <= hi else ""
        last = "+" if hi == edges[-1] else " "
        out.print(f"  {lo:>5}-{hi:<5}{last} {bar:<{width}} {c:>6,}{mark}")
