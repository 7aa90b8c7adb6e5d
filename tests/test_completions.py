"""completions/ holds what the app generates now: regenerate with `python tools/completions.py`."""

from pathlib import Path

import pytest

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
    ("rnncli train --pooling ", {"last", "max", "mean", "masked-max"}),
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
