"""Archives must say what extracting them would give: each file once, one aclImdb folder, no
review inside another split's path, no path that is a file for one member and a folder for
another, one file per review id. Anything else would be read as one corpus and extract as
another; it is refused in one line naming the member, and nothing is stored.
"""

import tarfile

import pytest
from conftest import add_bytes, invoke, one_line_error, write_archive

REVIEW = b"a superb and moving film"


def members(*names: str, directory: bool = False):
    def extra(tar):
        for name in names:
            if directory:
                add_bytes(tar, name, b"", type=tarfile.DIRTYPE)
            else:
                add_bytes(tar, name, REVIEW)
    return extra


@pytest.mark.parametrize("extra, member, why", [
    (members("aclImdb/train/pos/500_9.txt", "aclImdb/train/pos/500_9.txt"),
     "aclImdb/train/pos/500_9.txt", "appears twice (extracting keeps only the last)"),
    (members("aclImdb/train/pos/500_9.txt", "./aclImdb/train//pos/500_9.txt"),
     "./aclImdb/train//pos/500_9.txt", "appears twice (extracting keeps only the last)"),
    (members("copy/aclImdb/train/pos/500_9.txt"),
     "copy/aclImdb/train/pos/500_9.txt",
     "lies in a second corpus folder, copy/aclImdb/, besides aclImdb/"),
    (members("aclImdb/README", directory=True),
     "aclImdb/README", "is a folder where another member is a file"),
    (members("aclImdb/test/pos"),
     "aclImdb/test/pos", "is a file where other members need a folder"),
    (members("aclImdb/README/train/pos/500_9.txt"),
     "aclImdb/README/train/pos/500_9.txt",
     "lies under aclImdb/README, which another member makes a file"),
], ids=["twice", "twice-spelled-otherwise", "two-roots", "folder-over-file", "file-over-folder",
        "under-a-file"])
def test_archive_members_that_extract_otherwise_are_refused(tmp_path, _isolated, extra, member,
                                                           why):
    path = write_archive(tmp_path / "a.tar.gz", extra=extra)
    one_line_error(invoke("data", "fetch", "--from", path),
                   f"Member {member!r} of {path} {why}: refusing it")
    assert not (_isolated / "aclimdb").exists()


@pytest.mark.parametrize("name", ["aclImdb/train/pos/7/aclImdb/test/neg/500_1.txt",
                                  "aclImdb/test/neg/aclImdb/train/pos/500_9.txt"])
def test_a_review_nested_under_another_splits_path_is_refused(tmp_path, _isolated, name):
    path = write_archive(tmp_path / "a.tar.gz", extra=members(name))
    one_line_error(invoke("data", "fetch", "--from", path),
                   f"Review {name!r} in {path} lies inside another aclImdb folder")
    assert not (_isolated / "aclimdb").exists()


@pytest.mark.parametrize("other", ["0500_9.txt", "500_8.txt"])
def test_two_files_of_one_review_id_are_refused(tmp_path, other):
    path = write_archive(tmp_path / "a.tar.gz", extra=members(
        "aclImdb/train/pos/500_9.txt", f"aclImdb/train/pos/{other}"))
    one_line_error(invoke("data", "fetch", "--from", path),
                   f"Review 'aclImdb/train/pos/{other}' in {path} repeats review id 500 of "
                   "train/pos")
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    one_line_error(invoke("data", "fetch", "--from", tmp_path / "x" / "aclImdb"),
                   "repeats review id 500 of train/pos")


def test_one_folder_spelled_two_ways_is_one_corpus(tmp_path):
    # `tar czf a.tgz ./aclImdb` writes "./aclImdb/...": extracted, it is the same folder.
    path = write_archive(tmp_path / "a.tar.gz", extra=members(
        "./aclImdb/train/pos/500_9.txt", "aclImdb/train/neg//501_2.txt"))
    res = invoke("data", "fetch", "--from", path)
    assert res.exit_code == 0, res.output
    assert "train 26 reviews" in res.stdout
