"""Training on a dataset of one's own (`--dataset NAME`): defaults from its statistics,
a softmax over 3 or more labels, and, before TensorFlow loads, a one-line refusal of what
works for two labels only."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, modules_loaded, one_line_error

from rnncli.config import run_files
from rnncli.errors import UsageError

# Words that give each class away; FILLER says nothing. Up to 4 classes.
CLASS_WORDS = [["refund", "charge", "invoice", "billing"],
               ["crash", "error", "bug", "freeze"],
               ["login", "password", "account", "locked"],
               ["shipping", "parcel", "delivery", "courier"]]
FILLER = ["the", "my", "is", "a", "please", "help", "today", "again", "it", "with"]


def own_dataset(home: Path, name: str, labels: list[str], per_label: int = 40,
                test_per_label: int = 10, seed: int = 0, lengths=(3, 15)) -> dict:
    """An imported dataset stored as `rnncli data import` stores one: each review a few
    words of its class's CLASS_WORDS among FILLER; the meta.json store() wrote."""
    from rnncli.data import store
    from rnncli.text import tokenizer as text

    rng = random.Random(seed)
    rows: dict[str, list[tuple[int, str]]] = {}
    for split, n in (("train", per_label), ("test", test_per_label)):
        rows[split] = [(c, " ".join(rng.choice(FILLER if rng.random() < 0.5 else CLASS_WORDS[c])
                                    for _ in range(rng.randint(*lengths))))
                       for c in range(len(labels)) for _ in range(n)]
        rng.shuffle(rows[split])
    words = {s: [text.tokenize(t) for _, t in r] for s, r in rows.items()}
    counts = Counter(w for ws in words["train"] for w in ws)
    vocab = text.Vocabulary(sorted(counts, key=lambda w: (-counts[w], w)))
    splits, summary = {}, {}
    for split, r in rows.items():
        ids = [np.array(vocab.encode(ws), np.int32) for ws in words[split]]
        raws = [t.encode() for _, t in r]
        y = np.array([c for c, _ in r], np.int16)
        splits[split] = {
            "tokens": np.concatenate(ids), "labels": y,
            "offsets": np.concatenate([[0], np.cumsum([len(i) for i in ids])]).astype(np.int64),
            "ratings": np.full(len(r), -1, np.int8), "ids": np.arange(len(r), dtype=np.int32),
            "text": np.frombuffer(b"".join(raws), np.uint8),
            "text_offsets": np.concatenate([[0], np.cumsum([len(b) for b in raws])]
                                           ).astype(np.int64)}
        summary[split] = {"reviews": len(r), "tokens": int(sum(map(len, ids))),
                          "classes": np.bincount(y, minlength=len(labels)).tolist()}
    meta = {"source": name, "origin": "test", "checksum": f"{name}-{seed}", "labels": labels,
            "splits": summary}
    return store.store(home, name, splits, vocab, meta)


THREE = ["billing", "bugs", "access"]
FOUR = [*THREE, "shipping"]
SMALL = ["--units", "8", "--embedding-dim", "16", "--unidirectional", "--no-jit"]


def test_derived_defaults_come_from_the_statistics(_isolated):
    from rnncli.data import store
    from rnncli.train.datasets import as_settings, derived_defaults

    home = _isolated
    meta = own_dataset(home, "tickets", THREE, lengths=(10, 10))
    train = store.load_split(home, "train", "tickets")
    seen = int((np.bincount(train.tokens)[3:] >= 2).sum())
    derived = as_settings(derived_defaults(home, meta))
    assert derived["num_words"] == 3 + seen
    assert derived["maxlen"] == 16  # 10 words + start marker = 11, raised to the floor of 16
    assert derived["pooling"] == "masked-max" and derived["bidirectional"] is True
    assert derived["early_stopping"] == 3 and derived["restore_best"] is True
    # The IMDB sources keep today's defaults.
    assert derived_defaults(home, {**meta, "source": "aclimdb"}) == []


def test_maxlen_follows_long_reviews_up_to_500(_isolated):
    from rnncli.train.datasets import as_settings, derived_defaults

    meta = own_dataset(_isolated, "long", THREE, per_label=10, lengths=(40, 40))
    assert as_settings(derived_defaults(_isolated, meta))["maxlen"] == 41
    meta = own_dataset(_isolated, "huge", THREE, per_label=3, lengths=(900, 900))
    assert as_settings(derived_defaults(_isolated, meta))["maxlen"] == 500


