"""`rnncli runs`: the run folders here, their settings, best epoch and exports.

    $ rnncli runs                       # every run one level below ., and in artifacts/
    $ rnncli runs artifacts runs/gru --json

A run folder is one that holds config.json or a .keras model (`rnncli train` writes both;
config/run_files.py names its files). Without FOLDER arguments, the runs listed are the
current folder if it is one, its subfolders that are, and the subfolders of artifacts/
that are (artifacts/best, say). Everything is read from the files: config.json for the
settings, history.json for the best epoch, and the ONNX files' metadata for the recorded
test accuracy, read as protobuf fields (onnx_metadata): no TensorFlow, no onnx package and
no onnxruntime session, so listing is instant whatever the models weigh.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer

from rnncli.cli.common import Command, Json, handle_errors, out, print_json
from rnncli.config import run_files
from rnncli.errors import UsageError

app = typer.Typer(add_completion=False)

# The exported files of a run, by the short name the table shows.
EXPORTS = {"onnx": run_files.ONNX, "int8": run_files.ONNX_INT8, "text": run_files.ONNX_TEXT}
TEST_ACCURACY = "rnncli.test_accuracy"  # serve/contract.py TEST_ACCURACY (a test checks)
TEST_REVIEWS = "rnncli.test_reviews"
GRAPH = "rnncli.graph"

# --- metadata of an ONNX file, without onnx or onnxruntime ------------------------------

# An ONNX file is a ModelProto: top-level field 14 is the repeated metadata_props, each a
# StringStringEntryProto (1: key, 2: value). The graph (field 7, most of the file) is
# skipped by seeking over it. Entries longer than this (the vocabulary) are skipped too.
METADATA_FIELD = 14
MAX_ENTRY = 1 << 16
MAX_FIELDS = 100_000  # top-level fields read before giving up on a file that is no model


def _varint(f: BinaryIO) -> int | None:
    value = shift = 0
    for _ in range(10):  # a 64-bit varint takes at most 10 bytes
        byte = f.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
    return None


def _fields(f: BinaryIO, size: int, want: int | None = None):
    """(field number, bytes) of each length-delimited field numbered `want` (any, if
    None) and at most MAX_ENTRY long; other fields are skipped. Stops at the end or at
    bytes that are no protobuf."""
    for _ in range(MAX_FIELDS):
        key = _varint(f)
        if key is None:
            return
        number, wire = key >> 3, key & 7
        if wire == 0:
            if _varint(f) is None:
                return
        elif wire == 2:
            length = _varint(f)
            if length is None or f.tell() + length > size:
                return
            if (want is None or number == want) and length <= MAX_ENTRY:
                yield number, f.read(length)
            else:
                f.seek(length, io.SEEK_CUR)
        elif wire in (1, 5):  # fixed64, fixed32
            f.seek(8 if wire == 1 else 4, io.SEEK_CUR)
        else:  # groups (3, 4) are not in ONNX; 6, 7 do not exist
            return


def onnx_metadata(path: Path) -> dict[str, str]:
    """The short metadata_props of an ONNX file (the vocabulary and other entries over
    MAX_ENTRY bytes left out); {} for a file that cannot be read or is no protobuf."""
    found: dict[str, str] = {}
    try:
        with open(path, "rb") as f:
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
            for _, entry in _fields(f, size, METADATA_FIELD):
                parts = dict(_fields(io.BytesIO(entry), len(entry)))
                key, value = parts.get(1), parts.get(2, b"")
                if key is not None:
                    found[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    except OSError:
        return {}
    return found


def recorded_accuracy(metadata: dict[str, str]) -> float | None:
    """rnncli.test_accuracy when it is a number in [0, 1]: metadata is untrusted text."""
    try:
        accuracy = float(metadata.get(TEST_ACCURACY, "nan"))
    except ValueError:
        return None
    return accuracy if 0 <= accuracy <= 1 else None


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
            meta = onnx_metadata(path)
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
