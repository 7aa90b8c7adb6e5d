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
rnncli error. `--help` reads as a user types: values as <int>, <path>, <text> or a choice
list that wraps between names (value_shown), flags with no value, a flag pair (--jit /
--no-jit) in one cell, and each paragraph wrapped once, at the terminal's edge (reflow).
`rnncli --show-completion zsh` prints the script of the shell named (LazyGroup.parse_args).
"""

from __future__ import annotations

import importlib
import inspect
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
    "runs": "rnncli.cli.runs",
    "info": "rnncli.cli.info",
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

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.help:
            self.help = reflow(self.help)

    def get_params(self, ctx) -> list:
        # Called before any value is parsed, and for --help; includes the help option,
        # which Typer makes on first use.
        params = super().get_params(ctx)
        for p in params:
            plain_param(p)
            show_value_as(p)
        return params

    def format_help(self, ctx, formatter) -> None:
        # Typer gives the second name of a flag pair (--no-jit) a column of its own, and at
        # 80 columns rich then cuts long option names short ("--embedding-drop…") to fit
        # the extra column: show the pair in one cell, which wraps at its " / ".
        pairs = [(p, p.opts, p.secondary_opts) for p in self.get_params(ctx)
                 if getattr(p, "secondary_opts", None)]
        try:
            for p, opts, secondary in pairs:
                p.opts, p.secondary_opts = [" / ".join([*opts, *secondary])], []
            super().format_help(ctx, formatter)
        finally:
            for p, opts, secondary in pairs:
                p.opts, p.secondary_opts = opts, secondary


def reflow(help_text: str) -> str:
    """A docstring's paragraphs each as one line: Typer 0.29 keeps the single line breaks
    of every paragraph after the first, and the terminal then wraps the source's lines
    again, leaving ragged half-lines. A paragraph starting with \\b, or holding an indented
    line (an example), keeps its lines."""
    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") or any(line[:1].isspace() for line in p.splitlines())
        else " ".join(p.split("\n")) for p in paragraphs)


# What an option's value is, as --help shows it: words a user reads, not Python types.
_SHOWN = {int: "<int>", float: "<float>", str: "<text>", Path: "<path>"}
# A choice list longer than this is shown with spaces around `|`, so that a narrow
# terminal wraps it between two names instead of folding a name in two.
CHOICES_ON_ONE_LINE = 20


def value_shown(param) -> str | None:
    """The value column of `param` in --help: <int>, <path>, <text>, <a|b|c>; None to
    keep Typer's own. A list (a repeatable option, several arguments) shows its item."""
    desc = getattr(param, "type_descriptor", None)
    if desc is None:
        return None
    annotation = desc.annotation
    if typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is typing.Literal:
        choices = [str(c) for c in typing.get_args(annotation)]
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        choices = [str(c.value) for c in annotation]
    else:
        return _SHOWN.get(annotation)
    shown = "|".join(choices)
    return f"<{shown if len(shown) <= CHOICES_ON_ONE_LINE else ' | '.join(choices)}>"


def show_value_as(param) -> None:
    """Flags show no value (Typer 0.29 shows <bool>, as if `--json true` were the
    syntax); other parameters show value_shown(param). An explicit metavar is kept."""
    if getattr(param, "is_flag", False):
        if param.metavar is None:
            param.metavar = ""
        return
    shown = value_shown(param)
    if shown is None:
        return
    if param.param_type_name == "argument":
        # An argument's metavar would rename it in the usage line: set its type column only.
        param.display_type_rich = lambda ctx=None, shown=shown: shown
    elif param.metavar is None:
        param.metavar = shown


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


# The shells Typer writes completion scripts for.
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
COMPLETION_OPTIONS = {
    "--show-completion": "Print the completion script for SHELL ({}; default: the current "
                         "shell), to copy it or customize the installation.",
    "--install-completion": "Install completion for SHELL ({}; default: the current shell).",
}


class LazyGroup(Group):
    def __init__(self, **attrs: Any):
        super().__init__(**attrs)
        self.commands = _LazyCommands(COMMANDS)

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)  # declared order, not sorted

    def get_params(self, ctx) -> list:
        params = super().get_params(ctx)
        for p in params:
            option = next((o for o in getattr(p, "opts", ()) if o in COMPLETION_OPTIONS), None)
            if option:
                p.help = COMPLETION_OPTIONS[option].format(", ".join(SHELLS[:4]))
                p.metavar = "[<shell>]"
        return params

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        """`--show-completion zsh` prints zsh's script. Typer declares both completion
        options as flags that detect the shell from the parent process, so the shell a
        user names would be read as a command and ignored (bash's script printed from a
        bash session whatever was asked)."""
        request = _completion_request(args, self.commands)
        if request is not None:
            option, shell = request
            param = next(p for p in self.get_params(ctx) if option in p.opts)
            if shell not in SHELLS:
                raise typer.BadParameter(f"{shell!r} is not a shell rnncli completes: use "
                                         f"{', '.join(SHELLS[:3])} or {SHELLS[3]}.",
                                         ctx=ctx, param=param)
            param.callback(ctx, param, shell)  # prints or installs, then exits
        return super().parse_args(ctx, args)

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


def _completion_request(args: list[str], commands) -> tuple[str, str] | None:
    """(option, shell) when `args` name a shell after a completion option: `--show-completion
    zsh` or `--show-completion=zsh`, before any command."""
    for i, arg in enumerate(args):
        option, eq, value = arg.partition("=")
        if option in COMPLETION_OPTIONS:
            if eq:
                return option, value
            following = args[i + 1] if i + 1 < len(args) else None
            if following is not None and not following.startswith("-") and (
                    following not in commands):
                return option, following
            return None
        if not arg.startswith("-"):  # a command: what follows is its own
            return None
    return None


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
