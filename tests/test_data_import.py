"""`rnncli data import`: a labelled table or folder of one's own becomes a dataset of 2 or more
labels, stored as IMDB's prepared data is; bad rows are one line naming file, row and column."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, one_line_error, write_archive

from rnncli.data import store as dataset
from rnncli.text import tokenizer as text

WORDS = {"billing": ["invoice", "refund", "charge"], "bugs": ["crash", "error", "freeze"],
         "access": ["login", "password", "locked"]}


def rows(per_label: int = 5, labels=("billing", "bugs", "access")) -> list[dict]:
    """Rows whose body holds words of their label, labels interleaved."""
    out = []
    for i in range(per_label):
        for label in labels:
            words = WORDS.get(label, ["plain"])
            out.append({"title": f"t{i}", "body": f"{words[i % len(words)]} please help {i}",
                        "label": label})
    return out


def write_csv(path: Path, records: list[dict], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(records)
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_folder(root: Path, records: list[dict]) -> Path:
    for i, r in enumerate(records):
        (root / r["label"]).mkdir(parents=True, exist_ok=True)
        (root / r["label"] / f"{i:03d}.txt").write_text(r["body"], encoding="utf-8")
    return root


def imported(*args) -> dict:
    """`data import ARGS --json`, asserted to succeed: its result."""
    res = invoke("data", "import", *args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def stored_texts(home: Path, name: str) -> dict[str, list[tuple[str, str, int]]]:
    """(text, label name, id) of each stored row, per split."""
    meta = dataset.read_meta(home, name)
    labels = dataset.labels_of(meta)
    out = {}
    for split in ("train", "test"):
        s = dataset.load_split(home, split, name)
        out[split] = [(t, labels[int(y)], int(i)) for t, y, i in zip(s.texts(), s.labels, s.ids)]
    return out


# ---------------------------------------------------------------- formats


def test_csv_with_two_text_columns_round_trips(tmp_path, _isolated):
    records = rows()
    path = write_csv(tmp_path / "tickets.csv", records)
    res = invoke("data", "import", path, "--name", "tickets", "--text-column", "title",
                 "--text-column", "body")
    assert res.exit_code == 0, res.output
    assert "tickets: train 12 rows, test 3 rows, 3 labels" in res.stdout
    assert "next: rnncli train --dataset tickets --output run" in res.stdout
    assert str(_isolated / "datasets" / "tickets") in res.stdout
    meta = dataset.read_meta(_isolated, "tickets")
    assert meta["labels"] == ["access", "billing", "bugs"]  # sorted: index = sorted order
    assert dataset.current_source(_isolated) is None  # an import is never the default
    stored = stored_texts(_isolated, "tickets")
    want = {(f"{r['title']} {r['body']}", r["label"], n) for n, r in enumerate(records, 1)}
    assert set(stored["train"]) | set(stored["test"]) == want  # ids are the file's rows
    assert not set(stored["train"]) & set(stored["test"])
    # The ids are the shared tokenizer's over a vocabulary of the train part only.
    vocab = dataset.load_vocabulary(_isolated, "tickets")
    train = dataset.load_split(_isolated, "train", "tickets")
    assert train.review(0).tolist() == vocab.encode(text.tokenize(train.text(0)))
    train_words = {w for t, _, _ in stored["train"] for w in text.tokenize(t)}
    assert set(vocab.words) == train_words


@pytest.mark.parametrize("kind", ["tsv", "jsonl", "parquet"])
def test_other_table_formats_round_trip(kind, tmp_path, _isolated):
    records = rows()
    path = tmp_path / f"tickets.{kind}"
    if kind == "tsv":
        write_csv(path, records, "\t")
    elif kind == "jsonl":
        write_jsonl(path, records)
    else:
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), path)
    out = imported(path, "--name", "t", "--text-column", "body")
    assert out["labels"] == ["access", "billing", "bugs"]
    stored = stored_texts(_isolated, "t")
    assert {x[:2] for x in stored["train"] + stored["test"]} == {
        (r["body"], r["label"]) for r in records}


def test_parquet_integer_labels(tmp_path, _isolated):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    records = [{"text": f"word{i % 3} row {i}", "label": [10, 2, 1][i % 3]} for i in range(9)]
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "n.parquet")
    out = imported(tmp_path / "n.parquet", "--name", "n")
    assert out["labels"] == ["1", "2", "10"]


def test_folder_of_label_folders(tmp_path, _isolated):
    records = rows(4)
    folder = write_folder(tmp_path / "corpus", records)
    (folder / "README").write_text("not a text")  # files beside the label folders are ignored
    out = imported(folder, "--name", "f", "--test-share", "0.25")
    assert out["labels"] == ["access", "billing", "bugs"]
    assert {s: v["classes"] for s, v in out["splits"].items()} == {
        "train": {"access": 3, "billing": 3, "bugs": 3},
        "test": {"access": 1, "billing": 1, "bugs": 1}}
    stored = stored_texts(_isolated, "f")
    assert {x[:2] for x in stored["train"] + stored["test"]} == {
        (r["body"], r["label"]) for r in records}


def test_folder_with_train_and_test_gives_the_test_part(tmp_path, _isolated):
    write_folder(tmp_path / "c" / "train", rows(4, ("neg", "pos")))
    write_folder(tmp_path / "c" / "test", rows(2, ("neg", "pos")))
    out = imported(tmp_path / "c", "--name", "c")
    assert out["splits"]["train"]["rows"] == 8 and out["splits"]["test"]["rows"] == 4
    one_line_error(invoke("data", "import", tmp_path / "c", "--name", "d", "--test-share", "0.3"),
                   "holds its own test/ folder, which is the test part: drop --test-share",
                   code=2)


# ---------------------------------------------------------------- splits and labels


def test_test_file_is_the_test_part(tmp_path, _isolated):
    train = write_csv(tmp_path / "train.csv", rows(4))
    test = write_csv(tmp_path / "test.csv", rows(2, ("bugs", "billing")))
    out = imported(train, "--name", "t", "--text-column", "body", "--test", test)
    assert out["splits"]["train"]["rows"] == 12 and out["splits"]["test"]["rows"] == 4
    assert out["splits"]["test"]["classes"] == {"access": 0, "billing": 2, "bugs": 2}
    meta = dataset.read_meta(_isolated, "t")
    assert meta["test_origin"] == str(test.resolve())
    # Test ids are the test file's rows.
    assert sorted(i for _, _, i in stored_texts(_isolated, "t")["test"]) == [1, 2, 3, 4]


def test_test_share_is_stratified_and_seeded(tmp_path, _isolated):
    # 10, 5 and 2 rows: a fifth of each, rounded, at least one on each side.
    records = ([{"text": f"a{i}", "label": "a"} for i in range(10)]
               + [{"text": f"b{i}", "label": "b"} for i in range(5)]
               + [{"text": f"c{i}", "label": "c"} for i in range(2)])
    path = write_csv(tmp_path / "d.csv", records)
    out = imported(path, "--name", "d")
    assert out["splits"]["test"]["classes"] == {"a": 2, "b": 1, "c": 1}
    assert out["splits"]["train"]["classes"] == {"a": 8, "b": 4, "c": 1}
    first = stored_texts(_isolated, "d")["test"]
    imported(path, "--name", "d", "--force")
    assert stored_texts(_isolated, "d")["test"] == first  # the default seed is fixed
    tests = {tuple(sorted(stored_texts(_isolated, "d")["test"]))}
    for seed in range(1, 6):
        imported(path, "--name", "d", "--force", "--seed", str(seed))
        tests.add(tuple(sorted(stored_texts(_isolated, "d")["test"])))
    assert len(tests) > 1, "the seed draws the split"


def test_integer_labels_sort_numerically(tmp_path, _isolated):
    records = [{"text": f"w{i}", "label": str([10, 2, 9, 1][i % 4])} for i in range(12)]
    out = imported(write_csv(tmp_path / "n.csv", records), "--name", "n")
    assert out["labels"] == ["1", "2", "9", "10"]
    stored = stored_texts(_isolated, "n")
    assert all(t == f"w{i - 1}" and label == records[i - 1]["label"]
               for t, label, i in stored["train"] + stored["test"])


def test_binary_import_is_stored_as_imdb_is(tmp_path, _isolated, archive):
    from conftest import cli

    cli("data", "fetch", "--from", archive)
    records = [{"text": f"good film {i}" if i % 2 else f"bad film {i}",
                "label": "b" if i % 2 else "a"} for i in range(20)]
    out = imported(write_csv(tmp_path / "ab.csv", records), "--name", "ab")
    assert out["labels"] == ["a", "b"]  # label 1, "b", is the positive one
    imdb_build = _isolated / "aclimdb" / dataset.read_meta(_isolated)["build"]
    own_build = _isolated / "datasets" / "ab" / dataset.read_meta(_isolated, "ab")["build"]
    assert sorted(p.name for p in own_build.iterdir()) == sorted(
        p.name for p in imdb_build.iterdir())
    for split in ("train", "test"):
        with np.load(imdb_build / f"{split}.npz") as a, np.load(own_build / f"{split}.npz") as b:
            assert sorted(a.files) == sorted(b.files)
            for k in a.files:
                assert a[k].ndim == b[k].ndim == 1, k
                assert a[k].dtype == b[k].dtype or k == "labels", k
        s = dataset.load_split(_isolated, split, "ab")
        assert (s.ratings == -1).all()
        x, y = dataset.load_encoded(s, None, 10)
        assert x.shape == (len(s), 10) and set(y.tolist()) == {0.0, 1.0}
        assert all((t.startswith("good") == bool(label)) for t, label in
                   zip(s.texts(), s.labels))


# ---------------------------------------------------------------- bad rows


def _bad_csv(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "bad.csv"
    good = b"".join(b"word%d please,%s\n" % (i, b"ab"[i % 2:i % 2 + 1]) for i in range(6))
    path.write_bytes(b"text,label\n" + good + body)
    return path


@pytest.mark.parametrize("body, said", [
    (b",a\n", "row 7, column 'text': the text is empty"),
    (b"some words,\n", "row 7, column 'label': the label is missing"),
    (b"caf\xe9 words,a\n", "row 7, column 'text': holds bytes that are not UTF-8"),
    (b"words,\xff\n", "row 7, column 'label': holds bytes that are not UTF-8"),
    (b'"' + b"x " * (1 << 19) + b'y",a\n', "row 7, column 'text': the text is 1,048,577 bytes, "
                                          "over the limit of 1,048,576 per row"),
    (b"lonely words,c\n", "row 7, column 'label': the label 'c' has only this row"),
], ids=["empty-text", "no-label", "text-not-utf8", "label-not-utf8", "too-long", "too-few"])
def test_a_bad_row_is_one_line_naming_file_row_and_column(body, said, tmp_path, _isolated):
    path = _bad_csv(tmp_path, body)
    res = invoke("data", "import", path, "--name", "bad")
    one_line_error(res, f"{path}, {said}")
    assert "--skip-bad" in res.stderr
    assert not (_isolated / "datasets" / "bad").exists()
    # --skip-bad imports the rest and says what it left out.
    res = invoke("data", "import", path, "--name", "bad", "--skip-bad")
    assert res.exit_code == 0, res.output
    assert "skipped 1 bad rows: 1 " in res.stdout
    meta = dataset.read_meta(_isolated, "bad")
    assert sum(meta["skipped"].values()) == 1
    assert sum(meta["splits"]["train"]["classes"] + meta["splits"]["test"]["classes"]) == 6


def test_bad_rows_of_jsonl_and_folders_are_named(tmp_path, _isolated):
    records = [*rows(3, ("a", "b")), {"title": "x", "body": "some text", "label": None}]
    path = write_jsonl(tmp_path / "r.jsonl", records)
    one_line_error(invoke("data", "import", path, "--name", "r", "--text-column", "body"),
                   f"{path}, row 7, column 'label': the label is missing")
    folder = write_folder(tmp_path / "f", rows(3, ("a", "b")))
    (folder / "a" / "999.txt").write_bytes(b"\xff\xfe bytes")
    one_line_error(invoke("data", "import", folder, "--name", "f"),
                   f"{folder / 'a' / '999.txt'}: holds bytes that are not UTF-8")
    (folder / "a" / "999.txt").write_text("  \n")
    one_line_error(invoke("data", "import", folder, "--name", "f"),
                   f"{folder / 'a' / '999.txt'}: the text is empty")


def test_a_label_only_in_the_test_part(tmp_path, _isolated):
    train = write_csv(tmp_path / "train.csv", rows(3, ("a", "b")))
    test = write_csv(tmp_path / "test.csv", [*rows(1, ("a", "b")),
                                             {"title": "t", "body": "x", "label": "z"}])
    res = invoke("data", "import", train, "--name", "t", "--test", test, "--text-column", "body")
    one_line_error(res, f"{test}, row 3, column 'label': the label 'z' is not in the "
                        f"training part ({train})")
    out = imported(train, "--name", "t", "--test", test, "--skip-bad", "--text-column", "body")
    assert out["skipped"] == {"label not in the training part": 1}
    assert out["splits"]["test"]["rows"] == 2


def test_skip_bad_counts_each_reason(tmp_path, _isolated):
    path = _bad_csv(tmp_path, b",a\n,b\nwords,\n\xff,a\n")
    res = invoke("data", "import", path, "--name", "s", "--skip-bad")
    assert res.exit_code == 0, res.output
    assert ("skipped 4 bad rows: 2 empty text, 1 missing label, 1 bytes not UTF-8"
            in res.stdout)


@pytest.mark.parametrize("args, said, code", [
    (["--text-column", "txt"], "has no column 'txt' (did you mean 'text'?): its columns are "
                               "text, label; name the review column with --text-column", 2),
    (["--label-column", "lable"], "has no column 'lable' (did you mean 'label'?): its columns "
                                  "are text, label; name the label column with --label-column",
     2),
    (["--test-share", "1.5"], "--test-share 1.5 is not a share", 2),
    (["--test-share", "0.2", "--test", "bad.csv"], "--test and --test-share", 2),
    (["--name", "../x"], "Dataset name '../x' is not usable", 2),
])
def test_wrong_options_are_one_line(args, said, code, tmp_path):
    path = _bad_csv(tmp_path, b"")
    name = [] if "--name" in args else ["--name", "ok"]
    one_line_error(invoke("data", "import", path, *name, *args), said, code=code)


def test_fewer_than_two_labels_is_refused(tmp_path):
    path = write_csv(tmp_path / "one.csv", rows(3, ("only",)))
    one_line_error(invoke("data", "import", path, "--name", "one", "--text-column", "body"),
                   f"column 'label' of {path} holds 1 label (only 'only'): a classifier needs "
                   "2 or more")


def test_an_unknown_format_and_a_missing_file(tmp_path):
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    one_line_error(invoke("data", "import", tmp_path / "x.xlsx", "--name", "x"),
                   "is not a file rnncli imports: use .csv, .tsv, .jsonl or .parquet", code=2)
    one_line_error(invoke("data", "import", tmp_path / "nope.csv", "--name", "x"),
                   "No such file or folder", code=2)


# ---------------------------------------------------------------- replacing, failing midway


def test_an_existing_dataset_needs_force(tmp_path, _isolated):
    first = write_csv(tmp_path / "one.csv", rows(3, ("a", "b")))
    imported(first, "--name", "x", "--text-column", "body")
    second = write_csv(tmp_path / "two.csv", rows(3, ("c", "d", "e")))
    one_line_error(invoke("data", "import", second, "--name", "x", "--text-column", "body"),
                   f"A dataset named 'x' already exists in {_isolated} (imported from "
                   f"{first.resolve()}): pass --force to replace it", code=2)
    assert dataset.read_meta(_isolated, "x")["labels"] == ["a", "b"]
    out = imported(second, "--name", "x", "--text-column", "body", "--force")
    assert out["replaced"] and out["labels"] == ["c", "d", "e"]
    builds = list((_isolated / "datasets" / "x").glob("build-*"))
    assert len(builds) == 1, "the replaced build is removed"


@pytest.mark.parametrize("where", ["tokenize", "store"])
def test_a_failed_import_leaves_the_previous_dataset_whole(where, tmp_path, _isolated,
                                                           monkeypatch):
    first = write_csv(tmp_path / "one.csv", rows(3, ("a", "b")))
    imported(first, "--name", "x", "--text-column", "body")
    before = stored_texts(_isolated, "x")
    files = sorted(p.relative_to(_isolated) for p in _isolated.rglob("*"))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "tokenize":
        monkeypatch.setattr("rnncli.data.prepare.assemble", interrupted)
    else:  # after the new build's arrays are written, before meta.json switches to it
        monkeypatch.setattr("rnncli.data.store.atomic_write_json", interrupted)
    second = write_csv(tmp_path / "two.csv", rows(3, ("c", "d")))
    res = invoke("data", "import", second, "--name", "x", "--text-column", "body", "--force")
    one_line_error(res, "Interrupted; nothing was half-written.", code=130)
    assert stored_texts(_isolated, "x") == before
    assert sorted(p.relative_to(_isolated) for p in _isolated.rglob("*")) == files


def test_an_import_waits_for_no_running_fetch(tmp_path, _isolated):
    from rnncli import fsutil

    path = write_csv(tmp_path / "one.csv", rows(3, ("a", "b")))
    _isolated.mkdir()
    with fsutil.exclusive_lock(_isolated / "fetch.lock"):
        one_line_error(invoke("data", "import", path, "--name", "x", "--text-column", "body"),
                       "Another `rnncli data fetch` or `data import` is running on")
    assert not (_isolated / "datasets" / "x").exists()


# ---------------------------------------------------------------- list and the reports


def test_list_shows_imported_datasets_and_the_current_source(tmp_path, _isolated):
    from conftest import cli

    assert invoke("data", "list", "--json").stdout.strip() == "[]"
    cli("data", "fetch", "--from", write_archive(tmp_path / "a.tar.gz"))
    imported(write_csv(tmp_path / "t.csv", rows()), "--name", "tickets", "--text-column", "body")
    listed = json.loads(invoke("data", "list", "--json").stdout)
    assert [(r["name"], r["current"], len(r["labels"]), r["train"], r["test"])
            for r in listed] == [("tickets", False, 3, 12, 3), ("aclimdb", True, 2, 24, 24)]
    shown = invoke("data", "list").stdout
    assert "aclimdb *" in shown and "tickets" in shown
    assert listed[0]["origin"] == str((tmp_path / "t.csv").resolve())


def test_info_decode_and_lengths_take_a_dataset(tmp_path, _isolated):
    records = rows()
    imported(write_csv(tmp_path / "t.csv", records), "--name", "tickets",
             "--text-column", "body")
    info = json.loads(invoke("data", "info", "--dataset", "tickets", "--json").stdout)
    assert info["source"] == "tickets" and info["labels"] == ["access", "billing", "bugs"]
    assert info["splits"]["train"]["classes"] == {"access": 4, "billing": 4, "bugs": 4}
    shown = invoke("data", "info", "--dataset", "tickets").stdout
    assert "3 labels" in shown and "billing" in shown and "pos" not in shown

    decoded = json.loads(invoke("data", "decode", "0", "--split", "test", "--dataset",
                                "tickets", "--json").stdout)
    row = records[decoded["review_id"] - 1]
    assert decoded["label"] == row["label"] and decoded["text"] == row["body"]
    assert f": {row['label']} (source row {decoded['review_id']}" in invoke(
        "data", "decode", "0", "--split", "test", "--dataset", "tickets").stdout

    lengths = json.loads(invoke("data", "lengths", "--dataset", "tickets", "--json").stdout)
    assert lengths["reviews"] == 12
    one_line_error(invoke("data", "info", "--dataset", "tickts"),
                   "No dataset named 'tickts' in", code=1)
    assert "did you mean 'tickets'?" in invoke("data", "lengths", "--dataset", "tickts").stderr


def test_a_folder_takes_no_column_options(tmp_path):
    folder = write_folder(tmp_path / "f", rows(3, ("a", "b")))
    one_line_error(invoke("data", "import", folder, "--name", "f", "--text-column", "body"),
                   "drop --text-column and --label-column", code=2)


@pytest.mark.parametrize("command", ["import", "list"])
def test_help_has_an_example(command):
    res = invoke("data", command, "--help")
    assert res.exit_code == 0 and "Example: rnncli data " + command in res.stdout


def test_the_cli_seed_default_is_the_librarys():
    import inspect

    from rnncli.cli import data
    from rnncli.data import own

    assert inspect.signature(data.import_).parameters["seed"].default == own.DEFAULT_SEED
