"""`rnncli predict` input handling: stdin, line alignment, one source of reviews.

These use the bundled model (no training), so they run in seconds.
"""

import csv
import io
import json
import os
import pty
import subprocess
import sys

import pytest
from conftest import invoke

LINES = "great wonderful film\n\n   \nawful boring waste\n"  # lines 2 and 3 are blank


def predict(*args, input=None):
    return invoke("predict", *args, input=input)


def rows(res, fmt):
    assert res.exit_code == 0, res.output
    if fmt == "json":
        return json.loads(res.stdout)
    if fmt == "jsonl":
        return [json.loads(line) for line in res.stdout.splitlines()]
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(res.stdout)))
    return [line.split()[:3] for line in res.stdout.splitlines()]


@pytest.mark.parametrize("how", ["dash", "piped", "file-dash"])
def test_stdin_is_read(how):
    args = {"dash": ["-"], "piped": [], "file-dash": ["--file", "-"]}[how]
    res = predict(*args, "--format", "jsonl", input="a wonderful, moving film\nawful, dull\n")
    got = rows(res, "jsonl")
    assert [r["text"] for r in got] == ["a wonderful, moving film", "awful, dull"]
    assert [r["label"] for r in got] == ["positive", "negative"]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_every_line_gives_one_row_numbered_by_line(tmp_path, fmt):
    (tmp_path / "r.txt").write_text(LINES)
    got = rows(predict("--file", "r.txt", "--format", fmt), fmt)
    assert [int(r["line"]) for r in got] == [1, 2, 3, 4]
    assert got[0]["label"] == "positive" and got[3]["label"] == "negative"
    for blank in got[1:3]:
        assert blank["text"] == ""
        if fmt == "csv":
            assert blank["label"] == "" and blank["probability"] == ""
        else:
            assert blank["label"] is None and blank["probability"] is None
        assert int(blank["known_words"]) == 0


def test_table_rows_are_numbered_and_blank_lines_kept():
    got = rows(predict("-", input=LINES), "table")
    assert [r[0] for r in got] == ["1", "2", "3", "4"]
    assert got[1][1:] == ["-", "-"] and got[0][1] == "positive"


def test_blank_lines_around_batches_stay_in_place(tmp_path):
    lines = ["", "great film", "", "", "awful film", "dull", "", "superb", ""]
    (tmp_path / "r.txt").write_text("\n".join(lines) + "\n")
    got = rows(predict("--file", "r.txt", "--format", "jsonl", "--batch-size", "2"), "jsonl")
    assert [r["line"] for r in got] == list(range(1, len(lines) + 1))
    assert [r["text"] for r in got] == lines
    assert [r["label"] is None for r in got] == [not t for t in lines]


def test_arguments_are_numbered_by_position():
    got = rows(predict("great film", "awful film", "--format", "json"), "json")
    assert [(r["line"], r["text"]) for r in got] == [(1, "great film"), (2, "awful film")]


@pytest.mark.parametrize("args, message", [
    (["great film", "--file", "r.txt"], "not both"),
    (["great film", "-"], "must be the only argument"),
    (["   "], "Review 1 is empty"),
    (["ok", "--format", "xml"], "'xml' is not one of 'table', 'json', 'jsonl', 'csv'"),
    (["ok", "--threshold", "2"], "not between 0 and 1"),
    (["ok", "--batch-size", "0"], "use 1 or more"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    (tmp_path / "r.txt").write_text("fine\n")
    res = predict(*args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_no_review_at_a_terminal_says_what_to_give():
    """Only a terminal on stdin means "nothing given"; a pipe is read."""
    main_fd, tty_fd = pty.openpty()
    try:
        res = subprocess.run([sys.executable, "-m", "rnncli", "predict"], stdin=tty_fd,
                             capture_output=True, text=True, timeout=120)
    finally:
        os.close(main_fd)
        os.close(tty_fd)
    assert res.returncode == 2
    assert "Nothing to predict" in res.stderr and "pipe" in res.stderr


def test_a_jsonl_row_is_the_strict_json_of_its_fields():
    import math

    from rnncli.cli.common import json_text
    from rnncli.cli.predict import Row

    texts = ["plain", 'a "quoted" \\ back', "tab\there", "del\x7fhere", "nul\x00", "é \u2028 映画",
             "\U0001F600", "", "</script>", "\x1b[31mred"]
    probs = [0.5, 1 / 3, 0.0, 1.0, 1e-9, 0.9999999, None, math.nan, math.inf]
    for i, (t, p) in enumerate(zip(texts * 2, probs * 3)):
        for label in ("positive", None, 'ne"g'):
            row = Row(i, t, label, p, i * 7)
            assert row.jsonl() == json_text(row.as_dict()), row
            json.loads(row.jsonl(), parse_constant=lambda c: pytest.fail(c))
