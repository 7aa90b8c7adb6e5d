"""Downloads into the data home, cached by URL and reused only once verified.

    got = cached_download(url, home / "downloads", progress=None, size=None, sha256=None)
    got.path, got.sha256, got.verified

A download goes to a temporary file and is kept only if its byte count matches the server's
Content-Length (and the known size) and its SHA-256 the known one. Only a download whose
size or checksum could be checked gets a record beside it (`<file>.json`: URL, size,
SHA-256), and only a file that still matches its record is reused. The file name starts with
a hash of the URL, so two URLs never share a cached file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rnncli.data.archive import Progress, file_sha256
from rnncli.errors import DataError, NetworkError
from rnncli.fsutil import atomic_path, atomic_write_json, read_json

_BLOCK = 1 << 20
_AGAIN = "try again or pass a local copy with --from PATH"


@dataclass(frozen=True)
class Download:
    path: Path
    sha256: str
    verified: bool  # its size or checksum was known and matched


def _content_length(response) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, TypeError, ValueError):
        return None


def download(url: str, dest: Path, progress: Progress | None = None,
             size: int | None = None, sha256: str | None = None) -> Download:
    """Download `url` to `dest` (via a temporary file beside it), checking the byte count
    against Content-Length and `size` and the SHA-256 against `sha256` where given."""
    import http.client
    import urllib.error
    import urllib.request

    try:
        response = urllib.request.urlopen(url, timeout=30)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkError(
            f"Cannot download {url} ({reason}); without internet, pass a local copy "
            "with `rnncli data fetch --from PATH`."
        ) from None
    expected = _content_length(response)
    digest, done = hashlib.sha256(), 0
    try:
        with response, atomic_path(dest) as tmp, open(tmp, "wb") as out:
            while True:
                try:
                    block = response.read(_BLOCK)
                except (OSError, http.client.HTTPException) as exc:
                    raise NetworkError(f"Download of {url} broke off after {done:,} bytes "
                                       f"({exc!r}); {_AGAIN}.") from None
                if not block:
                    break
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, expected or size)
            # urllib takes a connection closed early for the end of the body: count.
            for want in {expected, size} - {None}:
                if done != want:
                    raise NetworkError(f"Downloaded {done:,} bytes from {url}, expected "
                                       f"{want:,}: the download was cut short; {_AGAIN}.")
            if sha256 is not None and digest.hexdigest() != sha256:
                raise NetworkError(f"Checksum mismatch for {url}; {_AGAIN}.")
    except OSError as exc:
        raise DataError(f"Cannot write {dest} ({exc.strerror or exc}): free some disk space "
                        "or pass another --data-dir.") from None
    known = expected is not None or size is not None or sha256 is not None
    return Download(dest, digest.hexdigest(), verified=known)


def cache_path(url: str, folder: Path) -> Path:
    """Where `url` is cached: a hash of the whole URL, then its file name for people."""
    name = PurePosixPath(url.split("?")[0].split("#")[0]).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-80:] or "download"
    return folder / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"


def _record(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _reusable(path: Path, url: str, sha256: str | None) -> Download | None:
    try:
        record = read_json(_record(path))
        if record["url"] != url or path.stat().st_size != record["size"]:
            return None
        digest = file_sha256(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if digest != record["sha256"] or sha256 not in (None, digest):
        return None
    return Download(path, digest, verified=True)


def cached_download(url: str, folder: Path, progress: Progress | None = None,
                    size: int | None = None, sha256: str | None = None,
                    force: bool = False) -> Download:
    """`url`'s file in `folder`: reused if it matches its record, else downloaded again."""
    path = cache_path(url, folder)
    if not force and (got := _reusable(path, url, sha256)):
        return got
    # A failed download leaves the old file and record as they were (the file is replaced
    # only once whole); a record that no longer matches its file is never trusted.
    got = download(url, path, progress, size, sha256)
    if got.verified:
        atomic_write_json(_record(path), {"url": url, "size": path.stat().st_size,
                                          "sha256": got.sha256})
    else:
        _record(path).unlink(missing_ok=True)
    return got


def forget(path: Path) -> None:
    """Remove a cached download and its record (the record first: no record, no reuse)."""
    _record(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)
