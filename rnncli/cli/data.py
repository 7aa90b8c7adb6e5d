"""`rnncli data ...`: get the IMDB corpus or import a labelled dataset, and look at them.

    $ rnncli data fetch --from aclImdb_v1.tar.gz
    $ rnncli data import tickets.csv --name tickets --text-column subject --text-column body
    $ rnncli data list
    $ rnncli data lengths --maxlen 80 --dataset tickets
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
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
                  help="Get the IMDB corpus or import a labelled dataset, and inspect them."
                       "\n\nExample: rnncli data fetch && rnncli data info")

Source = Literal["aclimdb", "keras"]  # dataset.SOURCES (a test checks)
Side = Literal["pre", "post"]
DatasetName = Annotated[str | None, typer.Option(
    "--dataset", metavar="<name>", show_default="the current IMDB source",
    help="An imported dataset (`rnncli data list`), or aclimdb / keras.")]


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


@contextlib.contextmanager
def _interruptible(command: str) -> Iterator[None]:
    """SIGTERM as Ctrl-C for the block, and its one line once the progress bar is gone."""
    try:
        with terminate_as_interrupt():
            yield
    except Terminated:
        raise error_exit(f"Terminated (SIGTERM) during `{command}`; nothing was "
                         "half-written: run it again to finish.", 143) from None


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[str, int, int | None], None]]:
    """A step(stage, done, total) that draws transient bars on stderr (none off a terminal:
    there a transient bar only leaves an empty line behind)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.fields[shown]}"), TimeElapsedColumn(), console=err.real,
                  transient=True, disable=not err.real.is_terminal) as bar:
        tasks: dict[str, int] = {}

        def step(stage: str, done: int, total: int | None) -> None:
            # Downloads count bytes; reading and tokenizing count reviews.
            shown = (f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if stage == "download" and total
                     else f"{done:,} reviews" if stage == "tokenize"
                     else f"{done:,} rows" if stage == "read" else "")
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, shown=shown)
            bar.update(tasks[stage], completed=done, total=total, shown=shown)

        yield step


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
    from rnncli.data import store as dataset
    from rnncli.data.fetch import fetch as do_fetch

    if origin and not _is_url(origin):
        # Stored in meta.json and shown by `data info`: absolute, so it means the same later.
        origin = str(Path(origin).expanduser().resolve())
    started = time.perf_counter()
    notes: list[str] = []
    with _interruptible("rnncli data fetch"), _progress() as step:
        meta, built = do_fetch(source, origin, data_dir, force=force, step=step,
                               note=notes.append)
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


@app.command("import", cls=Command)
@handle_errors
def import_(
    file: Annotated[Path, typer.Argument(
        show_default=False,
        help="A .csv, .tsv, .jsonl or .parquet file with a text and a label column, or a "
             "folder of LABEL/*.txt (or of train/ and test/ folders laid out so).")],
    name: Annotated[str, typer.Option(
        "--name", metavar="<name>", help="What to call the dataset: `--dataset NAME` elsewhere.")],
    test: Annotated[Path | None, typer.Option(
        "--test", show_default="split off --test-share",
        help="A file (or folder) of the same layout that is the test part.")] = None,
    test_share: Annotated[float | None, typer.Option(
        "--test-share", show_default="0.2",
        help="Share of each label's rows split off as the test part, when there is none.")]
    = None,
    seed: Annotated[int, typer.Option(  # own.DEFAULT_SEED (a test checks)
        "--seed", help="Seed of the --test-share split.")] = 113,
    text_column: Annotated[list[str] | None, typer.Option(
        "--text-column", metavar="<name>", show_default="text",
        help="Column holding the text; repeat it to join several by a space, in order.")]
    = None,
    label_column: Annotated[str, typer.Option(
        "--label-column", metavar="<name>",
        help="Column holding the label (any strings or integers).")]
    = "label",
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="Import the other rows past a bad one, and count them by reason.")]
    = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace a dataset of that name.")] = False,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Import a labelled dataset of 2 or more labels: tokenize it and store it by name.

    Label indexes follow the labels' sorted order (numeric for integers); with 2 labels,
    the second is the "positive" one. Then train on it: rnncli train --dataset NAME.

    Example: rnncli data import tickets.csv --name tickets --text-column body --test-share 0.2
    """
    from rnncli.data.own import import_dataset
    started = time.perf_counter()
    with _interruptible("rnncli data import"), _progress() as step:
        result = import_dataset(file, name, data_dir, test=test, test_share=test_share,
                                seed=seed, text_columns=text_column, label_column=label_column,
                                force=force, skip_bad=skip_bad, step=step)
    seconds = time.perf_counter() - started
    note(f"{'Replaced' if result['replaced'] else 'Imported'} {result['name']} in "
         f"{seconds:.1f} s -> {result['stored']}")
    if as_json:
        return print_json(result)
    splits = result["splits"]
    labels = result["labels"]
    out.print(f"{result['name']}: train {splits['train']['rows']:,} rows, test "
              f"{splits['test']['rows']:,} rows, {len(labels)} labels, vocabulary "
              f"{result['vocab_size']:,} words", markup=False)
    _label_table(labels, {s: v["classes"] for s, v in splits.items()})
    if result["skipped"]:
        out.print(f"skipped {sum(result['skipped'].values()):,} bad rows: "
                  f"{_reasons(result['skipped'])}")
    out.print(f"stored in {result['stored']}", markup=False)
    out.print(f"next: {result['next']}", markup=False)


@app.command("list", cls=Command)
@handle_errors
def list_(
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """The datasets in the data home: those imported, then the IMDB sources prepared (*: the
    current one, which commands use without --dataset).

    Example: rnncli data list
    """
    from rich.table import Table
    from rich.text import Text

    from rnncli.data import reports
    from rnncli.data import store as dataset

    home = dataset.data_home(data_dir)
    rows = reports.list_report(home)
    if as_json:
        return print_json(rows)
    if not rows:
        note(f"No datasets in {home}: run `rnncli data fetch`, or `rnncli data import FILE "
             "--name NAME`.")
        return
    table = Table(box=None, pad_edge=False, padding=(0, 1))
    for col in ("name", "labels", "train", "test", "vocabulary", "origin"):
        # A path is folded, never cut: it is what tells two datasets apart.
        table.add_column(col, no_wrap=col != "origin",
                         overflow="fold" if col == "origin" else "ellipsis",
                         justify="right" if col in ("labels", "train", "test", "vocabulary")
                         else "left")
    for r in rows:
        shown = Text(r["name"] + (" *" if r["current"] else ""))
        if "problem" in r:
            table.add_row(shown, "", "", "", "", Text(r["problem"]))
            continue
        table.add_row(shown, str(len(r["labels"])), f"{r['train']:,}", f"{r['test']:,}",
                      f"{r['vocab_size']:,}", Text(r["origin"]))
    out.print(table, soft_wrap=False)


@app.command(cls=Command)
@handle_errors
def info(
    num_words: NumWords = None,
    dataset_name: DatasetName = None,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Reviews per split and label, vocabulary size and length percentiles.

    Example: rnncli data info --num-words 1000
    """
    from rnncli.data import reports
    from rnncli.data import store as dataset

    report = reports.info_report(dataset.data_home(data_dir), num_words, dataset_name)
    if as_json:
        return print_json(report)
    if "labels" in report:
        return _own_info(report, num_words)
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


