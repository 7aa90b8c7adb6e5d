"""Start-up stays light: `predict` and a TAB completion import only what they use.

The whole-process timings are in benchmarks/bench_startup.py; these tests check the causes
(modules loaded), which do not depend on how busy the machine is.
"""


import pytest
from conftest import modules_loaded

from rnncli.cli import lazy


def loaded(argv: list[str], env: dict[str, str] | None = None) -> tuple[set[str], str]:
    mods, out, _ = modules_loaded(argv, env)
    return mods, out


def top(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_predict_loads_its_command_only(tmp_path):
    mods, out = loaded(["predict", "great film", "--format", "jsonl"])
    assert '"label"' in out, "the probe must run the command"
    assert "onnxruntime" in top(mods)
    assert not top(mods) & {"pydantic", "pydantic_core", "tensorflow", "keras", "onnx"}
    # One review is one window: no worker process or thread to set up (~7 ms of imports).
    assert not top(mods) & {"multiprocessing", "concurrent"}
    assert not mods & {"rnncli.cli.train", "rnncli.cli.data", "rnncli.cli.export",
                       "rnncli.cli.evaluate", "rnncli.dataset", "rich.console"}


@pytest.mark.parametrize("words", ["rnncli predict --format ", "rnncli train --cell ",
                                   "rnncli export onnx --graph ", "rnncli "])
def test_tab_completion_imports_no_numpy_model_or_pydantic(words):
    env = {"_RNNCLI_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()))}
    mods, out = loaded([], env)
    assert out.split(), "the completion answered"
    assert not top(mods) & {"numpy", "onnxruntime", "pydantic", "tensorflow"}


def test_every_option_gets_a_plain_converter():
    """An option type lazy.py cannot convert would bring pydantic back at start-up."""
    import typer

    from rnncli.cli import app

    root = typer.main.get_command(app)
    assert lazy.plain_values(root) == []
    for name in root.list_commands(None):
        command = root.commands[name]
        subs = getattr(command, "commands", {name: command})
        for sub in subs.values():
            assert lazy.plain_values(sub) == [], f"rnncli {name} {sub.name}"


def test_root_help_lists_every_command_with_its_first_line():
    import typer
    from typer.testing import CliRunner

    from rnncli.cli import app

    res = CliRunner().invoke(app, ["--help"])
    shown = " ".join(res.stdout.replace("│", " ").split())
    root = typer.main.get_command(app)
    for name in lazy.COMMANDS:
        first = " ".join(root.commands[name].help.strip().splitlines()[0].split())
        assert f"{name} {first}" in shown
