import errno
import json
import os
import subprocess
import sys
import tarfile
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from conftest import add_bytes, invoke, one_line_error, synthetic_reviews, write_archive

from rnncli.data import prepare
from rnncli.data import store as dataset
from rnncli.text import tokenizer as text

ROOT = Path(__file__).resolve().parents[1]



def test_fetch_then_reports(archive, _isolated):
    res = invoke("data", "fetch", "--from", str(archive))
    assert res.exit_code == 0, res.output
    assert "train 24 reviews" in res.stdout

    info = json.loads(invoke("data", "info", "--json", "--num-words", "10").stdout)
    for split in ("train", "test"):
        assert info["splits"][split]["reviews"] == 24
        assert info["splits"][split]["pos"] == info["splits"][split]["neg"] == 12
    assert info["max_id"] == 9
    assert info["vocab_size"] > 10

    # The rebuild is a no-op unless forced.
    again = invoke("data", "fetch", "--from", str(archive))
    assert again.exit_code == 0 and "Already prepared" in again.stderr
    forced = invoke("data", "fetch", "--from", str(archive), "--force")
    assert forced.exit_code == 0 and "Prepared aclimdb" in forced.stderr
    builds = list((_isolated / "aclimdb").glob("build-*"))
    assert len(builds) == 1, "old builds are removed once the new one is in place"


def test_stored_ids_are_the_shared_tokenizer(prepared, _isolated):
    rows = {(s, 1 if lab == "pos" else 0, rid): t for s, lab, rid, _, t in synthetic_reviews()}
    vocab = dataset.load_vocabulary(_isolated)
    for name in ("train", "test"):
        split = dataset.load_split(_isolated, name)
        for i in range(len(split)):
            original = rows[(name, int(split.labels[i]), int(split.ids[i]))]
            assert split.text(i) == original
            assert split.review(i).tolist() == vocab.encode(text.tokenize(original))
    # Vocabulary comes from train only and is ranked by frequency.
    train = dataset.load_split(_isolated, "train")
    counts = np.bincount(train.tokens)
    ranked = counts[text.INDEX_FROM:]
    assert (np.diff(ranked) <= 0).all()
    assert counts[text.OOV] == 0


def test_both_labels_in_validation_tail(prepared, _isolated):
    labels = dataset.load_split(_isolated, "train").labels
    tail = labels[int(len(labels) * 0.8):]
    assert 0 < tail.mean() < 1


def test_load_encoded_applies_num_words_and_start(prepared, _isolated):
    split = dataset.load_split(_isolated, "train")
    x, y = dataset.load_encoded(split, num_words=8, maxlen=6, padding="post", truncating="post")
    assert x.shape == (24, 6) and x.dtype == np.int32
    assert (x[:, 0] == text.START).all()
    assert x.max() < 8
    assert set(np.unique(y)) == {0.0, 1.0}


def test_pool_and_single_process_agree(archive, tmp_path):
    from rnncli.data.fetch import fetch

    a, _ = fetch("aclimdb", str(archive), tmp_path / "a", workers=1)
    b, _ = fetch("aclimdb", str(archive), tmp_path / "b", workers=2)
    for name in ("train", "test"):
        sa, sb = dataset.load_split(tmp_path / "a", name), dataset.load_split(tmp_path / "b", name)
        np.testing.assert_array_equal(sa.tokens, sb.tokens)
        np.testing.assert_array_equal(sa.labels, sb.labels)
    assert a["vocab_size"] == b["vocab_size"]


def test_fetch_from_extracted_folder(archive, tmp_path):
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    res = invoke("data", "fetch", "--from", str(tmp_path / "x" / "aclImdb"))
    assert res.exit_code == 0, res.output
    assert json.loads(invoke("data", "info", "--json").stdout)["splits"]["test"]["reviews"] == 24


