"""rnncli's bundled model beside the peers a user would pick, whole process, in one run.

    pip install ".[bench]"          # scikit-learn, fastText
    python benchmarks/bench_peers.py [--archive aclImdb_v1.tar.gz] [--rounds 3] [--model M]...

Each peer is trained here on the IMDB train split, then every model scores the same files
as a user would, each in a process of its own started cold (interpreter, imports, model
load and all):
- rnncli: `rnncli predict --file F --output out.jsonl` (the bundled model by default);
- fastText: supervised, dim 50, word bigrams, 20 epochs, on the train split shuffled and
  preprocessed as fastText's tutorial does (lower case, punctuation split off), a script
  that loads its model.bin, preprocesses the same way and writes a label per line;
- TF-IDF + logistic regression on words (scikit-learn, C=4 on sublinear tf-idf), a script
  that loads its pickle and writes a label per line.
Files: the 25,000 full test reviews, and the first sentence (4 words or more) of each test
review. The models run in turn, alternating, `--rounds` times; printed are medians of the
reviews per second (wall clock), CPU seconds (user + system) per 1,000 reviews and peak
resident memory of each process (tools/peak_rss.py), each model's test accuracy on both files, and
rnncli's speed as a ratio of fastText's.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from short_text import first_sentences

from rnncli.data import archive

HERE = Path(__file__).resolve().parent
DEFAULT_ARCHIVE = HERE.parent.parent / "shared" / "data" / "aclImdb_v1.tar.gz"

# fastText's own tutorial preprocessing (lower case, punctuation split off as tokens),
# applied to the training file and, inside the timed script, to the texts it scores.
FASTTEXT_PREPROCESS = r"""
import re
_PUNCT = re.compile(r"([.!?,'/()])")
def preprocess(text):
    return _PUNCT.sub(r" \1 ", text.lower())
