"""The command classes every rnncli command uses: lazy loading, plain parsing, one-line errors.

    app = typer.Typer(cls=LazyGroup)   # the root: commands from COMMANDS, imported on use
    @app.command(cls=Command)          # every command (and Group for every group)

Two costs are paid before any command does its work, and `predict` must stay close to
the cost of importing onnxruntime (benchmarks/bench_startup.py):
- Importing every command module: `rnncli predict` has no use for the training or data
  commands. LazyGroup imports a command's module when that command is resolved (run,
  completed, or listed by the root `--help`).
- Typer 0.29 converts every option value, even one left at its default, through a
  pydantic TypeAdapter: the first one imports pydantic (about 100 ms). The values our
  options take (str, int, float, bool, Path, a fixed choice, a list of str) need no more
  than int() or a membership test, so `plain_param` gives those parameters a plain
  converter. It reaches into Typer's runtime-parameter hook; where that hook is missing
  (another Typer), parameters keep Typer's own conversion and only speed is lost
  (tests/test_cli_startup.py notices).
Usage errors (an unknown option, a bad value) are one line on stderr, like every other
rnncli error, and flags show no `<bool>` value.
"""

from __future__ import annotations

import importlib
import sys
import typing
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# name -> module holding `app`, in the order the root --help lists them.
COMMANDS = {
    "data": "rnncli.cli.data",
    "train": "rnncli.cli.train",
    "evaluate": "rnncli.cli.evaluate",
    "export": "rnncli.cli.export",
    "predict": "rnncli.cli.predict",
}

try:
    from typer._click.exceptions import ClickException
    from typer._coercion import RuntimeParam
except ImportError:  # another Typer: keep its conversion and error display
    ClickException = RuntimeParam = None  # type: ignore[assignment,misc]


def load_command(name: str, module: str):
    """The click command of `module.app`: a group where the app is declared with a Group
    class (even with one command, as `export`), else its single command."""
    app = importlib.import_module(module).app
    cls = app.info.cls
    is_group = isinstance(cls, type) and issubclass(cls, TyperGroup)
    command = typer.main.get_group(app) if is_group else typer.main.get_command(app)
    command.name = name
    return command


class _Plain:
    """What Command and Group add to Typer's classes."""

    def get_params(self, ctx) -> list:
        # Called before any value is parsed, and for --help; includes the help option,
        # which Typer makes on first use.
        params = super().get_params(ctx)
        for p in params:
            plain_param(p)
            # Typer 0.29 shows <bool> after every flag, as if `--json true` were the syntax.
            if getattr(p, "is_flag", False) and p.metavar is None:
                p.metavar = ""
        return params


class Command(_Plain, TyperCommand):
    pass


class Group(_Plain, TyperGroup):
    pass


class _LazyCommands(MutableMapping):
    """The group's command table: names known up front, each command built on first use."""

    def __init__(self, modules: dict[str, str]):
        self._modules = dict(modules)
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str):
        if name not in self._loaded:
            self._loaded[name] = load_command(name, self._modules[name])
        return self._loaded[name]

    def __setitem__(self, name: str, command) -> None:
        self._loaded[name] = command
        self._modules.setdefault(name, "")

    def __delitem__(self, name: str) -> None:
        self._loaded.pop(name, None)
        del self._modules[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


class LazyGroup(Group):
    def __init__(self, **attrs: Any):
        super().__init__(**attrs)
        self.commands = _LazyCommands(COMMANDS)

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)  # declared order, not sorted

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """A usage error (unknown option, bad value) is one line on stderr and exit 2, as
        every rnncli error is one line; Typer would draw a five-line box."""
        if not standalone_mode or ClickException is None:
            return super().main(*args, standalone_mode=standalone_mode, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except ClickException as exc:
            if type(exc).__name__ != "NoArgsIsHelpError":  # that one has printed the help
                ctx = getattr(exc, "ctx", None)
                message = " ".join(exc.format_message().split())
                hint = f" See `{ctx.command_path} --help`." if ctx is not None else ""
                end = "" if message.endswith((".", "?")) else "."
                sys.stderr.write(f"Error: {message}{end}{hint}\n")
            sys.exit(exc.exit_code)
        except typer.Abort:
            sys.stderr.write("Aborted.\n")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


# Plain conversion of option values --------------------------------------------------------


def _choice(choices: tuple, value: Any) -> Any:
    for c in choices:
        if value is c or str(c.value if isinstance(c, Enum) else c) == str(value):
            return c
    shown = ", ".join(repr(str(c.value if isinstance(c, Enum) else c)) for c in choices)
    raise ValueError(f"{value!r} is not one of {shown}.")


def _number(kind: type, low: float | None, high: float | None) -> Callable[[Any], Any]:
    name = "an integer" if kind is int else "a number"

    def convert(value: Any) -> Any:
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not {name}.") from None
        if low is not None and high is not None and not low <= number <= high:
            raise ValueError(f"{value} is not between {low} and {high}.")
        if low is not None and number < low:
            raise ValueError(f"{value} is too small: use {low} or more.")
        if high is not None and number > high:
            raise ValueError(f"{value} is too large: use {high} or less.")
        return number

    return convert


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y", "t"):
        return True
    if text in ("0", "false", "no", "off", "n", "f", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean.")


def _converter(annotation: Any, info: Any) -> Callable[[Any], Any] | None:
    """A plain converter for the values our options take, or None (Typer's own then)."""
    if info.parser is not None or getattr(info, "formats", None):
        return None
    if typing.get_origin(annotation) is typing.Literal:
        return lambda v, c=typing.get_args(annotation): _choice(c, v)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return lambda v, c=tuple(annotation): _choice(c, v)
    if annotation in (int, float):
        return _number(annotation, info.min, info.max) if not info.clamp else None
    if annotation is bool:
        return _boolean
    if annotation is str:
        return str
    if annotation is Path and not (info.exists or info.resolve_path or info.allow_dash
                                   or info.path_type or not info.file_okay
                                   or not info.dir_okay or info.writable):
        return Path
    return None


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class _PlainParam(RuntimeParam):
        convert: Callable[[Any], Any] = str
        many: bool = False

        def _coerce_value(self, value: Any, param, ctx) -> Any:
            try:
                if self.many:
                    return [self.convert(v) for v in value]
                return self.convert(value)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), ctx=ctx, param=param) from None


def plain_param(param) -> bool:
    """Give `param` a plain converter; False where it keeps Typer's own."""
    desc = getattr(param, "type_descriptor", None)
    if RuntimeParam is None or desc is None or not hasattr(param, "_runtime_param"):
        return False
    if isinstance(param._runtime_param, _PlainParam):
        return True
    annotation, many = desc.annotation, False
    if typing.get_origin(annotation) is list:
        annotation, many = typing.get_args(annotation)[0], True
    convert = _converter(annotation, desc.parameter_info)
    if convert is None:
        return False
    try:
        param._runtime_param = _PlainParam(parameter_info=desc.parameter_info,
                                           annotation=desc.annotation, convert=convert,
                                           many=many)
    except TypeError:  # RuntimeParam changed shape
        return False
    return True


def plain_values(command) -> list[str]:
    """Plain converters for a command's parameters; returns the names of those that keep
    Typer's own conversion."""
    return [p.name for p in command.params if not plain_param(p)]
