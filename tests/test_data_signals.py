"""`rnncli data fetch` stopped from outside: SIGTERM while tokenizing or downloading ends in
one line (exit 143) with no temporary file, build or worker left behind; what a SIGKILLed
fetch leaves is removed by the next one.

Each fetch runs as a real process (`python -m rnncli`), in a session of its own so that a
signal can go to its whole process group, as a terminal or a service manager sends it.
"""

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import add_bytes, write_archive

ROOT = Path(__file__).resolve().parents[1]
TERMINATED = ("Error: Terminated (SIGTERM) during `rnncli data fetch`; nothing was "
              "half-written: run it again to finish.")


def fetch_env(home: Path, workers: int = 1) -> dict:
    return {**os.environ, "RNNCLI_HOME": str(home), "RNNCLI_WORKERS": str(workers),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def start_fetch(home: Path, *args: str, workers: int = 1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rnncli", "data", "fetch", *args],
                            env=fetch_env(home, workers), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def finish(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the fetch did not end within 60 s of the signal")


def leftovers(home: Path) -> list[str]:
    """Everything in the data home but the lock file (and the folders a fetch makes first)."""
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")
                  if p.name != "fetch.lock" and not (p.is_dir() and not any(p.iterdir())))


@pytest.fixture
def slow_archive(tmp_path) -> Path:
    """An archive whose tokenizing takes seconds with two workers: long reviews of words."""
    body = b"great film " * 9_000
    return write_archive(tmp_path / "slow.tar.gz", extra=lambda tar: [
        add_bytes(tar, f"aclImdb/train/pos/{1000 + i}_9.txt", body) for i in range(600)])


@pytest.mark.skipif(not Path(f"/proc/self/task/{os.getpid()}/children").exists(),
                    reason="finds the workers in /proc/PID/task/PID/children")
@pytest.mark.parametrize("to", ["group", "parent"])
def test_sigterm_while_tokenizing_ends_in_one_line(slow_archive, tmp_path, to):
    home = tmp_path / "home"
    proc = start_fetch(home, "--from", str(slow_archive), workers=2)
    try:
        workers = wait_for(lambda: children(proc.pid), "the tokenizer workers")
        time.sleep(0.2)  # into the tokenizing
        if to == "group":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert out == "" and err == TERMINATED + "\n", err  # no worker traceback
    assert not [w for w in workers if alive(w)], "the workers end with the fetch"
    assert leftovers(home) == []
    assert not (home / "aclimdb").exists()


class _StallingServer:
    """Serves `data` announcing its whole length, but sends only the first half until
    `release` is set: a download that is under way when the signal comes."""

    def __init__(self, data: bytes):
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                half = len(data) // 2
                self.wfile.write(data[:half])
                self.wfile.flush()
                if server.release.wait(60):
                    self.wfile.write(data[half:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/aclImdb_v1.tar.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stalling(archive):
    server = _StallingServer(archive.read_bytes())
    yield server
    server.close()


def _temporary(home: Path):
    return [p for p in (home / "downloads").glob(".*.tmp-*")] if (home / "downloads").is_dir() \
        else []


def test_sigterm_during_a_download_removes_its_temporary_file(stalling, tmp_path):
    home = tmp_path / "home"
    proc = start_fetch(home, "--from", stalling.url)
    try:
        wait_for(lambda: _temporary(home), "the download's temporary file")
        time.sleep(0.3)  # into the read that waits for the rest
        proc.send_signal(signal.SIGTERM)
        out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143 and out == "" and err == TERMINATED + "\n", err
    assert leftovers(home) == []


def test_the_next_fetch_removes_what_a_killed_one_left(stalling, archive, tmp_path):
    home = tmp_path / "home"
    proc = start_fetch(home, "--from", stalling.url)
    try:
        wait_for(lambda: _temporary(home), "the download's temporary file")
    finally:
        proc.kill()  # SIGKILL: no cleanup can run
        proc.communicate(timeout=60)
    left = _temporary(home)
    assert left, "a killed download leaves its temporary file"
    # And a build that a fetch killed while storing left, which meta.json never named.
    unfinished = home / "aclimdb" / "build-20240101-000000-abcd1234"
    unfinished.mkdir(parents=True)
    (unfinished / "train.npz").write_bytes(b"half")
    # In the data home itself only what a fetch writes there: it may be the user's folder.
    (home / ".current.tmp-abcd_123").write_text("aclimdb")
    (home / ".notes.tmp-abcd_123.txt").write_text("another program's")
    stalling.release.set()
    done = subprocess.run([sys.executable, "-m", "rnncli", "data", "fetch", "--from",
                           str(archive)], env=fetch_env(home),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not any(p.exists() for p in left)
    assert not unfinished.exists()
    assert sorted(p.name for p in home.glob(".*")) == [".notes.tmp-abcd_123.txt"]
    assert len(list((home / "aclimdb").glob("build-*"))) == 1
