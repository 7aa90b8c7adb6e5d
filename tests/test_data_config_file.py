"""A config file nested too deeply for the parsers (both recurse once per level) ends in one
line naming the file, never a RecursionError traceback."""

import pytest
from conftest import invoke, one_line_error

DEPTH = 10_000


@pytest.mark.parametrize("name, text", [
    ("arrays.toml", "x = " + "[" * DEPTH + "]" * DEPTH + "\n"),
    ("tables.toml", "x = " + "{a = " * DEPTH + "1" + "}" * DEPTH + "\n"),
    ("config.json", '{"model": ' + "[" * DEPTH + "]" * DEPTH + "}\n"),
], ids=["toml-arrays", "toml-tables", "json"])
def test_a_config_nested_too_deeply_is_one_line(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    kind = "JSON" if name.endswith(".json") else "TOML"
    one_line_error(invoke("train", "--config", path, "--print-config"),
                   f"Invalid {kind} in {path} (nested too deeply): fix the file", code=2)
