"""The path a user's own file takes, end to end in each input format: data import -> train
-> evaluate -> export onnx -> predict, for a file of four labels."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import cli

TOPICS = {
    "sports": "match team goal season coach league player cup".split(),
    "business": "market shares profit bank company investors sales deal".split(),
    "science": "study researchers space cells climate species planet gene".split(),
    "politics": "election minister vote parliament policy party senate law".split(),
}
COMMON = "the a of in and to on for with new after over says report week".split()


def rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        topic = list(TOPICS)[i % len(TOPICS)]
        title = " ".join(rng.choice(TOPICS[topic], 2).tolist() + rng.choice(COMMON, 2).tolist())
        body = " ".join(rng.choice(TOPICS[topic], 4).tolist() + rng.choice(COMMON, 8).tolist())
        out.append({"title": title, "body": body, "topic": topic})
    return out


def write(path, kind: str, data: list[dict]):
    if kind == "folder":  # LABEL/*.txt
        for i, r in enumerate(data):
            folder = path / r["topic"]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}.txt").write_text(f"{r['title']} {r['body']}")
        return path
    file = path.with_suffix("." + kind)
    if kind == "jsonl":
        file.write_text("".join(json.dumps(r) + "\n" for r in data))
    elif kind == "parquet":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        pq.write_table(pa.table({k: [r[k] for r in data] for k in data[0]}), file)
    else:
        with open(file, "w", newline="") as f:
            w = csv.DictWriter(f, ["title", "body", "topic"],
                               delimiter="\t" if kind == "tsv" else ",")
            w.writeheader()
            w.writerows(data)
    return file


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl", "parquet", "folder"])
def test_a_four_label_file_goes_from_import_to_predict(tmp_path, kind):
    train, test = write(tmp_path / "train", kind, rows(160, 0)), write(
        tmp_path / "test", kind, rows(40, 1))
    columns = [] if kind == "folder" else ["--text-column", "title", "--text-column", "body",
                                           "--label-column", "topic"]
    cli("data", "import", train, "--test", test, "--name", "topics", *columns)
    cli("train", "--dataset", "topics", "--units", "8", "--embedding-dim", "16",
        "--epochs", "2", "--learning-rate", "0.01", "--output", "run")
    report = json.loads(cli("evaluate", "--model", "run", "--json").stdout)
    assert report["labels"] == sorted(TOPICS) and report["reviews"] == 40
    cli("export", "onnx", "--model", "run", "--graph", "native")
    onnx_report = json.loads(cli("evaluate", "--model", "run/model.onnx", "--json").stdout)
    # The ONNX file scores as the Keras model does.
    assert onnx_report["confusion_matrix"] == report["confusion_matrix"]
    assert abs(onnx_report["accuracy"] - report["accuracy"]) < 1e-9
    # The head (on by default for an imported dataset) reads these words at once.
    assert report["accuracy"] >= 0.9
    out = json.loads(cli("predict", "--model", "run/model.onnx", "--format", "json",
                         "coach says the team will win the league cup").stdout)
    assert out[0]["label"] == "sports"
