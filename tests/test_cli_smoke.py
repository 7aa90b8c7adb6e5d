"""The installed command starts, every command documents itself (an example, the defaults),
options are declared once, and start-up stays light."""

import functools
import os
import re
import subprocess
import sys

import pytest
import typer
from conftest import invoke

from rnncli.cli import app

HEAVY = ("tensorflow", "keras", "tf2onnx", "onnx")
COMMANDS = [
    [],
    ["data"],
    ["data", "fetch"],
    ["data", "info"],
    ["data", "decode"],
    ["data", "lengths"],
    ["train"],
    ["evaluate"],
    ["export"],
    ["export", "onnx"],
    ["predict"],
]


def ids(cmd: list[str]) -> str:
    return " ".join(cmd) or "rnncli"


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "rnncli", *args], capture_output=True,
                          text=True, timeout=120, **kw)


@functools.cache
def help_text(cmd: tuple[str, ...]) -> str:
    """`--help` in a subprocess, wide enough that each option keeps to one row."""
    res = run(*cmd, "--help", env={**os.environ, "TERMINAL_WIDTH": "400"})
    assert res.returncode == 0, res.stderr
    return res.stdout


def click_command(cmd: list[str]):
    command = typer.main.get_command(app)
    for name in cmd:
        command = command.commands[name]
    return command


def option_row(text: str, option: str) -> str:
    match = re.search(rf"^│ {re.escape(option)}\s.*$", text, re.MULTILINE)
    assert match, f"{option} is not in the help"
    return match.group(0)


@pytest.mark.parametrize("cmd", COMMANDS, ids=ids)
def test_help_runs_in_a_subprocess_with_an_example(cmd):
    text = help_text(tuple(cmd))
    assert "Usage: rnncli" in text
    assert "Example: rnncli" in text


@pytest.mark.parametrize("cmd", COMMANDS, ids=ids)
def test_help_shows_every_default_and_no_bool_metavar(cmd):
    text = help_text(tuple(cmd))
    assert "<bool>" not in text, "a flag takes no value"
    for param in click_command(cmd).params:
        if param.param_type_name != "option" or param.hidden or param.is_flag:
            continue
        row = option_row(text, param.opts[0])
        assert "[default: " in row, f"{param.opts[0]} shows no default"


def test_shared_options_read_the_same_everywhere():
    rows: dict[str, set[str]] = {}
    for cmd in COMMANDS:
        command = click_command(cmd)
        for param in command.params:
            for shared in ("--data-dir", "--json", "--model", "--split", "--limit"):
                # export reads Keras only, predict ONNX only: their --model differs.
                if shared in getattr(param, "opts", ()) and (shared, cmd) not in (
                        ("--model", ["export", "onnx"]), ("--model", ["predict"])):
                    row = option_row(help_text(tuple(cmd)), shared)
                    rows.setdefault(shared, set()).add(" ".join(row.split()[2:-1]))
    assert set(rows) == {"--data-dir", "--json", "--model", "--split", "--limit"}
    for option, texts in rows.items():
        # --split's default differs (train or test); the rest of the row is the same.
        assert len({re.sub(r"\[default: \w+\]", "", t) for t in texts}) == 1, (option, texts)


@pytest.mark.parametrize("args", [["evaluate", "--limit", "0"], ["evaluate", "--limit", "-3"],
                                  ["train", "--limit", "0"], ["data", "info", "--num-words",
                                                               "0"]])
def test_limit_zero_or_negative_is_a_usage_error(args, prepared):
    res = invoke(*args)
    assert res.exit_code == 2
    assert "too small: use 1 or more" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def loaded_modules(argv: list[str]) -> set[str]:
    """Top-level modules imported while the CLI handles `argv` in a fresh interpreter."""
    code = (
        "import sys\n"
        "from rnncli.cli import app\n"
        f"sys.argv = ['rnncli', *{argv!r}]\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('MODULES ' + ' '.join({m.split('.')[0] for m in sys.modules}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return set(res.stderr.rpartition("MODULES ")[2].split())


def test_help_loads_no_heavy_module():
    mods = loaded_modules(["--help"])
    assert "typer" in mods, "the probe itself must see the CLI's imports"
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_data_reports_load_no_heavy_module(prepared, _isolated):
    mods = loaded_modules(["data", "info"])
    assert "numpy" in mods
    assert not mods & set(HEAVY)


@functools.cache
def help_at_80(cmd: tuple[str, ...]) -> str:
    """`--help` as an 80-column terminal shows it."""
    res = invoke(*cmd, "--help", env={"COLUMNS": "80", "TERMINAL_WIDTH": None})
    assert res.exit_code == 0, res.output
    return res.stdout


def option_cell(text: str, option: str) -> list[str]:
    """The lines of `option`'s row in an options panel, up to the next option's row."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"│ {re.escape(option)}\b",
                                                                 line))
    end = next((i for i in range(start + 1, len(lines))
                if re.match(r"│ {1,6}-", lines[i]) or lines[i].startswith("╰")), len(lines))
    return lines[start:end]


def every_command(command=None, path=()) -> list[list[str]]:
    """Every command and group of the app, as argument lists, found by walking it: a
    command added later is checked without being listed here."""
    command = command or typer.main.get_command(app)
    found = [list(path)]
    for name in getattr(command, "list_commands", lambda ctx: [])(None):
        found += every_command(command.commands[name], (*path, name))
    return found


@pytest.mark.parametrize("cmd", every_command(), ids=ids)
def test_help_reads_well_at_80_columns(cmd):
    text = help_at_80(tuple(cmd))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text, "an option name cut short"
    for python_type in ("<list[", "<str>", "<bool>", "range>", "<Path>", "<int range"):
        assert python_type not in text, f"{python_type} is Python, not a value to type"
    for param in click_command(cmd).params:
        choices = getattr(getattr(param, "type_descriptor", None), "choices", None)
        if param.hidden or not choices or param.param_type_name != "option":
            continue
        cell = " ".join(option_cell(text, param.opts[0]))
        words = set(re.split(r"[\s│<>|]+", cell))
        assert {str(c) for c in choices} <= words, f"{param.opts[0]}: a choice split in two"
    # Each paragraph wraps where the terminal ends, not where the source's lines did.
    description = text.split("╭")[0].splitlines()
    for line, following in zip(description, description[1:]):
        if line.strip() and following.strip():
            assert len(line.rstrip()) + 1 + len(following.split()[0]) > 79, (line, following)


def test_predict_offers_only_what_it_serves():
    row = " ".join(option_cell(help_at_80(("predict",)), "--model"))
    assert ".keras" not in row and ".onnx" in row
    assert "<path>" in " ".join(option_cell(help_at_80(("predict",)), "--file"))


def test_values_show_as_words_a_user_types():
    from rnncli.cli.lazy import value_shown

    shown = {p.name: value_shown(p) for p in click_command(["train"]).params}
    assert shown["teachers"] == "<path>" and shown["limit"] == "<int>"
    assert shown["cell"] == "<simple|lstm|gru>"
    assert shown["preset"].startswith("<recipe | lstm | ")
    assert re.search(r"│ +texts\.\.\. +<text> ", help_at_80(("predict",)))
