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
                if shared in getattr(param, "opts", ()) and (shared, cmd) != (
                        "--model", ["export", "onnx"]):  # export reads Keras only
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