def test_print_config_shows_derived_defaults_and_options_win(_isolated):
    own_dataset(_isolated, "tickets", THREE)
    res = invoke("train", "--dataset", "tickets", "--print-config", "--maxlen", "33")
    assert res.exit_code == 0, res.output
    assert 'dataset = "tickets"' in res.stdout
    assert "maxlen = 33 " in res.stdout and 'pooling = "masked-max"' in res.stdout
    assert "early_stopping = 3 " in res.stdout
    # The preset overrides the dataset's defaults too.
    res = invoke("train", "--dataset", "tickets", "--print-config", "--preset", "recipe")
    assert 'pooling = "masked-max"' in res.stdout  # recipe sets nothing: defaults stay
    res = invoke("train", "--dataset", "tickets", "--print-config", "--preset", "gru")
    assert 'cell = "gru"' in res.stdout


@pytest.mark.parametrize("args, text", [
    (["--teacher", "somewhere"], "--teacher distils one probability per review"),
    (["--ngram-teacher", "0.5"], "--ngram-teacher is a binary model"),
    (["--strategy", "multi-worker"], "--strategy multi-worker trains with a binary step"),
])
def test_what_needs_two_labels_is_refused_in_one_line(_isolated, monkeypatch, args, text):
    own_dataset(_isolated, "tickets", THREE)
    # A valid TF_CONFIG: multi-worker's own check (which comes first) passes.
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:23456"]}, '
                                    '"task": {"type": "worker", "index": 0}}')
    res = invoke("train", "--dataset", "tickets", *args)
    one_line_error(res, text, code=2)  # a usage error
    assert "dataset tickets has 3 labels" in res.stderr


def test_refusal_comes_before_tensorflow_loads(_isolated, tmp_path):
    own_dataset(_isolated, "tickets", THREE)
    mods, _, err = modules_loaded(["train", "--dataset", "tickets", "--ngram-teacher", "0.5"],
                                  env={"RNNCLI_HOME": str(_isolated)}, cwd=tmp_path)
    assert "--ngram-teacher" in err
    assert "tensorflow" not in mods and "keras" not in mods


@pytest.mark.parametrize("preset, overrides", [(None, {"ngram_head": True}),
                                               ("student", {})])
def test_the_ngram_head_is_not_refused_for_k_labels(_isolated, preset, overrides):
    """The head has a logit per label (tests/test_ngram_head_classes.py), on TF-IDF: the
    dataset's defaults say so, as naive Bayes ratios tell two labels apart only."""
    from rnncli.config.settings import resolve
    from rnncli.train.datasets import as_settings, check_classes, derived_defaults

    meta = own_dataset(_isolated, "tickets", THREE)
    derived = as_settings(derived_defaults(_isolated, meta))
    cfg = resolve(preset, overrides={"dataset": "tickets", **overrides}, derived=derived)
    assert cfg.model.ngram_head and cfg.model.ngram_weighting == "tfidf"
    check_classes(cfg, meta)
    asked = resolve(preset, overrides={"dataset": "tickets", "ngram_weighting": "nb",
                                       **overrides}, derived=derived)
    with pytest.raises(UsageError, match="--ngram-weighting nb is for two labels.*use "
                                         "--ngram-weighting tfidf"):
        check_classes(asked, meta)


def test_unknown_dataset_is_one_line(_isolated):
    own_dataset(_isolated, "tickets", THREE)
    one_line_error(invoke("train", "--dataset", "tikets"), "(did you mean 'tickets'?)")



@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
@pytest.mark.parametrize("labels", [THREE, FOUR])
def test_k_labels_train_a_softmax_that_learns(_isolated, tmp_path, labels):
    own_dataset(_isolated, "tickets", labels, per_label=60)
    # Crops and buckets (masked-max pooling, the dataset's default) on.
    res = invoke("train", "--dataset", "tickets", *SMALL, "--epochs", "3", "--batch-size",
                 "16", "--learning-rate", "0.01", "--crop-prob", "0.3", "--output", "run")
    assert res.exit_code == 0, res.output
    # The derived defaults are said as the run starts, and the one an option changed says so.
    assert "dataset tickets: maxlen 16 (95th percentile" in res.stderr
    assert "dataset tickets: the best preset's network: cell gru, " in res.stderr
    assert ", units 64 (overridden: 8), " in res.stderr
    run = tmp_path / "run"
    prep = json.loads((run / run_files.PREPROCESSING).read_text())
    assert prep["labels"] == labels and prep["source"] == "tickets"
    config = json.loads((run / run_files.CONFIG).read_text())
    assert config["data"]["dataset"] == "tickets" and config["data"]["maxlen"] == 16
    assert config["derived"]["maxlen"] == 16 and config["model"]["units"] == 8
    assert 'dataset = "tickets"' in (run / run_files.CONFIG_TOML).read_text()
    history = json.loads((run / run_files.HISTORY_JSON).read_text())["epochs"]
    assert max(h["val_accuracy"] for h in history) >= 2 / len(labels)  # chance: 1 / K
    from rnncli.model.runtime import load_keras_model

    model = load_keras_model(run / run_files.MODEL)
    assert model.output_shape == (None, len(labels))
    # The dataset's defaults join the n-gram head: the dense logits and its go into one
    # softmax.
    assert model.layers[-1].get_config()["activation"] == "softmax"
    assert config["model"]["ngram_head"] is True and (run / run_files.HEAD_JSON).exists()


