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
from conftest import bundled_accuracy, invoke

from rnncli.serve import locate

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


# ---------------------------------------------------------------- texts written as data

def test_a_carriage_return_in_a_review_stays_inside_its_csv_row(tmp_path):
    """--file splits on \\n only, so a review may hold a bare \\r, which ends a row for
    csv readers unless the field is quoted."""
    (tmp_path / "r.txt").write_bytes(b"good\rfilm\nawful\r\r dull\nplain\n")
    got = rows(predict("--file", "r.txt", "--format", "csv"), "csv")
    assert [r["text"] for r in got] == ["good\rfilm", "awful\r\r dull", "plain"]
    assert [r["line"] for r in got] == ["1", "2", "3"]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_starts_with_a_quote(start):
    from rnncli.cli.predict import csv_cell

    text = f"{start}HYPERLINK(\"http://x\", \"click\")"
    cell = next(csv.reader(io.StringIO(csv_cell(text) + "\n")))
    assert cell == ["'" + text]
    assert csv_cell("a fine film, really") == '"a fine film, really"'
    assert csv_cell("plain") == "plain" and csv_cell("") == ""


def test_formulas_are_neutralised_in_csv_only(tmp_path):
    lines = ["=1+2", "+cmd|' /C calc'!A0", "-2+3 stars", "@SUM(A1)", "a = b"]
    (tmp_path / "r.txt").write_text("\n".join(lines) + "\n")
    got = rows(predict("--file", "r.txt", "--format", "csv"), "csv")
    assert [r["text"] for r in got] == ["'" + t for t in lines[:4]] + ["a = b"]
    assert [r["text"] for r in rows(predict("--file", "r.txt", "--format", "json"), "json")] \
        == lines, "JSON keeps the text as it is"


def test_a_label_from_the_model_is_neutralised_too(tmp_path):
    from test_inference import save_model

    path = save_model(tmp_path / "m.onnx", labels=["=neg", "@pos"])
    got = rows(predict("great film", "--model", path, "--format", "csv"), "csv")
    assert got[0]["label"] in ("'=neg", "'@pos")


def test_the_table_shows_no_escape_sequence_or_control_character():
    text = ("\x1b[31mred\x1b[0m \x1b]0;owned\x07title \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ "
            "\x9b2Jc1 bell\x07 tab\there bidi\u202eoverride zero\u200bwidth")
    res = predict(text)
    assert res.exit_code == 0, res.output
    shown = res.stdout.split(" known  ", 1)[1]
    assert shown.isprintable() or shown.rstrip("\n").isprintable(), repr(shown)
    assert shown.startswith("red title link c1 bell tab here bidioverride zerowidth"[:57])
    assert json.loads(predict(text, "--format", "jsonl").stdout)["text"] == text


def test_terminal_text_removes_sequences_whole():
    from rnncli.cli.predict import terminal_text

    assert terminal_text("plain text, é 映画") == "plain text, é 映画"
    assert terminal_text("\x1b[1;31mbold\x1b[m") == "bold"
    assert terminal_text("a\x1b]2;title\x1b\\b") == "ab"
    assert terminal_text("a\x1b(Bb\x1bcc") == "abc"
    assert terminal_text("line\r\nbreak\x00") == "line  break"
    assert terminal_text("\x1b") == ""


# ---------------------------------------------------------------- stdin and long lines

@pytest.mark.parametrize("args", [["-"], ["--file", "-"]])
def test_a_closed_stdin_is_one_line(args):
    res = subprocess.run([sys.executable, "-m", "rnncli", "predict", *args],
                         capture_output=True, text=True, timeout=120,
                         preexec_fn=lambda: os.close(0))
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == ["Error: stdin is closed: pipe reviews in (rnncli "
                                       "predict - < reviews.txt) or give them as arguments."]
    assert res.stdout == ""


class _Endless(io.RawIOBase):
    """Zeros without end, like /dev/zero, that fail the test past `limit` bytes read."""

    def __init__(self, limit: int):
        self.read_bytes, self.limit = 0, limit

    def readable(self):
        return True

    def readinto(self, buffer):
        self.read_bytes += len(buffer)
        assert self.read_bytes <= self.limit, "read far past the cap: the line is held whole"
        buffer[:] = bytes(len(buffer))
        return len(buffer)


def test_an_endless_line_is_refused_after_reading_a_bounded_amount(monkeypatch):
    import types

    from rnncli.cli.predict import MAX_LINE_BYTES, read_lines
    from rnncli.errors import UsageError

    stream = _Endless(limit=4 * MAX_LINE_BYTES)
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(
        buffer=io.BufferedReader(stream, 1 << 16)))
    with pytest.raises(UsageError) as err:
        list(read_lines("-"))
    assert str(err.value) == (f"Line 1 of stdin is longer than {MAX_LINE_BYTES:,} bytes, the "
                              "most one review may hold: put one review per line.")
    assert stream.read_bytes <= MAX_LINE_BYTES + (1 << 17)


