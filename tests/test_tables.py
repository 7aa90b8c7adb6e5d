"""`rnncli predict` on tables: csv, tsv, jsonl and Parquet in, jsonl, csv and Parquet out.

Every format round-trips its ids and scores the texts as the .txt path does (bundled model);
a missing column, a column of numbers, an empty file and null texts are one line or nulls.
"""

import csv
import io
import json
import sys

import pytest
from conftest import invoke, one_line_error

TEXTS = ["a wonderful, moving film", None, "   ", "awful, boring, a waste of time",
         'a "quoted", comma\ttab film =1+1']
IDS = [10, 11, 12, 13, 14]


def predict(*args, input=None):
    return invoke("predict", *args, input=input)


def txt_scores(texts) -> list[dict]:
    """What the .txt path gives for the same texts (None written as a blank line)."""
    lines = "\n".join((t or "").replace("\t", " ") if t else "" for t in texts) + "\n"
    res = predict("--file", "-", "--format", "jsonl", input=lines)
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines()]


def write_input(path, ids=IDS, texts=TEXTS, text_key="text"):
    suffix = path.suffix
    if suffix == ".parquet":
        pq = pytest.importorskip("pyarrow.parquet")
        pa = pytest.importorskip("pyarrow")
        pq.write_table(pa.table({"id": ids, text_key: texts}), path)
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps({"id": i, text_key: t}) + "\n"
                                for i, t in zip(ids, texts)))
    else:
        buf = io.StringIO()
        w = csv.writer(buf, delimiter="\t" if suffix == ".tsv" else ",", lineterminator="\n")
        w.writerow(["id", text_key])
        w.writerows([i, "" if t is None else t] for i, t in zip(ids, texts))
        path.write_text(buf.getvalue())
    return path


def read_output(path) -> list[dict]:
    if path.suffix == ".parquet":
        pq = pytest.importorskip("pyarrow.parquet")
        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _tab_free(t):
    return t.replace("\t", " ") if t else t


@pytest.mark.parametrize("out_suffix", [".jsonl", ".csv", ".parquet"])
@pytest.mark.parametrize("in_suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_every_format_round_trips_ids_and_scores(tmp_path, in_suffix, out_suffix):
    if ".parquet" in (in_suffix, out_suffix):
        pytest.importorskip("pyarrow")
    src = write_input(tmp_path / f"in{in_suffix}")
    out = tmp_path / f"out{out_suffix}"
    res = predict("--file", src, "--output", out)
    assert res.exit_code == 0, res.output
    assert "Wrote 5 rows" in res.stderr and res.stdout == ""
    got = read_output(out)
    assert list(got[0]) == ["id", "text", "label", "probability", "known_words"]
    assert [int(r["id"]) for r in got] == IDS  # ids kept, in input order
    want = txt_scores(TEXTS)
    for g, w in zip(got, want):
        p = g["probability"]
        if w["label"] is None:
            assert g["label"] in (None, "") and p in (None, "")
            continue
        assert g["label"] == w["label"]
        assert abs(float(p) - w["probability"]) <= 1e-6
        assert int(g["known_words"]) == w["known_words"]
    assert not list(tmp_path.glob(".out*"))  # no temporary left


def test_csv_output_keeps_formula_cells_inert(tmp_path):
    src = write_input(tmp_path / "in.jsonl", texts=["=HYPERLINK(1)", "fine film"], ids=[1, 2])
    res = predict("--file", src, "--output", tmp_path / "out.csv")
    assert res.exit_code == 0, res.output
    assert read_output(tmp_path / "out.csv")[0]["text"] == "'=HYPERLINK(1)"


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "table"])
def test_a_table_prints_to_stdout_by_default(tmp_path, fmt):
    src = write_input(tmp_path / "in.csv")
    res = predict("--file", src, "--format", fmt)
    assert res.exit_code == 0, res.output
    if fmt == "jsonl":
        got = [json.loads(line) for line in res.stdout.splitlines()]
    elif fmt == "json":
        got = json.loads(res.stdout)
    elif fmt == "csv":
        got = list(csv.DictReader(io.StringIO(res.stdout)))
    else:
        lines = res.stdout.splitlines()
        assert len(lines) == 5 and lines[0].split()[1] == "positive"
        assert lines[1].split()[1] == "-"
        return
    assert [str(r["id"]) for r in got] == [str(i) for i in IDS]
    assert got[0]["label"] == "positive" and got[3]["label"] == "negative"
    assert got[1]["label"] in (None, "") and got[2]["label"] in (None, "")