@pytest.mark.parametrize("args, text", [
    ([], "was trained on dataset tickets, and this asks for the current IMDB source: pass "
         "--dataset tickets to resume it"),
    (["--dataset", "other"], "was trained on dataset tickets, and this asks for dataset "
                             "other"),
])
def test_resume_checks_the_dataset_first(_isolated, tmp_path, args, text):
    run = tmp_path / "run"
    run.mkdir()
    (run / run_files.CONFIG).write_text(json.dumps({"data": {"dataset": "tickets"}}))
    one_line_error(invoke("train", "--resume", "--output", "run", *args), text, code=2)


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_two_labels_of_ones_own_train_as_imdb_does(_isolated, tmp_path):
    own_dataset(_isolated, "spam", ["ham", "spam"], per_label=60)
    res = invoke("train", "--dataset", "spam", *SMALL, "--epochs", "2", "--batch-size", "16",
                 "--learning-rate", "0.01", "--ngram-head", "--output", "run")
    assert res.exit_code == 0, res.output
    assert "n-gram head joined" in res.stdout
    prep = json.loads((tmp_path / "run" / run_files.PREPROCESSING).read_text())
    assert prep["labels"] == ["ham", "spam"] and prep["source"] == "spam"
    from rnncli.model.runtime import load_keras_model

    assert load_keras_model(tmp_path / "run" / run_files.MODEL).output_shape == (None, 1)
    res = invoke("evaluate", "--model", "run", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["dataset"] == "spam" and set(r["confusion_matrix"]) == {"tn", "fp", "fn", "tp"}
    assert list(r["per_class"]) == ["ham", "spam"] and r["accuracy"] > 0.75


@pytest.mark.slow
@pytest.mark.usefixtures("training_extra")
def test_k_labels_train_mirrored_on_two_logical_cpus(_isolated, tmp_path):
    own_dataset(_isolated, "tickets", THREE, per_label=30)
    import subprocess
    import sys

    # A process of its own: logical devices are split before TensorFlow's first use.
    res = subprocess.run(
        [sys.executable, "-m", "rnncli", "train", "--dataset", "tickets", *SMALL, "--epochs",
         "2", "--batch-size", "16", "--strategy", "mirrored", "--cpu-devices", "2",
         "--output", "run"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    history = json.loads((tmp_path / "run" / run_files.HISTORY_JSON).read_text())["epochs"]
    assert len(history) == 2 and all(0 <= h["val_accuracy"] <= 1 for h in history)


@pytest.mark.parametrize("theirs, text", [
    ({"source": "other"}, "was trained on other"),
    ({"labels": ["spam", "ham"]}, "tells spam, ham apart"),
])
def test_a_teacher_must_come_from_the_same_dataset(theirs, text):
    from rnncli.errors import UsageError
    from rnncli.text.preprocessing import Preprocessing
    from rnncli.train.teachers import check_reads_alike

    ours = dict(vocabulary=["a", "b"], num_words=5, maxlen=20, source="spam",
                labels=["ham", "spam"])
    check_reads_alike("t", Preprocessing(**ours), Preprocessing(**ours))
    with pytest.raises(UsageError, match=text):
        check_reads_alike("t", Preprocessing(**{**ours, **theirs}), Preprocessing(**ours))


def test_a_saved_config_reproduces_the_derived_settings(_isolated, tmp_path):
    own_dataset(_isolated, "tickets", THREE)
    first = invoke("train", "--dataset", "tickets", "--units", "8", "--print-config")
    (tmp_path / "run.toml").write_text(first.stdout)
    again = invoke("train", "--config", "run.toml", "--print-config")
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout
