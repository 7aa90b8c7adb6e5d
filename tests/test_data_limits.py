"""Memory follows what is counted: a token bomb inside the byte limits (1 MiB reviews of
"a a a ...", a few KB compressed) is refused in one line, without growing a process to
gigabytes, and a tokenizer worker that dies (the kernel's OOM killer) ends the fetch in one
line with the lock released instead of leaving it waiting forever.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import add_bytes, invoke, one_line_error, write_archive

from rnncli.data import archive as arch
from rnncli.data import prepare

ROOT = Path(__file__).resolve().parents[1]
BOMB_REVIEW = b"a " * (arch.MAX_REVIEW_BYTES // 2)  # exactly the byte limit: 524,288 tokens


def bomb(path: Path, reviews: int, body: bytes = BOMB_REVIEW) -> Path:
    return write_archive(path, extra=lambda tar: [
        add_bytes(tar, f"aclImdb/train/pos/{1000 + i}_9.txt", body) for i in range(reviews)])


def run_python(code: str, *args: str, home: Path, workers: int = 2,
               timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "RNNCLI_HOME": str(home), "RNNCLI_WORKERS": str(workers),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout} s: the fetch hangs")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_token_bomb_within_the_byte_limits_is_refused(tmp_path, monkeypatch, _isolated,
                                                      workers):
    monkeypatch.setenv("RNNCLI_WORKERS", workers)
    path = bomb(tmp_path / "bomb.tar.gz", 3)
    one_line_error(invoke("data", "fetch", "--from", path),
                   "Review 'aclImdb/train/pos/1000_9.txt' in "
                   f"{path} holds 524,288 tokens, over the limit of 100,000 per review")
    assert not (_isolated / "aclimdb").exists()


@pytest.mark.parametrize("limit, value, message", [
    ("MAX_TOKENS", 500, "holds more than 500 tokens"),
    ("MAX_WORDS", 8, "holds more than 8 distinct words"),
    ("MAX_REVIEW_TOKENS", 20, "over the limit of 20 per review"),
])
def test_token_limits_end_the_fetch_in_one_line(archive, monkeypatch, _isolated, limit, value,
                                                message):
    monkeypatch.setattr(prepare, limit, value)
    one_line_error(invoke("data", "fetch", "--from", archive), message)
    assert not (_isolated / "aclimdb").exists()


def test_a_worker_gets_at_most_chunk_bytes_of_text():
    reviews = [arch.Review("train", 1, i, 9, BOMB_REVIEW) for i in range(10)]
    fields: dict = {}
    sizes = [sum(map(len, raws)) for _, raws in prepare._chunks(reviews, fields)]
    assert max(sizes) <= prepare._CHUNK_BYTES and sum(sizes) == 10 * len(BOMB_REVIEW)
    assert len(fields["train"]) == 10


PEAK_RSS = """
    import resource, subprocess, sys
    done = subprocess.run([sys.executable, "-m", "rnncli", "data", "fetch", "--from", sys.argv[1]],
                          capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    # The largest of the fetch and its workers (Linux: KiB).
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
    sys.exit(done.returncode)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB")
def test_token_bomb_keeps_every_process_small(tmp_path):
    # 40 reviews of 1 MiB of "a ": 45 KB compressed, 21 million tokens. Before tokens were
    # counted, one worker took the 40 reviews at once and grew to 631 MiB (1,000 of them:
    # 9.4 GB); now a worker gets 4 MiB of text and the first review over 100,000 tokens
    # ends the fetch (111 MiB).
    path = bomb(tmp_path / "bomb.tar.gz", 40)
    done = run_python(PEAK_RSS, str(path), home=tmp_path / "home")
    assert int(done.stdout) < 300, f"peak RSS {done.stdout.strip()} MiB"
    assert done.returncode == 1, done.stderr
    assert "holds 524,288 tokens" in done.stderr and "Traceback" not in done.stderr


WORKER_DIES = """
    import os, signal, sys
    from pathlib import Path

    from rnncli.data import prepare
    from rnncli.fsutil import exclusive_lock

    def killed(job):  # what the OOM killer does to a worker
        os.kill(os.getpid(), signal.SIGKILL)

    prepare._tokenize_chunk = killed
    from rnncli.cli import app

    try:
        app(["data", "fetch", "--from", sys.argv[1]], prog_name="rnncli")
    except SystemExit as exc:
        code = exc.code
    with exclusive_lock(Path(os.environ["RNNCLI_HOME"]) / "fetch.lock"):
        print("lock released")
    sys.exit(code)
"""


def test_a_worker_killed_ends_the_fetch_in_one_line(archive, tmp_path):
    home = tmp_path / "home"
    done = run_python(WORKER_DIES, str(archive), home=home, timeout=90)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ("Error: A tokenizer process ended abruptly (killed, perhaps for lack "
                           "of memory); nothing was stored: free some memory or set "
                           "RNNCLI_WORKERS=1, then run this again.\n")
    assert done.stdout == "lock released\n"
    assert not (home / "aclimdb").exists()
    assert invoke("data", "fetch", "--from", archive, "--data-dir", home).exit_code == 0
