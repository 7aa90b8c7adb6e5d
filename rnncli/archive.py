"""Reading the Stanford aclImdb corpus: from a .tar.gz, an extracted folder, or a URL.

    for review in iter_reviews(Path("aclImdb_v1.tar.gz")):  # Review(split, label, id, ...)
        ...

Nothing is extracted to disk: members are read in memory, and a member that could escape a
folder if it were extracted (absolute path, `..`, a link) is rejected, so a hostile archive
cannot write anywhere.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rnncli.errors import DataError, NetworkError

ACLIMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# The published archive, as listed by its authors' mirrors (84,125,825 bytes).
ACLIMDB_SIZE = 84_125_825
ACLIMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"

SPLITS = ("train", "test")
LABELS = ("neg", "pos")
_REVIEW = re.compile(r"(?:.*/)?aclImdb/(train|test)/(neg|pos)/(\d+)_(\d+)\.txt")

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Review:
    split: str
    label: int  # 0 negative, 1 positive
    id: int
    rating: int  # the reviewer's stars, 1-4 negative, 7-10 positive
    raw: bytes


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _parse_name(name: str) -> tuple[str, int, int, int] | None:
    match = _REVIEW.fullmatch(name)
    if not match:
        return None
    split, label, rid, rating = match.groups()
    return split, LABELS.index(label), int(rid), int(rating)


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or os.path.isabs(name) or ".." in parts:
        raise DataError(
            f"Unsafe path {name!r} in {archive}: refusing the archive; "
            "use the original aclImdb_v1.tar.gz."
        )
    if member.issym() or member.islnk() or member.isdev() or member.isfifo():
        raise DataError(
            f"Link or special file {name!r} in {archive}: refusing the archive; "
            "use the original aclImdb_v1.tar.gz."
        )


def _iter_tar(path: Path) -> Iterator[Review]:
    try:
        # Stream mode reads the gzip once, front to back: the fastest way through 50k members.
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                _check_member(member, path)
                if not member.isfile():
                    continue
                parsed = _parse_name(member.name)
                if parsed is None:
                    continue
                f = tar.extractfile(member)
                yield Review(*parsed, raw=f.read() if f else b"")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(
            f"Cannot read {path}: the archive is truncated or corrupt ({exc}); "
            "download it again or pass an extracted aclImdb/ folder."
        ) from None


def _iter_folder(path: Path) -> Iterator[Review]:
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    for split in SPLITS:
        for name in LABELS:
            folder = root / split / name
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                if entry.is_symlink():
                    raise DataError(
                        f"Link {entry.path} in the corpus folder: refusing it; "
                        "copy the real files in."
                    )
                parsed = _parse_name(f"aclImdb/{split}/{name}/{entry.name}")
                if parsed is not None and entry.is_file():
                    yield Review(*parsed, raw=Path(entry.path).read_bytes())


def iter_reviews(path: Path) -> Iterator[Review]:
    """Every labelled review in an aclImdb archive or folder, in the order they are stored."""
    if not path.exists():
        raise DataError(f"No such file or folder: {path}; check the path given to --from.")
    if path.is_dir():
        return _iter_folder(path)
    return _iter_tar(path)


def download(url: str, dest: Path, progress: Progress | None = None,
             size: int | None = None, sha256: str | None = None) -> Path:
    """Download `url` to `dest` (via a temporary name) and verify its size and checksum."""
    import urllib.error
    import urllib.request

    tmp = dest.with_name(dest.name + f".part-{os.getpid()}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            response = urllib.request.urlopen(url, timeout=30)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NetworkError(
                f"Cannot download {url} ({reason}); without internet, pass a local copy "
                "with `rnncli data fetch --from PATH`."
            ) from None
        total = int(response.headers.get("Content-Length") or 0) or size
        digest = hashlib.sha256()
        done = 0
        with response, open(tmp, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if size is not None and done != size:
            raise NetworkError(
                f"Downloaded {done:,} bytes from {url}, expected {size:,}; "
                "try again or pass a local copy with --from PATH."
            )
        if sha256 is not None and digest.hexdigest() != sha256:
            raise NetworkError(
                f"Checksum mismatch for {url}; try again or pass a local copy with --from PATH."
            )
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)