def test_text_columns_are_joined_by_a_space_in_order(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"id": 1, "title": "awful", "body": "boring waste"}) + "\n"
                    + json.dumps({"id": 2, "title": None, "body": "wonderful film"}) + "\n")
    res = predict("--file", path, "--text-column", "title", "--text-column", "body",
                  "--format", "jsonl")
    got = [json.loads(line) for line in res.stdout.splitlines()]
    want = txt_scores(["awful boring waste", "wonderful film"])
    assert [g["probability"] for g in got] == [w["probability"] for w in want]
    assert [g["title"] for g in got] == ["awful", None]


def test_txt_input_writes_to_output_by_suffix(tmp_path):
    (tmp_path / "r.txt").write_text("great wonderful film\n\nawful boring waste\n")
    res = predict("--file", "r.txt", "--output", "o.jsonl")
    assert res.exit_code == 0, res.output
    got = read_output(tmp_path / "o.jsonl")
    assert [r["line"] for r in got] == [1, 2, 3] and got[1]["label"] is None


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_missing_column_suggests_the_close_one(tmp_path, suffix):
    src = write_input(tmp_path / f"in{suffix}", text_key="review")
    res = predict("--file", src, "--text-column", "reviews")
    one_line_error(res, "has no column 'reviews' (did you mean 'review'?)", code=2)
    assert "id, review" in res.stderr
    # The default text column is `text`.
    one_line_error(predict("--file", src), "has no column 'text'", code=2)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_column_of_numbers_is_not_the_text(tmp_path, suffix):
    src = write_input(tmp_path / f"in{suffix}")
    one_line_error(predict("--file", src, "--text-column", "id"), "holds numbers", code=2)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_an_empty_table_is_one_line(tmp_path, suffix):
    src = write_input(tmp_path / f"in{suffix}", ids=[], texts=[])
    one_line_error(predict("--file", src), "holds no rows", code=2)


def test_result_columns_in_the_input_are_refused(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("id,text,label\n1,great,pos\n")
    one_line_error(predict("--file", path), "already has a column 'label'", code=2)


def test_bad_options_are_one_line(tmp_path):
    (tmp_path / "r.txt").write_text("great film\n")
    one_line_error(predict("--file", "r.txt", "--text-column", "x"), "--text-column", code=2)
    one_line_error(predict("great film", "--output", "o.xlsx"), ".jsonl, .csv, .parquet",
                   code=2)
    one_line_error(predict("--file", "missing.csv"), "no such file", code=2)
    one_line_error(predict("great", "--engine", "spark", "--output", "o"), "--file", code=2)


def test_without_pyarrow_parquet_names_the_extra(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    (tmp_path / "in.parquet").write_bytes(b"PAR1")
    res = predict("--file", "in.parquet")
    one_line_error(res, 'pip install "rnncli[spark]"')
    res = predict("great film", "--output", "o.parquet")
    one_line_error(res, 'pip install "rnncli[spark]"')


def test_parquet_is_read_in_batches(tmp_path, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from rnncli.serve import tables
    from rnncli.text import tables as reading

    monkeypatch.setattr(reading, "BATCH_ROWS", 3)
    n = 10
    pq.write_table(pa.table({"id": list(range(n)), "text": ["great film"] * n}),
                   tmp_path / "in.parquet", row_group_size=4)
    table = tables.open_table(tmp_path / "in.parquet")
    assert [len(b["id"]) for b in table.batches()] == [3, 3, 3, 1]
    assert predict("--file", "in.parquet", "--output", "o.parquet").exit_code == 0
    assert [r["id"] for r in read_output(tmp_path / "o.parquet")] == list(range(n))


def test_plain_jsonl_rows_are_json_dumps_bytes():
    """predict's own rows take a faster path that must write json.dumps' exact line, and
    give way to it for any row it does not know."""
    import io
    import json

    from rnncli.serve.tables import PLAIN_COLUMNS, JsonlWriter, _json_row, _plain_lines

    batch = {"line": [1, 2, 3, 4], "known_words": [3, 0, 1, 2],
             "text": ['a "q" \\ é 😀 \u2028 \t</script>', "", "x", "\x00\x1f"],
             "label": ["positive", None, "negative", "pos\"itive"],
             "probability": [0.123456789, None, 1e-9, 1.0]}
    want = "".join(json.dumps(_json_row(PLAIN_COLUMNS, row), ensure_ascii=False,
                              allow_nan=False) + "\n"
                   for row in zip(*(batch[c] for c in PLAIN_COLUMNS)))
    out = io.StringIO()
    JsonlWriter(out, PLAIN_COLUMNS).write(batch)
    assert out.getvalue() == want and _plain_lines(batch) is not None
    for column, odd in (("probability", float("nan")), ("known_words", 2.0), ("line", None)):
        assert _plain_lines({**batch, column: [odd, *batch[column][1:]]}) is None
