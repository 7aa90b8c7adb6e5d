"""Shared pieces of the command layer: consoles, error mapping, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from rnncli.errors import RnncliError


class _LazyConsole:
    """A rich Console made on first use: importing rich.console costs start-up time that
    `predict --format jsonl` never needs."""

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
        except OSError as exc:
            # Disk full, a read-only folder, a file where a folder belongs: whatever the
            # library did not name itself still gets one line.
            where = f" {exc.filename}" if exc.filename else ""
            raise fail(f"Cannot use{where} ({exc.strerror or exc}): check the path, its "
                       "permissions and the free disk space.") from None
        except KeyboardInterrupt:
            raise fail("Interrupted; nothing was half-written.", 130) from None

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
