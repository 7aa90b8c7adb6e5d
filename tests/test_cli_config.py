"""Config files: `train --print-config` writes TOML that `--config` reads back, every key is
documented, and a bad file is refused with its key named before anything is written."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rnncli.cli import app
from rnncli.config import file as config_file
from rnncli.config import run_files
from rnncli.config import settings as config
from rnncli.text import tokenizer as text

runner = CliRunner()
tomllib = config_file.toml_parser()
ROOT = Path(__file__).resolve().parents[1]
KEYS_TABLE_DOC = ROOT / "docs" / "config.md"  # the generated table of config keys


def train(*args):
    return runner.invoke(app, ["train", *args])


def printed(*args) -> str:
    res = train(*args, "--print-config")
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.mark.parametrize("preset", [None, "best"])
def test_printed_config_is_the_resolved_config(preset):
    out = printed(*(["--preset", preset] if preset else []))
    assert config.RunConfig.from_dict(tomllib.loads(out)) == config.resolve(preset)


@pytest.mark.parametrize("args", [[], ["--preset", "best"],
                                  ["--preset", "lstm", "--limit", "500", "--no-jit",
                                   "--learning-rate", "0.01", "--unroll"]])
def test_printed_config_reads_back_to_the_same_settings(tmp_path, args):
    first = printed(*args)
    (tmp_path / "run.toml").write_text(first)
    assert printed("--config", "run.toml") == first


def test_options_override_the_file_and_unset_keys_are_comments(tmp_path):
    (tmp_path / "run.toml").write_text('[model]\ncell = "gru"\nunits = 6\n[train]\nepochs = 1\n')
    out = printed("--config", "run.toml", "--units", "5")
    values = tomllib.loads(out)
    assert values["model"]["cell"] == "gru" and values["model"]["units"] == 5
    assert values["train"]["epochs"] == 1 and values["data"]["maxlen"] == 80
    assert "limit" not in values["data"] and "# limit = (unset)" in out


def test_print_config_needs_no_prepared_data(tmp_path):
    assert not (tmp_path / "home").exists()
    printed("--epochs", "2")
    assert not (tmp_path / "home").exists() and not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("toml, message", [
    ('[train]\nepochs = "3"\n', 'epochs = "3" in run.toml: expected an integer'),
    ("[data]\nmaxlen = 3.5\n", "maxlen = 3.5 in run.toml: expected an integer"),
    ("[model]\nbidirectional = 1\n", "bidirectional = 1 in run.toml: expected a boolean"),
    ('[train]\nlearning_rate = "fast"\n', "expected a number"),
    ("epoch = 3\n", "Unknown setting 'epoch' in run.toml (did you mean 'epochs'?)"),
    ("[model]\nepochs = 3\n", "epochs belongs in [train], not [model]"),
    ("[training]\nepochs = 3\n", "Unknown section [training]"),
    ("[train\n", "Invalid TOML in run.toml"),
])
def test_bad_config_names_the_key_and_leaves_no_run_folder(tmp_path, toml, message):
    (tmp_path / "run.toml").write_text(toml)
    res = train("--config", "run.toml", "--output", "run")
    assert res.exit_code == 2
    assert message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_unknown_key_points_to_the_documented_list(tmp_path):
    (tmp_path / "run.toml").write_text("colour = 3\n")
    res = train("--config", "run.toml")
    assert config.KEYS_DOC in res.stderr and "--print-config" in res.stderr
    # KEYS_DOC is 'DOCUMENT, section "HEADING"': DOCUMENT is README or a path such as
    # docs/config.md; the section must be there, at any heading level.
    document, heading = config.KEYS_DOC.split(",")[0], config.KEYS_DOC.split('"')[1]
    path = ROOT / ("README.md" if document == "README" else document)
    assert path.is_file(), f"the message names {document}, which does not exist"
    assert re.search(rf"^#+ {re.escape(heading)}$", path.read_text(), re.MULTILINE), (
        f"the message names section {heading!r} of {document}, which has none")


@pytest.mark.parametrize("kind", ["folder", "unreadable", "not-utf8", "json-list"])
def test_config_that_is_not_a_readable_file(tmp_path, kind):
    target = tmp_path / "cfg"
    if kind == "folder":
        target.mkdir()
    elif kind == "unreadable":
        target.write_text("epochs = 1\n")
        target.chmod(0)
        if os.access(target, os.R_OK):
            pytest.skip("running as a user who reads any file (root)")
    elif kind == "not-utf8":
        target.write_bytes(b"cell = \"\xff\"\n")
    else:
        target = tmp_path / "config.json"
        target.write_text("[]")
    res = train("--config", str(target))
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1 and str(target) in res.stderr


def test_a_run_config_json_is_read_too(tmp_path):
    run = config.resolve("gru", None, {"epochs": 2}).to_dict()
    (tmp_path / "config.json").write_text(json.dumps({**run, "dataset": {"checksum": "x"}}))
    assert tomllib.loads(printed("--config", "config.json")) == tomllib.loads(
        printed("--preset", "gru", "--epochs", "2"))


def test_docs_list_every_key_as_settings_define_it():
    assert config.keys_table() in KEYS_TABLE_DOC.read_text(), (
        "docs/config.md's key table is stale: paste the output of `python -m rnncli.config`")


def test_the_documented_command_prints_the_key_table():
    out = subprocess.run([sys.executable, "-m", "rnncli.config"], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    assert out == config.keys_table()
    assert "`python -m rnncli.config`" in KEYS_TABLE_DOC.read_text()


def test_choices_match_the_modules_that_use_them():
    assert config.PADDING_SIDES == text.PADDING_SIDES


def test_toml_values_round_trip_through_a_parser():
    for value in ("pre", 'a "quoted" \\ value\x7f\n', 0.001, 1e-05, 3, True, False, 1.0):
        assert tomllib.loads(f"x = {config_file.toml_value(value)}")["x"] == value


@pytest.mark.slow
def test_run_folder_config_toml_reproduces_the_run(prepared, tmp_path):
    args = ["--epochs", "1", "--limit", "40", "--units", "4", "--embedding-dim", "8",
            "--num-words", "30", "--maxlen", "20", "--cell", "gru"]
    res = train(*args, "--output", "run")
    assert res.exit_code == 0, res.output
    saved = tmp_path / "run" / run_files.CONFIG_TOML
    assert printed("--config", str(saved)) == printed(*args)
    as_json = json.loads((tmp_path / "run" / run_files.CONFIG).read_text())
    assert config.RunConfig.from_dict(tomllib.loads(saved.read_text())) == \
        config.RunConfig.from_dict(as_json)


def test_cosine_schedule_falls_from_the_rate_towards_zero():
    from rnncli.config.settings import epoch_learning_rate

    t = config.resolve(None, None, {"lr_schedule": "cosine", "epochs": 12,
                                    "learning_rate": 0.002}).train
    rates = [epoch_learning_rate(t, e) for e in range(12)]
    assert rates[0] == 0.002 and all(a > b > 0 for a, b in zip(rates, rates[1:]))
    assert rates[-1] < 0.05 * 0.002
    flat = config.resolve(None, None, {"epochs": 12}).train
    assert {epoch_learning_rate(flat, e) for e in range(12)} == {flat.learning_rate}
    from rnncli.errors import UsageError

    with pytest.raises(UsageError, match="--lr-schedule 'linear'"):
        config.resolve(None, None, {"lr_schedule": "linear"})


def numeric_settings():
    for key, s in config.settings().items():
        kinds = set(getattr(s.type, "__args__", (s.type,))) - {type(None)}
        if kinds & {int, float} and bool not in kinds:
            yield key, (float if float in kinds else int)


@pytest.mark.parametrize("key, kind", list(numeric_settings()))
@pytest.mark.parametrize("sign", [1, -1], ids=["huge", "hugely-negative"])
def test_every_numeric_setting_refuses_a_huge_value_in_one_line(tmp_path, key, kind, sign):
    """`--units 1000000000` ran until the kernel killed it; a huge --maxlen, --num-words or
    --seed was a traceback. Every numeric setting has bounds, checked before anything loads,
    and the refusal names the option (or the key no option sets)."""
    from conftest import one_line_error

    value = sign * (10**12 if kind is int else 1e300)
    option = "--" + key.replace("_", "-")
    if option in {o for p in typer_params() for o in p.opts}:
        res = train(option, str(value), "--output", "run")
        named = option
    else:  # a config key only (steps_per_execution)
        section = config.settings()[key].section
        (tmp_path / "run.toml").write_text(f"[{section}]\n{key} = {value!r}\n")
        res = train("--config", "run.toml", "--output", "run")
        named = key
    one_line_error(res, named, code=2)
    assert "Traceback" not in res.output and not (tmp_path / "run").exists()


def typer_params():
    import typer

    return typer.main.get_command(app).commands["train"].params


@pytest.mark.parametrize("key, value, message", [
    ("units", 4097, "--units 4097 is out of range: use 1 to 4,096."),
    ("layers", 17, "--layers 17 is out of range: use 1 to 16."),
    ("maxlen", 100_001, "--maxlen 100001 is out of range: use 1 to 100,000."),
    ("num_words", 10_000_001, "--num-words 10000001 is out of range: use 4 to 10,000,000."),
    ("seed", 2**32, "--seed 4294967296 is out of range: use 0 to 4,294,967,295."),
    ("seed", -1, "--seed -1 is out of range: use 0 to 4,294,967,295."),
    ("learning_rate", float("nan"), "--learning-rate nan must be positive."),
    ("clipnorm", float("inf"), "--clipnorm inf is out of range: use 0 to 1,000,000."),
])
def test_bounds_name_the_range(key, value, message):
    from rnncli.errors import UsageError

    with pytest.raises(UsageError) as refused:
        config.resolve(None, None, {key: value})
    assert str(refused.value) == message
    for edge in config.ranges().get(key, ()):  # both ends are accepted
        if key != "learning_rate" or edge > 0:
            config.resolve(None, None, {key: edge})


def test_every_numeric_setting_is_bounded_on_both_sides():
    """ranges() bounds what validate()'s own checks do not: together, every number."""
    shares = {"validation_split", "embedding_dropout", "dropout", "recurrent_dropout",
              "head_dropout", "crop_prob", "distill_weight", "ngram_teacher"}  # within [0, 1]
    assert {k for k, _ in numeric_settings()} == set(config.ranges()) | shares


def test_a_run_saved_before_the_head_weighting_keeps_its_tfidf_head():
    """A run folder's config.json from before --ngram-weighting fitted a TF-IDF head: its
    resume or export reads it as such; new runs take naive Bayes ratios."""
    saved = config.RunConfig().to_dict()
    assert saved["model"].pop("ngram_weighting") == "nb"
    assert config.RunConfig.from_dict(saved).model.ngram_weighting == "tfidf"
    saved["model"]["ngram_weighting"] = "nb"
    assert config.RunConfig.from_dict(saved).model.ngram_weighting == "nb"


def test_unknown_head_weighting_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["train", "--ngram-weighting", "bm25", "--print-config"])
    assert result.exit_code != 0 and "bm25" in result.output
