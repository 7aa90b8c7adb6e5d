"""Data preparation speed: `rnncli data fetch --from` against a plain single-process baseline.

    python benchmarks/bench_data.py [--archive ../shared/data/aclImdb_v1.tar.gz]

Both are measured in this run on this machine; the script prints seconds and their ratio,
and the time to load a prepared split. Targets: fetch <= 10 s, load < 1 s.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "aclImdb_v1.tar.gz"


def plain_baseline(archive: Path) -> float:
    """What a straightforward script does: read, lower-case, regex-tokenize, count, encode."""
    started = time.perf_counter()
    markup, word = re.compile(r"<[^>]*>"), re.compile(r"[^\W_]+(?:'[^\W_]+)*")
    docs = {"train": [], "test": []}
    with tarfile.open(archive, "r|gz") as tar:
        for m in tar:
            parts = m.name.split("/")
            if m.isfile() and len(parts) == 4 and parts[2] in ("pos", "neg"):
                raw = tar.extractfile(m).read().decode("utf-8", "replace")
                docs[parts[1]].append(word.findall(markup.sub(" ", raw.lower())))
    counts = Counter(w for d in docs["train"] for w in d)
    index = {w: i + 3 for i, (w, _) in enumerate(counts.most_common())}
    for split in docs.values():
        [[index.get(w, 2) for w in d] for d in split]
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rnncli", "data", "fetch", "--from",
                        str(args.archive), "--data-dir", home, "--force"], check=True,
                       stdout=subprocess.DEVNULL)
        fetch_s = time.perf_counter() - started

        code = ("import time; t=time.perf_counter(); from pathlib import Path; "
                "from rnncli.data.store import load_split, load_encoded; "
                f"s=load_split(Path({home!r}), 'train'); x,y=load_encoded(s, 1000, 80); "
                "print(time.perf_counter()-t)")
        load_s = float(subprocess.run([sys.executable, "-c", code], check=True,
                                      capture_output=True, text=True).stdout)
    base_s = plain_baseline(args.archive)
    print(f"rnncli data fetch --from (whole command): {fetch_s:6.2f} s   target <= 10 s")
    print(f"plain single-process tokenize + encode:   {base_s:6.2f} s")
    print(f"ratio fetch / plain:                      {fetch_s / base_s:6.2f}x")
    print(f"load train split + pad to 80 (in-process): {load_s:6.3f} s  target < 1 s")


if __name__ == "__main__":
    main()
