"""The installed command starts, every command documents itself, and start-up stays light."""

import subprocess
import sys

import pytest

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


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "rnncli", *args], capture_output=True,
                          text=True, timeout=120, **kw)


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "rnncli")
def test_help_runs_in_a_subprocess(cmd):
    res = run(*cmd, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage:" in res.stdout
    if cmd and cmd[-1] not in ("data", "export"):
        assert "Example:" in res.stdout


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
