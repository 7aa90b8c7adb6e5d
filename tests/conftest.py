"""Fixtures: every test gets its own data home and works in its own folder."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

# The real archive for the real-data tests: RNNCLI_TEST_ARCHIVE, else the shared data folder
# beside the repository.
REAL_ARCHIVE = Path(os.environ.get("RNNCLI_TEST_ARCHIVE") or Path(__file__).resolve().parents[2]
                    / "shared" / "data" / "aclImdb_v1.tar.gz")
NO_ARCHIVE = f"real archive not at {REAL_ARCHIVE}: set RNNCLI_TEST_ARCHIVE to aclImdb_v1.tar.gz"

POS_WORDS = ["great", "wonderful", "moving", "brilliant", "superb", "loved"]
NEG_WORDS = ["awful", "boring", "waste", "terrible", "dull", "hated"]
FILLER = ["the", "film", "was", "a", "movie", "and", "plot", "actors", "it"]


def synthetic_reviews(n_per_label: int = 12, seed: int = 0) -> list[tuple[str, str, int, int, str]]:
    """(split, label, id, rating, text) rows whose words predict their label."""
    import random

    rng = random.Random(seed)
    rows = []
    for split in ("train", "test"):
        for label, words, ratings in (("pos", POS_WORDS, (7, 10)), ("neg", NEG_WORDS, (1, 4))):
            for i in range(n_per_label):
                body = [rng.choice(FILLER if rng.random() < 0.6 else words)
                        for _ in range(rng.randint(3, 30))]
                text = " ".join(body).capitalize() + ". <br /><br />Don't miss it!"
                rows.append((split, label, i, rng.randint(*ratings), text))
    return rows


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, **info) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    for k, v in info.items():
        setattr(member, k, v)
    tar.addfile(member, io.BytesIO(data))


def tar_bytes(rows=None, extra=None, raw=None) -> bytes:
    """An uncompressed aclImdb-shaped tar; `extra(tar)` may add hostile members."""
    rows = synthetic_reviews() if rows is None else rows
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        add_bytes(tar, "aclImdb/README", b"synthetic")
        for split, label, rid, rating, text in rows:
            data = raw.get((split, label, rid), text.encode()) if raw else text.encode()
            add_bytes(tar, f"aclImdb/{split}/{label}/{rid}_{rating}.txt", data)
        if extra:
            extra(tar)
    return buf.getvalue()


def write_archive(path: Path, rows=None, extra=None, raw=None) -> Path:
    """A tiny aclImdb-shaped .tar.gz; `extra(tar)` may add hostile members."""
    path.write_bytes(gzip.compress(tar_bytes(rows, extra, raw), mtime=0))
    return path


def one_line_error(res, text: str, code: int = 1, progress: str | None = None) -> None:
    """A CliRunner result that failed with `code` and one line of stderr holding `text`;
    with `progress`, the command's progress lines (starting so) may come before it."""
    assert res.exit_code == code, res.output
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output, res.exception
    assert text in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    if progress:
        lines = [line for line in lines if not line.startswith(progress)]
    assert len(lines) == 1, res.stderr


@pytest.fixture(scope="session", autouse=True)
def _bundled_model_untouched():
    """No test may write the package's own bundled model (a test of the bundled-model writer
    that forgets its target would replace it)."""
    import hashlib

    folder = Path(__file__).resolve().parents[1] / "rnncli" / "bundled"

    def state():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}

    before = state()
    yield
    assert state() == before, f"a test changed {folder}: restore it with git checkout"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("RNNCLI_HOME", str(home))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.chdir(tmp_path)
    # Single-process preparation keeps tiny tests fast; the pool is covered by its own test.
    monkeypatch.setenv("RNNCLI_WORKERS", "1")
    return home


@pytest.fixture
def archive(tmp_path) -> Path:
    return write_archive(tmp_path / "aclImdb_v1.tar.gz")


@pytest.fixture
def prepared(archive):
    from rnncli.data.fetch import fetch

    meta, _ = fetch("aclimdb", str(archive))
    return meta


@pytest.fixture(scope="session")
def real_home(tmp_path_factory):
    """The real archive prepared once per test session, through `data fetch --from`."""
    if not REAL_ARCHIVE.exists():
        pytest.skip(NO_ARCHIVE)
    home = tmp_path_factory.mktemp("real-home")
    cli("data", "fetch", "--from", REAL_ARCHIVE, "--data-dir", home)
    return home


# Settings of a model small enough to train in seconds (add --output, --data-dir, --epochs).
TINY = ["--maxlen", "20", "--num-words", "30", "--units", "4", "--embedding-dim", "8",
        "--batch-size", "8", "--no-jit"]


def invoke(*args, **kwargs):
    """`rnncli ARGS` in-process (Typer's CliRunner): the result, for the test to check.
    kwargs go to CliRunner.invoke (input=..., env=..., catch_exceptions=...)."""
    from typer.testing import CliRunner

    from rnncli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def cli(*args: str):
    """`rnncli ARGS` in-process, asserted to succeed."""
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    return res


