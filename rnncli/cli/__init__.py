"""The `rnncli` command: one sub-app per command group, each in its own module.

    $ rnncli --help
"""

from __future__ import annotations

import typer

from rnncli import __version__
from rnncli.cli import data, evaluate, export, predict, train

app = typer.Typer(
    name="rnncli",
    help="Recurrent neural networks on text: IMDB data, training, ONNX export, fast predict.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.add_typer(export.app, name="export")
app.command("predict")(predict.predict)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rnncli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """rnncli: from the IMDB review corpus to a served sentiment model.

    Example: rnncli data fetch --from aclImdb_v1.tar.gz && rnncli train
    && rnncli predict "great film"
    """


def main() -> None:
    app()