def test_dev_zero_is_one_line_in_bounded_memory():
    """The real device, in a process whose address space is capped: a line read whole
    would end in MemoryError."""
    import resource

    def cap():
        limit = 3 << 30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    res = subprocess.run([sys.executable, "-m", "rnncli", "predict", "--file", "/dev/zero"],
                         capture_output=True, text=True, timeout=120, preexec_fn=cap)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Line 1 of /dev/zero is longer than 1,048,576 bytes" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stdout == ""


def test_a_review_of_the_longest_size_is_read_and_one_byte_more_is_not(tmp_path):
    from rnncli.cli.predict import MAX_LINE_BYTES

    longest = b"great " * (MAX_LINE_BYTES // 6) + b"x" * (MAX_LINE_BYTES % 6)
    assert len(longest) == MAX_LINE_BYTES
    (tmp_path / "ok.txt").write_bytes(b"dull\n" + longest + b"\nawful\n")
    got = rows(predict("--file", "ok.txt", "--format", "jsonl"), "jsonl")
    assert [r["line"] for r in got] == [1, 2, 3] and got[1]["label"] == "positive"
    (tmp_path / "over.txt").write_bytes(b"dull\n" + longest + b"x\nawful\n")
    res = predict("--file", "over.txt", "--format", "jsonl")
    assert res.exit_code == 2 and "Line 2 of over.txt is longer than" in res.stderr
    (tmp_path / "last.txt").write_bytes(longest)  # no newline at the end
    assert rows(predict("--file", "last.txt", "--format", "jsonl"), "jsonl")[0]["line"] == 1


def test_the_line_cap_is_the_data_sides_review_cap():
    from rnncli.cli.predict import MAX_LINE_BYTES
    from rnncli.data.archive import MAX_REVIEW_BYTES

    assert MAX_LINE_BYTES == MAX_REVIEW_BYTES


# ---------------------------------------------------------------- which model answered

def test_without_model_stderr_names_the_model_that_answered(tmp_path):
    from test_inference import save_model

    res = predict("great film", "--format", "jsonl")
    assert res.stderr.splitlines() == [
        f"No model in artifacts/: using the bundled model {locate.BUNDLED} (test accuracy "
        f"{bundled_accuracy()})."]
    (tmp_path / "artifacts").mkdir()
    save_model(tmp_path / "artifacts" / "model.onnx", meta={"rnncli.test_accuracy": "0.778200"})
    res = predict("great film", "--format", "jsonl")
    assert res.exit_code == 0, res.output
    onnx_path = os.path.join("artifacts", "model.onnx")
    assert res.stderr.splitlines() == [
        f"Using {onnx_path} (test accuracy 0.7782), found in artifacts/, not the bundled "
        "model: pass --model to choose."]
    assert [json.loads(line)["line"] for line in res.stdout.splitlines()] == [1], \
        "stdout holds the results only"
    given = predict("great film", "--model", "artifacts", "--format", "jsonl")
    assert given.exit_code == 0 and given.stderr == "", "a model given is not announced"


@pytest.mark.parametrize("value", [None, "NaN", "\x1b[2J", "7"])
def test_a_missing_or_odd_recorded_accuracy_is_not_shown(tmp_path, value):
    from test_inference import save_model

    (tmp_path / "artifacts").mkdir()
    save_model(tmp_path / "artifacts" / "model.onnx",
               meta={"rnncli.test_accuracy": value} if value else None)
    res = predict("great film")
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == [
        f"Using {os.path.join('artifacts', 'model.onnx')} (no test accuracy recorded), found "
        "in artifacts/, not the bundled model: pass --model to choose."]


def test_right_after_train_predict_answers_with_the_bundled_model_and_says_why(tmp_path):
    """`rnncli train` then `rnncli predict`: artifacts/ holds only a Keras model, which
    predict cannot serve; the bundled model answers and stderr says how to serve the new one."""
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "model.keras").write_bytes(b"a Keras model")
    res = invoke("predict", "a wonderful, moving film", "--format", "jsonl")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["label"] == "positive"
    assert "artifacts/model.keras is not exported yet" in res.stderr
    assert "rnncli export onnx" in res.stderr and "bundled model" in res.stderr
    # Asked for by name, the Keras model is still refused with the next step.
    res = invoke("predict", "great film", "--model", "artifacts")
    assert res.exit_code != 0 and "rnncli export onnx" in res.stderr


def test_plain_predict_loads_no_table_or_spark_modules():
    """Tables and Spark are imported only when used: a review as an argument, or a .txt
    file, loads neither pyarrow, pandas nor pyspark."""
    from test_cli_startup import loaded, top

    mods, out = loaded(["predict", "great film", "--format", "jsonl"])
    assert '"label"' in out
    assert not top(mods) & {"pyarrow", "pandas", "pyspark", "py4j"}
    assert not mods & {"rnncli.serve.tables", "rnncli.serve.spark"}


def test_verbose_explains_how_the_model_runs_on_stderr_only():
    plain = invoke("predict", "great film", "--format", "json")
    res = invoke("predict", "great film", "--format", "json", "--verbose")
    assert res.exit_code == 0 and res.stdout == plain.stdout
    said = res.stderr
    assert f"model: {locate.BUNDLED} (the bundled model)" in said
    assert "graph: native" in said or "graph: hybrid" in said
    assert "reviews per call" in said