def _own_info(report: dict, num_words: int | None) -> None:
    """An imported dataset's info: rows per label (of any number of labels) in a table of
    their own, where the IMDB sources show pos and neg columns."""
    from rich.table import Table

    labels = report["labels"]
    out.print(f"dataset {report['source']}  ({report['origin']})", markup=False)
    out.print(f"{len(labels)} labels; vocabulary {report['vocab_size']:,} words; max id "
              f"{report['max_id']:,}" + (f" under --num-words {num_words}" if num_words else ""))
    table = Table(box=None, pad_edge=False, padding=(0, 1),
                  title="tokens: words stored; p50-max: length with the start marker")
    for name in ("split", "rows", "tokens", "p50", "p90", "p95", "p99", "max",
                 *(["OOV"] if num_words else [])):
        table.add_column(name, no_wrap=True, justify="left" if name == "split" else "right")
    for name, s in report["splits"].items():
        length = s["length"]
        table.add_row(name, f"{s['reviews']:,}", f"{s['tokens']:,}",
                      *(str(length[k]) for k in ("p50", "p90", "p95", "p99", "max")),
                      *([f"{s['oov_share']:.1%}"] if num_words else []))
    out.print(table, soft_wrap=False)
    _label_table(labels, {k: v["classes"] for k, v in report["splits"].items()})
    if report.get("skipped"):
        out.print(f"skipped at import: {_reasons(report['skipped'])}")


def _label_table(labels: list[str], classes: dict[str, dict[str, int]]) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 1))
    table.add_column("label", no_wrap=True)
    for split in classes:
        table.add_column(split, no_wrap=True, justify="right")
    from rich.text import Text

    for label in labels:
        # Label names are the user's: Text, never read as rich markup.
        table.add_row(Text(label), *(f"{classes[s][label]:,}" for s in classes))
    out.print(table, soft_wrap=False)


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {why}" for why, n in sorted(counts.items(), key=lambda kv: -kv[1]))


@app.command(cls=Command)
@handle_errors
def decode(
    # No `min`: `decode -- -1` gets "No review -1" with the split's range.
    index: Annotated[int, typer.Argument(help="Review number within the split (0-based).")],
    split: Split = "train",
    num_words: NumWords = None,
    dataset_name: DatasetName = None,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Decode an encoded review back to words, with its label, rating and original text.

    Example: rnncli data decode 0 --split test --num-words 1000
    """
    n = index
    from rich.markup import escape

    from rnncli.data import reports
    from rnncli.data import store as dataset

    report = reports.decode_report(dataset.data_home(data_dir), n, split, num_words,
                                   dataset_name)
    if as_json:
        return print_json(report)
    rating = f", rating {report['rating']}/10" if report["rating"] is not None else ""
    # An imported dataset's id is the row of the file it came from.
    rid = ("review id" if not dataset.is_own(report["dataset"]) else "source row")
    out.print(f"[bold]{split} review {n}[/bold]: {escape(report['label'])}{rating} "
              f"({rid} {report['review_id']}, {len(report['ids'])} ids)")
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
    dataset_name: DatasetName = None,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Show what padding/truncating to --maxlen does to the reviews.

    Example: rnncli data lengths --maxlen 80 --truncating pre
    """
    from rnncli.data import reports
    from rnncli.data import store as dataset

    report = reports.length_report(dataset.load_split(dataset.data_home(data_dir), split,
                                                      dataset_name),
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
