"""Reading the Stanford aclImdb corpus: from a .tar.gz (or .tar) or an extracted folder.

    for review in iter_reviews(Path("aclImdb_v1.tar.gz")):  # Review(split, label, id, ...)
        ...
    reviews, checksum = read_folder(Path("aclImdb"))

Nothing is extracted to disk: members are read in memory, and a member that could escape a
folder if it were extracted (absolute path, `..`, a link) is rejected, so a hostile archive
cannot write anywhere. An archive must be whole: its gzip stream must end with its trailer
(CRC and length verified) and its tar stream with the end-of-archive blocks, so an archive
cut short, even exactly at a member boundary, is refused instead of read as a smaller
corpus. It must also say what extracting it would give: one aclImdb root, each file once,
no review inside another review folder, no path that is a file in one member and a folder
in another. Sizes are capped (MAX_*) before anything is read into memory.
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
from typing import BinaryIO

from rnncli.errors import DataError

ACLIMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# The published archive, as listed by its authors' mirrors (84,125,825 bytes).
ACLIMDB_SIZE = 84_125_825
ACLIMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"

# Limits, far above the real corpus (longest review ~14 KB; the published archive is ~100,000
# members), so a hostile archive cannot make a fetch take all memory.
MAX_REVIEW_BYTES = 1 << 20  # one review file
MAX_ARCHIVE_BYTES = 1 << 30  # the whole uncompressed tar stream, or a folder's reviews
MAX_MEMBERS = 200_000  # members of an archive, or review files of a folder
MAX_ID = 2**31 - 1  # review ids are stored as int32

SPLITS = ("train", "test")
LABELS = ("neg", "pos")
_REVIEW = re.compile(r"(?:.*/)?aclImdb/(train|test)/(neg|pos)/(\d+)_(\d+)\.txt")
# Headers whose whole body tarfile reads into memory before the member they describe.
_LONG_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                 tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_BLOCK = 1 << 20
_REFUSE = "refusing it; use the original aclImdb_v1.tar.gz"

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Review:
    split: str
    label: int  # 0 negative, 1 positive
    id: int
    rating: int  # the reviewer's stars, 1-4 negative, 7-10 positive
    raw: bytes


def file_sha256(path: Path, chunk: int = _BLOCK) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _parse_name(name: str, where: Path) -> tuple[str, int, int, int] | None:
    """(split, label, id, rating) of a review's path under its first aclImdb folder, None
    for anything else; a review path under a deeper aclImdb folder is refused."""
    parts = PurePosixPath(name).parts  # as extracting reads it: "a//b/./c" is a/b/c
    match = _REVIEW.fullmatch("/".join(parts))
    if not match:
        return None
    if len(parts) - parts.index("aclImdb") != 4:
        # aclImdb/train/pos/x/aclImdb/test/neg/1_1.txt: a test review or a train one?
        raise DataError(f"Review {name!r} in {where} lies inside another aclImdb folder: "
                        f"{_REFUSE}.")
    split, label, rid, rating = match.groups()
    # Lengths first: int() of thousands of digits is refused by Python itself.
    if len(rid) > 12 or int(rid) > MAX_ID or len(rating) > 3 or not 1 <= int(rating) <= 10:
        raise DataError(f"Review {name!r} in {where} has a rating outside 1-10 or an id over "
                        f"{MAX_ID:,}: {_REFUSE}.")
    return split, LABELS.index(label), int(rid), int(rating)


_URLS = re.compile(r"(?:.*/)?aclImdb/(train|test)/urls_(neg|pos)\.txt")
_TITLE = re.compile(rb"/title/tt(\d{1,9})/")
MAX_URLS_BYTES = 16 << 20  # the real files are about 1.2 MB each


def _movie_ids(raw: bytes) -> list[int]:
    """The IMDb title number of each line of a urls_*.txt (line N: review id N's movie), -1
    where a line names none."""
    out = []
    for line in raw.splitlines():
        m = _TITLE.search(line)
        out.append(int(m.group(1)) if m else -1)
    return out


def _add_movies(movies: dict | None, name: str, read) -> None:
    """Into `movies`, keyed (split, label index), the movie of each review id, for a member
    named aclImdb/<split>/urls_<label>.txt; `read(limit)` gives its bytes."""
    if movies is None:
        return
    match = _URLS.fullmatch("/".join(PurePosixPath(name).parts))
    if match:
        split, label = match.groups()
        movies[(split, LABELS.index(label))] = _movie_ids(read(MAX_URLS_BYTES))


def _check_review_size(name: str, size: int, where: Path) -> None:
    if size > MAX_REVIEW_BYTES:
        raise DataError(f"Review {name!r} in {where} is {size:,} bytes, over the limit of "
                        f"{MAX_REVIEW_BYTES:,} per review: {_REFUSE}.")


def _check_count(count: int, where: Path) -> None:
    if count > MAX_MEMBERS:
        raise DataError(f"{where} holds more than {MAX_MEMBERS:,} files: {_REFUSE}.")


def _check_total(total: int, where: Path) -> None:
    if total > MAX_ARCHIVE_BYTES:
        raise DataError(f"{where} holds more than {MAX_ARCHIVE_BYTES:,} bytes uncompressed: "
                        f"{_REFUSE}.")


def _corrupt(path: Path, why: object) -> DataError:
    return DataError(f"Cannot read {path}: the archive is truncated or corrupt ({why}); "
                     "download it again or pass an extracted aclImdb/ folder.")


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


class _Layout:
    """What extracting an archive would give, checked member by member: an archive whose
    members overlap (the same file twice, a file where another member needs a folder) or
    that holds two aclImdb roots would read as one corpus and extract as another."""

    def __init__(self, archive: Path):
        self.archive = archive
        self.files: set[str] = set()
        self.folders: set[str] = set()
        self.root: str | None = None
        self.reviews: set[tuple[str, int, int]] = set()

    def _refuse(self, name: str, why: str) -> DataError:
        return DataError(f"Member {name!r} of {self.archive} {why}: {_REFUSE}.")

    def add(self, member: tarfile.TarInfo) -> None:
        parts = PurePosixPath(member.name).parts
        path = "/".join(parts)
        above = ["/".join(parts[:i]) for i in range(1, len(parts))]
        if clash := next((folder for folder in above if folder in self.files), None):
            raise self._refuse(member.name, f"lies under {clash}, which another member makes a "
                                            "file")
        if member.isdir():
            if path in self.files:
                raise self._refuse(member.name, "is a folder where another member is a file")
        elif path in self.folders:
            raise self._refuse(member.name, "is a file where other members need a folder")
        elif path in self.files:
            raise self._refuse(member.name, "appears twice (extracting keeps only the last)")
        else:
            self.files.add(path)
        self.folders.update(above)

    def add_review(self, name: str, split: str, label: int, rid: int) -> None:
        # What lies above the review's aclImdb folder, as extracting reads the name: "./x"
        # and "x" are one folder, "copy/aclImdb" and "aclImdb" are two.
        parts = PurePosixPath(name).parts
        root = "/".join(parts[: parts.index("aclImdb")])
        if self.root is None:
            self.root = root
        elif root != self.root:
            first, second = (f"{r}/aclImdb" if r else "aclImdb" for r in (self.root, root))
            raise self._refuse(name, f"lies in a second corpus folder, {second}/, besides "
                                     f"{first}/")
        _check_unique(self.reviews, name, split, label, rid, self.archive)


def _check_unique(seen: set, name: str, split: str, label: int, rid: int, where: Path) -> None:
    """Review ids are unique within a split's label: two files for one review (1_1.txt and
    01_1.txt, or 1_2.txt) would make `data decode` and the stored ids ambiguous."""
    key = (split, label, rid)
    if key in seen:
        raise DataError(f"Review {name!r} in {where} repeats review id {rid} of "
                        f"{split}/{LABELS[label]}: {_REFUSE}.")
    seen.add(key)


class _Uncompressed:
    """The tar stream inside a .tar.gz (or a plain .tar), read front to back for tarfile.

    tarfile's own gzip reader takes a stream that stops early for a normal end; this one
    fails unless the gzip stream ends with its trailer (zlib checks its CRC and length),
    and past MAX_ARCHIVE_BYTES.
    """

    def __init__(self, f: BinaryIO, path: Path):
        self._f, self._path = f, path
        self._pending = f.read(6)
        if self._pending.startswith((b"BZh", b"\xfd7zXZ\x00")):
            raise DataError(f"{path} is compressed with bzip2 or xz: rnncli reads .tar.gz and "
                            ".tar; recompress it with gzip or pass the extracted folder.")
        gzip = self._pending.startswith(b"\x1f\x8b")
        self._inflate = zlib.decompressobj(31) if gzip else None
        self._buf, self._pos, self.total = b"", 0, 0

    def _input(self) -> bytes:
        data, self._pending = self._pending or self._f.read(_BLOCK), b""
        return data

    def _next_block(self) -> bytes:
        """The next piece of the tar stream; b"" only at a clean end."""
        out = b""
        while not out:
            d = self._inflate
            if d is None:
                out = self._input()
                if not out:
                    return b""
                break
            if d.eof:
                data = d.unused_data or self._input()
                if not data:
                    return b""
                d = self._inflate = zlib.decompressobj(31)  # gzip allows several members
            else:
                data = d.unconsumed_tail or self._input()
                if not data:
                    raise _corrupt(self._path, "the gzip stream stops before its end")
            out = d.decompress(data, _BLOCK)
        self.total += len(out)
        _check_total(self.total, self._path)
        return out

    def read(self, size: int) -> bytes:
        if len(self._buf) - self._pos < size:
            parts, have = [self._buf[self._pos:]], len(self._buf) - self._pos
            while have < size and (block := self._next_block()):
                parts.append(block)
                have += len(block)
            self._buf, self._pos = b"".join(parts), 0
        out = self._buf[self._pos : self._pos + size]
        self._pos += len(out)
        return out


def _header_class(path: Path) -> type[tarfile.TarInfo]:
    """A TarInfo that keeps the last header block read, where the archive must end with
    zeros, and refuses extended headers too large to hold in memory."""

    class Header(tarfile.TarInfo):
        last = b""

        @classmethod
        def frombuf(cls, buf, encoding, errors):
            cls.last = buf
            info = super().frombuf(buf, encoding, errors)
            if info.type in _LONG_HEADERS:
                _check_review_size(info.name, info.size, path)
            return info

    return Header


def _check_end(tar: tarfile.TarFile, last: bytes, path: Path) -> None:
    """The tar stream ends with two zero blocks (then only zeros): tarfile stops at the first
    zero block, or silently at a cut or a damaged header, so check what stopped it."""
    if last != tarfile.NUL * tarfile.BLOCKSIZE:
        raise _corrupt(path, "no end-of-archive marker after the last member")
    zeros = 0
    while block := tar.fileobj.read(tarfile.RECORDSIZE):
        if block.count(0) != len(block):
            raise _corrupt(path, "data after the end-of-archive marker")
        zeros += len(block)
    if zeros < tarfile.BLOCKSIZE:
        raise _corrupt(path, "the end-of-archive marker is cut short")


def _iter_tar(path: Path, movies: dict | None = None) -> Iterator[Review]:
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise DataError(f"Cannot read {path} ({exc.strerror}): check the path given to "
                        "--from.") from None
    header = _header_class(path)
    with f:
        try:
            # Stream mode reads the archive once, front to back: the fastest way through
            # 50k members.
            with tarfile.open(fileobj=_Uncompressed(f, path), mode="r|", tarinfo=header) as tar:
                layout = _Layout(path)
                for count, member in enumerate(tar, 1):
                    _check_count(count, path)
                    _check_member(member, path)
                    layout.add(member)
                    if not member.isfile():
                        continue
                    parsed = _parse_name(member.name, path)
                    if parsed is None:
                        _add_movies(movies, member.name, tar.extractfile(member).read)
                        continue
                    layout.add_review(member.name, *parsed[:3])
                    _check_review_size(member.name, member.size, path)
                    data = tar.extractfile(member)
                    yield Review(*parsed, raw=data.read() if data else b"")
                _check_end(tar, header.last, path)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise _corrupt(path, exc) from None


def _refuse_link(path: Path | str) -> DataError:
    return DataError(f"Link {path} in the corpus folder: refusing it; copy the real files in.")


def read_folder(path: Path, movies: dict | None = None) -> tuple[list[Review], str]:
    """Every labelled review in an extracted aclImdb/ folder, and a checksum of them (names,
    sizes and bytes in a fixed order), so a changed or added review is noticed. `movies`:
    filled with the movie of each review id, from the urls_*.txt files (see iter_reviews)."""
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    digest = hashlib.sha256()
    reviews: list[Review] = []
    seen: set[tuple[str, int, int]] = set()
    total = 0
    try:
        for split in SPLITS:
            for label in LABELS:
                folder = root / split / label
                for part in (path / "aclImdb", root / split, folder):
                    if part.is_symlink():
                        raise _refuse_link(part)
                if not folder.is_dir():
                    raise DataError(f"{root} has no {split}/{label} folder: pass the whole "
                                    "extracted aclImdb/ folder.")
                urls = root / split / f"urls_{label}.txt"
                if urls.is_file() and not urls.is_symlink():
                    with open(urls, "rb") as f:
                        _add_movies(movies, f"aclImdb/{split}/urls_{label}.txt", f.read)
                for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                    if entry.is_symlink():
                        raise _refuse_link(entry.path)
                    name = f"aclImdb/{split}/{label}/{entry.name}"
                    parsed = _parse_name(name, root)
                    if parsed is None or not entry.is_file(follow_symlinks=False):
                        continue
                    _check_unique(seen, name, *parsed[:3], root)
                    _check_review_size(name, entry.stat(follow_symlinks=False).st_size, root)
                    with open(entry.path, "rb") as f:
                        raw = f.read(MAX_REVIEW_BYTES + 1)  # the file may grow meanwhile
                    _check_review_size(name, len(raw), root)
                    total += len(raw)
                    _check_count(len(reviews) + 1, root)
                    _check_total(total, root)
                    digest.update(f"{name}\0{len(raw)}\0".encode())
                    digest.update(raw)
                    reviews.append(Review(*parsed, raw=raw))
    except OSError as exc:
        raise DataError(f"Cannot read {exc.filename or root} ({exc.strerror}): check the "
                        "folder given to --from.") from None
    return reviews, f"content-sha256:{digest.hexdigest()}"


def iter_reviews(path: Path, movies: dict | None = None) -> Iterator[Review]:
    """Every labelled review in an aclImdb archive or folder, in the order they are stored.
    `movies`, when given, is filled as the reviews are read with what the archive's
    urls_<label>.txt files say: {(split, label index): [IMDb title number of review id 0,
    1, ...]} (-1 for a line without one)."""
    if not path.exists():
        raise DataError(f"No such file or folder: {path}; check the path given to --from.")
    if path.is_dir():
        return iter(read_folder(path, movies)[0])
    return _iter_tar(path, movies)