def test_decode_and_lengths(prepared):
    res = invoke("data", "decode", "0", "--json")
    assert res.exit_code == 0
    report = json.loads(res.stdout)
    assert report["decoded"].startswith("? ")
    assert report["label"] in ("positive", "negative")
    assert "Don't miss it!" in report["text"]
    assert "don't" in report["decoded"]

    text_out = invoke("data", "decode", "3", "--split", "test", "--num-words", "4").stdout
    assert "original:" in text_out and "test review 3" in text_out

    lengths = json.loads(invoke("data", "lengths", "--maxlen", "10", "--json").stdout)
    assert 0 < lengths["truncated_share"] < 1
    assert lengths["tokens_lost"] > 0
    assert lengths["maxlen_to_keep_whole"]["p50"] <= lengths["maxlen_to_keep_whole"]["p99"]
    assert sum(lengths["histogram"]["counts"]) == 24
    shown = invoke("data", "lengths", "--maxlen", "10").stdout
    assert "◀ maxlen" in shown and "truncated" in shown


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "decode", "99"], "No review 99 in the train split: use 0 to 23"),
        (["data", "decode", "--", "-1"], "No review -1"),
        (["data", "decode", "abc"], "is not an integer"),
        (["data", "decode", "0", "--split", "dev"], "'dev' is not one of 'train', 'test'"),
        (["data", "lengths", "--maxlen", "0"], "--maxlen 0 is too small"),
        (["data", "lengths", "--padding", "middle"], "'middle' is not one of 'pre', 'post'"),
        (["data", "info", "--num-words", "3"], "use 4 or more"),
    ],
)
def test_report_bad_input(prepared, args, message):
    res = invoke(*args)
    assert res.exit_code != 0
    assert message in res.stderr
    assert "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["data", "info"], ["data", "decode", "0"], ["data", "lengths"]])
def test_reports_before_fetch(args):
    res = invoke(*args)
    assert res.exit_code == 1
    assert "run `rnncli data fetch` first" in res.stderr


def _hostile(kind):
    def extra(tar):
        if kind == "absolute":
            add_bytes(tar, "/etc/evil.txt", b"x")
        elif kind == "dotdot":
            add_bytes(tar, "aclImdb/../../evil.txt", b"x")
        elif kind == "symlink":
            add_bytes(tar, "aclImdb/train/pos/99_9.txt", b"", type=tarfile.SYMTYPE,
                      linkname="/etc/passwd")
        elif kind == "hardlink":
            add_bytes(tar, "aclImdb/link", b"", type=tarfile.LNKTYPE, linkname="aclImdb/README")
    return extra


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "hardlink"])
def test_hostile_members_are_refused(tmp_path, kind, _isolated):
    bad = write_archive(tmp_path / "bad.tar.gz", extra=_hostile(kind))
    res = invoke("data", "fetch", "--from", str(bad))
    assert res.exit_code == 1
    assert "refusing the archive" in res.stderr
    assert not (tmp_path / "evil.txt").exists() and not (_isolated / "aclimdb").exists()


def test_truncated_and_corrupt_archives(archive, tmp_path):
    data = archive.read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive at all" * 50)
    for name in ("cut.tar.gz", "junk.tar.gz"):
        res = invoke("data", "fetch", "--from", str(tmp_path / name))
        assert res.exit_code == 1, name
        assert "truncated or corrupt" in res.stderr


def test_missing_path_and_missing_split(tmp_path):
    res = invoke("data", "fetch", "--from", str(tmp_path / "nope.tar.gz"))
    assert res.exit_code == 1 and "No such file or folder" in res.stderr
    only_train = [r for r in synthetic_reviews() if r[0] == "train"]
    res = invoke("data", "fetch", "--from", str(write_archive(tmp_path / "t.tar.gz", only_train)))
    assert res.exit_code == 1 and "has no test/neg, test/pos reviews" in res.stderr


def test_non_utf8_review_is_counted(tmp_path):
    rows = synthetic_reviews()
    raw = {("train", "pos", 0): b"caf\xe9 great film \xff"}
    path = write_archive(tmp_path / "a.tar.gz", rows, raw=raw)
    res = invoke("data", "fetch", "--from", str(path))
    assert res.exit_code == 0, res.output
    info = json.loads(invoke("data", "info", "--json").stdout)
    assert info["non_utf8"] == 1


