"""Shared pieces of the command layer: options declared once, consoles, errors, strict JSON.

    def info(data_dir: DataDir = None, as_json: Json = False): ...

Each shared option is one `Annotated` alias, so `--data-dir` means and shows the same in
every command. Defaults that are not a plain value (a folder found at run time) are shown
with `show_default="..."`: Typer prints them as `[default: (...)]`, where brackets written
in the help text itself would be read as rich markup and vanish.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from rnncli.cli.lazy import Command, Group
from rnncli.errors import RnncliError

__all__ = ["Command", "Group"]

SplitName = Literal["train", "test"]  # archive.SPLITS (a test checks)

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", envvar="RNNCLI_HOME", show_default="$XDG_CACHE_HOME/rnncli or ~/.cache/rnncli",
    help="Data home: where `rnncli data fetch` stores the prepared corpus.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON (NaN as null).")]
NoCascade = Annotated[bool, typer.Option(
    "--no-cascade", help="Run the network on every review, also those the model's cascade "
    "leaves to its n-gram head (a model exported with one; the bundled model has one).")]
ModelPath = Annotated[Path | None, typer.Option(
    "--model", show_default="artifacts/, else the bundled model",
    help="Run folder, or a .keras or .onnx model file.")]
# Serving reads ONNX only: a .keras file is refused, so its --model does not offer one.
OnnxModelPath = Annotated[Path | None, typer.Option(
    "--model", show_default="artifacts/, else the bundled model",
    help="Run folder holding model.onnx, or an .onnx model file.")]
Split = Annotated[SplitName, typer.Option("--split", help="Which split of the corpus.")]
Limit = Annotated[int | None, typer.Option(
    "--limit", min=1, show_default="all", help="Use the first N reviews only.")]
NumWords = Annotated[int | None, typer.Option(
    "--num-words", min=1, show_default="the whole vocabulary",
    help="Vocabulary cut, as training uses it: ids >= N count as unknown words.")]


class _LazyConsole:
    """A rich Console made on first use: importing rich.console costs start-up time that
    `predict` never needs."""

    def __init__(self, **options: Any):
        self._options = options
        self._console = None

    @property
    def real(self):
        """The Console itself, for rich objects that take one (progress bars)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


# Results go to stdout, progress and diagnostics to stderr, so `--json | jq` works.
out = _LazyConsole(highlight=False, soft_wrap=True)
err = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def note(message: str) -> None:
    """A one-line diagnostic on stderr, without loading rich."""
    sys.stderr.write(message + "\n")


def which_model(ref, metadata: dict[str, str] | None = None) -> str:
    """The line that says which model answers when --model was not given: where it was
    found, and its recorded test accuracy, so that a model trained since (artifacts/) is
    never taken for the bundled one."""
    from rnncli.config.run_files import DEFAULT_OUTPUT
    from rnncli.serve import contract

    recorded = ""
    accuracy = contract.recorded_accuracy(metadata or {})
    if accuracy is not None:
        recorded = f" (test accuracy {accuracy:.4f})"
    elif metadata is not None:
        recorded = " (no test accuracy recorded)"
    if ref.bundled and ref.not_exported:
        return (f"{ref.not_exported} is not exported yet (`rnncli export onnx` serves it): "
                f"using the bundled model {ref.path}{recorded}.")
    if ref.bundled:
        return f"No model in {DEFAULT_OUTPUT}/: using the bundled model {ref.path}{recorded}."
    return (f"Using {ref.path}{recorded}, found in {DEFAULT_OUTPUT}/, not the bundled model: "
            "pass --model to choose.")


def error_exit(message: str, code: int = 1) -> typer.Exit:
    """Print the one-line error and return the Exit for the caller to raise."""
    # Plain write, not rich: a one-line message stays one line whatever the terminal width.
    sys.stderr.write(f"Error: {message}\n")
    return typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn library errors into a one-line message and exit code; Ctrl-C exits 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RnncliError as exc:
            raise error_exit(str(exc), exc.exit_code) from None
        except OSError as exc:
            # Disk full, a read-only folder, a file where a folder belongs: whatever the
            # library did not name itself still gets one line.
            where = f" {exc.filename}" if exc.filename else ""
            raise error_exit(f"Cannot use{where} ({exc.strerror or exc}): check the path, its "
                       "permissions and the free disk space.") from None
        except KeyboardInterrupt:
            raise error_exit("Interrupted; nothing was half-written.", 130) from None

    return wrapper  # type: ignore[return-value]


def strict(obj: Any) -> Any:
    """`obj` with every NaN or infinity replaced by None: JSON has no such numbers, and
    `json.dumps` would write the invalid tokens NaN and Infinity."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return strict(obj.item())
    return obj


def json_text(obj: Any, indent: int | None = None) -> str:
    return json.dumps(strict(obj), indent=indent, ensure_ascii=False, allow_nan=False,
                      default=str)


def print_json(obj: Any) -> None:
    sys.stdout.write(json_text(obj, indent=2) + "\n")
