"""`rnncli data ...`: get the IMDB corpus and look at it.

    $ rnncli data fetch --from aclImdb_v1.tar.gz
    $ rnncli data lengths --maxlen 80
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import typer

from rnncli.cli.common import (
    Command,
    DataDir,
    Group,
    Json,
    NumWords,
    Split,
    err,
    error_exit,
    handle_errors,
    note,
    out,
    print_json,
)

app = typer.Typer(cls=Group, add_completion=False, no_args_is_help=True,
                  help="Get the IMDB corpus and inspect it.\n\n"
                       "Example: rnncli data fetch && rnncli data info")

Source = Literal["aclimdb", "keras"]  # dataset.SOURCES (a test checks)
Side = Literal["pre", "post"]


def _is_url(origin: str) -> bool:
    return origin.startswith(("http://", "https://", "ftp://"))  # as fetch.py reads --from


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that cleanup runs as for Ctrl-C."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises Terminated for the block: temporary files are removed and the lock
    released on the way out, where the default action would end the process on the spot."""

    def raise_terminated(signum, frame):
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread (a test runner's worker): leave it be
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command(cls=Command)
@handle_errors
def fetch(
    source: Annotated[Source, typer.Option(
        "--source", help="aclimdb (the Stanford archive) or keras (Keras's imdb.npz).")]
    = "aclimdb",
    origin: Annotated[str | None, typer.Option(
        "--from", show_default="the official download",
        help="Local .tar.gz, extracted aclImdb/ folder, or URL (offline: a local copy).")]
    = None,
    data_dir: DataDir = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Rebuild even if already prepared.")] = False,
) -> None:
    """Download (or copy) the corpus, tokenize it and store it in the data home.

    Without --from it downloads the official archive (84 MB) and checks its SHA-256.

    Example: rnncli data fetch --from ~/Downloads/aclImdb_v1.tar.gz
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from rnncli.data import store as dataset
    from rnncli.data.fetch import fetch as do_fetch

    if origin and not _is_url(origin):
        # Stored in meta.json and shown by `data info`: absolute, so it means the same later.
        origin = str(Path(origin).expanduser().resolve())
    started = time.perf_counter()
    notes: list[str] = []
    try:
        # Off a terminal a transient bar only leaves an empty line behind.
        with terminate_as_interrupt(), Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[shown]}"),
                TimeElapsedColumn(), console=err.real, transient=True,
                disable=not err.real.is_terminal) as bar:
            tasks: dict[str, int] = {}

            def step(stage: str, done: int, total: int | None) -> None:
                # Downloads count bytes; tokenizing counts reviews.
                shown = (f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if stage == "download" and total
                         else f"{done:,} reviews" if stage == "tokenize" else "")
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total, shown=shown)
                bar.update(tasks[stage], completed=done, total=total, shown=shown)

            meta, built = do_fetch(source, origin, data_dir, force=force, step=step,
                                   note=notes.append)
    except Terminated:
        # After the bar is gone, so that the line is not drawn over.
        raise error_exit("Terminated (SIGTERM) during `rnncli data fetch`; nothing was "
                         "half-written: run it again to finish.", 143) from None
    home = dataset.data_home(data_dir)
    seconds = time.perf_counter() - started
    if built:
        note(f"Prepared {meta['source']} in {seconds:.1f} s -> {home / meta['source']}")
    else:  # plain lines: a path may hold [brackets] that rich would take as markup
        note(notes[0] if notes else
             f"Already prepared ({meta['source']}, same checksum); --force rebuilds.")
    splits = meta["splits"]
    out.print(
        f"{meta['source']}: train {splits['train']['reviews']:,} reviews, "
        f"test {splits['test']['reviews']:,} reviews, vocabulary {meta['vocab_size']:,} words"
    )


@app.command(cls=Command)
@handle_errors
def info(
    num_words: NumWords = None,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Reviews per split and label, vocabulary size and length percentiles.

    Example: rnncli data info --num-words 1000
    """
    from rnncli.data import reports
    from rnncli.data import store as dataset

    report = reports.info_report(dataset.data_home(data_dir), num_words)
    if as_json:
        return print_json(report)
    out.print(f"source {report['source']}  ({report['origin']})")
    out.print(f"vocabulary {report['vocab_size']:,} words; max id "
              f"{report['max_id']:,}" + (f" under --num-words {num_words}" if num_words else ""))
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 1),
                  title="tokens: words stored; p50-max: length with the start marker")
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


@app.command(cls=Command)
@handle_errors
def decode(
    # No `min`: `decode -- -1` gets "No review -1" with the split's range.
    index: Annotated[int, typer.Argument(help="Review number within the split (0-based).")],
    split: Split = "train",
    num_words: NumWords = None,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Decode an encoded review back to words, with its label, rating and original text.

    Example: rnncli data decode 0 --split test --num-words 1000
    """
    n = index
    from rnncli.data import reports
    from rnncli.data import store as dataset

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


@app.command(cls=Command)
@handle_errors
def lengths(
    maxlen: Annotated[int, typer.Option(
        "--maxlen", help="Length every review is padded/truncated to.")] = 80,
    padding: Annotated[Side, typer.Option("--padding", help="Where padding goes.")] = "pre",
    truncating: Annotated[Side, typer.Option(
        "--truncating", help="Which end of a long review is cut.")] = "pre",
    split: Split = "train",
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Show what padding/truncating to --maxlen does to the reviews.

    Example: rnncli data lengths --maxlen 80 --truncating pre
    """
    from rnncli.data import reports
    from rnncli.data import store as dataset

    report = reports.length_report(dataset.load_split(dataset.data_home(data_dir), split),
                                   maxlen, padding, truncating)
    if as_json:
        return print_json(report)
    n = report["reviews"]
    out.print(f"{split}: {n:,} reviews padded/truncated to {maxlen} tokens "
              f"(start marker included; padding {padding}, truncating {truncating})")
    out.print(f"  truncated: {report['truncated_share']:.1%} of reviews are cut at the "
              f"{report['lost_side']}; {report['tokens_lost']:,} of {report['tokens_total']:,} "
              f"tokens lost ({report['tokens_lost_share']:.1%}; words as `data info` counts "
              "them, no start marker)")
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