def test_interrupted_fetch_keeps_previous_dataset(archive, tmp_path, monkeypatch, _isolated):
    assert invoke("data", "fetch", "--from", str(archive)).exit_code == 0
    before = json.loads(invoke("data", "info", "--json").stdout)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "build_vocabulary", interrupted)
    other = write_archive(tmp_path / "other.tar.gz", synthetic_reviews(5, seed=1))
    res = invoke("data", "fetch", "--from", str(other))
    assert res.exit_code == 130 and "Interrupted" in res.stderr
    assert json.loads(invoke("data", "info", "--json").stdout) == before
    assert len(list((_isolated / "aclimdb").glob("build-*"))) == 1

    # Interrupted while storing: the half-written build is removed, meta.json untouched.
    monkeypatch.undo()
    monkeypatch.setenv("RNNCLI_HOME", str(_isolated))
    monkeypatch.setattr(dataset, "atomic_write_json", interrupted)
    res = invoke("data", "fetch", "--from", str(other))
    assert res.exit_code == 130
    assert json.loads(invoke("data", "info", "--json").stdout) == before
    assert len(list((_isolated / "aclimdb").glob("build-*"))) == 1


def test_no_network_suggests_from(monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    res = invoke("data", "fetch")
    assert res.exit_code == 1
    assert "Cannot download https://ai.stanford.edu" in res.stderr
    assert "--from PATH" in res.stderr


def _offline(monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", offline)


def test_fetch_offline_with_the_data_prepared_says_so_and_succeeds(prepared, archive,
                                                                   monkeypatch):
    from rnncli.data import archive as arch

    _offline(monkeypatch)
    res = invoke("data", "fetch")
    assert res.exit_code == 0, res.output
    assert res.stderr == (f"Already prepared (aclimdb from {archive}), kept as it is: Cannot "
                          f"download {arch.ACLIMDB_URL} (Name or service not known). `rnncli "
                          "data fetch --force` re-fetches.\n")
    assert res.stdout.startswith("aclimdb: train 24 reviews, test 24 reviews")
    # --force re-fetches, so offline it fails; another URL asked for is not what is prepared.
    one_line_error(invoke("data", "fetch", "--force"), "Cannot download https://ai.stanford.edu")
    one_line_error(invoke("data", "fetch", "--from", "https://example.org/a.tar.gz"),
                   "Cannot download https://example.org/a.tar.gz")
    assert invoke("data", "decode", "0").exit_code == 0


@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_info_and_lengths_count_the_same_tokens(prepared, _isolated, truncating):
    info = json.loads(invoke("data", "info", "--json").stdout)
    for split in ("train", "test"):
        res = invoke("data", "lengths", "--split", split, "--maxlen", "10", "--truncating",
                     truncating, "--json")
        lengths = json.loads(res.stdout)
        words = info["splits"][split]["tokens"]
        assert lengths["tokens_total"] == words == prepared["splits"][split]["tokens"]
        # Lost: the words a model never reads (ids >= 2; 1 is the start marker, 0 padding).
        x, _ = dataset.load_encoded(dataset.load_split(_isolated, split), None, 10,
                                    truncating=truncating)
        assert lengths["tokens_lost"] == words - int((x >= text.OOV).sum()) > 0
    shown = invoke("data", "lengths", "--maxlen", "10").stdout
    assert "words as `data info` counts them, no start marker" in shown
    assert "tokens: words stored" in invoke("data", "info").stdout


def test_download_verifies_checksum(tmp_path, archive):
    from rnncli.data import archive as arch
    from rnncli.data import download

    url = archive.as_uri()
    got = download.download(url, tmp_path / "ok.tar.gz", sha256=arch.file_sha256(archive))
    assert got.path.read_bytes() == archive.read_bytes() and got.verified
    with pytest.raises(download.NetworkError, match="Checksum mismatch"):
        download.download(url, tmp_path / "bad.tar.gz", sha256="0" * 64)
    assert not (tmp_path / "bad.tar.gz").exists()
    assert not list(tmp_path.glob(".*tmp*"))


# ---------------------------------------------------------------- one fetch at a time


def test_second_fetch_is_refused_while_one_runs(archive, monkeypatch, _isolated):
    from rnncli.data.fetch import fetch

    assert invoke("data", "fetch", "--from", str(archive)).exit_code == 0
    started, release = threading.Event(), threading.Event()
    build_vocabulary = prepare.build_vocabulary

    def paused(*args):
        if not started.is_set():  # only the first fetch waits
            started.set()
            release.wait(30)
        return build_vocabulary(*args)

    monkeypatch.setattr(prepare, "build_vocabulary", paused)
    first: dict = {}
    thread = threading.Thread(target=lambda: first.update(
        result=fetch("aclimdb", str(archive), force=True)))
    thread.start()
    assert started.wait(30)
    second = invoke("data", "fetch", "--from", str(archive), "--force")
    release.set()
    thread.join(30)
    one_line_error(second,
                   f"Another `rnncli data fetch` or `data import` is running on {_isolated}")
    assert first["result"][1] is True
    assert len(list((_isolated / "aclimdb").glob("build-*"))) == 1
    assert invoke("data", "decode", "0").exit_code == 0


def test_lock_held_by_another_process_refuses_fetch(archive, _isolated):
    _isolated.mkdir()
    code = ("import sys; from pathlib import Path; from rnncli.fsutil import exclusive_lock\n"
            "with exclusive_lock(Path(sys.argv[1])):\n"
            "    print('held', flush=True); sys.stdin.read()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", code, str(_isolated / "fetch.lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        one_line_error(invoke("data", "fetch", "--from", str(archive)), "Another `rnncli data")
    finally:
        holder.communicate("", timeout=30)
    assert invoke("data", "fetch", "--from", str(archive)).exit_code == 0


def test_planted_symlinks_at_temporary_names_are_not_followed(archive, tmp_path, _isolated):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (_isolated / "aclimdb").mkdir(parents=True)
    # The names temporary files used to get: predictable from the process id.
    pid = os.getpid()
    for planted in (_isolated / "aclimdb" / f".meta.tmp-{pid}.json",
                    _isolated / f".current.tmp-{pid}"):
        planted.symlink_to(victim)
    assert invoke("data", "fetch", "--from", str(archive)).exit_code == 0
    assert victim.read_text() == "precious"


def test_atomic_path_keeps_the_suffix_and_cleans_up(tmp_path):
    from rnncli.fsutil import atomic_path

    target = tmp_path / "model.keras"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a.suffix == b.suffix == ".keras" and a.parent == b.parent == tmp_path
        assert a != b and not a.is_symlink()
        a.write_bytes(b"first")
        b.write_bytes(b"second")
    assert target.read_bytes() == b"first"  # the last to finish wins, whole
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


# ---------------------------------------------------------------- damaged prepared data


def _build(home):
    return home / "aclimdb" / json.loads((home / "aclimdb" / "meta.json").read_text())["build"]


def _edit_meta(home, change):
    path = home / "aclimdb" / "meta.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _save_split(home, **changes):
    path = _build(home) / "train.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **{**arrays, **changes})


DAMAGE = {
    "npz truncated": lambda h: (_build(h) / "train.npz").write_bytes(
        (_build(h) / "train.npz").read_bytes()[:300]),
    "npz empty": lambda h: (_build(h) / "train.npz").write_bytes(b""),
    "npz missing": lambda h: (_build(h) / "train.npz").unlink(),
    "npz offsets": lambda h: _save_split(h, offsets=np.arange(3, dtype=np.int64)),
    "npz texts": lambda h: _save_split(h, text_offsets=np.zeros(2, np.int64)),
    "meta list": lambda h: (h / "aclimdb" / "meta.json").write_text("[]"),
    "meta not json": lambda h: (h / "aclimdb" / "meta.json").write_text("{"),
    "meta nested": lambda h: (h / "aclimdb" / "meta.json").write_text("[" * 100_000),
    "meta keys": lambda h: _edit_meta(h, lambda m: {k: m[k] for k in m if k != "splits"}),
    "meta build": lambda h: _edit_meta(h, lambda m: {**m, "build": "../../elsewhere"}),
    "meta folder": lambda h: ((h / "aclimdb" / "meta.json").unlink(),
                              (h / "aclimdb" / "meta.json").mkdir()),
    "vocab missing": lambda h: (_build(h) / "vocab.txt").unlink(),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_prepared_data_is_named_and_force_repairs_it(prepared, archive, _isolated,
                                                            damage):
    DAMAGE[damage](_isolated)
    failed = 0
    for args in (["info"], ["decode", "0"], ["lengths"]):
        res = invoke("data", *args)
        if res.exit_code:
            failed += 1
            one_line_error(res, f"Prepared data in {_isolated / 'aclimdb'} is damaged (")
            assert res.stderr.rstrip().endswith("run `rnncli data fetch --force`.")
    assert failed, "some reader must notice"
    res = invoke("data", "fetch", "--from", str(archive), "--force")
    assert res.exit_code == 0, res.output
    for args in (["info"], ["decode", "0"], ["lengths"]):
        assert invoke("data", *args).exit_code == 0
    assert len(list((_isolated / "aclimdb").glob("build-*"))) == 1


def test_force_repairs_a_source_folder_that_is_a_file(archive, _isolated):
    _isolated.mkdir()
    (_isolated / "aclimdb").write_text("not a folder")
    assert invoke("data", "fetch", "--from", str(archive), "--force").exit_code == 0
    assert invoke("data", "decode", "0").exit_code == 0


# ---------------------------------------------------------------- the environment fails


def test_data_home_that_is_a_file(archive, _isolated):
    _isolated.write_text("a file")
    one_line_error(invoke("data", "fetch", "--from", str(archive)),
                   f"Data home {_isolated} is a file")
    assert _isolated.read_text() == "a file"


def _raise(err, message):
    def fail(*args, **kwargs):
        raise OSError(err, message)
    return fail


@pytest.mark.parametrize("where, err, message", [
    ("numpy.savez", errno.ENOSPC, "No space left on device"),
    ("tempfile.mkdtemp", errno.EROFS, "Read-only file system"),
    ("rnncli.fsutil.exclusive_lock", errno.EACCES, "Permission denied"),
])
def test_write_failures_keep_the_previous_dataset(prepared, archive, _isolated, monkeypatch,
                                                  where, err, message):
    before = json.loads(invoke("data", "info", "--json").stdout)
    monkeypatch.setattr(where, _raise(err, message))
    one_line_error(invoke("data", "fetch", "--from", str(archive), "--force"), message)
    monkeypatch.undo()
    monkeypatch.setenv("RNNCLI_HOME", str(_isolated))
    assert json.loads(invoke("data", "info", "--json").stdout) == before
    assert len(list((_isolated / "aclimdb").glob("build-*"))) == 1
    assert not list((_isolated / "aclimdb").glob(".*tmp*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_data_home(prepared, archive, _isolated):
    before = json.loads(invoke("data", "info", "--json").stdout)
    for folder in (_isolated, _isolated / "aclimdb"):
        folder.chmod(0o555)
    try:
        res = invoke("data", "fetch", "--from", str(archive), "--force")
    finally:
        for folder in (_isolated, _isolated / "aclimdb"):
            folder.chmod(0o755)
    one_line_error(res, "Permission denied")
    assert json.loads(invoke("data", "info", "--json").stdout) == before


def test_unnamed_os_errors_become_one_line(capsys):
    import typer

    from rnncli.cli.common import handle_errors

    @handle_errors
    def command():
        raise OSError(errno.ENOSPC, "No space left on device", "/data/x.npz")

    with pytest.raises(typer.Exit) as exit_info:
        command()
    assert exit_info.value.exit_code == 1
    err = capsys.readouterr().err
    assert err == ("Error: Cannot use /data/x.npz (No space left on device): check the path, "
                   "its permissions and the free disk space.\n")


def test_a_fetch_that_swaps_builds_during_a_read_is_followed(prepared, _isolated, monkeypatch):
    """A fetch finishing between a reader's meta.json and its files removes the build the
    reader was told of; the reader reads meta.json again and loads the new build."""
    real = dataset.read_meta
    calls = []

    def stale_first(home, source=None):
        meta = real(home, source)
        calls.append(meta["build"])
        return {**meta, "build": "build-removed-by-a-fetch"} if len(calls) == 1 else meta

    monkeypatch.setattr(dataset, "read_meta", stale_first)
    assert len(dataset.load_split(_isolated, "train")) > 0
    calls.clear()
    assert len(dataset.load_vocabulary(_isolated)) > 0
    assert len(calls) == 2
