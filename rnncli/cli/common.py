"""Shared pieces of the command layer: consoles, error mapping, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from rnncli.errors import RnncliError

# Results go to stdout, progress and diagnostics to stderr, so `--json | jq` works.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> typer.Exit:
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
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("Interrupted; nothing was half-written.", 130) from None

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
