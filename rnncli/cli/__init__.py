"""The `rnncli` command: one sub-app per command group, each in its own module.

    $ rnncli --help

Commands are listed in cli/lazy.py (COMMANDS) and imported only when used, so
`rnncli predict` loads neither the training nor the data commands. Each command parses
its options, calls one library function and renders the result.

Imports: every room (data, train, export, serve, evaluate, model, text, config).
"""

from __future__ import annotations

from typing import Annotated

import typer

from rnncli import __version__
from rnncli.cli.lazy import LazyGroup

app = typer.Typer(
    name="rnncli",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rnncli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          metavar="", help="Print the version and exit.")]
    = False,
) -> None:
    """Recurrent neural networks on text: from the IMDB review corpus to a served sentiment
    model.

    Example: rnncli data fetch && rnncli train && rnncli predict "great film"
    """


def main() -> None:
    # The name is fixed so that `python -m rnncli` shows and completes as `rnncli` too.
    app(prog_name="rnncli")
