"""completions/ holds what the app generates now: regenerate with `python tools/completions.py`."""

from pathlib import Path

import pytest

from rnncli.config.settings import POOLINGS
from tools.completions import SHELLS, completion_script

FOLDER = Path(__file__).resolve().parents[1] / "completions"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_completion_script_is_current(shell):
    committed = (FOLDER / SHELLS[shell]).read_text()
    assert committed == completion_script(shell), (
        f"completions/{SHELLS[shell]} is stale: run `python tools/completions.py completions`")
    assert "_RNNCLI_COMPLETE" in committed


def test_completion_answers_for_commands(monkeypatch, capsys):
    """The scripts call back into the app; check that the app answers with its commands."""
    from rnncli.cli import app

    monkeypatch.setenv("_RNNCLI_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "rnncli ")
    monkeypatch.setenv("COMP_CWORD", "1")
    with pytest.raises(SystemExit):
        app(prog_name="rnncli")
    words = capsys.readouterr().out.split()
    assert {"data", "train", "evaluate", "export", "predict"} <= set(words)


@pytest.mark.parametrize("words, expected", [
    ("rnncli predict --format ", {"table", "json", "jsonl", "csv"}),
    ("rnncli train --cell ", {"simple", "lstm", "gru"}),
    ("rnncli train --preset ", {"recipe", "lstm", "gru", "best", "teacher", "student"}),
    ("rnncli train --pooling ", set(POOLINGS)),  # the registry, whatever it holds
    ("rnncli export onnx --graph ", {"auto", "hybrid", "unrolled", "native", "native-folded",
                                     "tf2onnx"}),
    ("rnncli evaluate --split ", {"train", "test"}),
    ("rnncli data lengths --padding ", {"pre", "post"}),
])
def test_option_values_complete(monkeypatch, capsys, words, expected):
    from rnncli.cli import app

    monkeypatch.setenv("_RNNCLI_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(len(words.split())))
    with pytest.raises(SystemExit):
        app(prog_name="rnncli")
    assert set(capsys.readouterr().out.split()) == expected


def test_choice_lists_match_the_library():
    from typing import get_args

    from rnncli.cli import common, data, export
    from rnncli.data import archive
    from rnncli.data import store as dataset
    from rnncli.export import onnx as onnx_export

    assert get_args(export.Graph) == onnx_export.GRAPHS
    assert get_args(common.SplitName) == archive.SPLITS
    assert get_args(data.Source) == dataset.SOURCES


@pytest.mark.parametrize("shell", sorted(SHELLS))
@pytest.mark.parametrize("form", ["separate", "equals"])
def test_show_completion_prints_the_script_of_the_shell_named(shell, form):
    """Typer's flag detects the shell from the parent process and ignored the one named:
    `--show-completion zsh` printed bash's script from a bash session."""
    from conftest import invoke

    args = ["--show-completion", shell] if form == "separate" else [f"--show-completion={shell}"]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert res.stdout == completion_script(shell)


def test_an_unknown_shell_is_one_line():
    from conftest import invoke, one_line_error

    one_line_error(invoke("--show-completion", "tcsh"),
                   "'tcsh' is not a shell rnncli completes: use bash, zsh, fish or powershell.",
                   code=2)


def test_a_command_after_the_option_is_not_taken_for_a_shell():
    """`rnncli --show-completion predict` keeps Typer's meaning: the current shell's script."""
    from rnncli.cli.lazy import _completion_request

    assert _completion_request(["--show-completion", "predict"], {"predict": None}) is None
    assert _completion_request(["predict", "--show-completion", "zsh"], {"predict": None}) \
        is None
    assert _completion_request(["--install-completion", "fish"], {}) == (
        "--install-completion", "fish")


@pytest.mark.parametrize("shell, env", [
    ("zsh", {"_TYPER_COMPLETE_ARGS": "rnncli predict --format "}),
    ("fish", {"_TYPER_COMPLETE_ARGS": "rnncli predict --format ",
              "_TYPER_COMPLETE_FISH_ACTION": "get-args"}),
])
def test_zsh_and_fish_scripts_get_answers_from_the_app(monkeypatch, capsys, shell, env):
    from rnncli.cli import app

    monkeypatch.setenv("_RNNCLI_COMPLETE", f"complete_{shell}")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit):
        app(prog_name="rnncli")
    out = capsys.readouterr().out
    assert all(f in out for f in ("table", "jsonl", "csv")), out
