"""Hostile and unlucky inputs to `rnncli data fetch`: archives cut short or forged, downloads
closed early, sizes and names out of range, folders with links or changed files.

Each must end in one line naming the object and the next step (exit 1), with nothing cached
or half-written and the previous dataset intact.
"""

import errno
import gzip
import http.server
import io
import json
import shutil
import tarfile
import threading
import zlib

import pytest
from conftest import (
    NO_ARCHIVE,
    REAL_ARCHIVE,
    add_bytes,
    invoke,
    one_line_error,
    synthetic_reviews,
    tar_bytes,
    write_archive,
)

from rnncli.data import archive as arch


def info():
    res = invoke("data", "info", "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


CUT_AT = "aclImdb/test/neg/3_"  # a member after both labels of both splits have begun


def cut_offset(tar: bytes) -> int:
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        return next(m.offset for m in t.getmembers() if m.name.startswith(CUT_AT))


# ---------------------------------------------------------------- archives cut short or forged


def test_archive_cut_at_a_member_header_is_refused(tmp_path):
    # A whole gzip stream around a tar that stops at a header: the end blocks are missing.
    tar = tar_bytes()
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(gzip.compress(tar[: cut_offset(tar)]))
    one_line_error(invoke("data", "fetch", "--from", path), "no end-of-archive marker")


def test_gzip_stream_cut_where_the_tar_looks_complete_is_refused(tmp_path):
    # The gzip data up to a full flush decodes exactly to a member boundary; its trailer is gone.
    tar = tar_bytes()
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = c.compress(tar[: cut_offset(tar)]) + c.flush(zlib.Z_FULL_FLUSH)
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(head)
    one_line_error(invoke("data", "fetch", "--from", path), "gzip stream stops before its end")


@pytest.mark.parametrize("damage", ["crc", "garbage-header", "after-end", "plain-tar-cut"])
def test_damaged_archives_are_refused(tmp_path, damage, _isolated):
    tar = tar_bytes()
    if damage == "crc":
        data = bytearray(gzip.compress(tar))
        data[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    elif damage == "garbage-header":
        at = cut_offset(tar)  # tarfile stops quietly at a header it cannot parse
        data = gzip.compress(tar[:at] + b"x" * 512 + tar[at + 512 :])
    elif damage == "after-end":
        data = gzip.compress(tar + b"not zeros".ljust(512, b"!"))
    else:
        data = tar[: cut_offset(tar)]
    path = tmp_path / "bad.tar"
    path.write_bytes(bytes(data))
    one_line_error(invoke("data", "fetch", "--from", path), "the archive is truncated or corrupt")
    assert not (_isolated / "aclimdb").exists()


def test_pool_reports_a_cut_archive_too(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNCLI_WORKERS", "2")
    tar = tar_bytes()
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(gzip.compress(tar[: cut_offset(tar)]))
    one_line_error(invoke("data", "fetch", "--from", path), "no end-of-archive marker")


@pytest.mark.real_data
@pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason=NO_ARCHIVE)
def test_real_archive_cut_at_a_member_header_is_refused(tmp_path):
    # The cut found in review: it used to give 21,509 train reviews (9,009 pos) and exit 0.
    with open(REAL_ARCHIVE, "rb") as f:
        (tmp_path / "cut.tgz").write_bytes(f.read(26_824_634))
    one_line_error(invoke("data", "fetch", "--from", tmp_path / "cut.tgz"),
                   "the archive is truncated or corrupt")


def test_other_compressions_and_special_files_are_refused(tmp_path):
    import bz2
    import os

    (tmp_path / "a.tar.bz2").write_bytes(bz2.compress(tar_bytes()))
    one_line_error(invoke("data", "fetch", "--from", tmp_path / "a.tar.bz2"),
                   "is compressed with bzip2 or xz")
    os.mkfifo(tmp_path / "fifo")
    one_line_error(invoke("data", "fetch", "--from", tmp_path / "fifo"), "not a regular file")


@pytest.mark.parametrize("split, label", [("train", "neg"), ("test", "pos")])
def test_a_split_without_one_label_is_refused(tmp_path, split, label):
    rows = [r for r in synthetic_reviews() if (r[0], r[1]) != (split, label)]
    path = write_archive(tmp_path / "a.tar.gz", rows)
    one_line_error(invoke("data", "fetch", "--from", path), f"has no {split}/{label} reviews")


@pytest.mark.parametrize("name", ["5000_300.txt", "99999999999_8.txt", "3_0.txt", "4_11.txt",
                                  "9" * 5000 + "_8.txt"])
def test_ratings_and_ids_out_of_range_are_refused(tmp_path, name):
    path = write_archive(tmp_path / "a.tar.gz", extra=lambda tar: add_bytes(
        tar, f"aclImdb/train/pos/{name}", b"a great film"))
    one_line_error(invoke("data", "fetch", "--from", path), "rating outside 1-10 or an id over")


# ---------------------------------------------------------------- limits


def test_oversized_review_is_refused(tmp_path):
    big = b"great " * (arch.MAX_REVIEW_BYTES // 6 + 1)
    path = write_archive(tmp_path / "a.tar.gz", extra=lambda tar: add_bytes(
        tar, "aclImdb/train/pos/900_9.txt", big))
    one_line_error(invoke("data", "fetch", "--from", path), "per review")


def test_review_size_is_refused_from_its_header_before_reading(tmp_path):
    # The header claims 2 GiB and no data follows: refused on the claim, nothing is read.
    member = tarfile.TarInfo("aclImdb/train/pos/900_9.txt")
    member.size = 2**31
    tar = tar_bytes()
    path = tmp_path / "a.tar.gz"
    path.write_bytes(gzip.compress(tar[: cut_offset(tar)] + member.tobuf(tarfile.PAX_FORMAT)))
    one_line_error(invoke("data", "fetch", "--from", path), "2,147,483,648 bytes, over the limit")


def test_oversized_extended_header_is_refused(tmp_path):
    long_name = "aclImdb/" + "x" * (arch.MAX_REVIEW_BYTES + 1)
    path = write_archive(tmp_path / "a.tar.gz", extra=lambda tar: add_bytes(tar, long_name, b""))
    one_line_error(invoke("data", "fetch", "--from", path), "over the limit")


@pytest.mark.parametrize("limit, value, message", [
    ("MAX_ARCHIVE_BYTES", 5_000, "more than 5,000 bytes uncompressed"),
    ("MAX_MEMBERS", 10, "more than 10 files"),
])
def test_archive_and_folder_limits(tmp_path, monkeypatch, limit, value, message):
    path = write_archive(tmp_path / "a.tar.gz")
    monkeypatch.setattr(arch, limit, value)
    one_line_error(invoke("data", "fetch", "--from", path), message)
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    one_line_error(invoke("data", "fetch", "--from", tmp_path / "x"), message)


# ---------------------------------------------------------------- extracted folders


@pytest.fixture
def folder(archive, tmp_path):
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    return tmp_path / "x" / "aclImdb"


def test_folder_checksum_follows_its_contents(folder):
    assert invoke("data", "fetch", "--from", folder).exit_code == 0
    assert "Already prepared" in invoke("data", "fetch", "--from", folder).stderr
    (folder / "train" / "pos" / "900_9.txt").write_text("a superb film")
    res = invoke("data", "fetch", "--from", folder)
    assert res.exit_code == 0 and "Prepared aclimdb" in res.stderr
    assert info()["splits"]["train"]["pos"] == 13
    review = next((folder / "test" / "neg").iterdir())
    review.write_text(review.read_text() + " dull")
    assert "Prepared aclimdb" in invoke("data", "fetch", "--from", folder).stderr


@pytest.mark.parametrize("link", ["train/neg", "test"])
def test_symlinked_folders_inside_the_corpus_are_refused(folder, tmp_path, link):
    moved = tmp_path / "elsewhere"
    shutil.move(folder / link, moved)
    (folder / link).symlink_to(moved, target_is_directory=True)
    one_line_error(invoke("data", "fetch", "--from", folder), "refusing it")


def test_folder_missing_a_label_is_refused(folder):
    shutil.rmtree(folder / "train" / "neg")
    one_line_error(invoke("data", "fetch", "--from", folder), "has no train/neg folder")


def test_folder_limits_and_names(folder):
    bad = folder / "train" / "pos" / "5000_300.txt"
    bad.write_text("great")
    one_line_error(invoke("data", "fetch", "--from", folder), "rating outside 1-10")
    bad.unlink()
    (folder / "train" / "pos" / "901_9.txt").write_bytes(b"a" * (arch.MAX_REVIEW_BYTES + 1))
    one_line_error(invoke("data", "fetch", "--from", folder), "per review")


# ---------------------------------------------------------------- downloads


@pytest.fixture
def server():
    """A local HTTP server. `files[path] = (data, sent, with_length)` serves `data`, announcing
    its length (if with_length) but sending only `sent` bytes; `hits` lists requested paths."""
    files, hits = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path not in files:
                return self.send_error(404)
            data, sent, with_length = files[self.path]
            self.send_response(200)
            if with_length:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:sent])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", files, hits
    httpd.shutdown()
    httpd.server_close()


def test_download_closed_early_is_refused_and_never_reused(server, archive, _isolated):
    base, files, hits = server
    data = archive.read_bytes()
    files["/a/aclImdb_v1.tar.gz"] = (data, len(data) // 2, True)
    files["/b/aclImdb_v1.tar.gz"] = (data, len(data), True)
    one_line_error(invoke("data", "fetch", "--from", f"{base}/a/aclImdb_v1.tar.gz"),
                   "the download was cut short")
    assert not any((_isolated / "downloads").iterdir())
    # Same file name, other URL: downloaded, not taken from the cache.
    res = invoke("data", "fetch", "--from", f"{base}/b/aclImdb_v1.tar.gz")
    assert res.exit_code == 0, res.output
    assert hits == ["/a/aclImdb_v1.tar.gz", "/b/aclImdb_v1.tar.gz"]


def test_downloaded_archive_cut_at_a_header_is_not_kept(server, tmp_path, _isolated):
    base, files, _ = server
    tar = tar_bytes()
    cut = gzip.compress(tar[: cut_offset(tar)])
    files["/cut.tar.gz"] = (cut, len(cut), True)
    one_line_error(invoke("data", "fetch", "--from", f"{base}/cut.tar.gz"), "end-of-archive")
    assert not any((_isolated / "downloads").iterdir())


def test_cache_is_verified_before_reuse(server, archive, _isolated, monkeypatch):
    base, files, hits = server
    data = archive.read_bytes()
    files["/official/aclImdb_v1.tar.gz"] = (data, len(data), True)
    monkeypatch.setattr(arch, "ACLIMDB_URL", f"{base}/official/aclImdb_v1.tar.gz")
    monkeypatch.setattr(arch, "ACLIMDB_SIZE", len(data))
    monkeypatch.setattr(arch, "ACLIMDB_SHA256", arch.file_sha256(archive))
    assert invoke("data", "fetch").exit_code == 0
    assert invoke("data", "fetch").exit_code == 0 and len(hits) == 1, "an intact copy is reused"
    cached = next(p for p in (_isolated / "downloads").iterdir() if p.suffix == ".gz")
    tampered = bytearray(cached.read_bytes())
    tampered[100] ^= 0xFF
    cached.write_bytes(bytes(tampered))  # same size, other bytes
    res = invoke("data", "fetch")
    assert res.exit_code == 0 and "Already prepared" in res.stderr, res.output
    assert len(hits) == 2 and cached.read_bytes() == data


def test_download_without_length_is_used_but_not_cached(server, archive, _isolated):
    base, files, hits = server
    data = archive.read_bytes()
    files["/x.tar.gz"] = (data, len(data), False)
    assert invoke("data", "fetch", "--from", f"{base}/x.tar.gz").exit_code == 0
    assert not any((_isolated / "downloads").iterdir())
    assert invoke("data", "fetch", "--from", f"{base}/x.tar.gz").exit_code == 0
    assert len(hits) == 2


def test_disk_full_during_download_leaves_nothing(server, archive, prepared, _isolated,
                                                  monkeypatch):
    from rnncli.data import download

    base, files, _ = server
    data = archive.read_bytes()
    files["/x.tar.gz"] = (data, len(data), True)
    before = info()

    class FullDisk:
        def __init__(self, path, mode):
            self.path = path

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, block):
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(download, "open", FullDisk, raising=False)
    one_line_error(invoke("data", "fetch", "--from", f"{base}/x.tar.gz"),
                   "No space left on device")
    assert not any((_isolated / "downloads").iterdir())
    assert info() == before
