"""What a newcomer reads: the README's commands paste and parse, the quick start works on a
fresh machine, and the package metadata carries its licence."""

import re
import shlex
from pathlib import Path

import pytest
import typer

from rnncli.cli import app
from rnncli.config import file as config_file
from rnncli.config import run_files

tomllib = config_file.toml_parser()
ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    """Every `rnncli ...` command in the README's bash blocks, one per pipeline stage."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            for part in re.split(r"&&|\||\s[<>]\s", line):
                part = part.strip()
                if part.startswith("rnncli "):
                    found.append(part)
    return found


def parse(words: list[str]) -> None:
    """Parse a command line as the CLI would, down to the leaf command, without running it."""
    command = typer.main.get_command(app)
    ctx = command.make_context("rnncli", words, resilient_parsing=False)
    while hasattr(command, "commands"):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)


@pytest.mark.parametrize("line", readme_commands())
def test_readme_commands_parse(line):
    words = shlex.split(line)[1:]
    if "--help" in words or "--install-completion" in words or "--show-completion" in words:
        return  # eager options print and exit
    parse(words)


def test_readme_commands_are_found():
    assert len(readme_commands()) >= 25
    assert not any("[" in c.split("#")[0] for c in readme_commands()), "no [optional] syntax"


def test_quick_start_is_for_a_fresh_machine():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in quick.splitlines() if line and not line.startswith(("#", "`"))]
    steps = re.findall(r"^(python3 -m venv|pip install|rnncli [\w-]+(?: [\w-]+)?)", quick,
                       re.MULTILINE)
    assert steps[:6] == ["python3 -m venv", "pip install", "rnncli --install-completion",
                         "rnncli data fetch", "rnncli train", "rnncli predict"], steps
    assert "`pip install rnncli` fails" in quick
    assert "rnncli data fetch --from" in quick, "the offline route"
    assert commands


def test_install_section_gives_sizes_and_the_unpublished_package():
    install = README.split("## Installing", 1)[1].split("\n## ", 1)[0]
    assert "virtual environment first" in install
    assert "680 MB" in install and "GB" in install and "install_size.py" in install
    assert "pip install rnncli` fails" in install


def test_completion_leads_with_install_completion():
    section = README.split("### Shell completion", 1)[1].split("\n## ", 1)[0]
    assert section.index("rnncli --install-completion") < section.index("completions/")
    assert "cp completions/" not in README


def test_run_folder_files_are_documented():
    for name in (run_files.CONFIG_TOML, run_files.LAST_RUN, run_files.CONFIG,
                 run_files.PREPROCESSING):
        assert f"`{name}`" in README, name


def test_pyproject_declares_an_spdx_licence_with_its_file():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "the rnncli authors" in licence
    assert any(r.startswith("setuptools>=77") for r in meta["build-system"]["requires"])
