"""`rnncli runs`: the run folders here, their settings, best epoch and exports.

    $ rnncli runs                       # every run one level below ., and in artifacts/
    $ rnncli runs artifacts runs/gru --json

A run folder is one that holds config.json or a .keras model (`rnncli train` writes both;
config/run_files.py names its files). Without FOLDER arguments, the runs listed are the
current folder if it is one, its subfolders that are, and the subfolders of artifacts/
that are (artifacts/best, say). Everything is read from the files: config.json for the
settings, history.json for the best epoch, and the ONNX files' metadata for the recorded
test accuracy, read as protobuf fields (serve/onnx_file.py): no TensorFlow, no onnx package and
no onnxruntime session, so listing is instant whatever the models weigh.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from rnncli.cli.common import Command, Json, handle_errors, out, print_json
from rnncli.config import run_files
from rnncli.errors import UsageError
from rnncli.serve.contract import GRAPH, TEST_REVIEWS, recorded_accuracy
from rnncli.serve.onnx_file import read_metadata

app = typer.Typer(add_completion=False)

# The exported files of a run, by the short name the table shows.
EXPORTS = {"onnx": run_files.ONNX, "int8": run_files.ONNX_INT8, "text": run_files.ONNX_TEXT}

# --- finding and reading runs -----------------------------------------------------------


def holds_run(folder: Path) -> bool:
    # train/runs.py holds_run: config.json or a .keras model
    from rnncli.train.runs import holds_run as is_run

    return folder.is_dir() and is_run(folder)


def find_runs(folders: list[Path] | None, here: Path = Path(".")) -> list[Path]:
    """The run folders named, each checked; else those found here (module docstring)."""
    if folders:
        for folder in folders:
            if not folder.exists():
                raise UsageError(f"No folder {folder}: check the path.")
            if not holds_run(folder):
                raise UsageError(f"{folder} holds no run (no {run_files.CONFIG} or .keras "
                                 f"model): `rnncli train --output {folder}` makes one.")
        return list(dict.fromkeys(folders))
    found = [here] if holds_run(here) else []
    for parent in (here, here / run_files.DEFAULT_OUTPUT):
        try:
            children = sorted(p for p in parent.iterdir() if not p.name.startswith("."))
        except OSError:  # no such folder, or not readable
            continue
        found += [p for p in children if holds_run(p)]
    return list(dict.fromkeys(found))


def _read_json(path: Path) -> dict | None:
    from rnncli.fsutil import read_json

    try:
        data = read_json(path)
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def run_summary(folder: Path) -> dict:
    """What `rnncli runs` shows of one run folder; a field is None where its file is
    missing or unreadable."""
    from rnncli.train.runs import read_history

    cfg = _read_json(folder / run_files.CONFIG) or {}
    model, data, train = (cfg.get(k) if isinstance(cfg.get(k), dict) else {}
                          for k in ("model", "data", "train"))
    history, best_epoch, best = read_history(folder)
    at_best = next((h for h in history if isinstance(h, dict)
                    and h.get("epoch") == best_epoch), {})
    try:
        trained = float((folder / run_files.LAST_RUN).read_text().strip())
        trained_at = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(trained))
    except (OSError, ValueError, OverflowError):
        trained_at = None
    exports = {}
    for short, name in EXPORTS.items():
        path = folder / name
        if path.is_file():
            meta = read_metadata(path)
            reviews = meta.get(TEST_REVIEWS, "")
            exports[short] = {"path": str(path), "size_bytes": path.stat().st_size,
                              "graph": meta.get(GRAPH),
                              "test_accuracy": recorded_accuracy(meta),
                              "test_reviews": int(reviews) if reviews.isdigit() else None}
    return {
        "folder": str(folder),
        "model": (str(folder / run_files.MODEL) if (folder / run_files.MODEL).exists()
                  else None),
        "cell": model.get("cell"),
        "units": model.get("units"),
        "layers": model.get("layers"),
        "bidirectional": model.get("bidirectional"),
        "maxlen": data.get("maxlen"),
        "num_words": data.get("num_words"),
        "epochs": train.get("epochs"),
        "epochs_run": len(history),
        "monitor": train.get("monitor"),
        "best_epoch": best_epoch,
        "best": _number(best),
        "best_val_accuracy": _number(at_best.get("val_accuracy")),
        "best_val_loss": _number(at_best.get("val_loss")),
        "trained_at": trained_at,
        "exports": exports,
        "test_accuracy": next((e["test_accuracy"] for e in exports.values()
                               if e["test_accuracy"] is not None), None),
    }


# --- the table -------------------------------------------------------------------------


def _network(run: dict) -> str:
    """'bi-gru 64x2': cell, units, layers and direction in one cell of the table."""
    if run["cell"] is None:
        return "-"
    name = ("bi-" if run["bidirectional"] else "") + str(run["cell"])
    units = f" {run['units']}" if run["units"] is not None else ""
    layers = f"x{run['layers']}" if isinstance(run["layers"], int) and run["layers"] > 1 else ""
    return name + units + layers


def _epochs(run: dict) -> str:
    if run["epochs"] is None:
        return str(run["epochs_run"] or "-")
    if run["epochs_run"] == run["epochs"]:
        return str(run["epochs"])
    return f"{run['epochs_run']}/{run['epochs']}"  # stopped early, interrupted or running


def _exports(run: dict) -> str:
    return " ".join(run["exports"]) or "-"


def table_rows(runs: list[dict]) -> list[tuple[str, ...]]:
    rows = []
    for r in runs:
        # Three decimals: the table fits 80 columns; --json has every digit.
        best = (f"{r['best_val_accuracy']:.3f} @{r['best_epoch']}"
                if r["best_val_accuracy"] is not None else "-")
        words = f"{r['num_words']:,}" if isinstance(r["num_words"], int) else (
            "all" if r["cell"] is not None else "-")
        test = f"{r['test_accuracy']:.4f}" if r["test_accuracy"] is not None else "-"
        rows.append((r["folder"], _network(r), str(r["maxlen"] or "-"), words, _epochs(r),
                     best, _exports(r), test))
    return rows


HEADERS = ("run", "network", "maxlen", "words", "epochs", "best val", "exports", "test acc")


@app.command("runs", cls=Command)
@handle_errors
def runs(
    folders: Annotated[list[Path] | None, typer.Argument(
        metavar="FOLDER", help="Run folders to list.",
        show_default="every run folder in . and artifacts/")]
    = None,
    as_json: Json = False,
) -> None:
    """List run folders: network, maxlen, vocabulary, epochs, best validation accuracy,
    exports and recorded test accuracy.

    Without FOLDER, lists the current folder if it holds a run, and each folder one level
    below it and below artifacts/ that does (config.json or a .keras model). "best val"
    is the validation accuracy of the epoch kept (@ its number); "test acc" is what `export
    onnx --record-test` stored in model.onnx. Reads files only: no TensorFlow.

    Example: rnncli runs --json
    """
    found = [run_summary(folder) for folder in find_runs(folders)]
    if as_json:
        return print_json(found)
    if not found:
        from rnncli.cli.common import note

        note(f"No run folders here or in {run_files.DEFAULT_OUTPUT}/ (none holds "
             f"{run_files.CONFIG} or a .keras model): `rnncli train` makes one.")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(*HEADERS, box=None, pad_edge=False, padding=(0, 1, 0, 0))  # 1 space apart
    for i, name in enumerate(HEADERS):
        # Only a long folder name folds: every other cell is short and keeps its line.
        table.columns[i].no_wrap = name != "run"
        table.columns[i].overflow = "fold"
        table.columns[i].justify = "right" if name in ("maxlen", "words", "epochs") else "left"
    for row in table_rows(found):
        table.add_row(*(Text(cell) for cell in row))  # a folder name is not markup
    out.print(table, soft_wrap=False)