"""

FASTTEXT_SCORE = FASTTEXT_PREPROCESS + """
import sys, fasttext
model = fasttext.load_model(sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    lines = [preprocess(line.rstrip("\\n")) for line in f]
labels, _ = model.predict(lines)
with open(sys.argv[3], "w") as out:
    out.writelines(("1\\n" if l[0] == "__label__pos" else "0\\n") for l in labels)
"""

LINEAR_SCORE = """
import pickle, sys
with open(sys.argv[1], "rb") as f:
    vec, model = pickle.load(f)
with open(sys.argv[2], encoding="utf-8") as f:
    lines = [line.rstrip("\\n") for line in f]
pred = model.predict(vec.transform(lines))
with open(sys.argv[3], "w") as out:
    out.writelines(f"{int(p)}\\n" for p in pred)
"""


def one_line(raw: bytes) -> str:
    return " ".join(raw.decode("utf-8", errors="replace").replace("<br />", " ").split())


def load(path: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    splits: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "test": ([], [])}
    for r in archive.iter_reviews(path):
        texts, labels = splits[r.split]
        texts.append(one_line(r.raw))
        labels.append(r.label)
    return {k: (t, np.array(y)) for k, (t, y) in splits.items()}


def train_fasttext(texts: list[str], y: np.ndarray, work: Path) -> Path:
    import fasttext

    scope: dict = {}
    exec(FASTTEXT_PREPROCESS, scope)
    # Shuffled (seeded): the archive lists every negative review before every positive
    # one, and fastText's single pass in file order would learn the last label's bias.
    order = np.random.default_rng(0).permutation(len(texts))
    data = work / "fasttext.train"
    with open(data, "w", encoding="utf-8") as f:
        for i in order:
            f.write(f"__label__{'pos' if y[i] else 'neg'} {scope['preprocess'](texts[i])}\n")
    model = fasttext.train_supervised(str(data), dim=50, wordNgrams=2, epoch=20, seed=0,
                                      thread=1, verbose=0)
    path = work / "fasttext.bin"
    model.save_model(str(path))
    return path


def train_linear(texts: list[str], y: np.ndarray, work: Path) -> Path:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(sublinear_tf=True, min_df=2)
    model = LogisticRegression(C=4.0, max_iter=1000).fit(vec.fit_transform(texts), y)
    path = work / "linear.pkl"
    with open(path, "wb") as f:
        pickle.dump((vec, model), f)
    return path


PEAK_RSS = Path(__file__).resolve().parent.parent / "tools" / "peak_rss.py"


def run(cmd: list[str]) -> dict:
    """Wall seconds, CPU seconds and peak RSS (MB) of one process, measured by
    tools/peak_rss.py (from this process, which holds the data, a child's peak memory
    would start at this process's size)."""
    proc = subprocess.run([sys.executable, str(PEAK_RSS), *cmd], capture_output=True,
                          text=True)
    got = json.loads(proc.stdout) if proc.returncode == 0 else {"returncode": -1}
    if got["returncode"]:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return got


def labels_from(path: Path, kind: str) -> np.ndarray:
    if kind == "rnncli":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return np.array([r["label"] == "positive" for r in rows], np.int64)
    return np.array([int(v) for v in path.read_text().split()], np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, default=Path(
        os.environ.get("RNNCLI_TEST_ARCHIVE", DEFAULT_ARCHIVE)))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", action="append", default=[],
                    help="an .onnx file for rnncli (default: the bundled model); repeat to "
                         "measure several in the same run")
    ap.add_argument("--workdir", type=Path)
    a = ap.parse_args()

    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    data = load(a.archive)
    test_texts, test_y = data["test"]
    files = {"full": (test_texts, test_y), "sentence": first_sentences(test_texts, test_y)}
    for name, (texts, _) in files.items():
        (work / f"{name}.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")

    started = time.perf_counter()
    ft = train_fasttext(*data["train"], work)
    ft_seconds = time.perf_counter() - started
    started = time.perf_counter()
    lin = train_linear(*data["train"], work)
    lin_seconds = time.perf_counter() - started
    (work / "fasttext_score.py").write_text(FASTTEXT_SCORE)
    (work / "linear_score.py").write_text(LINEAR_SCORE)

    py = sys.executable

    def rnncli(model):
        given = ["--model", model] if model else []
        return lambda f, out: [py, "-m", "rnncli", "predict", *given, "--file", str(f),
                               "--output", str(out)]

    models = a.model or [None]
    commands = {
        f"rnncli {k}" if len(models) > 1 else "rnncli": rnncli(m) for k, m in enumerate(models)
    }
    commands.update({
        "fastText": lambda f, out: [py, str(work / "fasttext_score.py"), str(ft), str(f),
                                    str(out)],
        "TF-IDF + LR": lambda f, out: [py, str(work / "linear_score.py"), str(lin), str(f),
                                       str(out)],
    })
    kinds = {name: "rnncli" if name.startswith("rnncli") else "plain" for name in commands}
    if len(models) > 1:
        for k, m in enumerate(models):
            print(f"rnncli {k}: {m or 'the bundled model'}")
    print(f"{len(test_texts):,} full test reviews, {len(files['sentence'][0]):,} first "
          f"sentences; fastText trained in {ft_seconds:.0f} s, TF-IDF + LR in "
          f"{lin_seconds:.0f} s; {a.rounds} rounds, alternating; {os.cpu_count()} cores")
    got: dict[tuple[str, str], list[dict]] = {}
    accuracy: dict[tuple[str, str], float] = {}
    for _ in range(a.rounds):
        for file in files:
            for name, cmd in commands.items():
                suffix = "jsonl" if kinds[name] == "rnncli" else "txt"
                out = work / f"out-{name.replace(' ', '-')}-{file}.{suffix}"
                got.setdefault((name, file), []).append(run(cmd(work / f"{file}.txt", out)))
                pred = labels_from(out, kinds[name])
                accuracy[name, file] = float((pred == files[file][1]).mean())

    def med(name, file, key):
        return statistics.median(r[key] for r in got[name, file])

    print(f"\n{'model':<12} {'file':<9} {'accuracy':>8} {'reviews/s':>10} "
          f"{'CPU s/1k':>9} {'peak MB':>8} {'vs fastText':>11}")
    for file, (texts, _) in files.items():
        ft_rate = len(texts) / med("fastText", file, "wall")
        for name in commands:
            rate = len(texts) / med(name, file, "wall")
            print(f"{name:<12} {file:<9} {accuracy[name, file]:>8.4f} {rate:>10,.0f} "
                  f"{1000 * med(name, file, 'cpu') / len(texts):>9.2f} "
                  f"{med(name, file, 'rss_mb'):>8,.0f} {rate / ft_rate:>10.2f}x")
    print(f"\nfiles in {work}")


if __name__ == "__main__":
    main()