def builder_session(g, name: str, inputs: list, outputs: list):
    """An onnxruntime session on the nodes and constants of a GraphBuilder `g` (the ONNX
    backend of the cells' and poolings' ops), checked by onnx first."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    graph = helper.make_graph(g.nodes, name, inputs, outputs, initializer=[
        numpy_helper.from_array(v, k) for k, v in g.consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


_PROBE = (
    "import sys\n"
    "from rnncli.cli import main\n"
    "sys.argv = ['rnncli', *{argv!r}]\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    "sys.stderr.write('MODULES ' + ' '.join(sorted(sys.modules)))\n"
)


def modules_loaded(argv: list[str], env: dict[str, str] | None = None,
                   cwd: Path | None = None) -> tuple[set[str], str, str]:
    """`rnncli ARGV` in a fresh interpreter: (the modules it imported, its stdout, its stderr
    without the module list)."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _PROBE.format(argv=list(argv))],
                         capture_output=True, text=True, timeout=120, cwd=cwd,
                         env={**os.environ, **(env or {})})
    err, _, mods = res.stderr.rpartition("MODULES ")
    return set(mods.split()), res.stdout, err


def keras_run(folder: Path) -> Path:
    """A run folder as evaluate, export and --resume find it; its model is never loaded
    (tests stand in for loading it)."""
    import json

    from rnncli.config import run_files
    from rnncli.text.preprocessing import Preprocessing

    folder.mkdir()
    (folder / run_files.MODEL).write_bytes(b"a Keras model would be here")
    (folder / run_files.PREPROCESSING).write_text(json.dumps(
        Preprocessing(vocabulary=["film", "great"], num_words=10, maxlen=20).to_dict()))
    return folder


def fetched_home(root: Path) -> Path:
    """A data home under `root` prepared from a synthetic archive, through the CLI."""
    home = root / "home"
    cli("data", "fetch", "--from", write_archive(root / "aclImdb_v1.tar.gz"), "--data-dir", home)
    return home


def trained_run(root: Path, home: Path, *train_args: str) -> Path:
    """`rnncli train TRAIN_ARGS` into root/run; returns the run folder."""
    cli("train", *train_args, "--output", root / "run", "--data-dir", home)
    return root / "run"


# The tiny recipe-shaped model the export and serving tests share; its embedding (40 x 128)
# is large enough to be quantized.
TINY_RUN = ["--maxlen", "20", "--num-words", "40", "--units", "4", "--embedding-dim", "128",
            "--batch-size", "8", "--epochs", "3", "--no-jit"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """TINY_RUN trained once per test session: (data home, run folder). Leave the folder as it
    is: a module that writes into a run (an export) takes its own copy with own_run()."""
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("tiny-run")
    home = fetched_home(root)
    return home, trained_run(root, home, *TINY_RUN)


def own_run(tiny_run, root: Path) -> tuple[Path, Path]:
    """(data home, a copy of the shared tiny run under `root`) for a module to write into."""
    import shutil

    home, run = tiny_run
    return home, Path(shutil.copytree(run, root / "run"))


@pytest.fixture(scope="module")
def training_extra():
    """Skip a module without the `[train]` extra; a fixture, not an import-time check, so that
    collecting the fast suite loads no TensorFlow."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")


# Marks of a module whose tests train or export Keras models.
TRAINS = [pytest.mark.slow, pytest.mark.usefixtures("training_extra")]


def train_tiny(*args: str):
    """`rnncli train` on TINY settings, in-process; the result, for the test to check."""
    return invoke("train", *TINY, *args)


# Id rows whose label is the order of two words (ORDER_WORDS), which their counts do not
# tell: what an n-gram model must read from word pairs. Words: ids 7..ORDER_NUM_WORDS-1.
ORDER_NUM_WORDS = 20
ORDER_WORDS = (5, 6)


def word_order_rows(n: int, seed: int):
    import numpy as np

    from rnncli.text import tokenizer as text

    a, b = ORDER_WORDS
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        filler = rng.integers(7, ORDER_NUM_WORDS, size=int(rng.integers(3, 12)))
        at = int(rng.integers(0, len(filler) + 1))
        pair = [a, b] if label else [b, a]
        rows.append(np.array([text.START, *filler[:at], *pair, *filler[at:]], np.int32))
        labels.append(label)
    return rows, np.array(labels, np.float32)


def bundled_accuracy() -> str:
    """The bundled model's recorded test accuracy as the CLI prints it (4 decimals)."""
    from rnncli.serve.locate import BUNDLED
    from rnncli.serve.onnx_model import OnnxModel

    return f"{float(OnnxModel(BUNDLED, workers=1).metadata['rnncli.test_accuracy']):.4f}"
