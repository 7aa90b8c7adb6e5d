"""`rnncli data` output details: clean stderr off a terminal, origins that stay meaningful."""

import json

from conftest import invoke


def test_fetch_writes_no_empty_line_off_a_terminal(archive):
    res = invoke("data", "fetch", "--from", str(archive))
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()
    assert lines and all(line.strip() for line in lines), res.stderr
    assert lines[0].startswith("Prepared aclimdb")


def test_info_shows_the_origin_as_an_absolute_path(archive, tmp_path):
    # the fixture's cwd is tmp_path, where the archive lies: pass it relative
    res = invoke("data", "fetch", "--from", archive.name)
    assert res.exit_code == 0, res.output
    info = json.loads(invoke("data", "info", "--json").stdout)
    assert info["origin"] == str(archive.resolve())
    shown = invoke("data", "info").stdout.splitlines()[0]
    assert f"({archive.resolve()})" in shown
