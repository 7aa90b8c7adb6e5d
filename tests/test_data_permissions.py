"""Permissions are what plain writes would give: new files and folders of the data home follow
the user's umask (a build is not 0700 under umask 022), and a file replaced atomically keeps
its mode (a 0600 file stays private).
"""

import os
import stat

import pytest
from conftest import invoke

from rnncli import fsutil

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


@pytest.fixture
def umask():
    """Set the process's umask for the test, and put the old one back after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077], ids=["022", "002", "077"])
def test_a_data_home_follows_the_umask(archive, _isolated, umask, mask):
    umask(mask)
    assert invoke("data", "fetch", "--from", archive).exit_code == 0
    source = _isolated / "aclimdb"
    build = next(source.glob("build-*"))
    folders = [_isolated, source, build]
    files = [_isolated / "fetch.lock", _isolated / "current", source / "meta.json",
             *build.iterdir()]
    assert {p.name: mode(p) for p in folders} == {p.name: 0o777 & ~mask for p in folders}
    assert {p.name: mode(p) for p in files} == {p.name: 0o666 & ~mask for p in files}
    assert fsutil.umask() == mask


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    private = tmp_path / "token.json"
    private.write_text("{}")
    private.chmod(0o600)
    fsutil.atomic_write_json(private, {"a": 1})
    assert mode(private) == 0o600 and private.read_text().startswith("{")
    shared = tmp_path / "shared.txt"
    shared.write_text("x")
    shared.chmod(0o664)
    with fsutil.atomic_path(shared) as tmp:
        tmp.write_text("y")
    assert mode(shared) == 0o664 and shared.read_text() == "y"
    fsutil.atomic_write_text(tmp_path / "new.txt", "z")
    assert mode(tmp_path / "new.txt") == 0o644


def test_a_private_meta_json_stays_private_across_a_rebuild(archive, _isolated, umask):
    umask(0o022)
    assert invoke("data", "fetch", "--from", archive).exit_code == 0
    meta = _isolated / "aclimdb" / "meta.json"
    meta.chmod(0o600)
    assert invoke("data", "fetch", "--from", archive, "--force").exit_code == 0
    assert mode(meta) == 0o600
